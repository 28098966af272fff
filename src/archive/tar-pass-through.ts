import { ArchiveError } from "../errors.ts";
import {
  addPrefixEntry,
  applyOverrides,
  isPrefixType,
  maxPrefixEntryBytes,
  type PendingOverrides,
} from "./pax.ts";
import {
  blockSize,
  corruptHint,
  isHeaderOnlyType,
  isZeroBlock,
  paddingFor,
  parseTarHeader,
  type TarHeader,
} from "./tar-header.ts";

/** One tar member, with its header resolved. */
export interface TarEntryInfo {
  /** The header with PAX and GNU long-name overrides applied. */
  header: TarHeader;
  /** The name without `./` segments, doubled or leading `/`. */
  path: string;
  /** Offset of the entry's first block, its first `x`/`L`/`K` if any. */
  offset: number;
}

/**
 * Action for an entry's bytes:
 * - `pass` forwards them.
 * - `copy` forwards them and hands a copy of the body to `copied`.
 * - `copy-if` is `copy` when `accept` returns true for the first body
 *   byte, else `pass`.
 * - `replace` withholds the entry and emits what `replace` returns.
 */
export type EntryAction =
  | { kind: "pass" }
  | { kind: "copy" }
  | { kind: "copy-if"; accept: (firstByte: number) => boolean }
  | { kind: "replace" };

/** Callbacks that make the image-specific decisions for TarPassThrough. */
export interface TarEntryHandler {
  /** Chooses the action for an entry from its header. */
  entry(info: TarEntryInfo): EntryAction;
  /** Receives the body of an entry whose action was `copy`. */
  copied(info: TarEntryInfo, body: Uint8Array): void;
  /** Returns the tar bytes (headers, body, padding) to emit instead. */
  replace(info: TarEntryInfo, body: Uint8Array): Promise<Uint8Array>;
  /** Returns tar entries to emit before the end-of-archive marker. */
  end(): Promise<Uint8Array | undefined>;
}

type Mode = "pass" | "copy" | "probe" | "replace" | "prefix";

const sparseExtendedFlagOffset = 504;

interface CurrentEntry {
  info: TarEntryInfo;
  mode: Mode;
  accept?: (firstByte: number) => boolean;
  dataLeft: number;
  paddingLeft: number;
  /** Old GNU sparse extension blocks still to read before the body. */
  sparseBlocks: boolean;
  copies: Uint8Array[];
}

/**
 * Walks a tar stream header by header and forwards its bytes as subarrays
 * of the incoming chunks. Bodies are never copied or split, except the
 * small ones a handler chooses to copy or replace. A header that straddles
 * two chunks is assembled in a 512-byte carry buffer.
 *
 * Framing follows Go's archive/tar, which Docker reads archives with.
 * PAX `x` records and GNU long names apply to the next entry. PAX `g`
 * records apply to nothing, because Go returns them as an entry of their
 * own and Docker ignores it. Link, device, directory and FIFO entries
 * have no body. An end-of-archive marker of two zero blocks is required.
 * Bytes after the marker are forwarded unchanged and not parsed, because
 * Go's reader, and so Docker, reads no entries past the marker.
 */
export class TarPassThrough {
  readonly #handler: TarEntryHandler;

  #state: "header" | "body" | "trailer" = "header";
  #carry = new Uint8Array(blockSize);
  #carryLength = 0;
  #carryOffset = 0;
  #zeroBlocks = 0;
  #entry: CurrentEntry | undefined;

  // The `x`/`L`/`K` entries before the current one, held back until it
  // is known whether that entry is forwarded or replaced.
  #pendingBytes: Uint8Array[] = [];
  #pendingOverrides: PendingOverrides = { pax: new Map() };
  #pendingOffset: number | undefined;

  #chunk: Uint8Array = new Uint8Array(0);
  #chunkOffset = 0;
  #position = 0;
  #emitStart = 0;
  #emit: (bytes: Uint8Array) => void = () => {};

  #trailingNonZero = false;

