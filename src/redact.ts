/**
 * Redaction of secrets in text shown to the user. Header values, URL
 * credentials and URL query strings (signed URLs carry their signature
 * there) are registered with `addSecret` as soon as they are parsed, and
 * every log line and error message passes through `redact`.
 */

const secrets = new Set<string>();

/** The text that replaces a secret. */
export const mask = "***";

/**
 * The shortest value `addSecret` registers. Masking every occurrence of a
 * shorter value, such as a password `p`, would garble whole messages.
 * NOTE: shorter secrets are still masked inside URLs (credentials and
 * query string), but not elsewhere in free text.
 */
export const minSecretLength = 6;

/**
 * Registers `value` so that `redact` masks it from now on. Also registers
 * its percent-encoded and percent-decoded forms, because URLs show either,
 * and for a value such as `Bearer TOKEN` the part after the scheme.
 * Values shorter than `minSecretLength` are ignored.
 */
export function addSecret(value: string): void {
  const forms = encodedForms(value);
  const credentials = /^[A-Za-z-]+ +(\S.*)$/.exec(value)?.[1];
  if (credentials !== undefined) forms.push(...encodedForms(credentials));

  for (const form of forms) {
    if (form.length >= minSecretLength) secrets.add(form);
  }
}

/**
 * Registers the secret parts of `url`: the user name, the password, the
 * query string and each query parameter value. A user name counts as a
 * secret because tokens are often passed as one (`https://TOKEN@host/`).
 */
export function addUrlSecrets(url: string | URL): void {
  const parsed = toUrl(url);
  if (parsed === undefined) return;

  addSecret(parsed.username);
  addSecret(parsed.password);
  addSecret(parsed.search.slice(1));
  for (const value of parsed.searchParams.values()) addSecret(value);
}

/** Forgets every registered secret; meant for tests. */
export function clearSecrets(): void {
  secrets.clear();
}

/**
 * Masks the registered secrets in `text`, and the credentials and query
 * string of every URL in it.
 */
export function redact(text: string): string {
  return redactText(text, secrets);
}

/**
 * Masks each of `values` in `text`, and the credentials and query string
 * of every URL in it. Longer values are masked first, so a secret that
 * contains another one is masked whole.
 */
export function redactText(text: string, values: Iterable<string>): string {
  const sorted = [...values]
    .filter((value) => value.length > 0)
    .sort((a, b) => b.length - a.length);

  let result = text;
  for (const value of sorted) {
    result = result.split(value).join(mask);
  }
  return result.replace(urlPattern, (match) => {
    // Punctuation that ends a sentence or a label is not part of the URL.
    const url = match.replace(/[.,:;!?)\]]+$/, "");
    return redactUrl(url) + match.slice(url.length);
  });
}

/**
 * Returns `url` fit for display: credentials become `***@`, a query string
 * becomes `?***` and the fragment is dropped, while scheme, host, port and
 * path stay readable. Text that is not a valid URL is masked by pattern.
 */
export function redactUrl(url: string | URL): string {
  const parsed = toUrl(url);
  if (parsed === undefined) return redactUnparsedUrl(String(url));

  const credentials = parsed.username || parsed.password ? `${mask}@` : "";
  const query = parsed.search ? `?${mask}` : "";
  const origin = `${parsed.protocol}//${credentials}${parsed.host}`;
  return `${origin}${parsed.pathname}${query}`;
}

// Absolute http(s) URLs in free text, up to the first character that
// cannot be part of one.
const urlPattern = /\bhttps?:\/\/[^\s"'<>`]+/gi;

function redactUnparsedUrl(text: string): string {
  return text
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, `$1${mask}@`)
    .replace(/\?[^#]*/, `?${mask}`)
    .replace(/#.*/, "");
}

function toUrl(url: string | URL): URL | undefined {
  if (url instanceof URL) return url;
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

function encodedForms(value: string): string[] {
  const forms = [value];
  try {
    forms.push(decodeURIComponent(value));
  } catch {
    // Not valid percent-encoding, so no decoded form can appear either.
  }
  forms.push(encodeURIComponent(value));
  return forms;
}
