/**
 * The signature half of the integrity layer: base64, PEM, DER, P-256 keys from SPKI and X.509,
 * AWS `sig-sha256-ecdsa` signatures (base64 DER) and the pure-JS verifier, checked against
 * keys, certificates and signatures made by the real `openssl` binary (OpenSSL 3.0), embedded
 * below because contract suites also run on XS, which has no file system.
 *
 * How the fixtures were made (scratch directory, private keys not kept):
 *   openssl ecparam -name prime256v1 -genkey -noout -out k.pem
 *   openssl ec -in k.pem -pubout -out pub.pem
 *   openssl req -new -x509 -key k.pem -subj /CN=xs-ota-test -days 3650 -out cert.pem
 *   openssl ecparam -name prime256v1 -genkey -noout -out k2.pem; openssl ec -in k2.pem -pubout
 *   openssl ecparam -name secp384r1 -genkey -noout -out k384.pem; openssl ec -in k384.pem -pubout
 *   openssl req -new -x509 -newkey rsa:2048 -nodes -keyout rsa.key -subj /CN=xs-ota-rsa -days 3650
 *   printf 'xs-ota firmware image v1.2.3' > msg.txt      (and 'another firmware image v9.9.9' > msg2.txt)
 *   openssl dgst -sha256 -sign k.pem msg.txt | base64 -w0 (repeated until low-S, high-S and a 72-byte one came up;
 *   r and s read with `openssl asn1parse -inform DER`, each checked with `openssl dgst -sha256 -verify pub.pem`)
 */
import { suite } from "./harness.ts";
import { bytesEqual, deepEqual, equal, hex, ok, throwsCode } from "./assert.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import { decodeBase64, encodeBase64 } from "../../modules/codec/base64.ts";
import { parsePem } from "../../modules/codec/pem.ts";
import { readOid, readTlv, readWhole } from "../../modules/codec/der.ts";
import { publicKeyFromCertificate, publicKeyFromPem, publicKeyFromPoint, publicKeyFromSpki } from "../../modules/verify/keys.ts";
import { checkSignature, decodeSignature, signatureFromBase64 } from "../../modules/verify/signature.ts";
import { nobleVerifier } from "../../modules/verify/noble-signature.ts";
import { concatBytes } from "../../modules/codec/bytes.ts";

/** P-256 public key (SPKI) of k.pem. */
const P256_PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXU4vS6RPo2krl+80oD+PUCJ4QhUj
rOf9Wdb07VrBtPha0c9FHr+91B+ZAuRmIa0PEfZ5tBj2zgX7hHZP11y1fQ==
-----END PUBLIC KEY-----
`;

/** Self-signed certificate for the same key. */
const P256_CERTIFICATE = `-----BEGIN CERTIFICATE-----
MIIBgTCCASegAwIBAgIUAQ2RvfIPyrYsLLOORy6bq2iSuvAwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLeHMtb3RhLXRlc3QwHhcNMjYxMTIyMTgwMDA3WhcNMzYxMTE5
MTgwMDA3WjAWMRQwEgYDVQQDDAt4cy1vdGEtdGVzdDBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABF1OL0ukT6NpK5fvNKA/j1AieEIVI6zn/VnW9O1awbT4WtHPRR6/
vdQfmQLkZiGtDxH2ebQY9s4F+4R2T9dctX2jUzBRMB0GA1UdDgQWBBRvDTCOa7G/
OBgEPk/tfyh4VAAyDjAfBgNVHSMEGDAWgBRvDTCOa7G/OBgEPk/tfyh4VAAyDjAP
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIC6UBmajIZhw1+lM9sAn
5k1gydc6MhkBU3Mt2ATbFwGrAiEA6O8Ie2u2oPFprQffC2J3qLcpKgpDsBlVOMpL
UiDae+c=
-----END CERTIFICATE-----
`;

/** The point in both, as `openssl ec -pubin -in pub.pem -text -noout` prints it. */
const P256_POINT = "045d4e2f4ba44fa3692b97ef34a03f8f502278421523ace7fd59d6f4ed5ac1b4f85ad1cf451ebfbdd41f9902e46621ad0f11f679b418f6ce05fb84764fd75cb57d";

/** A second, unrelated P-256 key: the wrong key. */
const OTHER_P256_PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEPOrI1WowhrUG9JF2EsXe0xN4m8m7
wMh5eDTgSkX1UcOYdp8fWOykipCGEdnP2y2k6BnNhV1nEq1vwoleMLzHdg==
-----END PUBLIC KEY-----
`;

