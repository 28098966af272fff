import { ArchiveError } from "../errors.ts";
import {
  formatReference,
  normalizeReference,
  parseReference,
  type ImageReference,
} from "../reference.ts";
import {
  encodeJson,
  invalidMetadata,
  isJsonObject,
  metadataHint,
  parseJsonEntry,
  severalImagesError,
} from "./json-entry.ts";

/** An OCI content descriptor; unknown fields are kept on rewrite. */
export interface OciDescriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
  platform?: OciPlatform;
  [field: string]: unknown;
}

/** The platform of a manifest in an image index. */
export interface OciPlatform {
  os?: string;
  architecture?: string;
  variant?: string;
}

/** An OCI image index, as `index.json` or a nested index blob. */
export interface OciIndex {
  manifests: OciDescriptor[];
  [field: string]: unknown;
}

/** The parts of an image manifest that `manifest.json` needs. */
export interface ResolvedImage {
  /** Digest of the config blob. */
  config: string;
  /** Digests of the layer blobs, bottom first. */
  layers: string[];
}

export const indexFileName = "index.json";

/**
 * Annotation that containerd, and so Docker with the containerd image
 * store, takes an image's name from.
 */
export const imageNameAnnotation = "io.containerd.image.name";
/** OCI annotation naming a manifest; Docker 25+ writes only the tag here. */
export const refNameAnnotation = "org.opencontainers.image.ref.name";

const attestationTypeAnnotation = "vnd.docker.reference.type";
const indexMediaTypes = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);
const maxIndexDepth = 8;

/**
 * Parses and checks an image index: an object with a `manifests` array of
 * descriptors that each have a string digest.
 *
 * @throws ArchiveError naming `name` for invalid JSON or another shape.
 */
export function parseOciIndex(name: string, body: Uint8Array): OciIndex {
  const value = parseJsonEntry(name, body);
  return checkIndex(name, value);
}

function checkIndex(name: string, value: unknown): OciIndex {
  if (!isJsonObject(value) || !Array.isArray(value.manifests)) {
    throw invalidMetadata(name, "expected an object with a manifests list");
  }
  value.manifests.forEach((descriptor: unknown, index) => {
    if (!isJsonObject(descriptor) || typeof descriptor.digest !== "string") {
      throw invalidMetadata(name, `manifest ${index + 1} has no digest`);
    }
  });
  return value as OciIndex;
}

/**
 * Groups the descriptors of `index.json` into images. Descriptors with the
 * same digest are one image under several names (Docker 25+ writes one
 * per tag). Descriptors that all carry a platform are one multi-platform
 * image, so the group of the chosen platform is the only one returned.
 */
export function indexImages(
  index: OciIndex,
  platform: OciPlatform,
): OciDescriptor[][] {
  const groups = new Map<string, OciDescriptor[]>();
  for (const descriptor of index.manifests) {
    const group = groups.get(descriptor.digest) ?? [];
    group.push(descriptor);
    groups.set(descriptor.digest, group);
  }

  const images = [...groups.values()];
  const firsts = images.map((group) => group[0] as OciDescriptor);
  if (images.length > 1 && isPlatformSet(firsts)) {
    const chosen = choosePlatform(firsts, platform, indexFileName);
    return images.filter((group) => group[0]?.digest === chosen.digest);
  }
  return images;
}

/**
 * Returns `index.json` with every image annotated as the reference, the
 * way Docker 25+ writes it: `io.containerd.image.name` holds the
 * normalized reference and `org.opencontainers.image.ref.name` the tag.
 * Descriptors repeated for several tags are merged into one.
 *
 * @throws UsageError when the index lists several images.
 */
export function rewriteIndexJson(
  index: OciIndex,
  reference: ImageReference,
): Uint8Array {
  const groups = new Map<string, OciDescriptor>();
  for (const descriptor of index.manifests) {
    if (!groups.has(descriptor.digest)) {
      groups.set(descriptor.digest, descriptor);
    }
  }
  const descriptors = [...groups.values()];
  if (descriptors.length > 1 && !isPlatformSet(descriptors)) {
    throw severalImagesError(
      descriptors.map((descriptor) => describeDescriptor(descriptor)),
    );
  }

  // NOTE: a multi-platform set gets the name on every platform's
  // descriptor; which one an engine then tags is up to the engine.
  const manifests = descriptors.map((descriptor) => ({
    ...descriptor,
    annotations: {
      ...descriptor.annotations,
      [imageNameAnnotation]: normalizeReference(formatReference(reference)),
      [refNameAnnotation]: reference.tag,
    },
  }));
  return encodeJson({ ...index, manifests });
}

/** Labels an image of an index by its annotated name, else its digest. */
function describeDescriptor(descriptor: OciDescriptor): string {
  const annotations = descriptor.annotations ?? {};
  return (
    annotations[imageNameAnnotation] ??
    annotations[refNameAnnotation] ??
    descriptor.digest
  );
}

/**
 * Returns the references the annotations of an image's descriptors give,
 * and the bare tags that name no repository. `io.containerd.image.name`
 * is preferred. `org.opencontainers.image.ref.name` counts as a reference
 * only when it contains '/' or ':', because Docker 25+ writes a bare tag
 * there (skopeo writes `team/tool:v1`, podman the full reference).
 */
export function annotatedReferences(descriptors: OciDescriptor[]): {
  references: string[];
  bareTags: string[];
} {
  const references: string[] = [];
  const bareTags: string[] = [];
  for (const descriptor of descriptors) {
    const annotations = descriptor.annotations ?? {};
    const imageName = annotations[imageNameAnnotation];
    const refName = annotations[refNameAnnotation];
    if (imageName !== undefined && isValidReference(imageName)) {
      references.push(imageName);
    } else if (refName !== undefined && /[/:]/.test(refName)) {
      if (isValidReference(refName)) {
        references.push(refName);
      }
    } else if (refName !== undefined && refName !== "") {
      bareTags.push(refName);
    }
  }
  return { references: [...new Set(references)], bareTags };
}