  constructor(handler: TarEntryHandler) {
    this.#handler = handler;
  }

  /** Whether non-zero bytes followed the end-of-archive marker. */
  get trailingNonZero(): boolean {
    return this.#trailingNonZero;
  }

  /**
   * Consumes one chunk and emits the bytes to forward, in order.
   *
   * @throws ArchiveError for a damaged tar stream, or what the handler throws.
   */
  async write(
    chunk: Uint8Array,
    emit: (bytes: Uint8Array) => void,
  ): Promise<void> {
    this.#chunk = chunk;
    this.#position = 0;
    this.#emitStart = 0;
    this.#emit = emit;

    while (this.#position < chunk.length) {
      if (this.#state === "header") {
        await this.#readHeader();
      } else if (this.#state === "body") {
        await this.#readBody();
      } else {
        this.#readTrailer();
      }
    }

    this.#flushTo(chunk.length);
    this.#chunkOffset += chunk.length;
  }

  /**
   * Checks that the stream ended after the end-of-archive marker.
   *
   * @throws ArchiveError "truncated" (or "empty") otherwise.
   */
  finish(): void {
    if (this.#state === "trailer") {
      return;
    }
    const total = this.#chunkOffset;
    if (total === 0) {
      throw new ArchiveError(
        "The archive is empty: the tar stream has no bytes",
        {
          hint: "Check that the source is a non-empty image archive",
        },
      );
    }

    let where: string;
    const entry = this.#entry;
    if (this.#state === "body" && entry) {
      const missing = entry.dataLeft + entry.paddingLeft;
      where =
        `inside entry "${entry.info.header.name}" at offset ` +
        `${entry.info.offset}, ${missing} bytes short`;
    } else if (this.#carryLength > 0) {
      where = `inside a tar header at offset ${this.#carryOffset}`;
    } else {
      where = `at offset ${total} before the end-of-archive marker`;
    }
    throw new ArchiveError(`Truncated archive: the tar stream ended ${where}`, {
      hint:
        "The download or decompression stopped early, or the archive was " +
        "cut short; fetch it again or re-create it",
    });
  }

  /**
   * Takes the next 512-byte block, from the chunk when it holds one whole,
   * else through the carry buffer. Returns undefined while incomplete.
   */
  #readBlock():
    { block: Uint8Array; offset: number; inChunk: boolean } | undefined {
    const chunk = this.#chunk;
    const available = chunk.length - this.#position;
    if (this.#carryLength === 0 && available >= blockSize) {
      const start = this.#position;
      this.#position += blockSize;
      return {
        block: chunk.subarray(start, start + blockSize),
        offset: this.#chunkOffset + start,
        inChunk: true,
      };
    }

    if (this.#carryLength === 0) {
      this.#carryOffset = this.#chunkOffset + this.#position;
    }
    const take = Math.min(blockSize - this.#carryLength, available);
    this.#flushTo(this.#position);
    this.#carry.set(
      chunk.subarray(this.#position, this.#position + take),
      this.#carryLength,
    );
    this.#carryLength += take;
    this.#position += take;
    this.#emitStart = this.#position;
    if (this.#carryLength < blockSize) {
      return undefined;
    }

    const block = this.#carry;
    // A fresh carry, because the full one may be emitted as it is.
    this.#carry = new Uint8Array(blockSize);
    this.#carryLength = 0;
    return { block, offset: this.#carryOffset, inChunk: false };
  }

  async #readHeader(): Promise<void> {
    const next = this.#readBlock();
    if (!next) {
      return;
    }
    const { block, offset, inChunk } = next;

    if (isZeroBlock(block)) {
      await this.#readZeroBlock(block, inChunk);
      return;
    }
    if (this.#zeroBlocks > 0) {
      throw new ArchiveError(
        `Invalid tar archive: a zero block at offset ${offset - blockSize} ` +
          `is followed by a header instead of the second end-of-archive block`,
        { hint: corruptHint },
      );
    }

    const raw = parseTarHeader(block, offset);
    if (isPrefixType(raw.typeflag)) {
      await this.#startPrefixEntry(raw, block, offset, inChunk);
      return;
    }

    const header = applyOverrides(raw, this.#pendingOverrides, offset);
    // Old archives mark directories by a trailing "/" on a regular entry,
    // and Go's archive/tar then reads no body for them.
    if (header.typeflag === "\0" && header.name.endsWith("/")) {
      header.typeflag = "5";
    }
    const info: TarEntryInfo = {
      header,
      path: normalizePath(header.name),
      offset: this.#pendingOffset ?? offset,
    };
    const action = this.#handler.entry(info);

    if (action.kind === "replace") {
      this.#flushTo(offset - this.#chunkOffset);
      this.#emitStart = this.#position;
    } else {
      this.#releasePending(inChunk ? offset - this.#chunkOffset : undefined);
      if (!inChunk) {
        this.#emit(block);
      }
    }
    this.#pendingBytes = [];
    this.#pendingOverrides = { pax: new Map() };
    this.#pendingOffset = undefined;

    const dataSize = isHeaderOnlyType(header.typeflag) ? 0 : header.size;
    await this.#startEntry({
      info,
      mode: modeFor(action),
      accept: action.kind === "copy-if" ? action.accept : undefined,
      dataLeft: dataSize,
      paddingLeft: paddingFor(dataSize),
      sparseBlocks: header.sparseExtended,
      copies: [],
    });
  }

