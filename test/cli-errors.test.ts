import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPrivateDaemon } from "../scripts/dockerd.ts";
import {
  ArchiveServer,
  binaryPath,
  ensureBinary,
  runImgload,
  type CliRun,
  type CliRunOptions,
} from "./support/cli.ts";
import { describeDocker, dockerStatus, listImageIds } from "./support/docker.ts";
import {
  buildImageArchive,
  compress,
  concatBytes,
  encodeEntries,
  patchHeader,
  replaceTarEntry,
  splitTarEntries,
} from "./support/fixtures.ts";

let server: ArchiveServer;
let workDir: string;
let seed = 100;

beforeAll(async () => {
  await ensureBinary();
  server = new ArchiveServer();
  workDir = await mkdtemp(join(tmpdir(), "imgload-errors-"));
});

afterAll(async () => {
  server.stop();
  await rm(workDir, { recursive: true, force: true });
});

/** Builds an archive whose image is new to the daemon, so a load would show. */
async function freshArchive(layerSize = 4096): Promise<Uint8Array> {
  seed++;
  const archive = await buildImageArchive({
    reference: `imgload-test/never-loaded:s${seed}`,
    layerSize,
    seed,
  });
  return archive.tar;
}

/**
 * Runs imgload and checks the exit code, the one-line message, and that
 * the daemon's images are exactly the same afterwards.
 */
async function expectFailure(
  args: string[],
  exitCode: number,
  message: string | RegExp,
  options: CliRunOptions = {},
): Promise<CliRun> {
  const before = await listImageIds();
  const run = await runImgload(args, options);
  expect(run.exitCode).toBe(exitCode);
  const lines = run.stderr.trim().split("\n");
  const errorLines = lines.filter((line) => line.startsWith("imgload: error:"));
  expect(errorLines).toHaveLength(1);
  expect(errorLines[0]).toMatch(message);
  expect(run.stderr).not.toContain("    at ");
  expect(await listImageIds()).toEqual(before);
  return run;
}

const name = "localhost:5000/imgload-test/failed:v1";

