/**
 * The benchmark (`npm run bench`): loads a generated image archive from a
 * local HTTP server with imgload and with the shell pipelines it replaces,
 * and reports the median wall time, CPU time and peak RSS of each.
 *
 * Usage:
 *   bun scripts/bench.ts [--runs N] [--size MiB] [--scaling]
 *                        [--markdown FILE] [--only IDS] [--no-docker]
 *
 *   --runs N         runs of each contender, alternating (default 5)
 *   --size MiB       file contents in the archive (default 800)
 *   --scaling        also time imgload at 200 MiB and 3 GiB
 *   --markdown FILE  write the report between the benchmark markers of
 *                    FILE, or as the whole file when it has none
 *   --only IDS       run only these rows, such as 1,3 (row 1 always runs)
 *   --no-docker      skip the rows that load into a Docker daemon
 *
 * It needs curl, zstd, python3, GNU time at /usr/bin/time and a built
 * dist/imgload. Archives are cached under .cache/bench/. The Docker rows
 * use the daemon the CLI reaches, or a private one that scripts/dockerd.ts
 * starts and this script stops.
 */
import { cpus, release, totalmem } from "node:os";
import { existsSync } from "node:fs";
import { mkdir, readFile, statfs, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

import { type DockerDaemon, ensureDocker } from "./dockerd.ts";
import { type BenchArchive, writeBenchArchive } from "./lib/bench-archive.ts";
import {
  describePipeline,
  type Pipeline,
  PipelineRunner,
} from "./lib/bench-measure.ts";
import {
  fixed,
  formatRowTable,
  formatTargets,
  markdownTable,
  pairedWallRatio,
  ratio,
  type ResultRow,
  spreadOf,
  summarize,
  type TargetCheck,
} from "./lib/bench-report.ts";

// Paths are relative to the repository root, which main() changes to,
// so that the commands in the report are the ones to type.
const root = join(import.meta.dir, "..");
const cacheDirectory = join(".cache", "bench");
const imgload = join("dist", "imgload");
const retagScript = join("scripts", "bench-retag.py");
const mebibyte = 1024 * 1024;

// Bump when the generator changes, so that cached archives are rebuilt.
const generatorVersion = 1;
const archiveReference = "imgload-bench/app:v1";
const loadName = "imgload-bench/renamed:v2";
const scalingSizes = [200, 3072];
const startupRuns = 20;
// A zstd archive of this generator is about half the size of its
// contents. The extra 5% is headroom for the temporary file.
const compressedShare = 0.55;
const markerStart = "<!-- bench:start -->";
const markerEnd = "<!-- bench:end -->";

interface Options {
  runs: number;
  sizeMib: number;
  scaling: boolean;
  markdown?: string;
  only?: Set<string>;
  docker: boolean;
}

/** A row together with the pipeline that measures it. */
interface BenchRow extends ResultRow {
  pipeline: Pipeline;
}

interface Served {
  archive: BenchArchive;
  url: string;
}

/** The runner, server and daemon to stop on exit or SIGINT. */
class Cleanup {
  readonly runner = new PipelineRunner();
  server?: ReturnType<typeof Bun.serve>;
  daemon?: DockerDaemon;
  #done?: Promise<void>;

  run(): Promise<void> {
    this.#done ??= (async () => {
      await this.runner.stop();
      await this.server?.stop(true);
      await this.daemon?.stop();
    })();
    return this.#done;
  }
}

