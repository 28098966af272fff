import { readFile } from "node:fs/promises";

import { ImgloadError, SourceError, UsageError } from "../errors.ts";
import { logger } from "../log.ts";
import { addSecret, addUrlSecrets, redactUrl } from "../redact.ts";
import type { Runtime } from "../runtime/types.ts";
import { basicAuthorization, credentialHeaders } from "./http-headers.ts";
import pkg from "../../package.json" with { type: "json" };
import { type EnvReader, proxyFor } from "./http-proxy.ts";
import {
  describeNetworkError,
  isRedirectStatus,
  statusError,
} from "./http-response.ts";
import {
  formatDelay,
  isCertificateError,
  isStallTimeout,
  RetryableFailure,
  StallTimeout,
} from "./retry.ts";

const userAgent = `imgload/${pkg.version}`;

/** Options of `HttpRequester`. */
export interface HttpRequesterOptions {
  /** The runtime whose `fetch` sends the requests. */
  runtime: Runtime;
  headers: Array<[string, string]>;
  env: EnvReader;
  caCertPath?: string;
  /** How long to wait for response headers, in ms. */
  timeoutMs: number;
  signal?: AbortSignal;
}

/** A `Range: bytes=START-` request made conditional with If-Range. */
export interface RangeRequest {
  start: number;
  ifRange: string;
}

const maxRedirects = 10;

/**
 * Sends the GET requests of one download. Redirects are followed by hand,
 * so that credential headers stay with the origin of the URL the user gave
 * and https is never downgraded to http. Each attempt starts again at that
 * URL, because signed redirect targets expire. The proxy comes from the
 * environment and the CA file is read once, when first needed.
 */
export class HttpRequester {
  /** The URL as given, without credentials and fragment. */
  readonly url: URL;
  /** The URL, redacted for display. */
  readonly displayUrl: string;

  #runtime: Runtime;
  #headers: Array<[string, string]>;
  #env: EnvReader;
  #caCertPath?: string;
  #ca?: Promise<string | undefined>;
  #timeoutMs: number;
  #signal?: AbortSignal;

