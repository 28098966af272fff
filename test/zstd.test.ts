import { describe, expect, test } from "bun:test";

import {
  createNativeZstdStream,
  isNativeZstdAvailable,
  ZstdDecompressionStream,
} from "../src/decompress/index.ts";
import { readZstdWindowSize } from "../src/decompress/zstd-errors.ts";
import { wasmOutputChunkSize } from "../src/decompress/zstd-wasm.ts";
import { ArchiveError } from "../src/errors.ts";
import {
  concat,
  flipByte,
  makeData,
  makeText,
  pipeBytes,
  runTool,
  sha256,
  toolStatus,
} from "./support/decompress-fixtures.ts";

interface Fixture {
  readonly name: string;
  readonly compressed: Uint8Array;
  readonly content: Uint8Array;
}

const dataA = makeData(1536 * 1024, 1);
const dataB = makeData(512 * 1024, 2);
const dataSmall = makeData(96 * 1024, 3);
const dataLarge = makeData(8 * 1024 * 1024, 4);
const empty = new Uint8Array(0);

const zstd = (args: string[], input: Uint8Array) =>
  runTool(["zstd", "-q", "-c", ...args], input);

const fixtures: Fixture[] = [
  { name: "level 1", compressed: await zstd(["-1"], dataA), content: dataA },
  { name: "level 3", compressed: await zstd(["-3"], dataA), content: dataA },
  { name: "level 19", compressed: await zstd(["-19"], dataB), content: dataB },
  {
    name: "long 27 window",
    compressed: await zstd(["--long=27"], dataA),
    content: dataA,
  },
  {
    name: "concatenated frames",
    compressed: concat(await zstd(["-3"], dataA), await zstd(["-1"], dataB)),
    content: concat(dataA, dataB),
  },
  {
    name: "pzstd frames",
    compressed: await runTool(["pzstd", "-q", "-p", "2", "-c"], dataLarge),
    content: dataLarge,
  },
  { name: "empty content", compressed: await zstd([], empty), content: empty },
  {
    name: "no checksum",
    compressed: await zstd(["--no-check"], dataB),
    content: dataB,
  },
  {
    name: "with checksum",
    compressed: await zstd(["--check"], dataB),
    content: dataB,
  },
  {
    name: "small frame",
    compressed: await zstd([], dataSmall),
    content: dataSmall,
  },
];

const decoders = [
  { name: "wasm", create: () => new ZstdDecompressionStream(), skip: false },
  {
    name: "native",
    create: () => createNativeZstdStream(),
    skip: !isNativeZstdAvailable(),
  },
];

// 1-byte chunks only for small inputs, to keep the suite fast.
const chunkings = [
  { name: "whole", size: Infinity, maxInput: Infinity },
  { name: "64 KiB chunks", size: 64 * 1024, maxInput: Infinity },
  { name: "7-byte chunks", size: 7, maxInput: 2 * 1024 * 1024 },
  { name: "1-byte chunks", size: 1, maxInput: 64 * 1024 },
];

test("pzstd fixture has skippable frames", () => {
  const pzstd = fixtures.find((fixture) => fixture.name === "pzstd frames")!;
  const magic = new DataView(pzstd.compressed.buffer).getUint32(0, true);
  expect(magic & 0xfffffff0).toBe(0x184d2a50);
});

