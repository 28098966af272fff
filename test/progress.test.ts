import { afterEach, beforeEach, describe, expect, test } from "bun:test";

import {
  formatBar,
  formatBytes,
  formatDuration,
  formatProgress,
  formatRate,
  ProgressStream,
  type ProgressOptions,
  RateMeter,
  truncateStart,
} from "../src/progress.ts";
import { type CapturedLogs, captureLogs } from "./support/bytes.ts";

describe("formatBytes", () => {
  const cases: Array<[number, string]> = [
    [0, "0 B"],
    [1023, "1023 B"],
    [1024, "1.0 KiB"],
    [1536, "1.5 KiB"],
    [1024 * 1024 - 1, "1.0 MiB"],
    [12.34 * 1024 * 1024, "12.3 MiB"],
    [3 * 1024 ** 3, "3.0 GiB"],
  ];
  for (const [bytes, expected] of cases) {
    test(`${bytes} bytes`, () => {
      expect(formatBytes(bytes)).toBe(expected);
    });
  }
});

describe("formatDuration", () => {
  const cases: Array<[number, string]> = [
    [0, "0s"],
    [42.4, "42s"],
    [185, "3m05s"],
    [3720, "1h02m"],
    [Number.POSITIVE_INFINITY, "--"],
    [Number.NaN, "--"],
  ];
  for (const [seconds, expected] of cases) {
    test(`${seconds} seconds`, () => {
      expect(formatDuration(seconds)).toBe(expected);
    });
  }
});

describe("formatProgress", () => {
  const mib = 1024 * 1024;

  test("with total and rate", () => {
    const text = formatProgress({
      bytes: 12 * mib,
      total: 100 * mib,
      bytesPerSecond: 4 * mib,
    });

    expect(text).toBe("12.0 MiB of 100.0 MiB (12%), 4.0 MiB/s, ETA 22s");
  });

  test("without total", () => {
    const text = formatProgress({ bytes: 5 * mib, bytesPerSecond: mib });

    expect(text).toBe("5.0 MiB, 1.0 MiB/s");
  });

  test("without rate", () => {
    const text = formatProgress({ bytes: 0, total: mib, bytesPerSecond: 0 });

    expect(text).toBe("0 B of 1.0 MiB (0%)");
  });

  test("rate format", () => {
    expect(formatRate(1536)).toBe("1.5 KiB/s");
  });
});

describe("formatBar", () => {
  test("draws a partial bar", () => {
    expect(formatBar(0.5, 10)).toBe("[#####.....]");
  });

  test("clamps the fraction", () => {
    expect(formatBar(1.7, 4)).toBe("[####]");
    expect(formatBar(-1, 4)).toBe("[....]");
  });
});

describe("truncateStart", () => {
  test("keeps short text", () => {
    expect(truncateStart("abc", 5)).toBe("abc");
  });

  test("cuts the start", () => {
    expect(truncateStart("https://host/image.tar.zst", 16)).toBe(
      "...image.tar.zst",
    );
  });
});

describe("RateMeter", () => {
  test("rate over the window", () => {
    const meter = new RateMeter(5000);
    meter.add(0, 0);
    meter.add(1000, 1000);
    meter.add(2000, 3000);

    expect(meter.rate(2000)).toBe(1500);
  });

  test("drops samples older than the window", () => {
    const meter = new RateMeter(1000);
    for (let time = 0; time <= 10_000; time += 500) {
      meter.add(time, time < 5000 ? time * 10 : 50_000 + (time - 5000));
    }

    expect(meter.rate(10_000)).toBe(1000);
  });

  test("zero before two samples", () => {
    const meter = new RateMeter(1000);
    meter.add(0, 0);

    expect(meter.rate(0)).toBe(0);
  });
});

describe("ProgressStream", () => {
  let logs: CapturedLogs;
  let clock = 0;
  let written: string[] = [];

  beforeEach(() => {
    logs = captureLogs();
    clock = 0;
    written = [];
  });

  afterEach(() => logs.restore());

  function progress(extra: Partial<ProgressOptions>): ProgressStream {
    return new ProgressStream({
      interactive: true,
      enabled: true,
      label: "http://host/image.tar.zst",
      total: 4096,
      now: () => clock,
      write: (text) => written.push(text),
      columns: 100,
      ...extra,
    });
  }

  /** Writes 1 KiB chunks into `stream`, 300 ms apart, and drains it. */
  async function feed(stream: ProgressStream, chunks: number): Promise<void> {
    const writer = stream.writable.getWriter();
    const draining = (async () => {
      for await (const _ of stream.readable) {
        // Only the side effects of the transform matter here.
      }
    })();
    for (let i = 0; i < chunks; i++) {
      clock += 300;
      await writer.write(new Uint8Array(1024));
    }
    await writer.close();
    await draining;
  }

  test("counts bytes", async () => {
    const stream = progress({ enabled: false });

    await feed(stream, 3);

    expect(stream.bytes).toBe(3072);
  });

  test("disabled writes nothing", async () => {
    const stream = progress({ enabled: false });

    await feed(stream, 4);

    expect(written).toHaveLength(0);
    expect(logs.lines).toHaveLength(0);
  });

  test("terminal bar redraws one line", async () => {
    const stream = progress({});

    await feed(stream, 4);

    expect(written.length).toBeGreaterThan(1);
    expect(written.every((text) => text.startsWith("\r"))).toBe(true);
    expect(written.at(-1)).toContain("4.0 KiB of 4.0 KiB (100%)");
    expect(written.at(-1)?.endsWith("\n")).toBe(true);
    expect(written.slice(0, -1).some((text) => text.includes("\n"))).toBe(
      false,
    );
  });

  test("bar fits the terminal", async () => {
    const stream = progress({
      columns: 60,
      label: `http://host/${"x".repeat(200)}`,
    });

    await feed(stream, 2);
    const line = written[0]?.replace("\r", "").replace("\x1b[K", "") ?? "";

    expect(line.length).toBeLessThan(60);
  });

  test("plain lines at most every 5 s", async () => {
    const stream = progress({ interactive: false });

    // 40 chunks 300 ms apart span 12 s: lines at 5 s and 10 s, none at
    // the start.
    await feed(stream, 40);
    const progressLines = logs.lines.filter((line) => line.text.includes("%"));

    expect(progressLines.length).toBe(2);
    expect(written).toHaveLength(0);
  });

  test("plain summary at the end", async () => {
    const stream = progress({ interactive: false });

    await feed(stream, 4);

    expect(logs.lines.at(-1)?.text).toBe(
      "http://host/image.tar.zst: read 4.0 KiB in 1s (3.3 KiB/s)",
    );
  });

  test("abandon prints no summary", async () => {
    const stream = progress({ interactive: false });
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();
    void writer.write(new Uint8Array(1024));
    await reader.read();

    stream.abandon();
    stream.finish();

    expect(logs.lines).toHaveLength(0);
  });

  test("finish runs once", async () => {
    const stream = progress({});

    await feed(stream, 2);
    const count = written.length;
    stream.finish();

    expect(written).toHaveLength(count);
  });

  test("clearLine erases the bar", async () => {
    const stream = progress({ total: 1024 * 1024 });
    const writer = stream.writable.getWriter();
    const reader = stream.readable.getReader();
    clock = 500;
    void writer.write(new Uint8Array(1024));
    await reader.read();

    stream.clearLine();

    expect(written.at(-1)).toBe("\r\x1b[K");
  });
});
