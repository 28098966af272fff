import { describe, expect, test } from "bun:test";

import { ArchiveError, UsageError } from "../src/errors.ts";
import {
  findEntry,
  memberJson,
  otherEntries,
  runStage,
  stageError,
} from "./support/archive-stage.ts";
import { captureLogs } from "./support/bytes.ts";
import {
  buildImageArchive,
  joinTar,
  splitTarEntries,
  type FixtureLayout,
} from "./support/fixtures.ts";

const layouts: FixtureLayout[] = [
  "docker",
  "manifest-only",
  "repositories-only",
  "repotags-null",
  "oci",
  "docker-oci",
];
const newName = "registry.test:5000/team/renamed:v2";

describe("pass-through without a name", () => {
  for (const layout of layouts.filter((layout) => layout !== "oci")) {
    test(`${layout} stays byte-identical`, async () => {
      const fixture = await buildImageArchive({ layout });
      const { output, summary } = await runStage(fixture.tar);

      expect(output).toEqual(fixture.tar);
      expect(summary.rewritten).toBe(false);
    });
  }

  test("summary of docker layout", async () => {
    const fixture = await buildImageArchive({
      layout: "docker",
      extraTags: ["fixture/app:latest"],
    });
    const { summary } = await runStage(fixture.tar);

    expect(summary.layout).toBe("docker");
    expect(summary.images).toHaveLength(1);
    expect(summary.images[0]?.repoTags).toEqual([
      "fixture/app:v1",
      "fixture/app:latest",
    ]);
    expect(summary.images[0]?.layers).toEqual(
      fixture.images[0]?.v1Ids.map((id) => `${id}/layer.tar`),
    );
    expect(summary.original).toEqual({ name: "fixture/app", tag: "v1" });
    expect(summary.topLayer).toBe(fixture.topLayer);
    expect(summary.configDigest).toBe(fixture.configDigest);
    expect(summary.expectedReferences).toEqual([
      "fixture/app:v1",
      "fixture/app:latest",
    ]);
  });

  test("summary of manifest-only layout", async () => {
    const fixture = await buildImageArchive({ layout: "manifest-only" });
    const { summary } = await runStage(fixture.tar);

    expect(summary.layout).toBe("docker");
    expect(summary.configDigest).toBe(fixture.configDigest);
    expect(summary.topLayer).toBe(fixture.topLayer);
    expect(summary.topLayer).toBe(fixture.images[0]?.diffIds[1]);
    expect(summary.expectedReferences).toEqual(["fixture/app:v1"]);
  });

  test("summary of repositories-only layout", async () => {
    const fixture = await buildImageArchive({
      layout: "repositories-only",
      layers: 3,
    });
    const { summary } = await runStage(fixture.tar);

    expect(summary.layout).toBe("repositories-only");
    expect(summary.topLayer).toBe(fixture.topLayer);
    expect(summary.configDigest).toBeUndefined();
    expect(summary.images[0]?.layers).toEqual(
      fixture.images[0]?.v1Ids.map((id) => `${id}/layer.tar`),
    );
    expect(summary.original).toEqual({ name: "fixture/app", tag: "v1" });
    expect(summary.expectedReferences).toEqual(["fixture/app:v1"]);
  });

  test("summary of repotags-null layout", async () => {
    const fixture = await buildImageArchive({ layout: "repotags-null" });
    const { summary } = await runStage(fixture.tar);

    expect(summary.images[0]?.repoTags).toEqual([]);
    expect(summary.original).toBeUndefined();
    expect(summary.expectedReferences).toEqual([]);
    expect(summary.configDigest).toBe(fixture.configDigest);
    expect(summary.topLayer).toBe(fixture.topLayer);
  });

  test("summary of docker-oci layout", async () => {
    const fixture = await buildImageArchive({ layout: "docker-oci" });
    const { summary } = await runStage(fixture.tar);

    expect(summary.layout).toBe("docker");
    expect(summary.configDigest).toBe(fixture.configDigest);
    expect(summary.topLayer).toBe(fixture.topLayer);
    expect(summary.images[0]?.layers).toEqual(
      fixture.images[0]?.diffIds.map((id) => `blobs/sha256/${id.slice(7)}`),
    );
  });

  test("output chunks are input views", async () => {
    const fixture = await buildImageArchive({ layerSize: 1024 * 1024 });
    const run = await runStage(fixture.tar, { chunkSize: 64 * 1024 });
    const inputBuffers = new Set(run.inputChunks.map((chunk) => chunk.buffer));

    // Everything but the end-of-archive marker is a subarray of an input
    // chunk: no body was copied or split into blocks.
    const views = run.chunks.filter((chunk) => inputBuffers.has(chunk.buffer));
    expect(views.length).toBeGreaterThanOrEqual(run.chunks.length - 1);
    expect(run.chunks.length).toBeLessThanOrEqual(run.inputChunks.length + 1);
  });
});

