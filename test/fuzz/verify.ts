/**
 * Fuzz targets for what decides whether an image may boot and where it comes from: ECDSA
 * signatures (DER and raw) and P-256 public keys against OpenSSL through node:crypto, the URL
 * rule against WHATWG's URL, and version ordering by its own laws.
 */
import fc from "fast-check";
import { createHash, createPublicKey, verify as opensslVerify } from "node:crypto";
import { decodeSignature } from "../../modules/verify/signature.ts";
import { nobleVerifier, p256 } from "../../modules/verify/noble-signature.ts";
import { publicKeyFromSpki } from "../../modules/verify/keys.ts";
import { parseHttpUrl, resolveLocation, MAX_URL_LENGTH } from "../../modules/transfer/url.ts";
import { compareVersions, formatVersion, parseVersion } from "../../modules/verify/version.ts";
import { applyEdits, applyTextEdits, bytesEq, edits, ensure, refusesWith, target, type FuzzTarget } from "./support.ts";

// ---------------------------------------------------------------------------------------------
// Signatures

// Fixed keys and deterministic signatures (RFC 6979), so a seed replays the same inputs.
const SECRET = new Uint8Array(32).map((_, k) => (k * 29 + 5) & 0xff);
const POINT = p256.getPublicKey(SECRET, false);
const b64url = (b: Uint8Array) => Buffer.from(b).toString("base64url");
const publicKey = createPublicKey({ key: { kty: "EC", crv: "P-256", x: b64url(POINT.subarray(1, 33)), y: b64url(POINT.subarray(33)) }, format: "jwk" });
// Many images, so that short r and s (leading zero bytes removed) and high s turn up.
const IMAGES = Array.from({ length: 24 }, (_, i) => new Uint8Array(40).map((_, k) => (k * 7 + i * 13) & 0xff));
const DIGESTS = IMAGES.map((m) => new Uint8Array(createHash("sha256").update(m).digest()));
const SIGNED = DIGESTS.map((d, i) => ({ digest: i, der: p256.Signature.fromBytes(p256.sign(d, SECRET, { prehash: false, lowS: false }), "compact").toBytes("der") }));

/** OpenSSL's answer for a signature of image `i`, false on any error. */
function openssl(i: number, signature: Uint8Array, dsaEncoding: "der" | "ieee-p1363"): boolean {
  try {
    return opensslVerify("sha256", IMAGES[i], { key: publicKey, dsaEncoding }, signature);
  } catch {
    return false;
  }
}

export const signature = target(
  "signature",
  // Mostly edits: a signature that decodes costs a P-256 verification on each side (milliseconds).
  fc.tuple(fc.integer({ min: 0, max: SIGNED.length - 1 }), fc.integer({ min: 0, max: 9 }), edits(3), fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.integer({ min: 0, max: 9 }).map((n) => n === 0)),
  ([which, other, list, random, useRandom]) => {
    // Now and then the signature of another image.
    const digestIndex = other === 0 ? (which + 1) % SIGNED.length : which;
    const bytes = useRandom ? random : applyEdits(SIGNED[which].der, list);
    const digest = DIGESTS[digestIndex];
    const raw = refusesWith(() => decodeSignature(bytes), ["signature-malformed"]);
    const theirs = openssl(digestIndex, bytes, "der");
    if (raw === undefined) {
      // OpenSSL takes only strict DER too: what we refuse as malformed it must not verify.
      ensure(!theirs, "refused a signature OpenSSL verifies");
      return;
    }
    ensure(raw.length === 64, "raw signature is not 64 bytes");
    const ours = nobleVerifier.verify(POINT, digest, raw);
    // A raw r || s that happens to start with 0x30 is not DER for OpenSSL; compare it as P1363.
    const reference = bytes[0] === 0x30 && bytes.length !== 64 ? theirs : openssl(digestIndex, raw, "ieee-p1363");
    ensure(ours === reference, `ours ${ours ? "verifies" : "refuses"}, OpenSSL ${reference ? "verifies" : "refuses"}`);
    if (ours) ensure(bytesEq(SIGNED[digestIndex].der, bytes) || bytes.length === 64, "an edited DER signature verified");
  },
);

