/**
 * A minimal, strict DER reader: just what keys, certificates and ECDSA signatures need.
 * Strict because the same bytes must not parse two ways (X.690 section 10): definite lengths
 * only, in the fewest bytes, every element inside its parent, nothing after a structure that
 * must end. Only low tag numbers (one tag byte) exist in the structures read here.
 * Every failure is an OtaError "malformed" whose message starts "DER:" and gives the offset;
 * callers that need another code (signatures) re-throw with theirs.
 */
import { OtaError } from "../errors.ts";

export const TAG_INTEGER = 0x02;
export const TAG_BIT_STRING = 0x03;
export const TAG_NULL = 0x05;
export const TAG_OID = 0x06;
export const TAG_SEQUENCE = 0x30;
export const TAG_SET = 0x31;

const TAG_NAMES: Record<number, string> = Object.freeze({
  0x02: "INTEGER",
  0x03: "BIT STRING",
  0x04: "OCTET STRING",
  0x05: "NULL",
  0x06: "OBJECT IDENTIFIER",
  0x30: "SEQUENCE",
  0x31: "SET",
});

/** One element: `bytes[start..end)` whole, `bytes[valueStart..end)` its contents. */
export interface Tlv {
  tag: number;
  start: number;
  valueStart: number;
  /** Offset just past the element: where its next sibling starts. */
  end: number;
  /** Length of the contents. */
  length: number;
}

function fail(message: string): never {
  throw new OtaError("malformed", `DER: ${message}`);
}

export function tagName(tag: number): string {
  const hex = "0x" + (tag < 16 ? "0" : "") + tag.toString(16);
  const name = TAG_NAMES[tag] ?? ((tag & 0xc0) === 0x80 ? `[${tag & 0x1f}]` : undefined);
  return name === undefined ? `tag ${hex}` : `${name} (${hex})`;
}

/**
 * Reads the element at `offset`, which must fit before `limit` (the end of its parent).
 * `what` names the element in messages ("signature", "INTEGER r").
 */
