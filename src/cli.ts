import { writeSync } from "node:fs";
import process from "node:process";
import { defineCommand, runCommand, type ArgsDef } from "citty";
import pkg from "../package.json" with { type: "json" };
import {
  EngineError,
  ExitCode,
  ImgloadError,
  InterruptedError,
  UsageError,
} from "./errors.ts";
import { renderLoadHelp, renderMainHelp } from "./_help.ts";
import { loadImage } from "./load.ts";
import { logger, logLevel } from "./log.ts";
import { addSecret, redact } from "./redact.ts";
import { getRuntime } from "./runtime/index.ts";
import type { Runtime } from "./runtime/types.ts";
import { parseHeaderArgs } from "./source/http.ts";
import type { LoadResult, ZstdDecoderChoice } from "./types.ts";

export const exitCodeHelp = `Exit codes:
  0    the image was loaded (or written with --output)
  1    internal error: a bug; please report it with the --debug output
  2    usage: invalid option, invalid image name, or a name for an
       archive that holds several images
  3    source: HTTP status, network, file not found, an HTML page instead
       of an archive, digest mismatch, file changed during the download
  4    archive: unsupported format, failed decompression, empty input,
       invalid tar or metadata
  5    engine or output: the daemon is unreachable, docker load failed,
       the output file could not be written
  130  interrupted by SIGINT (143: SIGTERM); nothing was loaded`;

const loadArgs = {
  source: {
    type: "positional",
    required: true,
    valueHint: "SOURCE",
    description: "Image archive: an http(s) URL, a file path, or - for stdin",
  },
  name: {
    type: "positional",
    required: false,
    valueHint: "NAME[:TAG]",
    description:
      "Load the image under this name only (tag defaults to latest); without it the archive's own names are kept",
  },
  output: {
    type: "string",
    alias: "o",
    valueHint: "FILE|-",
    description:
      "Write the rewritten, uncompressed tar to FILE (- for stdout) instead of loading it",
  },
  sha256: {
    type: "string",
    valueHint: "HEX",
    description:
      "Expected SHA-256 of the downloaded bytes; on a mismatch nothing is loaded",
  },
  header: {
    type: "string",
    alias: "H",
    valueHint: "'Name: value'|@FILE",
    description:
      "Add an HTTP request header; repeatable. @FILE reads one header per line",
  },
  retries: {
    type: "string",
    valueHint: "N",
    default: "8",
    description:
      "Retries of a failing HTTP download in a row; an attempt that delivers bytes resets the count",
  },
  "retry-delay": {
    type: "string",
    valueHint: "SECONDS",
    default: "1",
    description: "First wait before a retry, in seconds, doubling up to 30",
  },
  timeout: {
    type: "string",
    valueHint: "SECONDS",
    default: "30",
    description: "Fail an HTTP attempt after this many seconds without data",
  },
  cacert: {
    type: "string",
    valueHint: "FILE",
    description:
      "Trust the CA certificates in this PEM file for https (also SSL_CERT_FILE)",
  },
  "zstd-decoder": {
    type: "enum",
    valueHint: "auto|native|wasm",
    options: ["auto", "native", "wasm"],
    default: "auto",
    description:
      "zstd decoder: native (the runtime's), wasm (portable), or auto (native when available)",
  },
  json: {
    type: "boolean",
    description: "Print the result as one JSON object on stdout, on failure too",
  },
  quiet: {
    type: "boolean",
    alias: "q",
    description: "Print nothing on stderr unless something fails",
  },
  debug: {
    type: "boolean",
    description: "Print debug logs, and stack traces of internal errors",
  },
} as const satisfies ArgsDef;

/**
 * Runs the imgload command line and returns the exit code. All output
 * goes through `logger` (stderr) and the result writer (stdout).
 */
