import { ArchiveError } from "../errors.ts";
import { logger } from "../log.ts";
import { formatReference, type ImageReference } from "../reference.ts";
import {
  manifestFileName,
  parseManifestJson,
  parseRepositories,
  repositoriesFileName,
  repositoriesImages,
  rewriteManifestJson,
  rewriteRepositories,
  type ManifestItem,
  type Repositories,
} from "./docker-metadata.ts";
import { encodeJson, metadataHint, parseJsonEntry } from "./json-entry.ts";
import {
  annotatedReferences,
  blobPath,
  indexFileName,
  indexImages,
  parseOciIndex,
  resolveImage,
  rewriteIndexJson,
  type OciIndex,
  type OciPlatform,
} from "./oci-metadata.ts";
import { packEntry } from "./pack-entry.ts";
import type {
  EntryAction,
  TarEntryHandler,
  TarEntryInfo,
} from "./tar-pass-through.ts";
import { isRegularFileType } from "./tar-header.ts";

/** Layout of the archive's naming metadata; see ArchiveSummary.layout. */
export type ArchiveLayout = "docker" | "repositories-only" | "oci";

/** An image synthesized into `manifest.json` from an OCI index. */
export interface SynthesizedImage {
  item: ManifestItem;
  /** The names the index annotations gave, before any rename. */
  originalTags: string[];
}

/** Everything the stage learned from the archive's metadata. */
export interface CollectedMetadata {
  layout: ArchiveLayout;
  manifest?: ManifestItem[];
  repositories?: Repositories;
  synthesized?: SynthesizedImage[];
  /**
   * Parses a kept JSON member by normalized path. Returns undefined when
   * the archive has no such JSON member or it was too large to keep.
   */
  readJson(path: string): unknown;
}

type MetadataKind = "manifest" | "repositories" | "index";

const openBrace = 0x7b;
// All kept JSON members together may use this many times the per-member
// limit, which bounds memory for archives with many small JSON blobs.
const jsonBudgetFactor = 4;
const synthesizedMode = 0o644;

/**
 * The image side of the tar stage. It decides which entries to copy or
 * replace, and parses and rewrites `manifest.json`, `repositories` and
 * `index.json`. It keeps small JSON members (configs, OCI manifests, v1
 * layer json) for the summary, and at the end it synthesizes
 * `manifest.json` for OCI-only archives.
 */
export class ImageMetadataHandler implements TarEntryHandler {
  readonly #reference: ImageReference | undefined;
  readonly #maxMetadataBytes: number;
  readonly #platform: OciPlatform;

  #manifest: ManifestItem[] | undefined;
  #repositories: Repositories | undefined;
  #index: OciIndex | undefined;
  #synthesized: SynthesizedImage[] | undefined;
  #layout: ArchiveLayout | undefined;

  // Copies of small JSON members, kept within a budget because which of
  // them are configs or manifests is known only once the metadata is read.
  readonly #jsonBodies = new Map<string, Uint8Array>();
  readonly #parsedJson = new Map<string, unknown>();
  readonly #skippedJson = new Set<string>();
  #jsonBudget: number;

  constructor(options: {
    reference?: ImageReference;
    maxMetadataBytes: number;
    platform: OciPlatform;
  }) {
    this.#reference = options.reference;
    this.#maxMetadataBytes = options.maxMetadataBytes;
    this.#platform = options.platform;
    this.#jsonBudget = options.maxMetadataBytes * jsonBudgetFactor;
  }

  entry(info: TarEntryInfo): EntryAction {
    const { header, path } = info;
    if (!isRegularFileType(header.typeflag)) {
      return { kind: "pass" };
    }

    const kind = metadataKind(path);
    if (kind !== undefined) {
      this.#checkSize(info);
      return this.#reference ? { kind: "replace" } : { kind: "copy" };
    }

    if (isJsonCandidate(path) && header.size > 0) {
      if (header.size > this.#maxMetadataBytes) {
        this.#skippedJson.add(path);
        return { kind: "pass" };
      }
      return {
        kind: "copy-if",
        accept: (firstByte) => this.#reserveJson(path, firstByte, header.size),
      };
    }
    return { kind: "pass" };
  }

  copied(info: TarEntryInfo, body: Uint8Array): void {
    const kind = metadataKind(info.path);
    if (kind === undefined) {
      this.#jsonBodies.set(info.path, body);
      this.#parsedJson.delete(info.path);
      return;
    }
    this.#collect(kind, body);
  }

