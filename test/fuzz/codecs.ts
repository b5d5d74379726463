/**
 * Fuzz targets for the codecs: CBOR against cborg, base64 and UTF-8 against Node's Buffer and
 * TextDecoder, CRC-32 against zlib, PEM and DER by round trips and canonical re-encoding.
 */
import fc from "fast-check";
import { crc32 as zlibCrc32 } from "node:zlib";
import * as cborg from "cborg";
import { CBOR_MAX_DEPTH, decodeCbor, encodeCbor, type CborValue } from "../../modules/codec/cbor.ts";
import { decodeBase64, encodeBase64 } from "../../modules/codec/base64.ts";
import { utf8Decode, utf8Encode, utf8Length } from "../../modules/codec/utf8.ts";
import { crc32 } from "../../modules/codec/crc32.ts";
import { parsePem } from "../../modules/codec/pem.ts";
import { bitStringBytes, readOid, readTlv, unsignedInteger } from "../../modules/codec/der.ts";
import { applyEdits, applyTextEdits, bytesEq, edits, ensure, refusesWith, target, type FuzzTarget } from "./support.ts";

/** String.prototype.isWellFormed (Node 20; ES2024, newer than the lib this repo compiles against). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

// ---------------------------------------------------------------------------------------------
// CBOR

const key = fc.oneof(fc.constantFrom("c", "f", "l", "o", "n", "b", "i", "p", "m", "__proto__", "toString", "7", "", "é", "\u{1f600}"), fc.string({ maxLength: 6 }).filter(wellFormed));
const leaf: fc.Arbitrary<CborValue> = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }).map((n) => (Object.is(n, -0) ? 0 : n)),
  fc.constantFrom(0, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, -24, -25),
  fc.string({ maxLength: 8 }).filter(wellFormed),
  fc.uint8Array({ maxLength: 40 }),
);
/** CBOR values inside the subset, with at most `depth` levels of maps. */
function cborValue(depth: number): fc.Arbitrary<CborValue> {
  if (depth === 0) return leaf;
  const map = fc.uniqueArray(fc.tuple(key, cborValue(depth - 1)), { maxLength: 4, selector: ([k]) => k }).map((entries) => {
    const m: Record<string, CborValue> = {};
    for (const [k, v] of entries) Object.defineProperty(m, k, { value: v, enumerable: true, writable: true, configurable: true });
    return m;
  });
  return fc.oneof({ weight: 2, arbitrary: leaf }, { weight: 1, arbitrary: map });
}
const subsetValue = fc.oneof(
  cborValue(CBOR_MAX_DEPTH),
  // A stream block around a value: the shape AWS sends, one map level used by the block.
  cborValue(CBOR_MAX_DEPTH - 1).map((v): CborValue => ({ c: "token", f: 0, l: 4096, i: 7, p: new Uint8Array(8), x: v })),
);

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) return a instanceof Uint8Array && b instanceof Uint8Array && bytesEq(a, b);
  if (typeof a === "object" && a !== null && typeof b === "object" && b !== null) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length || ka.some((k, i) => kb[i] !== k)) return false;
    const ra = a as Record<string, unknown>;
    const rb = b as Record<string, unknown>;
    return ka.every((k) => sameValue(ra[k], rb[k]));
  }
  return Object.is(a, b);
}

const CBORG = { rejectDuplicateMapKeys: true, useMaps: false } as const;

/** Encodes as ours, decodes back, and agrees with cborg both ways (cborg in insertion order). */
export const cborRoundTrip = target("cbor-roundtrip", subsetValue, (v) => {
  const ours = encodeCbor(v);
  ensure(sameValue(decodeCbor(ours), v), "decode(encode(v)) differs from v");
  ensure(sameValue(cborg.decode(ours, CBORG), v), "cborg reads our encoding as another value");
  ensure(bytesEq(cborg.encode(v, { mapSorter: () => 0 }), ours), "cborg encodes the value to other bytes (preferred heads)");
  const deeper: CborValue = { a: { b: { c: { d: { e: 1 } } } } };
  refusesWith(() => {
    encodeCbor({ v, deeper });
    throw new Error(`a map nested deeper than ${CBOR_MAX_DEPTH} was encoded`);
  }, ["bad-argument"]);
});

