/**
 * Paces garbage collection for streams that allocate a new buffer per
 * chunk, such as the decoders. JavaScriptCore schedules collections by its
 * own heap, so the buffers of a fast stream pile up between collections.
 * Measured on the 800 MiB archive of scripts/bench.ts (Bun 1.4.5, 2-core
 * VM): without pacing, imgload's peak RSS varied between about 85 and
 * 135 MiB. With a collection per 32 MiB it stayed between about 80 and
 * 105 MiB, and each collection took about 5 ms.
 */

/** Bytes of output between two collections. */
export const defaultCollectionIntervalBytes = 32 * 1024 * 1024;

/**
 * Counts the bytes a stream produced and calls `collect` (by default
 * {@linkcode collectGarbage}) after every `intervalBytes` of them.
 */
export class GarbageCollectionPacer {
  readonly #intervalBytes: number;
  readonly #collect: () => void;
  #sinceLastCollection = 0;

  constructor(
    intervalBytes = defaultCollectionIntervalBytes,
    collect: () => void = collectGarbage,
  ) {
    this.#intervalBytes = intervalBytes;
    this.#collect = collect;
  }

  /** Records `bytes` more, and collects when an interval is full. */
  count(bytes: number): void {
    this.#sinceLastCollection += bytes;
    if (this.#sinceLastCollection < this.#intervalBytes) return;
    this.#sinceLastCollection = 0;
    this.#collect();
  }
}

/**
 * Runs a synchronous garbage collection with `Bun.gc(true)`, which also
 * returns free pages of Bun's allocator to the system. Does nothing on
 * runtimes without such a call, such as Deno.
 *
 * NOTE: a collection takes longer in a process with a large heap, such
 * as an application that calls `loadImage`, and cannot be turned off.
 */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  bun?.gc(true);
}
