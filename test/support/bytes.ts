import { createHash } from "node:crypto";
import { formatWithOptions } from "node:util";

import type { ConsolaReporter, LogObject } from "consola";

import { logger, logLevel } from "../../src/log.ts";

/** Returns the lowercase hex SHA-256 of `bytes`. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * A seeded pseudo-random number generator (mulberry32) returning numbers
 * in [0, 1), so random test inputs can be replayed from the seed.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns `size` pseudo-random bytes derived from `seed`. */
export function randomBytes(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let state = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    // xorshift32: fast enough for tens of megabytes.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    words[i] = state >>> 0;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** Reads a stream to the end and returns all its bytes. */
export async function readAll(
  stream: ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let length = 0;
  for await (const chunk of stream) {
    chunks.push(chunk);
    length += chunk.length;
  }

  const result = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    result.set(chunk, offset);
    offset += chunk.length;
  }
  return result;
}

/** Log lines captured by `captureLogs`. */
export interface CapturedLogs {
  /** Each line as formatted for output, with its level type. */
  lines: Array<{ type: string; text: string }>;
  /** All lines joined with newlines. */
  text(): string;
  /** Restores the logger's reporters and level. */
  restore(): void;
}

/**
 * Replaces the logger's reporters with one that records every line at
 * debug level, without redaction, so tests see exactly what the code
 * logged.
 */
export function captureLogs(): CapturedLogs {
  const previousReporters = [...logger.options.reporters];
  const previousLevel = logger.level;
  const lines: CapturedLogs["lines"] = [];

  const reporter: ConsolaReporter = {
    log(logObj: LogObject) {
      const text = formatWithOptions({ colors: false }, ...logObj.args);
      lines.push({ type: logObj.type, text });
    },
  };
  logger.setReporters([reporter]);
  logger.level = logLevel.debug;

  return {
    lines,
    text: () => lines.map((line) => line.text).join("\n"),
    restore() {
      logger.setReporters(previousReporters);
      logger.level = previousLevel;
    },
  };
}
