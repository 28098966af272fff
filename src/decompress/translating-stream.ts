/**
 * A wrapper that gives a runtime's DecompressionStream imgload's errors.
 */
import { ImgloadError } from "../errors.ts";

/**
 * Creates the runtime's DecompressionStream for `format`, typed for bytes.
 * The DOM typings list no "zstd", and their writable side takes any
 * BufferSource. Throws a TypeError if the runtime lacks the format.
 */
export function createRuntimeDecompressionStream(
  format: "gzip" | "zstd",
): ReadableWritablePair<Uint8Array, Uint8Array> {
  const stream = new DecompressionStream(format as CompressionFormat);
  return stream as unknown as ReadableWritablePair<Uint8Array, Uint8Array>;
}

/**
 * A runtime decoder with the hooks that translate its errors, for callers
 * that drive the decoder's writer and reader themselves instead of
 * adding a `TranslatingStream` hop per chunk.
 */
export interface TranslatedDecoder {
  readonly stream: ReadableWritablePair<Uint8Array, Uint8Array>;
  readonly hooks: TranslatingStreamOptions;
}

/** Options of `TranslatingStream`. */
export interface TranslatingStreamOptions {
  /** Maps an error of the inner stream to the error that both sides get. */
  translate(error: unknown): unknown;
  /** Sees each input chunk before the inner stream does. */
  observe?(chunk: Uint8Array): void;
}

/**
 * Wraps a transform pair such as `new DecompressionStream("gzip")`. An
 * error from the inner stream is translated once and then errors both
 * sides, so the upstream pipe stops and the downstream one aborts. Abort
 * and cancel reasons pass through untranslated, as do ImgloadErrors.
 * Reads are passed on one at a time, so the inner stream's own queue is
 * the only buffer.
 */
export class TranslatingStream
  implements TransformStream<Uint8Array, Uint8Array>
{
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;

  #translateError: (error: unknown) => unknown;
  #failed = false;
  #failure: unknown;
  #readableController?: ReadableStreamDefaultController<Uint8Array>;
  #writableController?: WritableStreamDefaultController;

  constructor(
    inner: ReadableWritablePair<Uint8Array, Uint8Array>,
    options: TranslatingStreamOptions,
  ) {
    this.#translateError = options.translate;
    const writer = inner.writable.getWriter();
    const reader = inner.readable.getReader();

    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        this.#writableController = controller;
      },
      write: async (chunk) => {
        options.observe?.(chunk);
        await writer.write(chunk).catch((error) => this.#throw(error));
      },
      close: async () => {
        await writer.close().catch((error) => this.#throw(error));
      },
      abort: async (reason) => {
        this.#fail(reason);
        await writer.abort(reason).catch(() => {});
      },
    });

    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#readableController = controller;
        },
        pull: async (controller) => {
          const result = await reader.read().catch((e) => this.#throw(e));
          if (result.done) controller.close();
          else controller.enqueue(result.value);
        },
        cancel: async (reason) => {
          this.#fail(reason);
          await reader.cancel(reason).catch(() => {});
        },
      },
      { highWaterMark: 0 },
    );
  }

  // Translates an error of the inner stream, unless a first failure was
  // already recorded, and errors both sides with it.
  #throw(error: unknown): never {
    if (!this.#failed) {
      const translated =
        error instanceof ImgloadError ? error : this.#translateError(error);
      this.#fail(translated);
    }
    throw this.#failure;
  }

  #fail(reason: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = reason;

    this.#writableController?.error(reason);
    this.#readableController?.error(reason);
  }
}
