/**
 * The runtime's own zstd decoder, `new DecompressionStream("zstd")`, with
 * its errors translated. Bun 1.4.5 has it; Deno does not.
 */
import {
  maxZstdWindowSize,
  readZstdWindowSize,
  zstdCorruptError,
  zstdTrailingDataError,
  zstdTruncatedError,
  zstdWindowTooLargeError,
} from "./zstd-errors.ts";
import {
  createRuntimeDecompressionStream,
  type TranslatedDecoder,
  TranslatingStream,
} from "./translating-stream.ts";

/** Checks whether the runtime constructs a zstd DecompressionStream. */
export function isNativeZstdAvailable(): boolean {
  try {
    createRuntimeDecompressionStream("zstd");
    return true;
  } catch {
    return false;
  }
}

// Enough input to reach the first frame header past a few small skippable
// frames, which is where the window size is read from.
const headCapacity = 1024;

/**
 * Creates a zstd decompressor on the runtime's DecompressionStream. It
 * decodes concatenated frames and skips skippable frames. Truncated,
 * corrupt and trailing input, and frames with a window over 128 MiB, error
 * both sides with an ArchiveError. Throws if the runtime lacks zstd; check
 * `isNativeZstdAvailable` first.
 */
export function createNativeZstdStream(): TransformStream<
  Uint8Array,
  Uint8Array
> {
  const { stream, hooks } = createNativeZstdDecoder();
  return new TranslatingStream(stream, hooks);
}

/**
 * Creates the runtime's zstd decoder and the hooks that translate its
 * errors as `createNativeZstdStream` does. Throws if the runtime lacks
 * zstd.
 */
export function createNativeZstdDecoder(): TranslatedDecoder {
  const head = new Uint8Array(headCapacity);
  let headLength = 0;

  return {
    stream: createRuntimeDecompressionStream("zstd"),
    hooks: {
      observe(chunk) {
        if (headLength === headCapacity) return;
        const count = Math.min(chunk.length, headCapacity - headLength);
        head.set(chunk.subarray(0, count), headLength);
        headLength += count;
      },
      translate(error) {
        return translateNativeZstdError(error, head.subarray(0, headLength));
      },
    },
  };
}

/**
 * Maps the errors of Bun's zstd DecompressionStream, which are TypeErrors
 * (Bun 1.4.5). A cut-off frame gives "unexpected end of file", and bytes
 * after the last frame give code ERR_TRAILING_JUNK_AFTER_STREAM_END. Both
 * corrupt data and a window over 128 MiB give a bare "zstd decode
 * failed", so the window size is read from the first frame header.
 */
function translateNativeZstdError(error: unknown, head: Uint8Array): unknown {
  const message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: unknown } | undefined)?.code;

  if (code === "ERR_TRAILING_JUNK_AFTER_STREAM_END") {
    return zstdTrailingDataError(error);
  }
  if (message === "unexpected end of file") return zstdTruncatedError(error);

  // NOTE: only the first frame's window is checked, so a later frame with
  // a window over 128 MiB is reported as corrupt data.
  const windowSize = readZstdWindowSize(head);
  if (windowSize !== undefined && windowSize > maxZstdWindowSize) {
    return zstdWindowTooLargeError(windowSize, error);
  }
  const detail = message === "zstd decode failed" ? undefined : message;
  return zstdCorruptError(detail, error);
}
