/**
 * Docker helpers for tests. `scripts/test.ts` (npm test) provides a daemon
 * and sets IMGLOAD_TEST_DOCKER to `ready`, or to `skip: REASON` when none
 * could be had. Under a plain `bun test` this module runs `docker version`
 * itself. Docker tests are skipped with the reason outside CI and fail
 * under CI=true.
 */
import { describe, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Whether a Docker daemon responds, and the reason when it does not. */
export interface DockerStatus {
  available: boolean;
  reason?: string;
}

/** The status, read once when the first test file imports this module. */
export const dockerStatus: DockerStatus = detectDocker();

/** True when the tests run under CI, where skipping is a failure. */
export const underCi = process.env.CI === "true" || process.env.CI === "1";

/**
 * Runs `describe` when a daemon responds. Otherwise the group becomes one
 * skipped test with the reason in its name, or under CI one failing test.
 * The body is not run then, so its hooks do not count as skipped tests.
 */
export function describeDocker(name: string, body: () => void): void {
  if (dockerStatus.available) {
    describe(name, body);
  } else if (underCi) {
    describe(name, () => {
      test("Docker daemon reachable", () => {
        throw new Error(`No Docker daemon under CI: ${dockerStatus.reason}`);
      });
    });
  } else {
    test.skip(`${name} (skipped: ${dockerStatus.reason})`, () => {});
  }
}

/** Like {@linkcode describeDocker}, for a single test. */
export function testDocker(
  name: string,
  body: () => unknown,
  timeoutMs?: number,
): void {
  if (dockerStatus.available) {
    test(name, body as () => Promise<void>, timeoutMs);
  } else if (underCi) {
    test(name, () => {
      throw new Error(`No Docker daemon under CI: ${dockerStatus.reason}`);
    });
  } else {
    test.skip(`${name} (skipped: ${dockerStatus.reason})`, () => {});
  }
}

/** The result of a docker CLI run in a test. */
export interface DockerRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI with `args` and returns its output. */
export async function docker(args: string[]): Promise<DockerRun> {
  const child = Bun.spawn(["docker", ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, stderr };
}

/** Like {@linkcode docker}, but throws with stderr when the run fails. */
export async function dockerOk(args: string[]): Promise<string> {
  const run = await docker(args);
  if (run.code !== 0) {
    throw new Error(`docker ${args.join(" ")} failed: ${run.stderr.trim()}`);
  }
  return run.stdout;
}

/** Returns the image's ID and tags, or undefined when it does not exist. */
export async function inspect(
  reference: string,
): Promise<{ id: string; repoTags: string[] } | undefined> {
  const run = await docker([
    "image",
    "inspect",
    "--format",
    "{{json .}}",
    reference,
  ]);
  if (run.code !== 0) {
    return undefined;
  }
  const image = JSON.parse(run.stdout) as { Id: string; RepoTags: string[] };
  return { id: image.Id, repoTags: image.RepoTags ?? [] };
}

/** Tells whether `reference` names an image in the daemon. */
export async function imageExists(reference: string): Promise<boolean> {
  return (await inspect(reference)) !== undefined;
}

/** Removes the image or tag if it exists. */
export async function removeImage(reference: string): Promise<void> {
  await docker(["image", "rm", "--force", reference]);
}

/**
 * Returns every image ID with its tags, sorted, as a snapshot to compare
 * for "nothing was loaded".
 */
export async function listImageIds(): Promise<string[]> {
  const stdout = await dockerOk([
    "image",
    "ls",
    "--all",
    "--no-trunc",
    "--format",
    "{{.ID}} {{.Repository}}:{{.Tag}}",
  ]);
  return stdout
    .split("\n")
    .filter((line) => line.length > 0)
    .sort();
}

/** A `docker save` archive made for a test. */
export interface ImageArchive {
  /** Path of the uncompressed tar. */
  path: string;
  /** The image ID, `sha256:...`. */
  id: string;
  /** The reference the archive names. */
  reference: string;
}

/**
 * Makes an image without network access (`docker import` of a tar with
 * one file of `layerBytes` random bytes), saves it to `directory` and
 * removes it from the daemon again, so loading the archive adds it.
 */
export async function createImageArchive(
  directory: string,
  reference: string,
  layerBytes = 1024,
): Promise<ImageArchive> {
  const work = await mkdtemp(join(tmpdir(), "imgload-rootfs-"));
  try {
    const content = new Uint8Array(layerBytes);
    for (let offset = 0; offset < layerBytes; offset += 65536) {
      crypto.getRandomValues(content.subarray(offset, offset + 65536));
    }
    await writeFile(join(work, "payload.bin"), content);
    const rootfs = join(work, "rootfs.tar");
    const tar = Bun.spawn(["tar", "-C", work, "-cf", rootfs, "payload.bin"]);
    if ((await tar.exited) !== 0) {
      throw new Error("tar failed to create the root file system");
    }

    const id = (await dockerOk(["import", rootfs, reference])).trim();
    const path = join(directory, `${id.slice(7, 19)}.tar`);
    await dockerOk(["save", "--output", path, reference]);
    await removeImage(reference);
    return { path, id, reference };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Returns a reference that no other test run uses. */
export function uniqueReference(name: string): string {
  const suffix = crypto.randomUUID().slice(0, 8);
  return `imgload-test/${name}-${suffix}:v1`;
}

function detectDocker(): DockerStatus {
  const setting = process.env.IMGLOAD_TEST_DOCKER;
  if (setting === "ready") {
    return { available: true };
  }
  if (setting?.startsWith("skip: ")) {
    return { available: false, reason: setting.slice("skip: ".length) };
  }

  try {
    const run = Bun.spawnSync(
      ["docker", "version", "--format", "{{.Server.Version}}"],
      { stdout: "pipe", stderr: "pipe", timeout: 5000 },
    );
    if (run.exitCode === 0) {
      return { available: true };
    }
    if (run.exitCode === null) {
      return { available: false, reason: "docker version timed out" };
    }
    const message = run.stderr.toString().trim().split("\n")[0];
    return { available: false, reason: message || "docker version failed" };
  } catch {
    return { available: false, reason: "the docker CLI is not installed" };
  }
}
