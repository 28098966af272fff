import { createHash, type Hash } from "node:crypto";
import process from "node:process";

import { SourceError, UsageError } from "../errors.ts";
import { logger } from "../log.ts";
import { addUrlSecrets, redactUrl } from "../redact.ts";
import { getRuntime } from "../runtime/index.ts";
import type { Runtime } from "../runtime/types.ts";
import type { EnvReader } from "./http-proxy.ts";
import { HttpRequester, throwIfAborted } from "./http-request.ts";
import {
  contentLength,
  describeNetworkError,
  fileChangedError,
  isHtml,
  parseContentRange,
  statusError,
  type Validator,
  validatorOf,
} from "./http-response.ts";
import {
  backoffDelay,
  formatDelay,
  isRetryableStatus,
  isStallTimeout,
  maxRetryAfterMs,
  parseRetryAfter,
  RetryableFailure,
  sleep,
  StallTimeout,
} from "./retry.ts";

export { parseHeaderArgs } from "./http-headers.ts";

/** Options of `openHttpSource`. */
export interface HttpSourceOptions {
  /** Extra request headers, such as Authorization, in order. */
  headers?: Array<[string, string]>;
  /**
   * Consecutive failed attempts allowed after the first one (default 8).
   * An attempt that delivers new bytes resets the count.
   */
  retries?: number;
  /** The first wait before a retry in ms, doubled up to 30 s (default 1000). */
  retryDelayMs?: number;
  /**
   * How long to wait for response headers, or for the next bytes while the
   * consumer waits for them, in ms (default 30000).
   */
  timeoutMs?: number;
  /**
   * A PEM file of CA certificates to trust. Bun trusts them instead of
   * its default ones, Deno in addition to its default ones.
   */
  caCertPath?: string;
  /** Aborts the download; the stream then errors with the signal's reason. */
  signal?: AbortSignal;
  /** Called before each wait for a retry, after the warning is logged. */
  onRetry?: (event: RetryEvent) => void;
  /**
   * Reads proxy variables and SSL_CERT_FILE (default: the process
   * environment).
   */
  env?: EnvReader;
  /** The runtime whose `fetch` sends the requests (default: the current). */
  runtime?: Runtime;
}

/** A retry about to happen, as passed to `HttpSourceOptions.onRetry`. */
export interface RetryEvent {
  /** Consecutive failed attempts so far, 1 for the first failure. */
  failures: number;
  /** The failure reason, redacted. */
  reason: string;
  /** Bytes delivered to the consumer so far; the retry resumes there. */
  offset: number;
  /** The wait before the next attempt in ms. */
  delayMs: number;
}

/** An open HTTP download. */
export interface HttpSource {
  /**
   * The file's bytes in order, each delivered once. When the download
   * fails, the stream errors instead of ending.
   */
  stream: ReadableStream<Uint8Array>;
  /** Total length in bytes when the server announced it. */
  size?: number;
  /** The URL, redacted for display. */
  url: string;
}

const defaults = {
  retries: 8,
  retryDelayMs: 1000,
  timeoutMs: 30_000,
};

/**
 * Opens a resumable download of `url`. The first request is made before
 * this resolves, so a failing status, an unreachable host (after retries)
 * or a rejected redirect rejects here with a SourceError. The returned
 * stream reads from the network only when its consumer pulls. When a
 * response breaks, the download continues where it stopped: with a Range
 * request if the server sent a validator, otherwise by downloading again
 * and skipping the bytes already delivered once their SHA-256 matches.
 *
 * Credentials in the URL become a Basic Authorization header, unless
 * `headers` already has one. Header values, URL credentials and the query
 * string are registered as secrets for redaction.
 *
 * @throws UsageError for an invalid URL or an unreadable CA file.
 * @throws SourceError when the download cannot start.
 */
