import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

import { BunRuntime } from "../src/runtime/bun.ts";
import { getRuntime } from "../src/runtime/index.ts";

const runtime = new BunRuntime();
const bunRuntimePath = resolve(import.meta.dir, "../src/runtime/bun.ts");
let directory: string;

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "imgload-runtime-"));
});

afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** Writes a script that imports BunRuntime as `runtime` and runs `body`. */
async function script(name: string, body: string): Promise<string> {
  const path = join(directory, `${name}.ts`);
  const header = `import { BunRuntime } from ${JSON.stringify(bunRuntimePath)};\nconst runtime = new BunRuntime();\n`;
  await writeFile(path, header + body);
  return path;
}

/** Reads a child's output line by line, to know when it is ready. */
function lineReader(stream: ReadableStream<Uint8Array>) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next(): Promise<string | undefined> {
      while (!buffer.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) return buffer.length > 0 ? buffer : undefined;
        buffer += decoder.decode(value, { stream: true });
      }
      const [line, ...rest] = buffer.split("\n");
      buffer = rest.join("\n");
      return line;
    },
  };
}

describe("BunRuntime.spawn", () => {
  test("cat round trip", async () => {
    const child = runtime.spawn(["cat"]);
    const input = new Uint8Array(3 * 1024 * 1024).map((_, i) => i % 251);
    const output = new Response(child.stdout).bytes();

    const writer = child.stdin.getWriter();
    await writer.write(input.subarray(0, 1000));
    await writer.write(input.subarray(1000));
    await writer.close();

    expect(await child.exited).toBe(0);
    expect(await output).toEqual(input);
  });

  test("close ends input cleanly", async () => {
    const child = runtime.spawn(["sh", "-c", "cat >/dev/null && echo eof"]);
    const writer = child.stdin.getWriter();
    await writer.write(new Uint8Array(100));
    await writer.close();

    expect(await child.exited).toBe(0);
    expect(await new Response(child.stdout).text()).toBe("eof\n");
  });

  test("abort kills before end", async () => {
    const child = runtime.spawn(["sh", "-c", "cat >/dev/null && echo eof"]);
    const output = new Response(child.stdout).text();
    const writer = child.stdin.getWriter();
    await writer.write(new Uint8Array(100));
    await writer.abort(new Error("upstream failed"));

    expect(await child.exited).toBe(137);
    expect(await output).toBe("");
  });

  test("write waits for full pipe", async () => {
    const child = runtime.spawn(["sleep", "30"]);
    const writer = child.stdin.getWriter();
    let settled = false;
    const write = writer.write(new Uint8Array(8 * 1024 * 1024)).then(
      () => (settled = true),
      () => (settled = true),
    );
    await Bun.sleep(200);

    expect(settled).toBe(false);
    child.kill("SIGKILL");
    await write;
    expect(await child.exited).toBe(137);
  });

  test("exit status of a signal", async () => {
    const child = runtime.spawn(["sleep", "30"], { stdin: "ignore" });
    child.kill("SIGTERM");
    expect(await child.exited).toBe(143);
  });

  test("exit code of a failure", async () => {
    const child = runtime.spawn(["sh", "-c", "echo oops >&2; exit 3"]);
    expect(await child.exited).toBe(3);
    expect(await new Response(child.stderr).text()).toBe("oops\n");
  });

  test("env merged over current", async () => {
    const child = runtime.spawn(["sh", "-c", 'echo "$IMGLOAD_X:$HOME"'], {
      env: { IMGLOAD_X: "set" },
    });
    const text = await new Response(child.stdout).text();
    expect(text).toBe(`set:${process.env.HOME}\n`);
  });

  test("missing command throws ENOENT", () => {
    let error: unknown;
    try {
      runtime.spawn(["imgload-no-such-command"]);
    } catch (caught) {
      error = caught;
    }
    expect((error as { code?: string }).code).toBe("ENOENT");
  });

  test("kill after exit is harmless", async () => {
    const child = runtime.spawn(["true"], { stdin: "ignore" });
    expect(await child.exited).toBe(0);
    expect(() => child.kill("SIGKILL")).not.toThrow();
  });
});

