import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { EngineError } from "../src/errors.ts";
import { BunRuntime } from "../src/runtime/bun.ts";
import {
  checkDaemon,
  createDockerLoadSink,
  inspectImage,
  listImages,
  parseLoadOutput,
} from "../src/sink/docker.ts";
import {
  createImageArchive,
  describeDocker,
  imageExists,
  type ImageArchive,
  listImageIds,
  removeImage,
  uniqueReference,
} from "./support/docker.ts";

const runtime = new BunRuntime();
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "imgload-sink-"));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Returns a stream of `bytes` in 64 KiB chunks. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.byteLength) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.subarray(offset, offset + 65536));
      offset += 65536;
    },
  });
}

/** Returns an endless stream and a record of whether it was cancelled. */
function endlessStream() {
  const state = { cancelled: false };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await Bun.sleep(20);
      controller.enqueue(new Uint8Array(512));
    },
    cancel() {
      state.cancelled = true;
    },
  });
  return { stream, state };
}

async function caught(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection");
}

describe("parseLoadOutput", () => {
  test("reads every line kind", () => {
    const result = parseLoadOutput(
      [
        "The image team/tool:v1 already exists, renaming the old one with ID sha256:aaa to empty string",
        "Loaded image: team/tool:v1",
        "Loaded image ID: sha256:bbb",
        "",
      ].join("\n"),
    );

    expect(result.loadedReferences).toEqual(["team/tool:v1"]);
    expect(result.loadedImageIds).toEqual(["sha256:bbb"]);
    expect(result.displaced).toEqual([
      { reference: "team/tool:v1", oldId: "sha256:aaa" },
    ]);
  });

  test("empty output reports nothing", () => {
    const result = parseLoadOutput("");
    expect(result.loadedReferences).toEqual([]);
    expect(result.loadedImageIds).toEqual([]);
    expect(result.displaced).toEqual([]);
  });
});

describe("docker CLI failures", () => {
  test("missing CLI throws EngineError", () => {
    let error: unknown;
    try {
      createDockerLoadSink(runtime, { command: "imgload-no-such-docker" });
    } catch (caughtError) {
      error = caughtError;
    }
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toContain("command not found");
    expect((error as EngineError).hint).toContain("--output");
  });

  test("checkDaemon reports missing CLI", async () => {
    const error = await caught(
      checkDaemon(runtime, { command: "imgload-no-such-docker" }),
    );
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toContain("command not found");
  });
});

describeDocker("checkDaemon", () => {
  test("returns server version", async () => {
    const { serverVersion } = await checkDaemon(runtime);
    expect(serverVersion).toMatch(/^\d+\.\d+/);
  });

  test("unreachable socket fails", async () => {
    const host = `unix://${directory}/missing.sock`;
    const error = await caught(
      checkDaemon(runtime, { env: { DOCKER_HOST: host } }),
    );
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toBe(
      `Cannot reach the Docker daemon at ${host}`,
    );
    expect((error as EngineError).hint).toContain("DOCKER_HOST");
  });

  test("silent daemon times out", async () => {
    const path = join(directory, "silent.sock");
    const server = Bun.listen({
      unix: path,
      socket: { data() {} },
    });
    try {
      const error = await caught(
        checkDaemon(runtime, {
          env: { DOCKER_HOST: `unix://${path}` },
          timeoutMs: 1000,
        }),
      );
      expect(error).toBeInstanceOf(EngineError);
      expect((error as EngineError).message).toBe(
        `The Docker daemon at unix://${path} did not respond within 1 s`,
      );
    } finally {
      server.stop(true);
    }
  });

  // Root bypasses socket permissions, so the CLI runs as user nobody here.
  const setpriv = Bun.which("setpriv");
  const asNobody = process.getuid?.() === 0 && setpriv !== null;
  test.skipIf(!asNobody)("inaccessible socket says permission", async () => {
    const wrapper = join(directory, "docker-as-nobody");
    await writeFile(
      wrapper,
      `#!/bin/sh\nHOME=/tmp exec ${setpriv} --reuid=65534 --regid=65534 --clear-groups docker "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    const socket = join(directory, "private.sock");
    const server = Bun.listen({ unix: socket, socket: { data() {} } });
    await chmod(socket, 0o600);
    try {
      const error = await caught(
        checkDaemon(runtime, {
          command: wrapper,
          env: { DOCKER_HOST: `unix://${socket}` },
        }),
      );
      expect(error).toBeInstanceOf(EngineError);
      expect((error as EngineError).message).toBe(
        `Permission denied on the Docker daemon socket unix://${socket}`,
      );
      expect((error as EngineError).hint).toContain("docker group");
    } finally {
      server.stop(true);
    }
  });
});

