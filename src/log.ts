import { createConsola, type ConsolaInstance } from "consola";

/**
 * The one logger of imgload. Everything goes to stderr, so stdout carries
 * only the result (or the tar with `--output -`). The CLI sets the level:
 * `--quiet` keeps errors only, `--debug` adds debug lines.
 */
export const logger: ConsolaInstance = createConsola({
  stdout: process.stderr,
  stderr: process.stderr,
  formatOptions: { date: false },
});

export const logLevel = {
  quiet: 0,
  normal: 3,
  debug: 4,
} as const;