/** A P-384 key (curve secp384r1). */
const P384_PUBLIC_KEY = `-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEHmRHvIgUBBMWMxy+S1qTyK9Yywf1hENV
fx4aog9JfkrnD5ygM2F+7EnV7he/gdgW42YV3mnyQCWRI8IcD95n7dqH/RQow5Bk
ZDzviKYBA4H6K0pznpk9Q9A/ZWRI07o0
-----END PUBLIC KEY-----
`;

/** An RSA-2048 self-signed certificate. */
const RSA_CERTIFICATE = `-----BEGIN CERTIFICATE-----
MIIDCzCCAfOgAwIBAgIUbSS1UbP4k5fitqAhfqBACYCehCkwDQYJKoZIhvcNAQEL
BQAwFTETMBEGA1UEAwwKeHMtb3RhLXJzYTAeFw0yNjExMjIxODAwMDdaFw0zNjEx
MTkxODAwMDdaMBUxEzARBgNVBAMMCnhzLW90YS1yc2EwggEiMA0GCSqGSIb3DQEB
AQUAA4IBDwAwggEKAoIBAQDElg8QPsZ8n8DGJpUR7HJaJvti37gzzQnfQxmTdgFu
iadsh+TR2avEJMUWXsot3NiliuI4hVCFCk5htvshZBFqnAKStz9/MOs7oxRFFrZP
HsvJj7UON5cX27/YX1qhwGUahnsAIL9iHx2PB5JKabySAXADsgpPVbMvQcgsKEKJ
CCA/25AlPfn7GqfQM5qCxzrboCZQXxmCejo6VPIrcXmqYAutfmNuMBQus0KyXjgE
P2H+kuk016zXu4RnwoxG4oeSvODyTcFQ8gGOLqgpizse7OfJllvq8H7ippRYHqWw
Q8fEzytc6hiQYiKd43CkQrcE9M3fBUdQfmPbPR+gkLxJAgMBAAGjUzBRMB0GA1Ud
DgQWBBSmrsDeCtC7TQqANCpQfDVHGGILXDAfBgNVHSMEGDAWgBSmrsDeCtC7TQqA
NCpQfDVHGGILXDAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQBg
YkRxYiglAralh+jpuDvvSQ8lvw+jQQKAplvxPhtbtaBLt0W7zmKIZyUeakY+f5gJ
C6wTpCXYQTvRzylgFkz9NrsKcU8sVMYHYsRVbZ2ayJ2wkUrDnGroCNlcVPdb0RHE
FvRpAEbP13vzEPY/LaBuEhstgYh3Rb9Pt7gyOKx77GfTh3pX+/XIl85bKqzusuPX
tRY9MpqhDP3pCHu5RXrMTncfCTajjteVmQ/JLLlB8lBrIQArAhmFaiQ+6hW6Q754
T3Nvt53qqtn37NjlxhAfNlbg3Xa65v1747UMc6r0Zum53dzbMAiDlBQefY0rEVr5
Ue74XgTaQp6rna3I8T1Z
-----END CERTIFICATE-----
`;

const MESSAGE = "xs-ota firmware image v1.2.3";
const MESSAGE_SHA256 = "002d6f015a8970f6fb149df435836b6be0b4dd64ac4f2e30f5b1814a4d27d330"; // sha256sum msg.txt