describe("BunRuntime.openFile", () => {
  test("reads file with size", async () => {
    const path = join(directory, "data.bin");
    await writeFile(path, "hello");
    const file = await runtime.openFile(path);

    expect(file.size).toBe(5);
    expect(await new Response(file.stream).text()).toBe("hello");
  });

  test("missing file rejects ENOENT", async () => {
    const opening = runtime.openFile(join(directory, "missing"));
    await expect(opening).rejects.toMatchObject({ code: "ENOENT" });
  });

  test("directory rejects EISDIR", async () => {
    const opening = runtime.openFile(directory);
    await expect(opening).rejects.toMatchObject({ code: "EISDIR" });
  });

  test("FIFO streams without size", async () => {
    const fifo = join(directory, "pipe");
    expect(await Bun.spawn(["mkfifo", fifo]).exited).toBe(0);
    const writer = Bun.spawn(["sh", "-c", 'printf hello > "$0"', fifo]);
    const file = await runtime.openFile(fifo);

    expect(file.size).toBeUndefined();
    expect(await new Response(file.stream).text()).toBe("hello");
    expect(await writer.exited).toBe(0);
  });

  test("device has no size", async () => {
    const file = await runtime.openFile("/dev/null");
    expect(file.size).toBeUndefined();
    expect((await new Response(file.stream).bytes()).byteLength).toBe(0);
  });
});

describe("BunRuntime stdio", () => {
  test("stdin and stdout copy bytes", async () => {
    const path = await script(
      "copy",
      `const output = runtime.stdout();
for await (const chunk of runtime.stdin()) await output.write(chunk);
await output.close();`,
    );
    const input = new Uint8Array(2 * 1024 * 1024).map((_, i) => i % 253);
    const child = Bun.spawn([process.execPath, path], {
      stdin: new Blob([input]),
      stdout: "pipe",
    });

    expect(await new Response(child.stdout).bytes()).toEqual(input);
    expect(await child.exited).toBe(0);
  });

  test("pipes are not terminals", async () => {
    const path = await script(
      "tty",
      "console.log([0, 1, 2].map((fd) => runtime.isTerminal(fd as 0)).join());",
    );
    const child = Bun.spawn([process.execPath, path], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
    });
    child.stdin.end();

    expect(await new Response(child.stdout).text()).toBe("false,false,false\n");
  });
});

describe("BunRuntime.onSignal", () => {
  test("handler runs on SIGTERM", async () => {
    const path = await script(
      "signal",
      `runtime.onSignal("SIGTERM", () => { console.log("handled"); process.exit(0); });
console.log("ready");
setTimeout(() => {}, 30_000);`,
    );
    const child = Bun.spawn([process.execPath, path], { stdout: "pipe" });
    const lines = lineReader(child.stdout);
    expect(await lines.next()).toBe("ready");
    child.kill("SIGTERM");

    expect(await lines.next()).toBe("handled");
    expect(await child.exited).toBe(0);
  });

  test("removed handler restores default", async () => {
    const path = await script(
      "unsignal",
      `const remove = runtime.onSignal("SIGTERM", () => console.log("handled"));
remove();
console.log("ready");
setTimeout(() => {}, 30_000);`,
    );
    const child = Bun.spawn([process.execPath, path], { stdout: "pipe" });
    expect(await lineReader(child.stdout).next()).toBe("ready");
    child.kill("SIGTERM");

    expect(await child.exited).toBe(143);
  });
});

describe("getRuntime", () => {
  test("picks Bun under Bun", () => {
    expect(getRuntime().name).toBe("bun");
  });

  test("returns the same instance", () => {
    expect(getRuntime()).toBe(getRuntime());
  });

  test("env reads variables", () => {
    expect(runtime.env("HOME")).toBe(process.env.HOME);
  });
});
