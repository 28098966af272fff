/**
 * Runs a shell pipeline with every stage under GNU time and collects the
 * wall time of the whole pipeline, and the CPU time and peak RSS of each
 * stage.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The GNU time binary; BSD and shell-builtin `time` lack `-o` and `-f`. */
export const gnuTime = "/usr/bin/time";

/** A pipeline to measure: stages joined by pipes, output discarded. */
export interface Pipeline {
  /** The argv of each stage, first to last. */
  stages: string[][];
  /** Extra environment variables for every stage. */
  env?: Record<string, string>;
  /** The run is killed after this many milliseconds. */
  timeoutMs: number;
}

/** CPU and memory of one stage, as GNU time reports them. */
export interface StageUsage {
  /** User plus system CPU seconds, including waited-for children. */
  cpuSeconds: number;
  /** Maximum resident set size in bytes of the stage or a child. */
  peakRssBytes: number;
}

/** The outcome of one pipeline run. */
export interface Measurement {
  /** Seconds from starting the pipeline until its last stage exited. */
  wallSeconds: number;
  /** The sum of all stages' CPU seconds. */
  cpuSeconds: number;
  /** The largest peak RSS of any single stage, in bytes. */
  peakRssBytes: number;
  /**
   * CPU seconds that other processes used during the run, such as the
   * benchmark's own HTTP server. A high value marks a noisy run.
   */
  otherCpuSeconds: number;
  stages: StageUsage[];
}

/**
 * Runs pipelines one at a time, each in a process group of its own, so
 * that a timeout or `stop()` can kill every stage.
 */
export class PipelineRunner {
  #directory: string | undefined;
  #running: number | undefined;

  /**
   * Checks that GNU time is installed.
   *
   * @throws Error saying what to install otherwise.
   */
  static async checkGnuTime(): Promise<void> {
    const probe = Bun.spawn([gnuTime, "--version"], {
      stdout: "pipe",
      stderr: "pipe",
    }).exited.catch(() => -1);
    if ((await probe) !== 0) {
      throw new Error(
        `GNU time is not installed at ${gnuTime}; install it with ` +
          "`apt-get install -y time` (Debian package time)",
      );
    }
  }

  /**
   * Runs `pipeline` and returns its measurement.
   *
   * @throws Error with the end of stderr when a stage fails or the run
   * times out.
   */
  async run(pipeline: Pipeline): Promise<Measurement> {
    this.#directory ??= await mkdtemp(join(tmpdir(), "imgload-bench-"));
    const directory = this.#directory;
    const usagePaths = pipeline.stages.map((_, index) =>
      join(directory, `stage-${index}`),
    );
    const stderrPath = join(directory, "stderr");
    await rm(stderrPath, { force: true });

    const script = buildScript(pipeline.stages, usagePaths, stderrPath);
    const busyBefore = await readBusyCpuSeconds();
    const started = performance.now();
    const child = Bun.spawn(["bash", "-o", "pipefail", "-c", script], {
      env: { ...process.env, ...pipeline.env },
      stdio: ["ignore", "ignore", "ignore"],
      detached: true,
    });
    this.#running = child.pid;

    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, pipeline.timeoutMs);
    const code = await child.exited;
    const wallSeconds = (performance.now() - started) / 1000;
    const busySeconds = (await readBusyCpuSeconds()) - busyBefore;
    clearTimeout(timer);
    this.#running = undefined;

    if (timedOut || code !== 0) {
      const stderr = await readFile(stderrPath, "utf8").catch(() => "");
      const tail = stderr.trim().split("\n").slice(-5).join("\n");
      const reason = timedOut
        ? `timed out after ${pipeline.timeoutMs / 1000} s`
        : `exited with code ${code}`;
      throw new Error(`${describePipeline(pipeline)} ${reason}:\n${tail}`);
    }

    const stages = await Promise.all(usagePaths.map(readUsage));
    const cpuSeconds = stages.reduce((sum, stage) => sum + stage.cpuSeconds, 0);
    return {
      wallSeconds,
      cpuSeconds,
      peakRssBytes: Math.max(...stages.map((stage) => stage.peakRssBytes)),
      otherCpuSeconds: Math.max(0, busySeconds - cpuSeconds),
      stages,
    };
  }

  /** Kills a running pipeline and removes the temporary files. */
  async stop(): Promise<void> {
    if (this.#running !== undefined) killGroup(this.#running);
    if (this.#directory !== undefined) {
      await rm(this.#directory, { recursive: true, force: true });
      this.#directory = undefined;
    }
  }
}

/** Returns the pipeline as a shell would show it. */
export function describePipeline(pipeline: Pipeline): string {
  return pipeline.stages
    .map((argv) => argv.map(quoteForDisplay).join(" "))
    .join(" | ");
}

// Each stage runs as `time -o FILE -f FORMAT -- ARGV`; the last one's
// stdout and every stderr go to files, never to the terminal.
function buildScript(
  stages: string[][],
  usagePaths: string[],
  stderrPath: string,
): string {
  const parts = stages.map((argv, index) => {
    const timed = [
      gnuTime,
      "-o",
      usagePaths[index]!,
      "-f",
      "%e %U %S %M",
      "--",
      ...argv,
    ];
    return `${timed.map(shellQuote).join(" ")} 2>>${shellQuote(stderrPath)}`;
  });
  return `${parts.join(" | ")} >/dev/null`;
}

// GNU time writes "Command exited with non-zero status N" or "Command
// terminated by signal N" before the values in those cases, so the values
// are read from the last line.
async function readUsage(path: string): Promise<StageUsage> {
  const text = await readFile(path, "utf8");
  const last = text.trim().split("\n").at(-1) ?? "";
  const [, user, system, maxRssKb] = last.split(" ").map(Number);
  if (
    user === undefined ||
    system === undefined ||
    maxRssKb === undefined ||
    [user, system, maxRssKb].some(Number.isNaN)
  ) {
    throw new Error(`Unexpected GNU time output in ${path}: ${text.trim()}`);
  }
  return { cpuSeconds: user + system, peakRssBytes: maxRssKb * 1024 };
}

// Sums the non-idle time of all CPUs from /proc/stat, which counts in
// USER_HZ ticks, 100 per second on Linux.
async function readBusyCpuSeconds(): Promise<number> {
  const stat = await readFile("/proc/stat", "utf8");
  const fields = (stat.split("\n")[0] ?? "").trim().split(/\s+/).slice(1);
  const ticks = fields.map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const total = ticks.reduce((sum, value) => sum + value, 0);
  return (total - idle) / 100;
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // The group has already exited.
  }
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", "'\\''")}'`;
}

function quoteForDisplay(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : shellQuote(text);
}
