import { BunRuntime } from "./bun.ts";
import { DenoRuntime } from "./deno.ts";
import type { Runtime } from "./types.ts";

export type {
  ByteWriter,
  ChildProcess,
  FetchOptions,
  OpenedFile,
  Runtime,
  SpawnOptions,
} from "./types.ts";
export { BunRuntime } from "./bun.ts";
export { DenoRuntime } from "./deno.ts";

let current: Runtime | undefined;

/**
 * Returns the {@linkcode Runtime} for the JavaScript runtime this process
 * runs on, chosen once by the `Bun` or `Deno` global.
 *
 * @throws Error when neither global exists, as under Node.js.
 */
export function getRuntime(): Runtime {
  current ??= detectRuntime();
  return current;
}

function detectRuntime(): Runtime {
  const globals = globalThis as { Bun?: unknown; Deno?: unknown };
  if (globals.Bun !== undefined) {
    return new BunRuntime();
  }
  if (globals.Deno !== undefined) {
    return new DenoRuntime();
  }
  throw new Error("imgload runs on Bun or Deno; neither was detected");
}
