import * as net from "node:net";
import * as tls from "node:tls";

/**
 * A scripted HTTP/1.1 server on loopback for download tests. A handler
 * decides each reply, and a reply can break the transfer on purpose: cut
 * the connection after some bytes, stall and hold the connection open,
 * or announce more bytes than it sends. Every request is recorded with its
 * headers so tests can assert what the client sent. Each connection
 * serves one request and then closes.
 */

/** A request as the server received it. */
export interface RecordedRequest {
  /** The `name` of the server that received it. */
  server: string;
  method: string;
  /** The request target, such as `/image.tar.zst?sig=1`. */
  path: string;
  /** Header names in lowercase; repeated headers joined with ", ". */
  headers: Record<string, string>;
}

/** What the server sends for one request. */
export interface Reply {
  status: number;
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /**
   * The Content-Length to announce: default the body's length, or null
   * for none (the body then ends when the connection closes).
   */
  contentLength?: number | null;
  /** Close the connection cleanly after this many body bytes. */
  cutAfter?: number;
  /** Send this many body bytes, then nothing until the server closes. */
  stallAfter?: number;
}

/** Decides the reply to the `index`-th request (0 for the first). */
export type Handler = (
  request: RecordedRequest,
  index: number,
) => Reply | Promise<Reply>;

/** Options of `FaultServer.start`. */
export interface FaultServerOptions {
  handler: Handler;
  /** Loopback address or name to listen on (default 127.0.0.1). */
  hostname?: string;
  /** A certificate and key in PEM to serve https instead of http. */
  tls?: { cert: string; key: string };
  /** Recorded with each request (default: the hostname). */
  name?: string;
}

const writeSliceBytes = 64 * 1024;
const cutPauseMs = 10;

/** A running fault-injecting server; `close` stops it. */
export class FaultServer {
  /** Every request received, in order. */
  readonly requests: RecordedRequest[] = [];
  readonly port: number;
  readonly hostname: string;
  readonly scheme: "http" | "https";

  #server: net.Server;
  #sockets = new Set<net.Socket>();

  private constructor(
    server: net.Server,
    hostname: string,
    scheme: "http" | "https",
  ) {
    this.#server = server;
    this.hostname = hostname;
    this.scheme = scheme;
    this.port = (server.address() as net.AddressInfo).port;
  }

  /** Starts a server on a free port of a loopback address. */
  static async start(options: FaultServerOptions): Promise<FaultServer> {
    const hostname = options.hostname ?? "127.0.0.1";
    const name = options.name ?? hostname;
    const scheme = options.tls ? "https" : "http";

    let instance: FaultServer | undefined;
    const onConnection = (socket: net.Socket) => {
      if (instance === undefined) socket.destroy();
      else instance.#serve(socket, name, options.handler);
    };
    const server = options.tls
      ? tls.createServer(options.tls, onConnection)
      : net.createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, hostname, () => resolve());
    });

    instance = new FaultServer(server, hostname, scheme);
    return instance;
  }

  /** The origin, such as `http://127.0.0.1:41234`. */
  get origin(): string {
    const host = this.hostname.includes(":")
      ? `[${this.hostname}]`
      : this.hostname;
    return `${this.scheme}://${host}:${this.port}`;
  }

  /** Returns the URL of `path` on this server. */
  url(path = "/image.tar.zst"): string {
    return `${this.origin}${path}`;
  }

  /** Stops listening and destroys open connections, stalled ones included. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #serve(socket: net.Socket, name: string, handler: Handler): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {});

    let head = "";
    const onData = (data: Buffer) => {
      head += data.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;

      socket.off("data", onData);
      const request = parseRequest(head.slice(0, end), name);
      const index = this.requests.length;
      this.requests.push(request);
      void this.#respond(socket, request, index, handler);
    };
    socket.on("data", onData);
  }

  async #respond(
    socket: net.Socket,
    request: RecordedRequest,
    index: number,
    handler: Handler,
  ): Promise<void> {
    const reply = await handler(request, index);
    const body =
      typeof reply.body === "string"
        ? new TextEncoder().encode(reply.body)
        : (reply.body ?? new Uint8Array(0));

    const headers: Record<string, string> = { ...reply.headers };
    const length =
      reply.contentLength === undefined ? body.length : reply.contentLength;
    if (length !== null) headers["Content-Length"] = String(length);
    headers.Connection = "close";

    const lines = [`HTTP/1.1 ${reply.status} ${reasonPhrase(reply.status)}`];
    for (const [key, value] of Object.entries(headers)) {
      lines.push(`${key}: ${value}`);
    }
    await write(socket, Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"));

    const limit = Math.min(
      body.length,
      reply.cutAfter ?? reply.stallAfter ?? body.length,
    );
    for (let offset = 0; offset < limit; offset += writeSliceBytes) {
      if (socket.destroyed) return;
      await write(
        socket,
        body.subarray(offset, Math.min(limit, offset + writeSliceBytes)),
      );
    }

    // A stalled reply keeps the connection open until close().
    if (reply.stallAfter !== undefined && reply.cutAfter === undefined) return;

    // Bun 1.4.5 drops body bytes that arrive in the same read as the end
    // of a connection cut short, so the end follows after a pause to make
    // the offset of the cut the one the client receives.
    if (length !== null && limit < length) await Bun.sleep(cutPauseMs);
    socket.end();
  }
}

/** Options of `serveFile`. */
export interface FileOptions {
  /** The ETag header, or null for none (default `"v1"`). */
  etag?: string | null;
  /** The Last-Modified header, or null for none (the default). */
  lastModified?: string | null;
  /** Respond with 200 and the whole file even to a Range request. */
  ignoreRange?: boolean;
  contentType?: string;
}

