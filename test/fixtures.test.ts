import { describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { unpackTar } from "modern-tar";

import { readAll, sha256Hex } from "./support/bytes.ts";
import {
  buildImageArchive,
  compress,
  dataStream,
  decompress,
  repackTar,
  splitTarEntries,
  writeImageArchive,
} from "./support/fixtures.ts";

const textDecoder = new TextDecoder();

function json(tar: Uint8Array, name: string): unknown {
  const entry = splitTarEntries(tar).entries.find((e) => e.name === name);
  if (!entry) {
    throw new Error(`no member ${name}`);
  }
  return JSON.parse(textDecoder.decode(entry.body));
}

function body(tar: Uint8Array, name: string): Uint8Array {
  const entry = splitTarEntries(tar).entries.find((e) => e.name === name);
  if (!entry) {
    throw new Error(`no member ${name}`);
  }
  return entry.body;
}

describe("docker layout fixture", () => {
  test("config lists real diff_ids", async () => {
    const fixture = await buildImageArchive({ layers: 3 });
    const image = fixture.images[0];
    const config = json(
      fixture.tar,
      `${fixture.configDigest.slice(7)}.json`,
    ) as {
      rootfs: { diff_ids: string[] };
    };
    const layerDigests = image?.v1Ids.map(
      (id) => `sha256:${sha256Hex(body(fixture.tar, `${id}/layer.tar`))}`,
    );

    expect(config.rootfs.diff_ids).toEqual(image?.diffIds ?? []);
    expect(layerDigests).toEqual(image?.diffIds ?? []);
  });

  test("config digest is its hash", async () => {
    const fixture = await buildImageArchive();
    const name = `${fixture.configDigest.slice(7)}.json`;

    expect(`sha256:${sha256Hex(body(fixture.tar, name))}`).toBe(
      fixture.configDigest,
    );
  });

  test("v1 directories chain parents", async () => {
    const fixture = await buildImageArchive({ layers: 3 });
    const ids = fixture.images[0]?.v1Ids ?? [];

    expect(ids).toHaveLength(3);
    for (const [index, id] of ids.entries()) {
      const v1 = json(fixture.tar, `${id}/json`) as {
        id: string;
        parent?: string;
      };
      expect(v1.id).toBe(id);
      expect(v1.parent).toBe(index === 0 ? undefined : ids[index - 1]);
      expect(textDecoder.decode(body(fixture.tar, `${id}/VERSION`))).toBe(
        "1.0",
      );
    }
  });

  test("manifest and repositories agree", async () => {
    const fixture = await buildImageArchive({
      extraTags: ["fixture/app:latest"],
    });
    const ids = fixture.images[0]?.v1Ids ?? [];

    expect(json(fixture.tar, "manifest.json")).toEqual([
      {
        Config: `${fixture.configDigest.slice(7)}.json`,
        RepoTags: ["fixture/app:v1", "fixture/app:latest"],
        Layers: ids.map((id) => `${id}/layer.tar`),
      },
    ]);
    expect(json(fixture.tar, "repositories")).toEqual({
      "fixture/app": { v1: ids[1], latest: ids[1] },
    });
    expect(fixture.topLayer).toBe(ids[1] ?? "");
    expect(fixture.originalReference).toBe("fixture/app:v1");
  });

  test("layer has links and long name", async () => {
    const fixture = await buildImageArchive({ layerSize: 5000 });
    const top = fixture.images[0]?.v1Ids[1];
    const entries = await unpackTar(body(fixture.tar, `${top}/layer.tar`));
    const byName = new Map(entries.map((entry) => [entry.header.name, entry]));
    const longName = [...byName.keys()].find((name) => name.length > 100);

    expect(byName.get("layer1/")?.header.type).toBe("directory");
    expect(byName.get("layer1/link")?.header.type).toBe("symlink");
    expect(byName.get("layer1/link")?.header.linkname).toBe("hello.txt");
    expect(byName.get("layer1/hard")?.header.type).toBe("link");
    expect(longName).toBeDefined();
    expect(byName.get("layer1/data.bin")?.data?.length).toBe(5000);
  });

  test("dot-slash prefixes every member", async () => {
    const fixture = await buildImageArchive({ dotSlash: true });
    const names = splitTarEntries(fixture.tar).entries.map(
      (entry) => entry.name,
    );

    expect(names[0]).toBe("./");
    expect(names.every((name) => name.startsWith("./"))).toBe(true);
  });

  test("images get distinct configs", async () => {
    const fixture = await buildImageArchive({ images: 2 });
    const [first, second] = fixture.images;

    expect(first?.configDigest).not.toBe(second?.configDigest);
    expect(second?.references).toEqual(["fixture/app-1:v1"]);
    expect(json(fixture.tar, "manifest.json")).toHaveLength(2);
  });
});

describe("other layout fixtures", () => {
  test("repotags-null has no repositories", async () => {
    const fixture = await buildImageArchive({ layout: "repotags-null" });
    const names = splitTarEntries(fixture.tar).entries.map(
      (entry) => entry.name,
    );

    expect(names).not.toContain("repositories");
    expect(json(fixture.tar, "manifest.json")).toEqual([
      expect.objectContaining({ RepoTags: null }),
    ]);
    expect(fixture.originalReference).toBeUndefined();
  });

  test("repositories-only has no config", async () => {
    const fixture = await buildImageArchive({ layout: "repositories-only" });
    const names = splitTarEntries(fixture.tar).entries.map(
      (entry) => entry.name,
    );

    expect(names).not.toContain("manifest.json");
    expect(names.some((name) => name.endsWith(".json"))).toBe(false);
    expect(json(fixture.tar, "repositories")).toEqual({
      "fixture/app": { v1: fixture.topLayer },
    });
  });

  test("manifest-only names like crane", async () => {
    const fixture = await buildImageArchive({ layout: "manifest-only" });
    const image = fixture.images[0];

    expect(json(fixture.tar, "manifest.json")).toEqual([
      {
        Config: fixture.configDigest,
        RepoTags: ["fixture/app:v1"],
        Layers: image?.diffIds.map((id) => `${id.slice(7)}.tar`),
      },
    ]);
    expect(fixture.topLayer).toBe(image?.diffIds[1] ?? "");
  });

  test("oci blobs match their digests", async () => {
    const fixture = await buildImageArchive({
      layout: "oci",
      gzipLayers: true,
    });
    const index = json(fixture.tar, "index.json") as {
      manifests: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    const descriptor = index.manifests[0];
    const manifestName = `blobs/sha256/${descriptor?.digest.slice(7)}`;
    const manifest = json(fixture.tar, manifestName) as {
      config: { digest: string };
      layers: Array<{ digest: string; mediaType: string }>;
    };

    expect(`sha256:${sha256Hex(body(fixture.tar, manifestName))}`).toBe(
      descriptor?.digest ?? "",
    );
    expect(manifest.config.digest).toBe(fixture.configDigest);
    expect(descriptor?.annotations).toEqual({
      "org.opencontainers.image.ref.name": "fixture/app:v1",
    });
    for (const layer of manifest.layers) {
      const blob = body(fixture.tar, `blobs/sha256/${layer.digest.slice(7)}`);
      expect(`sha256:${sha256Hex(blob)}`).toBe(layer.digest);
      expect(layer.mediaType).toEndWith("+gzip");
      expect(`sha256:${sha256Hex(await decompress(blob, "gzip"))}`).toBe(
        fixture.images[0]?.diffIds[manifest.layers.indexOf(layer)] ?? "",
      );
    }
  });

  test("docker-oci links layers to blobs", async () => {
    const fixture = await buildImageArchive({ layout: "docker-oci" });
    const top = fixture.images[0]?.v1Ids[1];
    const link = splitTarEntries(fixture.tar).entries.find(
      (entry) => entry.name === `${top}/layer.tar`,
    );
    const index = json(fixture.tar, "index.json") as {
      manifests: Array<{ annotations: Record<string, string> }>;
    };

    expect(link?.typeflag).toBe("2");
    expect(index.manifests[0]?.annotations).toEqual({
      "io.containerd.image.name": "docker.io/fixture/app:v1",
      "org.opencontainers.image.ref.name": "v1",
    });
    expect(json(fixture.tar, "manifest.json")).toEqual([
      expect.objectContaining({
        Config: `blobs/sha256/${fixture.configDigest.slice(7)}`,
      }),
    ]);
  });

  test("nested oci index has platforms", async () => {
    const fixture = await buildImageArchive({ layout: "oci", ociNested: true });
    const index = json(fixture.tar, "index.json") as {
      manifests: Array<{ digest: string; mediaType: string }>;
    };
    const nested = json(
      fixture.tar,
      `blobs/sha256/${index.manifests[0]?.digest.slice(7)}`,
    ) as { manifests: Array<{ platform: { architecture: string } }> };

    expect(index.manifests[0]?.mediaType).toBe(
      "application/vnd.oci.image.index.v1+json",
    );
    expect(nested.manifests.map((m) => m.platform.architecture)).toEqual([
      "arm64",
      "amd64",
      "unknown",
    ]);
  });
});

describe("writers and tools", () => {
  test("file writer matches memory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "imgload-fixture-"));
    try {
      const options = { layerSize: 3 * 1024 * 1024 + 17, seed: 5 };
      const path = join(dir, "image.tar");
      const written = await writeImageArchive(path, options);
      const built = await buildImageArchive(options);
      const bytes: Uint8Array = new Uint8Array(await readFile(path));

      expect(bytes).toEqual(built.tar);
      expect(written.size).toBe(built.tar.length);
      expect(written.configDigest).toBe(built.configDigest);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("data is half compressible", async () => {
    const data = await readAll(dataStream(4 * 1024 * 1024, 3));
    const again = await readAll(dataStream(4 * 1024 * 1024, 3));
    const compressed = await compress(data, "zstd");

    expect(again).toEqual(data);
    expect(compressed.length).toBeGreaterThan(data.length * 0.45);
    expect(compressed.length).toBeLessThan(data.length * 0.6);
  });

  test("compress round-trips", async () => {
    const fixture = await buildImageArchive();
    for (const format of ["zstd", "gzip"] as const) {
      const packed = await compress(fixture.tar, format, ["-3"]);
      expect(await decompress(packed, format)).toEqual(fixture.tar);
    }
  });

  test("PAX repack adds headers", async () => {
    const fixture = await buildImageArchive();
    const repacked = await repackTar(fixture.tar);
    const entries = splitTarEntries(repacked).entries;
    const original = splitTarEntries(fixture.tar).entries;

    expect(entries.every((entry) => entry.offset < entry.headerOffset)).toBe(
      true,
    );
    expect(entries.map((entry) => entry.name).sort()).toEqual(
      original.map((entry) => entry.name).sort(),
    );
  });
});
