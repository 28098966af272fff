import { SourceError } from "../errors.ts";
import { errorCode } from "./retry.ts";

/**
 * Reading HTTP responses for a resumable download: lengths, ranges,
 * validators, and the errors for statuses that end a download.
 */

/** A validator that can make a range request conditional with If-Range. */
export interface Validator {
  /** The response header it came from. */
  header: "etag" | "last-modified";
  value: string;
}

/** A parsed `Content-Range: bytes START-END/SIZE` header. */
export interface ContentRange {
  start: number;
  /** The offset of the last byte, inclusive. */
  end: number;
  /** The full size of the file, or undefined for `*`. */
  size?: number;
}

/**
 * Returns the validator of a response for If-Range: a strong ETag, else
 * Last-Modified. Weak ETags (`W/"..."`) do not count, because a server may
 * give the same weak ETag to different bytes.
 */
export function validatorOf(headers: Headers): Validator | undefined {
  const etag = headers.get("etag")?.trim();
  if (etag && !etag.startsWith("W/")) return { header: "etag", value: etag };

  const lastModified = headers.get("last-modified")?.trim();
  if (lastModified) return { header: "last-modified", value: lastModified };
  return undefined;
}

/** Returns the Content-Length of a response, or undefined when absent. */
export function contentLength(headers: Headers): number | undefined {
  const text = headers.get("content-length")?.trim();
  if (text === undefined || !/^\d+$/.test(text)) return undefined;
  return Number(text);
}

/** Parses a Content-Range header; returns undefined when it is invalid. */
export function parseContentRange(
  value: string | null,
): ContentRange | undefined {
  const match = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(value?.trim() ?? "");
  if (!match) return undefined;

  const start = Number(match[1]);
  const end = Number(match[2]);
  const size = match[3] === "*" ? undefined : Number(match[3]);
  if (end < start) return undefined;
  if (size !== undefined && end >= size) return undefined;
  return { start, end, size };
}

/** Reports whether a status is a redirect that fetch would follow. */
export function isRedirectStatus(status: number): boolean {
  return [301, 302, 303, 307, 308].includes(status);
}

/** Reports whether a response declares an HTML page. */
export function isHtml(headers: Headers): boolean {
  const type = headers.get("content-type") ?? "";
  return /^\s*(text\/html|application\/xhtml\+xml)\b/i.test(type);
}

/**
 * Returns the SourceError for an HTTP status that ends the download, with
 * a hint that fits the status. `url` must already be redacted.
 */
export function statusError(
  status: number,
  statusText: string,
  url: string,
): SourceError {
  const text = statusText ? ` ${statusText}` : "";
  const message = `HTTP ${status}${text} from ${url}`;

  if (status === 401 || status === 403) {
    return new SourceError(message, {
      hint:
        'Pass credentials with --header "Authorization: ..." ' +
        "or in the URL as https://USER:PASSWORD@host/...",
    });
  }
  if (status === 404 || status === 410) {
    return new SourceError(message, {
      hint: "Check the URL; the file is not on the server",
    });
  }
  if (status === 407) {
    return new SourceError(message, {
      hint: "Put the proxy's credentials in HTTPS_PROXY or HTTP_PROXY",
    });
  }
  return new SourceError(message, { hint: "Check the URL and the server" });
}

/**
 * Returns the SourceError for a file that changed on the server while it
 * was downloaded. Splicing the old and new file is never an option.
 */
export function fileChangedError(url: string, detail: string): SourceError {
  return new SourceError(
    `${url} changed on the server during the download (${detail})`,
    { hint: "Run the load again to download the new file from the start" },
  );
}

/**
 * Describes an error thrown by fetch in a few words for logs, such as
 * `connection reset (ECONNRESET)`.
 */
export function describeNetworkError(error: unknown): string {
  const code = errorCode(error);
  const known: Record<string, string> = {
    ECONNRESET: "connection reset",
    ECONNREFUSED: "connection refused",
    ConnectionRefused: "connection refused",
    ConnectionClosed: "connection closed",
    ETIMEDOUT: "connection timed out",
    ENOTFOUND: "host not found",
    DNSError: "host not found",
    EHOSTUNREACH: "host unreachable",
    ENETUNREACH: "network unreachable",
  };
  if (code !== undefined && known[code] !== undefined) {
    return `${known[code]} (${code})`;
  }

  const message = error instanceof Error ? error.message : String(error);
  const firstSentence = message.split(/(?<=\.)\s/)[0] ?? message;
  return code === undefined ? firstSentence : `${firstSentence} (${code})`;
}