async function main(argv: string[]): Promise<number> {
  const options = parseOptions(argv);
  process.chdir(root);
  const cleanup = new Cleanup();
  process.on("SIGINT", () => {
    log("interrupted; stopping");
    void cleanup.run().finally(() => process.exit(130));
  });

  try {
    await checkPrerequisites(options);
    const report = await runBenchmark(options, cleanup);
    process.stdout.write(`\n${report}\n`);
    if (options.markdown) {
      await writeMarkdown(options.markdown, report);
      log(`wrote the report to ${options.markdown}`);
    }
    return 0;
  } finally {
    await cleanup.run();
  }
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: "string", default: "5" },
      size: { type: "string", default: "800" },
      scaling: { type: "boolean", default: false },
      markdown: { type: "string" },
      only: { type: "string" },
      "no-docker": { type: "boolean", default: false },
    },
    strict: true,
  });
  const runs = Number(values.runs);
  const sizeMib = Number(values.size);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new Error(`Invalid --runs ${values.runs}: give a positive integer`);
  }
  if (!Number.isInteger(sizeMib) || sizeMib < 1) {
    throw new Error(`Invalid --size ${values.size}: give MiB as an integer`);
  }
  const only = values.only
    ? new Set(["1", ...values.only.split(",").map((id) => id.trim())])
    : undefined;
  return {
    runs,
    sizeMib,
    scaling: values.scaling ?? false,
    // Resolved before main() changes to the repository root.
    markdown: values.markdown ? resolve(values.markdown) : undefined,
    only,
    docker: !(values["no-docker"] ?? false),
  };
}

async function checkPrerequisites(options: Options): Promise<void> {
  for (const tool of ["curl", "zstd", "python3", "bash"]) {
    if (Bun.which(tool) === null) {
      throw new Error(`${tool} not found: install it to run the benchmark`);
    }
  }
  await PipelineRunner.checkGnuTime();
  if (!existsSync(imgload)) {
    throw new Error(`${imgload} not found: run npm run build first`);
  }

  // Check the disk before generating gigabytes.
  await mkdir(cacheDirectory, { recursive: true });
  const sizes = archiveSizes(options).filter(
    (size) => !existsSync(archivePath(size)),
  );
  const neededBytes =
    sizes.reduce((sum, size) => sum + size * mebibyte * compressedShare, 0) +
    (options.docker ? 3 * options.sizeMib * mebibyte : 0);
  const disk = await statfs(cacheDirectory);
  const freeBytes = disk.bavail * disk.bsize;
  log(
    `disk: ${gib(freeBytes)} GiB free, about ${gib(neededBytes)} GiB ` +
      "needed for new archives and the daemon's copies",
  );
  if (freeBytes < neededBytes + 1024 * mebibyte) {
    throw new Error(
      `Not enough disk space: ${gib(freeBytes)} GiB free under ` +
        `${cacheDirectory}, about ${gib(neededBytes)} GiB needed; free ` +
        "space, or leave out --scaling or the Docker rows (--no-docker)",
    );
  }
}

async function runBenchmark(
  options: Options,
  cleanup: Cleanup,
): Promise<string> {
  // Build or reuse the archives, and serve them.
  const archives = new Map<number, BenchArchive>();
  for (const size of archiveSizes(options)) {
    archives.set(size, await ensureArchive(size));
  }
  const served = serveArchives(archives, cleanup);
  const main = served.get(options.sizeMib)!;
  for (const { archive } of served.values()) await warmPageCache(archive);

  // Start or find the daemon when the Docker rows are selected.
  let dockerEnv: Record<string, string> | undefined;
  if (options.docker && isRowSelected(options, "6")) {
    try {
      cleanup.daemon = await ensureDocker({ log: (line) => log(line) });
      dockerEnv = cleanup.daemon.dockerHost
        ? { DOCKER_HOST: cleanup.daemon.dockerHost }
        : {};
    } catch (error) {
      log(`skipping the Docker rows: ${firstLine(error)}`);
    }
  }

  // Measure.
  const rows = defineRows(main, options);
  await runRoundRobin(rows, options.runs, cleanup.runner, { warmUp: true });
  const dockerRows = dockerEnv
    ? defineDockerRows(main, dockerEnv)
    : undefined;
  if (dockerRows) {
    await runRoundRobin(dockerRows.rows, options.runs, cleanup.runner, {
      before: () => removeImage(main.archive, dockerEnv!),
    });
    await removeImage(main.archive, dockerEnv!);
  }
  const scaling = options.scaling
    ? await runScaling(served, options.runs, cleanup.runner)
    : undefined;
  const startup = await measureStartup();

  // Report.
  const environment = await describeEnvironment(dockerEnv, served);
  return formatReport({
    options,
    environment,
    main,
    rows,
    dockerRows: dockerRows?.rows,
    scaling,
    startup,
  });
}

