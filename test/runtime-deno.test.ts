/**
 * Runs DenoRuntime under a real Deno: $DENO, the `deno` devDependency, or
 * `deno` on PATH. Without one these tests are skipped, except under CI.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { denoPath, describeDeno } from "./support/deno.ts";

const indexPath = resolve(import.meta.dir, "../src/runtime/index.ts");

// The script prints one JSON object with what each step observed.
const probe = `
import { getRuntime } from ${JSON.stringify(indexPath)};
const runtime = getRuntime();
const results = { name: runtime.name };

const cat = runtime.spawn(["cat"]);
const echoed = new Response(cat.stdout).text();
const writer = cat.stdin.getWriter();
await writer.write(new TextEncoder().encode("round trip"));
await writer.close();
results.catOutput = await echoed;
results.catExit = await cat.exited;

const sh = runtime.spawn(["sh", "-c", "cat >/dev/null && echo eof"]);
const shOutput = new Response(sh.stdout).text();
const shWriter = sh.stdin.getWriter();
await shWriter.write(new Uint8Array(100));
await shWriter.abort(new Error("upstream failed"));
results.abortExit = await sh.exited;
results.abortOutput = await shOutput;

const codeOf = (promise) => promise.then(() => "none", (error) => error.code);
results.missingCommand = await codeOf((async () => runtime.spawn(["imgload-no-such-command"]))());
results.missingFile = await codeOf(runtime.openFile("/imgload-no-such-file"));
results.directory = await codeOf(runtime.openFile("/tmp"));
const file = await runtime.openFile(Deno.args[0]);
results.fileSize = file.size;
results.fileText = await new Response(file.stream).text();
results.stdoutTerminal = runtime.isTerminal(1);
results.env = runtime.env("IMGLOAD_PROBE");
const remove = runtime.onSignal("SIGTERM", () => {});
remove();

console.log(JSON.stringify(results));
`;

let results: Record<string, unknown> = {};
let directory: string;

describeDeno("DenoRuntime", () => defineTests(denoPath!));

function defineTests(deno: string): void {
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), "imgload-deno-"));
    const script = join(directory, "probe.ts");
    const data = join(directory, "data.txt");
    await writeFile(script, probe);
    await writeFile(data, "hello");

    const argv = [deno, "run", "--allow-all", "--cached-only", script, data];
    const child = Bun.spawn(argv, {
      env: {
        ...process.env,
        IMGLOAD_PROBE: "set",
        NO_COLOR: "1",
        DENO_NO_UPDATE_CHECK: "1",
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
      child.exited,
    ]);
    if (code !== 0) {
      throw new Error(`deno run failed with ${code}: ${stderr}`);
    }
    results = JSON.parse(stdout) as Record<string, unknown>;
  });

  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  test("getRuntime picks Deno", () => {
    expect(results.name).toBe("deno");
  });

  test("cat round trip", () => {
    expect(results.catOutput).toBe("round trip");
    expect(results.catExit).toBe(0);
  });

  test("abort kills before end", () => {
    expect(results.abortExit).toBe(137);
    expect(results.abortOutput).toBe("");
  });

  test("errors carry system codes", () => {
    expect(results.missingCommand).toBe("ENOENT");
    expect(results.missingFile).toBe("ENOENT");
    expect(results.directory).toBe("EISDIR");
  });

  test("openFile reads with size", () => {
    expect(results.fileSize).toBe(5);
    expect(results.fileText).toBe("hello");
  });

  test("stdio and env", () => {
    expect(results.stdoutTerminal).toBe(false);
    expect(results.env).toBe("set");
  });
}
