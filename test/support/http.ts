import type { HttpSourceOptions, RetryEvent } from "../../src/source/http.ts";
import { FaultServer, type FaultServerOptions } from "./fault-server.ts";

/**
 * Options for fast tests: 10 ms retry delays, no proxy variables, and a
 * record of each retry in `retries`.
 */
export function fastOptions(extra: HttpSourceOptions = {}): {
  options: HttpSourceOptions;
  retries: RetryEvent[];
} {
  const retries: RetryEvent[] = [];
  const options: HttpSourceOptions = {
    retries: 3,
    retryDelayMs: 10,
    timeoutMs: 5000,
    env: () => undefined,
    onRetry: (event) => retries.push(event),
    ...extra,
  };
  return { options, retries };
}

/** Returns what `promise` rejects with; fails if it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected a rejection, got a result");
}

/** Fault servers started by a test file, closed together after each test. */
export class ServerPool {
  #servers: FaultServer[] = [];

  /** Starts a fault server that `closeAll` will stop. */
  async start(options: FaultServerOptions): Promise<FaultServer> {
    const server = await FaultServer.start(options);
    this.#servers.push(server);
    return server;
  }

  /** Stops every server started since the last call. */
  async closeAll(): Promise<void> {
    await Promise.all(this.#servers.splice(0).map((server) => server.close()));
  }
}
