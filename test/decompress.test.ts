import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "bun:test";

import {
  createDecompressStream,
  createGzipDecompressStream,
  isNativeZstdAvailable,
  type DetectInfo,
  type ZstdDecoderChoice,
} from "../src/decompress/index.ts";
import {
  ArchiveError,
  ExitCode,
  SourceError,
  UsageError,
} from "../src/errors.ts";
import {
  chunkedStream,
  concat,
  flipByte,
  makeData,
  pipeBytes,
  runTool,
  sha256,
} from "./support/decompress-fixtures.ts";

const data = makeData(1024 * 1024, 5);
const other = makeData(300 * 1024, 6);
const text = (value: string) => new TextEncoder().encode(value);

const workDir = await mkdtemp(join(tmpdir(), "imgload-decompress-"));
await writeFile(join(workDir, "layer.tar"), data);
await writeFile(join(workDir, "manifest.json"), "[]\n");
afterAll(() => rm(workDir, { recursive: true, force: true }));

const tar = await runTool(["tar", "-C", workDir, "-cf", "-", "."], text(""));
const zstdTar = await runTool(["zstd", "-q", "-c"], tar);
const gzipTar = await runTool(["gzip", "-c"], tar);

function collect(chunks: Uint8Array[]): WritableStream<Uint8Array> {
  return new WritableStream({
    write(chunk) {
      chunks.push(chunk);
    },
  });
}

// Runs `input` through the stage and records what onDetect reported.
async function decompress(
  input: Uint8Array,
  options: { zstdDecoder?: ZstdDecoderChoice; chunkSize?: number } = {},
) {
  const detected: DetectInfo[] = [];
  const stream = createDecompressStream({
    zstdDecoder: options.zstdDecoder ?? "auto",
    onDetect: (info) => detected.push(info),
  });
  const result = await pipeBytes(input, stream, options.chunkSize);
  return { ...result, detected };
}

describe("createDecompressStream formats", () => {
  test("zstd with auto decoder", async () => {
    const result = await decompress(zstdTar);
    expect(result.error).toBeUndefined();
    expect(sha256(result.output)).toBe(sha256(tar));
    const decoder = isNativeZstdAvailable() ? "native" : "wasm";
    expect(result.detected).toEqual([{ format: "zstd", decoder }]);
  });

  test("zstd with wasm decoder", async () => {
    const result = await decompress(zstdTar, { zstdDecoder: "wasm" });
    expect(sha256(result.output)).toBe(sha256(tar));
    expect(result.detected).toEqual([{ format: "zstd", decoder: "wasm" }]);
  });

  const hasNative = isNativeZstdAvailable();

  test.skipIf(!hasNative)("zstd with native decoder", async () => {
    const result = await decompress(zstdTar, { zstdDecoder: "native" });
    expect(sha256(result.output)).toBe(sha256(tar));
    expect(result.detected).toEqual([{ format: "zstd", decoder: "native" }]);
  });

  test.skipIf(hasNative)("native zstd missing", async () => {
    const result = await decompress(zstdTar, { zstdDecoder: "native" });
    expect(result.error).toBeInstanceOf(UsageError);
  });

  test("gzip", async () => {
    const result = await decompress(gzipTar, { chunkSize: 10_000 });
    expect(sha256(result.output)).toBe(sha256(tar));
    expect(result.detected).toEqual([{ format: "gzip" }]);
  });

  test("plain tar", async () => {
    const result = await decompress(tar, { chunkSize: 100_000 });
    expect(sha256(result.output)).toBe(sha256(tar));
    expect(result.detected).toEqual([{ format: "tar" }]);
  });

  test("plain tar is not copied", async () => {
    const input: Uint8Array[] = [];
    const source = chunkedStream(tar, 100).pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          input.push(chunk);
          controller.enqueue(chunk);
        },
      }),
    );
    const output: Uint8Array[] = [];
    await source
      .pipeThrough(createDecompressStream({ zstdDecoder: "auto" }))
      .pipeTo(collect(output));

    expect(output.length).toBe(input.length);
    expect(output.every((chunk, i) => chunk === input[i])).toBe(true);
  });

  test("head split in 1-byte chunks", async () => {
    const head = zstdTar.subarray(0, 600);
    const detected: DetectInfo[] = [];
    const chunks = [
      ...Array.from(head, (byte) => new Uint8Array([byte])),
      zstdTar.subarray(600),
    ];
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        controller.close();
      },
    });
    const output: Uint8Array[] = [];
    await source
      .pipeThrough(
        createDecompressStream({
          zstdDecoder: "wasm",
          onDetect: (info) => detected.push(info),
        }),
      )
      .pipeTo(collect(output));

    expect(detected).toEqual([{ format: "zstd", decoder: "wasm" }]);
    expect(sha256(concat(...output))).toBe(sha256(tar));
  });

  test("input shorter than a tar header", async () => {
    const tiny = await runTool(["zstd", "-q", "-c"], text("hi\n"));
    expect(tiny.length).toBeLessThan(512);

    const result = await decompress(tiny, { zstdDecoder: "wasm" });
    expect(result.error).toBeUndefined();
    expect(new TextDecoder().decode(result.output)).toBe("hi\n");
  });

  test("empty zstd content", async () => {
    const empty = await runTool(["zstd", "-q", "-c"], text(""));
    const result = await decompress(empty);
    expect(result.error).toBeUndefined();
    expect(result.output.length).toBe(0);
  });
});

