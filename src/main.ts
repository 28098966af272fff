#!/usr/bin/env bun
import process from "node:process";
import { runCli } from "./cli.ts";
import { getRuntime } from "./runtime/index.ts";

const runtime = getRuntime();
const code = await runCli(process.argv.slice(2), runtime);
runtime.exit(code);