  async replace(info: TarEntryInfo, body: Uint8Array): Promise<Uint8Array> {
    const reference = this.#reference;
    const kind = metadataKind(info.path);
    if (reference === undefined || kind === undefined) {
      throw new Error(`entry "${info.path}" was held back without a rename`);
    }
    this.#collect(kind, body);

    let rewritten: Uint8Array;
    switch (kind) {
      case "manifest":
        rewritten = rewriteManifestJson(this.#manifest ?? [], reference);
        break;
      case "repositories":
        rewritten = rewriteRepositories(this.#repositories ?? {}, reference);
        break;
      case "index":
        rewritten = rewriteIndexJson(
          this.#index ?? { manifests: [] },
          reference,
        );
        break;
    }
    logger.debug(
      `Rewrote ${info.header.name} for ${formatReference(reference)}`,
    );
    return packEntry(info.header, rewritten);
  }

  async end(): Promise<Uint8Array | undefined> {
    if (this.#manifest !== undefined) {
      this.#layout = "docker";
      if (this.#manifest.length === 0) {
        throw new ArchiveError("The archive's manifest.json lists no images", {
          hint: metadataHint,
        });
      }
      return undefined;
    }

    if (this.#repositories !== undefined) {
      this.#layout = "repositories-only";
      const images = repositoriesImages(this.#repositories);
      if (images.size === 0 && this.#reference) {
        throw new ArchiveError(
          "The archive's repositories file names no image, so there is " +
            "nothing to load under a name",
          { hint: "Load it without a name" },
        );
      }
      return undefined;
    }

    if (this.#index !== undefined) {
      this.#layout = "oci";
      return this.#synthesizeManifest(this.#index);
    }

    throw new ArchiveError(
      "No image metadata found in the archive: it has no manifest.json, " +
        "repositories or index.json",
      {
        hint:
          "Check that the source is an image archive written by docker " +
          "save, skopeo, podman or crane, not a plain tar of files",
      },
    );
  }

  /** Returns what was collected; call after the end-of-archive marker. */
  collected(): CollectedMetadata {
    if (this.#layout === undefined) {
      throw new Error("archive metadata read before the end of the archive");
    }
    return {
      layout: this.#layout,
      manifest: this.#manifest,
      repositories: this.#repositories,
      synthesized: this.#synthesized,
      readJson: (path) => this.#readJson(path, false),
    };
  }

  #checkSize(info: TarEntryInfo): void {
    const { size, name } = info.header;
    if (size > this.#maxMetadataBytes) {
      throw new ArchiveError(
        `Metadata entry "${name}" at offset ${info.offset} is ${size} ` +
          `bytes, more than the limit of ${this.#maxMetadataBytes} bytes`,
        {
          hint:
            "Image metadata is far smaller than this; check that the " +
            "archive is an image archive and not damaged",
        },
      );
    }
  }

  #reserveJson(path: string, firstByte: number, size: number): boolean {
    if (firstByte !== openBrace) {
      return false;
    }
    if (size > this.#jsonBudget) {
      this.#skippedJson.add(path);
      logger.debug(`Not keeping JSON member ${path}: JSON budget used up`);
      return false;
    }
    this.#jsonBudget -= size;
    return true;
  }

  #collect(kind: MetadataKind, body: Uint8Array): void {
    switch (kind) {
      case "manifest":
        this.#manifest = parseManifestJson(body);
        break;
      case "repositories":
        this.#repositories = parseRepositories(body);
        break;
      case "index":
        this.#index = parseOciIndex(indexFileName, body);
        break;
    }
  }

  /**
   * Parses a kept JSON member. A member skipped for its size is an error
   * when `required`, else undefined like a missing one.
   *
   * @throws ArchiveError for invalid JSON or a skipped required member.
   */
  #readJson(path: string, required: boolean): unknown {
    if (this.#parsedJson.has(path)) {
      return this.#parsedJson.get(path);
    }
    const body = this.#jsonBodies.get(path);
    if (body === undefined) {
      if (required && this.#skippedJson.has(path)) {
        throw new ArchiveError(
          `Metadata member ${path} was not kept: it is larger than ` +
            `${this.#maxMetadataBytes} bytes or the JSON members together are`,
          {
            hint:
              "Image metadata this large is unusual; check that the " +
              "archive is an intact image archive",
          },
        );
      }
      return undefined;
    }
    const value = parseJsonEntry(path, body);
    this.#parsedJson.set(path, value);
    return value;
  }

  async #synthesizeManifest(index: OciIndex): Promise<Uint8Array> {
    const images = indexImages(index, this.#platform);
    if (images.length === 0) {
      throw new ArchiveError("The archive's index.json lists no images", {
        hint: metadataHint,
      });
    }
    const reference = this.#reference;
    if (reference && images.length > 1) {
      // rewriteIndexJson already raised this when index.json passed by.
      throw new Error("several OCI images reached synthesis with a name");
    }

    const synthesized: SynthesizedImage[] = [];
    for (const descriptors of images) {
      const [first] = descriptors;
      if (!first) {
        continue;
      }
      const resolved = resolveImage(
        first,
        (digest) => this.#readJson(blobPath(digest), true),
        this.#platform,
      );
      const { references, bareTags } = annotatedReferences(descriptors);
      if (!reference && references.length === 0 && bareTags.length > 0) {
        logger.warn(
          `The archive names its image only by the tag "${bareTags[0]}" ` +
            `and no repository, so it loads without a name; give ` +
            `NAME[:TAG] to name it`,
        );
      }

      const repoTags = reference ? [formatReference(reference)] : references;
      synthesized.push({
        item: {
          Config: blobPath(resolved.config),
          RepoTags: repoTags.length > 0 ? repoTags : null,
          Layers: resolved.layers.map(blobPath),
        },
        originalTags: references,
      });
    }
    this.#synthesized = synthesized;

    logger.debug(
      `Synthesized manifest.json for an OCI archive of ` +
        `${synthesized.length} image(s)`,
    );
    return packEntry(
      {
        name: manifestFileName,
        mode: synthesizedMode,
        mtime: 0,
        uid: 0,
        gid: 0,
        uname: "",
        gname: "",
      },
      encodeJson(synthesized.map((image) => image.item)),
    );
  }
}

function metadataKind(path: string): MetadataKind | undefined {
  switch (path) {
    case manifestFileName:
      return "manifest";
    case repositoriesFileName:
      return "repositories";
    case indexFileName:
      return "index";
    default:
      return undefined;
  }
}

/**
 * Reports whether a member may be JSON the summary or the OCI synthesis
 * needs: a top-level config (`<hex>.json` from `docker save`,
 * `sha256:<hex>` from crane), a v1 `<id>/json`, or an OCI blob.
 */
function isJsonCandidate(path: string): boolean {
  const segments = path.split("/");
  switch (segments.length) {
    case 1:
      return path.endsWith(".json") || path.startsWith("sha256:");
    case 2:
      return segments[1] === "json";
    case 3:
      return segments[0] === "blobs";
    default:
      return false;
  }
}
