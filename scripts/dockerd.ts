/**
 * Provides a Docker daemon for the tests: the one the Docker CLI already
 * reaches (respecting DOCKER_HOST), or else a private dockerd started as
 * root in a temporary directory, after installing Debian's docker.io
 * package when dockerd is missing.
 *
 * Usage:
 *   bun scripts/dockerd.ts start         start a daemon, print DOCKER_HOST=...
 *   bun scripts/dockerd.ts stop          stop the daemon that `start` began
 *   bun scripts/dockerd.ts run -- CMD    run CMD with a daemon, then stop it
 *
 * `start` records the daemon in .cache/dockerd.json for `stop`, so
 * `export $(bun scripts/dockerd.ts start)` prepares a shell.
 */
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

import { BunRuntime } from "../src/runtime/bun.ts";
import { checkDaemon } from "../src/sink/docker.ts";

/** A daemon that the Docker CLI reaches. */
export interface DockerDaemon {
  /** The DOCKER_HOST value to use, or undefined for the CLI's default. */
  dockerHost: string | undefined;
  /** The daemon's version, such as `20.10.24+dfsg1`. */
  serverVersion: string;
  /** The private daemon's process and directory, if this script started it. */
  private?: PrivateDaemon;
  /** Stops a private daemon and removes its directory, or does nothing. */
  stop(): Promise<void>;
}

/** The process and paths of a private daemon, as stored for `stop`. */
export interface PrivateDaemon {
  pid: number;
  directory: string;
  dockerHost: string;
}

/** Options of {@linkcode ensureDocker}. */
export interface EnsureDockerOptions {
  /** The receiver of progress lines, stderr by default. */
  log?: (line: string) => void;
  /** Maximum wait for a new daemon to respond, 30000 ms by default. */
  startTimeoutMs?: number;
}

const runtime = new BunRuntime();
const statePath = join(import.meta.dir, "..", ".cache", "dockerd.json");
const installCommand = "apt-get install -y docker.io";
const extraPath = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/**
 * Returns a reachable Docker daemon: the current one if `docker version`
 * succeeds, else a private dockerd that this call starts, installing
 * Debian's docker.io first when dockerd or the CLI is missing.
 *
 * @throws Error saying what to install or start when no daemon can be
 * had, for example when not running as root.
 */
export async function ensureDocker(
  options: EnsureDockerOptions = {},
): Promise<DockerDaemon> {
  const log = options.log ?? logToStderr;

  // Use the daemon the CLI already reaches.
  const current = await probeDaemon(undefined);
  if (typeof current !== "string") {
    const dockerHost = process.env.DOCKER_HOST;
    log(`using Docker ${current.serverVersion} at ${dockerHost ?? "default"}`);
    return { ...current, dockerHost, stop: async () => {} };
  }
  log(`no Docker daemon responded: ${current}`);

  // Starting dockerd, and installing it, both need root.
  const installed =
    findExecutable("dockerd") !== undefined &&
    findExecutable("docker") !== undefined;
  if (process.getuid?.() !== 0) {
    const missing = installed
      ? "starting a private dockerd needs root"
      : `dockerd is missing, so install Debian's docker.io package as root (${installCommand})`;
    throw new Error(
      `No Docker daemon responded (${current}), and ${missing}. Or start a Docker daemon and set DOCKER_HOST`,
    );
  }
  if (!installed) {
    await installDocker(log);
  }

  // Start a private daemon.
  const daemon = await startPrivateDaemon({
    log,
    startTimeoutMs: options.startTimeoutMs ?? 30_000,
  });
  return daemon;
}

/**
 * Installs Debian's docker.io package with apt-get, which brings dockerd,
 * containerd, runc and the docker CLI.
 *
 * @throws Error with the tail of apt-get's output when it fails.
 */