describe("rename with a reference", () => {
  for (const layout of layouts) {
    test(`${layout} keeps other entries`, async () => {
      const fixture = await buildImageArchive({ layout });
      const { output, summary } = await runStage(fixture.tar, {
        reference: newName,
      });

      const expected = otherEntries(fixture.tar);
      const actual = otherEntries(output);
      expect(actual).toEqual(expected);
      expect(summary.rewritten).toBe(true);
      expect(summary.expectedReferences).toEqual([newName]);
      expect(summary.configDigest).toBe(
        layout === "repositories-only" ? undefined : fixture.configDigest,
      );
      expect(summary.topLayer).toBe(fixture.topLayer);
    });
  }

  test("manifest.json gets one tag", async () => {
    const fixture = await buildImageArchive({
      extraTags: ["fixture/app:latest", "other/name:v9"],
    });
    const { output } = await runStage(fixture.tar, { reference: newName });

    const manifest = memberJson(output, "manifest.json") as Array<{
      RepoTags: string[];
      Config: string;
    }>;
    expect(manifest).toHaveLength(1);
    expect(manifest[0]?.RepoTags).toEqual([newName]);
    expect(manifest[0]?.Config).toBe(`${fixture.configDigest.slice(7)}.json`);
  });

  test("repositories gets one name", async () => {
    const fixture = await buildImageArchive({
      extraTags: ["fixture/app:latest", "other/name:v9"],
    });
    const { output } = await runStage(fixture.tar, { reference: newName });

    expect(memberJson(output, "repositories")).toEqual({
      "registry.test:5000/team/renamed": { v2: fixture.topLayer },
    });
  });

  test("tag defaults to latest", async () => {
    const fixture = await buildImageArchive();
    const { output, summary } = await runStage(fixture.tar, {
      reference: "tool",
    });

    expect(memberJson(output, "repositories")).toEqual({
      tool: { latest: fixture.topLayer },
    });
    expect(summary.expectedReferences).toEqual(["tool:latest"]);
  });

  test("RepoTags null gets the name", async () => {
    const fixture = await buildImageArchive({ layout: "repotags-null" });
    const { output } = await runStage(fixture.tar, { reference: newName });

    const manifest = memberJson(output, "manifest.json") as Array<{
      RepoTags: string[];
    }>;
    expect(manifest[0]?.RepoTags).toEqual([newName]);
  });

  test("summary keeps original name", async () => {
    const fixture = await buildImageArchive({ reference: "team/tool:v1" });
    const { summary } = await runStage(fixture.tar, { reference: newName });

    expect(summary.original).toEqual({ name: "team/tool", tag: "v1" });
    expect(summary.images[0]?.repoTags).toEqual(["team/tool:v1"]);
  });

  test("original splits at last colon", async () => {
    const fixture = await buildImageArchive({
      reference: "localhost:5000/team/tool:v1",
    });
    const { summary } = await runStage(fixture.tar);

    expect(summary.original).toEqual({
      name: "localhost:5000/team/tool",
      tag: "v1",
    });
  });

  test("docker-oci index gets Docker's annotations", async () => {
    const fixture = await buildImageArchive({
      layout: "docker-oci",
      extraTags: ["fixture/app:latest"],
    });
    const before = memberJson(fixture.tar, "index.json") as {
      manifests: unknown[];
    };
    const { output } = await runStage(fixture.tar, { reference: "tool:v2" });

    const index = memberJson(output, "index.json") as {
      manifests: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    expect(before.manifests).toHaveLength(2);
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]?.annotations).toEqual({
      "io.containerd.image.name": "docker.io/library/tool:v2",
      "org.opencontainers.image.ref.name": "v2",
    });
  });

  test("rewritten entry keeps its header", async () => {
    const fixture = await buildImageArchive({ dotSlash: true });
    const { output } = await runStage(fixture.tar, { reference: newName });

    const original = findEntry(fixture.tar, "manifest.json");
    const rewritten = findEntry(output, "manifest.json");
    const header = (raw: Uint8Array, start: number, end: number) =>
      raw.subarray(start, end);
    expect(rewritten.name).toBe("./manifest.json");
    // mode, uid, gid; mtime; type flag to gname.
    expect(header(rewritten.raw, 100, 124)).toEqual(
      header(original.raw, 100, 124),
    );
    expect(header(rewritten.raw, 136, 148)).toEqual(
      header(original.raw, 136, 148),
    );
    expect(header(rewritten.raw, 156, 329)).toEqual(
      header(original.raw, 156, 329),
    );
  });

  test("dot-slash members are recognised", async () => {
    const fixture = await buildImageArchive({
      layout: "docker-oci",
      dotSlash: true,
    });
    const { output, summary } = await runStage(fixture.tar, {
      reference: newName,
    });

    const names = splitTarEntries(output).entries.map((entry) => entry.name);
    expect(names[0]).toBe("./");
    expect(names).toContain("./manifest.json");
    expect(memberJson(output, "repositories")).toEqual({
      "registry.test:5000/team/renamed": { v2: fixture.topLayer },
    });
    expect(summary.configDigest).toBe(fixture.configDigest);
  });
});

