import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  lstat,
  mkdtemp,
  readFile,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Hex } from "./support/bytes.ts";
import {
  ArchiveServer,
  binaryPath,
  ensureBinary,
  runImgload,
} from "./support/cli.ts";
import { describeDocker, inspect } from "./support/docker.ts";
import {
  buildImageArchive,
  compress,
  concatBytes,
  type FixtureLayout,
  type ImageArchiveFixture,
  repackTar,
  splitTarEntries,
} from "./support/fixtures.ts";

let server: ArchiveServer;
let workDir: string;
let fixture: ImageArchiveFixture;
let fixtureZst: Uint8Array;

beforeAll(async () => {
  await ensureBinary();
  server = new ArchiveServer();
  workDir = await mkdtemp(join(tmpdir(), "imgload-cli-"));
  fixture = await buildImageArchive({ reference: "fixture/app:v1", seed: 11 });
  fixtureZst = await compress(fixture.tar, "zstd", ["-3"]);
});

afterAll(async () => {
  server.stop();
  await rm(workDir, { recursive: true, force: true });
});

let counter = 0;

/** Returns a name no other test uses, so each load is visible on its own. */
function freshName(label: string): string {
  counter++;
  const suffix = `${process.pid}-${counter}`;
  return `localhost:5000/imgload-test/${label}:t${suffix}`;
}