describe("createDecompressStream rejects", () => {
  test("empty input", async () => {
    const { error, detected } = await decompress(new Uint8Array(0));
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toBe("The input is empty");
    expect((error as ArchiveError).hint).toBeDefined();
    expect(detected).toEqual([]);
  });

  for (const [name, argv] of [
    ["xz", ["xz", "-c"]],
    ["bzip2", ["bzip2", "-c"]],
    ["lz4", ["lz4", "-q", "-c"]],
  ] as const) {
    test(`${name} input`, async () => {
      const compressed = await runTool(argv, tar);
      const { error } = await decompress(compressed);
      expect(error).toBeInstanceOf(ArchiveError);
      expect((error as Error).message).toContain(`${name}-compressed`);
      expect((error as ArchiveError).hint).toContain(`${name} -dc FILE |`);
    });
  }

  test("HTML page", async () => {
    const page = text("\n<!DOCTYPE html>\n<html><body>Sign in</body></html>");
    const { error } = await decompress(page);
    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).exitCode).toBe(ExitCode.source);
    expect((error as Error).message).toContain("HTML page");
  });

  test("unknown bytes", async () => {
    const { error } = await decompress(text('{"errors":["denied"]}'));
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("7b 22 65 72 72 6f 72 73)");
  });

  test("truncated zstd", async () => {
    const cut = zstdTar.subarray(0, zstdTar.length - 100);
    for (const zstdDecoder of ["wasm", "auto"] as const) {
      const { error } = await decompress(cut, { zstdDecoder });
      expect(error).toBeInstanceOf(ArchiveError);
      expect((error as Error).message).toContain("truncated");
    }
  });

  test("corrupt zstd, native decoder", async () => {
    const corrupt = flipByte(zstdTar, zstdTar.length >> 1);
    const { error } = await decompress(corrupt, { zstdDecoder: "auto" });
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("corrupt");
  });

  test("corrupt gzip", async () => {
    const corrupt = flipByte(gzipTar, gzipTar.length >> 1);
    const { error } = await decompress(corrupt, { chunkSize: 7 * 1024 });
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("corrupt");
  });

  test("error aborts downstream", async () => {
    const aborted = Promise.withResolvers<unknown>();
    const canceled = Promise.withResolvers<unknown>();
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(text("<html>"));
        controller.enqueue(new Uint8Array(600));
      },
      cancel: canceled.resolve,
    });
    const sink = new WritableStream<Uint8Array>({ abort: aborted.resolve });

    const error = await source
      .pipeThrough(createDecompressStream({ zstdDecoder: "auto" }))
      .pipeTo(sink)
      .catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(SourceError);
    expect(await aborted.promise).toBe(error);
    expect(await canceled.promise).toBe(error);
  });

  for (const zstdDecoder of ["wasm", "auto"] as const) {
    test(`upstream error passes through, ${zstdDecoder}`, async () => {
      const failure = new Error("connection reset");
      let sent = false;
      const source = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent) return controller.error(failure);
          controller.enqueue(zstdTar.subarray(0, 100_000));
          sent = true;
        },
      });
      const error = await source
        .pipeThrough(createDecompressStream({ zstdDecoder }))
        .pipeTo(collect([]))
        .catch((reason: unknown) => reason);
      expect(error).toBe(failure);
    });
  }
});

describe("gzip decoder", () => {
  const gzip = (input: Uint8Array) => runTool(["gzip", "-c"], input);

  test("multi-member stream", async () => {
    const members = concat(await gzip(data), await gzip(other));
    const { output, error } = await pipeBytes(
      members,
      createGzipDecompressStream(),
      50_000,
    );
    expect(error).toBeUndefined();
    expect(sha256(output)).toBe(sha256(concat(data, other)));
  });

  test("truncated member", async () => {
    const compressed = await gzip(data);
    const cut = compressed.subarray(0, compressed.length >> 1);
    const { error } = await pipeBytes(cut, createGzipDecompressStream());
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("truncated");
  });

  test("corrupt byte", async () => {
    const compressed = await gzip(data);
    const corrupt = flipByte(compressed, compressed.length >> 1);
    const { error } = await pipeBytes(corrupt, createGzipDecompressStream());
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("corrupt");
  });

  test("trailing text", async () => {
    const compressed = await gzip(data);
    const junk = concat(compressed, text("appended by mistake, twice over\n"));
    const { error } = await pipeBytes(junk, createGzipDecompressStream());
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("trailing bytes");
  });

  test("trailing newline", async () => {
    const compressed = await gzip(data);
    const junk = concat(compressed, text("\n"));
    const { error } = await pipeBytes(junk, createGzipDecompressStream());
    expect(error).toBeInstanceOf(ArchiveError);
  });

  test("through the stage", async () => {
    const members = concat(gzipTar, await gzip(other));
    const result = await decompress(members, { chunkSize: 7 * 1024 });
    expect(result.error).toBeUndefined();
    expect(sha256(result.output)).toBe(sha256(concat(tar, other)));
  });
});