/** openssl signature of MESSAGE, low-S (s < n/2); r has a sign byte, s does not. */
const SIG_LOW_S = "MEUCIQDra48Hw1Zexj1VixvFEWqp4YmK6AbJl/wK9oyaCb6e1QIgI94y2+ZHobedKpD5AiTq58xU9PQLuSV2QLdyMezHlDk=";
const SIG_LOW_S_R = "eb6b8f07c3565ec63d558b1bc5116aa9e1898ae806c997fc0af68c9a09be9ed5";
const SIG_LOW_S_S = "23de32dbe647a1b79d2a90f90224eae7cc54f4f40bb9257640b77231ecc79439";
/** openssl signature of MESSAGE, high-S (s > n/2), which noble's default (lowS: true) would refuse. */
const SIG_HIGH_S = "MEUCICtw8bxpWwHRaCPBaGsx88+WzAFu+OhKg6ASIaQ0AdDAAiEA36rQX8ACDbQSo0+vFJySyh6+dyOvYbtBWpejiIFLEys=";
/** openssl signature of MESSAGE, 72 bytes: both r and s carry a sign byte; high-S too. */
const SIG_72_BYTES = "MEYCIQD5fJ1N7c0+dieaYfOVAnMWB3rdeMU4oG4UvcppRLxEDgIhAK34ir2rXDOmLIcAU0Qx4naMXJQgZ10ahdjYwgFuTnNc";
/** openssl signature, same key, of "another firmware image v9.9.9". */
const SIG_OTHER_MESSAGE = "MEUCIQDA/WJ9QSzoTS5LUzb/yQRoXADkm88rQShhJKJPFla9bwIgeTJh7vP784GFCJQi6bHhal+Mpljx6riItlJhaGIHEzc=";

/** P-256 group order n. */
const N_HEX = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const HALF_N_HEX = "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8";

const bytes = (...b: number[]) => new Uint8Array(b);

function fromHex(h: string): Uint8Array {
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function cat(...parts: (Uint8Array | number[])[]): Uint8Array {
  return concatBytes(parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p))));
}

/** A DER element with a short-form length (all the hand-built ones here are < 128 bytes). */
function tlv(tag: number, ...content: (Uint8Array | number[])[]): Uint8Array {
  const body = cat(...content);
  return cat([tag, body.length], body);
}

const zeros = (n: number) => new Array<number>(n).fill(0);
const digest = () => fromHex(MESSAGE_SHA256);
const key = () => publicKeyFromPem(P256_PUBLIC_KEY);

