/**
 * Runs the compiled `dist/imgload` binary for end-to-end tests, and serves
 * archives from a real HTTP server on 127.0.0.1.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

export const binaryPath = join(import.meta.dir, "..", "..", "dist", "imgload");

let built: Promise<void> | undefined;

/**
 * Builds `dist/imgload` once per test process when it is missing, so a
 * plain `bun test` works too; `npm test` builds it before the tests.
 */
export function ensureBinary(): Promise<void> {
  built ??= (async () => {
    if (existsSync(binaryPath)) {
      return;
    }
    const build = Bun.spawn(["npm", "run", "build", "--silent"], {
      cwd: join(import.meta.dir, "..", ".."),
      stdout: "ignore",
      stderr: "pipe",
    });
    const stderr = await new Response(build.stderr).text();
    if ((await build.exited) !== 0) {
      throw new Error(`npm run build failed: ${stderr}`);
    }
  })();
  return built;
}

/** What one run of the binary produced. */
export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface CliRunOptions {
  /** Bytes for stdin; stdin is closed when omitted. */
  stdin?: Uint8Array;
  /** Variables added to the environment. */
  env?: Record<string, string>;
  /** Kill the run after this many ms (default 60 s). */
  timeoutMs?: number;
}

/** Runs `dist/imgload` with `args` and collects its output. */
export async function runImgload(
  args: string[],
  options: CliRunOptions = {},
): Promise<CliRun> {
  await ensureBinary();
  const child = Bun.spawn([binaryPath, ...args], {
    stdin: options.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...options.env },
    timeout: options.timeoutMs ?? 60_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}

/** A route of {@link ArchiveServer}: a body, or a function for a reply. */
export type Route = Uint8Array | string | (() => Response);

/** A real HTTP server on 127.0.0.1 serving routes by path. */
export class ArchiveServer {
  readonly #routes = new Map<string, Route>();
  readonly #server: ReturnType<typeof Bun.serve>;

  constructor() {
    this.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (request) => this.#reply(new URL(request.url).pathname),
    });
  }

  /** Serves `route` at `path` and returns its URL. */
  serve(path: string, route: Route): string {
    this.#routes.set(path, route);
    return `http://127.0.0.1:${this.#server.port}${path}`;
  }

  stop(): void {
    this.#server.stop(true);
  }

  #reply(path: string): Response {
    const route = this.#routes.get(path);
    if (route === undefined) {
      return new Response("not found", { status: 404 });
    }
    if (typeof route === "function") {
      return route();
    }
    return new Response(route as BodyInit, {
      headers: {
        "Content-Type": "application/zstd",
        ETag: `"${Bun.hash(route).toString(16)}"`,
      },
    });
  }
}
