import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seededRandom, sha256Hex } from "./support/bytes.ts";
import { ensureBinary, runImgload } from "./support/cli.ts";
import { createTestCertificates, type TestCertificates } from "./support/certs.ts";
import { describeDocker, inspect } from "./support/docker.ts";
import {
  cuttingFileHandler,
  FaultServer,
  serveFile,
} from "./support/fault-server.ts";
import {
  buildImageArchive,
  compress,
  writeImageArchive,
} from "./support/fixtures.ts";
import { RecordingProxy } from "./support/proxy.ts";

let workDir: string;
let zst: Uint8Array;
let tar: Uint8Array;
const servers: FaultServer[] = [];

beforeAll(async () => {
  await ensureBinary();
  workDir = await mkdtemp(join(tmpdir(), "imgload-download-"));
  const archive = await buildImageArchive({ layerSize: 1024 * 1024, seed: 7 });
  tar = archive.tar;
  zst = await compress(tar, "zstd", ["-1"]);
});

afterAll(async () => {
  await Promise.all(servers.map((server) => server.close()));
  await rm(workDir, { recursive: true, force: true });
});

async function start(
  handler: Parameters<typeof FaultServer.start>[0]["handler"],
  options: { tls?: { cert: string; key: string }; hostname?: string } = {},
): Promise<FaultServer> {
  const server = await FaultServer.start({ handler, ...options });
  servers.push(server);
  return server;
}

const fast = ["--retry-delay", "0.01"];

describe("download through the binary", () => {
  test("cuts resume and are logged", async () => {
    const server = await start(cuttingFileHandler(zst, [1000, 50_000, 300_000]));
    const output = join(workDir, "resumed.tar");
    const run = await runImgload(["load", server.url(), "-o", output, ...fast]);
    expect(run.exitCode).toBe(0);
    expect(sha256Hex(new Uint8Array(await readFile(output)))).toBe(
      sha256Hex(tar),
    );
    const retries = run.stderr
      .split("\n")
      .filter((line) => line.startsWith("imgload: warning: Retry"));
    expect(retries).toHaveLength(3);
    expect(retries[0]).toContain("at byte 1000");
    const ranges = server.requests.map((request) => request.headers.range);
    expect(ranges).toEqual([
      undefined,
      "bytes=1000-",
      "bytes=50000-",
      "bytes=300000-",
    ]);
    expect(server.requests[1]!.headers["if-range"]).toBe('"v1"');
    expect(server.requests[0]!.headers["accept-encoding"]).toBe("identity");
  });

  test("stall trips --timeout, then resumes", async () => {
    const server = await start((request, index) => {
      const reply = serveFile(zst, request);
      return index === 0 ? { ...reply, stallAfter: 4096 } : reply;
    });
    const output = join(workDir, "stalled.tar");
    const run = await runImgload([
      "load",
      server.url(),
      "-o",
      output,
      "--timeout",
      "0.5",
      ...fast,
    ]);
    expect(run.exitCode).toBe(0);
    expect(run.stderr).toMatch(/Retry 1 of 8 .* at byte 4096 .*timed out|no data/i);
    expect(sha256Hex(new Uint8Array(await readFile(output)))).toBe(
      sha256Hex(tar),
    );
  });

  test("changed file fails instead of splicing", async () => {
    const server = await start((request, index) => {
      const etag = index === 0 ? '"v1"' : '"v2"';
      const reply = serveFile(zst, request, { etag });
      return index === 0 ? { ...reply, cutAfter: 10_000 } : reply;
    });
    const output = join(workDir, "changed.tar");
    const run = await runImgload(["load", server.url(), "-o", output, ...fast]);
    expect(run.exitCode).toBe(3);
    expect(run.stderr).toMatch(/imgload: error: .*changed/);
    expect(await Bun.file(output).exists()).toBe(false);
  });

  test("--header @FILE sends each header", async () => {
    const server = await start((request) => serveFile(zst, request));
    const headerFile = join(workDir, "headers.txt");
    await writeFile(
      headerFile,
      "# CI token\nAuthorization: Bearer file-token-123456\nX-Team: tools\n",
    );
    const run = await runImgload([
      "load",
      server.url(),
      "-o",
      "/dev/null",
      "--header",
      `@${headerFile}`,
      "-H",
      "X-Extra: one",
    ]);
    expect(run.exitCode).toBe(0);
    const headers = server.requests[0]!.headers;
    expect(headers.authorization).toBe("Bearer file-token-123456");
    expect(headers["x-team"]).toBe("tools");
    expect(headers["x-extra"]).toBe("one");
  });

  test("secrets never reach stderr or JSON", async () => {
    const header = "Bearer planted-header-secret-42";
    const password = "planted-url-password";
    const signature = "planted-signature-0123456789";
    const server = await start((request, index) => {
      if (index === 0) {
        return { ...serveFile(zst, request), cutAfter: 5000 };
      }
      return { status: 403, body: "denied" };
    });
    const url = server.url(
      `/image.tar.zst?X-Amz-Signature=${signature}&X-Amz-Expires=300`,
    ).replace("http://", `http://ci-user:${password}@`);
    const run = await runImgload([
      "load",
      url,
      "-o",
      "/dev/null",
      "--header",
      `Authorization: ${header}`,
      "--debug",
      "--json",
      ...fast,
    ]);
    expect(run.exitCode).toBe(3);
    const output = run.stdout + run.stderr;
    expect(output).toContain("403");
    for (const secret of [header, "planted-header-secret", password, signature]) {
      expect(output).not.toContain(secret);
    }
    expect(JSON.parse(run.stdout).error.message).toContain("403");
  });

  test("redirect to another origin drops Authorization", async () => {
    const target = await start((request) => serveFile(zst, request), {
      hostname: "127.0.0.1",
    });
    const origin = await start(() => ({
      status: 302,
      headers: { Location: target.url().replace("127.0.0.1", "localhost") },
    }));
    const run = await runImgload([
      "load",
      origin.url(),
      "-o",
      "/dev/null",
      "-H",
      "Authorization: Bearer origin-only-token",
      "-H",
      "X-Other: kept",
    ]);
    // localhost may resolve to ::1, where the target does not listen; the
    // request that arrived must carry no Authorization either way.
    for (const request of target.requests) {
      expect(request.headers.authorization).toBeUndefined();
      expect(request.headers["x-other"]).toBe("kept");
    }
    expect(origin.requests[0]!.headers.authorization).toBe(
      "Bearer origin-only-token",
    );
    if (target.requests.length > 0) {
      expect(run.exitCode).toBe(0);
    }
  });
});