// ---------------------------------------------------------------------------------------------
// Public keys

const SPKI = new Uint8Array(publicKey.export({ format: "der", type: "spki" }));
// secp384r1, secp256k1, Ed25519 and RSA keys, as OpenSSL writes them.
const OTHER = [
  "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEpFdGdhPSm/gMTG6Rag2rYEmeWmvQOuP2TtFK1l+6xDEpRL25D//FJ+XPwx7XX7kWjrjiLC+WtyGrvcohhi2zE/aBmJEnKNNAGX3wgG9ARETJIXG/aSLdDhfmGR7zGWJk",
  "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAECOAxKUQEjEbeFw44JWV059CruOnNIHfDTemzqQxfiH7bAJBfusE3ELKJNFH5esYqnk00w+yDx90vXFbYSCMKiw==",
  "MCowBQYDK2VwAyEAn5fddHjK3yT/WOhjQxeTV684Nkn0zPsJnJf92qpEa5g=",
  "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDQZLJv8cFPf3gOM+4qo2A90gpKCzzKhmDpZPpFxydAt5PP7E+p32SQNk9YkZjQ19J7krI1n2icy20UnBAq24I0iZg/z7W2xL43advDMH+CUBxMTrRST9UUs+sv3IQTSABG3IA1Kd/0CQt7Wk2MDNL9H3CNgqGt/sDPPscElpNHXwIDAQAB",
].map((b) => new Uint8Array(Buffer.from(b, "base64")));

/**
 * What OpenSSL reads in a DER SubjectPublicKeyInfo: the key's uncompressed point if it is P-256,
 * and whether the input was its canonical encoding (OpenSSL ignores bytes after the key).
 */
function opensslKey(der: Uint8Array): { point?: Uint8Array; canonical: boolean } {
  try {
    const key = createPublicKey({ key: Buffer.from(der), format: "der", type: "spki" });
    const again = new Uint8Array(key.export({ format: "der", type: "spki" }));
    const canonical = bytesEq(again, der);
    if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") return { canonical };
    return { point: again.subarray(-65), canonical };
  } catch {
    return { canonical: false };
  }
}

export const spki = target(
  "public-key",
  fc.tuple(fc.integer({ min: 0, max: OTHER.length }), fc.oneof(edits(3), fc.constant([]))),
  ([which, list]) => {
    const der = applyEdits(which === OTHER.length ? SPKI : OTHER[which], list);
    const ours = refusesWith(() => publicKeyFromSpki(der), ["malformed", "key-invalid"]);
    const theirs = opensslKey(der);
    if (ours === undefined) {
      // Stricter than OpenSSL only where the input is not DER's one encoding of the key, or where
      // it is a hybrid point (0x06/0x07 before X and Y), which RFC 5480 says MUST NOT be used.
      const hybrid = der.length === SPKI.length && (der[26] === 0x06 || der[26] === 0x07);
      ensure(theirs.point === undefined || !theirs.canonical || hybrid, "refused a P-256 key OpenSSL reads");
      return;
    }
    ensure(theirs.point !== undefined && bytesEq(ours, theirs.point), theirs.point === undefined ? "took a key OpenSSL refuses" : "read another point than OpenSSL");
    ensure(theirs.canonical, "took a key in an encoding that is not DER");
  },
);

// ---------------------------------------------------------------------------------------------
// URLs

const HOSTS = ["[::]", "[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8:9]", "[::ffff:1.2.3.4]", "[1::2::3]", "[:1]", "[12345::]", "[::1.2.3]", "h.example.com", "H.EXAMPLE.com", "127.0.0.1", "[::1]", "[fe80::1%25eth0]", "s3.amazonaws.com.", "a_b.local", "-a.com", "a-.com", "a..b", "xn--bcher-kva.example", "x".repeat(63),
  "x".repeat(64), `${"a.".repeat(127)}a`, "bücher.example", "[::1", "1.2.3.256", "0x7f.1", ""];