  /**
   * Takes credentials out of `url` into a Basic Authorization header, as
   * curl does, unless `headers` already has one, and registers header
   * values as secrets.
   */
  constructor(url: URL, options: HttpRequesterOptions) {
    this.#runtime = options.runtime;
    this.#headers = [...options.headers];
    this.#env = options.env;
    this.#caCertPath = options.caCertPath;
    this.#timeoutMs = options.timeoutMs;
    this.#signal = options.signal;

    this.url = new URL(url);
    this.#moveCredentialsToHeader(this.url);
    this.displayUrl = redactUrl(this.url);
    for (const [, value] of this.#headers) addSecret(value);
  }

  /**
   * Requests the file, following up to 10 redirects, and returns the first
   * response that is not a redirect with the URL that gave it. Aborting
   * `controller` aborts the request and later the response body.
   *
   * @throws RetryableFailure for network errors and timeouts.
   * @throws SourceError for rejected certificates and redirects.
   * @throws UsageError when the CA file cannot be read.
   */
  async get(
    range: RangeRequest | undefined,
    controller: AbortController,
  ): Promise<{ response: Response; url: URL }> {
    let url = this.url;
    for (let redirects = 0; ; redirects++) {
      const response = await this.#fetch(url, range, controller);
      if (!isRedirectStatus(response.status)) return { response, url };

      await response.body?.cancel().catch(() => {});
      if (redirects === maxRedirects) {
        throw new SourceError(
          `Too many redirects (more than ${maxRedirects}) from ` +
            this.displayUrl,
          { hint: "Check the URL; the server may redirect in a loop" },
        );
      }
      url = redirectTarget(url, response);
    }
  }

  #moveCredentialsToHeader(url: URL): void {
    const authorization = basicAuthorization(url);
    url.username = "";
    url.password = "";
    url.hash = "";
    if (authorization === undefined) return;

    addSecret(authorization);
    const hasOwn = this.#headers.some(
      ([name]) => name.toLowerCase() === "authorization",
    );
    if (!hasOwn) this.#headers.push(["Authorization", authorization]);
  }

  async #fetch(
    url: URL,
    range: RangeRequest | undefined,
    controller: AbortController,
  ): Promise<Response> {
    const headers = this.#requestHeaders(url, range);
    const proxy = proxyFor(url, this.#env);
    if (proxy !== undefined) addUrlSecrets(proxy);
    const ca = url.protocol === "https:" ? await this.#loadCa() : undefined;

    const from = range === undefined ? "" : ` from byte ${range.start}`;
    const via = proxy === undefined ? "" : ` through ${redactUrl(proxy)}`;
    logger.debug(`GET ${redactUrl(url)}${from}${via}`);

    const timer = setTimeout(() => {
      controller.abort(new StallTimeout());
    }, this.#timeoutMs);

    try {
      return await this.#runtime.fetch(url, {
        headers,
        redirect: "manual",
        signal: controller.signal,
        proxy,
        ca,
      });
    } catch (error) {
      throwIfAborted(this.#signal, this.displayUrl);
      if (isStallTimeout(controller)) {
        throw new RetryableFailure(
          `no response within ${formatDelay(this.#timeoutMs)}`,
        );
      }
      if (isCertificateError(error)) {
        throw new SourceError(
          `TLS certificate of ${redactUrl(url)} was rejected ` +
            `(${describeNetworkError(error)})`,
          {
            hint:
              "Trust the CA that signed it with --cacert FILE or " +
              "SSL_CERT_FILE",
            cause: error,
          },
        );
      }
      // A refused or reset connection may be the proxy's, not the server's.
      throw new RetryableFailure(
        `${describeNetworkError(error)}${via}`,
        undefined,
        error,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  #requestHeaders(url: URL, range: RangeRequest | undefined): Headers {
    const sameOrigin = url.origin === this.url.origin;
    const headers = new Headers();
    for (const [name, value] of this.#headers) {
      const isCredential = credentialHeaders.includes(name.toLowerCase());
      if (isCredential && !sameOrigin) continue;
      headers.append(name, value);
    }

    if (!headers.has("user-agent")) headers.set("user-agent", userAgent);

    // Offsets and digests refer to the file's bytes, never to an encoding.
    headers.set("accept-encoding", "identity");
    if (range !== undefined) {
      headers.set("range", `bytes=${range.start}-`);
      headers.set("if-range", range.ifRange);
    }
    return headers;
  }

  #loadCa(): Promise<string | undefined> {
    const path = this.#caCertPath;
    if (path === undefined || path === "") return Promise.resolve(undefined);

    this.#ca ??= readFile(path, "utf8").then(
      (pem) => {
        if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
          throw new UsageError(
            `CA certificate file ${path} contains no PEM certificate`,
            {
              hint: "Give a file with -----BEGIN CERTIFICATE----- blocks to --cacert or SSL_CERT_FILE",
            },
          );
        }
        return pem;
      },
      (error: unknown) => {
        const code = (error as { code?: string }).code ?? "unknown error";
        throw new UsageError(
          `Failed to read CA certificate file ${path} (${code})`,
          {
            hint: "Check the path given with --cacert or SSL_CERT_FILE",
            cause: error,
          },
        );
      },
    );
    return this.#ca;
  }
}

/**
 * Throws when `signal` has been aborted: its reason if that is an
 * ImgloadError (such as InterruptedError), else a SourceError.
 */
export function throwIfAborted(
  signal: AbortSignal | undefined,
  displayUrl: string,
): void {
  if (signal === undefined || !signal.aborted) return;

  if (signal.reason instanceof ImgloadError) throw signal.reason;
  throw new SourceError(`Download of ${displayUrl} was aborted`, {
    cause: signal.reason,
  });
}

function redirectTarget(from: URL, response: Response): URL {
  const location = response.headers.get("location");
  if (location === null) {
    throw statusError(response.status, "without Location", redactUrl(from));
  }

  let target: URL;
  try {
    target = new URL(location, from);
  } catch (error) {
    throw new SourceError(`${redactUrl(from)} redirected to an invalid URL`, {
      hint: "Check the URL and the server",
      cause: error,
    });
  }
  addUrlSecrets(target);

  if (target.protocol !== "http:" && target.protocol !== "https:") {
    throw new SourceError(
      `${redactUrl(from)} redirected to an unsupported scheme ` +
        target.protocol,
      { hint: "Give a URL that serves the file over http or https" },
    );
  }
  if (from.protocol === "https:" && target.protocol === "http:") {
    throw new SourceError(
      `Rejected redirect from ${redactUrl(from)} to ${redactUrl(target)}: ` +
        "it downgrades https to unencrypted http",
      { hint: "Ask the server's owner to redirect to https" },
    );
  }

  logger.debug(`HTTP ${response.status} redirect to ${redactUrl(target)}`);
  return target;
}
