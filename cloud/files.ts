/**
 * A presigned-URL file server for the desktop cloud (Node only): a small stand-in for S3 GET with
 * presigned URLs, which is what an AWS OTA job's `update_data_url` points at.
 *
 * - `presign(name, { expiresIn })` gives `<origin>/<name>?expires=<unix seconds>&signature=<hex>`
 *   (the origin has no port when the server listens on 443 for HTTPS, 80 for HTTP: S3's presigned
 *   URLs never carry one, and some device URL parsers, AWS's demos among them, assume 443),
 *   the signature being HMAC-SHA256, keyed with this service's secret (random per service unless
 *   given), over "GET\n/<name>\n<expires>". A URL is valid until `expires` (inclusive); it serves
 *   GET and HEAD alike (S3 signs HEAD separately; here one URL does both).
 * - Answers, S3-like: 200 with the whole file, or 206 with Content-Range for `Range: bytes=a-b`,
 *   `bytes=a-` and `bytes=-n` (suffix); always `Accept-Ranges: bytes`, Content-Length, ETag (quoted
 *   MD5 hex), Last-Modified. Errors have S3's XML body
 *   `<Error><Code>..</Code><Message>..</Message></Error>` (application/xml):
 *     403 AccessDenied "Request has expired" (checked first, as S3 does),
 *     403 SignatureDoesNotMatch (a missing or wrong signature, or a non-numeric expiry),
 *     404 NoSuchKey (a well signed URL for a file that is not, or no longer, there),
 *     416 InvalidRange (a range starting at or past the end; Content-Range: bytes * /size),
 *     405 MethodNotAllowed (anything but GET and HEAD).
 *   Choices: a Range header that is not one `bytes=` range (several ranges, garbage) is ignored
 *   and the whole file is served, as S3 does; `bytes=a-b` with b past the end is cut to the end.
 * - Counters: requests (all), per status, bytes of bodies served.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { basename } from "node:path";

export interface FileServiceOptions {
  /** The HMAC key; default 32 random bytes per service. */
  secret?: string | Uint8Array;
  /** Clock in seconds since the epoch; default the wall clock. */
  now?: () => number;
}

export interface FileServiceStartOptions {
  /** Default: a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** PEM key and certificate: serve HTTPS (e.g. from cloud/tls.ts makeLocalCa). */
  tls?: { key: string; cert: string };
}

export interface PresignOptions {
  /** Seconds from now; may be 0 or negative (an already expired URL, for tests). */
  expiresIn: number;
  /** Force the scheme (it must match how the server was started); default what it runs. */
  https?: boolean;
  /** Host name in the URL (e.g. "localhost"); default the listening address. */
  host?: string;
  /**
   * The whole origin in the URL instead (e.g. https://127.0.0.1:9443, a proxy in front of this
   * server, as a CDN is in front of S3); the signature covers the path and expiry, not the origin.
   */
  origin?: string;
}

export interface FileCounters {
  requests: number;
  bytesServed: number;
  byStatus: Record<number, number>;
}

interface StoredFile {
  bytes: Uint8Array;
  etag: string;
  lastModified: string;
}

const NAME = /^[A-Za-z0-9._~-][A-Za-z0-9._~/-]{0,1023}$/;

function emptyCounters(): FileCounters {
  return { requests: 0, bytesServed: 0, byStatus: {} };
}

export class FileService {
  readonly #secret: Buffer;
  readonly #now: () => number;
  readonly #files = new Map<string, StoredFile>();
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #https = false;
  #host = "127.0.0.1";
  #port = 0;
  #counters = emptyCounters();