describe("https", () => {
  let certificates: TestCertificates;

  beforeAll(() => {
    certificates = createTestCertificates();
  });

  afterAll(() => {
    certificates.remove();
  });

  test("private CA needs --cacert", async () => {
    const server = await start((request) => serveFile(zst, request), {
      tls: { cert: certificates.cert, key: certificates.key },
    });
    const refused = await runImgload(["load", server.url(), "-o", "/dev/null"]);
    expect(refused.exitCode).toBe(3);
    expect(refused.stderr).toContain("--cacert");

    const trusted = await runImgload([
      "load",
      server.url(),
      "-o",
      "/dev/null",
      "--cacert",
      certificates.caPath,
    ]);
    expect(trusted.exitCode).toBe(0);
  });

  test("https to http redirect is refused", async () => {
    const plain = await start((request) => serveFile(zst, request));
    const server = await start(
      () => ({ status: 302, headers: { Location: plain.url() } }),
      { tls: { cert: certificates.cert, key: certificates.key } },
    );
    const run = await runImgload([
      "load",
      server.url(),
      "-o",
      "/dev/null",
      "--cacert",
      certificates.caPath,
    ]);
    expect(run.exitCode).toBe(3);
    expect(run.stderr).toMatch(/imgload: error: .*http:/);
    expect(plain.requests).toHaveLength(0);
  });

  test("HTTPS_PROXY carries the download", async () => {
    const proxy = await RecordingProxy.start();
    try {
      const server = await start((request) => serveFile(zst, request), {
        tls: { cert: certificates.cert, key: certificates.key },
      });
      const run = await runImgload(
        ["load", server.url(), "-o", "/dev/null", "--cacert", certificates.caPath],
        {
          env: {
            HTTPS_PROXY: `http://127.0.0.1:${proxy.port}`,
            NO_PROXY: "",
            no_proxy: "",
          },
        },
      );
      expect(run.exitCode).toBe(0);
      expect(proxy.requests.map((request) => request.method)).toContain(
        "CONNECT",
      );
      expect(proxy.requests[0]!.target).toBe(`127.0.0.1:${server.port}`);
    } finally {
      await proxy.close();
    }
  });
});

describeDocker("200 MB archive over a flaky link", () => {
  let big: Uint8Array;
  let configDigest: string;

  beforeAll(async () => {
    const path = join(workDir, "big.tar");
    const archive = await writeImageArchive(path, {
      layerSize: 200 * 1024 * 1024,
      layers: 1,
      seed: 200,
      reference: "imgload-test/flaky:source",
    });
    configDigest = archive.configDigest;
    const zstd = Bun.spawn(["zstd", "-q", "-1", "-T0", "-c", path], {
      stdout: "pipe",
    });
    big = await new Response(zstd.stdout).bytes();
    expect(await zstd.exited).toBe(0);
    await rm(path);
  }, 180_000);

  const runs = 20;
  for (let seed = 1; seed <= runs; seed++) {
    test(`five cuts, seed ${seed}`, async () => {
      const random = seededRandom(seed);
      const offsets = Array.from({ length: 5 }, () =>
        Math.floor(random() * big.length),
      );
      const server = await start(cuttingFileHandler(big, offsets));
      const name = `localhost:5000/imgload-test/flaky:seed${seed}`;
      const run = await runImgload(
        ["load", server.url(), name, "--json", ...fast],
        { timeoutMs: 120_000 },
      );
      expect(run.exitCode).toBe(0);
      expect(JSON.parse(run.stdout).imageId).toBe(configDigest);
      expect((await inspect(name))?.id).toBe(configDigest);
      const resumed = server.requests.filter((request) => request.headers.range);
      expect(resumed).toHaveLength(5);
      await server.close();
    }, 120_000);
  }
});
