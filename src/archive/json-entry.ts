import { ArchiveError, UsageError } from "../errors.ts";

const textDecoder = new TextDecoder("utf-8", { fatal: false });
const textEncoder = new TextEncoder();

/** Hint for metadata that parses as tar but not as the expected JSON. */
export const metadataHint =
  "The archive's metadata is damaged; re-create the archive with " +
  "docker save, skopeo or podman";

/**
 * Parses the body of a metadata entry as JSON.
 *
 * @throws ArchiveError "Invalid JSON in <name>: <parser message>".
 */
export function parseJsonEntry(name: string, body: Uint8Array): unknown {
  try {
    return JSON.parse(textDecoder.decode(body));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ArchiveError(`Invalid JSON in ${name}: ${reason}`, {
      hint: metadataHint,
      cause: error,
    });
  }
}

/**
 * Serializes JSON with a trailing newline, as Go's json.Encoder writes
 * manifest.json and repositories in `docker save`.
 */
export function encodeJson(value: unknown): Uint8Array {
  return textEncoder.encode(`${JSON.stringify(value)}\n`);
}

/** Creates the ArchiveError for JSON of the wrong shape. */
export function invalidMetadata(name: string, problem: string): ArchiveError {
  return new ArchiveError(`Invalid ${name}: ${problem}`, {
    hint: metadataHint,
  });
}

/**
 * Creates the UsageError for a name given to an archive of several images.
 *
 * @param labels One label per image: its tags, or its config or digest.
 */
export function severalImagesError(labels: string[]): UsageError {
  return new UsageError(
    `The archive contains ${labels.length} images (${labels.join("; ")}), ` +
      `so it cannot be loaded under one name`,
    {
      hint:
        "Load it without a name to keep its own tags, or use an archive " +
        "with a single image",
    },
  );
}

/** Reports whether a value is a plain JSON object. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Splits `name:tag` at the last ':' after the last '/'; a reference
 * without a tag gets "latest".
 */
export function splitNameTag(reference: string): { name: string; tag: string } {
  const slash = reference.lastIndexOf("/");
  const colon = reference.lastIndexOf(":");
  if (colon > slash) {
    return { name: reference.slice(0, colon), tag: reference.slice(colon + 1) };
  }
  return { name: reference, tag: "latest" };
}