describe("several images", () => {
  test("docker layout with a name", async () => {
    const fixture = await buildImageArchive({ images: 2 });
    const error = await stageError(fixture.tar, { reference: newName });

    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(2);
    expect((error as UsageError).message).toContain("2 images");
    expect((error as UsageError).message).toContain("fixture/app:v1");
    expect((error as UsageError).message).toContain("fixture/app-1:v1");
    expect((error as UsageError).hint).toContain("without a name");
  });

  test("repositories-only with a name", async () => {
    const fixture = await buildImageArchive({
      layout: "repositories-only",
      images: 2,
    });
    const error = await stageError(fixture.tar, { reference: newName });

    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain("fixture/app-1:v1");
  });

  test("untagged images listed by config", async () => {
    const fixture = await buildImageArchive({
      layout: "repotags-null",
      images: 3,
    });
    const error = await stageError(fixture.tar, { reference: newName });

    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain("3 images");
    expect((error as UsageError).message).toContain(
      `config ${fixture.images[2]?.configDigest.slice(7)}.json`,
    );
  });

  test("OCI layout with a name", async () => {
    const fixture = await buildImageArchive({ layout: "oci", images: 2 });
    const error = await stageError(fixture.tar, { reference: newName });

    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).message).toContain("fixture/app-1:v1");
  });

  test("without a name passes through", async () => {
    const fixture = await buildImageArchive({ images: 2 });
    const { output, summary } = await runStage(fixture.tar);

    expect(output).toEqual(fixture.tar);
    expect(summary.images).toHaveLength(2);
    expect(summary.configDigest).toBeUndefined();
    expect(summary.topLayer).toBeUndefined();
    expect(summary.expectedReferences).toEqual([
      "fixture/app:v1",
      "fixture/app-1:v1",
    ]);
  });

  test("OCI without a name synthesizes all", async () => {
    const fixture = await buildImageArchive({ layout: "oci", images: 2 });
    const { output, summary } = await runStage(fixture.tar);

    const manifest = memberJson(output, "manifest.json") as unknown[];
    expect(manifest).toHaveLength(2);
    expect(summary.expectedReferences).toEqual([
      "fixture/app:v1",
      "fixture/app-1:v1",
    ]);
  });
});

