/**
 * The strict checks every job-document parser shares (AWS OTA, nRF, Zerynth, EnOS): a refusal
 * names the field and what was wrong, and never escapes a parser as an exception.
 */
import { utf8Decode, utf8Length } from "../codec/utf8.ts";
import { isOtaError } from "../errors.ts";
import { jsonDepthProblem } from "./json-object.ts";
import { MAX_URL_LENGTH, parseHttpUrl } from "../transfer/url.ts";
import { escapeOther } from "../codec/unicode.ts";
import type { ParseResult } from "./plan.ts";

/** Messages larger than this are refused before they are parsed. */
export const MAX_MESSAGE_BYTES = 32 * 1024;
/** Presigned S3 URLs are ~1.3 KB; the limit leaves room without letting a URL fill the heap. */
export { MAX_URL_LENGTH };

export type JsonObject = Record<string, unknown>;

/**
 * A refusal on its way out of a parser. Parsers catch it and return `invalid`; it never leaves
 * them.
 */
export class Refusal {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

export function refuse(reason: string): never {
  throw new Refusal(reason);
}

/** Turns what a parser caught into `invalid` (OtaErrors from codecs included); rethrows bugs. */
export function invalid(e: unknown, jobId: string | undefined): ParseResult {
  let reason: string;
  if (e instanceof Refusal) reason = e.reason;
  else if (isOtaError(e)) reason = e.message;
  else throw e;
  return jobId === undefined ? { kind: "invalid", reason } : { kind: "invalid", jobId, reason };
}

export function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function has(o: JsonObject, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

/** A short, printable account of a JSON value for a reason: -5, "NaN", an array, null. */
export function show(v: unknown): string {
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "an array";
  if (isObject(v)) return "an object";
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  // JSON escapes C0 controls and lone surrogates; format characters (U+200B, bidi overrides) and
  // C1 controls it leaves as they are.
  return escapeOther(s.length > 64 ? s.slice(0, 61) + "..." : s);
}

/** The message as text: at most MAX_MESSAGE_BYTES of well-formed UTF-8. */
export function messageText(payload: unknown): string {
  if (payload instanceof Uint8Array) {
    if (payload.length > MAX_MESSAGE_BYTES) refuse(`message is ${payload.length} bytes; at most ${MAX_MESSAGE_BYTES} are accepted`);
    try {
      return utf8Decode(payload);
    } catch (e) {
      if (isOtaError(e)) refuse(`message is not valid UTF-8 (${e.message})`);
      throw e;
    }
  }
  if (typeof payload !== "string") return refuse(`message must be text or bytes, got ${typeof payload}`);
  // UTF-8 never takes fewer bytes than UTF-16 code units, so a long string is refused unmeasured.
  let bytes = payload.length;
  if (bytes <= MAX_MESSAGE_BYTES) {
    try {
      bytes = utf8Length(payload);
    } catch (e) {
      if (isOtaError(e)) refuse(`message is not valid text (${e.message})`);
      throw e;
    }
  }
  if (bytes > MAX_MESSAGE_BYTES) refuse(`message is ${bytes} bytes; at most ${MAX_MESSAGE_BYTES} are accepted`);
  return payload;
}

/** The message parsed as a JSON object. */
export function messageObject(payload: unknown): JsonObject {
  const text = messageText(payload);
  const deep = jsonDepthProblem(text);
  if (deep !== undefined) refuse(`message ${deep.replace("payload ", "")}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    refuse(`message is not JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isObject(value)) refuse(`message must be a JSON object, got ${show(value)}`);
  return value;
}

export function checkMaxSize(maxSize: unknown): number | undefined {
  if (maxSize === undefined) return undefined;
  if (typeof maxSize !== "number" || !Number.isSafeInteger(maxSize) || maxSize <= 0) {
    refuse(`options.maxSize must be a positive integer, got ${show(maxSize)}`);
  }
  return maxSize;
}

/**
 * A whole number read from a JSON number, or (when `digits`) from a JSON string of decimal
 * digits without sign or leading zeros. NaN and Infinity cannot come from JSON as numbers;
 * as strings ("NaN") they are not digits and are refused.
 */
export function wholeNumber(v: unknown, path: string, digits: boolean): number {
  let n: number;
  if (typeof v === "number") n = v;
  else if (typeof v === "string" && digits) {
    if (!/^(0|[1-9][0-9]{0,15})$/.test(v)) refuse(`${path} must be an integer, got ${show(v)}`);
    n = Number(v);
  } else return refuse(`${path} must be ${digits ? "an integer (a number or a string of digits)" : "an integer"}, got ${show(v)}`);
  if (!Number.isSafeInteger(n)) refuse(`${path} must be an integer below 2^53, got ${show(v)}`);
  return n;
}

/** A file size: an integer > 0, at most `limit` (the format's) and `maxSize` (the device's). */
export function fileSize(v: unknown, path: string, digits: boolean, maxSize: number | undefined, limit?: { value: number; why: string }): number {
  if (v === undefined) refuse(`${path} is missing`);
  const n = wholeNumber(v, path, digits);
  if (n <= 0) refuse(`${path} must be a positive integer, got ${show(v)}`);
  if (limit !== undefined && n > limit.value) refuse(`${path} ${n} is over ${limit.value}, ${limit.why}`);
  if (maxSize !== undefined && n > maxSize) refuse(`${path} ${n} is over the ${maxSize} bytes this device takes`);
  return n;
}

/** A string of 1..max characters without control characters. */
export function text(v: unknown, path: string, max: number): string {
  if (typeof v !== "string") refuse(`${path} must be a string, got ${show(v)}`);
  if (v.length === 0) refuse(`${path} is empty`);
  if (v.length > max) refuse(`${path} is ${v.length} characters; at most ${max}`);
  if (/[\x00-\x1f\x7f]/.test(v)) refuse(`${path} has control characters`);
  return v;
}

/** An absolute http: or https: URL of at most MAX_URL_LENGTH characters. */
export function httpUrl(v: unknown, path: string): string {
  if (typeof v !== "string") refuse(`${path} must be a string, got ${show(v)}`);
  if (v.length > MAX_URL_LENGTH) refuse(`${path} is ${v.length} characters; at most ${MAX_URL_LENGTH}`);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(v);
  if (scheme && !/^https?$/i.test(scheme[1])) refuse(`${path} has the unsupported scheme "${scheme[1]}:"; only http: and https: URLs are taken`);
  try {
    parseHttpUrl(v);
  } catch (e) {
    if (isOtaError(e)) refuse(`${path}: ${e.message}`);
    throw e;
  }
  return v;
}

/** Lower-case hex of exactly `length` digits. */
export function hexDigest(v: unknown, path: string, length: number, what: string): string {
  if (typeof v !== "string") refuse(`${path} must be a string of ${length} hex digits (${what}), got ${show(v)}`);
  if (v.length !== length || !/^[0-9A-Fa-f]*$/.test(v)) refuse(`${path} must be ${length} hex digits (${what}), got ${show(v)}`);
  return v.toLowerCase();
}
