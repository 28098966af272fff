import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SourceError, UsageError } from "../src/errors.ts";
import { getRuntime } from "../src/runtime/index.ts";
import { openSource } from "../src/source/index.ts";

let workDir: string;
const runtime = getRuntime();

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), "imgload-source-"));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function readAll(stream: ReadableStream<Uint8Array>): Promise<number> {
  let bytes = 0;
  for await (const chunk of stream) {
    bytes += chunk.length;
  }
  return bytes;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("openSource", () => {
  test("file reads every byte", async () => {
    const path = join(workDir, "whole.bin");
    await writeFile(path, new Uint8Array(300_000).fill(7));
    const source = await openSource(runtime, path, {});
    expect(source.kind).toBe("file");
    expect(source.size).toBe(300_000);
    expect(await readAll(source.stream)).toBe(300_000);
  });

  test("file shrunk while read fails", async () => {
    // Large enough that the reader cannot have buffered it all before
    // the truncation.
    const size = 64 * 1024 * 1024;
    const path = join(workDir, "shrinking.bin");
    await writeFile(path, new Uint8Array(size));
    const source = await openSource(runtime, path, {});
    const reader = source.stream.getReader();
    await reader.read();
    await truncate(path, 1024 * 1024);
    const error = await rejection(
      (async () => {
        while (!(await reader.read()).done) {
          // Drain to the end.
        }
      })(),
    );
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).message).toContain("changed while it was read");
    expect((error as SourceError).message).toContain(`instead of ${size}`);
  });

  test("character device reads", async () => {
    const source = await openSource(runtime, "/dev/null", {});
    expect(source.size).toBeUndefined();
    expect(await readAll(source.stream)).toBe(0);
  });

  test("missing file is a source error", async () => {
    const error = await rejection(
      openSource(runtime, join(workDir, "missing"), {}),
    );
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).message).toContain("File not found");
  });

  test("directory is a source error", async () => {
    const error = await rejection(openSource(runtime, workDir, {}));
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).message).toContain("is a directory");
  });

  test("ftp URL is a usage error", async () => {
    const error = await rejection(
      openSource(runtime, "ftp://user:secret-pass@127.0.0.1/x", {}),
    );
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain('scheme "ftp"');
    expect((error as UsageError).message).not.toContain("secret-pass");
  });
});