  constructor(options: FileServiceOptions = {}) {
    this.#secret = options.secret === undefined ? randomBytes(32) : Buffer.from(options.secret);
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  /** Starts listening; resolves with the origin, e.g. https://127.0.0.1:8443. */
  async start(options: FileServiceStartOptions = {}): Promise<string> {
    if (this.#server) throw new Error("FileService already started");
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#handle(req, res);
    const server = options.tls ? createHttpsServer({ key: options.tls.key, cert: options.tls.cert }, handler) : createHttpServer(handler);
    server.on(options.tls ? "secureConnection" : "connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    // Bad TLS handshakes and broken sockets are the client's problem, never the service's.
    server.on("tlsClientError", () => undefined);
    server.on("clientError", (_e: Error, socket: Socket) => socket.destroy());
    this.#host = options.host ?? "127.0.0.1";
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, this.#host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.#server = server;
    this.#https = options.tls !== undefined;
    this.#port = (server.address() as AddressInfo).port;
    return this.origin;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  /** e.g. https://127.0.0.1:8443; on the scheme's own port (443, 80) without it, as S3's URLs are. */
  get origin(): string {
    if (!this.#server) throw new Error("FileService not started");
    return this.#originFor(this.#host.includes(":") ? `[${this.#host}]` : this.#host);
  }

  #originFor(host: string): string {
    const scheme = this.#https ? "https" : "http";
    return this.#port === (this.#https ? 443 : 80) ? `${scheme}://${host}` : `${scheme}://${host}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** Adds (or replaces) file `name` ("fw/app-1.0.1.bin"; no leading slash) with these bytes. */
  addFile(name: string, bytes: Uint8Array): void {
    if (!NAME.test(name) || name.split("/").some((part) => part === "" || part === "." || part === "..")) {
      throw new Error(`file name ${JSON.stringify(name)}: [A-Za-z0-9._~-] segments separated by /`);
    }
    const copy = new Uint8Array(bytes);
    this.#files.set(name, {
      bytes: copy,
      etag: `"${createHash("md5").update(copy).digest("hex")}"`,
      lastModified: new Date(this.#now() * 1000).toUTCString(),
    });
  }

  /** Adds the file at `path` under `name` (default its base name). Returns the name. */
  addFileFromPath(path: string, name: string = basename(path)): string {
    this.addFile(name, new Uint8Array(readFileSync(path)));
    return name;
  }

  removeFile(name: string): boolean {
    return this.#files.delete(name);
  }

  /** A presigned URL for `name`, valid for `expiresIn` seconds from now. The file need not exist yet. */
  presign(name: string, options: PresignOptions): string {
    if (!Number.isFinite(options.expiresIn)) throw new Error("expiresIn must be a number of seconds");
    if (options.https !== undefined && options.https !== this.#https) {
      throw new Error(`the file service speaks ${this.#https ? "https" : "http"}, not ${options.https ? "https" : "http"}`);
    }
    const expires = this.#now() + Math.trunc(options.expiresIn);
    const path = `/${name.split("/").map(encodeURIComponent).join("/")}`;
    const signature = this.#sign(path, String(expires));
    const origin = options.origin ?? (options.host === undefined ? this.origin : this.#originFor(options.host));
    return `${origin}${path}?expires=${expires}&signature=${signature}`;
  }

  get counters(): FileCounters {
    return { ...this.#counters, byStatus: { ...this.#counters.byStatus } };
  }

  resetCounters(): void {
    this.#counters = emptyCounters();
  }

  #sign(path: string, expires: string): string {
    return createHmac("sha256", this.#secret).update(`GET\n${path}\n${expires}`).digest("hex");
  }

  #signatureOk(path: string, expires: string, signature: string): boolean {
    if (!/^[0-9a-f]{64}$/.test(signature)) return false;
    return timingSafeEqual(Buffer.from(this.#sign(path, expires), "hex"), Buffer.from(signature, "hex"));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    try {
      this.#serve(req, res);
    } catch {
      if (!res.headersSent) this.#error(req, res, 500, "InternalError", "We encountered an internal error. Please try again.");
      else res.destroy();
    }
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    this.#counters.requests++;
    const method = req.method ?? "GET";
    if (method !== "GET" && method !== "HEAD") {
      return this.#error(req, res, 405, "MethodNotAllowed", "The specified method is not allowed against this resource.", { allow: "GET, HEAD" });
    }
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname;
    const expires = url.searchParams.get("expires");
    const signature = url.searchParams.get("signature") ?? "";
    if (expires === null || !/^-?\d{1,15}$/.test(expires) || !this.#signatureOk(path, expires, signature)) {
      // S3 checks expiry before the signature; an unreadable expiry cannot be checked, so it is a bad signature.
      if (expires !== null && /^-?\d{1,15}$/.test(expires) && Number(expires) < this.#now()) {
        return this.#error(req, res, 403, "AccessDenied", "Request has expired");
      }
      return this.#error(req, res, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.");
    }
    if (Number(expires) < this.#now()) return this.#error(req, res, 403, "AccessDenied", "Request has expired");
    let name: string;
    try {
      name = decodeURIComponent(path.slice(1));
    } catch {
      return this.#error(req, res, 404, "NoSuchKey", "The specified key does not exist.");
    }
    const file = this.#files.get(name);
    if (!file) return this.#error(req, res, 404, "NoSuchKey", "The specified key does not exist.");

    const size = file.bytes.length;
    const headers: Record<string, string | number> = {
      "accept-ranges": "bytes",
      "content-type": "application/octet-stream",
      etag: file.etag,
      "last-modified": file.lastModified,
    };
    const range = parseRange(req.headers.range, size);
    if (range === "unsatisfiable") {
      return this.#error(req, res, 416, "InvalidRange", "The requested range is not satisfiable", { ...headers, "content-range": `bytes */${size}` });
    }
    const [start, end] = range ?? [0, size - 1];
    const body = file.bytes.subarray(start, end + 1);
    headers["content-length"] = body.length;
    if (range) headers["content-range"] = `bytes ${start}-${end}/${size}`;
    const status = range ? 206 : 200;
    this.#count(status);
    res.writeHead(status, headers);
    if (method === "HEAD") return void res.end();
    res.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength), () => {
      this.#counters.bytesServed += body.length;
    });
  }

  #count(status: number): void {
    this.#counters.byStatus[status] = (this.#counters.byStatus[status] ?? 0) + 1;
  }

  #error(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string, extra: Record<string, string | number> = {}): void {
    this.#count(status);
    const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${randomBytes(8).toString("hex").toUpperCase()}</RequestId></Error>`;
    res.writeHead(status, { ...extra, "content-type": "application/xml", "content-length": Buffer.byteLength(body) });
    res.end(req.method === "HEAD" ? undefined : body);
  }
}

/**
 * The one range of a `bytes=` header: [start, end] inclusive, "unsatisfiable", or undefined
 * (no header, or one this server ignores and answers with the whole file).
 */
export function parseRange(header: string | undefined, size: number): [number, number] | "unsatisfiable" | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header);
  if (!m) return undefined;
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return undefined;
  if (a === "") {
    // Suffix: the last n bytes.
    const n = Number(b);
    if (n === 0) return "unsatisfiable";
    return size === 0 ? "unsatisfiable" : [Math.max(0, size - n), size - 1];
  }
  const start = Number(a);
  const end = b === "" ? size - 1 : Number(b);
  if (b !== "" && end < start) return undefined; // invalid syntax: ignored (RFC 9110)
  if (start >= size) return "unsatisfiable";
  return [start, Math.min(end, size - 1)];
}