describe("OCI synthesis", () => {
  test("appends manifest.json before the end", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const { output, summary } = await runStage(fixture.tar);

    const before = splitTarEntries(fixture.tar);
    const after = splitTarEntries(output);
    expect(after.entries.slice(0, -1).map((entry) => entry.raw)).toEqual(
      before.entries.map((entry) => entry.raw),
    );
    expect(after.entries.at(-1)?.name).toBe("manifest.json");
    expect(after.trailer).toEqual(before.trailer);
    expect(summary.layout).toBe("oci");
  });

  test("manifest points at blobs", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const { output, summary } = await runStage(fixture.tar);

    const image = fixture.images[0];
    expect(memberJson(output, "manifest.json")).toEqual([
      {
        Config: `blobs/sha256/${fixture.configDigest.slice(7)}`,
        RepoTags: ["fixture/app:v1"],
        Layers: image?.diffIds.map((id) => `blobs/sha256/${id.slice(7)}`),
      },
    ]);
    expect(summary.configDigest).toBe(fixture.configDigest);
    expect(summary.topLayer).toBe(fixture.topLayer);
    expect(summary.original).toEqual({ name: "fixture/app", tag: "v1" });
  });

  test("name overrides annotations", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const { output, summary } = await runStage(fixture.tar, {
      reference: newName,
    });

    const manifest = memberJson(output, "manifest.json") as Array<{
      RepoTags: string[];
    }>;
    expect(manifest[0]?.RepoTags).toEqual([newName]);
    const index = memberJson(output, "index.json") as {
      manifests: Array<{ annotations: Record<string, string> }>;
    };
    expect(index.manifests[0]?.annotations).toEqual({
      "org.opencontainers.image.ref.name": "v2",
      "io.containerd.image.name": newName,
    });
    expect(summary.images[0]?.repoTags).toEqual(["fixture/app:v1"]);
  });

  test("podman full reference", async () => {
    const fixture = await buildImageArchive({
      layout: "oci",
      ociNaming: "full",
      reference: "tool:v1",
    });
    const { summary } = await runStage(fixture.tar);

    expect(summary.expectedReferences).toEqual(["docker.io/library/tool:v1"]);
  });

  test("containerd annotation wins", async () => {
    const fixture = await buildImageArchive({
      layout: "oci",
      ociNaming: "containerd",
    });
    const { summary } = await runStage(fixture.tar);

    expect(summary.expectedReferences).toEqual(["docker.io/fixture/app:v1"]);
  });

  test("bare tag loads unnamed", async () => {
    const fixture = await buildImageArchive({
      layout: "oci",
      ociNaming: "tag",
    });
    const logs = captureLogs();
    let run: Awaited<ReturnType<typeof runStage>>;
    try {
      run = await runStage(fixture.tar);
    } finally {
      logs.restore();
    }
    const { output, summary } = run;

    const manifest = memberJson(output, "manifest.json") as Array<{
      RepoTags: unknown;
    }>;
    expect(manifest[0]?.RepoTags).toBeNull();
    expect(summary.expectedReferences).toEqual([]);
    expect(summary.original).toBeUndefined();
    expect(logs.text()).toContain('only by the tag "v1"');
  });

  test("no annotations loads unnamed", async () => {
    const fixture = await buildImageArchive({
      layout: "oci",
      ociNaming: "none",
    });
    const { summary } = await runStage(fixture.tar);

    expect(summary.expectedReferences).toEqual([]);
    expect(summary.configDigest).toBe(fixture.configDigest);
  });

  test("nested index picks amd64", async () => {
    const fixture = await buildImageArchive({ layout: "oci", ociNested: true });
    const { output, summary } = await runStage(fixture.tar);

    const manifest = memberJson(output, "manifest.json") as Array<{
      Config: string;
    }>;
    expect(manifest[0]?.Config).toBe(
      `blobs/sha256/${fixture.configDigest.slice(7)}`,
    );
    expect(summary.configDigest).toBe(fixture.configDigest);
  });

  test("nested index honours platform", async () => {
    const fixture = await buildImageArchive({ layout: "oci", ociNested: true });
    const { summary } = await runStage(fixture.tar, {
      platform: "linux/arm64",
    });

    expect(summary.configDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(summary.configDigest).not.toBe(fixture.configDigest);
  });

  test("missing platform is an error", async () => {
    const fixture = await buildImageArchive({ layout: "oci", ociNested: true });
    const error = await stageError(fixture.tar, { platform: "linux/s390x" });

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("linux/s390x");
    expect((error as ArchiveError).message).toContain("linux/arm64/v8");
  });

  test("gzip layers keep blob paths", async () => {
    const fixture = await buildImageArchive({
      layout: "oci",
      gzipLayers: true,
    });
    const { output, summary } = await runStage(fixture.tar);

    const manifest = memberJson(output, "manifest.json") as Array<{
      Layers: string[];
    }>;
    const layers = manifest[0]?.Layers ?? [];
    expect(layers).toHaveLength(2);
    for (const layer of layers) {
      expect(findEntry(output, layer).body[0]).toBe(0x1f);
    }
    expect(summary.topLayer).toBe(fixture.topLayer);
  });

  test("dot-slash OCI archive", async () => {
    const fixture = await buildImageArchive({ layout: "oci", dotSlash: true });
    const { output, summary } = await runStage(fixture.tar, {
      reference: newName,
    });

    const manifest = memberJson(output, "manifest.json") as Array<{
      Config: string;
    }>;
    expect(manifest[0]?.Config).toBe(
      `blobs/sha256/${fixture.configDigest.slice(7)}`,
    );
    expect(summary.configDigest).toBe(fixture.configDigest);
  });

  test("missing manifest blob is an error", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const index = memberJson(fixture.tar, "index.json") as {
      manifests: Array<{ digest: string }>;
    };
    const manifestPath = `blobs/sha256/${index.manifests[0]?.digest.slice(7)}`;
    const { entries, trailer } = splitTarEntries(fixture.tar);
    const kept = entries.filter((entry) => entry.name !== manifestPath);
    const tar = joinTar(
      kept.map((entry) => entry.raw),
      trailer,
    );
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain(manifestPath);
  });
});