/** Random bytes and edited encodings: ours accepts only what cborg decodes to the same value. */
export const cborDecode = target(
  "cbor-decode",
  fc.oneof(
    fc.uint8Array({ maxLength: 48 }),
    fc.tuple(subsetValue, edits(3)).map(([v, e]) => applyEdits(encodeCbor(v), e)),
    // Heads of every major type and additional information, with a little after them.
    fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 10 })).map(([h, rest]) => Uint8Array.of(h, ...rest)),
    // Maps nested 1 to 40 deep: {"k": {"k": ... 1}}.
    fc.integer({ min: 1, max: 40 }).map((n) => Uint8Array.of(...new Array<number>(n).fill(0xa1).flatMap((x) => [x, 0x61, 0x6b]), 0x01)),
  ),
  (bytes) => {
    const ours = refusesWith(() => decodeCbor(bytes), ["malformed"]);
    let theirs: unknown;
    let theirsOk = true;
    try {
      theirs = cborg.decode(bytes, CBORG);
    } catch {
      theirsOk = false;
    }
    if (ours === undefined) return;
    ensure(theirsOk, "ours decodes what cborg refuses");
    ensure(sameValue(ours, theirs), "ours and cborg decode to different values");
  },
);

// ---------------------------------------------------------------------------------------------
// Base64

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const b64ish = fc.string({ unit: fc.constantFrom(...B64, "=", "-", "_", " ", "\n", "\u00e9", "A", "Q", "g"), maxLength: 24 });

export const base64 = target(
  "base64",
  fc.oneof(
    b64ish,
    fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.boolean(), edits(2)).map(([b, pad, e]) => {
      const s = Buffer.from(b).toString("base64");
      return applyTextEdits(pad ? s : s.replace(/=+$/, ""), e);
    }),
  ),
  (s) => {
    const ours = refusesWith(() => decodeBase64(s), ["malformed"]);
    if (/[-_]/.test(s)) ensure(ours === undefined, "the URL-safe alphabet is taken");
    if (ours === undefined) {
      // Node's encoding of any bytes, padded or not, must be taken.
      const canonical = Buffer.from(s, "base64").toString("base64");
      ensure(!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || (s !== canonical && s !== canonical.replace(/=+$/, "")), "refused Node's own encoding");
      return;
    }
    ensure(bytesEq(ours, Buffer.from(s, "base64")), "decodes differently from Buffer");
    ensure(encodeBase64(ours).replace(/=+$/, "") === s.replace(/=+$/, ""), "accepted a non-canonical text");
  },
);

export const base64Encode = target("base64-encode", fc.uint8Array({ maxLength: 64 }), (b) => {
  const s = encodeBase64(b);
  ensure(s === Buffer.from(b).toString("base64"), "encodes differently from Buffer");
  ensure(bytesEq(decodeBase64(s), b) && bytesEq(decodeBase64(s.replace(/=+$/, "")), b), "does not decode its own encoding");
  const url = Buffer.from(b).toString("base64url");
  if (/[-_]/.test(url)) ensure(refusesWith(() => decodeBase64(url), ["malformed"]) === undefined, "took base64url");
});

// ---------------------------------------------------------------------------------------------
// UTF-8

/** Byte sequences around every rule of RFC 3629: good ones of each length, overlongs, surrogates, too high, cut short. */
const FRAGMENTS: number[][] = [[0x41], [0x7f], [0xc2, 0x80], [0xdf, 0xbf], [0xe0, 0xa0, 0x80], [0xef, 0xbf, 0xbf], [0xef, 0xbb, 0xbf], [0xf0, 0x90, 0x80, 0x80], [0xf4, 0x8f, 0xbf, 0xbf],
  [0xc0, 0x80], [0xc1, 0xbf], [0xe0, 0x80, 0x80], [0xe0, 0x9f, 0xbf], [0xf0, 0x80, 0x80, 0x80], [0xf0, 0x8f, 0xbf, 0xbf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xed, 0x9f, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xff], [0x80], [0xbf], [0xc2], [0xe1, 0x80], [0xf1, 0x80, 0x80], [0xe1, 0x41], [0xf1, 0x80, 0x41]];