  async #readZeroBlock(block: Uint8Array, inChunk: boolean): Promise<void> {
    // Zero blocks are held back: the handler may append entries before
    // the end-of-archive marker.
    if (inChunk) {
      this.#flushTo(this.#position - blockSize);
      this.#emitStart = this.#position;
    }
    this.#zeroBlocks++;
    if (this.#zeroBlocks < 2) {
      return;
    }

    if (this.#pendingBytes.length > 0) {
      throw new ArchiveError(
        `Invalid tar archive: the extended header at offset ` +
          `${this.#pendingOffset} is followed by the end of the archive`,
        { hint: corruptHint },
      );
    }
    const appended = await this.#handler.end();
    if (appended && appended.length > 0) {
      this.#emit(appended);
    }
    this.#emit(new Uint8Array(blockSize * 2));
    this.#state = "trailer";
  }

  async #startPrefixEntry(
    raw: TarHeader,
    block: Uint8Array,
    offset: number,
    inChunk: boolean,
  ): Promise<void> {
    if (raw.size > maxPrefixEntryBytes) {
      throw new ArchiveError(
        `Invalid tar archive: the extended header "${raw.name}" at offset ` +
          `${offset} is ${raw.size} bytes, more than the ` +
          `${maxPrefixEntryBytes}-byte limit of Docker's tar reader`,
        { hint: corruptHint },
      );
    }
    if (inChunk) {
      this.#flushTo(offset - this.#chunkOffset);
      this.#emitStart = this.#position;
    }
    this.#pendingOffset ??= offset;
    this.#pendingBytes.push(inChunk ? block.slice() : block);
    await this.#startEntry({
      info: { header: raw, path: "", offset },
      mode: "prefix",
      dataLeft: raw.size,
      paddingLeft: paddingFor(raw.size),
      sparseBlocks: false,
      copies: [],
    });
  }

  async #startEntry(entry: CurrentEntry): Promise<void> {
    this.#entry = entry;
    this.#state = "body";
    if (isComplete(entry)) {
      await this.#completeEntry(entry);
    }
  }

  async #readBody(): Promise<void> {
    const entry = this.#entry;
    if (!entry) {
      throw new Error("tar body state without an entry");
    }
    const chunk = this.#chunk;
    const start = this.#position;

    if (entry.sparseBlocks) {
      await this.#readSparseExtension(entry);
      return;
    }

    const available = chunk.length - start;
    const take = Math.min(entry.dataLeft + entry.paddingLeft, available);
    const dataTake = Math.min(entry.dataLeft, take);

    if (entry.mode === "probe" && dataTake > 0) {
      const accepted = entry.accept?.(chunk[start] ?? 0) ?? false;
      entry.mode = accepted ? "copy" : "pass";
    }
    if (entry.mode === "copy" || entry.mode === "replace") {
      if (dataTake > 0) {
        entry.copies.push(chunk.slice(start, start + dataTake));
      }
    }
    if (entry.mode === "prefix") {
      if (dataTake > 0) {
        entry.copies.push(chunk.slice(start, start + dataTake));
      }
      this.#pendingBytes.push(chunk.slice(start, start + take));
    }
    if (entry.mode === "replace" || entry.mode === "prefix") {
      this.#flushTo(start);
      this.#emitStart = start + take;
    }

    this.#position = start + take;
    entry.dataLeft -= dataTake;
    entry.paddingLeft -= take - dataTake;
    if (isComplete(entry)) {
      await this.#completeEntry(entry);
    }
  }

  /**
   * Forwards the extension blocks of an old GNU sparse header, which come
   * before its body and are not counted in its size. Byte 504 of each is
   * non-zero when another follows.
   */
  async #readSparseExtension(entry: CurrentEntry): Promise<void> {
    const next = this.#readBlock();
    if (!next) {
      return;
    }
    entry.sparseBlocks = next.block[sparseExtendedFlagOffset] !== 0;
    if (entry.mode === "replace") {
      this.#flushTo(this.#position - (next.inChunk ? blockSize : 0));
      this.#emitStart = this.#position;
    } else if (!next.inChunk) {
      this.#emit(next.block);
    }
    if (isComplete(entry)) {
      await this.#completeEntry(entry);
    }
  }

  async #completeEntry(entry: CurrentEntry): Promise<void> {
    this.#state = "header";
    this.#entry = undefined;
    const body = concat(entry.copies);

    switch (entry.mode) {
      case "prefix":
        addPrefixEntry(
          this.#pendingOverrides,
          entry.info.header.typeflag,
          body,
          entry.info.offset,
        );
        break;
      case "copy":
        this.#handler.copied(entry.info, body);
        break;
      case "replace": {
        this.#flushTo(this.#position);
        const replacement = await this.#handler.replace(entry.info, body);
        this.#emit(replacement);
        break;
      }
    }
  }

  #readTrailer(): void {
    const chunk = this.#chunk;
    if (!this.#trailingNonZero) {
      this.#trailingNonZero = !isZeroBlock(chunk.subarray(this.#position));
    }
    this.#position = chunk.length;
  }

  /** Emits the chunk bytes before `end`, then the pending prefix entries. */
  #releasePending(end: number | undefined): void {
    if (this.#pendingBytes.length === 0) {
      return;
    }
    this.#flushTo(end ?? this.#emitStart);
    for (const bytes of this.#pendingBytes) {
      this.#emit(bytes);
    }
  }

  /** Emits the chunk bytes from the last emitted one up to `end`. */
  #flushTo(end: number): void {
    if (end > this.#emitStart) {
      this.#emit(this.#chunk.subarray(this.#emitStart, end));
    }
    this.#emitStart = Math.max(this.#emitStart, end);
  }
}

/**
 * Normalizes a member name for recognising metadata: `.` segments, empty
 * segments and a leading `/` are dropped, so `./manifest.json` becomes
 * `manifest.json`.
 */
export function normalizePath(name: string): string {
  return name
    .split("/")
    .filter((segment) => segment !== "" && segment !== ".")
    .join("/");
}

function modeFor(action: EntryAction): Mode {
  switch (action.kind) {
    case "copy-if":
      return "probe";
    default:
      return action.kind;
  }
}

function isComplete(entry: CurrentEntry): boolean {
  return entry.dataLeft + entry.paddingLeft === 0 && !entry.sparseBlocks;
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1 && parts[0]) {
    return parts[0];
  }
  let length = 0;
  for (const part of parts) {
    length += part.length;
  }
  const result = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}
