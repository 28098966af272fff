/**
 * The project's test command (`npm test`): builds dist/imgload, provides a
 * Docker daemon (see scripts/dockerd.ts), runs `bun test` with any extra
 * arguments, stops a daemon it started, and ends with the line
 * `N passed, N failed[, N skipped]`.
 *
 * Without a daemon the Docker tests are skipped with the reason, except
 * under CI=true, where they fail.
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";

import { type DockerDaemon, ensureDocker } from "./dockerd.ts";

const root = join(import.meta.dir, "..");
const underCi = process.env.CI === "true" || process.env.CI === "1";

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
  /** False when bun test printed no summary, for example after a crash. */
  found: boolean;
}

async function main(args: string[]): Promise<number> {
  const notes: string[] = [];
  let extraFailures = 0;

  // Build first: the end-to-end tests run dist/imgload, and a stale
  // binary must not pass for a broken build.
  await rm(join(root, "dist", "imgload"), { force: true });
  const build = Bun.spawn([process.execPath, "run", "build"], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  if ((await build.exited) !== 0) {
    notes.push("build: failed, see the output above (counted as 1 failed)");
    extraFailures += 1;
  }

  // Provide a daemon, or a reason that the Docker tests repeat.
  let daemon: DockerDaemon | undefined;
  const env: Record<string, string | undefined> = { ...process.env };
  try {
    daemon = await ensureDocker();
    env.IMGLOAD_TEST_DOCKER = "ready";
    if (daemon.dockerHost) {
      env.DOCKER_HOST = daemon.dockerHost;
    }
  } catch (error) {
    const reason = firstLine(error);
    env.IMGLOAD_TEST_DOCKER = `skip: ${reason}`;
    if (underCi) {
      notes.push(`docker: no daemon under CI (counted as 1 failed): ${reason}`);
      extraFailures += 1;
    } else {
      notes.push(`docker: Docker tests skipped: ${reason}`);
    }
  }

  // Run the tests, stopping the daemon however they end.
  let stopping: Promise<void> | undefined;
  const stopDaemon = () => {
    stopping ??= daemon?.stop() ?? Promise.resolve();
    return stopping;
  };
  const run = await runTests(args, env).finally(stopDaemon);
  const { errorText, code } = run;
  if (run.signal) {
    process.stdout.write(`interrupted by ${run.signal}\n`);
    return run.signal === "SIGINT" ? 130 : 143;
  }

  // Summarize from bun test's own counts.
  const counts = parseCounts(errorText);
  if (!counts.found) {
    notes.push(`bun test printed no summary and exited with code ${code}`);
    extraFailures += 1;
  }
  const failed = counts.failed + extraFailures;
  for (const note of notes) {
    process.stdout.write(`${note}\n`);
  }
  const skipped = counts.skipped > 0 ? `, ${counts.skipped} skipped` : "";
  process.stdout.write(`${counts.passed} passed, ${failed} failed${skipped}\n`);

  return failed > 0 || code !== 0 ? 1 : 0;
}

/** The end of bun test's stderr, its exit code, and a signal that ended it. */
interface TestRun {
  errorText: string;
  code: number;
  signal?: "SIGINT" | "SIGTERM";
}

/**
 * Runs `bun test` with its output relayed. SIGINT or SIGTERM is passed on
 * to the tests, and a second one kills them, so the caller still gets to
 * stop the daemon.
 */
async function runTests(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<TestRun> {
  const tests = Bun.spawn([process.execPath, "test", ...args], {
    cwd: root,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let signal: TestRun["signal"];
  const interrupt = (received: "SIGINT" | "SIGTERM") => {
    tests.kill(signal ? "SIGKILL" : received);
    signal ??= received;
  };
  process.on("SIGINT", () => interrupt("SIGINT"));
  process.on("SIGTERM", () => interrupt("SIGTERM"));

  const [, errorText, code] = await Promise.all([
    relay(tests.stdout, process.stdout),
    relay(tests.stderr, process.stderr),
    tests.exited,
  ]);
  return { errorText, code, signal };
}

/**
 * Copies a child's output to ours as it arrives, and returns its last
 * 64 KiB, where bun test prints its summary.
 */
async function relay(
  stream: ReadableStream<Uint8Array>,
  target: NodeJS.WriteStream,
): Promise<string> {
  const decoder = new TextDecoder();
  let tail = "";
  for await (const chunk of stream) {
    target.write(chunk);
    tail = (tail + decoder.decode(chunk, { stream: true })).slice(-65536);
  }
  return tail + decoder.decode();
}

/** Reads the last ` N pass`, ` N fail`, ` N skip` and ` N todo` lines. */
function parseCounts(text: string): Counts {
  const last = (word: string): number | undefined => {
    const matches = [...text.matchAll(new RegExp(`^ *(\\d+) ${word}$`, "gm"))];
    const match = matches.at(-1);
    return match ? Number(match[1]) : undefined;
  };
  const passed = last("pass");
  const failed = last("fail");
  return {
    passed: passed ?? 0,
    failed: failed ?? 0,
    skipped: (last("skip") ?? 0) + (last("todo") ?? 0),
    found: passed !== undefined && failed !== undefined,
  };
}

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}

// A reader that goes away early, such as `| head`, must not stop this
// script before it has stopped the daemon.
process.stdout.on("error", () => {});
process.stderr.on("error", () => {});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`test: ${String(error)}\n`);
    process.stdout.write("0 passed, 1 failed\n");
    process.exit(1);
  },
);
