import { EngineError } from "../errors.ts";
import { logger } from "../log.ts";
import type { ChildProcess, Runtime } from "../runtime/types.ts";
import {
  cliError,
  dockerHost,
  type DockerOptions,
  readText,
  runCli,
  spawnCli,
} from "./_cli.ts";
import type { Sink, SinkResult } from "./types.ts";

export type { DockerOptions } from "./_cli.ts";

/** Options of {@linkcode checkDaemon}. */
export interface CheckDaemonOptions extends DockerOptions {
  /** Maximum wait for the daemon's response, 5000 ms by default. */
  timeoutMs?: number;
}

/** An image as `docker image inspect` and `docker image ls` show it. */
export interface DockerImage {
  /** The image ID, `sha256:` and 64 hex digits. */
  id: string;
  /** Every `name:tag` that points at the image, sorted. */
  repoTags: string[];
}

// How long a broken `docker load` may take to exit after its stdin
// broke, before it is killed and reported without its full message.
const exitGraceMs = 10_000;

/**
 * Starts `docker load` and returns a Sink that feeds it. The writable
 * errors with an EngineError as soon as the CLI exits before the archive
 * ended (for example when the daemon is unreachable), which stops the
 * upstream download. `abort()` kills the CLI before its stdin ends, so
 * the daemon receives a truncated request and commits nothing.
 *
 * @throws EngineError when the CLI cannot be started.
 *
 * @example
 * ```ts
 * const sink = createDockerLoadSink(getRuntime());
 * await archive.pipeTo(sink.writable);
 * const { loadedReferences } = await sink.finish();
 * ```
 */
export function createDockerLoadSink(
  runtime: Runtime,
  options: DockerOptions = {},
): Sink {
  return new DockerLoadSink(runtime, options);
}

class DockerLoadSink implements Sink {
  readonly writable: WritableStream<Uint8Array>;
  #action: string;
  #host: string;
  #child: ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #stdout: Promise<string>;
  #stderr: Promise<string>;
  #closing = false;
  #abortion?: Promise<void>;
  #abortReason: unknown;
  #failure?: Promise<EngineError>;

  constructor(runtime: Runtime, options: DockerOptions) {
    const command = options.command ?? "docker";
    this.#action = `${command} load`;
    this.#host = dockerHost(runtime, options);
    this.#child = spawnCli(runtime, [command, "load"], options);
    this.#stdin = this.#child.stdin.getWriter();
    this.#stdout = readText(this.#child.stdout);
    this.#stderr = readText(this.#child.stderr);

    this.writable = new WritableStream<Uint8Array>({
      start: (controller) => {
        void this.#child.exited.then(async () => {
          if (this.#closing || this.#abortion) {
            return;
          }
          controller.error(await this.#engineFailure());
        });
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#close(),
      abort: (reason) => this.abort(reason),
    });
  }

  async finish(): Promise<SinkResult> {
    const code = await this.#child.exited;
    if (this.#abortion) {
      throw (
        this.#abortReason ??
        new EngineError(`${this.#action} was aborted before it finished`)
      );
    }
    const stdout = await this.#stdout;
    logger.debug(`${this.#action} printed: ${stdout.trim()}`);
    if (code !== 0) {
      throw await this.#engineFailure();
    }
    return { ...parseLoadOutput(stdout), output: stdout };
  }

  abort(reason?: unknown): Promise<void> {
    this.#abortion ??= this.#kill(reason);
    return this.#abortion;
  }