export async function runCli(
  argv: string[],
  runtime: Runtime = getRuntime(),
): Promise<number> {
  const [command, ...rest] = argv;

  if (command === undefined || command === "--help" || command === "-h") {
    process.stdout.write(renderMainHelp(pkg.version, exitCodeHelp));
    return command === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (command === "--version" || command === "-v") {
    process.stdout.write(`${pkg.version}\n`);
    return ExitCode.ok;
  }
  if (command !== "load") {
    const hint = command.startsWith("-")
      ? "Run imgload --help for the commands"
      : `To load it, run: imgload load ${redact(command)} ...`;
    logger.error(`Unknown command "${redact(command)}". ${hint}`);
    return ExitCode.usage;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(renderLoadHelp(pkg.version, loadArgs, exitCodeHelp));
    return ExitCode.ok;
  }

  return await runLoad(rest, runtime);
}

async function runLoad(rawArgs: string[], runtime: Runtime): Promise<number> {
  const json = rawArgs.includes("--json");
  const debug = rawArgs.includes("--debug");
  const quiet = rawArgs.includes("--quiet") || rawArgs.includes("-q");
  logger.level = logLevel.normal;
  if (quiet) {
    logger.level = logLevel.quiet;
  }
  if (debug) {
    logger.level = logLevel.debug;
  }
  let resultToStderr = false;

  // An interrupt aborts the pipeline, which kills the engine and removes
  // temporary output before the process exits with 130 or 143. A second
  // interrupt exits at once.
  const controller = new AbortController();
  const removeHandlers = (["SIGINT", "SIGTERM"] as const).map((signal) =>
    runtime.onSignal(signal, () => {
      if (controller.signal.aborted) {
        runtime.exit(new InterruptedError(signal).exitCode);
      }
      logger.debug(`Received ${signal}, stopping`);
      controller.abort(new InterruptedError(signal));
    }),
  );

  try {
    const args = await parseLoadArgs(rawArgs);
    if (args.output === "-" && args.json) {
      throw new UsageError("--json cannot be combined with --output -", {
        hint: "Both write to stdout; use --output FILE with --json",
      });
    }
    if (args.output === "-" && runtime.isTerminal(1)) {
      throw new UsageError("Cannot write a tar archive to a terminal", {
        hint: "Redirect stdout to a file or pipe, or use --output FILE",
      });
    }
    resultToStderr = args.output === "-";

    const result = await loadImage(
      {
        source: args.source,
        name: args.name,
        output: args.output,
        sha256: args.sha256,
        headers: args.headers,
        retries: args.retries,
        retryDelayMs: args.retryDelayMs,
        timeoutMs: args.timeoutMs,
        caCertPath: args.cacert ?? runtime.env("SSL_CERT_FILE"),
        zstdDecoder: args.zstdDecoder,
        progress: !quiet && !json,
        signal: controller.signal,
      },
      runtime,
    );
    for (const { reference, oldId } of result.displaced) {
      logger.info(`${reference} previously named image ${oldId}`);
    }
    // With --output - the result goes to stderr, which --quiet silences.
    if (!(quiet && resultToStderr)) {
      writeResult(formatResult(result, json), resultToStderr);
    }
    return ExitCode.ok;
  } catch (error) {
    const failure = describeFailure(error, debug);
    logger.error(failure.line);
    if (json) {
      const failureJson = JSON.stringify({
        ok: false,
        exitCode: failure.exitCode,
        error: { kind: failure.kind, message: redact(failure.line) },
      });
      try {
        writeResult(`${failureJson}\n`, resultToStderr);
      } catch {
        // The error line on stderr already reports the failure.
      }
    }
    return failure.exitCode;
  } finally {
    for (const remove of removeHandlers) {
      remove();
    }
  }
}

interface ParsedLoadArgs {
  source: string;
  name?: string;
  output?: string;
  sha256?: string;
  headers: Array<[string, string]>;
  retries: number;
  retryDelayMs: number;
  timeoutMs: number;
  cacert?: string;
  zstdDecoder: ZstdDecoderChoice;
  json: boolean;
}

const booleanFlags = new Set(["--json", "--quiet", "-q", "--debug"]);

/**
 * Parses and validates the `load` arguments. citty parses the values and
 * renders help. Repeated `--header` values and unknown options are
 * handled here, because citty keeps only the last value of an option and
 * accepts options it does not define.
 */
async function parseLoadArgs(rawArgs: string[]): Promise<ParsedLoadArgs> {
  const headerValues = collectRepeated(rawArgs, ["--header", "-H"]);
  rejectUnknownOptions(rawArgs);

  let parsed: Record<string, unknown>;
  try {
    const { result } = await runCommand(
      defineCommand({ args: loadArgs, run: ({ args }) => args }),
      { rawArgs },
    );
    parsed = result as Record<string, unknown>;
  } catch (error) {
    const message = stripAnsi((error as Error).message).replace(/\.$/, "");
    throw new UsageError(message, { hint: "Run imgload load --help" });
  }

  const positionals = (parsed._ as string[]) ?? [];
  if (positionals.length > 2) {
    throw new UsageError(
      `Too many arguments: ${positionals.slice(2).join(" ")}`,
      { hint: "Usage: imgload load <url|file|-> [NAME[:TAG]]" },
    );
  }

  if (parsed.source === "") {
    throw new UsageError("The source is empty", {
      hint: "Give an http(s) URL, a file path, or - for stdin",
    });
  }
  if (parsed.output === "") {
    throw new UsageError("The --output path is empty", {
      hint: "Give a file path, or - for stdout",
    });
  }

  const headers = await parseHeaderArgs(headerValues);
  for (const [, value] of headers) {
    addSecret(value);
  }

  return {
    source: parsed.source as string,
    name: parsed.name as string | undefined,
    output: parsed.output as string | undefined,
    sha256: parsed.sha256 as string | undefined,
    headers,
    retries: parseCount("--retries", parsed.retries as string),
    retryDelayMs: parseSeconds("--retry-delay", parsed["retry-delay"] as string, true) * 1000,
    timeoutMs: parseSeconds("--timeout", parsed.timeout as string, false) * 1000,
    cacert: parsed.cacert as string | undefined,
    zstdDecoder: parsed["zstd-decoder"] as ZstdDecoderChoice,
    json: parsed.json === true,
  };
}

const valueFlags = new Set(
  Object.entries(loadArgs).flatMap(([name, def]) => {
    if (def.type !== "string" && def.type !== "enum") {
      return [];
    }
    const alias = "alias" in def ? [`-${def.alias}`] : [];
    return [`--${name}`, ...alias];
  }),
);

function collectRepeated(rawArgs: string[], names: string[]): string[] {
  const values: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") {
      break;
    }
    const inline = names.find((name) => arg.startsWith(`${name}=`));
    if (inline) {
      values.push(arg.slice(inline.length + 1));
    } else if (names.includes(arg)) {
      const value = rawArgs[i + 1];
      if (value === undefined) {
        throw new UsageError(`Option ${arg} needs a value`, {
          hint: "Give it as --header 'Name: value' or --header @FILE",
        });
      }
      values.push(value);
      i++;
    }
  }
  return values;
}