function archiveSizes(options: Options): number[] {
  const sizes = options.scaling
    ? [...scalingSizes, options.sizeMib]
    : [options.sizeMib];
  return [...new Set(sizes)].sort((a, b) => a - b);
}

function archivePath(sizeMib: number): string {
  return join(
    cacheDirectory,
    `image-${sizeMib}m-g${generatorVersion}.tar.zst`,
  );
}

// Reuses a cached archive whose description matches the file on disk.
async function ensureArchive(sizeMib: number): Promise<BenchArchive> {
  const path = archivePath(sizeMib);
  const descriptionPath = `${path}.json`;
  const cached = await readFile(descriptionPath, "utf8")
    .then((text) => JSON.parse(text) as BenchArchive)
    .catch(() => undefined);
  if (cached && existsSync(path) && Bun.file(path).size === cached.compressedSize) {
    return { ...cached, path };
  }

  log(`generating a ${sizeMib} MiB archive with zstd -3 (cached afterwards)`);
  const started = performance.now();
  const archive = await writeBenchArchive(path, {
    contentBytes: sizeMib * mebibyte,
    reference: archiveReference,
  });
  await writeFile(descriptionPath, JSON.stringify(archive, null, 2));
  const seconds = (performance.now() - started) / 1000;
  log(`generated ${path} in ${seconds.toFixed(0)} s`);
  return archive;
}

// Serves each archive at /image-<MiB>.tar.zst with Content-Length (from
// the file) and an ETag, so that imgload can resume as with a real server.
function serveArchives(
  archives: Map<number, BenchArchive>,
  cleanup: Cleanup,
): Map<number, Served> {
  const files = new Map<string, BenchArchive>();
  for (const [size, archive] of archives) {
    files.set(`/image-${size}.tar.zst`, archive);
  }
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(request) {
      const archive = files.get(new URL(request.url).pathname);
      if (!archive) return new Response("not found", { status: 404 });
      return new Response(Bun.file(archive.path), {
        headers: {
          "content-type": "application/zstd",
          etag: `"${archive.sha256.slice(0, 32)}"`,
        },
      });
    },
  });
  cleanup.server = server;

  const served = new Map<number, Served>();
  for (const [size, archive] of archives) {
    const url = `http://127.0.0.1:${server.port}/image-${size}.tar.zst`;
    served.set(size, { archive, url });
  }
  return served;
}

// Reads the archive once so that the first run does not pay for the disk.
async function warmPageCache(archive: BenchArchive): Promise<void> {
  const cat = Bun.spawn(["cat", archive.path], { stdout: "ignore" });
  await cat.exited;
}

function defineRows(main: Served, options: Options): BenchRow[] {
  const { url, archive } = main;
  const timeoutMs = timeoutFor(archive, 30);
  const load = [imgload, "load", url, loadName, "--output", "/dev/null", "-q"];
  const rows: BenchRow[] = [
    {
      id: "1",
      label: "curl | zstd -dc (floor)",
      pipeline: {
        stages: [
          ["curl", "-s", url],
          ["zstd", "-dc"],
        ],
        timeoutMs,
      },
    },
    {
      id: "2",
      label: "curl | zstd -dc | python3 tarfile rename",
      pipeline: {
        stages: [
          ["curl", "-s", url],
          ["zstd", "-dc"],
          ["python3", retagScript, loadName],
        ],
        timeoutMs: timeoutFor(archive, 60),
      },
    },
    {
      id: "3",
      label: "imgload --output /dev/null",
      pipeline: { stages: [load], timeoutMs },
    },
    {
      id: "4",
      label: "imgload --output /dev/null --sha256",
      pipeline: {
        stages: [[...load, "--sha256", archive.sha256]],
        timeoutMs,
      },
    },
    {
      id: "5",
      label: "imgload --output /dev/null --zstd-decoder wasm",
      pipeline: {
        stages: [[...load, "--zstd-decoder", "wasm"]],
        timeoutMs: timeoutFor(archive, 60),
      },
    },
  ].map((row) => ({
    ...row,
    command: describePipeline(row.pipeline),
    runs: [],
  }));
  return rows.filter((row) => isRowSelected(options, row.id));
}

