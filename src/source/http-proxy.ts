/**
 * Proxy selection from the environment, as curl does it. Bun's fetch reads
 * the same variables by itself (Bun 1.4.5 honours http_proxy, https_proxy,
 * all_proxy and NO_PROXY with ports and CIDR ranges), but those rules are
 * Bun's own and have changed between versions. imgload decides here and
 * passes the result to fetch explicitly, so the behaviour is the one
 * documented and tested in this file.
 */

/** Reads an environment variable. */
export type EnvReader = (name: string) => string | undefined;

/**
 * Returns the proxy URL for a request to `url`, or undefined for a direct
 * connection. Reads `http_proxy` for http URLs and `https_proxy` for https
 * URLs, then `all_proxy`; for each the lowercase name wins over the
 * uppercase one. A proxy without a scheme is taken as `http://`. Hosts
 * matched by `no_proxy`/`NO_PROXY` connect directly.
 */
export function proxyFor(url: URL, env: EnvReader): string | undefined {
  const scheme = url.protocol === "https:" ? "https" : "http";
  const proxy =
    readVariable(env, `${scheme}_proxy`) ?? readVariable(env, "all_proxy");
  if (proxy === undefined) return undefined;

  const noProxy = readVariable(env, "no_proxy") ?? "";
  if (matchesNoProxy(url, noProxy)) return undefined;

  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

/**
 * Reports whether `url` is exempt from the proxy under a `NO_PROXY` list.
 * The list is separated by commas or spaces. Each entry is `*` (every
 * host), a domain that matches itself and its subdomains (a leading dot is
 * ignored), an IP address, an IPv4 CIDR range such as `10.0.0.0/8`, or any
 * of these followed by `:PORT` to match one port only. Matching ignores
 * case.
 */
export function matchesNoProxy(url: URL, noProxy: string): boolean {
  const host = stripBrackets(url.hostname.toLowerCase());
  const port = url.port || (url.protocol === "https:" ? "443" : "80");

  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry.length === 0) continue;
    if (entry === "*") return true;

    const { pattern, entryPort } = splitPort(entry);
    if (entryPort !== undefined && entryPort !== port) continue;
    if (matchesHost(host, pattern)) return true;
  }
  return false;
}

function readVariable(
  env: EnvReader,
  lowercaseName: string,
): string | undefined {
  const value = env(lowercaseName) ?? env(lowercaseName.toUpperCase());
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

function splitPort(entry: string): { pattern: string; entryPort?: string } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) {
    return { pattern: bracketed[1] ?? "", entryPort: bracketed[2] };
  }

  // More than one colon without brackets is a bare IPv6 address.
  const colons = entry.split(":").length - 1;
  if (colons === 1) {
    const [pattern = "", entryPort] = entry.split(":");
    return { pattern, entryPort };
  }
  return { pattern: entry };
}

function matchesHost(host: string, pattern: string): boolean {
  const domain = pattern.startsWith(".") ? pattern.slice(1) : pattern;
  if (domain.length === 0) return false;
  if (domain.includes("/")) return matchesCidr(host, domain);
  return host === domain || host.endsWith(`.${domain}`);
}

function matchesCidr(host: string, cidr: string): boolean {
  const [network = "", bitsText = ""] = cidr.split("/");
  const address = parseIpv4(host);
  const base = parseIpv4(network);
  const bits = Number(bitsText);
  if (address === undefined || base === undefined) return false;
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return false;

  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (address & mask) >>> 0 === (base & mask) >>> 0;
}

function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;

  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    value = value * 256 + Number(part);
  }
  return value;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
