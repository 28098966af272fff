/**
 * The few operating-system services imgload needs that web standards do
 * not cover. The core modules use only this interface and web streams;
 * `bun.ts` and `deno.ts` implement it.
 */
export interface Runtime {
  readonly name: "bun" | "deno";

  /** Starts a process with a writable stdin and readable stdout and stderr. */
  spawn(argv: readonly string[], options?: SpawnOptions): ChildProcess;

  /** Opens a file for streaming reads. Rejects with the system error code (ENOENT, EACCES, EISDIR). */
  openFile(path: string): Promise<OpenedFile>;

  /** Returns the process's standard input as a byte stream. */
  stdin(): ReadableStream<Uint8Array>;

  /** Returns a writer for the process's standard output. */
  stdout(): ByteWriter;

  /** Reports whether file descriptor 0, 1 or 2 is a terminal. */
  isTerminal(fd: 0 | 1 | 2): boolean;

  /** Runs `handler` on SIGINT or SIGTERM; the returned function removes it. */
  onSignal(
    signal: "SIGINT" | "SIGTERM",
    handler: () => void,
  ): () => void;

  /**
   * Sends an HTTP request like `fetch`, with two differences that resuming
   * downloads rely on. The body arrives as sent, never decoded by its
   * Content-Encoding. The request goes through `options.proxy`, or without
   * it straight to the server, and never through a proxy that the runtime
   * reads from the environment.
   */
  fetch(url: URL, options: FetchOptions): Promise<Response>;

  /** Reads an environment variable. */
  env(name: string): string | undefined;

  /** Ends the process with `code`. */
  exit(code: number): never;
}

/** Options of `Runtime.fetch`. */
export interface FetchOptions {
  headers: Headers;
  redirect?: RequestRedirect;
  signal?: AbortSignal;
  /** The proxy URL, such as `http://proxy:3128`; without it, direct. */
  proxy?: string;
  /**
   * CA certificates in PEM to trust for https. Bun trusts only these,
   * Deno trusts them in addition to its default roots.
   */
  ca?: string;
}

export interface SpawnOptions {
  /** Extra environment variables, merged over the current environment. */
  env?: Record<string, string>;
  /** Whether stdin is a pipe (default) or closed at start. */
  stdin?: "pipe" | "ignore";
}

export interface ChildProcess {
  readonly pid: number;
  /** The child's stdin; `close()` ends it cleanly, `abort()` does not. */
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves with the exit code, or 128 + signal number when killed. */
  readonly exited: Promise<number>;
  kill(signal?: "SIGKILL" | "SIGTERM"): void;
}

export interface OpenedFile {
  /** Size in bytes for a regular file; undefined for pipes and devices. */
  readonly size?: number;
  readonly stream: ReadableStream<Uint8Array>;
}

/**
 * A destination for bytes, such as stdout or an output file. `write`
 * resolves once the bytes may be reused, which paces the pipeline.
 */
export interface ByteWriter {
  write(chunk: Uint8Array): Promise<void>;
  close(): Promise<void>;
}
