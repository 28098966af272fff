import { EngineError } from "../errors.ts";
import { logger } from "../log.ts";
import type { ChildProcess, Runtime } from "../runtime/types.ts";

/** Options shared by the functions that run the Docker CLI. */
export interface DockerOptions {
  /** The CLI to run, `docker` by default. */
  command?: string;
  /** Extra environment variables for the CLI, such as `DOCKER_HOST`. */
  env?: Record<string, string>;
}

/** The Docker CLI's default daemon address on Linux. */
export const defaultDockerHost = "unix:///var/run/docker.sock";

// Enough to hold any message docker prints, while a runaway child cannot
// fill memory.
const maxCapturedBytes = 1024 * 1024;

/**
 * Starts the CLI and turns a missing or non-executable binary into an
 * EngineError that suggests `--output` as the way around it.
 */
export function spawnCli(
  runtime: Runtime,
  argv: readonly string[],
  options: DockerOptions & { stdin?: "pipe" | "ignore" },
): ChildProcess {
  logger.debug(`Running ${argv.join(" ")}`);
  try {
    return runtime.spawn(argv, { env: options.env, stdin: options.stdin });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const command = argv[0];
    if (code === "ENOENT") {
      throw new EngineError(`Cannot run ${command}: command not found`, {
        hint: "Install the Docker CLI, or write the archive to a file with --output FILE",
        cause: error,
      });
    }
    if (code === "EACCES") {
      throw new EngineError(`Cannot run ${command}: permission denied`, {
        hint: "Make the CLI executable, or write the archive with --output FILE",
        cause: error,
      });
    }
    throw error;
  }
}

/** The outcome of a CLI run that {@linkcode runCli} waited for. */
export interface CliRun {
  /** The exit status; undefined when the run timed out and was killed. */
  code: number | undefined;
  stdout: string;
  stderr: string;
}

/**
 * Runs the CLI with stdin closed and captures its output. A run longer
 * than `timeoutMs` is killed, because a daemon that accepts connections
 * but never responds makes the CLI wait forever.
 */
export async function runCli(
  runtime: Runtime,
  argv: readonly string[],
  options: DockerOptions & { timeoutMs: number },
): Promise<CliRun> {
  const child = spawnCli(runtime, argv, { ...options, stdin: "ignore" });
  const stdout = readText(child.stdout);
  const stderr = readText(child.stderr);

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), options.timeoutMs);
  });
  const outcome = await Promise.race([child.exited, timeout]);
  clearTimeout(timer);

  if (outcome === "timeout") {
    child.kill("SIGKILL");
    await child.exited;
  }
  return {
    code: outcome === "timeout" ? undefined : outcome,
    stdout: await stdout,
    stderr: await stderr,
  };
}

/**
 * Reads a child's output as text, keeping the first megabyte. Never
 * rejects, so a broken pipe cannot become an unhandled rejection.
 */
export async function readText(
  stream: ReadableStream<Uint8Array>,
): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  let size = 0;
  try {
    for await (const chunk of stream) {
      if (size < maxCapturedBytes) {
        text += decoder.decode(chunk, { stream: true });
      }
      size += chunk.byteLength;
    }
  } catch (error) {
    logger.debug(`Reading a child's output failed: ${String(error)}`);
  }
  return text + decoder.decode();
}

/**
 * Picks the line of the CLI's stderr that explains a failure: the first
 * non-empty line that is not a warning, without the request URL that
 * Go's HTTP client appends to connection errors.
 */
export function failureLine(stderr: string): string | undefined {
  const lines = stderr
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
  const line = lines.find((text) => !/^warning\b/i.test(text)) ?? lines[0];
  return line?.replace(/: (?:Get|Head|Post) "[^"]*".*$/, "");
}

/** Returns the daemon address the CLI uses, for messages. */
export function dockerHost(runtime: Runtime, options: DockerOptions): string {
  return (
    options.env?.DOCKER_HOST ?? runtime.env("DOCKER_HOST") ?? defaultDockerHost
  );
}

/**
 * Builds the EngineError for a failed CLI run, with a hint for the
 * daemon problems a user can fix: it is not running, the socket is not
 * accessible, or its disk is full.
 */
export function cliError(
  action: string,
  stderr: string,
  code: number | undefined,
  host: string,
): EngineError {
  const line = failureLine(stderr);
  const detail = line ?? `exited with code ${code}`;

  if (line && /cannot connect to the docker daemon/i.test(line)) {
    const at = /daemon at (\S+?)\.? Is the/i.exec(line)?.[1] ?? host;
    return new EngineError(`Cannot reach the Docker daemon at ${at}`, {
      hint: "Start dockerd, or set DOCKER_HOST to the address of a running daemon",
    });
  }
  if (line && /permission denied while trying to connect/i.test(line)) {
    const at = /socket at (\S+)/i.exec(line)?.[1] ?? host;
    return new EngineError(
      `Permission denied on the Docker daemon socket ${at}`,
      {
        hint: "Add your user to the docker group and log in again, or run with sudo",
      },
    );
  }
  if (line && /no space left on device/i.test(line)) {
    return new EngineError(`${action} failed: ${line}`, {
      hint: "Free disk space under Docker's data root, for example with docker image prune",
    });
  }
  return new EngineError(`${action} failed: ${detail}`, {
    hint: "Run with --debug to see the command's full output",
  });
}
