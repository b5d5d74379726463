/**
 * An HTTP/1.1 server on loopback that serves one file and misbehaves on request, for the
 * transfer tests. The behaviour comes from the path: `/<behaviour>[/<parameter>]/<anything>`;
 * what follows is ignored, so any file name works. Where Node's http server refuses to
 * misbehave (a body longer than its Content-Length), the bytes go to the socket raw.
 *
 *   /good/...                         Range honoured: 206 + Content-Range, 416, Accept-Ranges
 *   /ignore-range/...                 always 200 with the whole file
 *   /bad-content-range/<how>/...      206 whose Content-Range lies (BadContentRange); the body
 *                                     and Content-Length are the honest requested range
 *   /short-body/...                   Range honoured; the socket is closed after half the body
 *   /long-body/...                    Range honoured; 100 bytes more than Content-Length
 *   /reset-every/<K>/...              Range honoured; the connection is closed after K body bytes
 *   /trickle/<K>/...                  Range honoured; K body bytes, then the connection ends
 *                                     gracefully (FIN after the data: none of it is lost)
 *   /stall/...                        headers, then nothing
 *   /stall-after/<K>/...              Range honoured; headers and K body bytes, then nothing
 *   /stall-before-headers/...         the request is read, nothing is answered
 *   /forbidden-after/<J>/...          /good/ for the first J requests to this exact path, then 403
 *   /status/<code>/...                that status with a small text body
 *   /redirect/<how>/<rest>            302 to /<rest>; how: absolute (full URL), root (/<rest>),
 *                                     dot (../../<rest>, relative to the request path)
 *   /redirect-loop/...                302 to the same path
 *   /redirect-chain/<L>/<rest>        L redirects in a row, ending at /<rest>
 *   /redirect-to-http/<rest>          302 to options.httpOrigin (default: this port, http:)/<rest>
 *   /chunked/<range|no-range|cut>/... chunked encoding; Range honoured or not; cut: the socket
 *                                     closes after half the body, without the last chunk
 *
 * Range support is a single `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else is ignored (200),
 * as RFC 9110 allows. Every server and socket goes away in close().
 */
import * as http from "node:http";
import * as https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TestCa } from "./tls.ts";

export type BadContentRange = "start" | "end" | "total" | "missing" | "unparsable";

export interface HostileOptions {
  /** The file every behaviour serves. */
  body: Uint8Array;
  /** Serve https with this CA's server certificate. */
  tls?: TestCa;
  /** Which of the CA's certificates to present: "other-name" is valid only for other.invalid. */
  certificate?: "server" | "other-name";
  /** Size of each body write (default 16 KB), so misbehaviour lands mid-stream. */
  writeSize?: number;
  /** Status for the redirects (default 302). */
  redirectStatus?: number;
  /** Origin /redirect-to-http/ points at (default: http://127.0.0.1:<this port>). */
  httpOrigin?: string;
}

export interface RecordedRequest {
  method: string;
  /** The request target as sent (path and query). */
  path: string;
  /** The Range header, if any. */
  range: string | undefined;
  /** The client's port: different values mean different connections. */
  remotePort: number | undefined;
  headers: http.IncomingHttpHeaders;
}

export interface HostileServer {
  /** `http(s)://127.0.0.1:<port>` + path (which starts with "/"). */
  url(path: string): string;
  readonly origin: string;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

interface Span {
  start: number;
  end: number; // inclusive
}

type RangeAnswer = { kind: "whole" } | { kind: "span"; span: Span } | { kind: "unsatisfiable" };

/** RFC 9110 byte ranges, single range only. */
function parseRange(header: string | undefined, total: number): RangeAnswer {
  if (header === undefined) return { kind: "whole" };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null || (m[1] === "" && m[2] === "")) return { kind: "whole" };
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0 || total === 0) return { kind: "unsatisfiable" };
    return { kind: "span", span: { start: Math.max(0, total - suffix), end: total - 1 } };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? total - 1 : Math.min(Number(m[2]), total - 1);
  if (m[2] !== "" && Number(m[2]) < start) return { kind: "whole" }; // invalid: ignored
  if (start >= total) return { kind: "unsatisfiable" };
  return { kind: "span", span: { start, end } };
}

const text = (s: string) => Buffer.from(s, "utf8");

