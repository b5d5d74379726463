/**
 * Fetches [offset, size) of a file with HTTP Range requests and hands every byte, in order and
 * exactly once, to a sink (the image writer and the digests). Only the bytes a response proves
 * it owes are accepted, so a hostile or broken server ends in an error, never in a wrong image:
 *
 * - a ranged request must be answered 206 with `Content-Range: bytes S-E/T` where S, E and T are
 *   exactly what was asked; a 200 is accepted only for a request from 0 and only with the whole
 *   file; a body longer or shorter than promised is an error;
 * - the total must equal the job's size (or, when the caller does not know it, is learned once
 *   from the first response and held to from then on);
 * - redirects are followed a few times, never from https to http;
 * - 400/401/403/404 mean the (presigned) URL expired or was refused, or its session did (EnOS):
 *   "url-refused", so the job layer can fetch a fresh URL and call again from the same offset;
 * - dropped connections, stalls and 5xx are retried from the last byte received, with doubling
 *   backoff from the Clock port; the retry budget counts attempts without progress, so a link
 *   that drops every few hundred KB still finishes, and a dead one gives up;
 * - a server that trickles (a few bytes before every timeout, again and again) meets the rate
 *   floor (rate.ts): "too-slow" once a window of `rate.window` ms brings less than `rate.minRate`
 *   bytes a second (default 256 B/s over 2 minutes).
 */
import type { Clock } from "../ports/clock.ts";
import type { Http, HttpResponse } from "../ports/http.ts";
import { OtaError, isOtaError } from "../errors.ts";
import { formatHttpUrl, parseHttpUrl, resolveLocation, type HttpUrl } from "./url.ts";
import { RateFloor, type RateFloorOptions } from "./rate.ts";

export interface DownloadOptions {
  http: Http;
  clock: Clock;
  url: string;
  /** The file's size from the job; undefined to learn it from the first response. */
  size?: number;
  /** Bytes already held (a resume point); the download continues from here. */
  offset?: number;
  /** Bytes per request; 0 (default) asks once for the whole remainder. */
  window?: number;
  /** PEM CA certificates trusted for https. */
  ca?: string;
  /** Milliseconds without a byte before a request is abandoned (default 30 s). */
  timeout?: number;
  /** Attempts in a row without a byte of progress before giving up (default 5). */
  retries?: number;
  /** First and largest retry delay in ms (default 1 s doubling to 30 s). */
  backoff?: { first: number; max: number };
  /** Redirects followed per request (default 5). */
  maxRedirects?: number;
  /** Receives the bytes in order; throwing (a flash error, say) stops the download. */
  sink(chunk: Uint8Array, offset: number): void;
  /** Called once when the size is first known. */
  onSize?(size: number): void;
  /** Polled between chunks; true abandons the download with "cancelled". */
  cancelled?(): boolean;
  /** The minimum sustained rate (default DEFAULT_RATE_FLOOR; minRate 0 turns it off). */
  rate?: Partial<RateFloorOptions>;
}

export interface DownloadResult {
  size: number;
  requests: number;
  failures: number;
  redirects: number;
}

