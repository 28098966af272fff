/**
 * The decompression stage: sniffs the format of the input and routes it
 * through a zstd or gzip decoder, or passes a plain tar through.
 */
import {
  ArchiveError,
  ImgloadError,
  SourceError,
  UsageError,
} from "../errors.ts";
import { GarbageCollectionPacer } from "../runtime/memory.ts";
import { detectFormat, detectHeadSize, type DetectedFormat } from "./detect.ts";
import { createGzipDecoder } from "./gzip.ts";
import type { TranslatingStreamOptions } from "./translating-stream.ts";
import {
  createNativeZstdDecoder,
  isNativeZstdAvailable,
} from "./zstd-native.ts";
import { ZstdDecompressionStream } from "./zstd-wasm.ts";

export { detectFormat, detectHeadSize, type DetectedFormat } from "./detect.ts";
export { createGzipDecompressStream } from "./gzip.ts";
export {
  createNativeZstdStream,
  isNativeZstdAvailable,
} from "./zstd-native.ts";
export { ZstdDecompressionStream } from "./zstd-wasm.ts";

/**
 * The zstd decoder to use: the runtime's DecompressionStream, the
 * WebAssembly one, or `auto` for the runtime's when it has one.
 */
export type ZstdDecoderChoice = "auto" | "native" | "wasm";

/** The format found at the start of the input, and its decoder. */
export interface DetectInfo {
  readonly format: "zstd" | "gzip" | "tar";
  /** The zstd decoder in use; only for zstd. */
  readonly decoder?: "native" | "wasm";
}

/** Options of `createDecompressStream`. */
export interface DecompressOptions {
  readonly zstdDecoder: ZstdDecoderChoice;
  /** Called once when the format is known, before any output. */
  readonly onDetect?: (info: DetectInfo) => void;
}

/**
 * Creates the decompression stage. It holds back the first
 * `detectHeadSize` bytes (or all of a shorter input), detects the format,
 * and then sends everything through the matching decoder. A plain tar
 * passes through chunk by chunk, uncopied.
 *
 * Every failure errors both sides of the stream, so the downstream pipe
 * aborts rather than closes: an empty, unsupported, unknown or damaged
 * archive with an ArchiveError, an HTML page with a SourceError, and
 * `zstdDecoder: "native"` on a runtime without it with a UsageError once
 * zstd input arrives. The result is a readable/writable pair rather than a
 * TransformStream instance, so that output is decoded only as it is read.
 */
export function createDecompressStream(
  options: DecompressOptions,
): TransformStream<Uint8Array, Uint8Array> {
  return new DecompressStream(options);
}

class DecompressStream implements TransformStream<Uint8Array, Uint8Array> {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;

  #options: DecompressOptions;
  #head: Uint8Array[] = [];
  #headLength = 0;
  #writer?: WritableStreamDefaultWriter<Uint8Array>;
  #reader?: ReadableStreamDefaultReader<Uint8Array>;
  #hooks?: TranslatingStreamOptions;
  // Each decoded chunk is a new buffer, so the output rate paces the
  // collections.
  #pacer = new GarbageCollectionPacer();
  #decoderReady: Promise<void>;
  #resolveDecoder!: () => void;
  #rejectDecoder!: (reason: unknown) => void;
  #failed = false;
  #failure: unknown;
  #readableController?: ReadableStreamDefaultController<Uint8Array>;
  #writableController?: WritableStreamDefaultController;