export async function openHttpSource(
  url: string,
  options: HttpSourceOptions = {},
): Promise<HttpSource> {
  const download = new Download(parseHttpUrl(url), options);
  await download.start();

  return {
    stream: download.stream,
    size: download.size,
    url: download.displayUrl,
  };
}

function parseHttpUrl(url: string): URL {
  addUrlSecrets(url);

  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new UsageError(`Invalid URL ${redactUrl(url)}`, {
      hint: "Give a URL such as https://host/path/image.tar.zst",
      cause: error,
    });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`Unsupported URL scheme in ${redactUrl(parsed)}`, {
      hint: "Give an http:// or https:// URL, or a file path",
    });
  }
  return parsed;
}

type ReadResult = Awaited<
  ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]>
>;

// Reading position inside the current response body.
interface Body {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  controller: AbortController;
  /** File offset of the next byte the body will yield. */
  position: number;
  /** File offset just past the body's last byte, when announced. */
  end?: number;
  /** Checks the bytes before the resume offset, when they are re-sent. */
  prefix?: PrefixCheck;
}

// Bytes already delivered that a full response sends again. With a
// validator they are skipped; without one they are hashed and compared.
interface PrefixCheck {
  hash?: Hash;
  expectedHex?: string;
}

/** One download: requests, retries, and the stream its consumer reads. */
class Download {
  readonly stream: ReadableStream<Uint8Array>;
  readonly displayUrl: string;
  size?: number;

  #requester: HttpRequester;
  #retries: number;
  #retryDelayMs: number;
  #timeoutMs: number;
  #signal?: AbortSignal;
  #onRetry?: (event: RetryEvent) => void;

  /** Bytes delivered to the consumer. */
  #offset = 0;
  #failures = 0;
  #validator?: Validator;
  /** SHA-256 of the delivered bytes, kept only without a validator. */
  #deliveredHash?: Hash;
  #body?: Body;
  /** The body with a read in progress, watched for stalls. */
  #reading?: Body;
  #readStartedAt = 0;
  #stallTimer?: ReturnType<typeof setTimeout>;
  /** Aborts the current attempt, from its request to its body's end. */
  #controller?: AbortController;
  #closed = false;

