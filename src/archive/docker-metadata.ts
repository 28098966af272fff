import { formatReference, type ImageReference } from "../reference.ts";
import {
  encodeJson,
  invalidMetadata,
  isJsonObject,
  parseJsonEntry,
  severalImagesError,
} from "./json-entry.ts";

/**
 * One image of `manifest.json` as `docker save` writes it. Other fields
 * (Parent, LayerSources) are kept as they are when the item is rewritten.
 */
export interface ManifestItem {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
  [field: string]: unknown;
}

/** The legacy `repositories` file: name → tag → top layer id. */
export type Repositories = Record<string, Record<string, string>>;

export const manifestFileName = "manifest.json";
export const repositoriesFileName = "repositories";

/**
 * Parses and checks `manifest.json`: an array of objects whose Config is
 * a string, RepoTags an array of strings or null, Layers an array of
 * strings.
 *
 * @throws ArchiveError for invalid JSON or another shape.
 */
export function parseManifestJson(body: Uint8Array): ManifestItem[] {
  const value = parseJsonEntry(manifestFileName, body);
  if (!Array.isArray(value)) {
    throw invalidMetadata(manifestFileName, "expected an array of images");
  }

  value.forEach((item: unknown, index) => {
    const where = `image ${index + 1}`;
    if (!isJsonObject(item)) {
      throw invalidMetadata(manifestFileName, `${where} is not an object`);
    }
    if (item.Config !== undefined && typeof item.Config !== "string") {
      throw invalidMetadata(
        manifestFileName,
        `${where} has a non-string Config`,
      );
    }
    const tags = item.RepoTags;
    if (tags !== undefined && tags !== null && !isStringArray(tags)) {
      throw invalidMetadata(
        manifestFileName,
        `${where} has RepoTags that are not a list of strings`,
      );
    }
    if (item.Layers !== undefined && !isStringArray(item.Layers)) {
      throw invalidMetadata(
        manifestFileName,
        `${where} has Layers that are not a list of strings`,
      );
    }
  });
  return value as ManifestItem[];
}

/**
 * Returns `manifest.json` with RepoTags replaced by the one reference,
 * whatever it held before.
 *
 * @throws UsageError when the file lists several images.
 */
export function rewriteManifestJson(
  items: ManifestItem[],
  reference: ImageReference,
): Uint8Array {
  if (items.length > 1) {
    throw severalImagesError(items.map(describeManifestItem));
  }
  const rewritten = items.map((item) => ({
    ...item,
    RepoTags: [formatReference(reference)],
  }));
  return encodeJson(rewritten);
}

/** Labels an image by its tags, else by its config file. */
export function describeManifestItem(item: ManifestItem): string {
  const tags = item.RepoTags ?? [];
  if (tags.length > 0) {
    return tags.join(", ");
  }
  return item.Config ? `config ${item.Config}` : "an image without tags";
}

/**
 * Parses and checks `repositories`: an object of objects of strings.
 *
 * @throws ArchiveError for invalid JSON or another shape.
 */
export function parseRepositories(body: Uint8Array): Repositories {
  const value = parseJsonEntry(repositoriesFileName, body);
  if (!isJsonObject(value)) {
    throw invalidMetadata(repositoriesFileName, "expected an object of names");
  }
  for (const [name, tags] of Object.entries(value)) {
    if (!isJsonObject(tags)) {
      throw invalidMetadata(
        repositoriesFileName,
        `the tags of "${name}" are not an object`,
      );
    }
    for (const [tag, layer] of Object.entries(tags)) {
      if (typeof layer !== "string") {
        throw invalidMetadata(
          repositoriesFileName,
          `"${name}:${tag}" does not name a layer id`,
        );
      }
    }
  }
  return value as Repositories;
}

/**
 * Groups the `name:tag` pairs of `repositories` by top layer id, which
 * identifies an image there. Insertion order is kept.
 */
export function repositoriesImages(
  repositories: Repositories,
): Map<string, string[]> {
  const images = new Map<string, string[]>();
  for (const [name, tags] of Object.entries(repositories)) {
    for (const [tag, layer] of Object.entries(tags)) {
      const references = images.get(layer) ?? [];
      references.push(`${name}:${tag}`);
      images.set(layer, references);
    }
  }
  return images;
}

/**
 * Returns `repositories` naming only the reference, pointing at the top
 * layer id the file already had. An empty file is returned unchanged,
 * because it names no layer to point at.
 *
 * @throws UsageError when the file names several top layers.
 */
export function rewriteRepositories(
  repositories: Repositories,
  reference: ImageReference,
): Uint8Array {
  const images = repositoriesImages(repositories);
  if (images.size > 1) {
    throw severalImagesError(
      [...images.values()].map((references) => references.join(", ")),
    );
  }
  const [topLayer] = images.keys();
  if (topLayer === undefined) {
    return encodeJson(repositories);
  }
  return encodeJson({ [reference.name]: { [reference.tag]: topLayer } });
}

function isStringArray(value: unknown): value is string[] {
  return (
    Array.isArray(value) && value.every((item) => typeof item === "string")
  );
}
