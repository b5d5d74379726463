/**
 * The desktop Http host: node:http and node:https behind the Http port (modules/ports/http.ts).
 *
 * Each request gets its own connection (`agent: false` makes a throwaway Agent, so Node 20's
 * keep-alive global agent never pools sockets), no proxy (Node reads no proxy variables), and
 * https trusts exactly the PEM in `ca`. The body is pulled: the response stream pauses once two
 * chunks wait for the consumer, so a slow consumer (flash writes) holds back the server through
 * TCP instead of the body piling up in memory.
 */
import * as http from "node:http";
import * as https from "node:https";
import type { Socket } from "node:net";
import { OtaError } from "../../modules/errors.ts";
import type { Http, HttpRequest, HttpResponse } from "../../modules/ports/http.ts";

/** Chunks held for the consumer before the response is paused (backpressure). */
const QUEUE_CHUNKS = 2;

/** The contract's "host's buffer size": larger socket reads are handed out in pieces. */
const MAX_CHUNK = 64 * 1024;
/** setTimeout's limit; a longer "idle" time would silently fire at once. */
const MAX_TIMEOUT = 0x7fffffff;

export class NodeHttp implements Http {
  request(request: HttpRequest): Promise<HttpResponse> {
    let prepared: Prepared;
    try {
      prepared = prepare(request);
    } catch (e) {
      return Promise.reject(e);
    }
    return send(request, prepared);
  }
}

interface Prepared {
  options: https.RequestOptions;
  secure: boolean;
  /** For messages: method, origin and path, without the query, where presigned URLs keep
   * their credentials (messages end up in logs and job status reports). */
  label: string;
}

