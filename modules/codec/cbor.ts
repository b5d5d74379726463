/**
 * The subset of CBOR (RFC 8949) that AWS IoT MQTT file streams use, and nothing more:
 *   requests   {c: "token", f: 0, l: 4096, o: 0, n: 32, b: <bitmap bytes>}
 *   responses  {c: "token", f: 0, l: 4096, i: 7, p: <payload bytes>}
 *   errors     {o: "ErrorCode", m: "message", c: "token"}
 *
 * Supported: unsigned and negative integers (major types 0 and 1) up to 2^53-1 in magnitude,
 * byte strings (2), UTF-8 text strings (3) and maps with text-string keys (5), definite lengths
 * only, maps nested at most CBOR_MAX_DEPTH deep (the top-level map counts as 1).
 *
 * Encoding writes preferred (shortest) heads, map keys in the object's key order, into one
 * allocation of the exact size. Values outside the subset are refused with "bad-argument".
 *
 * Decoding accepts any head length for a value (non-preferred encodings are valid CBOR, RFC 8949
 * section 4.1) and refuses with "malformed", saying what and at which offset: arrays, tags,
 * floats and simple values (false, true, null, undefined), indefinite lengths (except maps, which
 * AWS sends in refusals), reserved
 * additional information (28-30), integers beyond 2^53-1 in magnitude, map keys that are not
 * text, duplicate keys, invalid UTF-8, deeper nesting, truncated input, a length claiming more
 * bytes than remain (checked before anything is allocated), and bytes after the top-level item.
 *
 * Byte strings are decoded as views into the input (`subarray`), not copies: a 128 KB stream
 * block costs nothing extra. They share the input's memory: the caller must not reuse the input
 * buffer while it still needs the decoded bytes (copy them with `slice()` to keep them longer).
 */
import { OtaError } from "../errors.ts";
import { Utf8Error, utf8Decode, utf8Length, utf8Write } from "./utf8.ts";

export type CborValue = number | string | Uint8Array | CborMap;
export interface CborMap {
  [key: string]: CborValue;
}

/** Maps nest at most this deep: {a: {b: {c: {d: 1}}}} is 4 and allowed, one more is refused. */
export const CBOR_MAX_DEPTH = 4;

const MAJOR_UINT = 0;
const MAJOR_NEGINT = 1;
const MAJOR_BYTES = 2;
const MAJOR_TEXT = 3;
const MAJOR_ARRAY = 4;
const MAJOR_MAP = 5;
const MAJOR_TAG = 6;

const TWO_32 = 0x100000000;
const MAX_SAFE = 9007199254740991; // 2^53 - 1

// ---------------------------------------------------------------------------------------------
// Encoding

function badArgument(message: string): never {
  throw new OtaError("bad-argument", `CBOR: ${message}`);
}

function where(key: string | undefined): string {
  return key === undefined ? "at the top level" : `for key ${JSON.stringify(key)}`;
}

function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "object") return ArrayBuffer.isView(v) ? "a typed array other than Uint8Array" : "an object that is not a plain object";
  if (typeof v === "number") return String(v);
  return `a ${typeof v}`;
}

function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < TWO_32 ? 5 : 9;
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Bytes `v` will take; also checks everything, so that writing cannot fail. */
function sizeOf(v: unknown, key: string | undefined, depth: number): number {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) badArgument(`${describeValue(v)} ${where(key)} is not an integer within ±(2^53-1)`);
    return headSize(v < 0 ? -1 - v : v);
  }
  if (typeof v === "string") {
    const n = utf8Length(v);
    return headSize(n) + n;
  }
  if (v instanceof Uint8Array) return headSize(v.length) + v.length;
  if (typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v) && isPlainObject(v)) {
    if (depth > CBOR_MAX_DEPTH) badArgument(`map ${where(key)} is nested deeper than ${CBOR_MAX_DEPTH} maps (or the value is circular)`);
    const map = v as Record<string, unknown>;
    const keys = Object.keys(map);
    let size = headSize(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      const n = utf8Length(k);
      size += headSize(n) + n + sizeOf(map[k], k, depth + 1);
    }
    return size;
  }
  return badArgument(`${describeValue(v)} ${where(key)} cannot be encoded (only safe integers, strings, Uint8Array and plain objects)`);
}

function writeHead(out: Uint8Array, o: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    out[o] = m | n;
    return o + 1;
  }
  if (n < 0x100) {
    out[o] = m | 24;
    out[o + 1] = n;
    return o + 2;
  }
  if (n < 0x10000) {
    out[o] = m | 25;
    out[o + 1] = n >>> 8;
    out[o + 2] = n & 0xff;
    return o + 3;
  }
  if (n < TWO_32) {
    out[o] = m | 26;
    write32(out, o + 1, n);
    return o + 5;
  }
  out[o] = m | 27;
  write32(out, o + 1, Math.floor(n / TWO_32));
  write32(out, o + 5, n >>> 0);
  return o + 9;
}

