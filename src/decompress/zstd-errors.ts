/**
 * The zstd failures that both zstd decoders report, as ArchiveErrors with
 * the same wording, and the frame header facts needed to tell them apart.
 */
import { ArchiveError } from "../errors.ts";

/**
 * Names of zstd's `ZSTD_ErrorCode` values, from `lib/zstd_errors.h` of
 * zstd 1.5.6. Values below 100 are stable since zstd 1.3.1.
 */
export const zstdErrorNames: Readonly<Record<number, string>> = {
  1: "GENERIC",
  10: "prefix_unknown",
  12: "version_unsupported",
  14: "frameParameter_unsupported",
  16: "frameParameter_windowTooLarge",
  20: "corruption_detected",
  22: "checksum_wrong",
  24: "literals_headerWrong",
  30: "dictionary_corrupted",
  32: "dictionary_wrong",
  34: "dictionaryCreation_failed",
  40: "parameter_unsupported",
  41: "parameter_combination_unsupported",
  42: "parameter_outOfBound",
  44: "tableLog_tooLarge",
  46: "maxSymbolValue_tooLarge",
  48: "maxSymbolValue_tooSmall",
  50: "stabilityCondition_notRespected",
  60: "stage_wrong",
  62: "init_missing",
  64: "memory_allocation",
  66: "workSpace_tooSmall",
  70: "dstSize_tooSmall",
  72: "srcSize_wrong",
  74: "dstBuffer_null",
  80: "noForwardProgress_destFull",
  82: "noForwardProgress_inputEmpty",
  100: "frameIndex_tooLarge",
  102: "seekableIO",
  104: "dstBuffer_wrong",
  105: "srcBuffer_wrong",
  106: "sequenceProducer_failed",
  107: "externalSequences_invalid",
};

/**
 * Largest window that either decoder accepts: 2^27 bytes, zstd's default
 * `ZSTD_WINDOWLOG_LIMIT_DEFAULT`, which Bun's decoder and the WASM build
 * both keep. Frames written with `zstd --long=28` or more exceed it.
 */
export const maxZstdWindowSize = 2 ** 27;

const checkHint = "Fetch the archive again, or test it with `zstd -t FILE`";

/** Creates the error for input that ends in the middle of a frame. */
export function zstdTruncatedError(cause?: unknown): ArchiveError {
  return new ArchiveError(
    "The zstd stream is truncated: the input ended inside a frame",
    { hint: `The download may be incomplete. ${checkHint}`, cause },
  );
}

/** Creates the error for bytes after the last frame that are no frame. */
export function zstdTrailingDataError(cause?: unknown): ArchiveError {
  return new ArchiveError(
    "The zstd stream has trailing data after its last frame",
    {
      hint:
        "Something was appended to the archive or it is damaged. " +
        checkHint,
      cause,
    },
  );
}

/** Creates the error for a window over `maxZstdWindowSize`. */
export function zstdWindowTooLargeError(
  windowSize: number | undefined,
  cause?: unknown,
): ArchiveError {
  const size =
    windowSize === undefined
      ? "more than 128 MiB"
      : `${formatMiB(windowSize)} (over the 128 MiB limit)`;
  return new ArchiveError(
    `The zstd frame needs a window of ${size}, ` +
      "as written by zstd --long=28 or higher",
    {
      hint:
        "Neither zstd decoder of imgload accepts it. Recompress with " +
        "`zstd --long=27` or less, or decompress first: " +
        "`zstd -dc --long=31 FILE | imgload load - NAME`",
      cause,
    },
  );
}

/**
 * Creates the error for corrupt zstd data, with zstd's error name as
 * `detail` when the decoder reports one.
 */
export function zstdCorruptError(
  detail: string | undefined,
  cause?: unknown,
): ArchiveError {
  const suffix = detail ? ` (${detail})` : "";
  return new ArchiveError(`The zstd data is corrupt${suffix}`, {
    hint: `The archive is damaged. ${checkHint}`,
    cause,
  });
}

function formatMiB(bytes: number): string {
  const mib = bytes / 2 ** 20;
  return mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

/**
 * Reads the window size of the first zstd frame in `bytes`, skipping
 * skippable frames as pzstd writes them. Returns undefined when `bytes`
 * ends before the frame header or does not start with zstd frames.
 */
export function readZstdWindowSize(bytes: Uint8Array): number | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let offset = 0;

  while (offset + 8 <= bytes.length) {
    const magic = view.getUint32(offset, true);
    if ((magic & 0xfffffff0) >>> 0 !== 0x184d2a50) break;
    offset += 8 + view.getUint32(offset + 4, true);
  }
  if (offset + 6 > bytes.length) return undefined;
  if (view.getUint32(offset, true) !== 0xfd2fb528) return undefined;

  return readFrameWindowSize(bytes, offset + 4);
}

// Frame_Header_Descriptor and Window_Descriptor, as zstd's
// zstd_compression_format.md lays them out. A single-segment frame has no
// window descriptor, so its window is its content size.
function readFrameWindowSize(
  bytes: Uint8Array,
  offset: number,
): number | undefined {
  const descriptor = bytes[offset]!;
  const singleSegment = (descriptor & 0x20) !== 0;

  if (singleSegment) {
    const sizeFlag = descriptor >> 6;
    const dictIdBytes = [0, 1, 2, 4][descriptor & 3]!;
    const sizeBytes = [1, 2, 4, 8][sizeFlag]!;
    const start = offset + 1 + dictIdBytes;
    if (start + sizeBytes > bytes.length) return undefined;

    let size = 0;
    for (let i = sizeBytes - 1; i >= 0; i--) {
      size = size * 256 + bytes[start + i]!;
    }
    return sizeBytes === 2 ? size + 256 : size;
  }

  const windowDescriptor = bytes[offset + 1]!;
  const windowLog = 10 + (windowDescriptor >> 3);
  const windowBase = 2 ** windowLog;
  return windowBase + (windowBase / 8) * (windowDescriptor & 7);
}
