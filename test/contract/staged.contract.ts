/**
 * Nothing becomes bootable unless it is exactly what its publisher signed: each bad input leaves
 * otadata byte for byte as it was, and the good image is selected. Runs on Node and XS.
 */
import { suite } from "./harness.ts";
import { bytesEqual, equal, ok, throwsCode } from "./assert.ts";
import { p256 } from "../../modules/verify/noble-signature.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { md5 } from "@noble/hashes/legacy.js";
import { encodeBase64 } from "../../modules/codec/base64.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { verifyAndSelect, type GateContext, type StagedImage } from "../../modules/verify/staged.ts";
import { nobleVerifier } from "../../modules/verify/noble-signature.ts";
import { PemKeyStore } from "../../modules/verify/pem-key-store.ts";
import { MiniDevice, appImage, sha256 } from "./boot-fixture.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const SPKI_P256_PREFIX = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

function pemOf(secret: Uint8Array): string {
  const point = p256.getPublicKey(secret, false);
  const prefix = Uint8Array.from(SPKI_P256_PREFIX.match(/../g)!, (h) => parseInt(h, 16));
  const der = new Uint8Array(prefix.length + point.length);
  der.set(prefix);
  der.set(point, prefix.length);
  return `-----BEGIN PUBLIC KEY-----\n${encodeBase64(der)}\n-----END PUBLIC KEY-----\n`;
}

const signer = nobleSha256(ascii("xs-ota test signing key"));
const stranger = nobleSha256(ascii("someone else's key"));
const image = appImage("1.0.1", 3000);
const signatureOf = (bytes: Uint8Array, secret = signer) => encodeBase64(p256.sign(nobleSha256(bytes), secret, { prehash: false }));

interface Setup {
  device: MiniDevice;
  context: GateContext;
  warnings: string[];
}

function setup(allowUnsigned = false): Setup {
  const device = MiniDevice.fresh();
  const warnings: string[] = [];
  const keys = new PemKeyStore("thing-1", { "ota-signer.crt": pemOf(signer), "other.crt": pemOf(stranger) });
  const context: GateContext = {
    keys,
    verifier: nobleVerifier,
    boot: device.boot,
    format: espIdfFormat,
    digests: nobleDigests,
    allowUnsigned,
    log: (level, message) => warnings.push(`${level}: ${message}`),
  };
  return { device, context, warnings };
}

/** Streams `received` into ota_1 as the transfer layer would, hashing as it goes. */
function stage(s: Setup, received: Uint8Array, extra: Partial<StagedImage> = {}): StagedImage {
  const writer = new ImageWriter(s.device.partitions.open("ota_1"), received.length);
  const hash = sha256();
  for (let at = 0; at < received.length; at += 1000) {
    const chunk = received.subarray(at, at + 1000);
    writer.write(chunk);
    hash.update(chunk);
  }
  writer.finish();
  return { slot: s.device.partitions.open("ota_1"), slotName: "ota_1", length: received.length, sha256: hash.finish(), ...extra };
}

function refused(s: Setup, staged: StagedImage, code: Parameters<typeof throwsCode>[1], text: string): void {
  const before = s.device.otadata();
  throwsCode(() => verifyAndSelect(staged, s.context), code, text);
  bytesEqual(s.device.otadata(), before, "otadata unchanged");
  equal(s.device.restart(), "ota_0", "still boots the running image");
}

export default suite("verify before select", (test) => {
  test("a correctly signed image is selected and boots", () => {
    const s = setup();
    const v = verifyAndSelect(stage(s, image, { signature: { base64: signatureOf(image), keyLabel: "ota-signer.crt" } }), s.context);
    equal(v.version, "1.0.1");
    equal(s.device.boot.info().next, "ota_1");
    equal(s.device.restart(), "ota_1");
  });

  test("a flipped bit anywhere in the received image", () => {
    for (const at of [0, 1500, image.length - 1]) {
      const s = setup();
      const received = image.slice();
      received[at] ^= 0x10;
      refused(s, stage(s, received, { signature: { base64: signatureOf(image), keyLabel: "ota-signer.crt" } }), "signature-invalid", "does not match");
    }
  });

  test("a truncated image", () => {
    const s = setup();
    refused(s, stage(s, image.subarray(0, image.length - 16), { signature: { base64: signatureOf(image), keyLabel: "ota-signer.crt" } }), "signature-invalid", "does not match");
  });

  test("a signature by another key, and a key label the device does not have", () => {
    const s = setup();
    refused(s, stage(s, image, { signature: { base64: signatureOf(image, stranger), keyLabel: "ota-signer.crt" } }), "signature-invalid", "does not match");
    refused(s, stage(s, image, { signature: { base64: signatureOf(image), keyLabel: "nobody.crt" } }), "key-invalid", "no code-signing key labelled 'nobody.crt'");
  });

  test("a signature made for another file", () => {
    const s = setup();
    refused(s, stage(s, image, { signature: { base64: signatureOf(appImage("1.0.9", 3000)), keyLabel: "ota-signer.crt" } }), "signature-invalid", "does not match");
  });

  test("garbage base64 and a signature of the wrong length", () => {
    const s = setup();
    refused(s, stage(s, image, { signature: { base64: "%%%not-base64%%%", keyLabel: "ota-signer.crt" } }), "signature-malformed", "base64");
    refused(s, stage(s, image, { signature: { base64: encodeBase64(new Uint8Array(63)), keyLabel: "ota-signer.crt" } }), "signature-malformed", "64");
  });

  test("a signed file that is not a bootable image is not selected", () => {
    const s = setup();
    const junk = new Uint8Array(2000).fill(0x5a);
    refused(s, stage(s, junk, { signature: { base64: signatureOf(junk), keyLabel: "ota-signer.crt" } }), "image-invalid", "magic");
  });

  test("unsigned: refused on a production device", () => {
    const s = setup(false);
    refused(s, stage(s, image), "unsigned", "accepts only signed images");
    equal(s.warnings.length, 0);
  });

  test("unsigned: accepted in development, with a warning each time", () => {
    const s = setup(true);
    verifyAndSelect(stage(s, image), s.context);
    equal(s.device.boot.info().next, "ota_1");
    equal(s.warnings.length, 1);
    ok(s.warnings[0].startsWith("warn: ") && s.warnings[0].includes("UNSIGNED"), "warning says UNSIGNED");
  });

  test("a job's MD5 (Zerynth bc_crc) must match what arrived", () => {
    const s = setup(true);
    const good = md5(image);
    const wrong = md5(ascii("something else"));
    const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    refused(s, stage(s, image, { expected: { algorithm: "md5", hex: toHex(wrong), actual: good } }), "digest-mismatch", "promised");
    refused(s, stage(s, image, { expected: { algorithm: "md5", hex: "xyz", actual: good } }), "malformed", "hex");
    verifyAndSelect(stage(s, image, { expected: { algorithm: "md5", hex: toHex(good).toUpperCase(), actual: good } }), s.context);
    equal(s.device.boot.info().next, "ota_1");
  });

  test("key store: keys by exact label; a PEM without a P-256 key is refused when added", () => {
    const keys = new PemKeyStore("thing-1", { "a.crt": pemOf(signer) });
    equal(keys.publicKey("a.crt")?.length, 65);
    equal(keys.publicKey("A.crt"), undefined);
    equal(keys.thingName(), "thing-1");
    throwsCode(() => keys.add("b", "no pem here"), "malformed");
    throwsCode(() => keys.add("b", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "key-invalid");
  });
});
