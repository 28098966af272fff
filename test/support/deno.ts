/**
 * Runs imgload's source under Deno. The `deno` devDependency provides the
 * binary; $DENO overrides it. Without one the Deno tests are skipped with
 * the reason, except under CI=true, where they fail.
 */
import { describe, test } from "bun:test";
import { existsSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";

import type { CliRun, CliRunOptions } from "./cli.ts";

const root = join(import.meta.dir, "..", "..");
const underCi = process.env.CI === "true" || process.env.CI === "1";

/** The entry point that `deno run` starts. */
export const mainPath = join(root, "src", "main.ts");

/** The Deno executable, or undefined when none was found. */
export const denoPath: string | undefined = findDeno();

/**
 * Returns the native Deno binary: $DENO, then the one the `deno` package
 * installed, then `deno` on PATH. When npm skipped the package's install
 * script, `.bin/deno` links to a Node.js wrapper instead. A test that
 * kills the wrapper would leave Deno running, so the binary of the
 * platform package (such as @deno/linux-x64-glibc) is used then.
 */
function findDeno(): string | undefined {
  if (process.env.DENO) return process.env.DENO;

  const modules = join(root, "node_modules");
  const bin = join(modules, ".bin", "deno");
  if (existsSync(bin) && !realpathSync(bin).endsWith(".cjs")) return bin;

  const platformPackages = join(modules, "@deno");
  if (existsSync(platformPackages)) {
    for (const name of readdirSync(platformPackages)) {
      const binary = join(platformPackages, name, "deno");
      if (existsSync(binary)) return binary;
    }
  }
  return Bun.which("deno") ?? undefined;
}

/**
 * Runs `describe` when Deno was found. Otherwise the group becomes one
 * skipped test with the reason in its name, or under CI one failing test,
 * because the `deno` devDependency should always provide it there.
 */
export function describeDeno(name: string, body: () => void): void {
  if (denoPath !== undefined) {
    describe(name, body);
  } else if (underCi) {
    describe(name, () => {
      test("Deno installed", () => {
        throw new Error(
          "Deno was not found under CI; run npm install for the deno " +
            "devDependency, or set DENO",
        );
      });
    });
  } else {
    test.skip(`${name} (skipped: Deno is not installed)`, () => {});
  }
}

// Variables from the shell that would change which proxy the tests'
// requests use or which CA certificates they trust.
const networkVariables = [
  "ALL_PROXY",
  "all_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
  "SSL_CERT_FILE",
];

/**
 * Runs `deno run -A --cached-only src/main.ts` with `args`. Deno resolves
 * the npm packages from node_modules and, with `--cached-only`, fails
 * rather than download anything. Proxy variables and SSL_CERT_FILE are
 * removed from the inherited environment, so only `options.env` sets them.
 */
export async function runDeno(
  args: string[],
  options: CliRunOptions = {},
): Promise<CliRun> {
  if (denoPath === undefined) throw new Error("Deno is not installed");

  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of networkVariables) delete env[name];
  Object.assign(env, {
    DENO_NO_UPDATE_CHECK: "1",
    NO_COLOR: "1",
    ...options.env,
  });

  const argv = [denoPath, "run", "-A", "--cached-only", mainPath, ...args];
  const child = Bun.spawn(argv, {
    cwd: root,
    stdin: options.stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env,
    timeout: options.timeoutMs ?? 60_000,
  });
  const [stdout, stderr, exitCode] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { exitCode, stdout, stderr };
}