/**
 * Returns the reply of a static file server for `file`: 206 for a
 * `Range: bytes=N-` request whose If-Range (if any) equals the current
 * ETag or Last-Modified, 200 with the whole file otherwise.
 */
export function serveFile(
  file: Uint8Array,
  request: RecordedRequest,
  options: FileOptions = {},
): Reply {
  const etag = options.etag === undefined ? '"v1"' : options.etag;
  const headers: Record<string, string> = {
    "Content-Type": options.contentType ?? "application/zstd",
  };
  if (etag !== null) headers.ETag = etag;
  if (options.lastModified) headers["Last-Modified"] = options.lastModified;

  const start = requestedStart(request, etag, options);
  if (start === undefined || start === 0) {
    return { status: 200, headers, body: file };
  }
  if (start >= file.length) {
    return {
      status: 416,
      headers: { "Content-Range": `bytes */${file.length}` },
    };
  }
  headers["Content-Range"] = `bytes ${start}-${file.length - 1}/${file.length}`;
  return { status: 206, headers, body: file.subarray(start) };
}

/**
 * Returns a handler that serves `file` with `serveFile` and cuts the
 * connection once at each file offset in `offsets`: the first response
 * that covers an offset not yet used is cut there.
 */
export function cuttingFileHandler(
  file: Uint8Array,
  offsets: number[],
  options: FileOptions = {},
): Handler {
  const pending = [...offsets].sort((a, b) => a - b);
  return (request) => {
    const reply = serveFile(file, request, options);
    if (reply.status !== 200 && reply.status !== 206) return reply;

    const start = reply.status === 206 ? file.length - bodyLength(reply) : 0;
    const index = pending.findIndex((offset) => offset > start);
    if (index < 0) return reply;

    const [offset = 0] = pending.splice(index, 1);
    return { ...reply, cutAfter: offset - start };
  };
}

function requestedStart(
  request: RecordedRequest,
  etag: string | null,
  options: FileOptions,
): number | undefined {
  if (options.ignoreRange) return undefined;

  const match = /^bytes=(\d+)-$/.exec(request.headers.range ?? "");
  if (!match) return undefined;

  const ifRange = request.headers["if-range"];
  if (
    ifRange !== undefined &&
    ifRange !== etag &&
    ifRange !== options.lastModified
  ) {
    return undefined;
  }
  return Number(match[1]);
}

function bodyLength(reply: Reply): number {
  if (reply.body === undefined) return 0;
  return typeof reply.body === "string" ? reply.body.length : reply.body.length;
}

function parseRequest(head: string, server: string): RecordedRequest {
  const [requestLine = "", ...headerLines] = head.split("\r\n");
  const [method = "", path = ""] = requestLine.split(" ");
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[key] =
      headers[key] === undefined ? value : `${headers[key]}, ${value}`;
  }
  return { server, method, path, headers };
}

// Resolves once the kernel has the data, or once the peer is gone.
function write(socket: net.Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    if (socket.destroyed) {
      resolve();
      return;
    }
    const done = () => {
      socket.off("close", done);
      resolve();
    };
    socket.once("close", done);
    socket.write(data, done);
  });
}

function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = {
    200: "OK",
    206: "Partial Content",
    301: "Moved Permanently",
    302: "Found",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
  };
  return phrases[status] ?? "Status";
}
