/**
 * The portable CBOR contract (Node and XS), then Node-only cross-checks against an independent
 * implementation, cborg: same bytes for the same values, each decodes the other, and what cborg
 * writes outside the subset is refused. UTF-8 is checked against Node's TextEncoder/TextDecoder.
 */
import { describe, expect, it } from "vitest";
import { decode, encode, Tagged, type DecodeOptions, type EncodeOptions } from "cborg";
import { contract } from "./contract/vitest.ts";
import cbor from "./contract/cbor.contract.ts";
import { decodeCbor, encodeCbor, type CborMap, type CborValue } from "../modules/codec/cbor.ts";
import { utf8Decode, utf8Encode } from "../modules/codec/utf8.ts";
import { isOtaError } from "../modules/errors.ts";
import { seededRandom } from "./support/random.ts";

contract(cbor, new URL("./contract/cbor.contract.ts", import.meta.url));

// cborg sorts map keys by default; the stream protocol and our encoder keep insertion order.
const cborgEncode: EncodeOptions = { mapSorter: undefined };
// cborg at its strictest: shortest heads, no duplicate keys, no indefinite lengths, no undefined.
const cborgStrict: DecodeOptions = { strict: true, rejectDuplicateMapKeys: true, allowIndefinite: false, allowUndefined: false };


const MAX = Number.MAX_SAFE_INTEGER;
const BOUNDARIES = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, MAX];
const BYTE_LENGTHS = [0, 1, 23, 24, 255, 256, 65535, 65536, 70000];
const STRING_LENGTHS = [0, 1, 23, 24, 255, 256];

class Generator {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  below(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)];
  }
  int(): number {
    let n: number;
    if (this.next() < 0.6) {
      n = this.pick(BOUNDARIES) + this.pick([-1, 0, 0, 1]);
      n = Math.min(MAX, Math.max(0, n));
    } else {
      n = Math.floor(this.next() * 2 ** this.below(54));
      n = Math.min(MAX, n);
    }
    return this.next() < 0.5 ? n : -n || 0; // no -0: it would decode as 0
  }
  bytes(): Uint8Array {
    const len = this.next() < 0.1 ? this.pick(BYTE_LENGTHS) : this.below(300);
    const b = new Uint8Array(len);
    for (let i = 0; i < len; i++) b[i] = this.below(256);
    // sometimes a view with an offset into a larger buffer
    if (this.next() < 0.3) {
      const big = new Uint8Array(len + 7);
      big.set(b, 3);
      return big.subarray(3, 3 + len);
    }
    return b;
  }
  codePoint(): number {
    switch (this.below(4)) {
      case 0:
        return this.below(0x80);
      case 1:
        return 0x80 + this.below(0x800 - 0x80);
      case 2: {
        const c = 0x800 + this.below(0x10000 - 0x800 - 0x800);
        return c < 0xd800 ? c : c + 0x800; // skip surrogates
      }
      default:
        return 0x10000 + this.below(0x110000 - 0x10000);
    }
  }
  string(maxCodePoints = 40): string {
    let n = this.next() < 0.2 ? this.pick(STRING_LENGTHS) : this.below(maxCodePoints);
    let s = "";
    const ascii = this.next() < 0.4;
    while (n-- > 0) s += ascii ? String.fromCharCode(0x20 + this.below(95)) : String.fromCodePoint(this.codePoint());
    return s;
  }
  map(depth: number): CborMap {
    const m: CborMap = {};
    const n = this.below(7);
    for (let i = 0; i < n; i++) m[this.string(6)] = this.value(depth + 1);
    return m;
  }
  value(depth = 1): CborValue {
    const kind = this.below(depth < 4 ? 5 : 3);
    if (kind === 0) return this.int();
    if (kind === 1) return this.bytes();
    if (kind === 2) return this.string();
    return this.map(depth);
  }
}

