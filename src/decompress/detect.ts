/**
 * Format sniffing for the start of an archive stream. Everything is
 * decided from magic bytes, because file names and Content-Type headers
 * are often wrong for image archives.
 */

/** The result of sniffing the first bytes of the input. */
export type DetectedFormat =
  | { readonly format: "zstd" | "gzip" | "tar" | "html" | "unknown" }
  | {
      readonly format: "unsupported";
      /** The compression format by its usual name, such as "xz". */
      readonly name: "xz" | "bzip2" | "lz4";
    };

/**
 * Number of leading bytes that `detectFormat` needs to decide on every
 * format: a whole tar header block, because a v7 tar is recognised only by
 * its header checksum. Shorter input is detected on what there is.
 */
export const detectHeadSize = 512;

const ZSTD_MAGIC = 0xfd2fb528;
const ZSTD_SKIPPABLE_MASK = 0xfffffff0;
const ZSTD_SKIPPABLE_START = 0x184d2a50;
const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
const LZ4_FRAME_MAGIC = 0x184d2204;
const LZ4_LEGACY_MAGIC = 0x184c2102;

/**
 * Detects the archive format from the first bytes of the input, ideally
 * `detectHeadSize` of them. Binary magic numbers are checked before the
 * ustar magic. Printable ones such as bzip2's "BZh" come after it, so a
 * tar whose first member is named "BZh1..." is still a tar.
 */
export function detectFormat(head: Uint8Array): DetectedFormat {
  const magic = head.length >= 4 ? readUint32LE(head, 0) : undefined;

  if (magic === ZSTD_MAGIC) return { format: "zstd" };
  if (
    magic !== undefined &&
    (magic & ZSTD_SKIPPABLE_MASK) >>> 0 === ZSTD_SKIPPABLE_START
  ) {
    return { format: "zstd" };
  }
  if (head[0] === 0x1f && head[1] === 0x8b) return { format: "gzip" };
  if (startsWith(head, XZ_MAGIC)) {
    return { format: "unsupported", name: "xz" };
  }
  if (magic === LZ4_FRAME_MAGIC || magic === LZ4_LEGACY_MAGIC) {
    return { format: "unsupported", name: "lz4" };
  }

  if (hasUstarMagic(head)) return { format: "tar" };
  if (isBzip2(head)) return { format: "unsupported", name: "bzip2" };
  if (isHtml(head)) return { format: "html" };
  if (hasValidTarChecksum(head)) return { format: "tar" };

  return { format: "unknown" };
}

function readUint32LE(bytes: Uint8Array, offset: number): number {
  const value =
    bytes[offset]! |
    (bytes[offset + 1]! << 8) |
    (bytes[offset + 2]! << 16) |
    (bytes[offset + 3]! << 24);
  return value >>> 0;
}

function startsWith(
  bytes: Uint8Array,
  prefix: readonly number[],
  offset = 0,
): boolean {
  if (bytes.length < offset + prefix.length) return false;
  return prefix.every((byte, i) => bytes[offset + i] === byte);
}

// POSIX ustar writes "ustar\0" + "00"; GNU tar writes "ustar  \0".
const USTAR_POSIX = [...ascii("ustar"), 0];
const USTAR_GNU = [...ascii("ustar  "), 0];

function hasUstarMagic(head: Uint8Array): boolean {
  return startsWith(head, USTAR_POSIX, 257) || startsWith(head, USTAR_GNU, 257);
}

// "BZh" and a block size digit 1-9, as written by bzip2 and lbzip2.
function isBzip2(head: Uint8Array): boolean {
  if (!startsWith(head, ascii("BZh"))) return false;
  const level = head[3];
  return level !== undefined && level >= 0x31 && level <= 0x39;
}

// An error page from a web server, a login page or a CDN interstitial.
function isHtml(head: Uint8Array): boolean {
  let start = 0;
  if (startsWith(head, [0xef, 0xbb, 0xbf])) start = 3;
  while (start < head.length && isAsciiWhitespace(head[start]!)) start++;

  const text = new TextDecoder("latin1")
    .decode(head.subarray(start, start + 14))
    .toLowerCase();
  return text.startsWith("<!doctype html") || text.startsWith("<html");
}

function isAsciiWhitespace(byte: number): boolean {
  return (
    byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d ||
    byte === 0x0c
  );
}

/**
 * Checks a pre-POSIX (v7) tar header, which has no magic: the checksum
 * field at offset 148 holds, in octal, the sum of all 512 header bytes
 * with the field itself counted as spaces. Some old tars summed signed
 * bytes, so both sums are accepted.
 */
function hasValidTarChecksum(head: Uint8Array): boolean {
  if (head.length < 512) return false;

  const stored = parseOctal(head.subarray(148, 156));
  if (stored === undefined) return false;

  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : head[i]!;
    unsigned += byte;
    signed += byte >= 0x80 ? byte - 0x100 : byte;
  }
  return stored === unsigned || stored === signed;
}

// Octal digits, optionally padded with leading spaces and ended by NUL or
// space. An all-blank field is not a number, so a zero block never passes.
function parseOctal(field: Uint8Array): number | undefined {
  let i = 0;
  while (i < field.length && field[i] === 0x20) i++;

  let value = 0;
  let digits = 0;
  for (; i < field.length; i++) {
    const byte = field[i]!;
    if (byte < 0x30 || byte > 0x37) break;
    value = value * 8 + (byte - 0x30);
    digits++;
  }

  const terminator = field[i];
  const terminated =
    i === field.length || terminator === 0 || terminator === 0x20;
  return digits > 0 && terminated ? value : undefined;
}

function ascii(text: string): number[] {
  return Array.from(text, (char) => char.charCodeAt(0));
}
