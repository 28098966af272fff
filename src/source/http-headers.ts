import { Buffer } from "node:buffer";
import { readFile } from "node:fs/promises";

import { UsageError } from "../errors.ts";
import { addSecret } from "../redact.ts";

/**
 * Request headers that carry credentials. They are sent only to the origin
 * of the URL the user gave, never to another origin a redirect leads to.
 */
export const credentialHeaders: readonly string[] = [
  "authorization",
  "cookie",
  "proxy-authorization",
];

// Headers the download sets itself: a user value would break resuming or
// make offsets refer to encoded bytes.
const reservedHeaders: readonly string[] = [
  "accept-encoding",
  "if-range",
  "range",
];

// RFC 9110 field-name: a token.
const tokenPattern = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

// RFC 9110 field-value without control characters other than tab.
const fieldValuePattern = /^[\t\x20-\x7e\x80-\uffff]*$/;

const headerSyntaxHint = 'Write each header as "Name: value"';

/**
 * Parses repeated `--header` arguments. Each is either `Name: value` or
 * `@FILE`, a file with one `Name: value` per line where blank lines and
 * lines starting with `#` are skipped. Every value is registered as a
 * secret, so logs and errors never show it.
 *
 * @throws UsageError for an invalid header, naming the argument or the
 * file and line but never the value. Also for a file that cannot be read,
 * and for a header that the download sets itself (Range, If-Range,
 * Accept-Encoding).
 */
export async function parseHeaderArgs(
  values: string[],
): Promise<Array<[string, string]>> {
  const headers: Array<[string, string]> = [];

  for (const [index, value] of values.entries()) {
    if (value.startsWith("@")) {
      headers.push(...(await readHeaderFile(value.slice(1))));
      continue;
    }

    const header = parseHeaderLine(value);
    if (header === undefined) {
      throw new UsageError(
        `Invalid --header argument ${index + 1}: expected "Name: value"`,
        { hint: headerSyntaxHint },
      );
    }
    headers.push(header);
  }

  for (const [name, value] of headers) {
    checkNotReserved(name);
    addSecret(value);
  }
  return headers;
}

/**
 * Parses one `Name: value` line, trimming spaces around the value. Returns
 * undefined when the name is not a valid token or the value contains
 * control characters.
 */
export function parseHeaderLine(line: string): [string, string] | undefined {
  const colon = line.indexOf(":");
  if (colon <= 0) return undefined;

  const name = line.slice(0, colon).trim();
  const value = line.slice(colon + 1).trim();
  if (!tokenPattern.test(name)) return undefined;
  if (!fieldValuePattern.test(value)) return undefined;
  return [name, value];
}

/**
 * Returns the `Authorization: Basic` value for the credentials in `url`,
 * percent-decoded as curl does, or undefined when it has none.
 */
export function basicAuthorization(url: URL): string | undefined {
  if (url.username === "" && url.password === "") return undefined;

  const user = safeDecode(url.username);
  const password = safeDecode(url.password);
  const token = Buffer.from(`${user}:${password}`, "utf8").toString("base64");
  return `Basic ${token}`;
}

async function readHeaderFile(path: string): Promise<Array<[string, string]>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code ?? "unknown error";
    throw new UsageError(`Failed to read header file ${path} (${code})`, {
      hint: "Check the path after --header @",
      cause: error,
    });
  }

  const headers: Array<[string, string]> = [];
  for (const [index, rawLine] of text.split("\n").entries()) {
    const line = rawLine.replace(/\r$/, "");
    if (line.trim() === "" || line.trimStart().startsWith("#")) continue;

    const header = parseHeaderLine(line);
    if (header === undefined) {
      throw new UsageError(
        `Invalid header on line ${index + 1} of ${path}: ` +
          'expected "Name: value"',
        { hint: headerSyntaxHint },
      );
    }
    headers.push(header);
  }
  return headers;
}

function checkNotReserved(name: string): void {
  if (!reservedHeaders.includes(name.toLowerCase())) return;

  throw new UsageError(`The ${name} header cannot be set with --header`, {
    hint: "imgload sets it itself to resume interrupted downloads",
  });
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
