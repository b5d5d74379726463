/**
 * The CBOR subset of AWS IoT MQTT file streams (RFC 8949), and strict UTF-8: RFC 8949 Appendix A
 * examples inside the subset both ways, AWS stream messages byte for byte, every refusal with
 * its code and message, byte strings decoded as views. Portable: runs on Node and on XS.
 */
import { suite } from "./harness.ts";
import { AssertionError, bytesEqual, equal, hex, ok, throwsCode } from "./assert.ts";
import { CBOR_MAX_DEPTH, decodeCbor, encodeCbor, type CborMap, type CborValue } from "../../modules/codec/cbor.ts";
import { utf8Decode, utf8Encode, utf8Length } from "../../modules/codec/utf8.ts";

function fromHex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.substr(i * 2, 2), 16);
  return out;
}

/** Same CBOR value: numbers by Object.is, bytes by content, maps with the same keys in the same order. */
function same(actual: CborValue, expected: CborValue, what = "value"): void {
  if (expected instanceof Uint8Array) {
    ok(actual instanceof Uint8Array, `${what}: expected bytes, got ${typeof actual}`);
    bytesEqual(actual, expected, what);
    return;
  }
  if (typeof expected === "object") {
    ok(typeof actual === "object" && !(actual instanceof Uint8Array), `${what}: expected a map, got ${typeof actual}`);
    const ak = Object.keys(actual);
    const ek = Object.keys(expected);
    equal(ak.join(","), ek.join(","), `${what}: keys`);
    for (const k of ek) same(actual[k], expected[k], `${what}.${k}`);
    return;
  }
  equal(actual, expected, what);
}

function asMap(v: CborValue): CborMap {
  if (typeof v !== "object" || v instanceof Uint8Array) throw new AssertionError(`expected a map, got ${typeof v}`);
  return v;
}

function asBytes(v: CborValue): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new AssertionError(`expected bytes, got ${typeof v}`);
  return v;
}

/** Encodes to exactly `h` and decodes `h` back to the value. */
function both(value: CborValue, h: string): void {
  const what = `${typeof value === "string" ? JSON.stringify(value) : String(value)} <-> ${h}`;
  equal(hex(encodeCbor(value)), h, `encode ${what}`);
  same(decodeCbor(fromHex(h)), value, `decode ${what}`);
}

const rejects = (h: string, text: string) => throwsCode(() => decodeCbor(fromHex(h)), "malformed", text);
const refuses = (value: unknown, text: string) => throwsCode(() => encodeCbor(value as CborValue), "bad-argument", text);

const TOKEN = "65746f6b656e"; // "token" as a text string: 65 then the 5 bytes

