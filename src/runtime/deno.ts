import type {
  ByteWriter,
  ChildProcess,
  FetchOptions,
  OpenedFile,
  Runtime,
  SpawnOptions,
} from "./types.ts";

/**
 * Implements {@linkcode Runtime} with Deno's APIs: `Deno.Command`,
 * `Deno.open`, `Deno.addSignalListener`, the `Deno.std*` streams and
 * `fetch` with a `Deno.HttpClient` for the proxy and CA certificates. It
 * reaches `Deno` through `globalThis`, so Bun's bundler and type checker
 * accept this file without Deno's type declarations.
 *
 * @example
 * ```ts
 * const child = new DenoRuntime().spawn(["cat"]);
 * const writer = child.stdin.getWriter();
 * await writer.write(new TextEncoder().encode("hi"));
 * await writer.close();
 * ```
 */
export class DenoRuntime implements Runtime {
  readonly name = "deno" as const;

  // One client per proxy and CA text, created on first use, because each
  // client keeps its own pool of connections.
  #httpClients = new Map<string, DenoHttpClient>();

  /**
   * Starts `argv` with piped stdio. Deno's errors carry the system code,
   * so a missing executable throws with `code` ENOENT as in Bun.
   */
  spawn(argv: readonly string[], options: SpawnOptions = {}): ChildProcess {
    const [command, ...args] = argv;
    if (command === undefined) {
      throw new TypeError("Cannot spawn a process from an empty argv");
    }
    const piped = options.stdin !== "ignore";
    const { Command } = deno();
    const child = new Command(command, {
      args,
      env: options.env,
      stdin: piped ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new DenoChildProcess(child, piped);
  }

  /** Opens `path` for streaming reads. A directory rejects with EISDIR. */
  async openFile(path: string): Promise<OpenedFile> {
    const file = await deno().open(path, { read: true });
    const info = await file.stat();
    if (info.isDirectory) {
      file.close();
      throw Object.assign(new Error(`EISDIR: is a directory, open '${path}'`), {
        code: "EISDIR",
        path,
      });
    }
    return {
      size: info.isFile ? info.size : undefined,
      stream: file.readable,
    };
  }

  /** Returns fd 0 as a byte stream. */
  stdin(): ReadableStream<Uint8Array> {
    return deno().stdin.readable;
  }

  /** Returns a writer for fd 1 whose writes wait for the pipe. */
  stdout(): ByteWriter {
    const writer = deno().stdout.writable.getWriter();
    return {
      write: (chunk) => writer.write(chunk),
      close: () => writer.close(),
    };
  }

  /** Reports whether `fd` is a terminal. */
  isTerminal(fd: 0 | 1 | 2): boolean {
    const streams = deno();
    const stream = [streams.stdin, streams.stdout, streams.stderr][fd];
    return stream?.isTerminal() ?? false;
  }

  /** Adds a Deno signal listener, which also stops the default exit. */
  onSignal(signal: "SIGINT" | "SIGTERM", handler: () => void): () => void {
    deno().addSignalListener(signal, handler);
    return () => {
      deno().removeSignalListener(signal, handler);
    };
  }

  /**
   * Sends the request with Deno's `fetch` and an HttpClient for the proxy
   * and CA certificates. A failure rejects with the underlying detail as
   * the message and, where the detail names one, the system `code`.
   */
  async fetch(url: URL, options: FetchOptions): Promise<Response> {
    // Deno 2.9 decodes gzip and br bodies unless the request's
    // Accept-Encoding is identity, and has no option that turns that off.
    const headers = new Headers(options.headers);
    headers.set("accept-encoding", "identity");

    const init: RequestInit & { client: DenoHttpClient } = {
      headers,
      redirect: options.redirect,
      signal: options.signal,
      client: this.#httpClient(options.proxy, options.ca),
    };
    try {
      return await fetch(url, init);
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw fetchError(error);
    }
  }

  /** Reads `name` with `Deno.env.get`. */
  env(name: string): string | undefined {
    return deno().env.get(name);
  }

  /** Ends the process with `code`. */
  exit(code: number): never {
    return deno().exit(code);
  }

  #httpClient(proxy?: string, ca?: string): DenoHttpClient {
    const key = JSON.stringify([proxy ?? null, ca ?? null]);
    let client = this.#httpClients.get(key);
    if (client === undefined) {
      const options: DenoHttpClientOptions = {};
      if (ca !== undefined) options.caCerts = [ca];
      if (proxy !== undefined) options.proxy = denoProxy(proxy);
      client = withoutProxyVariables(() => deno().createHttpClient(options));
      this.#httpClients.set(key, client);
    }
    return client;
  }
}

const proxyVariables = [
  "ALL_PROXY",
  "all_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
];

/**
 * Runs `create` with the proxy variables taken out of the environment, and
 * puts them back afterwards. Deno 2.9 adds the proxies and the NO_PROXY
 * list of these variables to every HttpClient, even to one with its own
 * proxy, while the caller has already chosen the proxy for the URL.
 * NOTE: the environment changes for the length of one synchronous call,
 * so a Deno thread reading it meanwhile, such as a DNS lookup of another
 * request, would miss the variables. imgload sends one request at a time.
 */
function withoutProxyVariables<T>(create: () => T): T {
  const env = deno().env;
  const saved = new Map<string, string>();
  for (const name of proxyVariables) {
    const value = env.get(name);
    if (value === undefined) continue;
    saved.set(name, value);
    env.delete(name);
  }

  try {
    return create();
  } finally {
    for (const [name, value] of saved) env.set(name, value);
  }
}

// Moves credentials out of the proxy URL into `basicAuth`, because Deno
// 2.9 rejects a proxy URL that has a user name but no password.
function denoProxy(url: string): DenoProxy {
  const parsed = new URL(url);
  if (parsed.username === "" && parsed.password === "") return { url };

  const basicAuth = {
    username: decodeURIComponent(parsed.username),
    password: decodeURIComponent(parsed.password),
  };
  parsed.username = "";
  parsed.password = "";
  return { url: parsed.href, basicAuth };
}

// The codes Bun gives for the same failures, found by the text of Deno's
// detail. Bun names certificate problems with OpenSSL codes, but Deno's
// rustls names them differently, so CERT_INVALID stands for all of them
// and the reason stays in the message.
// NOTE: only the certificate and refused-connection texts were checked,
// with Deno 2.9.6; the others follow the wording of the OS and of hyper.
const errorCodes: Array<[RegExp, string]> = [
  [/invalid peer certificate/i, "CERT_INVALID"],
  [/connection refused/i, "ECONNREFUSED"],
  [/connection reset/i, "ECONNRESET"],
  [/timed out/i, "ETIMEDOUT"],
  [/dns error|failed to lookup address/i, "ENOTFOUND"],
  [/no route to host/i, "EHOSTUNREACH"],
  [/network is unreachable/i, "ENETUNREACH"],
];

/**
 * Returns a TypeError whose message is the innermost detail of a rejection
 * of Deno's `fetch`, with a `code` like Bun's when the detail shows one.
 * Deno 2.9 rejects with the message "fetch failed" and keeps the detail,
 * such as "tcp connect error: Connection refused (os error 111)", in
 * `cause`, while imgload's retry and certificate checks read `code`.
 */
function fetchError(error: unknown): unknown {
  if (!(error instanceof TypeError)) return error;

  let detail = error.message;
  for (let cause = error.cause; cause instanceof Error; cause = cause.cause) {
    detail = cause.message;
  }
  // Drop "error sending request for url (URL): client error (Connect): ".
  detail = detail.replace(/^error sending request .*?\): /, "");
  detail = detail.replace(/^client error \(\w+\): /, "");

