import * as net from "node:net";

/**
 * A forward proxy on 127.0.0.1 that records what it is asked for. It
 * tunnels CONNECT requests (https) and forwards absolute-form requests
 * (http), but only to loopback hosts, so a test can never reach out.
 */

/** One request the proxy received. */
export interface ProxyRequest {
  /** CONNECT, or the method of a forwarded request. */
  method: string;
  /** `host:port` for CONNECT, the absolute URL otherwise. */
  target: string;
  /** Header names in lowercase. */
  headers: Record<string, string>;
}

const loopbackHosts = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** A running recording proxy; `close` stops it. */
export class RecordingProxy {
  readonly requests: ProxyRequest[] = [];
  readonly port: number;

  #server: net.Server;
  #sockets = new Set<net.Socket>();

  private constructor(server: net.Server) {
    this.#server = server;
    this.port = (server.address() as net.AddressInfo).port;
  }

  /** Starts the proxy on a free port of 127.0.0.1. */
  static async start(): Promise<RecordingProxy> {
    let instance: RecordingProxy | undefined;
    const server = net.createServer((socket) => {
      if (instance === undefined) socket.destroy();
      else instance.#accept(socket);
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve),
    );
    instance = new RecordingProxy(server);
    return instance;
  }

  /** The proxy URL, such as `http://127.0.0.1:3128`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops listening and destroys open tunnels. */
  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on("close", () => this.#sockets.delete(socket));
    socket.on("error", () => {});
  }

  #accept(client: net.Socket): void {
    this.#track(client);
    let buffered = Buffer.alloc(0);
    const onData = (data: Buffer) => {
      buffered = Buffer.concat([buffered, data]);
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;

      client.off("data", onData);
      const head = buffered.subarray(0, end).toString("latin1");
      const rest = buffered.subarray(end + 4);
      this.#handle(client, head, rest);
    };
    client.on("data", onData);
  }

  #handle(client: net.Socket, head: string, rest: Buffer): void {
    const [requestLine = "", ...headerLines] = head.split("\r\n");
    const [method = "", target = ""] = requestLine.split(" ");
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      if (colon > 0) {
        headers[line.slice(0, colon).trim().toLowerCase()] = line
          .slice(colon + 1)
          .trim();
      }
    }
    this.requests.push({ method, target, headers });

    if (method === "CONNECT") {
      const colon = target.lastIndexOf(":");
      this.#tunnel(
        client,
        target.slice(0, colon),
        Number(target.slice(colon + 1)),
        rest,
      );
      return;
    }

    const url = new URL(target);
    const forwarded = [`${method} ${url.pathname}${url.search} HTTP/1.1`];
    for (const line of headerLines) {
      if (/^(proxy-|connection:)/i.test(line)) continue;
      forwarded.push(line);
    }
    forwarded.push("Connection: close", "", "");
    const port = Number(url.port || 80);
    const first = Buffer.concat([
      Buffer.from(forwarded.join("\r\n"), "latin1"),
      rest,
    ]);
    this.#pipe(client, url.hostname, port, first, undefined);
  }

  #tunnel(client: net.Socket, host: string, port: number, rest: Buffer): void {
    const established = Buffer.from(
      "HTTP/1.1 200 Connection Established\r\n\r\n",
    );
    this.#pipe(client, host, port, rest, established);
  }

  // Connects to host:port, sends `first`, replies to the client with
  // `reply` (for CONNECT), then copies bytes both ways.
  #pipe(
    client: net.Socket,
    host: string,
    port: number,
    first: Buffer,
    reply: Buffer | undefined,
  ): void {
    if (!loopbackHosts.has(host)) {
      client.end("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
      return;
    }

    const upstream = net.connect({ host: host.replace(/^\[|\]$/g, ""), port });
    this.#track(upstream);
    upstream.on("connect", () => {
      if (reply) client.write(reply);
      if (first.length > 0) upstream.write(first);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => client.end());
    client.on("close", () => upstream.destroy());
  }
}
