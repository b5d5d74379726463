/**
 * Stand-in for Moddable's ECMA-419 HTTP client ("embedded:network/http/client",
 * examples/io/tcp/httpclient): same constructor options and request callbacks (`onHeaders`
 * with a Map of lower-case names, `onReadable(count)` then `read(count)`, `onDone(error|null)`,
 * client `onError`). The request is made by the runner with Node's http/https; for https the CA
 * the socket was given (DER, as Moddable's TLS takes it) goes back to PEM for Node, so a wrong
 * conversion fails the handshake here as it would on the device. The next body chunk is fetched
 * only once the last one was read, as a TCP window would hold the sender.
 */
import { call, onEvent } from "../../../hosts/sim/xs/bridge.ts";
import type { OtaErrorCode } from "../../../modules/errors.ts";
import { encodeBase64 } from "../../../modules/codec/base64.ts";
import Timer from "./timer.ts";
import { TLSSocket, checkSecure, type SecureDictionary } from "./sockets.ts";

interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Map<string, string | string[]>;
  onHeaders?: (this: Request, status: number, headers: Map<string, string>) => void;
  onReadable?: (this: Request, count: number) => void;
  onDone?: (this: Request, error: Error | null) => void;
  /** Asked for the request body (its length is the content-length header) once the headers are out. */
  onWritable?: (this: Request, count: number) => void;
}

interface ClientOptions {
  host: string;
  port?: number;
  dns: object;
  socket: { io?: unknown; secure?: SecureDictionary };
  onError?: (error?: unknown) => void;
}

class Request {
  readonly options: RequestOptions;
  readonly #client: HTTPClient;
  buffer: Uint8Array = new Uint8Array(0);
  /** What the app wrote of the request body, and how much it may write. */
  sent: Uint8Array[] = [];
  writable = 0;

  constructor(client: HTTPClient, options: RequestOptions) {
    this.#client = client;
    this.options = options;
  }

  read(count: number = this.buffer.length): ArrayBuffer | undefined {
    if (!this.buffer.length) return undefined;
    const n = Math.min(count, this.buffer.length);
    const out = this.buffer.slice(0, n);
    this.buffer = this.buffer.subarray(n);
    if (!this.buffer.length) this.#client.drained(this);
    return out.buffer;
  }

  /** As Moddable's client: only the body the content-length header announced, at most `writable` at a time. */
  write(data: ArrayBuffer | ArrayBufferView): number {
    const bytes = ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
    if (bytes.length > this.writable) throw new Error("would block");
    this.sent.push(bytes.slice());
    this.writable -= bytes.length;
    return this.writable;
  }
}

/** Body chunks the runner reads come back as "http.data" events, as data becomes readable. */
const arrivals = new Map<number, (chunk: { end?: boolean; error?: { code: OtaErrorCode; message: string }; bytes: Uint8Array }) => void>();
onEvent("http.data", (event, bytes) => {
  const id = event.id as number;
  const arrived = arrivals.get(id);
  arrivals.delete(id);
  arrived?.({ end: event.end === true, error: event.error as { code: OtaErrorCode; message: string } | undefined, bytes });
});

function pem(der: Uint8Array): string {
  const b64 = encodeBase64(der);
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}

export default class HTTPClient {
  readonly #o: ClientOptions;
  readonly #requests: Request[] = [];
  readonly #scheme: "http" | "https";
  readonly #ca: string | undefined;
  #current: { request: Request; id: number } | undefined;
  #closed = false;

  constructor(options: ClientOptions) {
    if (!options?.host) throw new Error("host required");
    if (typeof options.dns !== "object" || typeof options.socket?.io !== "function") throw new Error("dns and socket providers required");
    this.#o = options;
    this.#scheme = options.socket.io === TLSSocket ? "https" : "http";
    const ca = this.#scheme === "https" ? checkSecure(options.socket.secure) : undefined;
    this.#ca = ca && pem(ca);
  }

  request(options: RequestOptions): Request {
    const request = new Request(this, { ...options });
    this.#requests.push(request);
    if (this.#requests.length === 1 && !this.#current) Timer.set(() => this.#next());
    return request;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const current = this.#current;
    this.#current = undefined;
    this.#requests.length = 0;
    if (current) {
      arrivals.delete(current.id);
      call("http.close", { id: current.id });
    }
  }

  /** The request's buffer is empty: fetch the next chunk. */
  drained(request: Request): void {
    if (this.#current?.request === request) Timer.set(() => this.#step(request));
  }

  #next(): void {
    const request = this.#requests.shift();
    if (!request || this.#closed) return;
    const o = request.options;
    const port = this.#o.port ?? (this.#scheme === "https" ? 443 : 80);
    const headers: Record<string, string> = {};
    o.headers?.forEach((value, name) => (headers[name] = Array.isArray(value) ? value.join(", ") : value));
    const length = Number(headers["content-length"] ?? 0);
    let body: Uint8Array | undefined;
    if (length > 0) {
      // Moddable's client asks with onWritable until the announced body is out; a short one hangs there.
      request.writable = length;
      for (let asks = 0; request.writable > 0 && asks < 64; asks++) o.onWritable?.call(request, Math.min(request.writable, 1460));
      if (request.writable > 0) return this.#error(request, new Error(`request body: ${request.writable} of ${length} bytes never written`));
      body = new Uint8Array(length);
      let at = 0;
      for (const part of request.sent) {
        body.set(part, at);
        at += part.length;
      }
    }
    let reply;
    try {
      const head = { method: o.method ?? "GET", url: `${this.#scheme}://${this.#o.host}:${port}${o.path || "/"}`, headers, ca: this.#ca };
      reply = body === undefined ? call("http.request", { request: head }) : call("http.request", { request: head, body: true }, body);
    } catch (e) {
      return this.#error(request, e);
    }
    this.#current = { request, id: reply.json.id as number };
    const received = new Map(Object.entries(reply.json.headers as Record<string, string>));
    o.onHeaders?.call(request, reply.json.status as number, received);
    if (this.#current?.request === request) this.#step(request);
  }

  #step(request: Request): void {
    const current = this.#current;
    if (!current || current.request !== request || this.#closed || request.buffer.length) return;
    let reply;
    try {
      reply = call("http.read", { id: current.id });
    } catch (e) {
      return this.#error(request, e);
    }
    if (reply.json.pending) arrivals.set(current.id, (chunk) => this.#arrived(request, chunk));
    else this.#arrived(request, { end: reply.json.end === true, bytes: reply.bytes });
  }

  #arrived(request: Request, chunk: { end?: boolean; error?: { message: string }; bytes: Uint8Array }): void {
    if (this.#current?.request !== request || this.#closed) return;
    if (chunk.error) return this.#error(request, new Error(chunk.error.message));
    if (chunk.end) {
      this.#current = undefined;
      request.options.onDone?.call(request, null);
      if (this.#requests.length) Timer.set(() => this.#next());
      return;
    }
    request.buffer = chunk.bytes.slice();
    request.options.onReadable?.call(request, request.buffer.length);
  }

  #error(request: Request, e: unknown): void {
    this.#current = undefined;
    try {
      request.options.onDone?.call(request, new Error());
      for (const r of this.#requests.splice(0)) r.options.onDone?.call(r, new Error());
      this.#o.onError?.(e);
    } finally {
      this.close();
    }
  }
}
