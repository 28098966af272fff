#!/usr/bin/env bun
import process from "node:process";
import pkg from "../package.json" with { type: "json" };

// `--version` prints before the rest of imgload is loaded, so it starts
// without loading the pipeline's modules.
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
  process.stdout.write(`${pkg.version}\n`);
  process.exit(0);
}

const { runCli } = await import("./cli.ts");
const { getRuntime } = await import("./runtime/index.ts");
const runtime = getRuntime();
const code = await runCli(argv, runtime);
runtime.exit(code);
