/**
 * A zstd decoder in WebAssembly for runtimes without a native one, and
 * for `--zstd-decoder wasm`. It runs the zstd build that the zstddec
 * package ships, driving `ZSTD_decompressStream` directly so that output
 * is produced only as fast as the reader takes it.
 */
import { ZSTDDecoder } from "zstddec/stream";

import { ArchiveError } from "../errors.ts";
import {
  zstdCorruptError,
  zstdErrorNames,
  zstdTrailingDataError,
  zstdTruncatedError,
  zstdWindowTooLargeError,
} from "./zstd-errors.ts";

/** Size of the output chunks, except the last one of the stream. */
export const wasmOutputChunkSize = 1 << 19;

// Input chunks larger than this are copied into WASM memory in slices.
const inputBufferSize = 1 << 17;

/**
 * Decompresses a zstd stream: one or more frames, with skippable frames
 * (as pzstd writes them) skipped. Truncated, corrupt or trailing input
 * errors both sides with an ArchiveError, which names zstd's error code
 * when zstd reports one.
 *
 * It is a readable/writable pair rather than a TransformStream subclass,
 * because a transformer cannot wait for the reader: one 64 KiB chunk of a
 * zstd stream can expand to gigabytes, and a transformer would queue all
 * of it. Here each read decodes at most one chunk of `wasmOutputChunkSize`
 * bytes, and a write resolves once its bytes are consumed. `pipeThrough`
 * accepts it like any TransformStream.
 */
export class ZstdDecompressionStream
  implements TransformStream<Uint8Array, Uint8Array>
{
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;

  #ready: Promise<ZstdExports>;
  #context?: WasmDecoderContext;
  #input?: PendingWrite;
  #closing?: Deferred;
  #wakeReader?: () => void;
  #failed = false;
  #failure: unknown;
  #writableController?: WritableStreamDefaultController;
  #readableController?: ReadableStreamDefaultController<Uint8Array>;

  constructor() {
    this.#ready = loadZstdWasm();

    this.writable = new WritableStream<Uint8Array>({
      start: async (controller) => {
        this.#writableController = controller;
        await this.#ready;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#close(),
      abort: (reason) => this.#fail(reason),
    });

    this.readable = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#readableController = controller;
      },
      pull: (controller) => this.#pull(controller),
      cancel: (reason) => this.#fail(reason),
    });
  }

  #write(chunk: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#input = { chunk, offset: 0, resolve, reject };
      this.#wake();
    });
  }

  #close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#closing = { resolve, reject };
      this.#wake();
    });
  }

  #nextInput(): Promise<void> {
    return new Promise((resolve) => {
      this.#wakeReader = resolve;
    });
  }

  #wake(): void {
    const wake = this.#wakeReader;
    this.#wakeReader = undefined;
    wake?.();
  }

  // Decodes until one output chunk is full or the input ends. Between
  // writes it waits for the next one, which is where a slow source and a
  // fast reader meet.
  async #pull(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    try {
      const wasm = await this.#ready;
      for (;;) {
        if (this.#failed) throw this.#failure;
        // The context is allocated only once input arrives, so a stream
        // that is never written holds no WASM memory.
        if (!this.#context && !this.#input && !this.#closing) {
          await this.#nextInput();
          continue;
        }
        const context = (this.#context ??= new WasmDecoderContext(wasm));

        if (context.outputFull) {
          controller.enqueue(context.takeOutput());
          return;
        }
        if (context.hasWork) {
          context.decode();
          continue;
        }

        const input = this.#input;
        if (input && input.offset < input.chunk.length) {
          input.offset += context.feed(input.chunk.subarray(input.offset));
          continue;
        }
        if (input) {
          this.#input = undefined;
          input.resolve();
        }

        if (this.#closing) {
          this.#finish(controller, context);
          return;
        }
        await this.#nextInput();
      }
    } catch (error) {
      this.#fail(error);
      throw error;
    }
  }

  #finish(
    controller: ReadableStreamDefaultController<Uint8Array>,
    context: WasmDecoderContext,
  ): void {
    if (!context.sawInput) {
      throw new ArchiveError("The zstd stream is empty", {
        hint: "The archive has no data. Fetch it again",
      });
    }
    if (!context.atFrameEnd) throw zstdTruncatedError();

    const rest = context.takeOutput();
    if (rest.length > 0) controller.enqueue(rest);
    controller.close();

    this.#release();
    this.#closing?.resolve();
  }

  // Errors both sides once, with the first reason, and frees WASM memory.
  #fail(reason: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = reason;

    this.#release();
    this.#writableController?.error(reason);
    this.#readableController?.error(reason);
    this.#input?.reject(reason);
    this.#closing?.reject(reason);
    this.#wake();
  }

  #release(): void {
    this.#context?.free();
    this.#context = undefined;
  }
}