function defineDockerRows(
  main: Served,
  env: Record<string, string>,
): { rows: BenchRow[] } {
  const { url, archive } = main;
  const timeoutMs = timeoutFor(archive, 180);
  const rows = [
    {
      id: "6a",
      label: "imgload into docker",
      pipeline: { stages: [[imgload, "load", url, loadName, "-q"]], env, timeoutMs },
    },
    {
      id: "6b",
      label: "curl | zstd -dc | docker load",
      pipeline: {
        stages: [["curl", "-s", url], ["zstd", "-dc"], ["docker", "load"]],
        env,
        timeoutMs,
      },
    },
  ].map((row) => ({
    ...row,
    command: describePipeline(row.pipeline),
    runs: [],
  }));
  return { rows };
}

// A generous limit: `secondsPerGib` for each GiB of tar, plus a minute.
function timeoutFor(archive: BenchArchive, secondsPerGib: number): number {
  const gibs = archive.tarSize / (1024 * mebibyte);
  return Math.ceil((60 + gibs * secondsPerGib) * 1000);
}

function isRowSelected(options: Options, id: string): boolean {
  return options.only === undefined || options.only.has(id.replace(/\D+$/, ""));
}

// Alternates the rows run by run, so that a slow period of the machine
// spreads over all of them instead of one. With `warmUp`, each row first
// runs once unmeasured, which loads the binaries into the page cache.
async function runRoundRobin(
  rows: BenchRow[],
  runs: number,
  runner: PipelineRunner,
  options: { before?: () => Promise<void>; warmUp?: boolean } = {},
): Promise<void> {
  if (options.warmUp) {
    for (const row of rows) {
      await options.before?.();
      await runner.run(row.pipeline);
    }
  }
  for (let run = 1; run <= runs; run++) {
    for (const row of rows) {
      await options.before?.();
      const measurement = await runner.run(row.pipeline);
      row.runs.push(measurement);
      log(
        `run ${run}/${runs} row ${row.id}: ` +
          `${measurement.wallSeconds.toFixed(2)} s, ` +
          `${measurement.cpuSeconds.toFixed(2)} s CPU, ` +
          `${(measurement.peakRssBytes / mebibyte).toFixed(0)} MiB; ` +
          `other processes ${measurement.otherCpuSeconds.toFixed(2)} s CPU`,
      );
    }
  }
}

// Removes the image under every name and its ID, so that the next load
// imports every layer again, and checks that the ID is gone.
async function removeImage(
  archive: BenchArchive,
  env: Record<string, string>,
): Promise<void> {
  const names = [loadName, archive.reference, archive.configDigest];
  await runQuiet(["docker", "rmi", "-f", ...names], env);
  await runQuiet(["docker", "image", "prune", "-f"], env);
  const listed = await runQuiet(
    ["docker", "image", "ls", "-a", "-q", "--no-trunc"],
    env,
  );
  if (listed.includes(archive.configDigest)) {
    throw new Error(`docker rmi left ${archive.configDigest} in place`);
  }
}

