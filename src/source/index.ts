import { SourceError, UsageError } from "../errors.ts";
import type { Runtime } from "../runtime/types.ts";
import { openHttpSource, type HttpSourceOptions } from "./http.ts";
import { redactUrl } from "../redact.ts";

/** An opened image source: a byte stream and what is known about it. */
export interface Source {
  readonly stream: ReadableStream<Uint8Array>;
  /** Length in bytes, when the server or file system reports it. */
  readonly size?: number;
  /** The source as shown in messages, with secrets redacted. */
  readonly display: string;
  readonly kind: "http" | "file" | "stdin";
}

export type SourceOptions = Omit<HttpSourceOptions, "signal"> & {
  signal?: AbortSignal;
};

/**
 * Opens `spec`: an `http://` or `https://` URL, `-` for standard input, or
 * a local path. HTTP errors on the first response, and missing or
 * unreadable files, reject here, before any engine is started.
 */
export async function openSource(
  runtime: Runtime,
  spec: string,
  options: SourceOptions,
): Promise<Source> {
  if (/^https?:\/\//i.test(spec)) {
    const http = await openHttpSource(spec, { ...options, runtime });
    return {
      stream: http.stream,
      size: http.size,
      display: http.url,
      kind: "http",
    };
  }

  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    const scheme = spec.slice(0, spec.indexOf(":"));
    throw new UsageError(
      `Unsupported source scheme "${scheme}" in "${redactUrl(spec)}"`,
      { hint: "Give an http:// or https:// URL, a file path, or - for stdin" },
    );
  }

  if (spec === "-") {
    if (runtime.isTerminal(0)) {
      throw new UsageError("Standard input is a terminal, not an archive", {
        hint: "Pipe an archive in, as in: imgload load - < image.tar.zst",
      });
    }
    return { stream: runtime.stdin(), display: "stdin", kind: "stdin" };
  }

  return await openFileSource(runtime, spec);
}

async function openFileSource(runtime: Runtime, path: string): Promise<Source> {
  let file;
  try {
    file = await runtime.openFile(path);
  } catch (error) {
    throw fileError(path, error);
  }

  const stream =
    file.size === undefined
      ? file.stream
      : file.stream.pipeThrough(new LengthCheckStream(path, file.size));
  return { stream, size: file.size, display: path, kind: "file" };
}

/**
 * Errors the stream when a regular file ends at another length than it
 * had when it was opened, because it changed while being read. Passing the
 * error on before the end keeps the decoder from reporting it as a
 * damaged archive.
 */
class LengthCheckStream extends TransformStream<Uint8Array, Uint8Array> {
  constructor(path: string, expected: number) {
    let bytes = 0;
    super({
      transform(chunk, controller) {
        bytes += chunk.length;
        controller.enqueue(chunk);
      },
      flush() {
        if (bytes !== expected) {
          throw new SourceError(
            `${path} changed while it was read: ${bytes} bytes instead of ${expected}`,
            { hint: "Wait until the file is complete, then run the load again" },
          );
        }
      },
    });
  }
}

function fileError(path: string, error: unknown): SourceError {
  const code = (error as { code?: string } | null)?.code;
  switch (code) {
    case "ENOENT":
      return new SourceError(`File not found: ${path}`, {
        hint: "Check the path, or give an http(s):// URL",
        cause: error,
      });
    case "EACCES":
    case "EPERM":
      return new SourceError(`Permission denied reading ${path}`, {
        hint: "Check the file's permissions",
        cause: error,
      });
    case "EISDIR":
      return new SourceError(`${path} is a directory, not an archive`, {
        hint: "Give the path of an image archive file",
        cause: error,
      });
    default:
      return new SourceError(
        `Cannot open ${path}: ${(error as Error)?.message ?? String(error)}`,
        { hint: "Check the path and its permissions", cause: error },
      );
  }
}