describeDocker("bad input loads nothing", () => {
  test("404 is a source error", async () => {
    const url = server.serve("/gone", () => new Response("no", { status: 404 }));
    await expectFailure(["load", url.replace("/gone", "/missing"), name], 3, /404/);
  });

  test("500 after retries is a source error", async () => {
    const url = server.serve("/broken", () => new Response("", { status: 500 }));
    await expectFailure(
      ["load", url, name, "--retries", "1", "--retry-delay", "0"],
      3,
      /500/,
    );
  });

  test("HTML page is a source error", async () => {
    const url = server.serve(
      "/login",
      () =>
        new Response("<!DOCTYPE html><html><body>Sign in</body></html>", {
          headers: { "Content-Type": "text/html" },
        }),
    );
    await expectFailure(["load", url, name], 3, /HTML/);
  });

  test("HTML body without the content type", async () => {
    const url = server.serve("/login.zst", "<!doctype html>\n<html></html>");
    await expectFailure(["load", url, name], 3, /HTML/);
  });

  test("empty body is an archive error", async () => {
    const url = server.serve("/empty", new Uint8Array(0));
    await expectFailure(["load", url, name], 4, /empty/);
  });

  for (const [format, argv] of [
    ["xz", ["xz", "-c"]],
    ["lz4", ["lz4", "-c"]],
    ["bzip2", ["bzip2", "-c"]],
  ] as const) {
    test(`${format} input is not supported`, async () => {
      const tar = await freshArchive();
      const child = Bun.spawn([...argv], { stdin: tar, stdout: "pipe" });
      const body = await new Response(child.stdout).bytes();
      const url = server.serve(`/image.tar.${format}`, body);
      await expectFailure(["load", url, name], 4, new RegExp(`${format}-compressed, which imgload does not support`));
    });
  }

  for (const decoder of ["native", "wasm"]) {
    test(`truncated zstd loads nothing (${decoder})`, async () => {
      const zst = await compress(await freshArchive(2 * 1024 * 1024), "zstd");
      const url = server.serve(`/truncated-${decoder}`, zst.subarray(0, zst.length - 100));
      await expectFailure(
        ["load", url, name, "--zstd-decoder", decoder],
        4,
        /truncated/i,
      );
    });

    test(`corrupt zstd loads nothing (${decoder})`, async () => {
      // Random layer bytes stay in raw blocks, so flip a byte inside the
      // compressed text run in the middle of the frame.
      const zst = new Uint8Array(
        await compress(await freshArchive(4 * 1024 * 1024), "zstd", ["--check"]),
      );
      for (let offset = zst.length >> 1; offset < (zst.length >> 1) + 64; offset++) {
        zst[offset]! ^= 0x5a;
      }
      const url = server.serve(`/corrupt-${decoder}`, zst);
      await expectFailure(
        ["load", url, name, "--zstd-decoder", decoder],
        4,
        /corrupt|checksum/i,
      );
    });

    test(`byte after the last frame (${decoder})`, async () => {
      const zst = await compress(await freshArchive(), "zstd");
      const url = server.serve(
        `/trailing-${decoder}`,
        concatBytes([zst, new Uint8Array([0x0a])]),
      );
      await expectFailure(
        ["load", url, name, "--zstd-decoder", decoder],
        4,
        /after the last|trailing/i,
      );
    });
  }

  test("bad tar header checksum", async () => {
    const tar = await freshArchive();
    const { entries } = splitTarEntries(tar);
    const layer = entries.find((entry) => entry.name.endsWith("layer.tar"))!;
    patchHeader(tar, layer.headerOffset, (block) => {
      block[0] = block[0]! ^ 1;
    }, false);
    // patchHeader rewrites the checksum, so break it again afterwards.
    tar[layer.headerOffset + 148] = "7".charCodeAt(0);
    const url = server.serve("/checksum.tar.zst", await compress(tar, "zstd"));
    await expectFailure(["load", url, name], 4, /checksum/i);
  });

  test("invalid JSON in manifest.json", async () => {
    const tar = await freshArchive();
    const raw = await encodeEntries([
      { header: { name: "manifest.json", size: 9 }, body: "[{broken}" },
    ]);
    const url = server.serve(
      "/badjson.tar.zst",
      await compress(replaceTarEntry(tar, "manifest.json", raw), "zstd"),
    );
    await expectFailure(["load", url, name], 4, /Invalid JSON in manifest\.json/);
  });

  test("oversized manifest.json", async () => {
    const tar = await freshArchive();
    const body = `[${" ".repeat(17 * 1024 * 1024)}]`;
    const raw = await encodeEntries([
      { header: { name: "manifest.json", size: body.length }, body },
    ]);
    const url = server.serve(
      "/bigjson.tar.zst",
      await compress(replaceTarEntry(tar, "manifest.json", raw), "zstd"),
    );
    await expectFailure(["load", url, name], 4, /"manifest.json" .* more than the limit of 16777216 bytes/);
  });

  test("a name for a multi-image archive", async () => {
    seed++;
    const archive = await buildImageArchive({
      reference: `imgload-test/multi:s${seed}`,
      images: 2,
      seed,
    });
    const url = server.serve("/multi.tar.zst", await compress(archive.tar, "zstd"));
    await expectFailure(
      ["load", url, name],
      2,
      new RegExp(`imgload-test/multi:s${seed}.*imgload-test/multi-1:s${seed}`),
    );
  });

  for (const invalid of [
    "Foo:bar",
    "a@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "x:",
    "MyHost/team/tool:v1",
    `tool:${"a".repeat(129)}`,
  ]) {
    test(`invalid name ${invalid.slice(0, 16)} downloads nothing`, async () => {
      let requests = 0;
      const url = server.serve("/counted", () => {
        requests++;
        return new Response("never read");
      });
      await expectFailure(["load", url, invalid], 2, /Invalid image reference/);
      expect(requests).toBe(0);
    });
  }

  test("--sha256 mismatch shows both digests", async () => {
    const zst = await compress(await freshArchive(), "zstd");
    const url = server.serve("/digest-mismatch", zst);
    const wrong = "0".repeat(64);
    const run = await expectFailure(
      ["load", url, name, "--sha256", wrong],
      3,
      new RegExp(wrong),
    );
    const actual = new Bun.CryptoHasher("sha256").update(zst).digest("hex");
    expect(run.stderr).toContain(actual);
  });

  test("unreachable daemon fails before downloading", async () => {
    let requests = 0;
    const url = server.serve("/unreached", () => {
      requests++;
      return new Response("never read");
    });
    const socket = join(workDir, "nothing-here.sock");
    await expectFailure(["load", url, name], 5, /Cannot reach the Docker daemon/, {
      env: { DOCKER_HOST: `unix://${socket}` },
    });
    expect(requests).toBe(0);
  });

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`${signal} midway loads nothing`, async () => {
      const zst = await compress(await freshArchive(8 * 1024 * 1024), "zstd", ["-1"]);
      const half = zst.subarray(0, zst.length >> 1);
      // Send half the archive, then hold the connection open.
      const url = server.serve(`/stall-${signal}`, () =>
        new Response(
          new ReadableStream({
            start(controller) {
              controller.enqueue(half);
            },
          }),
          { headers: { "Content-Length": String(zst.length) } },
        ),
      );
      const before = await listImageIds();
      const child = Bun.spawn([binaryPath, "load", url, name], {
        stdout: "pipe",
        stderr: "pipe",
      });
      await waitForChildProcess(child.pid, "docker");
      await Bun.sleep(500);
      child.kill(signal);
      const [stderr, code] = await Promise.all([
        new Response(child.stderr).text(),
        child.exited,
      ]);
      expect(code).toBe(signal === "SIGINT" ? 130 : 143);
      expect(stderr).toContain(`Interrupted by ${signal}`);
      expect(await childrenOf(child.pid)).toEqual([]);
      expect(await listImageIds()).toEqual(before);
    });
  }
});