describeDocker("docker load sink", () => {
  let small: ImageArchive;
  let large: ImageArchive;

  beforeAll(async () => {
    small = await createImageArchive(directory, uniqueReference("small"));
    large = await createImageArchive(
      directory,
      uniqueReference("large"),
      32 * 1024 * 1024,
    );
  });

  afterAll(async () => {
    await removeImage(small.reference);
    await removeImage(large.reference);
  });

  test("loads archive and reports it", async () => {
    await removeImage(small.reference);
    const sink = createDockerLoadSink(runtime);
    await streamOf(await readFile(small.path)).pipeTo(sink.writable);
    const result = await sink.finish();

    expect(result.loadedReferences).toEqual([small.reference]);
    expect(result.output).toContain(`Loaded image: ${small.reference}`);
    expect(await imageExists(small.reference)).toBe(true);
  });

  test("reports displaced tag", async () => {
    const reference = uniqueReference("moved");
    const first = await createImageArchive(directory, reference);
    const second = await createImageArchive(directory, reference);
    try {
      for (const archive of [first, second]) {
        const sink = createDockerLoadSink(runtime);
        await streamOf(await readFile(archive.path)).pipeTo(sink.writable);
        const result = await sink.finish();
        if (archive === second) {
          expect(result.displaced).toEqual([{ reference, oldId: first.id }]);
        }
      }
      expect((await inspectImage(runtime, reference))?.id).toBe(second.id);
    } finally {
      await removeImage(reference);
      await removeImage(first.id);
    }
  });

  test("garbage fails with docker's message", async () => {
    const garbage = new Uint8Array(10_000);
    crypto.getRandomValues(garbage);
    const before = await listImageIds();
    const sink = createDockerLoadSink(runtime);
    await streamOf(garbage).pipeTo(sink.writable);
    const error = await caught(sink.finish());

    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toStartWith("docker load failed: ");
    expect((error as EngineError).message).toContain("invalid tar header");
    expect(await listImageIds()).toEqual(before);
  });

  test("unreachable daemon stops upstream", async () => {
    const host = `unix://${directory}/missing.sock`;
    const sink = createDockerLoadSink(runtime, { env: { DOCKER_HOST: host } });
    const { stream, state } = endlessStream();
    const error = await caught(stream.pipeTo(sink.writable));

    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).message).toBe(
      `Cannot reach the Docker daemon at ${host}`,
    );
    expect(state.cancelled).toBe(true);
    expect(await caught(sink.finish())).toBe(error);
  });

  // Docker loads a tar that lacks only its two zero blocks, so this
  // prefix shows whether the pipe ends cleanly or the CLI dies first.
  test("clean close of prefix loads", async () => {
    await removeImage(small.reference);
    const bytes = await readFile(small.path);
    const sink = createDockerLoadSink(runtime);
    const writer = sink.writable.getWriter();
    await writer.write(bytes.subarray(0, bytes.byteLength - 1024));
    await writer.close();
    await sink.finish();

    expect(await imageExists(small.reference)).toBe(true);
  });

  test("abort of prefix loads nothing", async () => {
    await removeImage(large.reference);
    const before = await listImageIds();
    const bytes = await readFile(large.path);
    const sink = createDockerLoadSink(runtime);
    const writer = sink.writable.getWriter();
    await writer.write(bytes.subarray(0, bytes.byteLength - 1024));
    await writer.abort(new Error("upstream failed"));
    const error = await caught(sink.finish());

    expect((error as Error).message).toBe("upstream failed");
    expect(await imageExists(large.reference)).toBe(false);
    expect(await listImageIds()).toEqual(before);
  });

  test("abort midway loads nothing", async () => {
    await removeImage(large.reference);
    const before = await listImageIds();
    const bytes = await readFile(large.path);
    const half = bytes.byteLength / 2;
    let reachedHalf: () => void = () => {};
    const halfway = new Promise<void>((resolve) => (reachedHalf = resolve));
    let offset = 0;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (offset >= half) {
          reachedHalf();
          await new Promise(() => {});
        }
        controller.enqueue(bytes.subarray(offset, offset + 65536));
        offset += 65536;
      },
    });
    const sink = createDockerLoadSink(runtime);
    const piping = caught(stream.pipeTo(sink.writable));
    await halfway;
    await sink.abort(new Error("interrupted"));
    await sink.abort(new Error("interrupted again"));

    expect(await caught(sink.finish())).toMatchObject({
      message: "interrupted",
    });
    expect(await imageExists(large.reference)).toBe(false);
    expect(await listImageIds()).toEqual(before);
    void piping;
  });
});

describeDocker("image queries", () => {
  let archive: ImageArchive;

  beforeAll(async () => {
    archive = await createImageArchive(directory, uniqueReference("query"));
    const sink = createDockerLoadSink(runtime);
    await streamOf(await readFile(archive.path)).pipeTo(sink.writable);
    await sink.finish();
  });

  afterAll(async () => {
    await removeImage(archive.reference);
  });

  test("inspectImage finds image", async () => {
    const image = await inspectImage(runtime, archive.reference);
    expect(image?.id).toBe(archive.id);
    expect(image?.repoTags).toEqual([archive.reference]);
  });

  test("inspectImage misses unknown image", async () => {
    const image = await inspectImage(runtime, uniqueReference("absent"));
    expect(image).toBeUndefined();
  });

  test("listImages includes image", async () => {
    const images = await listImages(runtime);
    const image = images.find((candidate) => candidate.id === archive.id);
    expect(image?.repoTags).toEqual([archive.reference]);
  });

  test("inspectImage reports unreachable daemon", async () => {
    const host = `unix://${directory}/missing.sock`;
    const error = await caught(
      inspectImage(runtime, archive.reference, { env: { DOCKER_HOST: host } }),
    );
    expect(error).toBeInstanceOf(EngineError);
  });
});