export async function installDocker(log: (line: string) => void = logToStderr) {
  if (findExecutable("apt-get") === undefined) {
    throw new Error(
      "dockerd is missing and apt-get is not available: install Docker Engine (dockerd and the docker CLI)",
    );
  }
  log(`installing docker.io (apt-get update; ${installCommand})`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const argv of [
    ["apt-get", "update", "-qq"],
    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io"],
  ]) {
    const child = Bun.spawn(argv, { env, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    if (code !== 0) {
      const tail = `${out}\n${err}`.trim().split("\n").slice(-15).join("\n");
      throw new Error(
        `${argv.join(" ")} failed with exit code ${code}:\n${tail}`,
      );
    }
  }
  if (findExecutable("dockerd") === undefined) {
    throw new Error("docker.io was installed but dockerd is still not found");
  }
  log("installed docker.io");
}

/**
 * Starts dockerd as root in a new directory under /tmp, with the vfs
 * storage driver and without iptables or a bridge, so it needs no kernel
 * modules and leaves the host's network alone. Waits until it responds.
 *
 * @throws Error with the end of dockerd's log when it exits or does not
 * respond within `startTimeoutMs`.
 */
export async function startPrivateDaemon(
  options: Required<EnsureDockerOptions>,
  storage: { dataRootMiB?: number } = {},
): Promise<DockerDaemon> {
  const dockerd = findExecutable("dockerd");
  if (dockerd === undefined) {
    throw new Error(`dockerd is not installed: run ${installCommand}`);
  }

  // Unix socket paths are limited to 108 bytes, so the directory name
  // stays short. containerd's sockets live under the exec root too.
  const directory = await mkdtemp("/tmp/imgload-");
  const dockerHost = `unix://${directory}/docker.sock`;
  const logPath = join(directory, "dockerd.log");
  if (storage.dataRootMiB !== undefined) {
    // A small tmpfs makes the daemon run out of space on purpose, so
    // tests can watch docker load fail partway through an archive.
    await mkdir(join(directory, "data"));
    const mount = Bun.spawnSync([
      "mount",
      "-t",
      "tmpfs",
      "-o",
      `size=${storage.dataRootMiB}m`,
      "tmpfs",
      join(directory, "data"),
    ]);
    if (mount.exitCode !== 0) {
      await rm(directory, { recursive: true, force: true });
      throw new Error(`mount of a tmpfs data root failed: ${mount.stderr}`);
    }
  }
  const logFd = openSync(logPath, "a");
  const child = Bun.spawn(
    [
      dockerd,
      ...["--data-root", join(directory, "data")],
      ...["--exec-root", join(directory, "x")],
      ...["--pidfile", join(directory, "dockerd.pid")],
      ...["--host", dockerHost],
      ...["--storage-driver", "vfs"],
      "--iptables=false",
      "--ip6tables=false",
      "--bridge=none",
    ],
    {
      stdin: "ignore",
      stdout: logFd,
      stderr: logFd,
      // A group of its own keeps a terminal's Ctrl-C away from dockerd,
      // so that stop() decides when it ends.
      detached: true,
    },
  );
  closeSync(logFd);
  const daemon: PrivateDaemon = { pid: child.pid, directory, dockerHost };
  options.log(`starting dockerd (pid ${child.pid}) at ${dockerHost}`);

  // Wait until it responds, or fail with its log.
  let exited = false;
  void child.exited.then(() => {
    exited = true;
  });
  const deadline = Date.now() + options.startTimeoutMs;
  let probe = await probeDaemon(dockerHost);
  while (typeof probe === "string" && !exited && Date.now() < deadline) {
    await Bun.sleep(250);
    probe = await probeDaemon(dockerHost);
  }
  if (typeof probe === "string") {
    const tail = await logTail(logPath);
    await stopPrivateDaemon(daemon, options.log);
    const what = exited
      ? `exited with code ${child.exitCode}`
      : `did not respond within ${options.startTimeoutMs / 1000} s (${probe})`;
    throw new Error(`dockerd ${what}. The end of its log:\n${tail}`);
  }

  options.log(`dockerd ${probe.serverVersion} is ready`);
  return {
    dockerHost,
    serverVersion: probe.serverVersion,
    private: daemon,
    stop: () => stopPrivateDaemon(daemon, options.log),
  };
}

/**
 * Stops a private daemon: SIGTERM, then SIGKILL after 20 s for dockerd
 * and for the containerd it started, then removes its directory. Checks
 * the process's command line first, so a reused pid is never signalled.
 */
export async function stopPrivateDaemon(
  daemon: PrivateDaemon,
  log: (line: string) => void = logToStderr,
): Promise<void> {
  const containerdPid = await readPid(
    join(daemon.directory, "x", "containerd", "containerd.pid"),
  );

  if (isDaemonProcess(daemon.pid, daemon.directory)) {
    log(`stopping dockerd (pid ${daemon.pid})`);
    signal(daemon.pid, "SIGTERM");
    if (!(await waitForExit(daemon.pid, 20_000))) {
      log(`dockerd did not stop within 20 s; killing it`);
      signal(daemon.pid, "SIGKILL");
      await waitForExit(daemon.pid, 5000);
    }
  }
  if (
    containerdPid !== undefined &&
    isDaemonProcess(containerdPid, daemon.directory)
  ) {
    signal(containerdPid, "SIGKILL");
    await waitForExit(containerdPid, 5000);
  }

  await unmountBelow(daemon.directory);
  await rm(daemon.directory, { recursive: true, force: true });
}

/** Returns the daemon's version, or the reason that it did not respond. */
async function probeDaemon(
  dockerHost: string | undefined,
): Promise<{ serverVersion: string } | string> {
  if (findExecutable("docker") === undefined) {
    return "the docker CLI is not installed";
  }
  try {
    const env = dockerHost ? { DOCKER_HOST: dockerHost } : undefined;
    return await checkDaemon(runtime, { env, timeoutMs: 5000 });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

function findExecutable(name: string): string | undefined {
  const path = [process.env.PATH ?? "", ...extraPath].join(":");
  return Bun.which(name, { PATH: path }) ?? undefined;
}

/** True for a live process whose command line mentions `directory`. */
function isDaemonProcess(pid: number, directory: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    if (/^\d+ \(.*\) Z/.test(stat)) {
      return false;
    }
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes(directory);
  } catch {
    return false;
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isRunning(pid)) {
      return true;
    }
    await Bun.sleep(100);
  }
  return !isRunning(pid);
}

/** True unless the process is gone or a zombie that no one reaped yet. */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
}

function signal(pid: number, name: "SIGTERM" | "SIGKILL"): void {
  try {
    process.kill(pid, name);
  } catch {
    // It exited in the meantime.
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path, "utf8"), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Unmounts whatever dockerd left mounted below `directory`, deepest
 * first, so that removing the directory cannot reach into a mount.
 */
async function unmountBelow(directory: string): Promise<void> {
  const mountinfo = await readFile("/proc/self/mountinfo", "utf8").catch(
    () => "",
  );
  const mounts = mountinfo
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => !!point?.startsWith(`${directory}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of mounts) {
    await Bun.spawn(["umount", "-l", point], { stderr: "ignore" }).exited;
  }
}

async function logTail(path: string): Promise<string> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text.trim().split("\n").slice(-20).join("\n");
}

function logToStderr(line: string): void {
  process.stderr.write(`dockerd: ${line}\n`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;

  if (command === "start") {
    if (existsSync(statePath)) {
      logToStderr(`a daemon is recorded in ${statePath}; run stop first`);
      return 1;
    }
    const daemon = await ensureDocker();
    if (daemon.private) {
      await mkdir(join(statePath, ".."), { recursive: true });
      await writeFile(statePath, JSON.stringify(daemon.private));
    }
    process.stdout.write(`DOCKER_HOST=${daemon.dockerHost ?? ""}\n`);
    return 0;
  }

  if (command === "stop") {
    const text = await readFile(statePath, "utf8").catch(() => undefined);
    if (text === undefined) {
      logToStderr("no private daemon is recorded; nothing to stop");
      return 0;
    }
    await stopPrivateDaemon(JSON.parse(text) as PrivateDaemon);
    await rm(statePath, { force: true });
    return 0;
  }

  if (command === "run" && rest[0] === "--" && rest.length > 1) {
    const daemon = await ensureDocker();
    const env = { ...process.env };
    if (daemon.dockerHost) {
      env.DOCKER_HOST = daemon.dockerHost;
    }
    const child = Bun.spawn(rest.slice(1), {
      env,
      stdio: ["inherit", "inherit", "inherit"],
    });
    const forward = () => child.kill("SIGINT");
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    const code = await child.exited;
    await daemon.stop();
    return code;
  }

  process.stderr.write(
    "Usage: bun scripts/dockerd.ts start | stop | run -- COMMAND [ARG...]\n",
  );
  return 2;
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: unknown) => {
      logToStderr(error instanceof Error ? error.message : String(error));
      process.exit(1);
    },
  );
}