describe("docker load failing midway", () => {
  // A daemon whose data root is a 24 MiB tmpfs runs out of space while
  // it unpacks a 64 MiB layer, so docker load exits partway through.
  const usable = dockerStatus.available && process.getuid?.() === 0;
  const testIfRoot = usable ? test : test.skip;
  let daemon: Awaited<ReturnType<typeof startPrivateDaemon>> | undefined;

  afterAll(async () => {
    await daemon?.stop();
  });

  testIfRoot("disk full is an engine error", async () => {
    daemon = await startPrivateDaemon(
      { log: () => {}, startTimeoutMs: 30_000 },
      { dataRootMiB: 24 },
    );
    const env = { DOCKER_HOST: daemon.dockerHost! };
    const zst = await compress(await freshArchive(64 * 1024 * 1024), "zstd", ["-1"]);
    const path = join(workDir, "too-big.tar.zst");
    await writeFile(path, zst);
    const run = await runImgload(["load", path, name], { env });
    expect(run.exitCode).toBe(5);
    expect(run.stderr).toMatch(/imgload: error: docker load failed: .*no space left on device/);
    const images = Bun.spawnSync(["docker", "image", "ls", "-aq"], { env: { ...process.env, ...env } });
    expect(images.stdout.toString().trim()).toBe("");
  });
});

/** Waits until `pid` has a child whose command starts with `command`. */
async function waitForChildProcess(pid: number, command: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const children = await childrenOf(pid);
    if (children.some((line) => line.startsWith(command))) {
      return;
    }
    await Bun.sleep(50);
  }
  throw new Error(`no ${command} process under pid ${pid} after 5 s`);
}

/** Returns the command lines of the child processes of `pid`. */
async function childrenOf(pid: number): Promise<string[]> {
  const ps = Bun.spawnSync(["ps", "-o", "args=", "--ppid", String(pid)]);
  return ps.stdout
    .toString()
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}
