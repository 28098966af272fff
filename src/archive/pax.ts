import { ArchiveError } from "../errors.ts";
import { corruptHint, type TarHeader } from "./tar-header.ts";

/**
 * Header overrides from the PAX `x` records and GNU `L`/`K` entries
 * before an entry. Later records of the same key replace earlier ones.
 */
export interface PendingOverrides {
  pax: Map<string, string>;
  gnuLongName?: string;
  gnuLongLink?: string;
}

/** Type flag of a PAX extended header that applies to the next entry. */
const paxExtendedType = "x";
/** Type flag of a GNU long-name entry. */
const gnuLongNameType = "L";
/** Type flag of a GNU long-link-name entry. */
const gnuLongLinkType = "K";

/**
 * Largest body of an `x`, `L` or `K` entry, in bytes. Go's archive/tar
 * rejects larger ones (maxSpecialFileSize in reader.go), so Docker would
 * fail on them anyway.
 */
export const maxPrefixEntryBytes = 1024 * 1024;

const textDecoder = new TextDecoder();
const newline = 0x0a;
const space = 0x20;
const equals = 0x3d;

/** Reports whether an entry of this type describes the entry after it. */
export function isPrefixType(typeflag: string): boolean {
  return (
    typeflag === paxExtendedType ||
    typeflag === gnuLongNameType ||
    typeflag === gnuLongLinkType
  );
}

/**
 * Adds the body of an `x`, `L` or `K` entry to the overrides for the next
 * entry.
 *
 * @throws ArchiveError when a PAX record is malformed.
 */
export function addPrefixEntry(
  overrides: PendingOverrides,
  typeflag: string,
  body: Uint8Array,
  offset: number,
): void {
  if (typeflag === gnuLongNameType) {
    overrides.gnuLongName = readUntilNul(body);
    return;
  }
  if (typeflag === gnuLongLinkType) {
    overrides.gnuLongLink = readUntilNul(body);
    return;
  }
  for (const [key, value] of parsePaxRecords(body, offset)) {
    overrides.pax.set(key, value);
  }
}

/**
 * Parses PAX records, each `"<length> <key>=<value>\n"` where the length
 * counts the whole record in bytes.
 *
 * @throws ArchiveError naming the offset of the extended header.
 */
export function parsePaxRecords(
  body: Uint8Array,
  offset: number,
): Map<string, string> {
  const records = new Map<string, string>();
  const fail = (problem: string): never => {
    throw new ArchiveError(
      `Invalid PAX extended header at offset ${offset}: ${problem}`,
      { hint: corruptHint },
    );
  };

  let position = 0;
  while (position < body.length) {
    const spaceAt = body.indexOf(space, position);
    if (spaceAt === -1) {
      fail("a record has no length");
    }
    const lengthText = textDecoder.decode(body.subarray(position, spaceAt));
    const length = /^\d+$/.test(lengthText) ? Number(lengthText) : NaN;
    const end = position + length;
    if (!(length > spaceAt - position + 1) || end > body.length) {
      fail(`record length "${lengthText}" is invalid`);
    }
    if (body[end - 1] !== newline) {
      fail("a record does not end with a newline");
    }

    const record = body.subarray(spaceAt + 1, end - 1);
    const equalsAt = record.indexOf(equals);
    if (equalsAt <= 0) {
      fail("a record has no key");
    }
    const key = textDecoder.decode(record.subarray(0, equalsAt));
    const value = textDecoder.decode(record.subarray(equalsAt + 1));
    records.set(key, value);
    position = end;
  }
  return records;
}

/**
 * Applies the overrides to a header in the order Go's archive/tar does:
 * PAX records first (an empty value keeps the header's own), then GNU
 * long names.
 *
 * @throws ArchiveError when a PAX `size` is not a decimal integer.
 */
export function applyOverrides(
  header: TarHeader,
  overrides: PendingOverrides,
  offset: number,
): TarHeader {
  const result = { ...header };
  for (const [key, value] of overrides.pax) {
    if (value === "") {
      continue;
    }
    switch (key) {
      case "path":
        result.name = value;
        break;
      case "linkpath":
        result.linkname = value;
        break;
      case "size":
        result.size = parseDecimal(value, "size", offset);
        break;
      case "uid":
        result.uid = Number.parseInt(value, 10) || 0;
        break;
      case "gid":
        result.gid = Number.parseInt(value, 10) || 0;
        break;
      case "uname":
        result.uname = value;
        break;
      case "gname":
        result.gname = value;
        break;
      case "mtime":
        result.mtime = Math.floor(Number.parseFloat(value)) || 0;
        break;
    }
  }
  if (overrides.gnuLongName !== undefined) {
    result.name = overrides.gnuLongName;
  }
  if (overrides.gnuLongLink !== undefined) {
    result.linkname = overrides.gnuLongLink;
  }
  return result;
}

function parseDecimal(value: string, key: string, offset: number): number {
  const number = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number)) {
    throw new ArchiveError(
      `Invalid PAX extended header at offset ${offset}: ` +
        `${key} "${value}" is not a valid number`,
      { hint: corruptHint },
    );
  }
  return number;
}

function readUntilNul(body: Uint8Array): string {
  const nul = body.indexOf(0);
  return textDecoder.decode(nul === -1 ? body : body.subarray(0, nul));
}