for (const decoder of decoders) {
  describe.skipIf(decoder.skip)(`${decoder.name} zstd decoder`, () => {
    for (const fixture of fixtures) {
      for (const chunking of chunkings) {
        if (fixture.compressed.length > chunking.maxInput) continue;

        test(`${fixture.name}, ${chunking.name}`, async () => {
          const size = Math.min(chunking.size, fixture.compressed.length || 1);
          const result = await pipeBytes(
            fixture.compressed,
            decoder.create(),
            size,
          );
          expect(result.error).toBeUndefined();
          expect(result.output.length).toBe(fixture.content.length);
          expect(sha256(result.output)).toBe(sha256(fixture.content));
        });
      }
    }

    describe("errors", () => {
      const decode = (input: Uint8Array, chunkSize?: number) =>
        pipeBytes(input, decoder.create(), chunkSize);

      test("truncated in a block", async () => {
        const compressed = await zstd(["-3"], dataA);
        const cut = compressed.subarray(0, compressed.length >> 1);
        const { error } = await decode(cut);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("truncated");
      });

      test("truncated in the checksum", async () => {
        const compressed = await zstd(["--check"], dataB);
        const cut = compressed.subarray(0, compressed.length - 2);
        const { error } = await decode(cut, 4096);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("truncated");
      });

      test("truncated frame header", async () => {
        const compressed = await zstd(["-3"], dataB);
        const { error } = await decode(compressed.subarray(0, 5));
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("truncated");
      });

      test("corrupt byte with checksum", async () => {
        const compressed = await zstd(["--check"], dataA);
        const corrupt = flipByte(compressed, compressed.length >> 1);
        const { error } = await decode(corrupt, 64 * 1024);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("corrupt");
      });

      test("corrupt byte without checksum", async () => {
        const compressed = await zstd(["--no-check"], makeText(256 * 1024));
        const corrupt = flipByte(compressed, compressed.length >> 1);
        // zstd itself must detect it, or the fixture proves nothing.
        expect(await toolStatus(["zstd", "-t", "-q"], corrupt)).not.toBe(0);

        const { error } = await decode(corrupt);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("corrupt");
      });

      test("reserved block type", async () => {
        const compressed = await zstd(["--no-check"], dataB);
        // Streamed input has no content size: the 6-byte frame header is
        // magic, descriptor and window, then the first block header.
        const corrupt = compressed.slice();
        corrupt[6] = corrupt[6]! | 0x06;
        const { error } = await decode(corrupt);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("corrupt");
      });

      test("newline after last frame", async () => {
        const compressed = await zstd(["-3"], dataB);
        const junk = concat(compressed, new Uint8Array([0x0a]));
        const { error } = await decode(junk);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("trailing data");
      });

      test("text after last frame", async () => {
        const compressed = await zstd(["-3"], dataB);
        const text = new TextEncoder().encode("appended by mistake\n");
        const { error } = await decode(concat(compressed, text), 1000);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("trailing data");
      });

      test("not zstd data", async () => {
        const gzip = await runTool(["gzip", "-c"], dataSmall);
        const { error } = await decode(gzip);
        expect(error).toBeInstanceOf(ArchiveError);
      });

      test("window of 256 MiB", async () => {
        const compressed = await zstd(["--long=28"], dataSmall);
        expect(readZstdWindowSize(compressed)).toBe(2 ** 28);

        const { error } = await decode(compressed);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as Error).message).toContain("window");
      });

      test("window of 2 GiB", async () => {
        const compressed = await zstd(["--long=31"], dataSmall);
        const { error } = await decode(compressed);
        expect(error).toBeInstanceOf(ArchiveError);
        expect((error as ArchiveError).hint).toContain("--long=31");
      });

      test("error reaches both sides", async () => {
        const compressed = await zstd(["--no-check"], dataB);
        const corrupt = compressed.slice();
        corrupt[6] = corrupt[6]! | 0x06;
        const canceled = Promise.withResolvers<unknown>();
        const aborted = Promise.withResolvers<unknown>();
        // The source never closes, so only the decoder's error ends the pipe.
        const source = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(corrupt);
          },
          cancel: canceled.resolve,
        });
        const sink = new WritableStream<Uint8Array>({ abort: aborted.resolve });

        const error = await source
          .pipeThrough(decoder.create())
          .pipeTo(sink)
          .catch((reason: unknown) => reason);
        expect(error).toBeInstanceOf(ArchiveError);
        expect(await aborted.promise).toBe(error);
        expect(await canceled.promise).toBe(error);
      });
    });
  });
}

describe("wasm zstd decoder streaming", () => {
  test("emits full output chunks", async () => {
    const compressed = await zstd(["-3"], dataLarge);
    const { chunks } = await pipeBytes(
      compressed,
      new ZstdDecompressionStream(),
      64 * 1024,
    );
    const sizes = chunks.slice(0, -1).map((chunk) => chunk.length);
    expect(new Set(sizes)).toEqual(new Set([wasmOutputChunkSize]));
  });

  test("waits for reads between chunks", async () => {
    const zeros = new Uint8Array(64 * 1024 * 1024);
    const compressed = await zstd(["-3"], zeros);
    const stream = new ZstdDecompressionStream();
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();

    let written = false;
    const write = writer.write(compressed).then(() => (written = true));
    await reader.read();
    await reader.read();
    for (let i = 0; i < 10; i++) await new Promise(setImmediate);
    expect(written).toBe(false);

    let total = 2 * wasmOutputChunkSize;
    const closed = writer.close();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
    }
    await write;
    await closed;
    expect(written).toBe(true);
    expect(total).toBe(zeros.length);
  });

  test("two streams at once", async () => {
    const first = await zstd(["-3"], dataA);
    const second = await zstd(["-1", "--long=27"], dataB);
    const [a, b] = await Promise.all([
      pipeBytes(first, new ZstdDecompressionStream(), 4096),
      pipeBytes(second, new ZstdDecompressionStream(), 3000),
    ]);
    expect(sha256(a.output)).toBe(sha256(dataA));
    expect(sha256(b.output)).toBe(sha256(dataB));
  });

  test("cancel errors the writable", async () => {
    const compressed = await zstd(["-3"], dataA);
    const stream = new ZstdDecompressionStream();
    const writer = stream.writable.getWriter();
    const write = writer.write(compressed).catch((error) => error);

    await stream.readable.cancel(new Error("stopped"));
    expect(await write).toBeInstanceOf(Error);
    expect(((await write) as Error).message).toBe("stopped");
  });

  test("empty input", async () => {
    const { error } = await pipeBytes(empty, new ZstdDecompressionStream());
    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as Error).message).toContain("empty");
  });
});

describe("readZstdWindowSize", () => {
  test("reads window descriptor", async () => {
    const compressed = await zstd(["--long=27"], dataSmall);
    expect(readZstdWindowSize(compressed)).toBe(2 ** 27);
  });

  test("skips skippable frames", async () => {
    const skippable = new Uint8Array([
      0x5f, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 1, 2,
    ]);
    const compressed = await zstd(["--long=24"], dataSmall);
    expect(readZstdWindowSize(concat(skippable, compressed))).toBe(2 ** 24);
  });

  test("single segment frame", async () => {
    const abc = new TextEncoder().encode("abc");
    const compressed = await zstd(["--stream-size=3"], abc);
    expect(readZstdWindowSize(compressed)).toBe(3);
  });

  test("short header", () => {
    const magicOnly = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]);
    expect(readZstdWindowSize(magicOnly)).toBeUndefined();
  });
});
