import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { EngineError } from "../src/errors.ts";
import { BunRuntime } from "../src/runtime/bun.ts";
import { createFileSink } from "../src/sink/file.ts";

const runtime = new BunRuntime();
const root = await mkdtemp(join(tmpdir(), "imgload-file-"));
let directory: string;
let counter = 0;

beforeEach(async () => {
  directory = join(root, String(counter++));
  await mkdir(directory);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const payload = new Uint8Array(300_000).map((_, i) => i % 249);

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("createFileSink", () => {
  test("renames temp file on finish", async () => {
    const target = join(directory, "image.tar");
    await writeFile(target, "old");
    const sink = await createFileSink(runtime, target);
    const writer = sink.writable.getWriter();
    await writer.write(payload);
    await writer.close();

    expect(await readFile(target, "utf8")).toBe("old");
    const during = await readdir(directory);
    expect(during.length).toBe(2);
    expect(during.find((name) => name !== "image.tar")).toMatch(
      /^\.imgload-[0-9a-f]+\.tmp$/,
    );

    await sink.finish();
    expect(new Uint8Array(await readFile(target))).toEqual(payload);
    expect(await readdir(directory)).toEqual(["image.tar"]);
  });

  test("creates missing target", async () => {
    const target = join(directory, "new.tar");
    const sink = await createFileSink(runtime, target);
    const writer = sink.writable.getWriter();
    await writer.write(payload);
    await writer.close();
    await sink.finish();

    expect(new Uint8Array(await readFile(target))).toEqual(payload);
  });

  test("relative path stays in its directory", async () => {
    const previous = process.cwd();
    process.chdir(directory);
    try {
      const sink = await createFileSink(runtime, "relative.tar");
      const writer = sink.writable.getWriter();
      await writer.write(payload);
      await writer.close();
      await sink.finish();
    } finally {
      process.chdir(previous);
    }

    expect(await readdir(directory)).toEqual(["relative.tar"]);
  });

  test("keeps mode of existing file", async () => {
    const target = join(directory, "private.tar");
    await writeFile(target, "old");
    await chmod(target, 0o600);
    const sink = await createFileSink(runtime, target);
    await sink.writable.close();
    await sink.finish();

    expect((await stat(target)).mode & 0o777).toBe(0o600);
  });

  test("abort removes temp file", async () => {
    const target = join(directory, "image.tar");
    await writeFile(target, "old");
    const sink = await createFileSink(runtime, target);
    const writer = sink.writable.getWriter();
    await writer.write(payload);
    await writer.abort(new Error("upstream failed"));
    await sink.abort();

    expect(await readdir(directory)).toEqual(["image.tar"]);
    expect(await readFile(target, "utf8")).toBe("old");
    expect(await caught(sink.finish())).toBeInstanceOf(EngineError);
  });

  test("abort during pipe removes temp", async () => {
    const target = join(directory, "image.tar");
    const sink = await createFileSink(runtime, target);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(payload);
        controller.error(new Error("download failed"));
      },
    });
    const error = await caught(stream.pipeTo(sink.writable));

    expect((error as Error).message).toBe("download failed");
    expect(await readdir(directory)).toEqual([]);
  });

  test("writes /dev/null directly", async () => {
    const sink = await createFileSink(runtime, "/dev/null");
    const writer = sink.writable.getWriter();
    await writer.write(payload);
    await writer.close();
    const result = await sink.finish();

    expect(result.loadedReferences).toEqual([]);
    expect((await stat("/dev/null")).isCharacterDevice()).toBe(true);
  });

  test("writes FIFO directly", async () => {
    const fifo = join(directory, "pipe");
    expect(await Bun.spawn(["mkfifo", fifo]).exited).toBe(0);
    const reader = Bun.spawn(["cat", fifo], { stdout: "pipe" });
    const received = new Response(reader.stdout).bytes();

    const sink = await createFileSink(runtime, fifo);
    const writer = sink.writable.getWriter();
    await writer.write(payload);
    await writer.close();
    await sink.finish();

    expect(await received).toEqual(payload);
    expect((await stat(fifo)).isFIFO()).toBe(true);
    expect(await readdir(directory)).toEqual(["pipe"]);
  });

  test("missing directory rejects", async () => {
    const target = join(directory, "absent", "image.tar");
    const error = await caught(createFileSink(runtime, target));

    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toBe(
      `Cannot write output file ${target}: directory ${join(directory, "absent")} does not exist`,
    );
    expect((error as EngineError).hint).toContain("Create the directory");
  });

  test("directory target rejects", async () => {
    const error = await caught(createFileSink(runtime, directory));

    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toBe(
      `Cannot write output file ${directory}: it is a directory`,
    );
  });

  test("file as directory rejects", async () => {
    const file = join(directory, "plain");
    await writeFile(file, "");
    const error = await caught(createFileSink(runtime, join(file, "x.tar")));

    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toContain("is not a directory");
  });

  test("full device reports no space", async () => {
    const sink = await createFileSink(runtime, "/dev/full");
    const writer = sink.writable.getWriter();
    const error = await caught(writer.write(payload));

    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toBe(
      "Cannot write output file /dev/full: no space left on device",
    );
  });
});

describe("createStdoutSink", () => {
  const sinkModule = resolve(import.meta.dir, "../src/sink/file.ts");
  const runtimeModule = resolve(import.meta.dir, "../src/runtime/bun.ts");

  test("writes bytes to stdout", async () => {
    const script = join(root, "stdout.ts");
    await writeFile(
      script,
      `import { createStdoutSink } from ${JSON.stringify(sinkModule)};
import { BunRuntime } from ${JSON.stringify(runtimeModule)};
const sink = createStdoutSink(new BunRuntime());
const writer = sink.writable.getWriter();
for (let i = 0; i < 64; i++) await writer.write(new Uint8Array(65536).fill(i));
await writer.close();
await sink.finish();`,
    );
    const child = Bun.spawn([process.execPath, script], { stdout: "pipe" });
    const bytes = await new Response(child.stdout).bytes();

    expect(await child.exited).toBe(0);
    expect(bytes.byteLength).toBe(64 * 65536);
    expect(bytes[65536 * 63]).toBe(63);
  });

  test("closed reader gives EngineError", async () => {
    const script = join(root, "epipe.ts");
    await writeFile(
      script,
      `import { createStdoutSink } from ${JSON.stringify(sinkModule)};
import { BunRuntime } from ${JSON.stringify(runtimeModule)};
const sink = createStdoutSink(new BunRuntime());
const writer = sink.writable.getWriter();
try {
  for (;;) await writer.write(new Uint8Array(65536));
} catch (error) {
  process.stderr.write(error.constructor.name + ": " + error.message);
}`,
    );
    const child = Bun.spawn(
      [
        "sh",
        "-c",
        `"$0" "$1" | head -c 10 >/dev/null`,
        process.execPath,
        script,
      ],
      {
        stderr: "pipe",
      },
    );
    const stderr = await new Response(child.stderr).text();

    expect(stderr).toBe(
      "EngineError: Cannot write to stdout: the reader closed the pipe",
    );
  });
});
