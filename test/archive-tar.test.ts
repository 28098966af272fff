import { describe, expect, test } from "bun:test";

import { ImageArchiveStream } from "../src/archive/index.ts";
import { ArchiveError } from "../src/errors.ts";
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
  chunkedStream,
  concatBytes,
  encodeEntries,
  joinTar,
  patchHeader,
  repackTar,
  replaceTarEntry,
  splitTarEntries,
  writeBase256Size,
} from "./support/fixtures.ts";

const newName = "team/renamed:v2";
const textEncoder = new TextEncoder();

describe("tar formats", () => {
  test("PAX repack passes through", async () => {
    const fixture = await buildImageArchive();
    const tar = await repackTar(fixture.tar, {
      paxOptions: ["globcomment=imgload-test"],
    });
    const { output, summary } = await runStage(tar);

    const types = splitTarEntries(tar).entries.map((entry) => entry.raw[156]);
    expect(types[0]).toBe("g".charCodeAt(0));
    expect(output).toEqual(tar);
    expect(summary.configDigest).toBe(fixture.configDigest);
    expect(summary.topLayer).toBe(fixture.topLayer);
  });

  test("PAX repack renames", async () => {
    const fixture = await buildImageArchive();
    const tar = await repackTar(fixture.tar);
    const { output } = await runStage(tar, { reference: newName });

    const original = findEntry(tar, "manifest.json");
    const ownHeader = original.headerOffset - original.offset;
    const rewritten = findEntry(output, "manifest.json");
    // The x header goes, the mtime field stays.
    expect(original.raw[156]).toBe("x".charCodeAt(0));
    expect(rewritten.raw[156]).toBe("0".charCodeAt(0));
    expect(rewritten.raw.subarray(136, 148)).toEqual(
      original.raw.subarray(ownHeader + 136, ownHeader + 148),
    );
    expect(otherEntries(output)).toEqual(otherEntries(tar));
    expect(memberJson(output, "repositories")).toEqual({
      "team/renamed": { v2: fixture.topLayer },
    });
  });

  test("PAX repack in 1-byte chunks", async () => {
    const fixture = await buildImageArchive({ layout: "docker-oci" });
    const tar = await repackTar(fixture.tar, {
      paxOptions: ["globcomment=imgload-test"],
    });
    const whole = await runStage(tar, { reference: newName });
    const bytewise = await runStage(tar, { reference: newName, chunkSize: 1 });

    expect(bytewise.output).toEqual(whole.output);
    expect(bytewise.summary).toEqual(whole.summary);
  });

  test("GNU format repack renames", async () => {
    const fixture = await buildImageArchive({ layout: "docker-oci" });
    const tar = await repackTar(fixture.tar, { format: "gnu" });
    const { output, summary } = await runStage(tar, { reference: newName });

    expect(otherEntries(output)).toEqual(otherEntries(tar));
    expect(summary.configDigest).toBe(fixture.configDigest);
  });

  test("dot-slash repack renames", async () => {
    const fixture = await buildImageArchive();
    const tar = await repackTar(fixture.tar, { dotSlash: true });
    const { output } = await runStage(tar, { reference: newName });

    expect(findEntry(output, "manifest.json").name).toBe("./manifest.json");
    const manifest = memberJson(output, "manifest.json") as Array<{
      RepoTags: string[];
    }>;
    expect(manifest[0]?.RepoTags).toEqual([newName]);
  });

  test("base-256 size is read", async () => {
    const fixture = await buildImageArchive({ layerSize: 3000 });
    const layer = findEntry(
      fixture.tar,
      `${fixture.images[0]?.v1Ids[1]}/layer.tar`,
    );
    const tar = patchHeader(fixture.tar, layer.headerOffset, (block) =>
      writeBase256Size(block, layer.body.length),
    );
    const { output, summary } = await runStage(tar, { chunkSize: 777 });

    expect(tar[layer.headerOffset + 124]).toBe(0x80);
    expect(output).toEqual(tar);
    expect(summary.topLayer).toBe(fixture.topLayer);
  });

  test("signed checksum is accepted", async () => {
    const fixture = await buildImageArchive();
    const name = "caf\u00e9-\u00fcber.txt";
    const extra = await encodeEntries([
      { header: { name, size: 3, type: "file" }, body: "abc" },
    ]);
    const headerBlock = extra.slice(0, 512);
    const signed = patchHeader(headerBlock, 0, () => {}, true);
    const unsigned = patchHeader(headerBlock, 0, () => {});
    const { entries, trailer } = splitTarEntries(fixture.tar);
    const tar = joinTar(
      [signed, extra.subarray(512), ...entries.map((entry) => entry.raw)],
      trailer,
    );
    const { output } = await runStage(tar);

    expect(signed.subarray(148, 156)).not.toEqual(unsigned.subarray(148, 156));
    expect(output).toEqual(tar);
  });

  test("GNU long name for manifest", async () => {
    const fixture = await buildImageArchive();
    const original = findEntry(fixture.tar, "manifest.json");
    const crafted = await encodeEntries([
      {
        header: {
          name: "././@LongLink",
          type: "gnu-long-name",
          size: 14,
        },
        body: "manifest.json\0",
      },
      {
        header: { name: "truncated-name", size: original.body.length },
        body: original.body,
      },
    ]);
    const tar = replaceTarEntry(fixture.tar, "manifest.json", crafted);
    const { output } = await runStage(tar, { reference: newName });

    const rewritten = findEntry(output, "manifest.json");
    expect(splitTarEntries(tar).entries.some((e) => e.raw[156] === 0x4c)).toBe(
      true,
    );
    expect(rewritten.raw[156]).toBe("0".charCodeAt(0));
    expect(
      (
        JSON.parse(new TextDecoder().decode(rewritten.body)) as Array<{
          RepoTags: string[];
        }>
      )[0]?.RepoTags,
    ).toEqual([newName]);
  });

  test("PAX path for manifest", async () => {
    const fixture = await buildImageArchive();
    const original = findEntry(fixture.tar, "manifest.json");
    const crafted = await encodeEntries([
      {
        header: {
          name: "PaxHeaders/elsewhere",
          size: original.body.length,
          pax: { path: "manifest.json" },
        },
        body: original.body,
      },
    ]);
    const tar = replaceTarEntry(fixture.tar, "manifest.json", crafted);
    const { output } = await runStage(tar, { reference: newName });

    const rewritten = findEntry(output, "manifest.json");
    expect(crafted[156]).toBe("x".charCodeAt(0));
    expect(rewritten.offset).toBe(rewritten.headerOffset);
    expect(memberJson(output, "manifest.json")).toEqual([
      expect.objectContaining({ RepoTags: [newName] }),
    ]);
  });

  test("PAX size overrides header", async () => {
    const fixture = await buildImageArchive();
    const body = textEncoder.encode("x".repeat(700));
    const crafted = await encodeEntries([
      {
        header: { name: "big-by-pax", size: body.length, pax: { size: "700" } },
        body,
      },
    ]);
    // The ustar size field is 0, so only the PAX record frames the body.
    const tar = patchHeader(
      joinTar([
        crafted,
        ...splitTarEntries(fixture.tar).entries.map((e) => e.raw),
      ]),
      1024,
      (block) => block.set(textEncoder.encode("00000000000\0"), 124),
    );
    const { output, summary } = await runStage(tar, { chunkSize: 100 });

    expect(output).toEqual(tar);
    expect(summary.configDigest).toBe(fixture.configDigest);
  });

  test("long member names pass through", async () => {
    const fixture = await buildImageArchive();
    const longName = `extra/${"very-long-directory-name/".repeat(8)}file.txt`;
    const extra = await encodeEntries([
      { header: { name: longName, size: 5 }, body: "hello" },
    ]);
    const tar = joinTar([
      extra,
      ...splitTarEntries(fixture.tar).entries.map((entry) => entry.raw),
    ]);
    const pax = await repackTar(tar);
    const gnu = await repackTar(tar, { format: "gnu" });

    for (const archive of [pax, gnu]) {
      const { output } = await runStage(archive, { reference: newName });
      const names = splitTarEntries(output).entries.map((entry) => entry.name);
      expect(names).toContain(longName);
      expect(otherEntries(output)).toEqual(otherEntries(archive));
    }
  });

  test("link entries have no body", async () => {
    const fixture = await buildImageArchive();
    const links = await encodeEntries([
      { header: { name: "dir/", type: "directory", size: 0 } },
      { header: { name: "dir/sym", type: "symlink", size: 0, linkname: "x" } },
      {
        header: { name: "dir/hard", type: "link", size: 0, linkname: "dir/x" },
      },
      { header: { name: "fifo", type: "fifo", size: 0 } },
    ]);
    // Go's archive/tar reads no body for a hard link whatever its size
    // field contains, so give one a size and check the framing agrees.
    const withSize = patchHeader(links, 1024, (block) =>
      block.set(textEncoder.encode("00000001750\0"), 124),
    );
    const tar = joinTar([
      withSize,
      ...splitTarEntries(fixture.tar).entries.map((entry) => entry.raw),
    ]);
    const { output } = await runStage(tar, {
      reference: newName,
      chunkSize: 300,
    });

    expect(output.subarray(0, withSize.length)).toEqual(withSize);
    expect(otherEntries(output)).toEqual(otherEntries(tar));
  });

  test("unknown type passes through", async () => {
    const fixture = await buildImageArchive();
    const vendor = await encodeEntries([
      { header: { name: "vendor-entry", size: 600 }, body: "v".repeat(600) },
    ]);
    const patched = patchHeader(vendor, 0, (block) => {
      block[156] = "Q".charCodeAt(0);
    });
    const tar = joinTar([
      patched,
      ...splitTarEntries(fixture.tar).entries.map((entry) => entry.raw),
    ]);
    const { output } = await runStage(tar);

    expect(output).toEqual(tar);
  });

  test("trailing data is forwarded", async () => {
    const fixture = await buildImageArchive();
    const junk = textEncoder.encode("junk after the end marker");
    const tar = concatBytes([fixture.tar, junk]);
    const logs = captureLogs();
    let output: Uint8Array;
    try {
      ({ output } = await runStage(tar, { chunkSize: 1000 }));
    } finally {
      logs.restore();
    }

    expect(output).toEqual(tar);
    expect(logs.text()).toContain("after the end-of-archive marker");
  });
});

