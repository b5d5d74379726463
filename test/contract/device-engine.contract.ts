/**
 * What a Moddable device's XS does differently from Node and from Agoric's xsnap, met by the
 * device code itself: strings indexed by code point, no RegExp property escapes, no TextEncoder,
 * and the freeze of the built-ins and of everything preloaded. One case per way modules/ once
 * broke on a real Moddable build; each fails on the device-faithful engine without its fix.
 * Portable: runs on Node, on the device-faithful XS and on Moddable's own XS.
 */
import { suite } from "./harness.ts";
import { bytesEqual, equal, hex, ok, throwsCode } from "./assert.ts";
import { OtaError, isOtaError } from "../../modules/errors.ts";
import { Utf8Error, utf8Decode, utf8Encode, utf8Length } from "../../modules/codec/utf8.ts";
import { decodeCbor, encodeCbor, type CborMap } from "../../modules/codec/cbor.ts";
import { parsePem } from "../../modules/codec/pem.ts";
import { isValidJobId, statusDetailsProblem } from "../../modules/aws/jobs.ts";
import { parseHttpUrl } from "../../modules/transfer/url.ts";
import { nobleVerifier } from "../../modules/verify/noble-signature.ts";

const fromHex = (s: string) => {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
  return out;
};

export default suite("device engine", (test) => {
  test("an OtaError keeps its name and code though Error.prototype is frozen", () => {
    const e = new OtaError("malformed", "bad bytes");
    equal(e.name, "OtaError");
    equal(e.code, "malformed");
    equal(String(e), "OtaError: bad bytes");
    ok(e instanceof Error && isOtaError(e, "malformed"), "an Error and an OtaError");
    const u = new Utf8Error(3, "overlong encoding");
    equal(u.name, "OtaError");
    equal(u.position, 3);
  });

  test("CBOR maps take keys that Object.prototype has, as own data", () => {
    const keys = ["toString", "constructor", "hasOwnProperty", "valueOf", "__proto__"];
    const map: CborMap = {};
    keys.forEach((k, i) => Object.defineProperty(map, k, { value: i, enumerable: true, writable: true, configurable: true }));
    const decoded = decodeCbor(encodeCbor(map)) as CborMap;
    equal(Object.keys(decoded).join(), keys.join(), "keys, in order");
    keys.forEach((k, i) => equal(Object.getOwnPropertyDescriptor(decoded, k)?.value, i, k));
    equal(Object.getPrototypeOf(decoded), Object.prototype, "prototype unchanged");
  });

  test("PEM parses again and again: no RegExp keeps state between calls", () => {
    const text = "-----BEGIN TEST-----\n AA EC\r\n\tAwQF \n-----END TEST-----\n";
    for (let i = 0; i < 3; i++) {
      const blocks = parsePem(text);
      equal(blocks.length, 1, `parse ${i}: blocks`);
      bytesEqual(blocks[0].der, new Uint8Array([0, 1, 2, 3, 4, 5]), `parse ${i}: body`);
    }
  });

  test("UTF-8 above U+FFFF: 4 bytes each way, whatever the engine's string indexing", () => {
    const cases: [string, string][] = [
      ["\u{10151}", "f0908591"],
      ["a\u{1F600}b", "61f09f988062"],
      ["\u{10FFFF}\u{10000}", "f48fbfbff0908080"],
    ];
    for (const [text, bytes] of cases) {
      equal(hex(utf8Encode(text)), bytes, `encode ${bytes}`);
      equal(utf8Length(text), bytes.length / 2, `length ${bytes}`);
      equal(utf8Decode(fromHex(bytes)), text, `decode ${bytes}`);
    }
    // Longer than the decoder's 128-unit batches, so a pair could fall across two of them.
    const long = "x" + "\u{1F600}".repeat(300);
    equal(utf8Decode(utf8Encode(long)), long, "300 emoji round trip");
    equal(utf8Encode(long).length, 1 + 4 * 300, "300 emoji length");
    throwsCode(() => utf8Encode("a\ud800b"), "bad-argument");
    throwsCode(() => utf8Encode("\udc00"), "bad-argument");
    throwsCode(() => utf8Decode(fromHex("eda080")), "malformed");
  });

  test("statusDetails refuse control, format, surrogate, private-use and noncharacters without \\p{C}", () => {
    for (const bad of ["a\u0007b", "a\nb", "\u009f", "zero\u200bwidth", "\u00ad", "\ufeff", "private\ue000", "\u{F0000}", "\u{E0001}", "\ufffe", "\u{1FFFF}"]) {
      ok(/control, format/.test(statusDetailsProblem({ v: bad }) ?? ""), `refused: ${JSON.stringify(bad)}`);
    }
    for (const good of ["Grüße, 設定", "😀".repeat(1024), "v1.0.2 → 1.0.3", "\u{10151}"]) {
      equal(statusDetailsProblem({ v: good }), undefined, `taken: ${good.slice(0, 8)}`);
    }
    ok(/1025 characters/.test(statusDetailsProblem({ v: "😀".repeat(1025) }) ?? ""), "counted by code point");
  });

  test("validators keep working while the collector runs (no RegExp kept in flash)", () => {
    let junk: string[] = [];
    for (let i = 0; i < 30000; i++) {
      junk = [`job-${i}`, `${i}`];
      ok(isValidJobId(junk[0]), `job id ${i}`);
      if (i % 1000 === 0) equal(parseHttpUrl(`https://h/${i}`).path, `/${i}`, `url ${i}`);
    }
    equal(parsePem("-----BEGIN K-----\nAAEC\n-----END K-----\n").length, 1, "PEM after");
  });

  test("P-256 verification loads without TextEncoder and verifies", () => {
    const publicKey = fromHex("04acfb4fba57c451819d847fa1e6ec86ce6484261514ff9b3ea7e16dd6855f7f019a4ce5786772dee58df3818a80ca725ff6ab6fa05d4e56be29af9013adee6e62");
    const digest = fromHex("b488f097220c959602ea7f6c23c601b0c029f58bb6cd23dad67eccd7b9d8e5e8");
    const signature = fromHex("ba5ef3a42f32a30a5cc50895392cd60ef9744592193b09fc870de24d6af804a46c595deb55e1e44fa7df7e2882cb510da3756951d351f13f79b85635a8b837a8");
    ok(nobleVerifier.verify(publicKey, digest, signature), "the signature verifies");
    const tampered = signature.slice();
    tampered[63] ^= 1;
    ok(!nobleVerifier.verify(publicKey, digest, tampered), "a tampered one does not");
  });
});
