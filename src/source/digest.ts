import { createHash } from "node:crypto";

import { SourceError, UsageError } from "../errors.ts";

/** Options of `DigestStream`. */
export interface DigestStreamOptions {
  /** The expected SHA-256 as 64 hex digits, optionally `sha256:`-prefixed. */
  expected?: string;
  /** The source as shown in the mismatch message, already redacted. */
  label?: string;
}

/**
 * Parses a SHA-256 given by the user: 64 hex digits in either case, with
 * or without a `sha256:` prefix. Returns the lowercase hex digits.
 *
 * @throws UsageError when the value is not such a digest.
 */
export function parseSha256(value: string): string {
  const hex = value.trim().replace(/^sha256:/i, "");
  if (!/^[0-9a-f]{64}$/i.test(hex)) {
    throw new UsageError(`Invalid SHA-256 "${value}"`, {
      hint: "Give 64 hex digits, optionally prefixed with sha256:",
    });
  }
  return hex.toLowerCase();
}

/**
 * A pass-through stream that computes the SHA-256 of the bytes flowing
 * through it. With `expected`, a mismatch at the end errors the stream
 * instead of closing it, so a downstream consumer never gets a clean end
 * of bytes that are not the expected ones.
 */
export class DigestStream extends TransformStream<Uint8Array, Uint8Array> {
  /**
   * The lowercase hex SHA-256 of all bytes, once the input has ended. It
   * resolves even on a mismatch, and rejects if the stream is aborted or
   * cancelled before the end.
   */
  readonly digest: Promise<string>;

  constructor(options: DigestStreamOptions = {}) {
    const expected =
      options.expected === undefined
        ? undefined
        : parseSha256(options.expected);
    const hash = createHash("sha256");
    const settle = deferred<string>();

    super({
      transform(chunk, controller) {
        hash.update(chunk);
        controller.enqueue(chunk);
      },
      flush() {
        const actual = hash.digest("hex");
        settle.resolve(actual);
        if (expected !== undefined && actual !== expected) {
          throw mismatchError(expected, actual, options.label);
        }
      },
      cancel(reason: unknown) {
        settle.reject(reason);
      },
    } as Transformer<Uint8Array, Uint8Array>);

    // Callers may never await the digest of a failed download, so its
    // rejection must not count as unhandled.
    settle.promise.catch(() => {});
    this.digest = settle.promise;
  }
}

function mismatchError(
  expected: string,
  actual: string,
  label: string | undefined,
): SourceError {
  const subject = label === undefined ? "The downloaded bytes" : label;
  return new SourceError(
    `SHA-256 mismatch for ${subject}: expected ${expected}, got ${actual}`,
    {
      hint:
        "The source is not the file the digest names; check the URL " +
        "and --sha256",
    },
  );
}

function deferred<T>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (reason: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