describe("damaged archives", () => {
  test("bad checksum names the entry", async () => {
    const fixture = await buildImageArchive();
    const entry = findEntry(fixture.tar, "repositories");
    const tar = fixture.tar.slice();
    const modeByte = entry.headerOffset + 100;
    tar[modeByte] = (tar[modeByte] ?? 0) ^ 0x01;
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("checksum");
    expect((error as ArchiveError).message).toContain(
      `offset ${entry.headerOffset}`,
    );
    expect((error as ArchiveError).message).toContain('"repositories"');
    expect((error as ArchiveError).exitCode).toBe(4);
  });

  test("truncated inside a body", async () => {
    const fixture = await buildImageArchive({ layerSize: 5000 });
    const layer = findEntry(
      fixture.tar,
      `${fixture.images[0]?.v1Ids[1]}/layer.tar`,
    );
    const error = await stageError(
      fixture.tar.subarray(0, layer.headerOffset + 512 + 100),
    );

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("Truncated");
    expect((error as ArchiveError).message).toContain("layer.tar");
  });

  test("truncated inside a header", async () => {
    const fixture = await buildImageArchive();
    const entry = findEntry(fixture.tar, "manifest.json");
    const error = await stageError(
      fixture.tar.subarray(0, entry.headerOffset + 200),
      { chunkSize: 97 },
    );

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("Truncated");
    expect((error as ArchiveError).message).toContain(
      `header at offset ${entry.headerOffset}`,
    );
  });

  test("missing end marker", async () => {
    const fixture = await buildImageArchive();
    const end =
      fixture.tar.length - splitTarEntries(fixture.tar).trailer.length;
    const error = await stageError(fixture.tar.subarray(0, end));

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("Truncated");
    expect((error as ArchiveError).message).toContain("end-of-archive marker");
  });

  test("single zero block", async () => {
    const fixture = await buildImageArchive();
    const end =
      fixture.tar.length - splitTarEntries(fixture.tar).trailer.length;
    const error = await stageError(fixture.tar.subarray(0, end + 512));

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("Truncated");
  });

  test("empty input", async () => {
    const error = await stageError(new Uint8Array(0));

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("empty");
  });

  test("lone zero block mid-archive", async () => {
    const fixture = await buildImageArchive();
    const { entries, trailer } = splitTarEntries(fixture.tar);
    const tar = joinTar(
      [
        entries[0]?.raw ?? new Uint8Array(),
        new Uint8Array(512),
        ...entries.slice(1).map((e) => e.raw),
      ],
      trailer,
    );
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("zero block");
  });

  test("invalid PAX record", async () => {
    const fixture = await buildImageArchive();
    const crafted = await encodeEntries([
      { header: { name: "a", size: 1, pax: { comment: "abc" } }, body: "a" },
    ]);
    // The record "15 comment=abc\n" made to claim 95 bytes.
    const tar = joinTar([
      crafted,
      ...splitTarEntries(fixture.tar).entries.map((entry) => entry.raw),
    ]);
    expect(new TextDecoder().decode(tar.subarray(512, 527))).toBe(
      "15 comment=abc\n",
    );
    tar[512] = "9".charCodeAt(0);
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("PAX");
  });

  test("oversized extended header", async () => {
    const fixture = await buildImageArchive();
    const crafted = await encodeEntries([
      {
        header: {
          name: "a",
          size: 1,
          pax: { comment: "c".repeat(1024 * 1024) },
        },
        body: "a",
      },
    ]);
    const tar = joinTar([
      crafted,
      ...splitTarEntries(fixture.tar).entries.map((entry) => entry.raw),
    ]);
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("1048576-byte limit");
  });
});

