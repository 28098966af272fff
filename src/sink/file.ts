import { randomBytes } from "node:crypto";
import { writeSync } from "node:fs";
import {
  type FileHandle,
  open,
  realpath,
  rename,
  stat,
  unlink,
} from "node:fs/promises";
import { dirname, join } from "node:path";

import { EngineError } from "../errors.ts";
import { logger } from "../log.ts";
import type { ByteWriter, Runtime } from "../runtime/types.ts";
import type { Sink, SinkResult } from "./types.ts";

/**
 * Opens `path` for `--output FILE`. A regular file, or a path that does
 * not exist yet, is written under a temporary name in the same directory
 * and renamed over `path` by `finish()`. Readers therefore never see half
 * an archive, and a failed run leaves an existing file untouched. Devices and
 * pipes (`/dev/null`, a FIFO) are written directly.
 *
 * `node:fs` does the writing because both Bun and Deno provide it.
 *
 * @throws EngineError naming `path` when it is a directory, its directory
 * does not exist, or it cannot be created.
 *
 * @example
 * ```ts
 * const sink = await createFileSink(getRuntime(), "image.tar");
 * await archive.pipeTo(sink.writable);
 * await sink.finish();
 * ```
 */
export async function createFileSink(
  _runtime: Runtime,
  requestedPath: string,
): Promise<Sink> {
  // A symbolic link is written through, as a shell redirect does, so the
  // temporary file goes beside the link's target and replaces that.
  const path = await realpath(requestedPath).catch(() => requestedPath);
  const target = await statTarget(path);
  if (target?.isDirectory()) {
    throw new EngineError(
      `Cannot write output file ${path}: it is a directory`,
      {
        hint: "Give a file path, such as DIR/image.tar",
      },
    );
  }

  if (target !== undefined && !target.isFile()) {
    const handle = await openOutput(path, path, "w");
    logger.debug(`Writing the archive directly to ${path}`);
    return new FileSink(handle, path, {
      syncWrites: target.isCharacterDevice(),
    });
  }

  // An existing file keeps its permission bits, and a new one gets the
  // umask's default, as a shell redirect would give it.
  const temporary = join(dirname(path), `.imgload-${randomId()}.tmp`);
  const mode = target ? target.mode & 0o7777 : 0o666;
  const handle = await openOutput(path, temporary, "wx", mode);
  logger.debug(`Writing the archive to ${temporary}, then renaming it`);
  return new FileSink(handle, path, { temporary, syncWrites: true });
}

/**
 * Returns a Sink that writes to stdout, for `--output -`. The caller
 * rejects this when stdout is a terminal. An abort cannot take back bytes
 * already written, so the reader learns of a failure from imgload's exit
 * code.
 */
export function createStdoutSink(runtime: Runtime): Sink {
  return new StdoutSink(runtime.stdout());
}

interface FileSinkOptions {
  /** The file written instead of `path`, renamed over it by `finish()`. */
  temporary?: string;
  /**
   * Write with `writeSync`, for regular files and character devices such
   * as /dev/null. A FileHandle write costs a thread-pool round trip per
   * chunk, which took about 1 s of CPU more for an 800 MiB archive into a
   * file (scripts/bench.ts archive, Bun 1.4.5, 2-core VM). Pipes and
   * sockets stay asynchronous, so that a slow reader cannot block the
   * event loop.
   */
  syncWrites: boolean;
}

class FileSink implements Sink {
  readonly writable: WritableStream<Uint8Array>;
  #handle: FileHandle;
  #path: string;
  #temporary?: string;
  #syncWrites: boolean;
  #closed = false;
  #abortion?: Promise<void>;