const utf8ish = fc.oneof(
  fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 12 }).map((parts) => Uint8Array.from(parts.flat())),
  // Past the decoder's 128-unit chunks.
  fc.array(fc.constantFrom(...FRAGMENTS.slice(0, 9)), { minLength: 100, maxLength: 200 }).chain((parts) =>
    fc.tuple(fc.constant(parts), fc.nat(), fc.constantFrom(...FRAGMENTS))).map(([parts, at, bad]) => {
    const p = parts.slice();
    p[at % p.length] = bad;
    return Uint8Array.from(p.flat());
  }),
  fc.uint8Array({ maxLength: 24 }),
);
const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

export const utf8DecodeTarget = target("utf8-decode", fc.tuple(utf8ish, fc.nat(), fc.nat()), ([bytes, a, b]) => {
  const start = a % (bytes.length + 1);
  const end = start + (b % (bytes.length - start + 1));
  const ours = refusesWith(() => utf8Decode(bytes, start, end), ["malformed"]);
  let theirs: string | undefined;
  try {
    theirs = fatal.decode(bytes.subarray(start, end));
  } catch {
    theirs = undefined;
  }
  ensure(ours === theirs, ours === undefined ? "refused what TextDecoder (fatal) takes" : theirs === undefined ? "took what TextDecoder (fatal) refuses" : "decodes differently from TextDecoder");
});

/** Strings of UTF-16 code units, lone surrogates included. */
const units = fc.string({ unit: fc.oneof(fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), fc.constantFrom("a", "\u{1f600}", "\ud800", "\udfff", "é")), maxLength: 16 });

export const utf8EncodeTarget = target("utf8-encode", fc.oneof(units, units.map((s) => s.repeat(20))), (s) => {
  if (!wellFormed(s)) {
    refusesWith(() => {
      utf8Encode(s);
      throw new Error("a lone surrogate was encoded");
    }, ["bad-argument"]);
    return;
  }
  const ours = utf8Encode(s);
  ensure(bytesEq(ours, Buffer.from(s, "utf8")) && utf8Length(s) === ours.length, "encodes differently from Buffer");
  ensure(utf8Decode(ours) === s, "does not decode back");
});

// ---------------------------------------------------------------------------------------------
// CRC-32

export const crc = target("crc32", fc.tuple(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), fc.nat()), ([a, b, seed]) => {
  ensure(crc32(a) === zlibCrc32(a), "differs from zlib");
  ensure(crc32(b, crc32(a)) === zlibCrc32(Buffer.concat([a, b])), "does not continue as zlib does");
  const prev = seed >>> 0;
  ensure(crc32(a, prev) === zlibCrc32(a, prev), "differs from zlib with a previous value");
});

// ---------------------------------------------------------------------------------------------
// PEM

const LABELS = ["PUBLIC KEY", "CERTIFICATE", "EC PRIVATE KEY", "X", ""];
const pemInput = fc.record({
  blocks: fc.array(fc.record({ label: fc.constantFrom(...LABELS), der: fc.uint8Array({ maxLength: 120 }), width: fc.constantFrom(64, 76, 1, 5, 1000) }), { maxLength: 3 }),
  crlf: fc.boolean(),
  junk: fc.constantFrom("", "Certificate:\n  Data: x\n", "Bag Attributes\n  localKeyID: 01\n", "   "),
  textEdits: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: edits(2) }),
});

