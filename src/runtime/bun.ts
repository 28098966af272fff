import {
  access,
  constants as fsConstants,
  open,
  stat,
} from "node:fs/promises";
import { constants as osConstants } from "node:os";
import { isatty } from "node:tty";
import type { FileSink, Subprocess } from "bun";

import type {
  ByteWriter,
  ChildProcess,
  FetchOptions,
  OpenedFile,
  Runtime,
  SpawnOptions,
} from "./types.ts";

/**
 * Implements {@linkcode Runtime} with Bun's own APIs: `Bun.spawn` for
 * processes, `Bun.file` for files and stdio, `process` for signals, and
 * `fetch` with Bun's extra options for HTTP.
 *
 * @example
 * ```ts
 * const child = new BunRuntime().spawn(["cat"]);
 * const writer = child.stdin.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 * ```
 */
export class BunRuntime implements Runtime {
  readonly name = "bun" as const;

  /**
   * Starts `argv` with piped stdio. Throws an error with `code` ENOENT
   * when the executable is not found and EACCES when it is not executable.
   */
  spawn(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const subprocess = Bun.spawn([...argv], {
      stdin: options.stdin === "ignore" ? "ignore" : "pipe",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, ...options.env },
    });
    return new BunChildProcess(subprocess);
  }

  /** Opens `path` for streaming reads after checking that it is readable. */
  async openFile(path: string): Promise<OpenedFile> {
    const info = await stat(path);
    if (info.isDirectory()) {
      throw Object.assign(new Error(`EISDIR: is a directory, open '${path}'`), {
        code: "EISDIR",
        path,
      });
    }

    // Bun.file opens lazily on the first read, so a missing read
    // permission would otherwise surface only as a stream error.
    await access(path, fsConstants.R_OK);

    // Bun.file streams a character or block device through epoll, which
    // rejects them (EPERM), so those are read with plain reads instead.
    if (info.isCharacterDevice() || info.isBlockDevice()) {
      return { stream: await readDevice(path) };
    }
    return {
      size: info.isFile() ? info.size : undefined,
      stream: Bun.file(path).stream(),
    };
  }

  /** Returns fd 0 as a byte stream. */
  stdin(): ReadableStream<Uint8Array> {
    return Bun.stdin.stream();
  }

  /** Returns a writer for fd 1 that waits whenever the pipe is full. */
  stdout(): ByteWriter {
    const sink = Bun.stdout.writer();
    return {
      async write(chunk) {
        await sink.write(chunk);
      },
      async close() {
        await sink.end();
      },
    };
  }

  /** Reports whether `fd` is a terminal. */
  isTerminal(fd: 0 | 1 | 2): boolean {
    return isatty(fd);
  }

  /** Adds a `process` listener, which also stops the default exit. */
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): () => void {
    process.on(signal, handler);
    return () => {
      process.off(signal, handler);
    };
  }

  /**
   * Sends the request with Bun's `fetch`, which takes the proxy, the CA
   * certificates and `decompress: false` as options of each request.
   */
  fetch(url: URL, options: FetchOptions): Promise<Response> {
    const { proxy, ca } = options;
    const direct = proxy === undefined;
    return fetch(url, {
      headers: options.headers,
      redirect: options.redirect,
      signal: options.signal,
      decompress: false,
      // Without an explicit value Bun applies its own reading of the
      // proxy variables; `false` means a direct connection.
      proxy: direct ? false : { url: proxy, respectNoProxy: false },
      tls: ca === undefined ? undefined : { ca },
    });
  }

  /** Reads `name` from `process.env`. */
  env(name: string): string | undefined {
    return process.env[name];
  }

  /** Ends the process with `code`. */
  exit(code: number): never {
    process.exit(code);
  }
}

type BunSubprocess = Subprocess<"pipe" | "ignore", "pipe", "pipe">;

class BunChildProcess implements ChildProcess {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  #process: BunSubprocess;

  constructor(process: BunSubprocess) {
    this.#process = process;
    this.pid = process.pid;
    this.stdout = process.stdout;
    this.stderr = process.stderr;
    this.exited = process.exited.then(() => exitStatus(process));

    const pipe = process.stdin;
    this.stdin = pipe
      ? fileSinkWritable(pipe, () => this.kill("SIGKILL"))
      : closedStdin();
  }

  kill(signal: "SIGKILL" | "SIGTERM" = "SIGTERM"): void {
    const process = this.#process;
    if (process.exitCode !== null || process.signalCode !== null) {
      return;
    }
    process.kill(signal);
  }
}

/**
 * Wraps a FileSink in a WritableStream. `FileSink.write` copies what the
 * pipe does not take at once into its own buffer, and returns a promise
 * only once about 200 KB are pending (measured with Bun 1.4.5). Awaiting
 * just those promises keeps memory flat at close to the raw sink's speed.
 */
function fileSinkWritable(
  sink: FileSink,
  kill: () => void,
): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write(chunk) {
      const written = sink.write(chunk);
      if (typeof written !== "number") {
        return written.then(() => undefined);
      }
    },

    async close() {
      await sink.end();
    },

    async abort() {
      // Ending the pipe first would hand the child a clean end of input,
      // and `docker load` commits a tar that merely lacks its final
      // zero blocks. A killed child never reads that end.
      kill();
      try {
        await sink.end();
      } catch {
        // The pipe may already be broken, which is what abort wants.
      }
    },
  });
}

function closedStdin(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write() {
      throw new TypeError("The child's stdin was not opened as a pipe");
    },
  });
}

function exitStatus(process: BunSubprocess): number {
  if (process.exitCode !== null) {
    return process.exitCode;
  }
  const signal = process.signalCode;
  if (typeof signal === "number") {
    return 128 + signal;
  }
  const number = signal ? osConstants.signals[signal] : undefined;
  return 128 + (number ?? 0);
}

const deviceReadSize = 1024 * 1024;

/** Streams a device such as /dev/null or /dev/zero with blocking reads. */
async function readDevice(path: string): Promise<ReadableStream<Uint8Array>> {
  const handle = await open(path, "r");
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(deviceReadSize);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) {
        await handle.close();
        controller.close();
        return;
      }
      controller.enqueue(buffer.subarray(0, bytesRead));
    },
    async cancel() {
      await handle.close();
    },
  });
}