describe("imgload command line", () => {
  test("--version prints the version", async () => {
    const run = await runImgload(["--version"]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test("load --help lists flags and exit codes", async () => {
    const run = await runImgload(["load", "--help"]);
    expect(run.exitCode).toBe(0);
    for (const flag of [
      "--output",
      "--sha256",
      "--header",
      "--retries",
      "--retry-delay",
      "--timeout",
      "--cacert",
      "--zstd-decoder",
      "--json",
      "--quiet",
      "--debug",
    ]) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout).toContain("Exit codes:");
    expect(run.stdout).toContain("(default: 8)");
    const longest = Math.max(...run.stdout.split("\n").map((line) => line.length));
    expect(longest).toBeLessThanOrEqual(80);
  });

  test("unknown option is a usage error", async () => {
    const run = await runImgload(["load", "x.tar", "--bogus"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("Unknown option --bogus");
  });

  test("missing source is a usage error", async () => {
    const run = await runImgload(["load"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("SOURCE");
  });

  test("unknown command is a usage error", async () => {
    const run = await runImgload(["pull", "x"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('Unknown command "pull"');
  });

  test("invalid --retries is a usage error", async () => {
    const run = await runImgload(["load", "x.tar", "--retries", "many"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('Invalid --retries value "many"');
  });

  test("--output - with --json is a usage error", async () => {
    const run = await runImgload(["load", "x.tar", "--output", "-", "--json"]);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain("--json cannot be combined with --output -");
    const result = JSON.parse(run.stdout);
    expect(result.ok).toBe(false);
    expect(result.exitCode).toBe(2);
  });

  const usageErrors: Array<[string, string[], string]> = [
    ["huge --timeout", ["load", "x.tar", "--timeout", "3000000"], "more than 2147483 seconds"],
    ["empty --output", ["load", "x.tar", "-o", ""], "The --output path is empty"],
    ["empty source", ["load", ""], "The source is empty"],
    ["missing load command", ["http://127.0.0.1:9/x.tar.zst"], "imgload load http://127.0.0.1:9/x.tar.zst"],
  ];
  for (const [label, args, message] of usageErrors) {
    test(`${label} is a usage error`, async () => {
      const run = await runImgload(args);
      expect(run.exitCode).toBe(2);
      expect(run.stderr).toContain(message);
    });
  }

  test("a character device source is empty input", async () => {
    const run = await runImgload(["load", "/dev/null", "-o", "/dev/null"]);
    expect(run.exitCode).toBe(4);
    expect(run.stderr).toContain("The input is empty");
  });

  test("errors print one line without a stack", async () => {
    const run = await runImgload([
      "load",
      join(workDir, "missing.tar.zst"),
      "--output",
      "/dev/null",
    ]);
    expect(run.exitCode).toBe(3);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("File not found");
    expect(run.stderr).not.toContain("    at ");
  });
});

describe("--output", () => {
  test("without a name writes the archive unchanged", async () => {
    const path = join(workDir, "unchanged.tar");
    const url = server.serve("/unchanged.tar.zst", fixtureZst);
    const run = await runImgload(["load", url, "--output", path, "-q"]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toBe("");
    const written = new Uint8Array(await readFile(path));
    expect(sha256Hex(written)).toBe(sha256Hex(fixture.tar));
  });

  test("with a name rewrites only the metadata", async () => {
    const path = join(workDir, "renamed.tar");
    const url = server.serve("/renamed.tar.zst", fixtureZst);
    const run = await runImgload([
      "load",
      url,
      "localhost:5000/team/tool:v2",
      "--output",
      path,
      "--json",
    ]);
    expect(run.exitCode).toBe(0);

    const written = splitTarEntries(new Uint8Array(await readFile(path)));
    const original = splitTarEntries(fixture.tar);
    const manifest = written.entries.find((e) => e.name === "manifest.json");
    const repositories = written.entries.find((e) => e.name === "repositories");
    expect(JSON.parse(new TextDecoder().decode(manifest!.body))[0].RepoTags).toEqual(
      ["localhost:5000/team/tool:v2"],
    );
    expect(JSON.parse(new TextDecoder().decode(repositories!.body))).toEqual({
      "localhost:5000/team/tool": { v2: fixture.topLayer },
    });
    const unchanged = (list: typeof original.entries) =>
      list
        .filter((e) => e.name !== "manifest.json" && e.name !== "repositories")
        .map((e) => sha256Hex(e.raw));
    expect(unchanged(written.entries)).toEqual(unchanged(original.entries));

    const result = JSON.parse(run.stdout);
    expect(result.ok).toBe(true);
    expect(result.references).toEqual(["localhost:5000/team/tool:v2"]);
    expect(result.imageId).toBe(fixture.configDigest);
    expect(result.original).toEqual({ name: "fixture/app", tag: "v1" });
    expect(result.topLayer).toBe(fixture.topLayer);
  });

  test("- writes the tar to stdout and the result to stderr", async () => {
    const url = server.serve("/stdout.tar.zst", fixtureZst);
    const child = Bun.spawn([binaryPath, "load", url, "--output", "-"], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).bytes(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    expect(code).toBe(0);
    expect(sha256Hex(stdout)).toBe(sha256Hex(fixture.tar));
    expect(stderr).toContain("Wrote fixture/app:v1");
  });

  test("- with --quiet prints nothing on stderr", async () => {
    const url = server.serve("/quiet.tar.zst", fixtureZst);
    const child = Bun.spawn([binaryPath, "load", url, "-o", "-", "-q"], {
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).bytes(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    expect(code).toBe(0);
    expect(stderr).toBe("");
    expect(stdout.length).toBe(fixture.tar.length);
  });

  test("an unwritable result fails", async () => {
    const url = server.serve("/full.tar.zst", fixtureZst);
    const child = Bun.spawn(
      ["sh", "-c", `"$0" load "$1" -o /dev/null --json > /dev/full`, binaryPath, url],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [stderr, code] = await Promise.all([
      new Response(child.stderr).text(),
      child.exited,
    ]);
    expect(code).toBe(5);
    expect(stderr).toContain("Cannot write the result to stdout (ENOSPC)");
  });

  test("writes through a symbolic link", async () => {
    const target = join(workDir, "link-target.tar");
    const link = join(workDir, "link.tar");
    await writeFile(target, "old");
    await symlink(target, link);
    const url = server.serve("/link.tar.zst", fixtureZst);
    const run = await runImgload(["load", url, "-o", link, "-q"]);
    expect(run.exitCode).toBe(0);
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    const written = new Uint8Array(await readFile(target));
    expect(sha256Hex(written)).toBe(sha256Hex(fixture.tar));
  });

  test("leaves no file when the load fails", async () => {
    const path = join(workDir, "failed.tar");
    const truncated = fixtureZst.subarray(0, fixtureZst.length - 20);
    const url = server.serve("/failed.tar.zst", truncated);
    const run = await runImgload(["load", url, "--output", path]);
    expect(run.exitCode).toBe(4);
    expect(await Bun.file(path).exists()).toBe(false);
    const leftovers = (await Array.fromAsync(
      new Bun.Glob(".imgload-*").scan({ cwd: workDir, dot: true }),
    ));
    expect(leftovers).toEqual([]);
  });

  test("--sha256 adds the digest to the JSON result", async () => {
    const url = server.serve("/digest.tar.zst", fixtureZst);
    const run = await runImgload([
      "load",
      url,
      "--output",
      "/dev/null",
      "--json",
      "--sha256",
      sha256Hex(fixtureZst),
    ]);
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).sha256).toBe(sha256Hex(fixtureZst));
  });

  test("both zstd decoders write the same tar", async () => {
    const url = server.serve("/decoders.tar.zst", fixtureZst);
    for (const decoder of ["native", "wasm"]) {
      const path = join(workDir, `decoder-${decoder}.tar`);
      const run = await runImgload([
        "load",
        url,
        "--output",
        path,
        "--zstd-decoder",
        decoder,
        "--json",
      ]);
      expect(run.exitCode).toBe(0);
      expect(JSON.parse(run.stdout).decoder).toBe(decoder);
      const written = new Uint8Array(await readFile(path));
      expect(sha256Hex(written)).toBe(sha256Hex(fixture.tar));
    }
  });
});

describeDocker("load into Docker", () => {
  test("URL loads under exactly the given name", async () => {
    const name = freshName("tool");
    const url = server.serve("/named.tar.zst", fixtureZst);
    const run = await runImgload(["load", url, name]);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toBe(
      `Loaded ${name} (${fixture.configDigest}); archive named it fixture/app:v1\n`,
    );
    const image = await inspect(name);
    expect(image?.id).toBe(fixture.configDigest);
    expect(await inspect("fixture/app:v1")).toBeUndefined();
  });

  test("name without a tag gets latest", async () => {
    const url = server.serve("/latest.tar.zst", fixtureZst);
    const run = await runImgload(["load", url, "localhost:5000/imgload-test/notag"]);
    expect(run.exitCode).toBe(0);
    const image = await inspect("localhost:5000/imgload-test/notag:latest");
    expect(image?.id).toBe(fixture.configDigest);
  });

  test("no name keeps the archive's tag", async () => {
    const own = await buildImageArchive({
      reference: `imgload-test/own-${process.pid}:v1`,
      seed: 12,
    });
    const path = join(workDir, "own.tar.zst");
    await writeFile(path, await compress(own.tar, "zstd"));
    const run = await runImgload(["load", path, "--json"]);
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.references).toEqual([own.originalReference]);
    expect(result.imageId).toBe(own.configDigest);
    expect((await inspect(own.originalReference!))?.id).toBe(own.configDigest);
  });

  test("several images load with their own IDs", async () => {
    const multi = await buildImageArchive({
      reference: `imgload-test/multi-${process.pid}:v1`,
      images: 2,
      seed: 13,
    });
    const path = join(workDir, "multi.tar.zst");
    await writeFile(path, await compress(multi.tar, "zstd"));
    const run = await runImgload(["load", path]);
    expect(run.exitCode).toBe(0);
    const expected = multi.images.map(
      (image) => `Loaded ${image.references[0]} (${image.configDigest})\n`,
    );
    expect(run.stdout).toBe(expected.join(""));
    for (const image of multi.images) {
      expect((await inspect(image.references[0]!))?.id).toBe(image.configDigest);
    }
  });

  test("stdin loads with -", async () => {
    const name = freshName("stdin");
    const run = await runImgload(["load", "-", name], { stdin: fixtureZst });
    expect(run.exitCode).toBe(0);
    expect((await inspect(name))?.id).toBe(fixture.configDigest);
  });

  const layouts: FixtureLayout[] = [
    "docker",
    "manifest-only",
    "repositories-only",
    "repotags-null",
    "oci",
    "docker-oci",
  ];
  for (const [index, layout] of layouts.entries()) {
    test(`${layout} layout loads renamed`, async () => {
      // A seed of its own gives each layout an image ID of its own, so
      // RepoTags shows this load's name alone.
      const archive = await buildImageArchive({
        layout,
        reference: `fixture/${layout}:v1`,
        seed: 40 + index,
      });
      const path = join(workDir, `${layout}.tar.zst`);
      await writeFile(path, await compress(archive.tar, "zstd"));
      const name = freshName(layout);
      const run = await runImgload(["load", path, name, "--json"]);
      expect(run.exitCode).toBe(0);
      const image = await inspect(name);
      expect(image).toBeDefined();
      expect(JSON.parse(run.stdout).imageId).toBe(image!.id);
      if (layout !== "repositories-only") {
        // The legacy loader derives its own image ID from the v1 json.
        expect(image!.id).toBe(archive.configDigest);
      }
      // Earlier runs against the same daemon may have added their own
      // test names to this image, but never the archive's tag.
      expect(image!.repoTags).toContain(name);
      for (const tag of image!.repoTags) {
        expect(tag).toStartWith(`localhost:5000/imgload-test/${layout}:`);
      }
      expect(await inspect(`fixture/${layout}:v1`)).toBeUndefined();
    });
  }

  test("PAX re-packed archive loads renamed", async () => {
    const pax = await repackTar(fixture.tar, { format: "pax" });
    const path = join(workDir, "pax.tar.zst");
    await writeFile(path, await compress(pax, "zstd"));
    const name = freshName("pax");
    const run = await runImgload(["load", path, name]);
    expect(run.exitCode).toBe(0);
    expect((await inspect(name))?.id).toBe(fixture.configDigest);
  });

  test("./ member names load renamed", async () => {
    const dotted = await buildImageArchive({ dotSlash: true, seed: 21 });
    const path = join(workDir, "dotted.tar.zst");
    await writeFile(path, await compress(dotted.tar, "zstd"));
    const name = freshName("dotted");
    const run = await runImgload(["load", path, name]);
    expect(run.exitCode).toBe(0);
    expect((await inspect(name))?.id).toBe(dotted.configDigest);
  });

  const encodings: Array<[string, () => Promise<Uint8Array>]> = [
    ["zstd -1", () => compress(fixture.tar, "zstd", ["-1"])],
    ["zstd -19", () => compress(fixture.tar, "zstd", ["-19"])],
    ["zstd --long=27", () => compress(fixture.tar, "zstd", ["--long=27"])],
    [
      "concatenated zstd frames",
      async () => {
        const half = 512 * 8;
        return concatBytes([
          await compress(fixture.tar.subarray(0, half), "zstd"),
          await compress(fixture.tar.subarray(half), "zstd"),
        ]);
      },
    ],
    ["pzstd", () => pzstd(fixture.tar)],
    ["gzip", () => compress(fixture.tar, "gzip")],
    ["plain tar", async () => fixture.tar],
  ];
  for (const [label, encode] of encodings) {
    for (const decoder of ["native", "wasm"]) {
      test(`${label} loads (${decoder})`, async () => {
        const path = join(workDir, `${label.replace(/\W+/g, "-")}.bin`);
        await writeFile(path, await encode());
        const name = freshName("encoding");
        const run = await runImgload([
          "load",
          path,
          name,
          "--zstd-decoder",
          decoder,
        ]);
        expect(run.exitCode).toBe(0);
        expect((await inspect(name))?.id).toBe(fixture.configDigest);
      });
    }
  }

  test("a displaced tag is reported in JSON", async () => {
    const other = await buildImageArchive({ seed: 30 });
    const name = freshName("displace");
    const first = join(workDir, "displace-1.tar.zst");
    const second = join(workDir, "displace-2.tar.zst");
    await writeFile(first, await compress(other.tar, "zstd"));
    await writeFile(second, fixtureZst);
    expect((await runImgload(["load", first, name])).exitCode).toBe(0);
    const run = await runImgload(["load", second, name, "--json"]);
    expect(run.exitCode).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.imageId).toBe(fixture.configDigest);
    expect(result.displaced).toEqual([
      { reference: name, oldId: other.configDigest },
    ]);
  });
});

async function pzstd(bytes: Uint8Array): Promise<Uint8Array> {
  // pzstd splits only large inputs into frames, so pad the archive with
  // zero blocks after its end marker (Docker reads no entries past it).
  const padded = concatBytes([bytes, new Uint8Array(8 * 1024 * 1024)]);
  const child = Bun.spawn(["pzstd", "-q", "-p", "2", "-c"], {
    stdin: padded,
    stdout: "pipe",
  });
  const output = await new Response(child.stdout).bytes();
  expect(await child.exited).toBe(0);
  return output;
}