function bytesOf(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Deep equality with bytes compared fast and key order checked. */
function expectSame(actual: unknown, expected: CborValue, path = "$"): void {
  if (expected instanceof Uint8Array) {
    expect(actual, path).toBeInstanceOf(Uint8Array);
    expect(bytesOf(actual as Uint8Array).equals(bytesOf(expected)), `${path}: bytes differ`).toBe(true);
  } else if (typeof expected === "object") {
    expect(typeof actual, path).toBe("object");
    const a = actual as Record<string, unknown>;
    expect(Object.keys(a), `${path}: keys`).toEqual(Object.keys(expected));
    for (const k of Object.keys(expected)) expectSame(a[k], expected[k], `${path}.${k}`);
  } else {
    expect(actual, path).toBe(expected);
  }
}

function expectMalformed(bytes: Uint8Array, text: string): void {
  let error: unknown;
  try {
    decodeCbor(bytes);
  } catch (e) {
    error = e;
  }
  expect(isOtaError(error, "malformed"), `expected malformed for ${bytesOf(bytes).toString("hex")}, got ${String(error)}`).toBe(true);
  expect((error as Error).message).toContain(text);
}

const fromHex = (h: string) => new Uint8Array(Buffer.from(h, "hex"));

describe("cbor against cborg [node]", () => {
  it("every integer head boundary, both signs, encodes as cborg does and decodes its output", () => {
    const values: number[] = [];
    for (const b of BOUNDARIES) for (const d of [-1, 0, 1]) if (b + d >= 0 && b + d <= MAX) values.push(b + d, -(b + d) || 0);
    for (const v of values) {
      const ours = encodeCbor(v);
      expect(bytesOf(ours).toString("hex"), String(v)).toBe(bytesOf(encode(v, cborgEncode)).toString("hex"));
      expect(decodeCbor(encode(v))).toBe(v);
      expect(decode(ours, cborgStrict)).toBe(v);
    }
    expect(values.length).toBe(62);
    // -0 has no integer form: both write 0
    expect(bytesOf(encodeCbor(-0)).equals(bytesOf(encode(-0)))).toBe(true);
  });

  it("400 pseudo-random values: same bytes as cborg, and each decodes the other's", () => {
    const g = new Generator(0x5eed);
    let maps = 0;
    let bigBytes = 0;
    for (let i = 0; i < 400; i++) {
      const v = g.value();
      if (typeof v === "object" && !(v instanceof Uint8Array)) maps++;
      const ours = encodeCbor(v);
      const theirs = encode(v, cborgEncode);
      if (ours.length > 65536) bigBytes++;
      expect(bytesOf(ours).equals(bytesOf(theirs)), `value ${i}: encodings differ`).toBe(true);
      expectSame(decodeCbor(theirs), v, `ours(cborg(value ${i}))`);
      expectSame(decode(ours, cborgStrict), v, `cborg(ours(value ${i}))`);
      // and our round trip keeps key order byte for byte
      expect(bytesOf(encodeCbor(decodeCbor(ours))).equals(bytesOf(ours))).toBe(true);
    }
    expect(maps).toBeGreaterThan(50);
    expect(bigBytes).toBeGreaterThan(0);
  });

  it("AWS-shaped messages with 128 KB blocks: same bytes, payload decoded as a view", () => {
    const g = new Generator(7);
    const p = g.bytes();
    const block = new Uint8Array(131072);
    for (let i = 0; i < block.length; i++) block[i] = (i * 31) & 0xff;
    const response = { c: "client-token-1", f: 0, l: block.length, i: 12, p: block };
    const ours = encodeCbor(response);
    expect(bytesOf(ours).equals(bytesOf(encode(response, cborgEncode)))).toBe(true);
    const back = decodeCbor(ours) as CborMap;
    expect((back.p as Uint8Array).buffer).toBe(ours.buffer);
    expectSame(back, response);
    const request = { c: "client-token-1", f: 0, l: 131072, o: 3, n: 8, b: p };
    expect(bytesOf(encodeCbor(request)).equals(bytesOf(encode(request, cborgEncode)))).toBe(true);
  });

  it("non-preferred heads: ours and lenient cborg agree, strict cborg refuses them", () => {
    const cases: [string, CborValue][] = [
      ["1800", 0],
      ["190017", 23],
      ["1b0000000000000001", 1],
      ["3a00000000", -1],
      ["5800", new Uint8Array(0)],
      ["780161", "a"],
      ["b90001616101", { a: 1 }],
    ];
    for (const [h, v] of cases) {
      expectSame(decodeCbor(fromHex(h)), v, h);
      expectSame(decode(fromHex(h)), v, h);
      expect(() => decode(fromHex(h), cborgStrict), h).toThrow();
    }
  });

  it("what cborg writes outside the subset is refused as malformed", () => {
    const outside: [unknown, string][] = [
      [[1, 2], "array (major type 4) at offset 0"],
      [{ a: [1] }, "array (major type 4) at offset 3"],
      [[], "array"],
      [1.5, "half-precision float"],
      [100000.5, "single-precision float"],
      [1.1, "double-precision float"],
      [2 ** 53, "float"],
      [-(2 ** 53), "float"],
      [NaN, "float"],
      [-Infinity, "float"],
      [true, "true (major type 7)"],
      [false, "false (major type 7)"],
      [null, "null (major type 7)"],
      [undefined, "undefined (major type 7)"],
      [{ a: null }, "null (major type 7) at offset 3"],
      [new Tagged(1, 1363896240), "tag (major type 6) at offset 0"],
      [{ t: new Tagged(32, "https://x") }, "tag (major type 6) at offset 3"],
      [2n ** 53n, "integer at offset 0 is beyond 2^53-1"],
      [2n ** 64n - 1n, "beyond 2^53-1"],
      [-(2n ** 53n), "beyond -(2^53-1)"],
      [-(2n ** 64n), "beyond -(2^53-1)"],
      [new Map<unknown, unknown>([[1, "a"]]), "map key at offset 1 is not a text string (major type 0)"],
      [new Map<unknown, unknown>([[new Uint8Array([1]), 1]]), "(major type 2)"],
      [{ a: { b: { c: { d: { e: 1 } } } } }, "map at offset 12 is nested deeper than 4 maps"],
    ];
    for (const [value, text] of outside) {
      const bytes = encode(value, cborgEncode);
      expect(() => decode(bytes, { tags: Tagged.preserve(1, 32), useMaps: true }), `cborg reads its own ${String(value)}`).not.toThrow();
      expectMalformed(bytes, text);
    }
    // cborg only writes definite lengths; these indefinite ones are by hand. cborg reads
    // indefinite maps (and so do we: AWS sends them) and refuses indefinite strings; so do we.
    for (const [h, v] of [["bf616101ff", { a: 1 }], ["a16161bf616201ff", { a: { b: 1 } }]] as const) {
      expect(decode(fromHex(h))).toEqual(v);
      expect(decodeCbor(fromHex(h))).toEqual(v);
    }
    const indefinite: [string, unknown][] = [
      ["5f42010243030405ff", undefined],
      ["7f657374726561646d696e67ff", undefined],
      ["a161615f4101ff", undefined],
    ];
    for (const [h, v] of indefinite) {
      if (v === undefined) expect(() => decode(fromHex(h)), h).toThrow();
      else expect(decode(fromHex(h)), h).toEqual(v);
      expectMalformed(fromHex(h), "indefinite length at offset");
    }
  });

  it("duplicate keys: cborg keeps the last unless told otherwise; ours always refuses", () => {
    const dup = fromHex("a2616101616102");
    expect(decode(dup)).toEqual({ a: 2 });
    expect(() => decode(dup, cborgStrict)).toThrow();
    expectMalformed(dup, 'duplicate map key "a" at offset 4');
  });
});

describe("utf8 against TextEncoder/TextDecoder [node]", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const native = (b: Uint8Array): string | undefined => {
    try {
      return fatal.decode(b);
    } catch {
      return undefined;
    }
  };
  const ours = (b: Uint8Array): string | undefined => {
    try {
      return utf8Decode(b);
    } catch (e) {
      if (!isOtaError(e, "malformed")) throw e;
      return undefined;
    }
  };

  it("every code point encodes as TextEncoder does and decodes back", () => {
    let s = "";
    const parts: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      s += String.fromCodePoint(cp);
      if (s.length >= 4096) {
        parts.push(s);
        s = "";
      }
    }
    parts.push(s);
    const all = parts.join("");
    const b = utf8Encode(all);
    expect(bytesOf(b).equals(Buffer.from(new TextEncoder().encode(all)))).toBe(true);
    expect(utf8Decode(b) === all).toBe(true);
  });

  it("every 1- and 2-byte sequence is accepted or refused exactly as the fatal TextDecoder does", () => {
    const b = new Uint8Array(2);
    for (let x = 0; x < 256; x++) {
      expect(ours(b.subarray(0, 1).fill(x)), `${x}`).toBe(native(b.subarray(0, 1)));
      for (let y = 0; y < 256; y++) {
        b[0] = x;
        b[1] = y;
        const n = native(b);
        if (ours(b) !== n) expect(ours(b), bytesOf(b).toString("hex")).toBe(n);
      }
    }
  });

  it("50,000 random short sequences near the edges agree with the fatal TextDecoder", () => {
    const g = new Generator(42);
    const edge = [0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
    let refused = 0;
    for (let i = 0; i < 50000; i++) {
      const b = new Uint8Array(1 + g.below(8));
      for (let j = 0; j < b.length; j++) b[j] = g.next() < 0.8 ? g.pick(edge) : g.below(256);
      const n = native(b);
      if (n === undefined) refused++;
      const o = ours(b);
      if (o !== n) expect(o, bytesOf(b).toString("hex")).toBe(n);
    }
    expect(refused).toBeGreaterThan(10000);
    expect(refused).toBeLessThan(49000);
  });
});