interface Deferred {
  resolve(): void;
  reject(reason: unknown): void;
}

interface PendingWrite extends Deferred {
  readonly chunk: Uint8Array;
  /** Bytes of `chunk` already copied into the decoder. */
  offset: number;
}

/** The exports of zstddec's WebAssembly module that the decoder calls. */
interface ZstdExports {
  readonly memory: WebAssembly.Memory;
  ZSTD_createDCtx(): number;
  ZSTD_freeDCtx(dctx: number): number;
  ZSTD_decompressStream(dctx: number, output: number, input: number): number;
  malloc(size: number): number;
  free(pointer: number): void;
}

let zstdWasm: Promise<ZstdExports> | undefined;

/** Instantiates zstddec's WebAssembly module once per process. */
function loadZstdWasm(): Promise<ZstdExports> {
  zstdWasm ??= instantiateZstdWasm();
  return zstdWasm;
}

// zstddec keeps its instance private but passes the instantiation result
// to `_init`. It calls `this._init` detached from the object, so the
// override is an arrow function that needs no `this`. zstddec caches its
// init promise per module, so this works only if nothing else in the
// process initialised zstddec/stream first.
async function instantiateZstdWasm(): Promise<ZstdExports> {
  const decoder = new ZSTDDecoder();
  const init = decoder._init;
  let instance: WebAssembly.Instance | undefined;

  decoder._init = (result) => {
    instance = result.instance;
    init.call(decoder, result);
  };
  await decoder.init();

  if (!instance) {
    throw new Error(
      "zstddec/stream was initialised before imgload could capture its " +
        "WebAssembly instance",
    );
  }
  return instance.exports as unknown as ZstdExports;
}

// Sizes of ZSTD_inBuffer and ZSTD_outBuffer in wasm32: pointer, size, pos.
const bufferStructSize = 12;
const structSizeOffset = 4;
const structPosOffset = 8;

// zstd returns errors as (size_t)-code, with codes below 120.
const errorCodeLimit = 120;
const sizeTModulus = 2 ** 32;

/**
 * One ZSTD_DCtx with its input and output buffers in WASM memory. Memory
 * can grow during any call, which detaches the old ArrayBuffer, so every
 * access goes through a fresh view.
 */
class WasmDecoderContext {
  #wasm: ZstdExports;
  #dctx: number;
  #inputPointer: number;
  #outputPointer: number;
  #inputStruct: number;
  #outputStruct: number;

  #inputSize = 0;
  #inputPosition = 0;
  #outputPosition = 0;
  #lastResult = 0;
  #outputPending = false;
  #sawInput = false;
  #frameCompleted = false;

  constructor(wasm: ZstdExports) {
    this.#wasm = wasm;
    this.#dctx = wasm.ZSTD_createDCtx();
    this.#inputPointer = wasm.malloc(inputBufferSize);
    this.#outputPointer = wasm.malloc(wasmOutputChunkSize);
    this.#inputStruct = wasm.malloc(bufferStructSize);
    this.#outputStruct = wasm.malloc(bufferStructSize);

    const pointers = [
      this.#dctx,
      this.#inputPointer,
      this.#outputPointer,
      this.#inputStruct,
      this.#outputStruct,
    ];
    if (pointers.includes(0)) {
      this.free();
      throw new ArchiveError("The zstd decoder could not allocate memory", {
        hint: "Try `--zstd-decoder native`",
      });
    }
  }

  /** Whether the output buffer is full and must be taken before decoding. */
  get outputFull(): boolean {
    return this.#outputPosition === wasmOutputChunkSize;
  }

  /** Whether `decode` can make progress without new input. */
  get hasWork(): boolean {
    return this.#inputPosition < this.#inputSize || this.#outputPending;
  }