  constructor(handle: FileHandle, path: string, options: FileSinkOptions) {
    this.#handle = handle;
    this.#path = path;
    this.#temporary = options.temporary;
    this.#syncWrites = options.syncWrites;
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.#write(chunk),
      close: () => this.#close(),
      abort: (reason) => this.abort(reason),
    });
  }

  async finish(): Promise<SinkResult> {
    if (this.#abortion) {
      throw new EngineError(`Writing ${this.#path} was aborted`);
    }
    if (this.#temporary !== undefined) {
      try {
        await rename(this.#temporary, this.#path);
      } catch (error) {
        await this.abort(error);
        throw fileError(this.#path, error);
      }
    }
    return { loadedReferences: [], loadedImageIds: [], displaced: [] };
  }

  abort(reason?: unknown): Promise<void> {
    this.#abortion ??= this.#discard(reason);
    return this.#abortion;
  }

  async #write(chunk: Uint8Array): Promise<void> {
    try {
      let offset = 0;
      if (this.#syncWrites) {
        while (offset < chunk.byteLength) {
          offset += writeSync(this.#handle.fd, chunk, offset);
        }
        return;
      }
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await this.#handle.write(chunk, offset);
        offset += bytesWritten;
      }
    } catch (error) {
      await this.abort(error);
      throw fileError(this.#path, error);
    }
  }

  async #close(): Promise<void> {
    this.#closed = true;
    try {
      await this.#handle.close();
    } catch (error) {
      await this.abort(error);
      throw fileError(this.#path, error);
    }
  }

  async #discard(reason: unknown): Promise<void> {
    logger.debug(`Discarding output ${this.#path}: ${String(reason)}`);
    if (!this.#closed) {
      this.#closed = true;
      await this.#handle.close().catch(() => undefined);
    }
    if (this.#temporary !== undefined) {
      await unlink(this.#temporary).catch((error: { code?: string }) => {
        if (error.code !== "ENOENT") {
          logger.warn(`Cannot remove ${this.#temporary}: ${String(error)}`);
        }
      });
    }
  }
}

class StdoutSink implements Sink {
  readonly writable: WritableStream<Uint8Array>;
  #aborted = false;

  constructor(writer: ByteWriter) {
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => writer.write(chunk).catch(stdoutError),
      close: () => writer.close().catch(stdoutError),
      abort: () => this.abort(),
    });
  }

  async finish(): Promise<SinkResult> {
    if (this.#aborted) {
      throw new EngineError("Writing to stdout was aborted");
    }
    return { loadedReferences: [], loadedImageIds: [], displaced: [] };
  }

  async abort(): Promise<void> {
    this.#aborted = true;
  }
}

async function statTarget(path: string) {
  try {
    return await stat(path);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") {
      return undefined;
    }
    throw fileError(path, error);
  }
}

async function openOutput(
  path: string,
  openPath: string,
  flags: string,
  mode?: number,
): Promise<FileHandle> {
  try {
    return await open(openPath, flags, mode);
  } catch (error) {
    throw fileError(path, error);
  }
}

/** Maps a file system error to an EngineError naming `path`. */
function fileError(path: string, error: unknown): EngineError {
  const code = (error as { code?: string }).code;
  const prefix = `Cannot write output file ${path}`;
  const directory = dirname(path);
  const other = { hint: "Choose another path", cause: error };

  switch (code) {
    case "ENOENT":
      return new EngineError(
        `${prefix}: directory ${directory} does not exist`,
        {
          hint: "Create the directory first, or choose another path",
          cause: error,
        },
      );
    case "ENOTDIR":
      return new EngineError(
        `${prefix}: ${directory} is not a directory`,
        other,
      );
    case "EACCES":
    case "EPERM":
      return new EngineError(`${prefix}: permission denied`, {
        hint: `Choose a writable location, or fix the permissions of ${directory}`,
        cause: error,
      });
    case "ENOSPC":
    case "EDQUOT":
      return new EngineError(`${prefix}: no space left on device`, {
        hint: `Free space on the file system of ${directory}, or choose another path`,
        cause: error,
      });
    case "EROFS":
      return new EngineError(`${prefix}: read-only file system`, other);
    case "EISDIR":
      return new EngineError(`${prefix}: it is a directory`, {
        hint: "Give a file path, such as DIR/image.tar",
        cause: error,
      });
    default: {
      const message = error instanceof Error ? error.message : String(error);
      return new EngineError(`${prefix}: ${message}`, other);
    }
  }
}

function stdoutError(error: unknown): never {
  const code = (error as { code?: string }).code;
  if (code === "EPIPE") {
    throw new EngineError(
      "Cannot write to stdout: the reader closed the pipe",
      {
        hint: "Check the command that reads imgload's output",
        cause: error,
      },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  throw new EngineError(`Cannot write to stdout: ${message}`, {
    hint: "Check where stdout goes",
    cause: error,
  });
}

function randomId(): string {
  return randomBytes(6).toString("hex");
}
