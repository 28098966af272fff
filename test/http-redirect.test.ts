import { afterEach, describe, expect, test } from "bun:test";

import { SourceError } from "../src/errors.ts";
import { openHttpSource } from "../src/source/http.ts";
import { randomBytes, readAll, sha256Hex } from "./support/bytes.ts";
import { cuttingFileHandler, serveFile } from "./support/fault-server.ts";
import { fastOptions, rejection, ServerPool } from "./support/http.ts";

const file = randomBytes(200_000, 2);
const fileSha = sha256Hex(file);

const credentials: Array<[string, string]> = [
  ["Authorization", "Bearer redirect-token"],
  ["Cookie", "session=redirect-cookie"],
  ["Proxy-Authorization", "Basic cHJveHk6cHc="],
  ["X-Trace", "kept"],
];

const pool = new ServerPool();
afterEach(() => pool.closeAll());

describe("redirects", () => {
  test("follows to another origin", async () => {
    const target = await pool.start({
      hostname: "localhost",
      handler: (request) => serveFile(file, request),
    });
    const origin = await pool.start({
      handler: () => ({
        status: 302,
        headers: { Location: target.url("/blob?sig=1") },
      }),
    });
    const { options } = fastOptions({ headers: credentials });

    const source = await openHttpSource(origin.url(), options);
    const bytes = await readAll(source.stream);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(target.requests[0]?.path).toBe("/blob?sig=1");
  });

  test("keeps credentials from another origin", async () => {
    const target = await pool.start({
      hostname: "localhost",
      handler: (request) => serveFile(file, request),
    });
    const origin = await pool.start({
      handler: () => ({ status: 307, headers: { Location: target.url() } }),
    });
    const { options } = fastOptions({ headers: credentials });

    const source = await openHttpSource(origin.url(), options);
    await readAll(source.stream);
    const sent = origin.requests[0]?.headers ?? {};
    const received = target.requests[0]?.headers ?? {};

    expect(sent.authorization).toBe("Bearer redirect-token");
    expect(sent.cookie).toBe("session=redirect-cookie");
    expect(received.authorization).toBeUndefined();
    expect(received.cookie).toBeUndefined();
    expect(received["proxy-authorization"]).toBeUndefined();
    expect(received["x-trace"]).toBe("kept");
  });

  test("keeps credentials on same origin", async () => {
    const server = await pool.start({
      handler: (request) =>
        request.path === "/start"
          ? { status: 301, headers: { Location: "/file" } }
          : serveFile(file, request),
    });
    const { options } = fastOptions({ headers: credentials });

    const source = await openHttpSource(server.url("/start"), options);
    await readAll(source.stream);

    expect(server.requests[1]?.path).toBe("/file");
    expect(server.requests[1]?.headers.authorization).toBe(
      "Bearer redirect-token",
    );
  });

  test("resume asks the original URL", async () => {
    let signature = 0;
    const target = await pool.start({
      hostname: "localhost",
      handler: cuttingFileHandler(file, [60_000, 120_000]),
    });
    const origin = await pool.start({
      handler: () => {
        signature += 1;
        return {
          status: 302,
          headers: { Location: target.url(`/blob?sig=${signature}`) },
        };
      },
    });
    const { options, retries } = fastOptions();

    const source = await openHttpSource(origin.url(), options);
    const bytes = await readAll(source.stream);

    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries).toHaveLength(2);
    expect(origin.requests).toHaveLength(3);
    expect(target.requests.map((request) => request.path)).toEqual([
      "/blob?sig=1",
      "/blob?sig=2",
      "/blob?sig=3",
    ]);
    expect(target.requests[2]?.headers.range).toBe("bytes=120000-");
  });

  test("redirect loop fails", async () => {
    const server = await pool.start({
      handler: (request) => ({
        status: 302,
        headers: { Location: request.path === "/a" ? "/b" : "/a" },
      }),
    });
    const { options, retries } = fastOptions();

    const error = await rejection(openHttpSource(server.url("/a"), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("Too many redirects");
    expect(server.requests).toHaveLength(11);
    expect(retries).toHaveLength(0);
  });

  test("ten redirects are allowed", async () => {
    const server = await pool.start({
      handler: (request) => {
        const step = Number(request.path.slice(1));
        if (step === 10) return serveFile(file, request);
        return { status: 302, headers: { Location: `/${step + 1}` } };
      },
    });
    const { options } = fastOptions();

    const source = await openHttpSource(server.url("/0"), options);
    const bytes = await readAll(source.stream);

    expect(sha256Hex(bytes)).toBe(fileSha);
  });

  test("redirect without Location fails", async () => {
    const server = await pool.start({ handler: () => ({ status: 302 }) });
    const { options } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("HTTP 302 without Location");
  });

  test("redirect to ftp fails", async () => {
    const server = await pool.start({
      handler: () => ({
        status: 302,
        headers: { Location: "ftp://127.0.0.1/file" },
      }),
    });
    const { options } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("unsupported scheme ftp:");
  });
});
