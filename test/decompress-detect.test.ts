import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "bun:test";

import { detectFormat, detectHeadSize } from "../src/decompress/index.ts";
import { makeData, runTool } from "./support/decompress-fixtures.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const text = (value: string) => new TextEncoder().encode(value);

const workDir = await mkdtemp(join(tmpdir(), "imgload-detect-"));
await writeFile(join(workDir, "BZh91AY"), makeData(3000));
await writeFile(join(workDir, "manifest.json"), "[]\n");

afterAll(() => rm(workDir, { recursive: true, force: true }));

const tarOf = (format: string, ...files: string[]) => {
  const argv = ["tar", `--format=${format}`, "-C", workDir, "-cf", "-"];
  return runTool([...argv, ...files], bytes());
};

describe("detectFormat magic bytes", () => {
  const cases: [string, Uint8Array, unknown][] = [
    ["zstd frame", bytes(0x28, 0xb5, 0x2f, 0xfd, 0x04), { format: "zstd" }],
    ["first skippable", bytes(0x50, 0x2a, 0x4d, 0x18, 0), { format: "zstd" }],
    ["last skippable", bytes(0x5f, 0x2a, 0x4d, 0x18, 0), { format: "zstd" }],
    ["gzip", bytes(0x1f, 0x8b, 0x08, 0x00), { format: "gzip" }],
    [
      "xz",
      bytes(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00),
      { format: "unsupported", name: "xz" },
    ],
    ["bzip2", text("BZh91AY&SY"), { format: "unsupported", name: "bzip2" }],
    [
      "lz4 frame",
      bytes(0x04, 0x22, 0x4d, 0x18, 0x64),
      { format: "unsupported", name: "lz4" },
    ],
    ["doctype", text("<!DOCTYPE html><html>"), { format: "html" }],
    ["html tag", text("<html lang=en>"), { format: "html" }],
    ["leading whitespace", text(" \r\n\t <!doctype HTML>"), { format: "html" }],
    ["xml", text("<?xml version='1.0'?>"), { format: "unknown" }],
    ["json", text('{"errors":[]}'), { format: "unknown" }],
    ["empty", bytes(), { format: "unknown" }],
    ["one byte", bytes(0x28), { format: "unknown" }],
    ["zero block", new Uint8Array(512), { format: "unknown" }],
  ];

  for (const [name, head, expected] of cases) {
    test(name, () => {
      expect(detectFormat(head)).toEqual(expected as never);
    });
  }
});

describe("detectFormat tar", () => {
  test("needs one header block", () => {
    expect(detectHeadSize).toBe(512);
  });

  for (const format of ["ustar", "posix", "gnu", "v7"]) {
    test(`${format} header`, async () => {
      const tar = await tarOf(format, "manifest.json");
      expect(detectFormat(tar.subarray(0, detectHeadSize))).toEqual({
        format: "tar",
      });
    });
  }

  test("member named like bzip2", async () => {
    const tar = await tarOf("ustar", "BZh91AY");
    expect(detectFormat(tar.subarray(0, detectHeadSize))).toEqual({
      format: "tar",
    });
  });

  test("v7 with bad checksum", async () => {
    const tar = await tarOf("v7", "manifest.json");
    const head = tar.slice(0, detectHeadSize);
    head[0] = head[0]! + 1;
    expect(detectFormat(head)).toEqual({ format: "unknown" });
  });

  test("v7 cut short", async () => {
    const tar = await tarOf("v7", "manifest.json");
    expect(detectFormat(tar.subarray(0, 511))).toEqual({ format: "unknown" });
  });
});
