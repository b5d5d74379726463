/**
 * What every fuzz target is made of: a target is an arbitrary and a check that throws when a
 * property breaks; the mutators turn valid inputs (bytes, text, JSON trees) into almost-valid
 * ones, which reach deeper into a parser than random bytes do.
 */
import fc from "fast-check";
import { isOtaError, type OtaErrorCode } from "../../modules/errors.ts";

export interface FuzzTarget {
  name: string;
  arbitrary: fc.Arbitrary<unknown>;
  /** Throws (anything) when a property is broken by `input`. */
  check: (input: unknown) => void;
}

/** Keeps the pairing of an arbitrary and its check typed where the target is written. */
export function target<T>(name: string, arbitrary: fc.Arbitrary<T>, check: (input: T) => void): FuzzTarget {
  return { name, arbitrary: arbitrary as fc.Arbitrary<unknown>, check: check as (input: unknown) => void };
}

export class PropertyError extends Error {
  override name = "PropertyError";
}

export function ensure(cond: unknown, what: string): asserts cond {
  if (!cond) throw new PropertyError(what);
}

/**
 * Runs `fn`; a throw must be an OtaError with one of `codes` (anything else is a crash: the
 * property error says what was thrown). Returns the result, or undefined after a refusal.
 */
export function refusesWith<T>(fn: () => T, codes: readonly OtaErrorCode[]): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (isOtaError(e) && codes.includes(e.code) && e.message.length > 0) return undefined;
    const what = isOtaError(e) ? `OtaError ${e.code}: ${e.message}` : e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    throw new PropertyError(`threw ${what}; only OtaError ${codes.join("|") || "(none)"} is documented`);
  }
}

export function bytesEq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Byte and text mutations

/** One edit: flip a bit, set a byte, truncate, insert, delete or duplicate a run. */
export interface Edit {
  kind: number;
  at: number;
  len: number;
  byte: number;
}

export const edit: fc.Arbitrary<Edit> = fc.record({
  kind: fc.integer({ min: 0, max: 5 }),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 12 }),
  byte: fc.integer({ min: 0, max: 255 }),
});

export const edits = (maxLength = 3): fc.Arbitrary<Edit[]> => fc.array(edit, { maxLength });

/** Applies edits to bytes; positions wrap around the current length. */
export function applyEdits(base: Uint8Array, list: readonly Edit[]): Uint8Array {
  let b = base;
  for (const e of list) {
    const n = b.length;
    const at = n === 0 ? 0 : e.at % (n + (e.kind === 3 ? 1 : 0));
    switch (e.kind) {
      case 0:
        if (n > 0) (b = b.slice())[at] ^= 1 << (e.byte & 7);
        break;
      case 1:
        if (n > 0) (b = b.slice())[at] = e.byte;
        break;
      case 2:
        b = b.slice(0, at);
        break;
      case 3: {
        const out = new Uint8Array(n + e.len);
        out.set(b.subarray(0, at), 0);
        for (let i = 0; i < e.len; i++) out[at + i] = (e.byte + i * 67) & 0xff;
        out.set(b.subarray(at), at + e.len);
        b = out;
        break;
      }
      case 4: {
        const out = new Uint8Array(n - Math.min(e.len, n - at));
        out.set(b.subarray(0, at), 0);
        out.set(b.subarray(at + e.len), at);
        b = out;
        break;
      }
      default: {
        const run = b.subarray(at, at + e.len);
        const out = new Uint8Array(n + run.length);
        out.set(b.subarray(0, at + run.length), 0);
        out.set(b.subarray(at), at + run.length);
        b = out;
      }
    }
  }
  return b;
}

/** Characters that matter to the parsers of text: JSON's, URLs', PEM's, base64's, and trouble. */
const TEXT_BITS = ['"', "\\", "{", "}", "[", "]", ",", ":", "0", "9", "-", "e", ".", " ", "\n", "\r", "\t", "/", "?", "#", "@", "%", "=", "+", "A", "z",
  "\u0000", "\u001f", "\u007f", "\u00e9", "\u2028", "\ud800", "\udc00", "\u{1f600}", "\ufeff", "-----", "http://", "enos-connect://", "1e400", "null"];

