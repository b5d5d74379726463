/**
 * The Http port over Moddable's ECMA-419 HTTP client (`embedded:network/http/client`,
 * examples/io/tcp/httpclient in the Moddable SDK), made from the app's network providers the
 * ECMA-419 way: `new provider.io({...provider, host, port})`. For https the provider's socket is
 * Moddable's TLS socket and gets the `secure` settings (the job's CA, TLS 1.2) from tls.ts.
 *
 * One client, so one connection, per request, as the port asks. The client reports the body in
 * `onReadable(count)` callbacks; each is read at once into a queue that `read()` drains, so a
 * callback never waits for the agent. The queue holds what the socket delivered since the last
 * `read()`: the agent writes each chunk to flash synchronously before it asks for the next.
 */
import type HTTPClient from "embedded:network/http/client";
import type { Http, HttpRequest, HttpResponse } from "xs-ota/ports/http";
import { OtaError } from "xs-ota/errors";
import { parseHttpUrl } from "xs-ota/transfer/url";
import type { Clock } from "xs-ota/ports/clock";
import { secureOptions, type SecureOptions } from "./tls.ts";

/** An ECMA-419 network provider (e.g. `device.network.https`): the client class and what it needs. */
export interface HttpProvider {
  io: typeof HTTPClient;
  dns: object;
  socket: object;
}

export interface HttpProviders {
  http?: HttpProvider;
  https?: HttpProvider;
}

export class Esp32Http implements Http {
  readonly #providers: HttpProviders;
  readonly #clock: Clock;
  readonly #secure = new Map<string, SecureOptions>();

  constructor(providers: HttpProviders, clock: Clock) {
    this.#providers = providers;
    this.#clock = clock;
  }

  request(request: HttpRequest): Promise<HttpResponse> {
    const url = parseHttpUrl(request.url);
    const provider = url.scheme === "https" ? this.#providers.https : this.#providers.http;
    if (!provider) return Promise.reject(new OtaError("bad-argument", `this device has no ${url.scheme} network provider`));
    const socket = url.scheme === "https" ? { ...provider.socket, secure: this.#secureFor(request.ca) } : provider.socket;
    return new Promise((resolve, reject) => {
      new Exchange(this.#clock, request, (respond) => {
        const client = new provider.io({ ...provider, host: url.host, port: url.port, socket, onError: () => respond.fail("connection failed") });
        const headers = new Map<string, string>(Object.entries(request.headers ?? {}));
        const body = request.method === "POST" ? (request.body ?? new Uint8Array(0)) : undefined;
        if (body) headers.set("content-length", String(body.length));
        let sent = 0;
        const http = client.request({
          method: request.method,
          path: url.path,
          headers,
          // Moddable's client asks for the body once the headers are out, as much as fits each time.
          onWritable: body
            ? (count: number) => {
                const n = Math.min(count, body.length - sent);
                if (n > 0) http.write(body.subarray(sent, sent + n));
                sent += n;
              }
            : undefined,
          onHeaders: (status, received) => respond.headers(status, received),
          onReadable: (count) => {
            const chunk = http.read(count);
            if (chunk) respond.body(new Uint8Array(chunk));
          },
          onDone: (error) => (error ? respond.fail("connection dropped") : respond.end()),
        });
        return client;
      }, resolve, reject);
    });
  }

  #secureFor(ca: string | undefined): SecureOptions {
    const key = ca ?? "";
    let found = this.#secure.get(key);
    if (!found) {
      found = secureOptions(ca === undefined ? {} : { ca });
      this.#secure.set(key, found);
    }
    return found;
  }
}

/** The client's header Map (names already lower case). */
interface ReceivedHeaders {
  forEach(each: (value: string, name: unknown) => void): void;
}

interface Responder {
  headers(status: number, headers: ReceivedHeaders): void;
  body(chunk: Uint8Array): void;
  end(): void;
  fail(why: string): void;
}

/** One request's life: connection, headers, body queue, timeout, close. */
class Exchange implements Responder {
  readonly #clock: Clock;
  readonly #request: HttpRequest;
  readonly #resolve: (r: HttpResponse) => void;
  readonly #reject: (e: Error) => void;
  readonly #client: { close(): void };
  readonly #queue: Uint8Array[] = [];
  #waiting: { resolve: (c: Uint8Array | undefined) => void; reject: (e: Error) => void } | undefined;
  #state: "connecting" | "body" | "ended" | "failed" | "closed" = "connecting";
  #failure: OtaError | undefined;
  #timer: number | undefined;

  constructor(clock: Clock, request: HttpRequest, open: (r: Responder) => { close(): void }, resolve: (r: HttpResponse) => void, reject: (e: Error) => void) {
    this.#clock = clock;
    this.#request = request;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#arm();
    try {
      this.#client = open(this);
    } catch (e) {
      this.#client = { close() {} };
      this.fail(e instanceof Error ? e.message : String(e));
    }
  }

  headers(status: number, received: ReceivedHeaders): void {
    if (this.#state !== "connecting") return;
    this.#state = "body";
    this.#arm();
    const headers: Record<string, string> = {};
    received.forEach((value, name) => (headers[String(name).toLowerCase()] = value));
    this.#resolve({ status, headers, read: () => this.#read(), close: () => this.#close() });
    // A HEAD response has no body, but the client would wait for Content-Length bytes.
    if (this.#request.method === "HEAD") this.end();
  }

  body(chunk: Uint8Array): void {
    if (this.#state !== "body" || !chunk.length) return;
    this.#arm();
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = undefined;
      w.resolve(chunk);
    } else this.#queue.push(chunk);
  }

  end(): void {
    if (this.#state !== "body") return;
    this.#state = "ended";
    this.#disarm();
    this.#client.close();
    this.#settleWaiting();
  }

  fail(why: string): void {
    this.#failWith(new OtaError("network", `${this.#request.url}: ${why}`));
  }

  #failWith(error: OtaError): void {
    if (this.#state === "ended" || this.#state === "failed" || this.#state === "closed") return;
    const connecting = this.#state === "connecting";
    this.#state = "failed";
    this.#failure = error;
    this.#disarm();
    this.#client?.close();
    if (connecting) this.#reject(error);
    else this.#settleWaiting();
  }

  #read(): Promise<Uint8Array | undefined> {
    const next = this.#queue.shift();
    if (next) return Promise.resolve(next);
    if (this.#state === "failed") return Promise.reject(this.#failure);
    if (this.#state !== "body") return Promise.resolve(undefined);
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  #settleWaiting(): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    if (!w) return;
    if (this.#state === "failed" && this.#failure) w.reject(this.#failure);
    else w.resolve(undefined);
  }

  #close(): void {
    if (this.#state === "closed") return;
    const wasOpen = this.#state === "body" || this.#state === "connecting";
    this.#state = "closed";
    this.#queue.length = 0;
    this.#disarm();
    if (wasOpen) this.#client.close();
    this.#settleWaiting();
  }

  #arm(): void {
    this.#disarm();
    const ms = this.#request.timeout;
    if (ms === undefined) return;
    this.#timer = this.#clock.setTimer(ms, () => {
      this.#timer = undefined;
      this.#failWith(new OtaError("timeout", `${this.#request.url}: nothing received for ${ms} ms`));
    });
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }
}