  /** Whether the last frame ended and was flushed completely. */
  get atFrameEnd(): boolean {
    return this.#lastResult === 0;
  }

  get sawInput(): boolean {
    return this.#sawInput;
  }

  /** Copies up to one input buffer of `bytes`; returns the count copied. */
  feed(bytes: Uint8Array): number {
    const count = Math.min(bytes.length, inputBufferSize);
    this.#heap().set(bytes.subarray(0, count), this.#inputPointer);
    this.#inputSize = count;
    this.#inputPosition = 0;
    if (count > 0) this.#sawInput = true;
    return count;
  }

  /** Runs ZSTD_decompressStream once; throws an ArchiveError on failure. */
  decode(): void {
    const before = new DataView(this.#wasm.memory.buffer);
    writeBufferStruct(before, this.#inputStruct, {
      pointer: this.#inputPointer,
      size: this.#inputSize,
      position: this.#inputPosition,
    });
    writeBufferStruct(before, this.#outputStruct, {
      pointer: this.#outputPointer,
      size: wasmOutputChunkSize,
      position: this.#outputPosition,
    });
    const betweenFrames = this.#frameCompleted && this.#lastResult === 0;

    const dctx = this.#dctx;
    const returned = this.#wasm.ZSTD_decompressStream(
      dctx,
      this.#outputStruct,
      this.#inputStruct,
    );
    const result = returned >>> 0;

    const after = new DataView(this.#wasm.memory.buffer);
    this.#inputPosition = readBufferPosition(after, this.#inputStruct);
    this.#outputPosition = readBufferPosition(after, this.#outputStruct);
    if (result > sizeTModulus - errorCodeLimit) {
      throw zstdCodeError(sizeTModulus - result, betweenFrames);
    }

    // A full output buffer may leave decoded bytes inside zstd, except when
    // the result is 0: then the frame is complete and flushed, and another
    // call would start reading the next frame header.
    this.#lastResult = result;
    this.#outputPending =
      result !== 0 && this.#outputPosition === wasmOutputChunkSize;
    if (result === 0) this.#frameCompleted = true;
  }

  /** Copies the decoded bytes out of WASM memory and empties the buffer. */
  takeOutput(): Uint8Array {
    const start = this.#outputPointer;
    const output = this.#heap().slice(start, start + this.#outputPosition);
    this.#outputPosition = 0;
    return output;
  }

  free(): void {
    const wasm = this.#wasm;
    if (this.#dctx !== 0) wasm.ZSTD_freeDCtx(this.#dctx);

    const buffers = [
      this.#inputPointer,
      this.#outputPointer,
      this.#inputStruct,
      this.#outputStruct,
    ];
    for (const pointer of buffers) {
      if (pointer !== 0) wasm.free(pointer);
    }
    this.#dctx = 0;
    this.#inputPointer = 0;
    this.#outputPointer = 0;
    this.#inputStruct = 0;
    this.#outputStruct = 0;
  }

  #heap(): Uint8Array {
    return new Uint8Array(this.#wasm.memory.buffer);
  }
}

function writeBufferStruct(
  view: DataView,
  struct: number,
  fields: { pointer: number; size: number; position: number },
): void {
  view.setUint32(struct, fields.pointer, true);
  view.setUint32(struct + structSizeOffset, fields.size, true);
  view.setUint32(struct + structPosOffset, fields.position, true);
}

function readBufferPosition(view: DataView, struct: number): number {
  return view.getUint32(struct + structPosOffset, true);
}

// prefix_unknown right after a complete frame means the bytes that follow
// are not a frame. zstd checks even 1 to 3 such bytes against the magic
// numbers, so only bytes that could start a frame end up as truncation.
function zstdCodeError(code: number, betweenFrames: boolean): ArchiveError {
  const name = zstdErrorNames[code] ?? `error code ${code}`;
  if (name === "prefix_unknown" && betweenFrames) {
    return zstdTrailingDataError();
  }
  if (name === "frameParameter_windowTooLarge") {
    return zstdWindowTooLargeError(undefined);
  }
  if (name === "memory_allocation") {
    return new ArchiveError("The zstd decoder ran out of memory", {
      hint: "Try `--zstd-decoder native`",
    });
  }
  return zstdCorruptError(`zstd error ${name}`);
}