  constructor(url: URL, options: HttpSourceOptions) {
    const env = options.env ?? ((name: string) => process.env[name]);
    this.#timeoutMs = options.timeoutMs ?? defaults.timeoutMs;
    this.#signal = options.signal;
    this.#requester = new HttpRequester(url, {
      runtime: options.runtime ?? getRuntime(),
      headers: options.headers ?? [],
      env,
      caCertPath: options.caCertPath ?? env("SSL_CERT_FILE"),
      timeoutMs: this.#timeoutMs,
      signal: this.#signal,
    });
    this.displayUrl = this.#requester.displayUrl;

    this.#retries = options.retries ?? defaults.retries;
    this.#retryDelayMs = options.retryDelayMs ?? defaults.retryDelayMs;
    this.#onRetry = options.onRetry;
    this.#signal?.addEventListener("abort", this.#abortAttempt);

    this.stream = new ReadableStream<Uint8Array>(
      {
        pull: (controller) => this.#pull(controller),
        cancel: (reason) => this.#finish(reason),
      },
      { highWaterMark: 0 },
    );
  }

  /** Makes the first request, retrying as needed. */
  async start(): Promise<void> {
    try {
      this.#body = await this.#connect();
    } catch (error) {
      this.#finish(error);
      throw error;
    }
  }

  // Delivers the next chunk, reconnecting as often as the retry budget
  // allows. Exactly one enqueue or close per call, or an error.
  async #pull(
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): Promise<void> {
    try {
      for (;;) {
        this.#body ??= await this.#connect();
        const chunk = await this.#readChunk(this.#body);
        if (chunk === "again") continue;
        if (chunk === "end") {
          this.#finish();
          controller.close();
          return;
        }

        this.#deliver(chunk, controller);
        return;
      }
    } catch (error) {
      this.#finish(error);
      throw error;
    }
  }

  // Reads from the body until there are bytes to deliver. Returns "again"
  // when the caller should read once more (after a backed-off failure, or
  // when the whole chunk was skipped) and "end" at the end of the file.
  async #readChunk(body: Body): Promise<Uint8Array | "again" | "end"> {
    let result: ReadResult;
    try {
      result = await this.#readWithTimeout(body);
    } catch (error) {
      this.#dropBody();
      throwIfAborted(this.#signal, this.displayUrl);
      const reason = isStallTimeout(body.controller)
        ? `no data for ${formatDelay(this.#timeoutMs)}`
        : describeNetworkError(error);
      await this.#backOff(new RetryableFailure(reason, undefined, error));
      return "again";
    }

    if (result.done) return this.#handleBodyEnd(body);

    const chunk = this.#skipPrefix(body, result.value);
    body.position += result.value.length;
    return chunk.length === 0 ? "again" : chunk;
  }

  async #handleBodyEnd(body: Body): Promise<"again" | "end"> {
    this.#dropBody();

    // Bun 1.4.5 raises ECONNRESET for a body that ends before its
    // Content-Length, but other runtimes may end it cleanly, so the count
    // decides whether this was a cut.
    if (body.end !== undefined && body.position < body.end) {
      const reason = `response ended at byte ${body.position} of ${body.end}`;
      await this.#backOff(new RetryableFailure(reason));
      return "again";
    }
    if (body.prefix !== undefined) {
      throw fileChangedError(
        this.displayUrl,
        `it now ends at byte ${body.position}, before byte ${this.#offset}`,
      );
    }

    // A 206 may cover less than the rest of the file.
    if (this.size !== undefined && this.#offset < this.size) {
      const reason = `response ended at byte ${this.#offset} of ${this.size}`;
      await this.#backOff(new RetryableFailure(reason));
      return "again";
    }
    return "end";
  }

  #deliver(
    chunk: Uint8Array,
    controller: ReadableStreamDefaultController<Uint8Array>,
  ): void {
    this.#deliveredHash?.update(chunk);
    this.#offset += chunk.length;
    this.#failures = 0;
    controller.enqueue(chunk);
  }

  // Drops the part of `chunk` that lies before the resume offset, checking
  // it against the delivered bytes when there is no validator.
  #skipPrefix(body: Body, chunk: Uint8Array): Uint8Array {
    const prefix = body.prefix;
    if (prefix === undefined) return chunk;

    const needed = this.#offset - body.position;
    const head = chunk.subarray(0, Math.min(needed, chunk.length));
    prefix.hash?.update(head);
    if (chunk.length < needed) return new Uint8Array(0);

    body.prefix = undefined;
    if (prefix.hash !== undefined) {
      const actual = prefix.hash.digest("hex");
      if (actual !== prefix.expectedHex) {
        throw fileChangedError(
          this.displayUrl,
          `its first ${this.#offset} bytes differ from the ones received`,
        );
      }
      logger.debug(
        `The first ${this.#offset} bytes are unchanged; resuming after them`,
      );
    }
    return chunk.subarray(needed);
  }

  // One timer watches all reads. A timer per read (setTimeout,
  // clearTimeout and a finally) cost about 0.1 to 0.2 s of CPU per
  // 400 MiB in 64 KiB chunks (Bun 1.4.5, 2-core VM). The timer is armed
  // when a read starts and none is armed. When it fires during a read
  // that has not waited the full timeout, it re-arms for the rest.
  async #readWithTimeout(body: Body): Promise<ReadResult> {
    this.#reading = body;
    this.#readStartedAt = performance.now();
    this.#stallTimer ??= setTimeout(this.#checkStall, this.#timeoutMs);
    try {
      return await body.reader.read();
    } finally {
      this.#reading = undefined;
    }
  }

  readonly #checkStall = (): void => {
    this.#stallTimer = undefined;
    const body = this.#reading;
    if (body === undefined || this.#closed) return;

    const waitedMs = performance.now() - this.#readStartedAt;
    if (waitedMs >= this.#timeoutMs) {
      body.controller.abort(new StallTimeout());
      return;
    }
    this.#stallTimer = setTimeout(
      this.#checkStall,
      this.#timeoutMs - waitedMs,
    );
  };

  // Requests the file from the current offset until a usable response
  // arrives or the retry budget is spent.
  async #connect(): Promise<Body> {
    for (;;) {
      throwIfAborted(this.#signal, this.displayUrl);
      if (this.#closed) {
        // The consumer cancelled the stream during a backoff, so no
        // request follows and this error reaches no reader.
        throw new SourceError(`Download of ${this.displayUrl} was cancelled`);
      }
      try {
        return await this.#request();
      } catch (error) {
        if (!(error instanceof RetryableFailure)) throw error;
        await this.#backOff(error);
      }
    }
  }

  async #backOff(failure: RetryableFailure): Promise<void> {
    this.#failures += 1;
    const reason = failure.message;
    if (failure.retryAfterMs !== undefined) {
      this.#checkRetryAfter(failure.retryAfterMs, reason);
    }
    if (this.#failures > this.#retries) {
      throw new SourceError(
        `Download of ${this.displayUrl} failed at byte ${this.#offset} ` +
          `after ${this.#failures} ${this.#failures === 1 ? "attempt" : "attempts in a row"}: ${reason}`,
        {
          hint: "Check the network and the server, then run the load again",
          cause: failure.cause,
        },
      );
    }

    const delayMs =
      failure.retryAfterMs ?? backoffDelay(this.#failures, this.#retryDelayMs);

    logger.warn(
      `Retry ${this.#failures} of ${this.#retries} for ${this.displayUrl} ` +
        `at byte ${this.#offset} in ${formatDelay(delayMs)}: ${reason}`,
    );
    this.#onRetry?.({
      failures: this.#failures,
      reason,
      offset: this.#offset,
      delayMs,
    });
    await sleep(delayMs, this.#signal).catch(() =>
      throwIfAborted(this.#signal, this.displayUrl),
    );
  }

  #checkRetryAfter(retryAfterMs: number, reason: string): void {
    if (retryAfterMs <= maxRetryAfterMs) return;

    const when = new Date(Date.now() + retryAfterMs).toISOString();
    throw new SourceError(
      `${this.displayUrl} requested a retry after ` +
        `${formatDelay(retryAfterMs)} (${reason}), longer than ` +
        `${formatDelay(maxRetryAfterMs)}`,
      { hint: `Run the load again after ${when}` },
    );
  }

  // One attempt: a request, following redirects, checked into a Body.
  async #request(): Promise<Body> {
    const offset = this.#offset;
    const validator = this.#validator;
    const range =
      offset > 0 && validator !== undefined
        ? { start: offset, ifRange: validator.value }
        : undefined;
    const controller = new AbortController();
    this.#controller = controller;
    const { response, url } = await this.#requester.get(range, controller);

    try {
      const ranged = range !== undefined;
      return this.#accept(response, url, offset, ranged, controller);
    } catch (error) {
      controller.abort();
      throw error;
    }
  }

  #accept(
    response: Response,
    url: URL,
    offset: number,
    ranged: boolean,
    controller: AbortController,
  ): Body {
    const { status, headers } = response;
    logger.debug(
      `HTTP ${status} from ${redactUrl(url)}: ${describeHeaders(headers)}`,
    );

    if (isRetryableStatus(status)) {
      const retryAfter = parseRetryAfter(headers.get("retry-after"));
      throw new RetryableFailure(httpStatusText(response), retryAfter);
    }
    if (status === 416 && ranged) {
      throw fileChangedError(
        this.displayUrl,
        `the server has no bytes from ${offset} on`,
      );
    }
    if (status !== 200 && !(status === 206 && ranged)) {
      throw statusError(status, response.statusText, redactUrl(url));
    }
    if (isHtml(headers)) {
      throw new SourceError(
        `${redactUrl(url)} returned an HTML page, not an image archive`,
        {
          hint:
            "Check the URL; a login page often means the request needs " +
            'credentials (--header "Authorization: ...")',
        },
      );
    }
    if (response.body === null) {
      throw new RetryableFailure(`HTTP ${status} without a body`);
    }

    const reader = response.body.getReader();
    const body: Body = { reader, controller, position: 0 };
    if (status === 206) {
      this.#acceptPartial(headers, offset, body);
    } else {
      this.#acceptFull(headers, offset, body);
    }
    return body;
  }

  #acceptFull(headers: Headers, offset: number, body: Body): void {
    const length = contentLength(headers);
    if (
      this.size !== undefined &&
      length !== undefined &&
      length !== this.size
    ) {
      throw fileChangedError(
        this.displayUrl,
        `its size changed from ${this.size} to ${length} bytes`,
      );
    }
    body.end = length;

    if (offset === 0) {
      this.size ??= length;
      this.#validator = validatorOf(headers);
      this.#deliveredHash =
        this.#validator === undefined ? createHash("sha256") : undefined;
      return;
    }

    if (this.#validator === undefined) {
      logger.debug(
        `No validator; checking the first ${offset} bytes sent again`,
      );
      body.prefix = {
        hash: createHash("sha256"),
        expectedHex: this.#deliveredHash?.copy().digest("hex"),
      };
      return;
    }

    const current = validatorOf(headers);
    if (current?.value !== this.#validator.value) {
      throw fileChangedError(
        this.displayUrl,
        `${this.#validator.header} was ${this.#validator.value}, ` +
          `now ${current?.value ?? "none"}`,
      );
    }
    logger.debug(
      `The server sent the whole file again; skipping ${offset} bytes`,
    );
    body.prefix = {};
  }

  #acceptPartial(headers: Headers, offset: number, body: Body): void {
    const range = parseContentRange(headers.get("content-range"));
    if (range === undefined) {
      throw new SourceError(
        `${this.displayUrl} responded to a range request with an ` +
          "invalid Content-Range",
        { hint: "Run the load again; the server does not resume correctly" },
      );
    }
    if (range.start !== offset) {
      throw new SourceError(
        `${this.displayUrl} returned bytes from ${range.start} for a ` +
          `request for bytes from ${offset}`,
        { hint: "Run the load again; the server does not resume correctly" },
      );
    }
    if (this.size !== undefined && range.size !== undefined) {
      if (range.size !== this.size) {
        throw fileChangedError(
          this.displayUrl,
          `its size changed from ${this.size} to ${range.size} bytes`,
        );
      }
    }

    body.position = offset;
    body.end = range.end + 1;
  }

  #dropBody(): void {
    this.#body?.controller.abort();
    this.#body = undefined;
  }

  readonly #abortAttempt = (): void => {
    this.#controller?.abort(this.#signal?.reason);
  };

  // Ends the download: on success without `reason`, on failure or cancel
  // with it. Either way the current response is released.
  #finish(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener("abort", this.#abortAttempt);
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;

    const body = this.#body;
    this.#dropBody();
    body?.reader.cancel(reason).catch(() => {});
  }
}

function httpStatusText(response: Response): string {
  const text = response.statusText ? ` ${response.statusText}` : "";
  return `HTTP ${response.status}${text}`;
}

// The response headers worth a debug line. None of them carries a secret.
function describeHeaders(headers: Headers): string {
  const names = [
    "content-length",
    "content-range",
    "content-type",
    "content-encoding",
    "etag",
    "last-modified",
    "retry-after",
  ];
  const parts = names
    .filter((name) => headers.has(name))
    .map((name) => `${name}: ${headers.get(name)}`);
  return parts.length > 0 ? parts.join(", ") : "no relevant headers";
}
