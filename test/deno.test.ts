/**
 * Runs imgload's TypeScript source under Deno (`deno run -A src/main.ts`)
 * against the same loopback servers as the tests of the Bun binary.
 */
import {
  afterAll,
  beforeAll,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { sha256Hex } from "./support/bytes.ts";
import {
  createTestCertificates,
  type TestCertificates,
} from "./support/certs.ts";
import { runImgload } from "./support/cli.ts";
import { describeDeno, runDeno } from "./support/deno.ts";
import {
  describeDocker,
  inspect,
  removeImage,
  uniqueReference,
} from "./support/docker.ts";
import {
  cuttingFileHandler,
  FaultServer,
  type FaultServerOptions,
  serveFile,
} from "./support/fault-server.ts";
import { buildImageArchive, compress } from "./support/fixtures.ts";
import { RecordingProxy } from "./support/proxy.ts";

const fast = ["--retry-delay", "0.01"];

// Each test starts Deno and some wait for retries, so they get more than
// bun's default of 5 seconds.
setDefaultTimeout(30_000);

async function fileSha(path: string): Promise<string> {
  return sha256Hex(new Uint8Array(await readFile(path)));
}

// The lines imgload printed as errors, which should be exactly one.
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.startsWith("imgload: error"));
}

describeDeno("imgload under Deno", () => {
  let workDir: string;
  let tar: Uint8Array;
  let zst: Uint8Array;
  let zstPath: string;
  let configDigest: string;
  let certificates: TestCertificates;
  const servers: FaultServer[] = [];

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), "imgload-deno-"));
    const archive = await buildImageArchive({
      layerSize: 1024 * 1024,
      seed: 11,
      reference: "imgload-test/deno:source",
    });
    tar = archive.tar;
    configDigest = archive.configDigest;
    zst = await compress(tar, "zstd", ["-1"]);
    zstPath = join(workDir, "image.tar.zst");
    await writeFile(zstPath, zst);
    certificates = createTestCertificates();
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.close()));
    certificates.remove();
    await rm(workDir, { recursive: true, force: true });
  });

  async function start(
    handler: FaultServerOptions["handler"],
    options: { tls?: boolean } = {},
  ): Promise<FaultServer> {
    const tls = options.tls
      ? { cert: certificates.cert, key: certificates.key }
      : undefined;
    const server = await FaultServer.start({ handler, tls });
    servers.push(server);
    return server;
  }

  test("file output matches Bun's", async () => {
    const bunOutput = join(workDir, "bun.tar");
    const denoOutput = join(workDir, "deno.tar");
    const name = "imgload-test/deno:renamed";

    const bun = await runImgload(["load", zstPath, name, "-o", bunOutput]);
    const deno = await runDeno(["load", zstPath, name, "-o", denoOutput]);

    expect(bun.exitCode).toBe(0);
    expect(deno.exitCode).toBe(0);
    expect(await fileSha(denoOutput)).toBe(await fileSha(bunOutput));
  });

  test("zstd uses the wasm decoder", async () => {
    const run = await runDeno(["load", zstPath, "-o", "/dev/null", "--json"]);

    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout).decoder).toBe("wasm");
  });

  test("HTTP cuts resume", async () => {
    const cuts = [1000, 50_000, 300_000];
    const server = await start(cuttingFileHandler(zst, cuts));
    const output = join(workDir, "resumed.tar");

    const run = await runDeno(["load", server.url(), "-o", output, ...fast]);

    expect(run.exitCode).toBe(0);
    expect(await fileSha(output)).toBe(sha256Hex(tar));
    const ranges = server.requests.map((request) => request.headers.range);
    expect(ranges).toEqual([
      undefined,
      "bytes=1000-",
      "bytes=50000-",
      "bytes=300000-",
    ]);
    expect(server.requests[1]?.headers["if-range"]).toBe('"v1"');
    expect(server.requests[0]?.headers["accept-encoding"]).toBe("identity");
  });

  test("stall trips --timeout, then resumes", async () => {
    const server = await start((request, index) => {
      const reply = serveFile(zst, request);
      return index === 0 ? { ...reply, stallAfter: 4096 } : reply;
    });
    const output = join(workDir, "stalled.tar");

    const run = await runDeno([
      "load",
      server.url(),
      "-o",
      output,
      "--timeout",
      "0.5",
      ...fast,
    ]);

    expect(run.exitCode).toBe(0);
    expect(run.stderr).toContain("at byte 4096");
    expect(run.stderr).toContain("no data for");
    expect(await fileSha(output)).toBe(sha256Hex(tar));
  });

  test("Content-Encoding body stays encoded", async () => {
    // Decoding these zstd bytes as gzip would fail the download.
    const server = await start((request) => {
      const reply = serveFile(zst, request);
      const headers = { ...reply.headers, "Content-Encoding": "gzip" };
      return { ...reply, headers };
    });
    const output = join(workDir, "encoded.tar");

    const run = await runDeno(["load", server.url(), "-o", output, ...fast]);

    expect(run.exitCode).toBe(0);
    expect(await fileSha(output)).toBe(sha256Hex(tar));
  });

  test("unknown CA is rejected", async () => {
    const server = await start((request) => serveFile(zst, request), {
      tls: true,
    });

    const run = await runDeno(["load", server.url(), "-o", "/dev/null"]);

    expect(run.exitCode).toBe(3);
    expect(errorLines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toContain("TLS certificate");
    expect(run.stderr).toContain("--cacert");
    expect(run.stderr).not.toContain("Retry");
  });

  test("--cacert trusts the test CA", async () => {
    const server = await start((request) => serveFile(zst, request), {
      tls: true,
    });
    const output = join(workDir, "https.tar");

    const run = await runDeno([
      "load",
      server.url(),
      "-o",
      output,
      "--cacert",
      certificates.caPath,
    ]);

    expect(run.exitCode).toBe(0);
    expect(await fileSha(output)).toBe(sha256Hex(tar));
  });

  test("SSL_CERT_FILE trusts the test CA", async () => {
    const server = await start((request) => serveFile(zst, request), {
      tls: true,
    });

    const run = await runDeno(["load", server.url(), "-o", "/dev/null"], {
      env: { SSL_CERT_FILE: certificates.caPath },
    });

    expect(run.exitCode).toBe(0);
  });

  test("HTTPS_PROXY carries the download", async () => {
    const proxy = await RecordingProxy.start();
    try {
      const server = await start((request) => serveFile(zst, request), {
        tls: true,
      });

      const args = ["load", server.url(), "-o", "/dev/null"];
      const run = await runDeno([...args, "--cacert", certificates.caPath], {
        env: { HTTPS_PROXY: proxy.url },
      });

      expect(run.exitCode).toBe(0);
      expect(proxy.requests).toHaveLength(1);
      expect(proxy.requests[0]?.method).toBe("CONNECT");
      expect(proxy.requests[0]?.target).toBe(`127.0.0.1:${server.port}`);
    } finally {
      await proxy.close();
    }
  });

  test("proxy credentials are sent", async () => {
    const proxy = await RecordingProxy.start();
    try {
      const server = await start((request) => serveFile(zst, request));
      const proxyUrl = proxy.url.replace("http://", "http://proxy%40token@");

      const run = await runDeno(["load", server.url(), "-o", "/dev/null"], {
        env: { http_proxy: proxyUrl },
      });

      expect(run.exitCode).toBe(0);
      expect(proxy.requests[0]?.target).toBe(server.url());
      const expected = `Basic ${btoa("proxy@token:")}`;
      expect(proxy.requests[0]?.headers["proxy-authorization"]).toBe(expected);
    } finally {
      await proxy.close();
    }
  });

  test("NO_PROXY with port goes direct", async () => {
    const proxy = await RecordingProxy.start();
    try {
      const server = await start((request) => serveFile(zst, request));

      // Deno's own NO_PROXY matching has no port syntax, so only imgload's
      // rules make this request go direct.
      const run = await runDeno(["load", server.url(), "-o", "/dev/null"], {
        env: { HTTP_PROXY: proxy.url, NO_PROXY: `127.0.0.1:${server.port}` },
      });

      expect(run.exitCode).toBe(0);
      expect(proxy.requests).toHaveLength(0);
      expect(server.requests).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });

  test("refused connection fails in one line", async () => {
    const server = await start((request) => serveFile(zst, request));
    const url = server.url();
    await server.close();

    const run = await runDeno([
      "load",
      url,
      "-o",
      "/dev/null",
      "--retries",
      "1",
      ...fast,
    ]);

    expect(run.exitCode).toBe(3);
    const errors = errorLines(run.stderr);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("connection refused (ECONNREFUSED)");
    expect(run.stderr).not.toContain("    at ");
  });

  test("native zstd is a usage error", async () => {
    const run = await runDeno([
      "load",
      zstPath,
      "-o",
      "/dev/null",
      "--zstd-decoder",
      "native",
    ]);

    expect(run.exitCode).toBe(2);
    const errors = errorLines(run.stderr);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("native is not available on deno");
  });

  describeDocker("Docker", () => {
    const reference = uniqueReference("deno");

    afterAll(async () => {
      await removeImage(reference);
    });

    test("load over HTTP into Docker", async () => {
      const server = await start(cuttingFileHandler(zst, [200_000]));

      const run = await runDeno(
        ["load", server.url(), reference, "--json", ...fast],
        { timeoutMs: 120_000 },
      );

      expect(run.exitCode).toBe(0);
      expect(JSON.parse(run.stdout).imageId).toBe(configDigest);
      const image = await inspect(reference);
      expect(image?.id).toBe(configDigest);
      expect(image?.repoTags).toContain(reference);
    }, 120_000);
  });
});
