/**
 * The retry policy of HTTP downloads: which failures are worth another
 * attempt, and how long to wait before it.
 */

/** Maximum wait between attempts that backoff alone produces. */
export const maxBackoffMs = 30_000;

/** Maximum `Retry-After` that is waited out instead of failing. */
export const maxRetryAfterMs = 5 * 60_000;

/** Share of a backoff delay that jitter may add or take away. */
const jitterShare = 0.2;

/**
 * Returns the wait before the next attempt after `failures` consecutive
 * failed attempts (1 for the first). The wait is `baseMs`, doubled for each
 * further failure and capped at `maxMs`. Jitter then moves it by up to 20%
 * either way, so that many clients cut off at once do not return at once.
 *
 * @param random A source of numbers in [0, 1), replaceable in tests.
 */
export function backoffDelay(
  failures: number,
  baseMs: number,
  maxMs: number = maxBackoffMs,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, failures - 1);
  const delay = Math.min(baseMs * 2 ** exponent, maxMs);
  const jitter = (random() * 2 - 1) * jitterShare * delay;
  return Math.max(0, Math.round(Math.min(delay + jitter, maxMs)));
}

/**
 * Parses a `Retry-After` header, either delay seconds or an HTTP date, into
 * milliseconds from `now`. Returns undefined for a missing or invalid
 * value, and 0 for a date in the past.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === null || value === undefined) return undefined;

  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;

  // Every HTTP date format starts with the day name; that also keeps
  // Date.parse from reading "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(text)) return undefined;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/**
 * Reports whether an HTTP status is worth another attempt: 408 Request
 * Timeout, 429 Too Many Requests and every 5xx. Other statuses mean the
 * same request will fail again.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status < 600);
}

const certificateCodePattern =
  /CERT|SSL|TLS|UNABLE_TO_(VERIFY|GET)|SELF_SIGNED|HOSTNAME|ALTNAME/i;

/**
 * Reports whether an error thrown by `fetch` is a TLS certificate problem.
 * Those are not retried, because the same certificate comes back.
 */
export function isCertificateError(error: unknown): boolean {
  const code = errorCode(error) ?? "";
  return certificateCodePattern.test(code);
}

/** Returns the system or Bun error code of `error`, such as ECONNRESET. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;

  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && code.length > 0 ? code : undefined;
}

/**
 * Sleeps `ms` milliseconds, or rejects with the signal's reason as soon as
 * `signal` aborts.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }

    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Formats a duration for messages: `250 ms` below a second, else seconds
 * such as `1.5 s` or `30 s`.
 */
export function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  const digits = seconds < 10 && !Number.isInteger(seconds) ? 1 : 0;
  return `${seconds.toFixed(digits)} s`;
}

/**
 * A failed attempt that is worth another one, with the reason for the log.
 * The download turns it into a SourceError once the retries are spent.
 */
export class RetryableFailure extends Error {
  /** The wait the server asked for with Retry-After, in ms. */
  readonly retryAfterMs?: number;

  constructor(reason: string, retryAfterMs?: number, cause?: unknown) {
    super(reason, { cause });
    this.name = "RetryableFailure";
    this.retryAfterMs = retryAfterMs;
  }
}

/** The abort reason of a request or read that received nothing in time. */
export class StallTimeout extends Error {
  constructor() {
    super("timed out");
    this.name = "StallTimeout";
  }
}

/** Reports whether `controller` was aborted by a StallTimeout. */
export function isStallTimeout(controller: AbortController): boolean {
  return controller.signal.reason instanceof StallTimeout;
}