export default suite("signatures", (test) => {
  // ---- base64 ----

  test("base64: RFC 4648 vectors encode and decode", () => {
    const vectors: [string, string][] = [["", ""], ["f", "Zg=="], ["fo", "Zm8="], ["foo", "Zm9v"], ["foob", "Zm9vYg=="], ["fooba", "Zm9vYmE="], ["foobar", "Zm9vYmFy"]];
    for (const [plain, encoded] of vectors) {
      equal(encodeBase64(ascii(plain)), encoded, `encode ${plain}`);
      bytesEqual(decodeBase64(encoded), ascii(plain), `decode ${encoded}`);
    }
  });

  test("base64: every length 0..66 and every byte value round-trips", () => {
    const all = new Uint8Array(256);
    for (let i = 0; i < 256; i++) all[i] = 255 - i;
    bytesEqual(decodeBase64(encodeBase64(all)), all, "0..255");
    for (let n = 0; n <= 66; n++) {
      const b = all.subarray(7, 7 + n);
      const text = encodeBase64(b);
      equal(text.length, Math.ceil(n / 3) * 4, `encoded length of ${n}`);
      bytesEqual(decodeBase64(text), b, `length ${n}`);
    }
    equal(encodeBase64(bytes(0xfb, 0xff, 0xbf)), "+/+/", "uses + and /");
  });

  test("base64: unpadded input is accepted", () => {
    bytesEqual(decodeBase64("Zg"), ascii("f"));
    bytesEqual(decodeBase64("Zm8"), ascii("fo"));
    bytesEqual(decodeBase64("Zm9vYmE"), ascii("fooba"));
    equal(decodeBase64("").length, 0, "empty");
  });

  test("base64: a character outside the alphabet is refused with its position", () => {
    throwsCode(() => decodeBase64("Zm9v!mFy"), "malformed", `"!" (0x21) at position 4`);
    throwsCode(() => decodeBase64("Zm9v-_"), "malformed", `"-" (0x2d) at position 4`);
    throwsCode(() => decodeBase64("Zm9v\u00e9"), "malformed", "position 4");
  });

  test("base64: whitespace is refused (callers strip PEM line breaks)", () => {
    throwsCode(() => decodeBase64("Zm9v Zg=="), "malformed", `" " (0x20) at position 4`);
    throwsCode(() => decodeBase64("Zm9v\nZg=="), "malformed", `"\\n" (0x0a) at position 4`);
    throwsCode(() => decodeBase64(" Zm9v"), "malformed", "position 0");
  });

  test("base64: '=' anywhere but the end is refused", () => {
    throwsCode(() => decodeBase64("Zg==Zg=="), "malformed", `"=" at position 2 is not at the end`);
    throwsCode(() => decodeBase64("Z=g="), "malformed", `"=" at position 1`);
  });

  test("base64: more than two '=' are refused", () => {
    throwsCode(() => decodeBase64("Zg==="), "malformed", `3 "=" at position 2`);
    throwsCode(() => decodeBase64("===="), "malformed", "at most 2");
  });

  test("base64: padding that does not complete a group of 4 is refused", () => {
    throwsCode(() => decodeBase64("Zg="), "malformed", "does not complete a group of 4");
    throwsCode(() => decodeBase64("Zm9v="), "malformed", "does not complete a group of 4");
    throwsCode(() => decodeBase64("Zm9vYg="), "malformed", "does not complete a group of 4");
    throwsCode(() => decodeBase64("=="), "malformed", "does not complete a group of 4");
  });

  test("base64: a length of 4k+1 characters is refused", () => {
    throwsCode(() => decodeBase64("Zm9vY"), "malformed", "length 5");
    throwsCode(() => decodeBase64("Z"), "malformed", "length 1");
    throwsCode(() => decodeBase64("Zm9vY==="), "malformed", "at most 2");
  });

  test("base64: non-zero leftover bits (non-canonical) are refused", () => {
    throwsCode(() => decodeBase64("Zh=="), "malformed", `"h" (0x68) at position 1 has non-zero unused bits`);
    throwsCode(() => decodeBase64("Zm9="), "malformed", `"9" (0x39) at position 2 has non-zero unused bits`);
    throwsCode(() => decodeBase64("Zh"), "malformed", "non-zero unused bits");
  });

  // ---- PEM ----

  test("PEM: every block, in order, with text around and between ignored", () => {
    const text = `Bag Attributes\n  friendlyName: x\n${P256_CERTIFICATE}some words\n\n${P256_PUBLIC_KEY}trailer`;
    const blocks = parsePem(text);
    deepEqual(blocks.map((b) => b.label), ["CERTIFICATE", "PUBLIC KEY"], "labels");
    equal(blocks[0].der.length, 389, "certificate DER length");
    equal(blocks[1].der.length, 91, "SPKI DER length");
    equal(hex(blocks[1].der.subarray(0, 4)), "30593013", "SPKI starts");
    equal(parsePem("no blocks here\n").length, 0, "no blocks");
  });

  test("PEM: CRLF line ends and indented lines read the same", () => {
    const lf = parsePem(P256_CERTIFICATE)[0].der;
    bytesEqual(parsePem(P256_CERTIFICATE.replace(/\n/g, "\r\n"))[0].der, lf, "CRLF");
    bytesEqual(parsePem(P256_CERTIFICATE.replace(/\n/g, "\n  \t"))[0].der, lf, "indented");
  });

  test("PEM: a missing END line is refused", () => {
    const cut = P256_PUBLIC_KEY.replace("-----END PUBLIC KEY-----", "");
    throwsCode(() => parsePem(cut), "malformed", `"BEGIN PUBLIC KEY" at line 1 has no "END PUBLIC KEY" line`);
    throwsCode(() => parsePem(cut + P256_CERTIFICATE), "malformed", "no END line before the next BEGIN at line 5");
  });

  test("PEM: an END label that differs from BEGIN is refused", () => {
    const text = P256_PUBLIC_KEY.replace("END PUBLIC KEY", "END CERTIFICATE");
    throwsCode(() => parsePem(text), "malformed", `ends with "END CERTIFICATE" at line 4`);
  });

  test("PEM: bad base64 in a body is reported by line and column", () => {
    const lines = P256_PUBLIC_KEY.split("\n");
    lines[2] = lines[2].slice(0, 5) + "!" + lines[2].slice(6);
    throwsCode(() => parsePem("header\n" + lines.join("\n")), "malformed", `line 4 column 6: bad base64: character "!" (0x21) is not`);
  });

  // ---- DER ----

  test("DER: OIDs decode to dotted strings; non-minimal forms are refused", () => {
    const oid = (b: Uint8Array) => readOid(b, readWhole(b, 0x06, "oid"), "oid");
    equal(oid(fromHex("06082a8648ce3d030107")), "1.2.840.10045.3.1.7");
    equal(oid(fromHex("06052b81040022")), "1.3.132.0.34");
    equal(oid(fromHex("0603883703")), "2.999.3");
    throwsCode(() => oid(fromHex("06032a8001")), "malformed", "leading zero digit");
    throwsCode(() => oid(fromHex("06022a86")), "malformed", "ends inside a sub-identifier");
  });

  test("DER: lengths must be definite, minimal and inside the parent", () => {
    equal(readTlv(cat([0x04, 0x81, 0x80], zeros(128)), 0, 131, "x").end, 131, "long form for 128");
    throwsCode(() => readTlv(cat([0x04, 0x81, 0x05], zeros(5)), 0, 8, "x"), "malformed", "long form for length 5 (not minimal)");
    throwsCode(() => readTlv(cat([0x04, 0x82, 0x00, 0x80], zeros(128)), 0, 132, "x"), "malformed", "leading zero byte");
    throwsCode(() => readTlv(bytes(0x30, 0x80, 0, 0), 0, 4, "x"), "malformed", "indefinite length");
    throwsCode(() => readTlv(bytes(0x04, 0x03, 1, 2), 0, 4, "x"), "malformed", "has length 3, but only 2 bytes remain");
    throwsCode(() => readTlv(bytes(0x1f, 0x01, 0), 0, 3, "x"), "malformed", "multi-byte tag");
    throwsCode(() => readWhole(bytes(0x05, 0x00, 0x00), 0x05, "x"), "malformed", "1 trailing byte at offset 2");
  });

  // ---- keys ----

  test("keys: SPKI and certificate give the same 65-byte point", () => {
    const fromSpki = publicKeyFromPem(P256_PUBLIC_KEY);
    const fromCert = publicKeyFromPem(P256_CERTIFICATE);
    equal(hex(fromSpki), P256_POINT, "SPKI point");
    bytesEqual(fromCert, fromSpki, "certificate point");
    bytesEqual(publicKeyFromSpki(parsePem(P256_PUBLIC_KEY)[0].der), fromSpki, "publicKeyFromSpki");
    bytesEqual(publicKeyFromCertificate(parsePem(P256_CERTIFICATE)[0].der), fromSpki, "publicKeyFromCertificate");
  });

  test("keys: the first PUBLIC KEY or CERTIFICATE block is used, others skipped", () => {
    const params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    equal(hex(publicKeyFromPem(params + P256_CERTIFICATE + OTHER_P256_PUBLIC_KEY)), P256_POINT);
  });

  test("keys: an RSA certificate is refused as key-invalid", () => {
    throwsCode(() => publicKeyFromPem(RSA_CERTIFICATE), "key-invalid", "certificate key is rsaEncryption (1.2.840.113549.1.1.1), not EC P-256");
  });

  test("keys: a P-384 key is refused as key-invalid", () => {
    throwsCode(() => publicKeyFromPem(P384_PUBLIC_KEY), "key-invalid", "curve secp384r1 (1.3.132.0.34) is not P-256");
  });

  test("keys: a point not on the curve is refused", () => {
    const der = parsePem(P256_PUBLIC_KEY)[0].der.slice();
    der[der.length - 1] ^= 1;
    throwsCode(() => publicKeyFromSpki(der), "key-invalid", "not a point on P-256");
    throwsCode(() => publicKeyFromPoint(cat([4], zeros(64))), "key-invalid", "not a point on P-256");
    throwsCode(() => publicKeyFromPoint(cat([4], zeros(63))), "key-invalid", "EC point of 64 bytes, first byte 0x04 is neither");
    throwsCode(() => publicKeyFromPoint(bytes(0)), "key-invalid", "EC point of 1 bytes");
  });

  test("keys: a compressed point is accepted and returned uncompressed", () => {
    const point = fromHex(P256_POINT);
    const compressed = cat([2 | (point[64] & 1)], point.subarray(1, 33));
    const spki = cat(fromHex("3039301306072a8648ce3d020106082a8648ce3d030107032200"), compressed);
    equal(hex(publicKeyFromSpki(spki)), P256_POINT, "SPKI with a compressed point");
    const flipped = cat([compressed[0] ^ 1], compressed.subarray(1));
    ok(hex(publicKeyFromPoint(flipped)) !== P256_POINT, "the other y");
  });

  test("keys: explicit EC parameters are refused", () => {
    const der = parsePem(P256_PUBLIC_KEY)[0].der;
    const withNull = cat(fromHex("3050300e06072a8648ce3d02010500034200"), der.subarray(27));
    throwsCode(() => publicKeyFromSpki(withNull), "key-invalid", "EC parameters as NULL (0x05)");
  });

  test("keys: SPKI with trailing or missing bytes is malformed", () => {
    const der = parsePem(P256_PUBLIC_KEY)[0].der;
    throwsCode(() => publicKeyFromSpki(cat(der, [0])), "malformed", "1 trailing byte at offset 91");
    throwsCode(() => publicKeyFromSpki(der.subarray(0, 90)), "malformed", "but only 88 bytes remain");
    throwsCode(() => publicKeyFromCertificate(der), "malformed", "expected SEQUENCE (0x30) for certificate signatureAlgorithm at offset 23, found BIT STRING (0x03)");
  });

  test("keys: PEM without a key block, or no PEM at all", () => {
    const params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n";
    throwsCode(() => publicKeyFromPem(params), "key-invalid", `found "EC PARAMETERS"`);
    throwsCode(() => publicKeyFromPem("just some text"), "malformed", "no -----BEGIN");
  });

  // ---- signatures ----

  test("the message's SHA-256 (noble) equals sha256sum's", () => {
    equal(hex(sha256(ascii(MESSAGE))), MESSAGE_SHA256);
  });

  test("low-S signature verifies", () => {
    const raw = signatureFromBase64(SIG_LOW_S);
    ok(hex(raw.subarray(32)) < HALF_N_HEX, "fixture is low-S");
    checkSignature(nobleVerifier, key(), sha256(ascii(MESSAGE)), decodeBase64(SIG_LOW_S));
  });

  test("high-S signature verifies", () => {
    const raw = signatureFromBase64(SIG_HIGH_S);
    ok(hex(raw.subarray(32)) > HALF_N_HEX, "fixture is high-S");
    checkSignature(nobleVerifier, key(), digest(), decodeBase64(SIG_HIGH_S));
    checkSignature(nobleVerifier, key(), digest(), decodeBase64(SIG_72_BYTES));
    equal(decodeBase64(SIG_72_BYTES).length, 72, "72-byte fixture");
  });

  test("the key from the certificate verifies too", () => {
    checkSignature(nobleVerifier, publicKeyFromPem(P256_CERTIFICATE), digest(), signatureFromBase64(SIG_LOW_S));
  });

  test("raw r||s form of the same signature verifies", () => {
    const raw = fromHex(SIG_LOW_S_R + SIG_LOW_S_S);
    checkSignature(nobleVerifier, key(), digest(), raw);
    equal(nobleVerifier.verify(key(), digest(), raw), true, "port directly");
  });

  test("DER -> raw conversion gives exact bytes", () => {
    bytesEqual(signatureFromBase64(SIG_LOW_S), fromHex(SIG_LOW_S_R + SIG_LOW_S_S), "openssl signature");
    const der = tlv(0x30, tlv(0x02, [0x00, 0x80, 0x01]), tlv(0x02, [0x01, 0x00, 0x01]));
    bytesEqual(decodeSignature(der), cat(zeros(30), [0x80, 0x01], zeros(29), [0x01, 0x00, 0x01]), "hand-built");
    bytesEqual(signatureFromBase64(`  ${encodeBase64(der)}\n`), decodeSignature(der), "base64 with whitespace around");
  });

  test("64 bytes starting 0x30 that are not DER are a raw signature", () => {
    const raw = fromHex("30" + SIG_LOW_S_R.slice(2) + SIG_LOW_S_S);
    bytesEqual(decodeSignature(raw), raw);
  });

  test("a flipped bit in the digest -> signature-invalid", () => {
    const d = digest();
    d[17] ^= 0x04;
    throwsCode(() => checkSignature(nobleVerifier, key(), d, signatureFromBase64(SIG_LOW_S)), "signature-invalid", "does not match the image and key");
  });

  test("the wrong key -> signature-invalid", () => {
    const other = publicKeyFromPem(OTHER_P256_PUBLIC_KEY);
    throwsCode(() => checkSignature(nobleVerifier, other, digest(), signatureFromBase64(SIG_HIGH_S)), "signature-invalid", "does not match");
  });

  test("a signature of another message -> signature-invalid", () => {
    throwsCode(() => checkSignature(nobleVerifier, key(), digest(), signatureFromBase64(SIG_OTHER_MESSAGE)), "signature-invalid", "does not match");
  });

  test("a high-S signature turned into its low-S twin still verifies, a tampered s does not", () => {
    // (r, n - s) is the same signature mathematically: proves high-S is not special-cased.
    const raw = signatureFromBase64(SIG_HIGH_S);
    const n = fromHex(N_HEX);
    const twin = raw.slice();
    let borrow = 0;
    for (let i = 31; i >= 0; i--) {
      const v = n[i] - raw[32 + i] - borrow;
      twin[32 + i] = v & 0xff;
      borrow = v < 0 ? 1 : 0;
    }
    ok(hex(twin.subarray(32)) < HALF_N_HEX, "twin is low-S");
    checkSignature(nobleVerifier, key(), digest(), twin);
    twin[40] ^= 1;
    throwsCode(() => checkSignature(nobleVerifier, key(), digest(), twin), "signature-invalid");
  });

  test("garbage base64 -> signature-malformed", () => {
    throwsCode(() => signatureFromBase64("not base64!"), "signature-malformed", `signature base64: character " " (0x20) at position 3`);
    throwsCode(() => signatureFromBase64(""), "signature-malformed", "got 0");
    throwsCode(() => signatureFromBase64("aGVsbG8="), "signature-malformed", "raw signatures are 64 bytes, got 5");
  });

  test("DER with trailing bytes -> signature-malformed", () => {
    throwsCode(() => decodeSignature(cat(decodeBase64(SIG_LOW_S), [0])), "signature-malformed", "1 trailing byte at offset 71");
  });

  test("DER with a wrong SEQUENCE length -> signature-malformed", () => {
    const der = decodeBase64(SIG_LOW_S);
    der[1] += 1;
    throwsCode(() => decodeSignature(der), "signature-malformed", "has length 70, but only 69 bytes remain");
    der[1] -= 2;
    throwsCode(() => decodeSignature(der), "signature-malformed", "1 trailing byte at offset 70 after signature SEQUENCE");
    const short = tlv(0x30, tlv(2, [1]), [0x02, 0x05, 1, 2]);
    throwsCode(() => decodeSignature(short), "signature-malformed", "INTEGER s at offset 5 has length 5, but only 2 bytes remain");
    throwsCode(() => decodeSignature(bytes(0x30, 0x81, 0x06, 2, 1, 1, 2, 1, 1)), "signature-malformed", "not minimal");
    throwsCode(() => decodeSignature(bytes(0x30, 0x80, 2, 1, 1, 2, 1, 1, 0, 0)), "signature-malformed", "indefinite length");
  });

  test("DER INTEGER with a superfluous leading zero -> signature-malformed", () => {
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [0, 0x7f]), tlv(2, [1]))), "signature-malformed", "INTEGER r has a superfluous leading zero at offset 4");
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [1]), tlv(2, [0, 0, 0x80]))), "signature-malformed", "INTEGER s has a superfluous leading zero at offset 7");
  });

  test("DER negative INTEGER -> signature-malformed", () => {
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [0x80]), tlv(2, [1]))), "signature-malformed", "INTEGER r at offset 2 is negative");
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [1]), tlv(2, [0xff, 0x01]))), "signature-malformed", "INTEGER s at offset 5 is negative");
  });

  test("DER 34-byte INTEGER -> signature-malformed", () => {
    const big = tlv(0x30, tlv(2, [0, 0x80], zeros(32)), tlv(2, [1]));
    throwsCode(() => decodeSignature(big), "signature-malformed", "INTEGER r at offset 2 is 34 bytes long; at most 33");
    const wide = tlv(0x30, tlv(2, [1]), tlv(2, [0x01], zeros(32)));
    throwsCode(() => decodeSignature(wide), "signature-malformed", "INTEGER s at offset 5 does not fit in 32 bytes");
  });

  test("DER with three INTEGERs, or one, or an empty INTEGER -> signature-malformed", () => {
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [1]), tlv(2, [1]), tlv(2, [1]))), "signature-malformed", "3 trailing bytes at offset 8 after INTEGER s");
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [1]))), "signature-malformed", "INTEGER s is missing at offset 5");
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, []), tlv(2, [1]))), "signature-malformed", "INTEGER r at offset 2 is empty");
    throwsCode(() => decodeSignature(tlv(0x30, tlv(4, [1]), tlv(2, [1]))), "signature-malformed", "expected INTEGER (0x02) for INTEGER r at offset 2, found OCTET STRING (0x04)");
  });

  test("r = 0 -> signature-malformed", () => {
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [0]), tlv(2, [1]))), "signature-malformed", "signature r is zero");
    throwsCode(() => decodeSignature(cat(zeros(32), fromHex(SIG_LOW_S_S))), "signature-malformed", "signature r is zero");
  });

  test("s = n -> signature-malformed (n - 1 is well-formed)", () => {
    const n = fromHex(N_HEX);
    throwsCode(() => decodeSignature(tlv(0x30, tlv(2, [1]), tlv(2, [0], n))), "signature-malformed", "signature s is not below the P-256 group order n");
    throwsCode(() => decodeSignature(cat(fromHex(SIG_LOW_S_R), n)), "signature-malformed", "s is not below");
    throwsCode(() => decodeSignature(cat(fromHex(SIG_LOW_S_R), new Array<number>(32).fill(0xff))), "signature-malformed", "s is not below");
    const nMinus1 = n.slice();
    nMinus1[31] -= 1;
    bytesEqual(decodeSignature(tlv(0x30, tlv(2, [1]), tlv(2, [0], nMinus1))).subarray(32), nMinus1, "n - 1");
  });

  test("63 and 65 raw bytes -> signature-malformed", () => {
    const raw = fromHex(SIG_LOW_S_R + SIG_LOW_S_S);
    throwsCode(() => decodeSignature(raw.subarray(0, 63)), "signature-malformed", "raw signatures are 64 bytes, got 63");
    throwsCode(() => decodeSignature(cat(raw, [0])), "signature-malformed", "raw signatures are 64 bytes, got 65");
  });

  test("checkSignature refuses a digest that is not 32 bytes", () => {
    throwsCode(() => checkSignature(nobleVerifier, key(), digest().subarray(1), signatureFromBase64(SIG_LOW_S)), "bad-argument", "digest must be 32 bytes (SHA-256), got 31");
    throwsCode(() => checkSignature(nobleVerifier, key().subarray(1), digest(), signatureFromBase64(SIG_LOW_S)), "bad-argument", "got 64 bytes");
  });

  test("a verifier that throws ends as signature-invalid, not a crash", () => {
    const broken = { verify: (): boolean => { throw new TypeError("native verify exploded"); } };
    throwsCode(() => checkSignature(broken, key(), digest(), signatureFromBase64(SIG_LOW_S)), "signature-invalid", "native verify exploded");
  });

  test("nobleVerifier answers false, never throws, for input it cannot verify", () => {
    const raw = fromHex(SIG_LOW_S_R + SIG_LOW_S_S);
    equal(nobleVerifier.verify(cat([4], zeros(64)), digest(), raw), false, "key not on the curve");
    equal(nobleVerifier.verify(key().subarray(1), digest(), raw), false, "64-byte key");
    equal(nobleVerifier.verify(key(), digest(), new Uint8Array(64)), false, "r = s = 0");
    equal(nobleVerifier.verify(key(), digest(), decodeBase64(SIG_LOW_S)), false, "DER is not the port's form");
    equal(nobleVerifier.verify(key(), digest().subarray(1), raw), false, "31-byte digest");
    const notBytes = new Uint16Array(65) as unknown as Uint8Array; // e.g. from an untyped host
    equal(nobleVerifier.verify(notBytes, digest(), raw), false, "key that is not a Uint8Array");
    equal(nobleVerifier.verify(key(), digest(), raw), true, "the good one");
  });
});
