import type {
  ByteWriter,
  ChildProcess,
  OpenedFile,
  Runtime,
  SpawnOptions,
} from "./types.ts";

/**
 * Implements {@linkcode Runtime} with Deno's APIs: `Deno.Command`,
 * `Deno.open`, `Deno.addSignalListener` and the `Deno.std*` streams. It
 * reaches `Deno` through `globalThis`, so Bun's bundler and type checker
 * accept this file without Deno's type declarations.
 *
 * @example
 * ```ts
 * const child = new DenoRuntime().spawn(["cat"]);
 * const writer = child.stdin.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 * ```
 */
export class DenoRuntime implements Runtime {
  readonly name = "deno" as const;

  /**
   * Starts `argv` with piped stdio. Deno's errors carry the system code,
   * so a missing executable throws with `code` ENOENT as in Bun.
   */
  spawn(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const [command, ...args] = argv;
    if (command === undefined) {
      throw new TypeError("Cannot spawn a process from an empty argv");
    }
    const piped = options.stdin !== "ignore";
    const { Command } = deno();
    const child = new Command(command, {
      args,
      env: options.env,
      stdin: piped ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new DenoChildProcess(child, piped);
  }

  /** Opens `path` for streaming reads. A directory rejects with EISDIR. */
  async openFile(path: string): Promise<OpenedFile> {
    const file = await deno().open(path, { read: true });
    const info = await file.stat();
    if (info.isDirectory) {
      file.close();
      throw Object.assign(new Error(`EISDIR: is a directory, open '${path}'`), {
        code: "EISDIR",
        path,
      });
    }
    return {
      size: info.isFile ? info.size : undefined,
      stream: file.readable,
    };
  }

  /** Returns fd 0 as a byte stream. */
  stdin(): ReadableStream<Uint8Array> {
    return deno().stdin.readable;
  }

  /** Returns a writer for fd 1 whose writes wait for the pipe. */
  stdout(): ByteWriter {
    const writer = deno().stdout.writable.getWriter();
    return {
      write: (chunk) => writer.write(chunk),
      close: () => writer.close(),
    };
  }

  /** Reports whether `fd` is a terminal. */
  isTerminal(fd: 0 | 1 | 2): boolean {
    const streams = deno();
    const stream = [streams.stdin, streams.stdout, streams.stderr][fd];
    return stream?.isTerminal() ?? false;
  }

  /** Adds a Deno signal listener, which also stops the default exit. */
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): () => void {
    deno().addSignalListener(signal, handler);
    return () => {
      deno().removeSignalListener(signal, handler);
    };
  }

  /** Reads `name` with `Deno.env.get`. */
  env(name: string): string | undefined {
    return deno().env.get(name);
  }

  /** Ends the process with `code`. */
  exit(code: number): never {
    return deno().exit(code);
  }
}

class DenoChildProcess implements ChildProcess {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  #child: DenoChild;
  #done = false;

  constructor(child: DenoChild, piped: boolean) {
    this.#child = child;
    this.pid = child.pid;
    this.stdout = child.stdout;
    this.stderr = child.stderr;

    // Deno already reports 128 + the signal number for a killed child.
    this.exited = child.status.then((status) => {
      this.#done = true;
      return status.code;
    });

    this.stdin = piped
      ? killFirstWritable(child.stdin, () => this.kill("SIGKILL"))
      : closedStdin();
  }

  kill(signal: "SIGKILL" | "SIGTERM" = "SIGTERM"): void {
    if (this.#done) {
      return;
    }
    try {
      this.#child.kill(signal);
    } catch {
      // Deno throws when the child exited after the check above.
    }
  }
}

/**
 * Wraps Deno's stdin pipe so that `abort()` kills the child before the
 * pipe closes: a clean end of input would let `docker load` commit what
 * it has read so far.
 */
function killFirstWritable(
  pipe: WritableStream<Uint8Array>,
  kill: () => void,
): WritableStream<Uint8Array> {
  const writer = pipe.getWriter();
  return new WritableStream<Uint8Array>({
    write: (chunk) => writer.write(chunk),
    close: () => writer.close(),
    async abort(reason) {
      kill();
      try {
        await writer.abort(reason);
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

// The subset of Deno's API that this file uses, typed here because the
// project type-checks against Bun's declarations only.

interface DenoChild {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal?: string): void;
}

interface DenoFile {
  readonly readable: ReadableStream<Uint8Array>;
  stat(): Promise<{ isFile: boolean; isDirectory: boolean; size: number }>;
  close(): void;
}

interface DenoStdio {
  isTerminal(): boolean;
}

interface DenoNamespace {
  Command: new (
    command: string,
    options: {
      args: string[];
      env?: Record<string, string>;
      stdin: "piped" | "null";
      stdout: "piped";
      stderr: "piped";
    },
  ) => { spawn(): DenoChild };
  open(path: string, options: { read: true }): Promise<DenoFile>;
  stdin: DenoStdio & { readonly readable: ReadableStream<Uint8Array> };
  stdout: DenoStdio & { readonly writable: WritableStream<Uint8Array> };
  stderr: DenoStdio;
  addSignalListener(signal: string, handler: () => void): void;
  removeSignalListener(signal: string, handler: () => void): void;
  env: { get(name: string): string | undefined };
  exit(code: number): never;
}

function deno(): DenoNamespace {
  const namespace = (globalThis as { Deno?: DenoNamespace }).Deno;
  if (namespace === undefined) {
    throw new Error("DenoRuntime needs the Deno global, which is missing");
  }
  return namespace;
}
