/**
 * `npm run demo`: builds dist/imgload, makes a small image archive, serves
 * it zstd-compressed on 127.0.0.1, and loads it into Docker as
 * localhost:5000/demo/hello:1. It uses the reachable Docker daemon, or
 * starts a private one (see scripts/dockerd.ts) and stops it at the end.
 */
import { join } from "node:path";

import { buildImageArchive } from "../test/support/fixtures.ts";
import { ensureDocker } from "./dockerd.ts";

const root = join(import.meta.dir, "..");
const binary = join(root, "dist", "imgload");
const name = "localhost:5000/demo/hello:1";

function step(text: string): void {
  process.stderr.write(`\n==> ${text}\n`);
}

async function run(argv: string[], env: Record<string, string | undefined>) {
  const child = Bun.spawn(argv, {
    cwd: root,
    env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  return await child.exited;
}

async function main(): Promise<number> {
  step("Building dist/imgload");
  if ((await run([process.execPath, "run", "build"], process.env)) !== 0) {
    return 1;
  }

  step("Finding a Docker daemon");
  const daemon = await ensureDocker({
    log: (line) => process.stderr.write(`    ${line}\n`),
  });
  const env = { ...process.env };
  if (daemon.dockerHost) {
    env.DOCKER_HOST = daemon.dockerHost;
  }

  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: serve });
  let archive: Uint8Array = new Uint8Array(0);
  function serve(request: Request): Response {
    if (new URL(request.url).pathname !== "/image.tar.zst") {
      return new Response("not found", { status: 404 });
    }
    return new Response(archive as BodyInit, {
      headers: { "Content-Type": "application/zstd", ETag: '"demo-1"' },
    });
  }

  try {
    step("Making a small image archive named demo/original:latest");
    const image = await buildImageArchive({
      reference: "demo/original:latest",
      layerSize: 256 * 1024,
    });
    archive = Bun.zstdCompressSync(image.tar, { level: 3 });
    const url = `http://127.0.0.1:${server.port}/image.tar.zst`;
    process.stderr.write(
      `    ${image.tar.length} bytes of tar, ${archive.length} bytes zstd, served at ${url}\n`,
    );

    step(`dist/imgload load ${url} ${name}`);
    const code = await run([binary, "load", url, name], env);
    if (code !== 0) {
      return code;
    }

    step(`docker image inspect ${name}`);
    await run(
      [
        "docker",
        "image",
        "inspect",
        "--format",
        "    ID {{.Id}}\n    tags {{.RepoTags}}",
        name,
      ],
      env,
    );
    process.stderr.write(
      `    The archive's config digest is ${image.configDigest}\n`,
    );
    if (daemon.private) {
      process.stderr.write(
        "\n    This ran on a private dockerd, which stops now and takes the image with it.\n",
      );
    }
    return 0;
  } finally {
    server.stop(true);
    await daemon.stop();
  }
}

process.exit(await main());