  const code = errorCodes.find(([pattern]) => pattern.test(detail))?.[1];
  const normalized = new TypeError(detail, { cause: error });
  return code === undefined ? normalized : Object.assign(normalized, { code });
}

class DenoChildProcess implements ChildProcess {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  #child: DenoChild;
  #done = false;

  constructor(child: DenoChild, piped: boolean) {
    this.#child = child;
    this.pid = child.pid;
    this.stdout = child.stdout;
    this.stderr = child.stderr;

    // Deno already reports 128 + the signal number for a killed child.
    this.exited = child.status.then((status) => {
      this.#done = true;
      return status.code;
    });

    this.stdin = piped
      ? killFirstWritable(child.stdin, () => this.kill("SIGKILL"))
      : closedStdin();
  }

  kill(signal: "SIGKILL" | "SIGTERM" = "SIGTERM"): void {
    if (this.#done) {
      return;
    }
    try {
      this.#child.kill(signal);
    } catch {
      // Deno throws when the child exited after the check above.
    }
  }
}

/**
 * Wraps Deno's stdin pipe so that `abort()` kills the child before the
 * pipe closes: a clean end of input would let `docker load` commit what
 * it has read so far.
 */
function killFirstWritable(
  pipe: WritableStream<Uint8Array>,
  kill: () => void,
): WritableStream<Uint8Array> {
  const writer = pipe.getWriter();
  return new WritableStream<Uint8Array>({
    write: (chunk) => writer.write(chunk),
    close: () => writer.close(),
    async abort(reason) {
      kill();
      try {
        await writer.abort(reason);
      } catch {
        // The pipe may already be broken, which is what abort wants.
      }
    },
  });
}

function closedStdin(): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({
    write() {
      throw new TypeError("The child's stdin was not opened as a pipe");
    },
  });
}

// The subset of Deno's API that this file uses, typed here because the
// project type-checks against Bun's declarations only.

interface DenoChild {
  readonly pid: number;
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal?: string): void;
}

interface DenoFile {
  readonly readable: ReadableStream<Uint8Array>;
  stat(): Promise<{ isFile: boolean; isDirectory: boolean; size: number }>;
  close(): void;
}

interface DenoHttpClient {
  close(): void;
}

interface DenoProxy {
  url: string;
  basicAuth?: { username: string; password: string };
}

interface DenoHttpClientOptions {
  caCerts?: string[];
  proxy?: DenoProxy;
}

interface DenoStdio {
  isTerminal(): boolean;
}

interface DenoNamespace {
  Command: new (
    command: string,
    options: {
      args: string[];
      env?: Record<string, string>;
      stdin: "piped" | "null";
      stdout: "piped";
      stderr: "piped";
    },
  ) => { spawn(): DenoChild };
  open(path: string, options: { read: true }): Promise<DenoFile>;
  stdin: DenoStdio & { readonly readable: ReadableStream<Uint8Array> };
  stdout: DenoStdio & { readonly writable: WritableStream<Uint8Array> };
  stderr: DenoStdio;
  addSignalListener(signal: string, handler: () => void): void;
  removeSignalListener(signal: string, handler: () => void): void;
  env: {
    get(name: string): string | undefined;
    set(name: string, value: string): void;
    delete(name: string): void;
  };
  createHttpClient(options: DenoHttpClientOptions): DenoHttpClient;
  exit(code: number): never;
}

function deno(): DenoNamespace {
  const namespace = (globalThis as { Deno?: DenoNamespace }).Deno;
  if (namespace === undefined) {
    throw new Error("DenoRuntime needs the Deno global, which is missing");
  }
  return namespace;
}
