import { afterEach, beforeEach, describe, expect, test } from "bun:test";

import { ImgloadError } from "../src/errors.ts";
import { clearSecrets, redact } from "../src/redact.ts";
import { openHttpSource, parseHeaderArgs } from "../src/source/http.ts";
import {
  type CapturedLogs,
  captureLogs,
  randomBytes,
  readAll,
  sha256Hex,
} from "./support/bytes.ts";
import { cuttingFileHandler, serveFile } from "./support/fault-server.ts";
import { fastOptions, rejection, ServerPool } from "./support/http.ts";

const file = randomBytes(150_000, 3);

const headerSecret = "tok-4f1c9e-header-secret";
const passwordSecret = "pw-8d2a77-url-secret";
const querySecret = "sig=qs-93b0c1-signed-secret";
const redirectSecret = "X-Amz-Signature=redirect-5e6f7a-secret";
const secrets = [headerSecret, passwordSecret, querySecret, redirectSecret];

const pool = new ServerPool();
let logs: CapturedLogs;

beforeEach(() => {
  logs = captureLogs();
});

afterEach(async () => {
  logs.restore();
  clearSecrets();
  await pool.closeAll();
});

/** Returns everything a user could see of an error. */
function errorText(error: unknown): string {
  if (!(error instanceof ImgloadError)) return String(error);
  return [error.message, error.hint ?? "", error.displayMessage].join("\n");
}

function expectNoSecret(text: string): void {
  for (const secret of secrets) {
    expect(text).not.toContain(secret);
  }
}

function urlWithSecrets(origin: string, path = "/image.tar.zst"): string {
  const url = new URL(`${origin}${path}?${querySecret}`);
  url.username = "deploy";
  url.password = passwordSecret;
  return url.href;
}

describe("secrets", () => {
  test("absent from logs on success", async () => {
    const target = await pool.start({
      hostname: "localhost",
      handler: cuttingFileHandler(file, [40_000, 80_000]),
    });
    const origin = await pool.start({
      handler: () => ({
        status: 302,
        headers: { Location: target.url(`/blob?${redirectSecret}`) },
      }),
    });
    const headers = await parseHeaderArgs([`X-Api-Key: ${headerSecret}`]);
    const { options, retries } = fastOptions({ headers });

    const source = await openHttpSource(urlWithSecrets(origin.origin), options);
    const bytes = await readAll(source.stream);

    expect(sha256Hex(bytes)).toBe(sha256Hex(file));
    expect(retries).toHaveLength(2);
    expect(logs.lines.some((line) => line.type === "debug")).toBe(true);
    expect(logs.lines.some((line) => line.type === "warn")).toBe(true);
    expectNoSecret(logs.text());
    expectNoSecret(source.url);
    expectNoSecret(retries.map((event) => event.reason).join("\n"));
  });

  test("absent from status errors", async () => {
    const origin = await pool.start({ handler: () => ({ status: 403 }) });
    const headers = await parseHeaderArgs([
      `Authorization: Bearer ${headerSecret}`,
    ]);
    const { options } = fastOptions({ headers });

    const error = await rejection(
      openHttpSource(urlWithSecrets(origin.origin), options),
    );

    expect(error).toBeInstanceOf(ImgloadError);
    expect(errorText(error)).toContain("HTTP 403");
    expectNoSecret(errorText(error));
    expectNoSecret(logs.text());
  });

  test("absent from retry exhaustion", async () => {
    const origin = await pool.start({ handler: () => ({ status: 502 }) });
    const { options } = fastOptions({ retries: 1 });

    const error = await rejection(
      openHttpSource(urlWithSecrets(origin.origin), options),
    );

    expect(errorText(error)).toContain("failed at byte 0");
    expectNoSecret(errorText(error));
    expectNoSecret(logs.text());
  });

  test("absent from redirect errors", async () => {
    const origin = await pool.start({
      handler: () => ({
        status: 302,
        headers: {
          Location:
            `ftp://user:${passwordSecret}@127.0.0.1/f` + `?${redirectSecret}`,
        },
      }),
    });
    const { options } = fastOptions();

    const error = await rejection(
      openHttpSource(urlWithSecrets(origin.origin), options),
    );

    expect(errorText(error)).toContain("unsupported scheme");
    expectNoSecret(errorText(error));
    expectNoSecret(logs.text());
  });

  test("absent from connection errors", async () => {
    const origin = await pool.start({ handler: () => ({ status: 200 }) });
    const url = urlWithSecrets(origin.origin);
    await pool.closeAll();
    const { options } = fastOptions({ retries: 0 });

    const error = await rejection(openHttpSource(url, options));

    expect(errorText(error)).toContain("connection refused");
    expectNoSecret(errorText(error));
    expectNoSecret(redact(String((error as Error).cause)));
  });

  test("URL password becomes Basic auth", async () => {
    const origin = await pool.start({
      handler: (request) => serveFile(file, request),
    });
    const { options } = fastOptions();

    const source = await openHttpSource(urlWithSecrets(origin.origin), options);
    await readAll(source.stream);
    const expected = Buffer.from(`deploy:${passwordSecret}`).toString("base64");

    expect(origin.requests[0]?.headers.authorization).toBe(`Basic ${expected}`);
    expect(origin.requests[0]?.path).toBe(`/image.tar.zst?${querySecret}`);
    expect(source.url).toBe(`${origin.origin}/image.tar.zst?***`);
    expect(redact(`Authorization: Basic ${expected}`)).not.toContain(expected);
  });

  test("registered for redaction", async () => {
    const origin = await pool.start({
      handler: (request) => serveFile(file, request),
    });
    const headers = await parseHeaderArgs([`X-Api-Key: ${headerSecret}`]);
    const { options } = fastOptions({ headers });

    const source = await openHttpSource(urlWithSecrets(origin.origin), options);
    await readAll(source.stream);
    const leaked = `key ${headerSecret} pw ${passwordSecret} q ${querySecret}`;

    expectNoSecret(redact(leaked));
  });
});