export default suite("cbor", (test) => {
  test("RFC 8949 Appendix A: unsigned and negative integers", () => {
    both(0, "00");
    both(1, "01");
    both(10, "0a");
    both(23, "17");
    both(24, "1818");
    both(25, "1819");
    both(100, "1864");
    both(1000, "1903e8");
    both(1000000, "1a000f4240");
    both(1000000000000, "1b000000e8d4a51000");
    both(9007199254740991, "1b001fffffffffffff");
    both(-1, "20");
    both(-10, "29");
    both(-100, "3863");
    both(-1000, "3903e7");
  });

  test("RFC 8949 Appendix A: byte strings, text strings, maps", () => {
    both(new Uint8Array(0), "40");
    both(new Uint8Array([1, 2, 3, 4]), "4401020304");
    both("", "60");
    both("a", "6161");
    both("IETF", "6449455446");
    both('"\\', "62225c");
    both("\u00fc", "62c3bc");
    both("\u6c34", "63e6b0b4");
    both("\ud800\udd51", "64f0908591");
    both({}, "a0");
    both({ a: "A", b: "B", c: "C", d: "D", e: "E" }, "a56161614161626142616361436164614461656145");
    // {"a": 1, "b": [2, 3]} holds an array: outside the subset, refused where the array starts.
    rejects("a26161016162820203", "array (major type 4) at offset 6 is not supported");
  });

  test("preferred encodings at every head-length boundary, both signs", () => {
    const cases: [number, string][] = [
      [23, "17"],
      [24, "1818"],
      [255, "18ff"],
      [256, "190100"],
      [65535, "19ffff"],
      [65536, "1a00010000"],
      [4294967295, "1affffffff"],
      [4294967296, "1b0000000100000000"],
      [9007199254740991, "1b001fffffffffffff"],
      [-24, "37"],
      [-25, "3818"],
      [-256, "38ff"],
      [-257, "390100"],
      [-65536, "39ffff"],
      [-65537, "3a00010000"],
      [-4294967296, "3affffffff"],
      [-4294967297, "3b0000000100000000"],
      [-9007199254740991, "3b001ffffffffffffe"],
    ];
    for (const [n, h] of cases) both(n, h);
    equal(hex(encodeCbor(-0)), "00", "-0 is encoded as 0");
    // string heads at the same boundaries
    for (const [len, head] of [[23, "77"], [24, "7818"], [255, "78ff"], [256, "790100"], [65535, "79ffff"], [65536, "7a00010000"]] as const) {
      const s = "x".repeat(len);
      const enc = encodeCbor(s);
      equal(hex(enc.subarray(0, head.length / 2)), head, `text head for length ${len}`);
      equal(enc.length, head.length / 2 + len, `text size for length ${len}`);
      equal(decodeCbor(enc), s, `text of length ${len}`);
    }
    const bytes = new Uint8Array(65536);
    for (let i = 0; i < bytes.length; i++) bytes[i] = i * 7;
    const enc = encodeCbor(bytes);
    equal(hex(enc.subarray(0, 5)), "5a00010000", "byte string head for 65536");
    bytesEqual(asBytes(decodeCbor(enc)), bytes, "65536 bytes");
  });

  test("AWS GetStream request: exact bytes, keys in insertion order, and back", () => {
    const request = { c: "token", f: 0, l: 4096, o: 0, n: 32, b: new Uint8Array([0xff, 0xff, 0xff, 0xff]) };
    // a6 = map of 6; 61 63 = "c"; 19 1000 = 4096; 18 20 = 32; 44 = 4 bytes
    const h = "a6" + "6163" + TOKEN + "616600" + "616c191000" + "616f00" + "616e1820" + "616244ffffffff";
    equal(hex(encodeCbor(request)), h);
    same(decodeCbor(fromHex(h)), request);
    equal(hex(encodeCbor({ b: 1, a: 2 })), "a2616201616102", "insertion order, not sorted");
  });

  test("AWS data response: exact bytes, payload decoded as a view into the input", () => {
    const payload = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
    const response = { c: "token", f: 0, l: 4, i: 7, p: payload };
    const h = "a5" + "6163" + TOKEN + "616600" + "616c04" + "616907" + "617044deadbeef";
    equal(hex(encodeCbor(response)), h);
    // the input is itself a view at an offset, as a received MQTT payload often is
    const frame = fromHex("0000" + h + "00");
    const input = frame.subarray(2, frame.length - 1);
    const m = asMap(decodeCbor(input));
    same(m, response);
    const p = asBytes(m.p);
    ok(p.buffer === input.buffer, "payload shares the input's buffer (no copy)");
    equal(p.byteOffset, 2 + h.length / 2 - 4, "payload view offset");
    input[input.length - 1] = 0x42;
    equal(p[3], 0x42, "a view sees later changes to the input");
  });

  test("AWS error response round trip", () => {
    const error = { o: "InvalidRequest", m: "bad", c: "token" };
    const h = "a3" + "616f6e496e76616c696452657175657374" + "616d63626164" + "6163" + TOKEN;
    equal(hex(encodeCbor(error)), h);
    same(decodeCbor(fromHex(h)), error);
  });

  test("a 4 KB data response decodes without copying the block", () => {
    const header = fromHex("a5" + "6163" + TOKEN + "616600" + "616c191000" + "616907" + "6170591000");
    const input = new Uint8Array(header.length + 4096);
    input.set(header);
    for (let i = 0; i < 4096; i++) input[header.length + i] = i & 0xff;
    const m = asMap(decodeCbor(input));
    equal(m.c, "token");
    equal(m.l, 4096);
    equal(m.i, 7);
    const p = asBytes(m.p);
    equal(p.length, 4096);
    ok(p.buffer === input.buffer && p.byteOffset === header.length, "payload is a view");
    equal(p[4095], 0xff);
  });

  test("encoding Uint8Array views uses their window only", () => {
    const base = new Uint8Array([9, 1, 2, 3, 9]);
    equal(hex(encodeCbor(base.subarray(1, 4))), "43010203");
    equal(hex(encodeCbor({ p: base.subarray(4) })), "a1617041" + "09");
    equal(hex(encodeCbor(new Uint8Array(base.buffer, 0, 0))), "40");
  });

  test("non-preferred heads are accepted on decode", () => {
    same(decodeCbor(fromHex("1800")), 0);
    same(decodeCbor(fromHex("190017")), 23);
    same(decodeCbor(fromHex("1a00000001")), 1);
    same(decodeCbor(fromHex("1b0000000000000001")), 1);
    same(decodeCbor(fromHex("3800")), -1);
    same(decodeCbor(fromHex("5800")), new Uint8Array(0));
    same(decodeCbor(fromHex("780161")), "a");
    same(decodeCbor(fromHex("7a0000000161")), "a");
    same(decodeCbor(fromHex("b90001616101")), { a: 1 });
    same(decodeCbor(fromHex("a17900016101")), { a: 1 }, "non-preferred key head");
  });

  test("refused: tags, arrays, floats, simple values, break", () => {
    rejects("c074323031332d30332d32315432303a30343a30305a", "tag (major type 6) at offset 0 is not supported");
    rejects("c249010000000000000000", "tag (major type 6) at offset 0");
    rejects("a16161c101", "tag (major type 6) at offset 3");
    rejects("80", "array (major type 4) at offset 0 is not supported");
    rejects("83010203", "array (major type 4) at offset 0");
    rejects("f90000", "half-precision float (major type 7) at offset 0 is not supported");
    rejects("fa47c35000", "single-precision float");
    rejects("fb3ff199999999999a", "double-precision float");
    rejects("f4", "false (major type 7) at offset 0");
    rejects("f5", "true (major type 7)");
    rejects("f6", "null (major type 7)");
    rejects("f7", "undefined (major type 7)");
    rejects("f0", "simple value 16");
    rejects("f8ff", "simple value (one-byte form)");
    rejects("ff", "unexpected break (0xff) at offset 0");
    rejects("a1616cf6", "null (major type 7) at offset 3");
  });

  test("indefinite-length maps, as AWS sends its stream refusals, decode", () => {
    same(decodeCbor(fromHex("bf616101ff")), { a: 1 }, "flat");
    same(decodeCbor(fromHex("a16161bf616201ff")), { a: { b: 1 } }, "nested");
    same(decodeCbor(fromHex("bfff")), {}, "empty");
    const refusal = decodeCbor(fromHex("bf616f705265736f757263654e6f74466f756e64616d6446696c65ff")) as Record<string, unknown>;
    equal(refusal["o"], "ResourceNotFound");
    equal(refusal["m"], "File");
    throwsCode(() => decodeCbor(fromHex("bf616101")), "malformed", "no break");
    throwsCode(() => decodeCbor(fromHex("bf6161")), "malformed", "truncated");
    throwsCode(() => decodeCbor(fromHex("bf616101ff00")), "malformed", "trailing");
  });

  test("refused: indefinite lengths and reserved additional information", () => {
    rejects("5f42010243030405ff", "indefinite length at offset 0 is not supported");
    rejects("7f657374726561646d696e67ff", "indefinite length at offset 0");
    rejects("bf61610161629f0203ffff", "array (major type 4) at offset 6");
    rejects("a161615f4101ff", "indefinite length at offset 3 is not supported");
    rejects("9fff", "array (major type 4)");
    rejects("1f", "additional information 31 at offset 0 is not valid for an integer");
    rejects("3f", "not valid for an integer");
    for (const ib of [0x1c, 0x1d, 0x1e, 0x3c, 0x5c, 0x7d, 0xbe]) {
      rejects((ib < 16 ? "0" : "") + ib.toString(16), `reserved additional information ${ib & 0x1f} at offset 0`);
    }
    rejects("a161611c", "reserved additional information 28 at offset 3");
  });

  test("refused: integers beyond 2^53-1 in magnitude", () => {
    rejects("1b0020000000000000", "integer at offset 0 is beyond 2^53-1");
    rejects("1bffffffffffffffff", "beyond 2^53-1");
    rejects("3b001fffffffffffff", "negative integer at offset 0 is beyond -(2^53-1)");
    rejects("3bffffffffffffffff", "beyond -(2^53-1)");
    rejects("a161691b0020000000000000", "integer at offset 3");
  });

  test("refused: truncated input, and lengths beyond the input before allocating", () => {
    rejects("", "truncated input: an item should start at offset 0");
    rejects("18", "truncated input: the head at offset 0 needs 1 more bytes, 0 remain");
    rejects("1903", "needs 2 more bytes, 1 remain");
    rejects("1b00000000000000", "needs 8 more bytes, 7 remain");
    rejects("4401020304".slice(0, 6), "byte string at offset 0 claims 4 bytes, 2 remain");
    rejects("6449455446".slice(0, 8), "text string at offset 0 claims 4 bytes, 3 remain");
    rejects("a1616101a0".slice(0, 6), "truncated input: an item should start at offset 3");
    rejects("a2616101", "map at offset 0 claims 2 entries, 3 bytes remain");
    rejects("5b0000000100000000", "byte string at offset 0 claims 4294967296 bytes, 0 remain");
    rejects("5affffffff00", "claims 4294967295 bytes, 1 remain");
    rejects("7bffffffffffffffff", "text string at offset 0 claims");
    rejects("bb00000000ffffffff", "map at offset 0 claims 4294967295 entries");
    rejects("a161705a7fffffff0102", "byte string at offset 3 claims 2147483647 bytes, 2 remain");
  });

  test("refused: trailing bytes after the top-level item", () => {
    rejects("0000", "1 trailing byte after the top-level item, at offset 1");
    rejects("a0a0a0", "2 trailing bytes after the top-level item, at offset 1");
    rejects("616100", "at offset 2");
  });

  test("refused: map keys that are not text, duplicate keys", () => {
    rejects("a10101", "map key at offset 1 is not a text string (major type 0)");
    rejects("a1200101", "(major type 1)");
    rejects("a141610101", "map key at offset 1 is not a text string (major type 2)");
    rejects("a1a00101", "(major type 5)");
    rejects("a1800101", "(major type 4)");
    rejects("a1f601", "(major type 7)");
    rejects("a2616101616102", 'duplicate map key "a" at offset 4');
    rejects("a361610161626100780161" + "02", 'duplicate map key "a" at offset 8');
    same(decodeCbor(fromHex("a161610a")), { a: 10 }, "a single key is fine");
  });

  test("refused: invalid UTF-8 in text strings and keys", () => {
    rejects("62c080", "text string at offset 0 is not valid UTF-8: overlong encoding (lead byte 0xc0) at offset 1");
    rejects("63e08080", "not valid UTF-8: overlong encoding at offset 1");
    rejects("64f08282ac", "overlong encoding at offset 1");
    rejects("63eda080", "surrogate");
    rejects("63edbfbf", "surrogate");
    rejects("64f4908080", "code point above U+10FFFF");
    rejects("64f5808080", "byte 0xf5 cannot start a character");
    rejects("61ff", "byte 0xff cannot start a character");
    rejects("6180", "unexpected continuation byte 0x80 at offset 1");
    rejects("62e6b0", "truncated sequence");
    rejects("6ae6b06161616161616161", "truncated sequence (byte 0x61 at offset 3 is not a continuation byte)");
    rejects("a162c3280101", "map key at offset 1 is not valid UTF-8: truncated sequence");
    // the text is fine, the head around it is what cuts it: "水" split by the string length
    rejects("62e6b0b4", "truncated sequence (0xe6 needs 2 continuation bytes, 1 remain)");
  });

  test(`maps nest up to ${CBOR_MAX_DEPTH} deep, no further`, () => {
    const deep4 = { a: { a: { a: { a: 0 } } } };
    both(deep4, "a16161a16161a16161a1616100");
    rejects("a16161a16161a16161a16161a1616100", `map at offset 12 is nested deeper than ${CBOR_MAX_DEPTH} maps`);
    refuses({ a: deep4 }, `nested deeper than ${CBOR_MAX_DEPTH}`);
    const loop: Record<string, unknown> = {};
    loop.self = loop;
    refuses(loop, "circular");
  });

  test("a __proto__ key is data, not a prototype", () => {
    const m = asMap(decodeCbor(fromHex("a1695f5f70726f746f5f5fa0")));
    equal(Object.getPrototypeOf(m), Object.prototype, "prototype unchanged");
    equal(Object.keys(m).join(), "__proto__");
    rejects("a2695f5f70726f746f5f5fa0695f5f70726f746f5f5f01", "duplicate map key");
    const inherited = asMap(decodeCbor(fromHex("a168746f537472696e6701")));
    equal<unknown>(inherited.toString, 1, "an inherited name is an ordinary key");
  });

  test("encode refuses what it cannot represent, naming the key", () => {
    refuses(NaN, "NaN at the top level is not an integer");
    refuses(1.5, "1.5 at the top level");
    refuses(9007199254740992, "9007199254740992");
    refuses(-9007199254740992, "-9007199254740992");
    refuses(Infinity, "Infinity");
    refuses({ l: 0.5 }, 'for key "l"');
    refuses({ a: { b: NaN } }, 'NaN for key "b"');
    refuses(null, "null");
    refuses(true, "boolean");
    refuses(undefined, "undefined");
    refuses({ a: undefined }, 'undefined for key "a"');
    refuses([1, 2], "an array");
    refuses({ a: [1] }, 'an array for key "a"');
    refuses(new Uint16Array(2), "typed array other than Uint8Array");
    refuses(new Map(), "not a plain object");
    refuses(BigInt(1), "bigint");
    refuses("\ud800", "lone surrogate");
    refuses({ "\udc00": 1 }, "lone surrogate");
  });

  test("utf8: encode and decode by hand, every length of sequence", () => {
    const s = "a\u007f\u0080\u07ff\u0800\ufffd\uffff\ud800\udc00\udbff\udfff\u00e9t\u00e9";
    const b = utf8Encode(s);
    equal(hex(b), "617fc280dfbfe0a080efbfbdefbfbff0908080f48fbfbfc3a974c3a9");
    equal(utf8Length(s), b.length);
    equal(utf8Decode(b), s);
    equal(utf8Decode(fromHex("efbbbf61")), "\ufeffa", "a BOM is kept");
    equal(utf8Decode(fromHex("0061006200"), 1, 4), "a\u0000b", "a range");
    equal(utf8Decode(new Uint8Array(0)), "");
    // longer than one chunk of code units, ASCII and not
    const long = "\u6c34\ud800\udd51ab\u00fc".repeat(300);
    equal(utf8Decode(utf8Encode(long)), long);
    const ascii = "abcdefghij".repeat(100);
    equal(utf8Decode(utf8Encode(ascii)), ascii);
    equal(utf8Decode(utf8Encode(ascii + "\u00fc")), ascii + "\u00fc");
    throwsCode(() => utf8Decode(fromHex("61e6b0")), "malformed", "UTF-8: truncated sequence");
    throwsCode(() => utf8Decode(fromHex("61e6b0")), "malformed", "at offset 1");
    throwsCode(() => utf8Decode(fromHex("c0af")), "malformed", "overlong");
    throwsCode(() => utf8Encode("x\udfff"), "bad-argument", "lone surrogate 0xdfff at index 1");
    throwsCode(() => utf8Encode("\ud800x"), "bad-argument", "lone surrogate 0xd800 at index 0");
    throwsCode(() => utf8Decode(new Uint8Array(2), 1, 3), "bad-argument");
  });
});