function prepare(request: HttpRequest): Prepared {
  if (request.method !== "GET" && request.method !== "HEAD" && request.method !== "POST") {
    throw new OtaError("bad-argument", `HTTP method ${String(request.method)} is not GET, HEAD or POST`);
  }
  if (request.body !== undefined && (request.method !== "POST" || !(request.body instanceof Uint8Array))) {
    throw new OtaError("bad-argument", `a request body goes with POST only, as a Uint8Array`);
  }
  const { timeout } = request;
  if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0 && timeout <= MAX_TIMEOUT)) {
    throw new OtaError("bad-argument", `timeout ${timeout} is not a whole number of milliseconds in 1..${MAX_TIMEOUT}`);
  }
  let url: URL;
  try {
    url = new URL(request.url);
  } catch {
    throw new OtaError("bad-argument", `not an absolute URL: ${JSON.stringify(request.url)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OtaError("bad-argument", `URL scheme ${url.protocol} is not http: or https:`);
  }
  // Node would turn user:password@ into Basic auth; the device client has no such thing, and a
  // URL that only works here would be a trap.
  if (url.username !== "" || url.password !== "") {
    throw new OtaError("bad-argument", "credentials in a URL are not supported");
  }
  const secure = url.protocol === "https:";
  const options: https.RequestOptions = {
    method: request.method,
    // URL keeps IPv6 literals bracketed; the socket layer wants them bare.
    hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
    path: `${url.pathname}${url.search}`,
    headers: request.method === "POST" ? { ...request.headers, "content-length": String(request.body?.length ?? 0) } : { ...request.headers },
    agent: false,
  };
  // Given a `ca` array, Node's secure context adds those and skips its built-in Mozilla roots
  // (an empty array adds none); rejectUnauthorized and the host-name check stay at their
  // defaults (on). No `ca` at all therefore trusts nothing, as the contract says.
  if (secure) options.ca = request.ca === undefined ? [] : [request.ca];
  return { options, secure, label: `${request.method} ${url.origin}${url.pathname}` };
}

function describeError(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

function send(request: HttpRequest, { options, secure, label }: Prepared): Promise<HttpResponse> {
  return new Promise((resolve, reject) => {
    let req: http.ClientRequest;
    try {
      req = secure ? https.request(options) : http.request(options);
    } catch (e) {
      // Node checks header names and values synchronously (ERR_INVALID_CHAR and friends).
      reject(new OtaError("bad-argument", `request refused by node:http: ${describeError(e)}`));
      return;
    }
    let settled = false;
    const fail = (error: OtaError) => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(error);
    };
    // Stays attached for the request's life: after the headers the response handles failures,
    // and an 'error' without a listener would crash the process.
    req.on("error", (e) => fail(new OtaError("network", `${label}: ${describeError(e)}`)));

    const { timeout } = request;
    let socket: Socket | undefined;
    const idle = () =>
      fail(new OtaError("timeout", `${label}: nothing for ${timeout} ms before the response headers`));
    if (timeout !== undefined) {
      // The socket's own idle timer runs from creation (connecting included) and is refreshed by
      // every read and write on it, which is "no byte for `timeout` ms" up to the headers.
      req.on("socket", (s: Socket) => {
        socket = s;
        s.setTimeout(timeout);
        s.on("timeout", idle);
      });
    }
    req.on("response", (res: http.IncomingMessage) => {
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      // From here the response's own timer applies, and only while a read() waits.
      if (socket !== undefined) {
        socket.setTimeout(0);
        socket.off("timeout", idle);
      }
      resolve(new NodeResponse(req, res, request.timeout, label));
    });
    req.end(request.body === undefined ? undefined : Buffer.from(request.body.buffer, request.body.byteOffset, request.body.length));
  });
}

interface Waiter {
  resolve(chunk: Uint8Array | undefined): void;
  reject(error: OtaError): void;
}

export class NodeResponse implements HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly #req: http.ClientRequest;
  readonly #res: http.IncomingMessage;
  readonly #timeout: number | undefined;
  readonly #label: string;
  /** Announced body length, when there is one (Content-Length, not chunked). */
  readonly #expected: number | undefined;
  readonly #chunked: boolean;
  /** At most one socket read's worth: the stream is paused again after every 'data'. */
  #queue: Uint8Array[] = [];
  #received = 0;
  #ended = false;
  #closed = false;
  #failure: OtaError | undefined;
  #waiter: Waiter | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(req: http.ClientRequest, res: http.IncomingMessage, timeout: number | undefined, label: string) {
    this.#req = req;
    this.#res = res;
    this.#timeout = timeout;
    this.#label = label;
    this.status = res.statusCode ?? 0;
    this.headers = joinHeaders(res.rawHeaders);
    const te = this.headers["transfer-encoding"];
    this.#chunked = te !== undefined && /(^|,)\s*chunked\s*$/i.test(te);
    const length = this.headers["content-length"];
    this.#expected = !this.#chunked && length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined;

    // Paused before the 'data' listener goes on, so attaching it does not start the flow.
    res.pause();
    res.on("data", (chunk: Buffer) => this.#onData(chunk));
    res.on("end", () => this.#onEnd());
    // And flowing into the queue at once (it pauses itself at QUEUE_CHUNKS): a first read that
    // comes late (over the simulator's bridge, say) must still get what arrived before a drop.
    res.resume();
    res.on("error", (e) => this.#drop(e));
    // Node 20 destroys an incomplete response with "aborted" (ECONNRESET) when the socket closes
    // early; 'close' without 'end' catches any path that does not emit 'error'.
    res.on("close", () => {
      if (!this.#ended) this.#drop(undefined);
    });
    req.on("error", (e) => {
      // After a complete body, a socket or parser error concerns bytes beyond the message (a
      // server writing past its Content-Length): the body itself is whole.
      if (!res.complete) this.#drop(e);
    });
  }

  /**
   * The body bytes already here, joined up to the host's buffer size, or undefined when none
   * are (then read() waits). Lets a caller that cannot wait on a promise (the simulator's
   * bridge, answering XS at once) take what a device's driver would have in its buffers.
   */
  takeQueued(): Uint8Array | undefined {
    if (this.#closed || this.#queue.length === 0) return undefined;
    const parts: Uint8Array[] = [];
    let length = 0;
    while (this.#queue.length > 0 && length + (this.#queue[0]?.length ?? 0) <= MAX_CHUNK) {
      const part = this.#queue.shift() as Uint8Array;
      parts.push(part);
      length += part.length;
    }
    if (parts.length === 0) parts.push(this.#queue.shift() as Uint8Array);
    if (this.#queue.length < QUEUE_CHUNKS && !this.#ended && this.#failure === undefined) this.#res.resume();
    if (parts.length === 1) return parts[0];
    const out = new Uint8Array(length);
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  read(): Promise<Uint8Array | undefined> {
    if (this.#closed) return Promise.resolve(undefined);
    const chunk = this.#queue.shift();
    if (chunk !== undefined) {
      if (this.#queue.length < QUEUE_CHUNKS && !this.#ended && this.#failure === undefined) this.#res.resume();
      return Promise.resolve(chunk);
    }
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#ended) return Promise.resolve(undefined);
    if (this.#waiter !== undefined) return Promise.reject(new OtaError("bad-argument", "read() while another read() waits"));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
      const timeout = this.#timeout;
      if (timeout !== undefined) this.#timer = setTimeout(() => this.#expire(timeout), timeout);
      this.#res.resume();
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
    this.#settle()?.resolve(undefined);
    this.#res.destroy();
    this.#req.destroy();
  }

  /** Takes the waiting read, if any, and stops its timer. */
  #settle(): Waiter | undefined {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    return waiter;
  }

  #onData(chunk: Buffer): void {
    if (this.#closed || this.#failure !== undefined) return;
    this.#received += chunk.length;
    // A view, not a copy: the HTTP parser hands each body chunk over in memory of its own (not
    // Buffer's shared pool, and never written again), so the bytes cannot change under the
    // consumer. A plain Uint8Array keeps Buffer's different slice() semantics out of the agent.
    for (let at = 0; at < chunk.length; at += MAX_CHUNK) {
      const end = Math.min(chunk.length, at + MAX_CHUNK);
      this.#queue.push(new Uint8Array(chunk.buffer, chunk.byteOffset + at, end - at));
    }
    if (this.#queue.length > 0) {
      const waiter = this.#settle();
      if (waiter !== undefined) waiter.resolve(this.#queue.shift());
    }
    // Flow into our own queue and pause only when it holds two chunks: bytes left in Node's
    // buffer of a paused response are thrown away if the connection then drops, while bytes in
    // the queue still reach the consumer, who can resume after them.
    if (this.#queue.length >= QUEUE_CHUNKS) this.#res.pause();
  }

  #onEnd(): void {
    this.#ended = true;
    if (this.#queue.length === 0) this.#settle()?.resolve(undefined);
  }

  /** The connection went away before the end the server announced. */
  #drop(cause: unknown): void {
    if (this.#closed || this.#ended || this.#failure !== undefined) return;
    const got = this.#received;
    const what =
      this.#expected !== undefined
        ? `connection closed after ${got} of ${this.#expected} bytes`
        : this.#chunked
          ? `connection closed after ${got} bytes, before the last chunk`
          : `connection closed after ${got} bytes`;
    const why = cause === undefined ? "" : ` (${describeError(cause)})`;
    this.#fail(new OtaError("network", `${this.#label}: ${what}${why}`));
  }

  #expire(timeout: number): void {
    this.#timer = undefined;
    this.#fail(new OtaError("timeout", `${this.#label}: nothing for ${timeout} ms after ${this.#received} body bytes`));
  }

  #fail(error: OtaError): void {
    this.#failure = error;
    // Bytes already queued are still handed out before the failure: they arrived intact, and a
    // resuming consumer gets further for them.
    if (this.#queue.length === 0) this.#settle()?.reject(error);
    else clearTimeout(this.#timer);
    this.#res.destroy();
    this.#req.destroy();
  }
}

/** Lower-case names; repeats joined with ", " (rawHeaders keeps repeats Node would drop). */
function joinHeaders(raw: string[]): Record<string, string> {
  const headers = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    const value = raw[i + 1];
    const seen = headers.get(name);
    headers.set(name, seen === undefined ? value : `${seen}, ${value}`);
  }
  // fromEntries defines own properties, so even a "__proto__" header is only data.
  return Object.fromEntries(headers);
}
