import { describe, expect, test } from "bun:test";
import { UsageError } from "../src/errors.ts";
import {
  formatReference,
  normalizeReference,
  parseReference,
} from "../src/reference.ts";

describe("parseReference", () => {
  const valid: Array<[string, string | undefined, string, string]> = [
    ["tool", undefined, "tool", "latest"],
    ["tool:v2", undefined, "tool", "v2"],
    ["team/tool:v1", undefined, "team/tool", "v1"],
    ["localhost:5000/team/tool", "localhost:5000", "team/tool", "latest"],
    ["localhost:5000/team/tool:v2", "localhost:5000", "team/tool", "v2"],
    ["localhost/tool:1", "localhost", "tool", "1"],
    ["Example.COM:5000/team/tool:v1", "Example.COM:5000", "team/tool", "v1"],
    ["registry.example.com/a/b/c/d:x_Y.z-1", "registry.example.com", "a/b/c/d", "x_Y.z-1"],
    ["[::1]:5000/tool:v1", "[::1]:5000", "tool", "v1"],
    ["my-repo/a__b.c:_t", undefined, "my-repo/a__b.c", "_t"],
  ];
  for (const [input, domain, path, tag] of valid) {
    test(`accepts ${input}`, () => {
      const reference = parseReference(input);
      expect(reference.domain).toBe(domain);
      expect(reference.path).toBe(path);
      expect(reference.tag).toBe(tag);
    });
  }

  test("accepts a 128-character tag", () => {
    const tag = "a".repeat(128);
    expect(parseReference(`tool:${tag}`).tag).toBe(tag);
  });

  const invalid: Array<[string, RegExp]> = [
    ["Foo:bar", /must be lowercase/],
    ["team/Tool:v1", /must be lowercase/],
    ["MyHost/team/tool:v1", /must be lowercase/],
    ["LOCALHOST/team/tool", /must be lowercase/],
    ["a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", /digests/],
    ["x:", /tag after ':' is empty/],
    [`tool:${"a".repeat(129)}`, /tag .* 1 to 128/],
    ["tool:-v1", /tag/],
    ["", /empty/],
    [":v1", /repository name is empty/],
    ["team//tool", /path component is empty/],
    ["team/tool/", /path component is empty/],
    ["team/-tool", /path component "-tool"/],
    ["exa_mple.com/tool", /registry host "exa_mple.com" is invalid/],
    ["bad host:5000/tool", /registry host|path component/],
    [`${"a".repeat(256)}:v1`, /more than 255/],
  ];
  for (const [input, message] of invalid) {
    test(`rejects ${JSON.stringify(input.slice(0, 40))}`, () => {
      let error: unknown;
      try {
        parseReference(input);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).exitCode).toBe(2);
      expect((error as UsageError).message).toMatch(message);
      expect((error as UsageError).message).toContain(input.slice(0, 20));
    });
  }
});

describe("formatReference", () => {
  test("appends the default tag", () => {
    expect(formatReference(parseReference("localhost:5000/team/tool"))).toBe(
      "localhost:5000/team/tool:latest",
    );
  });
});

describe("normalizeReference", () => {
  const cases: Array<[string, string]> = [
    ["tool:v2", "docker.io/library/tool:v2"],
    ["tool", "docker.io/library/tool:latest"],
    ["team/tool:v1", "docker.io/team/tool:v1"],
    ["docker.io/library/tool:v2", "docker.io/library/tool:v2"],
    ["index.docker.io/team/tool:v1", "docker.io/team/tool:v1"],
    ["localhost:5000/team/tool:v2", "localhost:5000/team/tool:v2"],
  ];
  for (const [input, expected] of cases) {
    test(`normalizes ${input}`, () => {
      expect(normalizeReference(input)).toBe(expected);
    });
  }
});