export function readTlv(bytes: Uint8Array, offset: number, limit: number, what: string): Tlv {
  if (offset >= limit) fail(`${what} is missing at offset ${offset} (the enclosing structure ends there)`);
  const tag = bytes[offset];
  if ((tag & 0x1f) === 0x1f) fail(`${what} at offset ${offset} has a multi-byte tag, not supported here`);
  if (offset + 1 >= limit) fail(`${what} at offset ${offset} ends before its length byte`);
  const first = bytes[offset + 1];
  let length: number;
  let valueStart: number;
  if (first < 0x80) {
    length = first;
    valueStart = offset + 2;
  } else if (first === 0x80) {
    fail(`${what} at offset ${offset} has an indefinite length (BER, not DER)`);
  } else {
    const count = first & 0x7f;
    // 4 length bytes already describe 4 GB: nothing a device reads comes close.
    if (count > 4) fail(`${what} at offset ${offset} has a ${count}-byte length field`);
    if (offset + 2 + count > limit) fail(`${what} at offset ${offset} ends inside its length field`);
    if (bytes[offset + 2] === 0) fail(`${what} at offset ${offset} has a length with a leading zero byte (not minimal)`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[offset + 2 + i];
    if (length < 0x80) fail(`${what} at offset ${offset} uses the long form for length ${length} (not minimal)`);
    valueStart = offset + 2 + count;
  }
  const end = valueStart + length;
  if (end > limit) fail(`${what} at offset ${offset} has length ${length}, but only ${limit - valueStart} bytes remain in its enclosing structure`);
  return { tag, start: offset, valueStart, end, length };
}

/** readTlv, and the element must have this tag. */
export function expectTlv(bytes: Uint8Array, offset: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(bytes, offset, limit, what);
  if (tlv.tag !== tag) fail(`expected ${tagName(tag)} for ${what} at offset ${offset}, found ${tagName(tlv.tag)}`);
  return tlv;
}

/** The structure (or its contents) must end exactly at `limit`. */
export function expectEnd(offset: number, limit: number, what: string): void {
  if (offset < limit) fail(`${limit - offset} trailing byte${limit - offset === 1 ? "" : "s"} at offset ${offset} after ${what}`);
}

/** Reads a whole DER buffer that must be exactly one element with this tag. */
export function readWhole(bytes: Uint8Array, tag: number, what: string): Tlv {
  const tlv = expectTlv(bytes, 0, bytes.length, tag, what);
  expectEnd(tlv.end, bytes.length, what);
  return tlv;
}

/**
 * The magnitude of a non-negative INTEGER, without its sign byte: DER integers are two's
 * complement in the fewest bytes, so a 0x00 first byte is allowed only to keep a set top bit
 * of the next byte from reading as negative.
 */
export function unsignedInteger(bytes: Uint8Array, tlv: Tlv, what: string): Uint8Array {
  if (tlv.tag !== TAG_INTEGER) fail(`expected ${tagName(TAG_INTEGER)} for ${what} at offset ${tlv.start}, found ${tagName(tlv.tag)}`);
  if (tlv.length === 0) fail(`${what} at offset ${tlv.start} is empty`);
  const v = bytes.subarray(tlv.valueStart, tlv.end);
  if (v[0] & 0x80) fail(`${what} at offset ${tlv.start} is negative`);
  if (v[0] === 0 && v.length > 1) {
    if (!(v[1] & 0x80)) fail(`${what} has a superfluous leading zero at offset ${tlv.valueStart}`);
    return v.subarray(1);
  }
  return v;
}

/** An OBJECT IDENTIFIER as a dotted string ("1.2.840.10045.2.1"). */
export function readOid(bytes: Uint8Array, tlv: Tlv, what: string): string {
  if (tlv.tag !== TAG_OID) fail(`expected ${tagName(TAG_OID)} for ${what} at offset ${tlv.start}, found ${tagName(tlv.tag)}`);
  if (tlv.length === 0) fail(`${what} at offset ${tlv.start} is an empty OBJECT IDENTIFIER`);
  const parts: number[] = [];
  let value = 0;
  let fresh = true;
  for (let i = tlv.valueStart; i < tlv.end; i++) {
    const b = bytes[i];
    // Base-128 digits: a 0x80 first digit would be a leading zero, which DER forbids.
    if (fresh && b === 0x80) fail(`${what}: sub-identifier at offset ${i} has a leading zero digit (not minimal)`);
    if (value > (Number.MAX_SAFE_INTEGER - 127) / 128) fail(`${what}: sub-identifier at offset ${i} is too large`);
    value = value * 128 + (b & 0x7f);
    fresh = (b & 0x80) === 0;
    if (fresh) {
      parts.push(value);
      value = 0;
    }
  }
  if (!fresh) fail(`${what}: OBJECT IDENTIFIER at offset ${tlv.start} ends inside a sub-identifier`);
  // The first sub-identifier packs two arcs: 40 * first + second, first being 0, 1 or 2.
  const head = parts[0];
  const first = head < 40 ? 0 : head < 80 ? 1 : 2;
  return [first, head - first * 40, ...parts.slice(1)].join(".");
}

/** The contents of a BIT STRING that must hold whole bytes (first content byte: 0 unused bits). */
export function bitStringBytes(bytes: Uint8Array, tlv: Tlv, what: string): Uint8Array {
  if (tlv.tag !== TAG_BIT_STRING) fail(`expected ${tagName(TAG_BIT_STRING)} for ${what} at offset ${tlv.start}, found ${tagName(tlv.tag)}`);
  if (tlv.length === 0) fail(`${what} at offset ${tlv.start} is an empty BIT STRING (no unused-bits byte)`);
  const unused = bytes[tlv.valueStart];
  if (unused !== 0) fail(`${what} at offset ${tlv.start} has ${unused} unused bits; a whole number of bytes is required`);
  return bytes.subarray(tlv.valueStart + 1, tlv.end);
}