describe("invalid metadata", () => {
  for (const reference of [undefined, newName]) {
    const label = reference ? "with a name" : "without a name";

    test(`invalid manifest JSON ${label}`, async () => {
      const fixture = await buildImageArchive();
      const body = "[{broken";
      const tar = replaceTarEntry(
        fixture.tar,
        "manifest.json",
        await encodeEntries([
          { header: { name: "manifest.json", size: body.length }, body },
        ]),
      );
      const error = await stageError(tar, { reference });

      expect(error).toBeInstanceOf(ArchiveError);
      expect((error as ArchiveError).message).toStartWith(
        "Invalid JSON in manifest.json: ",
      );
      expect((error as ArchiveError).hint).toContain("re-create");
    });

    test(`no image metadata ${label}`, async () => {
      const tar = joinTar([
        await encodeEntries([
          { header: { name: "etc/", type: "directory", size: 0 } },
          { header: { name: "etc/hosts", size: 9 }, body: "127.0.0.1" },
        ]),
      ]);
      const error = await stageError(tar, { reference });

      expect(error).toBeInstanceOf(ArchiveError);
      expect((error as ArchiveError).message).toContain(
        "No image metadata found",
      );
      expect((error as ArchiveError).hint).toContain("docker save");
    });
  }

  test("manifest of wrong shape", async () => {
    const fixture = await buildImageArchive();
    const body = '{"Config":"x"}';
    const tar = replaceTarEntry(
      fixture.tar,
      "manifest.json",
      await encodeEntries([
        { header: { name: "manifest.json", size: body.length }, body },
      ]),
    );
    const error = await stageError(tar, { reference: newName });

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toBe(
      "Invalid manifest.json: expected an array of images",
    );
  });

  test("manifest listing no images", async () => {
    const fixture = await buildImageArchive();
    const tar = replaceTarEntry(
      fixture.tar,
      "manifest.json",
      await encodeEntries([
        { header: { name: "manifest.json", size: 2 }, body: "[]" },
      ]),
    );
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("lists no images");
  });

  test("invalid index JSON", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const tar = replaceTarEntry(
      fixture.tar,
      "index.json",
      await encodeEntries([
        { header: { name: "index.json", size: 3 }, body: "{{{" },
      ]),
    );
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toStartWith(
      "Invalid JSON in index.json: ",
    );
  });

  test("invalid OCI manifest blob", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const index = memberJson(fixture.tar, "index.json") as {
      manifests: Array<{ digest: string }>;
    };
    const path = `blobs/sha256/${index.manifests[0]?.digest.slice(7)}`;
    const tar = replaceTarEntry(
      fixture.tar,
      path,
      await encodeEntries([{ header: { name: path, size: 5 }, body: "{oops" }]),
    );
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toStartWith(
      `Invalid JSON in ${path}: `,
    );
  });

  test("oversized manifest with small limit", async () => {
    const fixture = await buildImageArchive();
    const manifest = findEntry(fixture.tar, "manifest.json");
    const error = await stageError(fixture.tar, {
      maxMetadataBytes: 100,
      reference: newName,
    });

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain('"manifest.json"');
    expect((error as ArchiveError).message).toContain(
      `${manifest.body.length} bytes`,
    );
    expect((error as ArchiveError).message).toContain("limit of 100 bytes");
  });

  test("oversized manifest at default limit", async () => {
    const fixture = await buildImageArchive();
    const size = 16 * 1024 * 1024 + 1;
    const body = new Uint8Array(size).fill(0x20);
    body[0] = "[".charCodeAt(0);
    body[size - 1] = "]".charCodeAt(0);
    const tar = replaceTarEntry(
      fixture.tar,
      "manifest.json",
      await encodeEntries([{ header: { name: "manifest.json", size }, body }]),
    );
    const error = await stageError(tar);

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain(`is ${size} bytes`);
    expect((error as ArchiveError).message).toContain("16777216 bytes");
  });
});

