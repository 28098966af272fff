/**
 * A destination for the uncompressed image tar: `docker load`, a file or
 * stdout. The pipeline writes into `writable`, then calls `finish()` once
 * the writable closed cleanly, or `abort()` on any failure.
 */
export interface Sink {
  /** The stream that takes the tar. It errors as soon as the sink fails. */
  readonly writable: WritableStream<Uint8Array>;

  /**
   * Waits, after `writable` closed cleanly, for the engine to finish and
   * returns what it reported.
   *
   * @throws EngineError when the engine or the file system reported a
   * failure.
   */
  finish(): Promise<SinkResult>;

  /**
   * Kills the engine or removes the partial file, so that nothing is
   * loaded or left behind. Safe to call more than once, and while a
   * `pipeTo` into `writable` is still running (for signal handlers).
   */
  abort(reason?: unknown): Promise<void>;
}

/** The engine's report of a load, with empty lists for file outputs. */
export interface SinkResult {
  /** References from `Loaded image: REF` lines. */
  loadedReferences: string[];
  /** IDs from `Loaded image ID: sha256:...` lines. */
  loadedImageIds: string[];
  /** Tags that moved away from an older image, with that image's ID. */
  displaced: Array<{ reference: string; oldId: string }>;
  /** The engine's raw stdout, for `--debug`. */
  output?: string;
}