function write32(out: Uint8Array, o: number, n: number): void {
  out[o] = n >>> 24;
  out[o + 1] = (n >>> 16) & 0xff;
  out[o + 2] = (n >>> 8) & 0xff;
  out[o + 3] = n & 0xff;
}

/** Writes a value sizeOf has accepted. */
function writeValue(out: Uint8Array, o: number, v: CborValue): number {
  if (typeof v === "number") return v < 0 ? writeHead(out, o, MAJOR_NEGINT, -1 - v) : writeHead(out, o, MAJOR_UINT, v);
  if (typeof v === "string") return writeText(out, o, v);
  if (v instanceof Uint8Array) {
    o = writeHead(out, o, MAJOR_BYTES, v.length);
    out.set(v, o);
    return o + v.length;
  }
  const keys = Object.keys(v);
  o = writeHead(out, o, MAJOR_MAP, keys.length);
  for (let i = 0; i < keys.length; i++) {
    o = writeText(out, o, keys[i]);
    o = writeValue(out, o, v[keys[i]]);
  }
  return o;
}

function writeText(out: Uint8Array, o: number, s: string): number {
  return utf8Write(s, out, writeHead(out, o, MAJOR_TEXT, utf8Length(s)));
}

/**
 * Encodes `value` with preferred (shortest) heads; map keys in the order Object.keys gives
 * (insertion order, except that integer-like keys such as "7" come first, as in all JS objects).
 * Refused with "bad-argument": numbers that are not safe integers (NaN, 1.5, ±2^53), strings with
 * lone surrogates, anything but numbers, strings, Uint8Array and plain objects, and maps nested
 * deeper than CBOR_MAX_DEPTH. -0 is encoded as 0.
 */
