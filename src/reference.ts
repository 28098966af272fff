import { UsageError } from "./errors.ts";

/**
 * A parsed Docker image reference with a tag, such as
 * `localhost:5000/team/tool:v2`. Digests are not accepted, because a
 * loaded image can only be named by tag.
 */
export interface ImageReference {
  /** Registry host and optional port, as written (`localhost:5000`), or undefined. */
  domain?: string;
  /** Repository path below the domain (`team/tool`). */
  path: string;
  /** The tag; `latest` when the input had none. */
  tag: string;
  /** Repository name as written, with the domain (`localhost:5000/team/tool`). */
  name: string;
}

export const defaultTag = "latest";
const defaultDomain = "docker.io";
const officialRepositoryPrefix = "library/";
const maxNameLength = 255;

// The grammar of github.com/distribution/reference (reference.go).
const domainComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const ipv6Host = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainPattern = new RegExp(
  `^(?:${domainComponent}(?:\\.${domainComponent})*|${ipv6Host})(?::[0-9]+)?$`,
);
const pathComponentPattern = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;

/**
 * Parses `NAME[:TAG]` with Docker's reference grammar. The tag is what
 * follows the last `:` after the last `/`, so `localhost:5000/tool` has no
 * tag and gets `latest`.
 *
 * @throws UsageError naming the part that is invalid.
 */
export function parseReference(input: string): ImageReference {
  const fail = (problem: string, hint: string): never => {
    throw new UsageError(`Invalid image reference "${input}": ${problem}`, {
      hint,
    });
  };

  if (input.length === 0) {
    fail("it is empty", "Give a name such as team/tool:v1");
  }
  if (input.includes("@")) {
    fail(
      "digests cannot be assigned by a load",
      "Give a name and tag such as team/tool:v1 instead of @sha256:...",
    );
  }

  const lastSlash = input.lastIndexOf("/");
  const lastColon = input.lastIndexOf(":");
  let name = input;
  let tag = defaultTag;
  if (lastColon > lastSlash) {
    name = input.slice(0, lastColon);
    tag = input.slice(lastColon + 1);
    if (tag.length === 0) {
      fail("the tag after ':' is empty", "Remove the ':' or add a tag");
    }
    if (!tagPattern.test(tag)) {
      fail(
        `tag "${tag}" must be 1 to 128 characters of letters, digits, '_', '.' and '-', not starting with '.' or '-'`,
        "Choose a valid tag",
      );
    }
  }

  if (name.length === 0) {
    fail("the repository name is empty", "Give a name such as team/tool");
  }
  if (name.length > maxNameLength) {
    fail(
      `the repository name is ${name.length} characters long, more than ${maxNameLength}`,
      "Choose a shorter name",
    );
  }

  const { domain, path } = splitDomain(name);
  if (domain !== undefined && !domainPattern.test(domain)) {
    fail(`registry host "${domain}" is invalid`, "Use host or host:port");
  }
  for (const component of path.split("/")) {
    if (component.length === 0) {
      fail("a path component is empty", "Remove the doubled or trailing '/'");
    }
    if (component !== component.toLowerCase()) {
      fail(
        `repository path "${path}" must be lowercase`,
        `Use "${path.toLowerCase()}"`,
      );
    }
    if (!pathComponentPattern.test(component)) {
      fail(
        `path component "${component}" may hold only a-z, 0-9 and single '.', '_', '__' or '-' separators between them`,
        "Choose a valid repository name",
      );
    }
  }

  return { domain, path, tag, name };
}

/**
 * Splits a repository name into its registry domain and path the way
 * Docker Engine 20.10 does: the first component is a domain when it
 * contains `.` or `:` or is `localhost`. Newer reference parsers also
 * treat a component with capitals as a domain, but Engine 20.10 rejects
 * `MyHost/tool`, so such names are rejected here as uppercase paths.
 */
function splitDomain(name: string): { domain?: string; path: string } {
  const slash = name.indexOf("/");
  if (slash === -1) {
    return { path: name };
  }
  const first = name.slice(0, slash);
  const isDomain =
    first.includes(".") || first.includes(":") || first === "localhost";
  if (!isDomain) {
    return { path: name };
  }
  return { domain: first, path: name.slice(slash + 1) };
}

/** Formats the reference as the user wrote it, with its tag: `team/tool:v1`. */
export function formatReference(reference: ImageReference): string {
  return `${reference.name}:${reference.tag}`;
}

/**
 * Normalizes a tagged reference string the way Docker does, so that
 * `tool:v2` and `docker.io/library/tool:v2` compare equal. Returns the
 * input unchanged when it does not parse.
 */
export function normalizeReference(input: string): string {
  let reference: ImageReference;
  try {
    reference = parseReference(input);
  } catch {
    return input;
  }
  let domain = reference.domain ?? defaultDomain;
  if (domain === "index.docker.io") {
    domain = defaultDomain;
  }
  let path = reference.path;
  if (domain === defaultDomain && !path.includes("/")) {
    path = officialRepositoryPrefix + path;
  }
  return `${domain}/${path}:${reference.tag}`;
}
