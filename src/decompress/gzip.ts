/**
 * gzip decoding on the runtime's `DecompressionStream("gzip")`, with its
 * errors translated.
 */
import { ArchiveError } from "../errors.ts";
import {
  createRuntimeDecompressionStream,
  type TranslatedDecoder,
  TranslatingStream,
} from "./translating-stream.ts";

const checkHint = "Fetch the archive again, or test it with `gzip -t FILE`";

/**
 * Creates a gzip decompressor. Bun's decoder (1.4.5) decodes all members
 * of a multi-member stream (`cat a.gz b.gz`), as gzip -d and docker load
 * do. Truncated or corrupt input, and trailing bytes after the last
 * member, error both sides with an ArchiveError. Unlike gzip -d, trailing
 * zero bytes are not ignored.
 */
export function createGzipDecompressStream(): TransformStream<
  Uint8Array,
  Uint8Array
> {
  const { stream, hooks } = createGzipDecoder();
  return new TranslatingStream(stream, hooks);
}

/**
 * Creates the runtime's gzip decoder and the hook that translates its
 * errors as `createGzipDecompressStream` does.
 */
export function createGzipDecoder(): TranslatedDecoder {
  // TODO: Deno's gzip DecompressionStream is untested here, for multiple
  // members and for its error messages.
  return {
    stream: createRuntimeDecompressionStream("gzip"),
    hooks: { translate: translateGzipError },
  };
}

/**
 * Maps the errors of Bun's gzip DecompressionStream, TypeErrors with only a
 * message. zlib treats bytes after a member as the header of the next one,
 * so trailing bytes come out as one of the two errors below: "unexpected
 * end of file" when they are shorter than a gzip header, "inflate failed"
 * otherwise.
 */
function translateGzipError(error: unknown): ArchiveError {
  const message = error instanceof Error ? error.message : String(error);

  if (message === "unexpected end of file") {
    return new ArchiveError(
      "The gzip stream is truncated: the input ended inside a member",
      {
        hint:
          "The download may be incomplete, or a few bytes were appended. " +
          checkHint,
        cause: error,
      },
    );
  }

  const detail = message === "inflate failed" ? "" : ` (${message})`;
  return new ArchiveError(
    "The gzip data is corrupt or has trailing bytes after its last member" +
      detail,
    { hint: `The archive is damaged. ${checkHint}`, cause: error },
  );
}