/** Applies edits to text, inserting the characters parsers care about. */
export function applyTextEdits(base: string, list: readonly Edit[]): string {
  let s = base;
  for (const e of list) {
    const n = s.length;
    const at = n === 0 ? 0 : e.at % (n + 1);
    const bit = TEXT_BITS[e.byte % TEXT_BITS.length];
    switch (e.kind) {
      case 0:
      case 1:
        s = s.slice(0, at) + bit + s.slice(at + 1);
        break;
      case 2:
        s = s.slice(0, at);
        break;
      case 3:
        s = s.slice(0, at) + bit.repeat(1 + (e.len >> 2)) + s.slice(at);
        break;
      case 4:
        s = s.slice(0, at) + s.slice(at + e.len);
        break;
      default:
        s = s.slice(0, at) + s.slice(at, at + e.len) + s.slice(at);
    }
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// JSON documents

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Values that sit on the edges of the parsers' rules. */
const ODD_VALUES: Json[] = [null, true, false, 0, -0, -1, 1, 1.5, 255, 256, 2 ** 31, 2 ** 32, 2 ** 32 - 4096, 2 ** 53, 2 ** 53 - 1, -(2 ** 53), 1e308, "", " ", "0", "01",
  "1024", "-1", "0x10", "1e3", "NaN", "Infinity", "MQTT", "HTTP", "mqtt", "https://h.example.com/f", "http://[::1]:8080/x", "https://h:0/", "https://u:p@h/x",
  "ftp://h/f", "enos-connect://", "enos-connect://a", "/rel/path", "a b", "\u0000", "\u202e", "\ud800", "x".repeat(70), "x".repeat(2100), [], [1], {}, { a: 1 }, ["MQTT", "MQTT"]];

/**
 * One change to a JSON tree: `op` 0 replaces a value with an odd one, 1 deletes it, 2 adds an
 * odd key, 3 nests it `deep` levels in arrays (up to thousands: the XS engine's JSON.parse
 * recurses on the native stack), 4 wraps it in an object.
 */
export interface JsonEdit {
  op: number;
  node: number;
  value: number;
  deep: number;
}

export const jsonEdits = (maxLength = 3): fc.Arbitrary<JsonEdit[]> =>
  fc.array(
    fc.record({
      op: fc.integer({ min: 0, max: 4 }),
      node: fc.nat(),
      value: fc.nat(),
      deep: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 6000 })),
    }),
    { maxLength },
  );

/** Odd values are shared: a later edit must not change the list. */
function fresh(v: Json): Json {
  return v !== null && typeof v === "object" ? (JSON.parse(JSON.stringify(v)) as Json) : v;
}

const NEST = "\u0001nest\u0001";

type Slot = { parent: Json[] | { [k: string]: Json }; key: string | number };

function slots(v: Json, out: Slot[]): void {
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push({ parent: v, key: i });
      slots(x, out);
    });
  } else if (v !== null && typeof v === "object") {
    for (const k of Object.keys(v)) {
      out.push({ parent: v, key: k });
      slots(v[k], out);
    }
  }
}

/**
 * The document as text after the edits. `tree` is changed in place (the arbitraries make a
 * fresh one per input). Nesting is written into the text, not built as a tree.
 */
export function editJson(tree: Json, list: readonly JsonEdit[]): string {
  const nests: number[] = [];
  for (const e of list) {
    const all: Slot[] = [];
    slots(tree, all);
    if (all.length === 0) break;
    const { parent, key } = all[e.node % all.length];
    const define = (k: string | number, value: Json) => {
      if (Array.isArray(parent)) parent[k as number] = fresh(value);
      else Object.defineProperty(parent, k, { value: fresh(value), enumerable: true, writable: true, configurable: true });
    };
    switch (e.op) {
      case 0:
        define(key, ODD_VALUES[e.value % ODD_VALUES.length]);
        break;
      case 1:
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else delete parent[key as string];
        break;
      case 2:
        if (!Array.isArray(parent)) define(["__proto__", "sig-sha256-rsa", "constructor", "x", "bc_url", "afr_ota", "url"][e.value % 7], ODD_VALUES[(e.value >> 3) % ODD_VALUES.length]);
        break;
      case 3:
        nests.push(e.deep);
        define(key, NEST + (nests.length - 1));
        break;
      default:
        define(key, { v: Array.isArray(parent) ? parent[key as number] : parent[key as string] });
    }
  }
  let text = JSON.stringify(tree);
  nests.forEach((deep, i) => {
    text = text.replace(JSON.stringify(NEST + i), "[".repeat(deep) + "1" + "]".repeat(deep));
  });
  return text;
}

/** Nesting depth of arrays and objects in JSON text (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if (c === 0x5d || c === 0x7d) depth--;
  }
  return max;
}

/** Text as a string or as (possibly edited) UTF-8 bytes: the two ways a payload arrives. */
export const payloadOf = (text: string, asBytes: boolean, byteEdits: readonly Edit[]): string | Uint8Array =>
  asBytes ? applyEdits(new Uint8Array(Buffer.from(text, "utf8")), byteEdits) : text;
