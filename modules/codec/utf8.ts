/**
 * UTF-8 by hand (RFC 3629), strict both ways, for codecs that carry text (CBOR, JSON documents)
 * on engines without TextEncoder/TextDecoder.
 *
 * Decoding accepts exactly the well-formed sequences of RFC 3629 section 4 and refuses the rest
 * with an OtaError "malformed" that says what and where: bytes that cannot start a character
 * (0x80-0xbf alone, 0xc0, 0xc1, 0xf5-0xff), overlong encodings, UTF-16 surrogates (U+D800-DFFF),
 * code points above U+10FFFF and sequences cut short. A byte order mark is kept as U+FEFF.
 * Encoding refuses a string with a lone surrogate ("bad-argument"): it has no UTF-8 form.
 *
 * Strings are read on both kinds of engine: Node's, where a character above U+FFFF is two
 * UTF-16 code units, and a Moddable device's XS, which indexes strings by code point
 * ("\u{10151}".length === 1, charCodeAt gives 0x10151).
 */
import { OtaError } from "../errors.ts";

/** Bad UTF-8: an OtaError "malformed" that also gives the offset of the sequence at fault. */
export class Utf8Error extends OtaError {
  /** Index in the decoded bytes of the first byte of the bad sequence. */
  readonly position: number;
  /** What is wrong, without the position ("overlong encoding"). */
  readonly reason: string;
  constructor(position: number, reason: string) {
    super("malformed", `UTF-8: ${reason} at offset ${position}`);
    this.position = position;
    this.reason = reason;
  }
}

function hexByte(b: number): string {
  return "0x" + (b < 16 ? "0" : "") + b.toString(16);
}

// Long strings are read this many code units at a time. XS stores strings as UTF-8, so
// charCodeAt(i) costs time in proportion to the string's length: indexing a 64 KB string one
// unit at a time takes seconds, indexing short slices of it takes milliseconds.
const SLICE = 128;

function loneSurrogate(c: number, index: number): never {
  throw new OtaError("bad-argument", `UTF-8: lone surrogate 0x${c.toString(16)} at index ${index} has no UTF-8 encoding`);
}

function writeFour(out: Uint8Array, o: number, cp: number): void {
  out[o] = 0xf0 | (cp >> 18);
  out[o + 1] = 0x80 | ((cp >> 12) & 0x3f);
  out[o + 2] = 0x80 | ((cp >> 6) & 0x3f);
  out[o + 3] = 0x80 | (cp & 0x3f);
}

/** Counts (out undefined) or writes `s` as UTF-8 from `offset`; returns the offset after it. */
function walk(s: string, out: Uint8Array | undefined, offset: number): number {
  const len = s.length;
  let o = offset;
  let high = 0; // a high surrogate waiting for its low half
  for (let base = 0; base < len; base += SLICE) {
    const part = len <= SLICE ? s : s.slice(base, base + SLICE);
    const n = part.length;
    for (let j = 0; j < n; j++) {
      const c = part.charCodeAt(j);
      if (high !== 0) {
        if ((c & 0xfc00) !== 0xdc00) loneSurrogate(high, base + j - 1);
        if (out) writeFour(out, o, 0x10000 + ((high - 0xd800) << 10) + (c - 0xdc00));
        high = 0;
        o += 4;
      } else if (c < 0x80) {
        if (out) out[o] = c;
        o += 1;
      } else if (c < 0x800) {
        if (out) {
          out[o] = 0xc0 | (c >> 6);
          out[o + 1] = 0x80 | (c & 0x3f);
        }
        o += 2;
      } else if (c > 0xffff) {
        // A whole code point in one index: an engine that indexes strings by code point.
        if (out) writeFour(out, o, c);
        o += 4;
      } else if ((c & 0xf800) !== 0xd800) {
        if (out) {
          out[o] = 0xe0 | (c >> 12);
          out[o + 1] = 0x80 | ((c >> 6) & 0x3f);
          out[o + 2] = 0x80 | (c & 0x3f);
        }
        o += 3;
      } else if (c < 0xdc00) {
        high = c;
      } else {
        loneSurrogate(c, base + j);
      }
    }
  }
  if (high !== 0) loneSurrogate(high, len - 1);
  return o;
}

/** Number of bytes `s` takes in UTF-8. Throws "bad-argument" for a lone surrogate. */
export function utf8Length(s: string): number {
  return walk(s, undefined, 0);
}

