import { formatReference, type ImageReference } from "../reference.ts";
import {
  repositoriesImages,
  type ManifestItem,
  type Repositories,
} from "./docker-metadata.ts";
import type { ArchiveLayout, CollectedMetadata } from "./image-metadata.ts";
import { isJsonObject, splitNameTag } from "./json-entry.ts";
import { normalizePath } from "./tar-pass-through.ts";

/** One image of the archive, as the archive listed it. */
export interface ArchiveImage {
  /** Path of the config member, as manifest.json names it. */
  config?: string;
  repoTags: string[];
  /** Paths of the layer members, bottom first. */
  layers: string[];
}

/** Findings of the tar stage, and the references the engine should get. */
export interface ArchiveSummary {
  /**
   * `docker`: manifest.json is present. `repositories-only`: only the
   * legacy repositories file. `oci`: only index.json, so the stage
   * synthesized a manifest.json.
   */
  layout: ArchiveLayout;
  /** The images as the archive had them, before any rewrite. */
  images: ArchiveImage[];
  /** The archive's own first name and tag. */
  original?: { name: string; tag: string };
  /**
   * The repositories value of the single image when there is one, else
   * the last diff_id (`sha256:...`) of its config.
   */
  topLayer?: string;
  /** `sha256:<hex>` of the single image's config: Docker's image ID. */
  configDigest?: string;
  /** The references the engine should hold after the load. */
  expectedReferences: string[];
  /** Whether the naming metadata was rewritten to the given reference. */
  rewritten: boolean;
}

// Config member names: `docker save` up to Engine 24, Engine 25+ and
// OCI blobs, and crane.
const configPathPatterns = [
  /^([a-f0-9]{64})\.json$/,
  /^blobs\/sha256\/([a-f0-9]{64})$/,
  /^sha256:([a-f0-9]{64})$/,
];
const maxLayerChain = 1000;

/** Builds the summary from the metadata collected over the whole archive. */
export function summarize(
  metadata: CollectedMetadata,
  reference: ImageReference | undefined,
): ArchiveSummary {
  const images = listImages(metadata);
  const single = images.length === 1 ? images[0] : undefined;

  const legacyImages = metadata.repositories
    ? repositoriesImages(metadata.repositories)
    : new Map<string, string[]>();
  let topLayer: string | undefined;
  if (single && legacyImages.size === 1) {
    [topLayer] = legacyImages.keys();
  } else if (single?.config) {
    topLayer = lastDiffId(metadata, single.config);
  }

  const ownTags = images.flatMap((image) => image.repoTags);
  const firstLegacy = [...legacyImages.values()][0]?.[0];
  const firstTag = ownTags[0] ?? firstLegacy;

  return {
    layout: metadata.layout,
    images,
    original: firstTag === undefined ? undefined : splitNameTag(firstTag),
    topLayer,
    configDigest: single?.config ? configDigest(single.config) : undefined,
    expectedReferences: reference
      ? [formatReference(reference)]
      : [...new Set(ownTags)],
    rewritten: reference !== undefined,
  };
}

function listImages(metadata: CollectedMetadata): ArchiveImage[] {
  switch (metadata.layout) {
    case "docker":
      return (metadata.manifest ?? []).map(fromManifestItem);
    case "repositories-only":
      return fromRepositories(metadata, metadata.repositories ?? {});
    case "oci":
      return (metadata.synthesized ?? []).map((image) => ({
        ...fromManifestItem(image.item),
        repoTags: image.originalTags,
      }));
  }
}

function fromManifestItem(item: ManifestItem): ArchiveImage {
  return {
    config: item.Config,
    repoTags: item.RepoTags ?? [],
    layers: item.Layers ?? [],
  };
}

/**
 * Lists the images of a legacy archive, with their layers found by
 * following `parent` through the `<id>/json` members.
 */
function fromRepositories(
  metadata: CollectedMetadata,
  repositories: Repositories,
): ArchiveImage[] {
  const images: ArchiveImage[] = [];
  for (const [topLayer, repoTags] of repositoriesImages(repositories)) {
    const ids: string[] = [];
    let id: string | undefined = topLayer;
    while (
      id !== undefined &&
      !ids.includes(id) &&
      ids.length < maxLayerChain
    ) {
      ids.push(id);
      const json = metadata.readJson(`${id}/json`);
      id =
        isJsonObject(json) && typeof json.parent === "string"
          ? json.parent
          : undefined;
    }
    images.push({
      repoTags,
      layers: ids.reverse().map((layer) => `${layer}/layer.tar`),
    });
  }
  return images;
}

function lastDiffId(
  metadata: CollectedMetadata,
  configPath: string,
): string | undefined {
  const config = metadata.readJson(normalizePath(configPath));
  if (!isJsonObject(config) || !isJsonObject(config.rootfs)) {
    return undefined;
  }
  const diffIds = config.rootfs.diff_ids;
  if (!Array.isArray(diffIds)) {
    return undefined;
  }
  const last: unknown = diffIds[diffIds.length - 1];
  return typeof last === "string" ? last : undefined;
}

function configDigest(configPath: string): string | undefined {
  const path = normalizePath(configPath);
  for (const pattern of configPathPatterns) {
    const match = pattern.exec(path);
    if (match) {
      return `sha256:${match[1]}`;
    }
  }
  return undefined;
}