  constructor(options: DecompressOptions) {
    this.#options = options;
    this.#decoderReady = new Promise((resolve, reject) => {
      this.#resolveDecoder = resolve;
      this.#rejectDecoder = reject;
    });
    this.#decoderReady.catch(() => {});

    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writableController = controller;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#close(),
      abort: (reason) => this.#abort(reason),
    });

    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#readableController = controller;
        },
        pull: (controller) => this.#pull(controller),
        cancel: (reason) => this.#cancel(reason),
      },
      { highWaterMark: 0 },
    );
  }

  async #write(chunk: Uint8Array): Promise<void> {
    if (this.#writer) return this.#forward(chunk);
    if (chunk.length === 0) return;

    this.#head.push(chunk);
    this.#headLength += chunk.length;
    if (this.#headLength >= detectHeadSize) await this.#startDecoder();
  }

  async #close(): Promise<void> {
    if (!this.#writer) {
      if (this.#headLength === 0) {
        this.#throw(
          new ArchiveError("The input is empty", {
            hint: "The source sent no data. Check the URL or file",
          }),
        );
      }
      await this.#startDecoder();
    }
    try {
      await this.#writer!.close();
    } catch (error) {
      this.#throwTranslated(error);
    }
  }

  // Picks the decoder for the held-back head, then replays the head into
  // it as the original chunks.
  async #startDecoder(): Promise<void> {
    const head = this.#head;
    this.#head = [];

    try {
      const headBytes = concatHead(head, detectHeadSize);
      const detected = detectFormat(headBytes);
      const zstdDecoder = this.#options.zstdDecoder;
      const { stream, hooks, info } = createDecoder(
        detected,
        headBytes,
        zstdDecoder,
      );
      this.#writer = stream.writable.getWriter();
      this.#reader = stream.readable.getReader();
      this.#hooks = hooks;
      this.#resolveDecoder();
      this.#options.onDetect?.(info);
    } catch (error) {
      this.#throw(error);
    }

    for (const chunk of head) await this.#forward(chunk);
  }

  // The decoder's writer and reader are driven here directly, with its
  // errors translated here too, because a wrapping stream would add two
  // promise hops per chunk.
  async #forward(chunk: Uint8Array): Promise<void> {
    this.#hooks?.observe?.(chunk);
    try {
      await this.#writer!.write(chunk);
    } catch (error) {
      this.#throwTranslated(error);
    }
  }

  async #pull(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    if (this.#reader === undefined) await this.#decoderReady;
    let result: Awaited<
      ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>
    >;
    try {
      result = await this.#reader!.read();
    } catch (error) {
      this.#throwTranslated(error);
    }
    if (result.done) {
      controller.close();
      return;
    }
    this.#pacer.count(result.value.length);
    controller.enqueue(result.value);
  }

  async #abort(reason: unknown): Promise<void> {
    this.#fail(reason);
    await this.#writer?.abort(reason).catch(() => {});
  }

  async #cancel(reason: unknown): Promise<void> {
    this.#fail(reason);
    await this.#reader?.cancel(reason).catch(() => {});
  }

  // The first failure wins, because later errors of the decoder echo it.
  #throw(error: unknown): never {
    this.#fail(error);
    throw this.#failure;
  }

  // Like #throw for an error of the decoder, which becomes imgload's
  // error unless it already is one or a failure was recorded first.
  #throwTranslated(error: unknown): never {
    if (!this.#failed) {
      const translate = this.#hooks?.translate;
      const own = error instanceof ImgloadError || translate === undefined;
      this.#fail(own ? error : translate(error));
    }
    throw this.#failure;
  }

  #fail(reason: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = reason;

    this.#writableController?.error(reason);
    this.#readableController?.error(reason);
    this.#rejectDecoder(reason);
  }
}

interface Decoder {
  readonly stream: ReadableWritablePair<Uint8Array, Uint8Array>;
  /** Translates the errors of a runtime decoder; absent for the others. */
  readonly hooks?: TranslatingStreamOptions;
  readonly info: DetectInfo;
}

// Creates the decoder for `detected`, or throws the error that explains
// why the input cannot be decoded.
function createDecoder(
  detected: DetectedFormat,
  head: Uint8Array,
  zstdDecoder: ZstdDecoderChoice,
): Decoder {
  switch (detected.format) {
    case "zstd":
      return createZstdDecoder(zstdDecoder);
    case "gzip":
      return { ...createGzipDecoder(), info: { format: "gzip" } };
    case "tar":
      return {
        stream: new TransformStream<Uint8Array, Uint8Array>(),
        info: { format: "tar" },
      };
    case "unsupported":
      throw unsupportedFormatError(detected.name);
    case "html":
      throw new SourceError(
        "An HTML page arrived where an image archive was expected",
        {
          hint:
            "Check the URL, and whether the server needs authentication " +
            "or serves a download page instead of the file",
        },
      );
    case "unknown":
      throw unknownFormatError(head.subarray(0, 8));
  }
}

function createZstdDecoder(choice: ZstdDecoderChoice): Decoder {
  const native = choice !== "wasm" && nativeZstdAvailable();

  if (choice === "native" && !native) {
    throw new UsageError(
      "This runtime has no native zstd decoder (--zstd-decoder native)",
      { hint: "Use `--zstd-decoder wasm` or `auto`" },
    );
  }
  if (native) {
    return {
      ...createNativeZstdDecoder(),
      info: { format: "zstd", decoder: "native" },
    };
  }
  return {
    stream: new ZstdDecompressionStream(),
    info: { format: "zstd", decoder: "wasm" },
  };
}

let nativeZstd: boolean | undefined;

function nativeZstdAvailable(): boolean {
  nativeZstd ??= isNativeZstdAvailable();
  return nativeZstd;
}

// Copies at most `limit` bytes from the start of the chunks.
function concatHead(chunks: readonly Uint8Array[], limit: number): Uint8Array {
  const total = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  const head = new Uint8Array(Math.min(total, limit));
  let offset = 0;
  for (const chunk of chunks) {
    if (offset === head.length) break;
    const part = chunk.subarray(0, head.length - offset);
    head.set(part, offset);
    offset += part.length;
  }
  return head;
}

const loadStdin = "imgload load - NAME";

const decompressCommands = {
  xz: "xz -dc",
  bzip2: "bzip2 -dc",
  lz4: "lz4 -dc",
} as const;

function unsupportedFormatError(name: keyof typeof decompressCommands) {
  const command = decompressCommands[name];
  return new ArchiveError(
    `The input is ${name}-compressed, which imgload does not support`,
    {
      hint: `Decompress it first, e.g. \`${command} FILE | ${loadStdin}\``,
    },
  );
}

function unknownFormatError(firstBytes: Uint8Array): ArchiveError {
  const hex = Array.from(firstBytes, (byte) =>
    byte.toString(16).padStart(2, "0"),
  ).join(" ");
  return new ArchiveError(
    `The input is not a zstd, gzip or tar archive (it starts with ${hex})`,
    {
      hint:
        "Check that the source is an image archive from docker save, " +
        "optionally compressed with zstd or gzip",
    },
  );
}