/**
 * Writes `s` as UTF-8 into `out` from `offset` and returns the offset after it. `out` must have
 * room for utf8Length(s) bytes there. Throws "bad-argument" for a lone surrogate.
 */
export function utf8Write(s: string, out: Uint8Array, offset: number): number {
  return walk(s, out, offset);
}

/** `s` as UTF-8, in one allocation of the exact size. */
export function utf8Encode(s: string): Uint8Array {
  const out = new Uint8Array(utf8Length(s));
  utf8Write(s, out, 0);
  return out;
}

// Code units are turned into text this many at a time: few enough for a small XS stack when
// spread as arguments, many enough that long text is not built one character at a time.
const CHUNK = 128;

/**
 * Decodes `bytes[start..end)` (the whole array by default), strictly. Error offsets are indices
 * into `bytes`, so a caller decoding a field in place reports where the fault is in its input.
 */
export function utf8Decode(bytes: Uint8Array, start = 0, end = bytes.length): string {
  if (start < 0 || end > bytes.length || start > end) {
    throw new OtaError("bad-argument", `UTF-8: range ${start}..${end} is outside ${bytes.length} bytes`);
  }
  // ASCII, the common case for keys and tokens: no unit buffer needed for short text.
  let i = start;
  while (i < end && bytes[i] < 0x80 && i - start < CHUNK) i++;
  if (i === end) return String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[]);

  const units: number[] = [];
  let parts: string[] | undefined;
  for (let j = start; j < i; j++) units.push(bytes[j]);
  while (i < end) {
    if (units.length >= CHUNK) {
      (parts ??= []).push(String.fromCharCode.apply(null, units));
      units.length = 0;
    }
    const b = bytes[i];
    if (b < 0x80) {
      units.push(b);
      i++;
      continue;
    }
    let need: number; // continuation bytes that follow
    let cp: number;
    let lo = 0x80; // the range the first continuation byte must be in
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
      if (b === 0xe0) lo = 0xa0; // below: overlong
      else if (b === 0xed) hi = 0x9f; // above: surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
      if (b === 0xf0) lo = 0x90; // below: overlong
      else if (b === 0xf4) hi = 0x8f; // above: beyond U+10FFFF
    } else if (b >= 0x80 && b <= 0xbf) {
      throw new Utf8Error(i, `unexpected continuation byte ${hexByte(b)}`);
    } else if (b === 0xc0 || b === 0xc1) {
      throw new Utf8Error(i, `overlong encoding (lead byte ${hexByte(b)})`);
    } else {
      throw new Utf8Error(i, `byte ${hexByte(b)} cannot start a character`);
    }
    if (i + need >= end) {
      // Fewer bytes left than the lead byte announces; name a wrong byte first if one is there.
      for (let k = i + 1; k < end; k++) {
        if ((bytes[k] & 0xc0) !== 0x80) throw new Utf8Error(i, `truncated sequence (byte ${hexByte(bytes[k])} at offset ${k} is not a continuation byte)`);
      }
      throw new Utf8Error(i, `truncated sequence (${hexByte(b)} needs ${need} continuation bytes, ${end - i - 1} remain)`);
    }
    const b1 = bytes[i + 1];
    if (b1 < lo || b1 > hi) {
      if ((b1 & 0xc0) !== 0x80) throw new Utf8Error(i, `truncated sequence (byte ${hexByte(b1)} at offset ${i + 1} is not a continuation byte)`);
      if (b === 0xed) throw new Utf8Error(i, "surrogate (U+D800-U+DFFF) encoded");
      if (b === 0xf4) throw new Utf8Error(i, "code point above U+10FFFF");
      throw new Utf8Error(i, "overlong encoding");
    }
    cp = (cp << 6) | (b1 & 0x3f);
    for (let k = 2; k <= need; k++) {
      const bk = bytes[i + k];
      if ((bk & 0xc0) !== 0x80) throw new Utf8Error(i, `truncated sequence (byte ${hexByte(bk)} at offset ${i + k} is not a continuation byte)`);
      cp = (cp << 6) | (bk & 0x3f);
    }
    i += need + 1;
    if (cp < 0x10000) {
      units.push(cp);
    } else {
      cp -= 0x10000;
      units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    }
  }
  const text = String.fromCharCode.apply(null, units);
  if (parts === undefined) return text;
  parts.push(text);
  return parts.join("");
}
