import { ArchiveError } from "../errors.ts";

/** Size of a tar block; headers, bodies and padding are counted in it. */
export const blockSize = 512;

/**
 * One 512-byte tar header block, decoded. Numeric fields other than `size`
 * fall back to 0 when unreadable, because only `size` decides where the
 * next header starts.
 */
export interface TarHeader {
  /** The name field, with the ustar prefix joined in front. */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  /** Body size in bytes, from octal or base-256. */
  size: number;
  /** Modification time in seconds since the epoch. */
  mtime: number;
  /** The type flag byte as a character; "\0" for old regular files. */
  typeflag: string;
  linkname: string;
  uname: string;
  gname: string;
  /** Whether an old GNU sparse header is followed by extension blocks. */
  sparseExtended: boolean;
}

const textDecoder = new TextDecoder();

// Byte offsets of the ustar fields (POSIX.1-1988, extended by GNU and star).
const nameField = [0, 100] as const;
const modeField = [100, 8] as const;
const uidField = [108, 8] as const;
const gidField = [116, 8] as const;
const sizeField = [124, 12] as const;
const mtimeField = [136, 12] as const;
const checksumOffset = 148;
const checksumLength = 8;
const typeflagOffset = 156;
const linknameField = [157, 100] as const;
const magicOffset = 257;
const unameField = [265, 32] as const;
const gnameField = [297, 32] as const;
const prefixOffset = 345;
const ustarPrefixLength = 155;
const starPrefixLength = 131;
const starTrailerOffset = 508;
const gnuSparseExtendedOffset = 482;

const space = 0x20;

/**
 * Reports whether a block is all zero bytes, as the two blocks of the
 * end-of-archive marker are.
 */
export function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) {
    if (block[i] !== 0) {
      return false;
    }
  }
  return true;
}

/** Returns how many zero bytes pad a body of `size` bytes to a block. */
export function paddingFor(size: number): number {
  return (blockSize - (size % blockSize)) % blockSize;
}

/**
 * Reports whether entries of this type carry no body whatever their size
 * field contains. Go's archive/tar, which Docker reads archives with, skips no
 * data for links, devices, directories and FIFOs, so neither does this.
 */
export function isHeaderOnlyType(typeflag: string): boolean {
  return headerOnlyTypes.has(typeflag);
}

const headerOnlyTypes = new Set(["1", "2", "3", "4", "5", "6"]);

/** Reports whether the type flag marks a regular file ("0", "\0" or "7"). */
export function isRegularFileType(typeflag: string): boolean {
  return typeflag === "0" || typeflag === "\0" || typeflag === "7";
}

/**
 * Decodes one header block and verifies its checksum. The stored checksum
 * may be the sum of the bytes read as unsigned or as signed chars, because
 * GNU tar and Go's archive/tar accept both.
 *
 * @param block Exactly 512 bytes, not all zero.
 * @param offset Position of the block in the tar stream, for messages.
 * @throws ArchiveError when the checksum or the size field is invalid.
 */
export function parseTarHeader(block: Uint8Array, offset: number): TarHeader {
  verifyChecksum(block, offset);

  const magic = readString(block, magicOffset, 6);
  const hasUstarFields = magic.startsWith("ustar");
  let name = readString(block, ...nameField);
  if (magic === "ustar") {
    // The prefix field exists only in POSIX ustar, because GNU headers keep
    // access and change times there. Star headers end it early.
    const isStar =
      readString(block, starTrailerOffset, 4) === "tar" &&
      block[starTrailerOffset + 3] === 0;
    const prefixLength = isStar ? starPrefixLength : ustarPrefixLength;
    const prefix = readString(block, prefixOffset, prefixLength);
    if (prefix.length > 0) {
      name = `${prefix}/${name}`;
    }
  }

  const size = readNumber(block, ...sizeField);
  if (size === undefined || size < 0) {
    throw new ArchiveError(
      `Invalid tar header at offset ${offset} (entry "${name}"): ` +
        `the size field is not a valid number`,
      { hint: corruptHint },
    );
  }

  const typeflag = String.fromCharCode(block[typeflagOffset] ?? 0);
  return {
    name,
    mode: readNumber(block, ...modeField) ?? 0,
    uid: readNumber(block, ...uidField) ?? 0,
    gid: readNumber(block, ...gidField) ?? 0,
    size,
    mtime: readNumber(block, ...mtimeField) ?? 0,
    typeflag,
    linkname: readString(block, ...linknameField),
    uname: hasUstarFields ? readString(block, ...unameField) : "",
    gname: hasUstarFields ? readString(block, ...gnameField) : "",
    sparseExtended: typeflag === "S" && block[gnuSparseExtendedOffset] !== 0,
  };
}

/** Hint for every error that means the tar stream itself is damaged. */
export const corruptHint =
  "The archive is damaged or not a tar archive; check the source file " +
  "and that it decompresses cleanly";

function verifyChecksum(block: Uint8Array, offset: number): void {
  const stored = parseOctal(
    block.subarray(checksumOffset, checksumOffset + checksumLength),
  );

  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < blockSize; i++) {
    let byte = block[i] ?? 0;
    if (i >= checksumOffset && i < checksumOffset + checksumLength) {
      byte = space;
    }
    unsigned += byte;
    signed += byte < 0x80 ? byte : byte - 0x100;
  }

  if (stored !== unsigned && stored !== signed) {
    const name = readString(block, ...nameField);
    throw new ArchiveError(
      `Invalid tar header checksum at offset ${offset} (entry "${name}")`,
      { hint: corruptHint },
    );
  }
}

/** Reads a NUL-terminated string field as UTF-8. */
function readString(block: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && block[end] !== 0) {
    end++;
  }
  return textDecoder.decode(block.subarray(start, end));
}

/**
 * Reads a numeric field in octal or, when the high bit of the first byte
 * is set, in GNU base-256 (big-endian two's complement). Returns undefined
 * for an invalid field or a value beyond Number.MAX_SAFE_INTEGER.
 */
function readNumber(
  block: Uint8Array,
  start: number,
  length: number,
): number | undefined {
  const field = block.subarray(start, start + length);
  const first = field[0] ?? 0;
  if ((first & 0x80) === 0) {
    return parseOctal(field);
  }

  const negative = (first & 0x40) !== 0;
  const invert = negative ? 0xff : 0;
  let value = 0;
  for (let i = 0; i < field.length; i++) {
    let byte = (field[i] ?? 0) ^ invert;
    if (i === 0) {
      byte &= 0x7f;
    }
    value = value * 256 + byte;
    if (value > Number.MAX_SAFE_INTEGER) {
      return undefined;
    }
  }
  return negative ? -value - 1 : value;
}

/**
 * Parses an octal field the way Go's archive/tar does: leading and
 * trailing spaces and NULs are ignored, the digits end at the first NUL.
 */
function parseOctal(field: Uint8Array): number | undefined {
  let start = 0;
  let end = field.length;
  while (start < end && (field[start] === 0 || field[start] === space)) {
    start++;
  }
  while (end > start && (field[end - 1] === 0 || field[end - 1] === space)) {
    end--;
  }
  const nul = field.subarray(start, end).indexOf(0);
  if (nul !== -1) {
    end = start + nul;
  }

  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = (field[i] ?? 0) - 0x30;
    if (digit < 0 || digit > 7) {
      return undefined;
    }
    value = value * 8 + digit;
  }
  return value > Number.MAX_SAFE_INTEGER ? undefined : value;
}