describe("chunk boundaries", () => {
  const sizes: Array<[string, number | ((index: number) => number)]> = [
    ["1 byte", 1],
    ["511 bytes", 511],
    ["513 bytes", 513],
    ["random sizes", seededSizes(7)],
  ];

  for (const [label, chunkSize] of sizes) {
    test(`${label} chunks rename`, async () => {
      const fixture = await buildImageArchive({
        layout: "docker-oci",
        dotSlash: true,
      });
      const reference = await runStage(fixture.tar, { reference: newName });
      const run = await runStage(fixture.tar, {
        reference: newName,
        chunkSize,
      });

      expect(run.output).toEqual(reference.output);
      expect(run.summary).toEqual(reference.summary);
    });

    test(`${label} chunks pass through`, async () => {
      const fixture = await buildImageArchive({ layout: "docker" });
      const run = await runStage(fixture.tar, { chunkSize });

      expect(run.output).toEqual(fixture.tar);
    });
  }

  test("random chunks synthesize", async () => {
    const fixture = await buildImageArchive({ layout: "oci", ociNested: true });
    const whole = await runStage(fixture.tar, {
      chunkSize: fixture.tar.length,
    });
    const run = await runStage(fixture.tar, { chunkSize: seededSizes(11) });

    expect(run.output).toEqual(whole.output);
  });
});

/** Chunk sizes from 1 to 3000 bytes, reproducible from the seed. */
function seededSizes(seed: number): (index: number) => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return 1 + (state % 3000);
  };
}