interface Expected {
  start: number;
  /** Exclusive. */
  end: number;
  total: number;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function retryable(e: unknown): boolean {
  return isOtaError(e) && (e.code === "network" || e.code === "timeout" || (e.code === "http-status" && /HTTP (5\d\d|429)\b/.test(e.message)));
}

export async function downloadRange(o: DownloadOptions): Promise<DownloadResult> {
  const origin = parseHttpUrl(o.url);
  let size = o.size;
  if (size !== undefined && (!Number.isSafeInteger(size) || size <= 0)) throw new OtaError("bad-argument", `file size must be a positive integer, got ${size}`);
  // Shared with receive(): bytes handed to the sink count even when the response then fails.
  const at = { offset: o.offset ?? 0 };
  if (!Number.isSafeInteger(at.offset) || at.offset < 0 || (size !== undefined && at.offset > size)) {
    throw new OtaError("bad-argument", `resume offset ${at.offset} is outside the file`);
  }
  const window = o.window ?? 0;
  if (!Number.isSafeInteger(window) || window < 0) throw new OtaError("bad-argument", `window must be 0 or a positive integer, got ${window}`);
  const retries = o.retries ?? 5;
  const backoff = o.backoff ?? { first: 1000, max: 30000 };
  const result: DownloadResult = { size: size ?? 0, requests: 0, failures: 0, redirects: 0 };
  let idle = 0;
  const floor = new RateFloor(o.clock, o.rate, at.offset);

  while (size === undefined || at.offset < size) {
    if (o.cancelled?.()) throw new OtaError("cancelled", `download abandoned at ${at.offset} bytes`);
    const from = at.offset;
    // The last byte asked for; when the size is not known yet, the reply's total settles it.
    const last = window === 0 ? undefined : size === undefined ? from + window - 1 : Math.min(from + window, size) - 1;
    try {
      const { response, url } = await requestFollowing(o, origin, `bytes=${from}-${last ?? ""}`, result);
      const expected = check(response, url, from, last, size);
      if (size === undefined) {
        size = expected.total;
        result.size = size;
        o.onSize?.(size);
      }
      await receive(o, response, expected, at, floor);
    } catch (e) {
      if (!retryable(e)) throw e;
      floor.check(at.offset);
      result.failures++;
      idle = at.offset > from ? 1 : idle + 1;
      if (idle > retries) {
        throw new OtaError("no-progress", `gave up after ${retries + 1} attempts without progress at ${at.offset} bytes: ${(e as OtaError).message}`);
      }
      const delay = Math.min(backoff.max, backoff.first * 2 ** (idle - 1));
      await new Promise<void>((resolve) => o.clock.setTimer(delay, resolve));
    }
  }
  result.size = size;
  return result;
}

async function requestFollowing(o: DownloadOptions, origin: HttpUrl, range: string, result: DownloadResult): Promise<{ response: HttpResponse; url: HttpUrl }> {
  let url = origin;
  for (let hop = 0; ; hop++) {
    result.requests++;
    const response = await o.http.request({ method: "GET", url: formatHttpUrl(url), headers: { range }, ca: o.ca, timeout: o.timeout ?? 30000 });
    if (!REDIRECTS.has(response.status)) return { response, url };
    response.close();
    const location = response.headers["location"];
    if (!location) throw new OtaError("http-protocol", `HTTP ${response.status} redirect without a Location`);
    if (hop >= (o.maxRedirects ?? 5)) throw new OtaError("http-protocol", `more than ${o.maxRedirects ?? 5} redirects (last to ${location.slice(0, 200)})`);
    let next: HttpUrl;
    try {
      next = resolveLocation(url, location);
    } catch (e) {
      throw new OtaError("http-protocol", `redirect to an unusable Location: ${(e as Error).message}`);
    }
    if (url.scheme === "https" && next.scheme === "http") throw new OtaError("http-protocol", `redirect from https to http refused (${formatHttpUrl(next)})`);
    result.redirects++;
    url = next;
  }
}

/** What the response promises, if it is an answer we may use for a request from `from`. */
function check(response: HttpResponse, url: HttpUrl, from: number, last: number | undefined, size: number | undefined): Expected {
  const status = response.status;
  const fail = (code: "http-protocol" | "http-status" | "url-refused", message: string): never => {
    response.close();
    throw new OtaError(code, message);
  };
  const length = response.headers["content-length"];
  const declared = length === undefined ? undefined : /^\d+$/.test(length) ? Number(length) : fail("http-protocol", `bad Content-Length '${length}'`);
  if (status === 206) {
    const header = response.headers["content-range"];
    if (header === undefined) return fail("http-protocol", "206 without Content-Range");
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
    if (!m) return fail("http-protocol", `unparsable Content-Range '${header}'`);
    const [start, end] = [Number(m[1]), Number(m[2])];
    if (m[3] === "*") return fail("http-protocol", `Content-Range '${header}' does not give the file size`);
    const total = Number(m[3]);
    if (size !== undefined && total !== size) return fail("http-protocol", `server's file is ${total} bytes, the job says ${size}`);
    // Only a first request of unknown size may come back shorter: the file ends before the window.
    const wantEnd = last === undefined ? total - 1 : size === undefined ? Math.min(last, total - 1) : last;
    if (start !== from || end !== wantEnd) return fail("http-protocol", `asked for bytes ${from}-${wantEnd}, Content-Range says ${start}-${end}`);
    if (end >= total) return fail("http-protocol", `Content-Range '${header}' ends past the file`);
    if (declared !== undefined && declared !== end - start + 1) return fail("http-protocol", `Content-Length ${declared} does not match Content-Range ${start}-${end}`);
    return { start, end: end + 1, total };
  }
  if (status === 200) {
    if (from !== 0) return fail("http-protocol", `server ignored Range (200 to bytes=${from}-): it cannot resume a download`);
    const total = size ?? declared;
    if (total === undefined) return fail("http-protocol", "200 without Content-Length: the file size is unknown");
    if (declared !== undefined && declared !== total) return fail("http-protocol", `200 with ${declared} bytes, the job says ${total}`);
    if (total <= 0) return fail("http-protocol", "the server's file is empty");
    return { start: 0, end: total, total };
  }
  if (status === 400 || status === 401 || status === 403 || status === 404) return fail("url-refused", `URL expired or refused (HTTP ${status} from ${url.host})`);
  if (status === 416) return fail("http-protocol", `HTTP 416: the server cannot serve bytes ${from}- (its file is shorter than expected?)`);
  return fail("http-status", `HTTP ${status} from ${url.host}`);
}

async function receive(o: DownloadOptions, response: HttpResponse, expected: Expected, at: { offset: number }, floor: RateFloor): Promise<void> {
  const end = expected.end;
  try {
    for (;;) {
      if (o.cancelled?.()) throw new OtaError("cancelled", `download abandoned at ${at.offset} bytes`);
      const chunk = await response.read();
      // A chunk that was on its way when the download was abandoned must not reach the sink.
      if (o.cancelled?.()) throw new OtaError("cancelled", `download abandoned at ${at.offset} bytes`);
      if (chunk === undefined) break;
      if (at.offset + chunk.length > end) {
        throw new OtaError("http-protocol", `body longer than promised: more than ${expected.end - expected.start} bytes for ${expected.start}-${expected.end - 1}`);
      }
      if (chunk.length) o.sink(chunk, at.offset);
      at.offset += chunk.length;
      floor.check(at.offset);
    }
  } catch (e) {
    response.close();
    if (isOtaError(e, "network") || isOtaError(e, "timeout")) throw new OtaError(e.code, `${e.message} (at ${at.offset} of ${expected.total} bytes)`);
    throw e;
  }
  if (at.offset < end) throw new OtaError("network", `body ended after ${at.offset - expected.start} of ${end - expected.start} bytes`);
}