function rejectUnknownOptions(rawArgs: string[]): void {
  for (let i = 0; i < rawArgs.length; i++) {
    const arg = rawArgs[i]!;
    if (arg === "--") {
      return;
    }
    if (arg === "-" || !arg.startsWith("-")) {
      continue;
    }
    const flag = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg;
    if (valueFlags.has(flag)) {
      if (!arg.includes("=")) {
        if (rawArgs[i + 1] === undefined) {
          throw new UsageError(`Option ${flag} needs a value`, {
            hint: "Run imgload load --help",
          });
        }
        i++;
      }
      continue;
    }
    if (!booleanFlags.has(flag)) {
      throw new UsageError(`Unknown option ${flag}`, {
        hint: "Run imgload load --help for the options",
      });
    }
  }
}

function parseCount(flag: string, value: string): number {
  if (!/^\d+$/.test(value)) {
    throw new UsageError(`Invalid ${flag} value "${value}": expected a whole number`, {
      hint: `Give ${flag} 0 or more, such as ${flag} 8`,
    });
  }
  return Number(value);
}

// Timers take at most 2^31 - 1 ms, about 24.8 days.
const maxSeconds = Math.floor((2 ** 31 - 1) / 1000);

function parseSeconds(flag: string, value: string, allowZero: boolean): number {
  const seconds = Number(value);
  const valid =
    value.trim() !== "" &&
    Number.isFinite(seconds) &&
    (allowZero ? seconds >= 0 : seconds > 0);
  if (!valid) {
    throw new UsageError(
      `Invalid ${flag} value "${value}": expected ${allowZero ? "0 or more" : "more than 0"} seconds`,
      { hint: `Give seconds as a number, such as ${flag} 30` },
    );
  }
  if (seconds > maxSeconds) {
    throw new UsageError(
      `Invalid ${flag} value "${value}": more than ${maxSeconds} seconds`,
      { hint: `Give at most ${maxSeconds} seconds` },
    );
  }
  return seconds;
}

function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** Formats a result: one line per image, or one JSON object. */
export function formatResult(result: LoadResult, json: boolean): string {
  if (json) {
    return `${JSON.stringify({ ok: true, ...result })}\n`;
  }
  const verb = result.output === undefined ? "Loaded" : "Wrote";
  const where = result.output === undefined ? "" : ` to ${result.output}`;
  const original = result.original
    ? `${result.original.name}:${result.original.tag}`
    : undefined;
  return result.images
    .map((image) => {
      const name = image.reference ?? "an untagged image";
      const id = image.id ? ` (${image.id})` : "";
      // A rename loads one image, under a name other than its own.
      const renamed =
        original && result.images.length === 1 && image.reference !== original
          ? `; archive named it ${original}`
          : "";
      return `${verb} ${name}${id}${where}${renamed}\n`;
    })
    .join("");
}

/**
 * Writes the result synchronously, so a result that cannot be written
 * (stdout closed, a full disk) fails the command instead of vanishing.
 */
function writeResult(text: string, toStderr: boolean): void {
  try {
    writeSync(toStderr ? 2 : 1, redact(text));
  } catch (error) {
    const code = (error as { code?: string }).code ?? String(error);
    throw new EngineError(
      `Cannot write the result to ${toStderr ? "stderr" : "stdout"} (${code})`,
      { hint: "The load itself finished; check where the output goes", cause: error },
    );
  }
}

interface Failure {
  exitCode: number;
  kind: string;
  line: string;
}

function describeFailure(error: unknown, debug: boolean): Failure {
  if (error instanceof ImgloadError) {
    if (debug && error.cause !== undefined) {
      logger.debug("Caused by:", error.cause);
    }
    return { exitCode: error.exitCode, kind: error.kind, line: error.displayMessage };
  }
  if (debug) {
    logger.debug(error);
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    exitCode: ExitCode.internal,
    kind: "internal",
    line: `Internal error: ${message}. This is a bug in imgload ${pkg.version}; please report it with the output of --debug`,
  };
}
