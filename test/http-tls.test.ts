import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  test,
} from "bun:test";

import { SourceError, UsageError } from "../src/errors.ts";
import { openHttpSource } from "../src/source/http.ts";
import { randomBytes, readAll, sha256Hex } from "./support/bytes.ts";
import {
  createTestCertificates,
  type TestCertificates,
} from "./support/certs.ts";
import { cuttingFileHandler, serveFile } from "./support/fault-server.ts";
import { fastOptions, rejection, ServerPool } from "./support/http.ts";

const file = randomBytes(180_000, 4);
const fileSha = sha256Hex(file);

let certs: TestCertificates;
const pool = new ServerPool();

beforeAll(() => {
  certs = createTestCertificates();
});

afterAll(() => certs.remove());

afterEach(() => pool.closeAll());

function startHttps(handler: Parameters<ServerPool["start"]>[0]["handler"]) {
  return pool.start({ handler, tls: { cert: certs.cert, key: certs.key } });
}

describe("https", () => {
  test("trusts the CA from caCertPath", async () => {
    const server = await startHttps(cuttingFileHandler(file, [90_000]));
    const { options, retries } = fastOptions({ caCertPath: certs.caPath });

    const source = await openHttpSource(server.url(), options);
    const bytes = await readAll(source.stream);

    expect(server.origin.startsWith("https://")).toBe(true);
    expect(sha256Hex(bytes)).toBe(fileSha);
    expect(retries).toHaveLength(1);
  });

  test("trusts the CA from SSL_CERT_FILE", async () => {
    const server = await startHttps((request) => serveFile(file, request));
    const env = (name: string) =>
      name === "SSL_CERT_FILE" ? certs.caPath : undefined;
    const { options } = fastOptions({ env });

    const source = await openHttpSource(server.url(), options);
    const bytes = await readAll(source.stream);

    expect(sha256Hex(bytes)).toBe(fileSha);
  });

  test("unknown CA fails without retry", async () => {
    const server = await startHttps((request) => serveFile(file, request));
    const { options, retries } = fastOptions();

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("TLS certificate");
    expect((error as SourceError).hint).toContain("--cacert");
    expect(retries).toHaveLength(0);
  });

  test("missing CA file is a usage error", async () => {
    const server = await startHttps((request) => serveFile(file, request));
    const { options } = fastOptions({ caCertPath: "/nonexistent/ca.pem" });

    const error = await rejection(openHttpSource(server.url(), options));

    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toContain("ENOENT");
  });

  test("redirect to http is rejected", async () => {
    const plain = await pool.start({
      handler: (request) => serveFile(file, request),
    });
    const secure = await startHttps(() => ({
      status: 302,
      headers: { Location: plain.url() },
    }));
    const { options } = fastOptions({ caCertPath: certs.caPath });

    const error = await rejection(openHttpSource(secure.url(), options));

    expect(error).toBeInstanceOf(SourceError);
    expect((error as Error).message).toContain("downgrades https");
    expect(plain.requests).toHaveLength(0);
  });

  test("redirect from http to https works", async () => {
    const secure = await startHttps((request) => serveFile(file, request));
    const plain = await pool.start({
      handler: () => ({ status: 301, headers: { Location: secure.url() } }),
    });
    const { options } = fastOptions({ caCertPath: certs.caPath });

    const source = await openHttpSource(plain.url(), options);
    const bytes = await readAll(source.stream);

    expect(sha256Hex(bytes)).toBe(fileSha);
  });
});
