import { afterEach, describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";

import { ExitCode, SourceError, UsageError } from "../src/errors.ts";
import { type HttpSourceOptions, openHttpSource } from "../src/source/http.ts";
import { randomBytes, readAll, sha256Hex } from "./support/bytes.ts";
import {
  cuttingFileHandler,
  type FaultServer,
  type Handler,
  serveFile,
} from "./support/fault-server.ts";
import { fastOptions, rejection, ServerPool } from "./support/http.ts";

const file = randomBytes(256 * 1024 + 17, 1);
const fileSha = sha256Hex(file);

const pool = new ServerPool();

function startServer(handler: Handler): Promise<FaultServer> {
  return pool.start({ handler });
}

afterEach(() => pool.closeAll());

async function download(url: string, options: HttpSourceOptions) {
  const source = await openHttpSource(url, options);
  return { source, bytes: await readAll(source.stream) };
}

describe("openHttpSource", () => {
  test("plain download succeeds", async () => {
    const server = await startServer((request) => serveFile(file, request));
    const { options, retries } = fastOptions();

    const { source, bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(source.size).toBe(file.length);
    expect(source.url).toBe(server.url());
    expect(retries).toHaveLength(0);
  });

  test("sends identity Accept-Encoding", async () => {
    const server = await startServer((request) => serveFile(file, request));
    const { options } = fastOptions();

    await download(server.url(), options);

    expect(server.requests[0]?.headers["accept-encoding"]).toBe("identity");
  });

  test("keeps gzip-encoded bytes as sent", async () => {
    const gzipped = gzipSync(file);
    const server = await startServer(() => ({
      status: 200,
      headers: { "Content-Encoding": "gzip" },
      body: gzipped,
    }));
    const { options } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(sha256Hex(gzipped));
  });

  test("resumes after one cut", async () => {
    const server = await startServer(cuttingFileHandler(file, [100_000]));
    const { options, retries } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries).toHaveLength(1);
    expect(retries[0]?.offset).toBe(100_000);
    expect(server.requests[1]?.headers.range).toBe("bytes=100000-");
    expect(server.requests[1]?.headers["if-range"]).toBe('"v1"');
  });

  test("cut before any byte restarts", async () => {
    const server = await startServer((request, index) => {
      const reply = serveFile(file, request);
      return index === 0 ? { ...reply, cutAfter: 0 } : reply;
    });
    const { options } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(server.requests[1]?.headers.range).toBeUndefined();
  });

  test("progress resets the retry count", async () => {
    const cuts = [10_000, 20_000, 30_000, 40_000, 50_000, 60_000];
    const server = await startServer(cuttingFileHandler(file, cuts));
    const { options, retries } = fastOptions({ retries: 1 });

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries).toHaveLength(cuts.length);
    expect(retries.every((event) => event.failures === 1)).toBe(true);
  });

  test("Last-Modified serves as validator", async () => {
    const lastModified = "Wed, 01 Jan 2025 00:00:00 GMT";
    const fileOptions = { etag: null, lastModified };
    const server = await startServer(
      cuttingFileHandler(file, [70_000], fileOptions),
    );
    const { options } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(server.requests[1]?.headers.range).toBe("bytes=70000-");
    expect(server.requests[1]?.headers["if-range"]).toBe(lastModified);
  });

  test("weak ETag is not a validator", async () => {
    const server = await startServer(
      cuttingFileHandler(file, [70_000], { etag: 'W/"weak"' }),
    );
    const { options } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(server.requests[1]?.headers.range).toBeUndefined();
    expect(server.requests[1]?.headers["if-range"]).toBeUndefined();
  });

  test("no validator skips a verified prefix", async () => {
    const server = await startServer(
      cuttingFileHandler(file, [50_000, 150_000], { etag: null }),
    );
    const { options, retries } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries.map((event) => event.offset)).toEqual([50_000, 150_000]);
    expect(server.requests[2]?.headers.range).toBeUndefined();
  });

  test("no validator and changed prefix fails", async () => {
    const changed = file.slice();
    changed[10] = (changed[10] ?? 0) ^ 0xff;
    const server = await startServer((request, index) => {
      const body = index === 0 ? file : changed;
      const reply = serveFile(body, request, { etag: null });
      return index === 0 ? { ...reply, cutAfter: 60_000 } : reply;
    });
    const { options } = fastOptions();
    const source = await openHttpSource(server.url(), options);

    const error = await rejection(readAll(source.stream));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).exitCode).toBe(ExitCode.source);
    expect((error as Error).message).toContain("changed on the server");
    expect((error as Error).message).toContain("first 60000 bytes differ");
  });

  test("ignored Range skips the prefix", async () => {
    const server = await startServer((request, index) => {
      const reply = serveFile(file, request, { ignoreRange: true });
      return index === 0 ? { ...reply, cutAfter: 90_000 } : reply;
    });
    const { options } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(server.requests[1]?.headers.range).toBe("bytes=90000-");
    expect(server.requests).toHaveLength(2);
  });

  test("changed ETag fails the download", async () => {
    const server = await startServer((request, index) => {
      const etag = index === 0 ? '"v1"' : '"v2"';
      const reply = serveFile(file, request, { etag });
      return index === 0 ? { ...reply, cutAfter: 90_000 } : reply;
    });
    const { options } = fastOptions();
    const source = await openHttpSource(server.url(), options);

    const error = await rejection(readAll(source.stream));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("changed on the server");
    expect((error as SourceError).hint).toContain("Run the load again");
  });

  test("206 at wrong offset fails", async () => {
    const server = await startServer((request, index) => {
      if (index === 0) return { ...serveFile(file, request), cutAfter: 1000 };
      return {
        status: 206,
        headers: {
          "Content-Range": `bytes 0-${file.length - 1}/${file.length}`,
        },
        body: file,
      };
    });
    const { options } = fastOptions();
    const source = await openHttpSource(server.url(), options);

    const error = await rejection(readAll(source.stream));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("returned bytes from 0");
    expect((error as Error).message).toContain("for bytes from 1000");
  });

  test("short body is a cut", async () => {
    const server = await startServer((request, index) => {
      const reply = serveFile(file, request);
      return index === 0 ? { ...reply, cutAfter: 5000 } : reply;
    });
    const { options, retries } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries[0]?.offset).toBe(5000);
  });

  test("short body without retries errors", async () => {
    const server = await startServer(() => ({
      status: 200,
      body: file.subarray(0, 1000),
      contentLength: file.length,
    }));
    const { options } = fastOptions({ retries: 0 });
    const source = await openHttpSource(server.url(), options);

    const error = await rejection(readAll(source.stream));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("failed at byte 1000");
  });

  test("503 with Retry-After then succeeds", async () => {
    const server = await startServer((request, index) => {
      if (index === 0) {
        return { status: 503, headers: { "Retry-After": "0" }, body: "busy" };
      }
      return serveFile(file, request);
    });
    const { options, retries } = fastOptions();

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries).toHaveLength(1);
    expect(retries[0]?.reason).toContain("HTTP 503");
    expect(retries[0]?.delayMs).toBe(0);
  });

  test("Retry-After beyond five minutes fails", async () => {
    const server = await startServer(() => ({
      status: 429,
      headers: { "Retry-After": "3600" },
    }));
    const { options } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("retry after 3600 s");
    expect((error as SourceError).hint).toMatch(
      /Run the load again after \d{4}-/,
    );
    expect(server.requests).toHaveLength(1);
  });

  test("500 fails after retries", async () => {
    const server = await startServer(() => ({ status: 500, body: "oops" }));
    const { options, retries } = fastOptions({ retries: 2 });

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).exitCode).toBe(ExitCode.source);
    expect((error as Error).message).toContain("after 3 attempts");
    expect((error as Error).message).toContain("HTTP 500");
    expect(retries).toHaveLength(2);
    expect(server.requests).toHaveLength(3);
  });

  test("404 fails without retry", async () => {
    const server = await startServer(() => ({ status: 404, body: "no" }));
    const { options } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toBe(
      `HTTP 404 Not Found from ${server.url()}`,
    );
    expect((error as SourceError).hint).toContain("Check the URL");
    expect(server.requests).toHaveLength(1);
  });

  test("401 hints at --header", async () => {
    const server = await startServer(() => ({ status: 401 }));
    const { options } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as SourceError).hint).toContain("--header");
  });

  test("HTML page fails", async () => {
    const server = await startServer(() => ({
      status: 200,
      headers: { "Content-Type": "text/html; charset=utf-8" },
      body: "<html><body>Sign in</body></html>",
    }));
    const { options } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("HTML page");
  });

  test("refused connection fails after retries", async () => {
    const server = await startServer(() => ({ status: 200 }));
    const url = server.url();
    await pool.closeAll();
    const { options, retries } = fastOptions({ retries: 2 });

    const error = await rejection(openHttpSource(url, options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("connection refused");
    expect(retries).toHaveLength(2);
  });

  test("stall trips the timeout", async () => {
    const server = await startServer((request, index) => {
      const reply = serveFile(file, request);
      return index === 0 ? { ...reply, stallAfter: 30_000 } : reply;
    });
    const { options, retries } = fastOptions({ timeoutMs: 200 });

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries).toHaveLength(1);
    expect(retries[0]?.reason).toContain("no data for 200 ms");
    expect(retries[0]?.offset).toBe(30_000);
  });

  test("silent server trips the timeout", async () => {
    const server = await startServer(async (request, index) => {
      if (index === 0) await Bun.sleep(1000);
      return serveFile(file, request);
    });
    const { options, retries } = fastOptions({ timeoutMs: 200 });

    const { bytes } = await download(server.url(), options);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries[0]?.reason).toContain("no response within 200 ms");
  });

  test("slow consumer is not a stall", async () => {
    const server = await startServer((request) => serveFile(file, request));
    const { options, retries } = fastOptions({ timeoutMs: 100 });
    const source = await openHttpSource(server.url(), options);

    const chunks: Uint8Array[] = [];
    for await (const chunk of source.stream) {
      chunks.push(chunk);
      if (chunks.length <= 2) await Bun.sleep(300);
    }

    expect(sha256Hex(Buffer.concat(chunks))).toBe(fileSha);
    expect(retries).toHaveLength(0);
  });

  test("abort signal errors the stream", async () => {
    const server = await startServer((request) => ({
      ...serveFile(file, request),
      stallAfter: 1000,
    }));
    const controller = new AbortController();
    const { options } = fastOptions({ signal: controller.signal });
    const source = await openHttpSource(server.url(), options);
    const reading = rejection(readAll(source.stream));

    setTimeout(() => controller.abort(new UsageError("stop")), 50);
    const error = await reading;

    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe("stop");
  });

  test("failure aborts the downstream sink", async () => {
    const server = await startServer((request, index) => {
      if (index === 0) return { ...serveFile(file, request), cutAfter: 8000 };
      return { status: 500 };
    });
    const { options } = fastOptions({ retries: 1 });
    const source = await openHttpSource(server.url(), options);
    const sink = { bytes: 0, closed: false, aborted: undefined as unknown };
    const writable = new WritableStream<Uint8Array>({
      write: (chunk) => {
        sink.bytes += chunk.length;
      },
      close: () => {
        sink.closed = true;
      },
      abort: (reason) => {
        sink.aborted = reason;
      },
    });

    const error = await rejection(source.stream.pipeTo(writable));

    expect(error).toBeInstanceOf(SourceError);
    expect(sink.aborted).toBe(error);
    expect(sink.closed).toBe(false);
    expect(sink.bytes).toBe(8000);
  });

  test("cancel stops further requests", async () => {
    const server = await startServer((request, index) => {
      if (index === 0) return { ...serveFile(file, request), cutAfter: 8000 };
      return serveFile(file, request);
    });
    const { options, retries } = fastOptions({ retryDelayMs: 300 });
    const source = await openHttpSource(server.url(), options);
    const reader = source.stream.getReader();

    let received = 0;
    while (received < 8000) {
      const { value } = await reader.read();
      received += value?.length ?? 0;
    }
    const pending = reader.read();
    while (retries.length === 0) await Bun.sleep(5);
    await reader.cancel(new Error("consumer gone"));
    await pending;
    await Bun.sleep(500);

    expect(server.requests).toHaveLength(1);
  });

  test("invalid URL is a usage error", async () => {
    const error = await rejection(openHttpSource("http://", {}));

    expect(error).toBeInstanceOf(UsageError);
  });
});