  async #write(chunk: Uint8Array): Promise<void> {
    try {
      await this.#stdin.write(chunk);
    } catch (error) {
      throw await this.#writeFailure(error);
    }
  }

  async #close(): Promise<void> {
    this.#closing = true;
    try {
      await this.#stdin.close();
    } catch (error) {
      throw await this.#writeFailure(error);
    }
  }

  async #kill(reason: unknown): Promise<void> {
    this.#abortReason = reason;
    logger.debug(`Killing ${this.#action} (pid ${this.#child.pid})`);

    // Killing comes first because closing the pipe would hand docker a
    // clean end of input. A pending write may hold the writer, and it
    // settles once the pipe breaks.
    this.#child.kill("SIGKILL");
    try {
      await this.#stdin.abort(reason);
    } catch {
      // The pipe is already broken, which is the goal.
    }
    await this.#child.exited;
  }

  /** Explains a failed write: by the abort reason, or by docker's stderr. */
  async #writeFailure(error: unknown): Promise<unknown> {
    if (this.#abortion) {
      return this.#abortReason ?? error;
    }
    logger.debug(`Writing to ${this.#action} failed: ${String(error)}`);
    return await this.#engineFailure();
  }

  /**
   * Waits for docker to exit and builds the error from its stderr. The
   * same error serves every caller, so the writable and `finish()` agree.
   */
  #engineFailure(): Promise<EngineError> {
    this.#failure ??= this.#describeExit();
    return this.#failure;
  }

  async #describeExit(): Promise<EngineError> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, exitGraceMs);
    });
    const exited = await Promise.race([this.#child.exited, grace]);
    clearTimeout(timer);
    if (exited === undefined) {
      this.#child.kill("SIGKILL");
    }

    const code = await this.#child.exited;
    const stderr = await this.#stderr;
    logger.debug(`${this.#action} exited with ${code}: ${stderr.trim()}`);
    if (code === 0) {
      return new EngineError(
        `${this.#action} exited before the archive ended`,
        { hint: "Run with --debug to see the command's full output" },
      );
    }
    return cliError(this.#action, stderr, code, this.#host);
  }
}

/**
 * Reads the lines `docker load` prints for each image. The daemon writes
 * them and the CLI passes them on (checked with CLI 28.2 and Engine
 * 20.10). The `already exists` line appears when a tag moves to the
 * loaded image.
 */
export function parseLoadOutput(stdout: string): SinkResult {
  const result: SinkResult = {
    loadedReferences: [],
    loadedImageIds: [],
    displaced: [],
  };
  for (const rawLine of stdout.split(/\r?\n/)) {
    const line = rawLine.trim();
    const id = /^Loaded image ID: (\S+)$/.exec(line);
    const reference = /^Loaded image: (\S+)$/.exec(line);
    const displaced =
      /^The image (\S+) already exists, renaming the old one with ID (\S+) to empty string$/.exec(
        line,
      );
    if (id?.[1]) {
      result.loadedImageIds.push(id[1]);
    } else if (reference?.[1]) {
      result.loadedReferences.push(reference[1]);
    } else if (displaced?.[1] && displaced[2]) {
      result.displaced.push({ reference: displaced[1], oldId: displaced[2] });
    }
  }
  return result;
}

/**
 * Runs `docker version` and returns the daemon's version, killing the
 * CLI when the daemon does not respond within `timeoutMs`.
 *
 * @throws EngineError saying whether the daemon is unreachable, its
 * socket is not accessible, the CLI is missing, or the check timed out.
 */
export async function checkDaemon(
  runtime: Runtime,
  options: CheckDaemonOptions = {},
): Promise<{ serverVersion: string }> {
  const command = options.command ?? "docker";
  const timeoutMs = options.timeoutMs ?? 5000;
  const host = dockerHost(runtime, options);
  const argv = [command, "version", "--format", "{{json .Server}}"];
  const run = await runCli(runtime, argv, { ...options, timeoutMs });

  if (run.code === undefined) {
    throw new EngineError(
      `The Docker daemon at ${host} did not respond within ${timeoutMs / 1000} s`,
      {
        hint: "Check that dockerd is running and responsive, or set DOCKER_HOST to another daemon",
      },
    );
  }
  if (run.code !== 0) {
    throw cliError(`${command} version`, run.stderr, run.code, host);
  }

  const server = parseJson(run.stdout) as { Version?: unknown } | null;
  if (typeof server?.Version !== "string") {
    throw new EngineError(
      `${command} version printed no server version: ${run.stdout.trim()}`,
      { hint: "Check that DOCKER_HOST points at a Docker daemon" },
    );
  }
  return { serverVersion: server.Version };
}

/**
 * Looks up an image by reference or ID with `docker image inspect`.
 * Returns undefined when no such image exists.
 *
 * @throws EngineError for any other failure of the CLI.
 */
export async function inspectImage(
  runtime: Runtime,
  reference: string,
  options: CheckDaemonOptions = {},
): Promise<DockerImage | undefined> {
  const command = options.command ?? "docker";
  const argv = [command, "image", "inspect", "--format", "{{json .}}"];
  const run = await runCli(runtime, [...argv, "--", reference], {
    ...options,
    timeoutMs: options.timeoutMs ?? 30_000,
  });

  if (run.code !== 0 && /no such image/i.test(run.stderr)) {
    return undefined;
  }
  if (run.code !== 0) {
    const host = dockerHost(runtime, options);
    const action = `${command} image inspect ${reference}`;
    throw cliError(action, run.stderr, run.code, host);
  }

  const image = parseJson(run.stdout) as {
    Id?: unknown;
    RepoTags?: unknown;
  } | null;
  if (typeof image?.Id !== "string") {
    throw new EngineError(
      `${command} image inspect ${reference} printed no image ID`,
      { hint: "Run with --debug to see the command's full output" },
    );
  }
  const tags = Array.isArray(image.RepoTags) ? image.RepoTags : [];
  return { id: image.Id, repoTags: tags.map(String).sort() };
}

/**
 * Lists every image in the daemon, untagged ones included, with the tags
 * that point at each.
 *
 * @throws EngineError when the CLI fails.
 */
export async function listImages(
  runtime: Runtime,
  options: CheckDaemonOptions = {},
): Promise<DockerImage[]> {
  const command = options.command ?? "docker";
  const argv = [command, "image", "ls", "--all", "--no-trunc"];
  const run = await runCli(runtime, [...argv, "--format", "{{json .}}"], {
    ...options,
    timeoutMs: options.timeoutMs ?? 30_000,
  });
  if (run.code !== 0) {
    const host = dockerHost(runtime, options);
    throw cliError(`${command} image ls`, run.stderr, run.code, host);
  }

  const images = new Map<string, string[]>();
  for (const line of run.stdout.split("\n")) {
    if (line.trim().length === 0) {
      continue;
    }
    const row = parseJson(line) as {
      ID?: string;
      Repository?: string;
      Tag?: string;
    } | null;
    if (!row?.ID) {
      continue;
    }
    const tags = images.get(row.ID) ?? [];
    if (row.Repository !== "<none>" && row.Tag !== "<none>") {
      tags.push(`${row.Repository}:${row.Tag}`);
    }
    images.set(row.ID, tags);
  }
  return [...images].map(([id, tags]) => ({ id, repoTags: tags.sort() }));
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
