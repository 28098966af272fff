// consola/core has no reporters of its own, so it does not load
// node:readline and node:tty, which took 15-20 ms of every start.
import {
  createConsola,
  type ConsolaInstance,
  type LogObject,
} from "consola/core";
import process from "node:process";
import util from "node:util";
import { clearProgressLine } from "./progress.ts";
import { redact } from "./redact.ts";

export const logLevel = {
  quiet: 0,
  normal: 3,
  debug: 4,
} as const;

const levelLabels: Record<number, string> = {
  0: "error",
  1: "warning",
};

/**
 * Writes each log line to stderr as `imgload: [level: ]message`, after
 * redacting registered secrets. Plain lines suit both terminals and CI
 * logs, and keep stdout free for the result.
 */
const stderrReporter = {
  log(logObject: LogObject): void {
    const text = util.formatWithOptions({ colors: false }, ...logObject.args);
    const label = levelLabels[logObject.level];
    const prefix = label ? `imgload: ${label}: ` : "imgload: ";
    clearProgressLine();
    process.stderr.write(`${prefix}${redact(text)}\n`);
  },
};

/**
 * The one logger of imgload. Everything goes to stderr, so stdout carries
 * only the result (or the tar with `--output -`). The CLI sets the level:
 * `--quiet` keeps errors only, `--debug` adds debug lines.
 */
export const logger: ConsolaInstance = createConsola({
  level: logLevel.normal,
  reporters: [stderrReporter],
});