async function runQuiet(
  argv: string[],
  env: Record<string, string>,
): Promise<string> {
  const child = Bun.spawn(argv, {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "ignore",
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const text = await new Response(child.stdout).text();
  await child.exited;
  clearTimeout(timer);
  return text;
}

interface ScalingResult {
  sizeMib: number;
  archive: BenchArchive;
  row: BenchRow;
}

async function runScaling(
  served: Map<number, Served>,
  runs: number,
  runner: PipelineRunner,
): Promise<ScalingResult[]> {
  const results = [...served.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([sizeMib, { url, archive }]) => {
      const pipeline: Pipeline = {
        stages: [[imgload, "load", url, loadName, "--output", "/dev/null", "-q"]],
        timeoutMs: timeoutFor(archive, 30),
      };
      const row: BenchRow = {
        id: `${sizeMib}M`,
        label: `imgload at ${sizeMib} MiB`,
        command: describePipeline(pipeline),
        runs: [],
        pipeline,
      };
      return { sizeMib, archive, row };
    });
  await runRoundRobin(
    results.map((result) => result.row),
    runs,
    runner,
  );
  return results;
}

interface Startup {
  imgloadMs: number[];
  trueMs: number[];
}

// Times `imgload --version` against `/bin/true`, which shows what
// spawning and waiting alone cost here.
async function measureStartup(): Promise<Startup> {
  const time = async (argv: string[]) => {
    const started = performance.now();
    const child = Bun.spawn(argv, { stdout: "ignore", stderr: "ignore" });
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await child.exited;
    clearTimeout(timer);
    return performance.now() - started;
  };
  const result: Startup = { imgloadMs: [], trueMs: [] };
  await time([imgload, "--version"]);
  for (let run = 0; run < startupRuns; run++) {
    result.imgloadMs.push(await time([imgload, "--version"]));
    result.trueMs.push(await time(["true"]));
  }
  return result;
}

interface Environment {
  machine: string[];
  versions: string[];
}

async function describeEnvironment(
  dockerEnv: Record<string, string> | undefined,
  served: Map<number, Served>,
): Promise<Environment> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const model =
    /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? "?";
  const machine = [
    `CPU: ${model}, ${cpus().length} cores`,
    `Memory: ${gib(totalmem())} GiB`,
    `Kernel: Linux ${release()}`,
  ];

  const firstLineOf = async (argv: string[], env = {}) =>
    firstLine(await runQuiet(argv, env).catch(() => "?")) || "?";
  const zstd = /v[\d.]+/.exec(await firstLineOf(["zstd", "--version"]))?.[0];
  // A compiled Bun executable acts as the Bun it contains when
  // BUN_BE_BUN=1 is set.
  const bunInside = await firstLineOf([imgload, "--version"], {
    BUN_BE_BUN: "1",
  });
  const versions = [
    `imgload: ${await firstLineOf([imgload, "--version"])}, compiled with Bun ${bunInside}`,
    `zstd: ${zstd ?? "?"}`,
    `curl: ${(await firstLineOf(["curl", "--version"])).split(" ")[1] ?? "?"}`,
    `Python: ${(await firstLineOf(["python3", "--version"])).split(" ")[1] ?? "?"}`,
  ];
  if (dockerEnv) {
    const format = "{{.Client.Version}} {{.Server.Version}}";
    const [client, server] = (
      await firstLineOf(["docker", "version", "--format", format], dockerEnv)
    ).split(" ");
    const driver = await firstLineOf(
      ["docker", "info", "--format", "{{.Driver}}"],
      dockerEnv,
    );
    versions.push(
      `Docker: client ${client ?? "?"}, server ${server ?? "?"}, storage driver ${driver}`,
    );
  }
  for (const { archive } of served.values()) {
    machine.push(
      `Archive ${archive.path.split("/").at(-1)}: ${mib(archive.tarSize)} MiB tar, ` +
        `${mib(archive.compressedSize)} MiB zstd -3, ${archive.layers} layers, ` +
        `${archive.files} files`,
    );
  }
  return { machine, versions };
}

interface ReportInput {
  options: Options;
  environment: Environment;
  main: Served;
  rows: BenchRow[];
  dockerRows?: BenchRow[];
  scaling?: ScalingResult[];
  startup: Startup;
}

function formatReport(input: ReportInput): string {
  const { options, environment, main, rows } = input;
  const command = ["bun scripts/bench.ts", ...process.argv.slice(2)].join(" ");
  const sections = [
    `Command: \`${command}\` (${plural(options.runs, "run")} of each ` +
      "row, alternating, medians shown)",
    ["Machine:", ...environment.machine.map((line) => `- ${line}`)].join("\n"),
    ["Versions:", ...environment.versions.map((line) => `- ${line}`)].join("\n"),
    `Loading ${mib(main.archive.tarSize)} MiB of tar (${mib(main.archive.compressedSize)} MiB compressed):\n\n` +
      formatRowTable(rows),
    ["Commands:", ...rows.map((row) => `- ${row.id}: \`${row.command}\``)].join(
      "\n",
    ),
  ];

  const wasm = rows.find((row) => row.id === "5");
  if (wasm) {
    const seconds = summarize(wasm).wall.median;
    sections.push(
      `The WASM decoder (row 5) delivers ${fixed(mib(main.archive.tarSize) / seconds, 0)} MiB/s of tar.`,
    );
  }
  if (input.dockerRows) {
    sections.push(
      "Into the Docker daemon, the image removed before every run " +
        "(ratios against 6b):\n\n" +
        formatRowTable(input.dockerRows, input.dockerRows[1]) +
        "\n\n" +
        input.dockerRows.map((row) => `- ${row.id}: \`${row.command}\``).join("\n"),
    );
  }
  if (input.scaling) sections.push(formatScaling(input.scaling));
  sections.push(formatBackground(input));
  sections.push(formatStartup(input.startup));
  sections.push(`Targets:\n\n${formatTargets(checkTargets(input))}`);
  return sections.join("\n\n");
}

function formatScaling(results: ScalingResult[]): string {
  const lines = results.map(({ archive, row }) => {
    const summary = summarize(row);
    const gibs = archive.tarSize / (1024 * mebibyte);
    return [
      `${mib(archive.tarSize)}`,
      `${mib(archive.compressedSize)}`,
      fixed(summary.wall.median, 2),
      `${fixed(summary.wall.min, 2)}-${fixed(summary.wall.max, 2)}`,
      fixed(summary.wall.median / gibs, 2),
      fixed(summary.cpu.median, 2),
      fixed(summary.rssMb.median, 0),
      `${fixed(summary.rssMb.min, 0)}-${fixed(summary.rssMb.max, 0)}`,
    ];
  });
  const header = [
    "Tar MiB",
    "zstd MiB",
    "Wall s",
    "Wall min-max",
    "s per GiB",
    "CPU s",
    "Peak RSS MiB",
    "RSS min-max",
  ];
  return (
    "imgload --output /dev/null at each size:\n\n" +
    markdownTable(header, lines, [0, 1, 2, 3, 4, 5, 6, 7])
  );
}

// Shows how busy the rest of the machine was, which explains outliers.
function formatBackground(input: ReportInput): string {
  const rows = [
    ...input.rows,
    ...(input.scaling ?? []).map((result) => result.row),
  ];
  const others = spreadOf(
    rows.flatMap((row) => row.runs.map((run) => run.otherCpuSeconds)),
  );
  let text =
    "CPU time of other processes during a run, this script's HTTP server " +
    `included: median ${fixed(others.median, 2)} s, ` +
    `max ${fixed(others.max, 2)} s.`;
  for (const row of input.dockerRows ?? []) {
    const daemon = spreadOf(row.runs.map((run) => run.otherCpuSeconds));
    text +=
      ` During row ${row.id}, the daemon and other processes used ` +
      `${fixed(daemon.median, 2)} s of CPU (median).`;
  }
  return text;
}

function formatStartup(startup: Startup): string {
  const imgloadMs = spreadOf(startup.imgloadMs);
  const trueMs = spreadOf(startup.trueMs);
  return (
    `\`imgload --version\`: median ${fixed(imgloadMs.median, 1)} ms ` +
    `(${fixed(imgloadMs.min, 1)}-${fixed(imgloadMs.max, 1)}) over ${startupRuns} runs; ` +
    `spawning \`true\` the same way takes ${fixed(trueMs.median, 1)} ms.`
  );
}

// Judges wall-time targets by the paired ratio, which is steadier on a
// shared machine than the ratio of the medians. The report shows both.
function checkTargets(input: ReportInput): TargetCheck[] {
  const byId = new Map(input.rows.map((row) => [row.id, summarize(row)]));
  const rowsById = new Map(input.rows.map((row) => [row.id, row]));
  const floor = byId.get("1");
  const floorRow = rowsById.get("1");
  const targets: TargetCheck[] = [];
  const wallRatio = (id: string, limit: number, text: string) => {
    const row = rowsById.get(id);
    if (!row || !floorRow) return;
    const paired = pairedWallRatio(row, floorRow);
    targets.push({
      description: `${text} (paired ratio)`,
      met: paired.median <= limit,
      measured: `${paired.median.toFixed(2)}×, ${paired.min.toFixed(2)}-${paired.max.toFixed(2)} over the runs`,
    });
  };
  wallRatio("3", 1.15, "row 3 wall time at most 1.15× row 1");
  wallRatio("4", 1.3, "row 4 wall time at most 1.3× row 1");
  const wasm = byId.get("5");
  if (wasm && floor) {
    const mibPerSecond = mib(input.main.archive.tarSize) / wasm.wall.median;
    targets.push({
      description: "row 5 reported with its ratio and the decoder's MiB/s",
      met: undefined,
      measured: `${ratio(wasm.wall.median, floor.wall.median)}, ${mibPerSecond.toFixed(0)} MiB/s`,
    });
  }

  // Memory: row 3 at the main size, and every size of the scaling runs.
  const peaks = new Map<string, number>();
  const row3 = byId.get("3");
  if (row3) peaks.set(`${input.options.sizeMib} MiB`, row3.rssMb.median);
  for (const result of input.scaling ?? []) {
    peaks.set(`${result.sizeMib} MiB`, summarize(result.row).rssMb.median);
  }
  if (peaks.size > 0) {
    const largest = Math.max(...peaks.values());
    targets.push({
      description: "imgload's peak RSS at most 100 MiB at every size",
      met: largest <= 100,
      measured: [...peaks].map(([size, rss]) => `${rss.toFixed(0)} MiB at ${size}`).join(", "),
    });
  }
  const scaling = input.scaling;
  if (scaling && scaling.length >= 2) {
    const small = summarize(scaling[0]!.row).rssMb.median;
    const large = summarize(scaling.at(-1)!.row).rssMb.median;
    targets.push({
      description: `peak RSS at ${scaling.at(-1)!.sizeMib} MiB within 20% of ${scaling[0]!.sizeMib} MiB`,
      met: large <= small * 1.2,
      measured: `${(large / small).toFixed(2)}×`,
    });
  }

  const docker = input.dockerRows;
  if (docker?.length === 2) {
    const paired = pairedWallRatio(docker[0]!, docker[1]!);
    targets.push({
      description: "row 6a wall time within 5% of row 6b (paired ratio)",
      met: paired.median <= 1.05,
      measured: `${paired.median.toFixed(2)}×, ${paired.min.toFixed(2)}-${paired.max.toFixed(2)} over the runs`,
    });
  }

  const startup = spreadOf(input.startup.imgloadMs).median;
  targets.push({
    description: "`imgload --version` starts in under 50 ms",
    met: startup < 50,
    measured: `${startup.toFixed(1)} ms`,
  });
  return targets;
}

// Replaces the text between the markers, keeping what surrounds them.
async function writeMarkdown(path: string, report: string): Promise<void> {
  const block = `${markerStart}\n${report}\n${markerEnd}`;
  const existing = await readFile(path, "utf8").catch(() => undefined);
  const start = existing?.indexOf(markerStart) ?? -1;
  const end = existing?.indexOf(markerEnd) ?? -1;
  if (existing === undefined || start < 0 || end < start) {
    await writeFile(path, `# Benchmarks\n\n${block}\n`);
    return;
  }
  const after = existing.slice(end + markerEnd.length);
  await writeFile(path, `${existing.slice(0, start)}${block}${after}`);
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

function mib(bytes: number): number {
  return Math.round(bytes / mebibyte);
}

function gib(bytes: number): string {
  return (bytes / (1024 * mebibyte)).toFixed(1);
}

function firstLine(value: unknown): string {
  const text = value instanceof Error ? value.message : String(value);
  return text.trim().split("\n")[0] ?? "";
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      log(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