const PORTS = ["", ":", ":0", ":1", ":80", ":443", ":08080", ":65535", ":65536", ":99999", ":-1"];
const PATHS = ["", "/", "/fw.bin", "/a/../b?X-Amz-Signature=ab%2F&x=1", "?q", "/p#frag", "/é", "/%00", "/a b", "/\u200b", "#f"];
const urlText = fc.oneof(
  fc.record({ scheme: fc.constantFrom("http", "https", "HTTPS", "ftp", "enos-connect", ""), host: fc.constantFrom(...HOSTS), port: fc.constantFrom(...PORTS), path: fc.constantFrom(...PATHS), user: fc.constantFrom("", "u:p@", "@"), e: fc.oneof(fc.constant([]), edits(2)) })
    .map((g) => applyTextEdits(`${g.scheme}://${g.user}${g.host}${g.port}${g.path}`, g.e)),
  fc.constantFrom(2, 2048, 2049).map((n) => `https://h.example.com/${"a".repeat(Math.max(0, n - 22))}`),
);

export const url = target("url", fc.tuple(urlText, fc.constantFrom("/x", "../y", "//other.example/z", "https://o.example:8443/", "?q=1", "", "a b", "http://h:0/")), ([text, location]) => {
  const ours = refusesWith(() => parseHttpUrl(text), ["bad-argument"]);
  if (ours === undefined) return;
  ensure(text.length <= MAX_URL_LENGTH && !/[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]/.test(text), "took a URL the rule refuses");
  // WHATWG checks an xn-- label's Punycode; the device leaves a name that cannot exist to DNS.
  if (/(^|\.)xn--/i.test(ours.host)) return;
  let whatwg: URL;
  try {
    whatwg = new URL(text);
  } catch {
    throw new Error(`took a URL WHATWG's parser refuses: ${JSON.stringify(text)}`);
  }
  ensure(whatwg.protocol === `${ours.scheme}:`, "scheme differs from WHATWG's");
  ensure(Number(whatwg.port || (ours.scheme === "https" ? 443 : 80)) === ours.port, `port ${ours.port}, WHATWG's ${whatwg.port}`);
  // WHATWG writes IPv6 addresses in their shortest form; names and IPv4 must be as given.
  if (!ours.host.startsWith("[")) ensure(whatwg.hostname === ours.host, `host ${ours.host}, WHATWG's ${whatwg.hostname}`);
  ensure(ours.path.startsWith("/"), "path without /");
  const next = refusesWith(() => resolveLocation(ours, location), ["bad-argument"]);
  if (next !== undefined) ensure(next.path.startsWith("/") && next.port >= 1 && next.port <= 65535, "a redirect resolved outside the rule");
});

// ---------------------------------------------------------------------------------------------
// Versions

const versionText = fc.oneof(
  fc.tuple(fc.constantFrom("", "v"), fc.array(fc.constantFrom("0", "1", "01", "10", "255", "9007199254740993", "x", ""), { minLength: 1, maxLength: 4 }), fc.constantFrom("", "-rc.1", "-rc.01", "-alpha", "-1", "-", "+b.5", "-rc.1+b", "+"))
    .map(([v, nums, tail]) => `${v}${nums.join(".")}${tail}`),
  fc.constantFrom("0x01020003", "0xFFFFFFFF", "0x1", "1.0.0\u0000", "１.0.0"),
);

export const version = target("version", fc.tuple(versionText, versionText, versionText), (texts) => {
  const v = texts.map((t) => refusesWith(() => parseVersion(t), ["malformed"]));
  const [a, b, c] = v;
  if (a !== undefined) {
    ensure([a.major, a.minor, a.patch].every((n) => Number.isSafeInteger(n) && n >= 0), "a part is not a safe natural number");
    const again = parseVersion(formatVersion(a));
    ensure(compareVersions(a, again) === 0, "format and parse change the version");
  }
  if (a === undefined || b === undefined || c === undefined) return;
  ensure(compareVersions(a, b) === -compareVersions(b, a), "compare is not antisymmetric");
  if (compareVersions(a, b) <= 0 && compareVersions(b, c) <= 0) ensure(compareVersions(a, c) <= 0, "compare is not transitive");
});

export const verifyTargets: FuzzTarget[] = [signature, spki, url, version];