describe("JSON member limits", () => {
  test("oversized config is skipped", async () => {
    const fixture = await buildImageArchive({ layout: "manifest-only" });
    const manifest = findEntry(fixture.tar, "manifest.json");
    const config = findEntry(fixture.tar, fixture.configDigest);
    const { summary } = await runStage(fixture.tar, {
      maxMetadataBytes: manifest.body.length,
    });

    expect(config.body.length).toBeGreaterThan(manifest.body.length);
    expect(summary.topLayer).toBeUndefined();
    expect(summary.configDigest).toBe(fixture.configDigest);
  });

  test("skipped OCI manifest is an error", async () => {
    const fixture = await buildImageArchive({ layout: "oci" });
    const index = findEntry(fixture.tar, "index.json");
    const error = await stageError(fixture.tar, {
      maxMetadataBytes: index.body.length,
    });

    expect(error).toBeInstanceOf(ArchiveError);
    expect((error as ArchiveError).message).toContain("was not kept");
    expect((error as ArchiveError).message).toContain(
      `${index.body.length} bytes`,
    );
  });
});

describe("stream lifecycle", () => {
  test("summary rejects on abort", async () => {
    const fixture = await buildImageArchive();
    const stage = new ImageArchiveStream();
    const writer = stage.writable.getWriter();
    void writer.write(fixture.tar.slice(0, 1000)).catch(() => {});
    const reason = new Error("stopped by the test");
    await writer.abort(reason);

    expect(await stage.summary.catch((error: unknown) => error)).toBe(reason);
  });

  test("summary resolves after flush", async () => {
    const fixture = await buildImageArchive();
    const stage = new ImageArchiveStream();
    const drained = new Response(
      chunkedStream(fixture.tar, 4096).pipeThrough(stage),
    ).arrayBuffer();

    const summary = await stage.summary;
    expect(summary.layout).toBe("docker");
    expect((await drained).byteLength).toBe(fixture.tar.length);
  });
});
