import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  test,
} from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { UsageError } from "../src/errors.ts";
import { clearSecrets, redact } from "../src/redact.ts";
import {
  basicAuthorization,
  parseHeaderArgs,
  parseHeaderLine,
} from "../src/source/http-headers.ts";
import { rejection } from "./support/http.ts";

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "imgload-headers-"));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(() => clearSecrets());

function headerFile(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("parseHeaderLine", () => {
  test("splits name and value", () => {
    expect(parseHeaderLine("X-Token:  abc def ")).toEqual([
      "X-Token",
      "abc def",
    ]);
  });

  test("keeps colons in the value", () => {
    expect(parseHeaderLine("X-Time: 10:30")).toEqual(["X-Time", "10:30"]);
  });

  test("accepts an empty value", () => {
    expect(parseHeaderLine("X-Empty:")).toEqual(["X-Empty", ""]);
  });

  test("rejects a missing colon", () => {
    expect(parseHeaderLine("X-Token abc")).toBeUndefined();
  });

  test("rejects an invalid name", () => {
    expect(parseHeaderLine("Bad Name: x")).toBeUndefined();
  });

  test("rejects control characters", () => {
    expect(parseHeaderLine("X-Token: a\u0000b")).toBeUndefined();
  });
});

describe("parseHeaderArgs", () => {
  test("parses repeated values", async () => {
    const headers = await parseHeaderArgs(["A: 1", "B: two"]);

    expect(headers).toEqual([
      ["A", "1"],
      ["B", "two"],
    ]);
  });

  test("reads a header file", async () => {
    const path = headerFile(
      "ok.txt",
      "# comment\r\n\r\nAuthorization: Bearer file-token-1\r\n" +
        "  # indented\nX-A: b\n",
    );

    const headers = await parseHeaderArgs(["X-First: 1", `@${path}`]);

    expect(headers).toEqual([
      ["X-First", "1"],
      ["Authorization", "Bearer file-token-1"],
      ["X-A", "b"],
    ]);
  });

  test("names the invalid file line", async () => {
    const path = headerFile("bad.txt", "X-A: fine\n\nsecret-value-no-colon\n");

    const error = await rejection(parseHeaderArgs([`@${path}`]));

    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain(`line 3 of ${path}`);
    expect((error as Error).message).not.toContain("secret-value");
  });

  test("names the invalid argument", async () => {
    const error = await rejection(
      parseHeaderArgs(["A: 1", "token-value-alone"]),
    );

    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain("argument 2");
    expect((error as Error).message).not.toContain("token-value-alone");
  });

  test("missing file is a usage error", async () => {
    const error = await rejection(parseHeaderArgs([`@${join(dir, "none")}`]));

    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain("ENOENT");
  });

  test("rejects the Range header", async () => {
    const error = await rejection(parseHeaderArgs(["Range: bytes=5-"]));

    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain("Range");
  });

  test("registers values as secrets", async () => {
    await parseHeaderArgs(["Authorization: Bearer arg-token-77"]);

    expect(redact("sent Bearer arg-token-77")).toBe("sent ***");
    expect(redact("token arg-token-77")).toBe("token ***");
  });
});

describe("basicAuthorization", () => {
  test("encodes user and password", () => {
    const value = basicAuthorization(new URL("https://me:pw@host/"));

    expect(value).toBe(`Basic ${btoa("me:pw")}`);
  });

  test("decodes percent-encoding", () => {
    const value = basicAuthorization(new URL("https://me:p%40ss@host/"));

    expect(value).toBe(`Basic ${btoa("me:p@ss")}`);
  });

  test("undefined without credentials", () => {
    expect(basicAuthorization(new URL("https://host/"))).toBeUndefined();
  });
});