function isValidReference(value: string): boolean {
  try {
    parseReference(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Follows a descriptor from `index.json` through nested indexes to one
 * image manifest, choosing the platform in each index.
 *
 * @param readJson Returns the parsed JSON blob for a digest, or undefined
 *   when the archive has no such JSON blob.
 * @throws ArchiveError when a blob is missing or has the wrong shape.
 */
export function resolveImage(
  descriptor: OciDescriptor,
  readJson: (digest: string) => unknown,
  platform: OciPlatform,
): ResolvedImage {
  let current = descriptor;
  for (let depth = 0; depth < maxIndexDepth; depth++) {
    const path = blobPath(current.digest);
    const value = readJson(current.digest);
    if (value === undefined) {
      throw new ArchiveError(
        `Incomplete OCI archive: ${path} (manifest ${current.digest}) ` +
          `is missing or is not JSON`,
        { hint: metadataHint },
      );
    }

    if (isIndex(current, value)) {
      const index = checkIndex(path, value);
      current = choosePlatform(index.manifests, platform, path);
      continue;
    }
    return readImageManifest(path, value);
  }
  throw invalidMetadata(
    indexFileName,
    `image indexes are nested more than ${maxIndexDepth} deep`,
  );
}

function isIndex(descriptor: OciDescriptor, value: unknown): boolean {
  if (descriptor.mediaType && indexMediaTypes.has(descriptor.mediaType)) {
    return true;
  }
  return (
    isJsonObject(value) &&
    Array.isArray(value.manifests) &&
    !Array.isArray(value.layers)
  );
}

function readImageManifest(path: string, value: unknown): ResolvedImage {
  if (!isJsonObject(value) || !isJsonObject(value.config)) {
    throw invalidMetadata(path, "the image manifest has no config");
  }
  const config = value.config.digest;
  if (typeof config !== "string") {
    throw invalidMetadata(path, "the config descriptor has no digest");
  }
  const layers = value.layers;
  if (!Array.isArray(layers)) {
    throw invalidMetadata(path, "the image manifest has no layers list");
  }
  const layerDigests = layers.map((layer: unknown, index) => {
    if (!isJsonObject(layer) || typeof layer.digest !== "string") {
      throw invalidMetadata(path, `layer ${index + 1} has no digest`);
    }
    return layer.digest;
  });
  return { config, layers: layerDigests };
}

/**
 * Picks the manifest for the platform, ignoring attestation manifests
 * (platform unknown/unknown, as BuildKit writes them). The only candidate
 * is taken whatever its platform.
 *
 * @throws ArchiveError when no candidate matches.
 */
function choosePlatform(
  descriptors: OciDescriptor[],
  platform: OciPlatform,
  where: string,
): OciDescriptor {
  const candidates = descriptors.filter(
    (descriptor) =>
      descriptor.annotations?.[attestationTypeAnnotation] === undefined &&
      descriptor.platform?.os !== "unknown",
  );
  if (candidates.length === 1 && candidates[0]) {
    return candidates[0];
  }

  const match = candidates.find((descriptor) => {
    const candidate = descriptor.platform;
    return (
      candidate?.os === platform.os &&
      candidate?.architecture === platform.architecture &&
      (platform.variant === undefined ||
        candidate?.variant === platform.variant)
    );
  });
  if (match) {
    return match;
  }

  const available = candidates.map((descriptor) =>
    formatPlatform(descriptor.platform ?? {}),
  );
  throw new ArchiveError(
    `The archive has no image for ${formatPlatform(platform)} in ${where}; ` +
      `it has ${available.join(", ") || "none"}`,
    { hint: "Use an archive built for this platform" },
  );
}

/**
 * Reports whether descriptors of different digests are one image built
 * for several platforms: each has a platform, no two the same, and they
 * carry at most one name between them. Docker 25+ also gives every image
 * a platform, but there two images differ in name or share a platform.
 */
function isPlatformSet(descriptors: OciDescriptor[]): boolean {
  const platforms = new Set<string>();
  const names = new Set<string>();
  for (const descriptor of descriptors) {
    if (descriptor.platform === undefined) {
      return false;
    }
    platforms.add(formatPlatform(descriptor.platform));
    const annotations = descriptor.annotations ?? {};
    const name =
      annotations[imageNameAnnotation] ?? annotations[refNameAnnotation];
    if (name !== undefined) {
      names.add(name);
    }
  }
  return platforms.size === descriptors.length && names.size <= 1;
}

/** Parses `os/architecture[/variant]`, such as `linux/arm64/v8`. */
export function parsePlatform(value: string): OciPlatform {
  const [os, architecture, variant] = value.split("/");
  return { os, architecture, variant };
}

function formatPlatform(platform: OciPlatform): string {
  return [platform.os, platform.architecture, platform.variant]
    .filter((part) => part !== undefined && part !== "")
    .join("/");
}

/**
 * Returns the path of a blob in an OCI layout, `blobs/<algorithm>/<hex>`.
 *
 * @throws ArchiveError for a digest that is not `<algorithm>:<hex>`.
 */
export function blobPath(digest: string): string {
  const match = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(
    digest,
  );
  if (!match) {
    throw invalidMetadata(indexFileName, `digest "${digest}" is invalid`);
  }
  return `blobs/${match[1]}/${match[2]}`;
}