export async function startHostileServer(options: HostileOptions): Promise<HostileServer> {
  const file = options.body;
  const total = file.length;
  const writeSize = options.writeSize ?? 16 * 1024;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const prefixCounts = new Map<string, number>();
  let origin = "";

  /** Writes `bytes` in writeSize pieces, then calls `done` once the last is on the socket. */
  function writeBody(res: http.ServerResponse, bytes: Uint8Array, done: () => void): void {
    let at = 0;
    const next = (): void => {
      if (res.destroyed) return;
      if (at >= bytes.length) {
        done();
        return;
      }
      const piece = bytes.subarray(at, Math.min(bytes.length, at + writeSize));
      at += piece.length;
      // Waiting for each write's callback keeps at most one piece in flight: a socket closed
      // "after K bytes" has really sent K bytes, not queued the whole file.
      res.write(piece, (err) => {
        if (err === undefined || err === null) next();
      });
    };
    next();
  }

  function status(res: http.ServerResponse, code: number, headers: http.OutgoingHttpHeaders = {}): void {
    const body = code === 204 || code === 304 ? Buffer.alloc(0) : text(`status ${code}\n`);
    res.writeHead(code, { "Content-Type": "text/plain", "Content-Length": body.length, ...headers });
    res.end(body);
  }

  function redirect(res: http.ServerResponse, location: string): void {
    status(res, options.redirectStatus ?? 302, { Location: location });
  }

  /** Status and headers for a ranged (or not) answer; null when it was a 416. */
  function rangedHead(req: http.IncomingMessage, res: http.ServerResponse, honour: boolean, extra: http.OutgoingHttpHeaders = {}): Span | null {
    const answer: RangeAnswer = honour ? parseRange(req.headers.range, total) : { kind: "whole" };
    if (answer.kind === "unsatisfiable") {
      status(res, 416, { "Content-Range": `bytes */${total}`, "Accept-Ranges": "bytes" });
      return null;
    }
    const span = answer.kind === "span" ? answer.span : { start: 0, end: total - 1 };
    const headers: http.OutgoingHttpHeaders = { "Content-Type": "application/octet-stream", ...extra };
    if (honour) headers["Accept-Ranges"] = "bytes";
    if (!("Transfer-Encoding" in extra)) headers["Content-Length"] = span.end - span.start + 1;
    if (answer.kind === "span") headers["Content-Range"] = `bytes ${span.start}-${span.end}/${total}`;
    res.writeHead(answer.kind === "span" ? 206 : 200, headers);
    return span;
  }

  const bodyOf = (span: Span) => file.subarray(span.start, span.end + 1);

  function serveGood(req: http.IncomingMessage, res: http.ServerResponse, honour: boolean): void {
    const span = rangedHead(req, res, honour);
    if (span === null) return;
    if (req.method === "HEAD") res.end();
    else writeBody(res, bodyOf(span), () => res.end());
  }

  function handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const target = req.url ?? "/";
    requests.push({ method: req.method ?? "", path: target, range: req.headers.range, remotePort: req.socket.remotePort, headers: req.headers });
    const parts = new URL(target, "http://x").pathname.split("/").slice(1);
    const [behaviour, parameter] = parts;
    const rest = (from: number) => parts.slice(from).join("/");
    const socket = req.socket;
    const number = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : NaN);

    switch (behaviour) {
      case "good":
        return serveGood(req, res, true);
      case "ignore-range":
        return serveGood(req, res, false);
      case "bad-content-range": {
        const answer = parseRange(req.headers.range, total);
        const span = answer.kind === "span" ? answer.span : { start: 0, end: total - 1 };
        const { start, end } = span;
        const lies: Record<BadContentRange, string | undefined> = {
          start: `bytes ${start + 1}-${end}/${total}`,
          // Stays a well-formed range: one short, or one long for a single byte.
          end: `bytes ${start}-${end > start ? end - 1 : end + 1}/${total}`,
          total: `bytes ${start}-${end}/${total + 1}`,
          missing: undefined,
          unparsable: `bytes ${start}-${end} of ${total}`,
        };
        if (parameter === undefined || !Object.hasOwn(lies, parameter)) return status(res, 404);
        const headers: http.OutgoingHttpHeaders = { "Content-Type": "application/octet-stream", "Content-Length": end - start + 1, "Accept-Ranges": "bytes" };
        const lie = lies[parameter as BadContentRange];
        if (lie !== undefined) headers["Content-Range"] = lie;
        res.writeHead(206, headers);
        if (req.method === "HEAD") return void res.end();
        return writeBody(res, bodyOf(span), () => res.end());
      }
      case "short-body": {
        const span = rangedHead(req, res, true);
        if (span === null) return;
        if (req.method === "HEAD") return void res.end();
        const bytes = bodyOf(span);
        return writeBody(res, bytes.subarray(0, Math.floor(bytes.length / 2)), () => socket.destroy());
      }
      case "long-body": {
        // Node's ServerResponse throws on writing past Content-Length, so the whole answer goes
        // to the socket as raw bytes; res is never used, and the socket is ended after it.
        const answer = parseRange(req.headers.range, total);
        if (answer.kind === "unsatisfiable") return status(res, 416, { "Content-Range": `bytes */${total}` });
        const span = answer.kind === "span" ? answer.span : { start: 0, end: total - 1 };
        const bytes = bodyOf(span);
        const head =
          `HTTP/1.1 ${answer.kind === "span" ? "206 Partial Content" : "200 OK"}\r\n` +
          `Content-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\nContent-Length: ${bytes.length}\r\n` +
          (answer.kind === "span" ? `Content-Range: bytes ${span.start}-${span.end}/${total}\r\n` : "") +
          "Connection: close\r\n\r\n";
        socket.write(text(head));
        if (req.method !== "HEAD") {
          socket.write(bytes);
          socket.write(Buffer.alloc(100, 0x5a));
        }
        socket.end();
        return;
      }
      // K bytes of each response, then a reset (reset-every) or a clean close (trickle).
      case "reset-every":
      case "trickle": {
        const k = number(parameter);
        if (!(k > 0)) return status(res, 404);
        const span = rangedHead(req, res, true);
        if (span === null) return;
        if (req.method === "HEAD") return void res.end();
        const bytes = bodyOf(span);
        if (bytes.length <= k) return writeBody(res, bytes, () => res.end());
        return writeBody(res, bytes.subarray(0, k), () => (behaviour === "trickle" ? socket.end() : socket.destroy()));
      }
      case "stall":
        rangedHead(req, res, true);
        res.flushHeaders();
        return;
      case "stall-after": {
        const k = number(parameter);
        if (!(k >= 0)) return status(res, 404);
        const span = rangedHead(req, res, true);
        if (span === null) return;
        res.flushHeaders();
        if (req.method !== "HEAD") writeBody(res, bodyOf(span).subarray(0, k), () => undefined);
        return;
      }
      case "stall-before-headers":
        return;
      case "forbidden-after": {
        const j = number(parameter);
        if (!(j >= 0)) return status(res, 404);
        // Counted per whole request target, so that each test run can have its own count.
        const key = target;
        const seen = prefixCounts.get(key) ?? 0;
        prefixCounts.set(key, seen + 1);
        return seen < j ? serveGood(req, res, true) : status(res, 403);
      }
      case "status": {
        const code = number(parameter);
        if (!(code >= 200 && code <= 599)) return status(res, 404);
        return status(res, code);
      }
      case "redirect": {
        const to = rest(2);
        if (parameter === "absolute") return redirect(res, `${origin}/${to}`);
        if (parameter === "root") return redirect(res, `/${to}`);
        // From /redirect/dot/a/b the directory is three levels down: ../../../a/b is /a/b.
        if (parameter === "dot") return redirect(res, `${"../".repeat(parts.length - 1)}${to}`);
        return status(res, 404);
      }
      case "redirect-loop":
        return redirect(res, target);
      case "redirect-chain": {
        const l = number(parameter);
        if (!(l >= 1)) return status(res, 404);
        return redirect(res, l > 1 ? `/redirect-chain/${l - 1}/${rest(2)}` : `/${rest(2)}`);
      }
      case "redirect-to-http":
        return redirect(res, `${options.httpOrigin ?? origin.replace(/^https:/, "http:")}/${rest(1)}`);
      case "chunked": {
        if (parameter !== "range" && parameter !== "no-range" && parameter !== "cut") return status(res, 404);
        const span = rangedHead(req, res, parameter === "range", { "Transfer-Encoding": "chunked" });
        if (span === null) return;
        if (req.method === "HEAD") return void res.end();
        const bytes = bodyOf(span);
        if (parameter === "cut") return writeBody(res, bytes.subarray(0, Math.floor(bytes.length / 2)), () => socket.destroy());
        return writeBody(res, bytes, () => res.end());
      }
      default:
        return status(res, 404);
    }
  }

  const server: http.Server = options.tls === undefined
    ? http.createServer(handle)
    : https.createServer(
        options.certificate === "other-name"
          ? { key: options.tls.otherName.key, cert: options.tls.otherName.cert }
          : { key: options.tls.server.key, cert: options.tls.server.cert },
        handle,
      );
  // Raw TCP sockets, for https too: destroying them is the sure way to end stalled answers.
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    // A client that resets mid-answer is a normal event here, not a test failure.
    socket.on("error", () => undefined);
  });
  // TLS handshakes that fail (the tests' untrusted clients) are expected too.
  server.on("tlsClientError", () => undefined);
  server.on("clientError", (_err: Error, socket: Socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${port}`;

  return {
    origin,
    requests,
    url: (path: string) => `${origin}${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}