export const pem = target("pem", pemInput, (g) => {
  const nl = g.crlf ? "\r\n" : "\n";
  let text = g.junk;
  for (const b of g.blocks) {
    const body = Buffer.from(b.der).toString("base64");
    const lines: string[] = [];
    for (let i = 0; i < body.length; i += b.width) lines.push(body.slice(i, i + b.width));
    text += [`-----BEGIN ${b.label}-----`, ...lines, `-----END ${b.label}-----`, g.junk].join(nl);
  }
  const edited = applyTextEdits(text, g.textEdits);
  const blocks = refusesWith(() => parsePem(edited), ["malformed"]);
  if (g.textEdits.length > 0) return;
  ensure(blocks !== undefined, "refused a well-formed PEM text");
  ensure(blocks.length === g.blocks.length, `found ${blocks.length} blocks, wrote ${g.blocks.length}`);
  blocks.forEach((b, i) => ensure(b.label === g.blocks[i].label && bytesEq(b.der, g.blocks[i].der), `block ${i} differs`));
});

// ---------------------------------------------------------------------------------------------
// DER

function lengthBytes(n: number): number[] {
  if (n < 0x80) return [n];
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return [0x80 | out.length, ...out];
}

/** X.690's encoding of a dotted OID, written here from the standard. */
function oidBytes(dotted: string): number[] {
  const arcs = dotted.split(".").map(Number);
  const out: number[] = [];
  [arcs[0] * 40 + arcs[1], ...arcs.slice(2)].forEach((v) => {
    const digits = [v % 128];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) digits.unshift(0x80 | x % 128);
    out.push(...digits);
  });
  return out;
}

const derish = fc.oneof(
  fc.uint8Array({ maxLength: 24 }),
  fc.tuple(fc.constantFrom(0x02, 0x03, 0x06, 0x30, 0xa0, 0x1f), fc.integer({ min: 0, max: 300 }), fc.uint8Array({ maxLength: 20 })).map(([t, n, v]) =>
    Uint8Array.from([t, ...lengthBytes(n), ...v])),
  fc.tuple(fc.constantFrom(0x02, 0x03, 0x06), fc.constantFrom([0x81, 0x05], [0x82, 0x00, 0x81], [0x80], [0x85, 1, 0, 0, 0, 0], [0x84, 0xff, 0xff, 0xff, 0xff]), fc.uint8Array({ maxLength: 6 })).map(([t, l, v]) =>
    Uint8Array.from([t, ...l, ...v])),
);

/** readTlv's bounds and minimal lengths, and that the contents readers refuse only with "malformed". */
export const der = target("der", fc.tuple(derish, fc.nat(), fc.nat()), ([bytes, a, b]) => {
  const offset = a % (bytes.length + 1);
  const limit = offset + (b % (bytes.length - offset + 1));
  const tlv = refusesWith(() => readTlv(bytes, offset, limit, "element"), ["malformed"]);
  if (tlv === undefined) return;
  ensure(tlv.start === offset && tlv.valueStart > offset && tlv.end <= limit && tlv.end - tlv.valueStart === tlv.length, "element outside its bounds");
  ensure(bytesEq(bytes.subarray(offset, tlv.valueStart), Uint8Array.from([tlv.tag, ...lengthBytes(tlv.length)])), "a length that is not in the fewest bytes was taken");
  const int = refusesWith(() => unsignedInteger(bytes, tlv, "n"), ["malformed"]);
  if (int !== undefined) ensure(int.length > 0 && (int[0] !== 0 || int.length === 1), "integer with a leading zero");
  refusesWith(() => bitStringBytes(bytes, tlv, "b"), ["malformed"]);
  const oid = refusesWith(() => readOid(bytes, tlv, "oid"), ["malformed"]);
  if (oid !== undefined) ensure(bytesEq(Uint8Array.from(oidBytes(oid)), bytes.subarray(tlv.valueStart, tlv.end)), `OID ${oid} does not encode back to its bytes`);
});

export const codecTargets: FuzzTarget[] = [cborRoundTrip, cborDecode, base64, base64Encode, utf8DecodeTarget, utf8EncodeTarget, crc, pem, der];