export function encodeCbor(value: CborValue): Uint8Array {
  const out = new Uint8Array(sizeOf(value, undefined, 1));
  const end = writeValue(out, 0, value);
  if (end !== out.length) throw new Error(`CBOR encoder wrote ${end} bytes, sized ${out.length}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function malformed(message: string): never {
  throw new OtaError("malformed", `CBOR: ${message}`);
}

function simpleName(ai: number): string {
  switch (ai) {
    case 20:
      return "false";
    case 21:
      return "true";
    case 22:
      return "null";
    case 23:
      return "undefined";
    case 24:
      return "simple value (one-byte form)";
    case 25:
      return "half-precision float";
    case 26:
      return "single-precision float";
    case 27:
      return "double-precision float";
    default:
      return ai < 20 ? `simple value ${ai}` : `reserved additional information ${ai}`;
  }
}

/** r.arg of a map head with additional information 31. */
const INDEFINITE = -1;

class Reader {
  readonly bytes: Uint8Array;
  pos = 0;
  /** The head just read: its major type and argument (a value or a length). */
  major = 0;
  arg = 0;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
  }
}

function read32(b: Uint8Array, o: number): number {
  return b[o] * 0x1000000 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]);
}

/** Reads the head at r.pos into r.major and r.arg, refusing everything outside the subset. */
function readHead(r: Reader): void {
  const b = r.bytes;
  const start = r.pos;
  if (start >= b.length) malformed(`truncated input: an item should start at offset ${start}, where the input ends`);
  const ib = b[start];
  const major = ib >> 5;
  const ai = ib & 0x1f;
  if (major === MAJOR_TAG) malformed(`tag (major type 6) at offset ${start} is not supported`);
  if (major === 7) {
    if (ai === 31) malformed(`unexpected break (0xff) at offset ${start}`);
    malformed(`${simpleName(ai)} (major type 7) at offset ${start} is not supported`);
  }
  if (major === MAJOR_ARRAY) malformed(`array (major type 4) at offset ${start} is not supported`);
  r.major = major;
  if (ai < 24) {
    r.arg = ai;
    r.pos = start + 1;
    return;
  }
  if (ai > 27) {
    if (ai < 31) malformed(`reserved additional information ${ai} at offset ${start}`);
    if (major === MAJOR_UINT || major === MAJOR_NEGINT) malformed(`additional information 31 at offset ${start} is not valid for an integer`);
    // AWS IoT's stream service sends its refusals as indefinite-length maps (0xbf ... 0xff).
    if (major === MAJOR_MAP) {
      r.arg = INDEFINITE;
      r.pos = start + 1;
      return;
    }
    malformed(`indefinite length at offset ${start} is not supported`);
  }
  const size = 1 << (ai - 24);
  if (start + 1 + size > b.length) {
    malformed(`truncated input: the head at offset ${start} needs ${size} more bytes, ${b.length - start - 1} remain`);
  }
  const o = start + 1;
  if (size === 1) r.arg = b[o];
  else if (size === 2) r.arg = (b[o] << 8) | b[o + 1];
  else if (size === 4) r.arg = read32(b, o);
  else r.arg = read32(b, o) * TWO_32 + read32(b, o + 4); // exact below 2^53; only compared above
  r.pos = o + size;
}

/** Checks that the string the head at `start` announces fits in the input; returns its end. */
function stringEnd(r: Reader, start: number, what: string): number {
  const remain = r.bytes.length - r.pos;
  if (r.arg > remain) malformed(`truncated input: ${what} at offset ${start} claims ${r.arg} bytes, ${remain} remain`);
  return r.pos + r.arg;
}

function readText(r: Reader, start: number, what: string): string {
  const end = stringEnd(r, start, what);
  let s: string;
  try {
    s = utf8Decode(r.bytes, r.pos, end);
  } catch (e) {
    if (e instanceof Utf8Error) malformed(`${what} at offset ${start} is not valid UTF-8: ${e.reason} at offset ${e.position}`);
    throw e;
  }
  r.pos = end;
  return s;
}

/** Decodes the item at r.pos; `depth` is the nesting a map found here would have. */
function readItem(r: Reader, depth: number): CborValue {
  const start = r.pos;
  readHead(r);
  switch (r.major) {
    case MAJOR_UINT:
      if (r.arg > MAX_SAFE) malformed(`integer at offset ${start} is beyond 2^53-1`);
      return r.arg;
    case MAJOR_NEGINT:
      if (r.arg >= MAX_SAFE) malformed(`negative integer at offset ${start} is beyond -(2^53-1)`);
      return -1 - r.arg;
    case MAJOR_BYTES: {
      const end = stringEnd(r, start, "byte string");
      const v = r.bytes.subarray(r.pos, end);
      r.pos = end;
      return v;
    }
    case MAJOR_TEXT:
      return readText(r, start, "text string");
    default:
      return readMap(r, start, depth);
  }
}

function readMap(r: Reader, start: number, depth: number): CborMap {
  if (depth > CBOR_MAX_DEPTH) malformed(`map at offset ${start} is nested deeper than ${CBOR_MAX_DEPTH} maps`);
  const indefinite = r.arg === INDEFINITE;
  const count = indefinite ? Infinity : r.arg;
  const b = r.bytes;
  // Every entry takes at least 2 bytes: a claim beyond that is refused before any work.
  const remain = b.length - r.pos;
  if (!indefinite && count > remain / 2) malformed(`truncated input: map at offset ${start} claims ${count} entries, ${remain} bytes remain`);
  const map: CborMap = {};
  for (let i = 0; i < count; i++) {
    const keyStart = r.pos;
    if (indefinite) {
      if (keyStart >= b.length) malformed(`truncated input: indefinite map at offset ${start} has no break (0xff)`);
      if (b[keyStart] === 0xff) {
        r.pos = keyStart + 1;
        break;
      }
    }
    // remain >= 2 * count guarantees a byte here; an indefinite map checked it above
    const kb = b[keyStart];
    if (kb >> 5 !== MAJOR_TEXT) {
      malformed(`map key at offset ${keyStart} is not a text string (major type ${kb >> 5}); only text keys are supported`);
    }
    readHead(r);
    const key = readText(r, keyStart, "map key");
    if (Object.hasOwn(map, key)) malformed(`duplicate map key ${JSON.stringify(key)} at offset ${keyStart}`);
    const value = readItem(r, depth + 1);
    // Defined, never assigned: "__proto__" must be an own property, not a change of prototype,
    // and on a device Object.prototype is frozen, so assigning "toString" or "constructor" throws.
    Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return map;
}

/**
 * Decodes exactly one item that fills `bytes`. Byte strings in the result are views into
 * `bytes` (same buffer, no copy). Everything outside the subset is an OtaError "malformed" whose
 * message starts "CBOR:" and gives the offset.
 */
export function decodeCbor(bytes: Uint8Array): CborValue {
  if (!(bytes instanceof Uint8Array)) badArgument("decodeCbor needs a Uint8Array");
  const r = new Reader(bytes);
  const value = readItem(r, 1);
  const extra = bytes.length - r.pos;
  if (extra !== 0) malformed(`${extra} trailing byte${extra === 1 ? "" : "s"} after the top-level item, at offset ${r.pos}`);
  return value;
}
