/**
 * ESP32 app images: packImage's byte layout (checked against ESP-IDF's esp_image_header_t and
 * esp_app_desc_t offsets, with checksum and SHA-256 recomputed here independently) and
 * verifyImage's refusals. Portable: runs on Node and on XS.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { suite } from "./harness.ts";
import { AssertionError, bytesEqual, deepEqual, equal, ok, throwsCode } from "./assert.ts";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import {
  IMAGE_PREFIX_SIZE,
  packImage,
  parseImagePrefix,
  verifyImage,
  type PackOptions,
} from "../../modules/esp-idf/image.ts";
import { pattern } from "./pattern.ts";

const BL = 4096;
const sha = () => nobleDigests.create("sha256");

function pack(payload: Uint8Array, extra: Partial<PackOptions> = {}): Uint8Array {
  return packImage({ version: "1.2.3", secureVersion: 7, projectName: "thermostat", payload, sha256: sha, ...extra });
}

/** A slot of `blocks` blocks (default: enough for the image) holding as much of the image as fits. */
function slotWith(image: Uint8Array, blocks = Math.max(1, Math.ceil(image.length / BL))): NorFlash {
  const flash = new NorFlash({ size: blocks * BL });
  flash.write(image.subarray(0, Math.min(image.length, blocks * BL)), 0);
  return flash;
}

const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

function setU32(b: Uint8Array, at: number, value: number): void {
  for (let i = 0; i < 4; i++) b[at + i] = (value >>> (8 * i)) & 0xff;
}

function ascii(b: Uint8Array, at: number, max: number): string {
  let s = "";
  for (let i = at; i < at + max && b[i] !== 0; i++) s += String.fromCharCode(b[i]);
  return s;
}

/** Walks the segments from the header alone: [data offset, length] each, and where they end. */
function walk(image: Uint8Array): { segments: [number, number][]; end: number } {
  const segments: [number, number][] = [];
  let at = 24;
  for (let i = 0; i < image[1]; i++) {
    const length = u32(image, at + 4);
    segments.push([at + 8, length]);
    at += 8 + length;
  }
  return { segments, end: at };
}

/** Verifies `image` in a slot and expects image-invalid mentioning `text`. */
function refused(image: Uint8Array, text: string, blocks?: number, chipId?: number): void {
  const flash = slotWith(image, blocks);
  throwsCode(() => verifyImage(flash, sha, chipId === undefined ? {} : { chipId }), "image-invalid", text);
}

const PAYLOAD = pattern(1001, 1);

export default suite("esp app image", (test) => {
  test("packImage then verifyImage: passes, with length, descriptor and header as packed", () => {
    const image = pack(PAYLOAD);
    const v = verifyImage(slotWith(image), sha);
    equal(v.length, image.length, "length");
    equal(v.desc.version, "1.2.3", "version");
    equal(v.desc.secureVersion, 7, "secureVersion");
    equal(v.desc.projectName, "thermostat", "projectName");
    equal(v.desc.time, "00:00:00", "default time");
    equal(v.desc.date, "Jan  1 2026", "default date");
    equal(v.desc.idfVersion, "xs-ota-sim", "idf version");
    ok(v.header.hashAppended, "hashAppended");
    equal(v.header.segments, 2, "segments in header");
    equal(v.header.chipId, 0, "chip id");
    equal(v.header.entry, 0x40080000, "entry");
    deepEqual(v.segments, [[32, 256], [296, 1004]], "segment data extents");
    equal((image.length - 32) % 16, 0, "length is a multiple of 16 plus the hash");
    ok(image.length > 32 + 296 + 1001, "payload inside");
    bytesEqual(image.subarray(296, 296 + 1001), PAYLOAD, "payload bytes after the second segment header");
  });

  test("time, date, chip id and a large secure version round-trip", () => {
    const image = pack(PAYLOAD, { time: "12:34:56", date: "Feb 29 2028", chipId: 9, secureVersion: 0xfffffffe });
    const v = verifyImage(slotWith(image), sha, { chipId: 9 });
    equal(v.desc.time, "12:34:56", "time");
    equal(v.desc.date, "Feb 29 2028", "date");
    equal(v.header.chipId, 9, "chip id");
    equal(v.desc.secureVersion, 0xfffffffe, "secure version");
  });

  test("verifyImage reads the image in a slot bigger than it, and ignores what follows", () => {
    const image = pack(pattern(6000, 2));
    const flash = slotWith(image, 4);
    flash.write(new Uint8Array(100), image.length + 10);
    equal(verifyImage(flash, sha).length, image.length, "length");
  });

  test("parseImagePrefix on the first 288 bytes gives the same descriptor; fewer is image-invalid", () => {
    const image = pack(PAYLOAD, { version: "v2.0.0-rc1" });
    equal(IMAGE_PREFIX_SIZE, 288, "prefix size");
    const full = verifyImage(slotWith(image), sha);
    const p = parseImagePrefix(image.slice(0, 288));
    deepEqual(p.desc, full.desc, "descriptor");
    deepEqual(p.header, full.header, "header");
    equal(p.desc.version, "v2.0.0-rc1", "version");
    throwsCode(() => parseImagePrefix(image.slice(0, 287)), "image-invalid", "287");
    throwsCode(() => parseImagePrefix(new Uint8Array(0)), "image-invalid", "288");
  });

  test("parseImagePrefix reads a view that starts inside a larger buffer", () => {
    const image = pack(PAYLOAD, { secureVersion: 0x01020304 });
    const host = new Uint8Array(5 + 288);
    host.fill(0x55);
    host.set(image.subarray(0, 288), 5);
    const p = parseImagePrefix(host.subarray(5));
    equal(p.desc.secureVersion, 0x01020304, "secure version");
    equal(p.desc.version, "1.2.3", "version");
  });

  test("byte layout: magic, chip id, hash_appended, app descriptor magic, secure_version, strings", () => {
    const image = pack(PAYLOAD, { secureVersion: 0x01020304, chipId: 0x1234, version: "9.8.7" });
    equal(image[0], 0xe9, "byte 0: image magic");
    equal(image[1], 2, "byte 1: segment count");
    equal(image[12], 0x34, "chip id low byte at 12");
    equal(image[13], 0x12, "chip id high byte at 13");
    equal(u16(image, 12), 0x1234, "chip id u16 LE at 12");
    equal(image[23], 1, "byte 23: hash appended");
    equal(u32(image, 28), 256, "first segment length: the 256-byte descriptor");
    bytesEqual(image.subarray(32, 36), new Uint8Array([0x32, 0x54, 0xcd, 0xab]), "app descriptor magic LE at 32");
    bytesEqual(image.subarray(36, 40), new Uint8Array([0x04, 0x03, 0x02, 0x01]), "secure_version LE at 36");
    equal(ascii(image, 48, 32), "9.8.7", "version at 32 + 16");
    equal(image[48 + 5], 0, "version is NUL-terminated");
    equal(ascii(image, 80, 32), "thermostat", "project name at 32 + 48");
    equal(ascii(image, 112, 16), "00:00:00", "time at 32 + 80");
    equal(ascii(image, 128, 16), "Jan  1 2026", "date at 32 + 96");
    equal(ascii(image, 144, 32), "xs-ota-sim", "idf version at 32 + 112");
    equal(u32(image, 288), 0x3f400020 + 256, "second segment loads after the descriptor");
    equal(u32(image, 292), 1004, "second segment length: payload padded to 4");
  });

  test("the checksum byte is 0xEF xor every byte of every segment's data, at the end of a 16-byte line", () => {
    for (const n of [0, 1, 2, 3, 4, 1001, 4096, 5000]) {
      const image = pack(pattern(n, 3 + n));
      const { segments, end } = walk(image);
      equal(segments.length, 2, `segments (payload ${n})`);
      let xor = 0xef;
      for (const [at, length] of segments) for (let i = at; i < at + length; i++) xor ^= image[i];
      const checksumAt = image.length - 33;
      equal((checksumAt + 1) % 16, 0, `checksum ends a 16-byte line (payload ${n})`);
      ok(checksumAt >= end && checksumAt < end + 16, `checksum right after the segments (payload ${n})`);
      for (let i = end; i < checksumAt; i++) equal(image[i], 0, `padding byte ${i} (payload ${n})`);
      equal(image[checksumAt], xor, `checksum (payload ${n})`);
    }
  });

  test("the appended SHA-256 is the hash of every byte before it", () => {
    for (const n of [0, 7, 1001, 5000]) {
      const image = pack(pattern(n, 40 + n));
      const body = image.subarray(0, image.length - 32);
      bytesEqual(image.subarray(image.length - 32), sha256(body), `appended hash (payload ${n})`);
    }
  });

  test("refused: bad image magic", () => {
    const image = pack(PAYLOAD);
    image[0] = 0xe8;
    refused(image, "magic 0xe8");
  });

  test("refused: a flipped bit in the payload (checksum)", () => {
    const image = pack(PAYLOAD);
    image[296 + 500] ^= 0x10;
    refused(image, "checksum");
  });

  test("refused: a flipped bit in the app descriptor's strings (checksum)", () => {
    const image = pack(PAYLOAD);
    image[48] ^= 0x01;
    refused(image, "checksum");
  });

  test("refused: a flipped bit in the checksum byte", () => {
    const image = pack(PAYLOAD);
    image[image.length - 33] ^= 0x80;
    refused(image, "checksum");
  });

  test("refused: a flipped bit outside the segment data (header, padding) breaks the SHA-256", () => {
    const image = pack(PAYLOAD); // segments end at 1300, checksum at 1311: padding 1300..1310
    equal(walk(image).end, 1300, "segments end");
    const header = image.slice();
    header[2] ^= 0x01; // SPI mode
    refused(header, "SHA-256");
    const padding = image.slice();
    padding[1309] ^= 0x04;
    refused(padding, "SHA-256");
  });

  test("refused: a flipped bit in the appended hash", () => {
    const image = pack(PAYLOAD);
    image[image.length - 1] ^= 0x01;
    refused(image, "SHA-256");
    const first = pack(PAYLOAD);
    first[first.length - 32] ^= 0x40;
    refused(first, "SHA-256");
  });

  test("without hash_appended the checksum alone decides and the length excludes the hash", () => {
    const image = pack(PAYLOAD);
    image[23] = 0;
    image[image.length - 1] ^= 0xff; // the trailing bytes are no longer part of the image
    const v = verifyImage(slotWith(image), sha);
    ok(!v.header.hashAppended, "hashAppended");
    equal(v.length, image.length - 32, "length");
    image[296] ^= 1;
    refused(image, "checksum");
  });

  test("refused: segment count 0 and 17", () => {
    for (const count of [0, 17, 255]) {
      const image = pack(PAYLOAD);
      image[1] = count;
      refused(image, `segment count ${count}`);
    }
  });

  test("refused: a segment length that is not a multiple of 4", () => {
    const second = pack(PAYLOAD);
    setU32(second, 292, 1002);
    refused(second, "segment 1 length 1002 is not a multiple of 4");
    const first = pack(PAYLOAD);
    setU32(first, 28, 257);
    refused(first, "segment 0 length 257");
  });

  test("refused: a segment running past the end of the partition", () => {
    const big = pack(pattern(6000, 5)); // 6336 bytes
    ok(big.length > BL, "image bigger than one block");
    refused(big, "segment 1", 1);
    refused(big, "past the end of the partition", 1);
    const patched = pack(PAYLOAD);
    setU32(patched, 292, 2 * BL);
    refused(patched, "segment 1 (8192 bytes) runs past the end");
    // Just past: data from 296 to 4100 in a 4096-byte slot (the 8-byte segment header counts).
    const justPast = pack(PAYLOAD);
    setU32(justPast, 292, 3804);
    refused(justPast, "segment 1 (3804 bytes) runs past the end", 1);
  });

  test("refused: checksum or appended hash past the end of the partition", () => {
    // Segments end at 296 + 3784 = 4080: the checksum is byte 4095, the hash is past a 4 KB slot.
    const hashOut = pack(pattern(3784, 6));
    equal(hashOut.length, BL + 32, "image size");
    refused(hashOut, "appended SHA-256 past the end", 1);
    equal(verifyImage(slotWith(hashOut, 2), sha).length, BL + 32, "fits in two blocks");
    // Segments end exactly at 4096: the checksum line is past a 4 KB slot.
    const checksumOut = pack(pattern(3800, 7));
    equal(walk(checksumOut).end, BL, "segments end at the slot end");
    refused(checksumOut, "checksum past the end", 1);
  });

  test("refused: an image for another chip", () => {
    const image = pack(PAYLOAD);
    refused(image, "chip id 0, not 5", undefined, 5);
    const forFive = pack(PAYLOAD, { chipId: 5 });
    equal(verifyImage(slotWith(forFive), sha, { chipId: 5 }).header.chipId, 5, "chip 5 image on chip 5");
    refused(forFive, "chip id 5, not 0");
  });

  test("refused: no app descriptor magic", () => {
    const image = pack(PAYLOAD);
    image[33] ^= 0x01;
    refused(image, "app descriptor");
    throwsCode(() => parseImagePrefix(image.subarray(0, 288)), "image-invalid", "0xabcd5432");
  });

  test("refused: an erased slot", () => {
    throwsCode(() => verifyImage(new NorFlash({ size: 2 * BL }), sha), "image-invalid", "magic 0xff");
  });

  test("an empty payload and payloads of lengths not a multiple of 4 pack and verify", () => {
    for (const n of [0, 1, 2, 3, 5, 4097]) {
      const payload = pattern(n, 60 + n);
      const image = pack(payload);
      const v = verifyImage(slotWith(image), sha);
      equal(v.length, image.length, `length (payload ${n})`);
      const padded = (n + 3) & ~3;
      deepEqual(v.segments[1], [296, padded], `second segment (payload ${n})`);
      bytesEqual(image.subarray(296, 296 + n), payload, `payload (payload ${n})`);
      for (let i = 296 + n; i < 296 + padded; i++) {
        if (image[i] !== 0x20) throw new AssertionError(`pad byte ${i} is ${image[i]}, expected a space (payload ${n})`);
      }
    }
  });

  test("packImage refuses a version of 32 or more characters, or not printable ASCII", () => {
    const v31 = "1234567890123456789012345678901";
    equal(v31.length, 31, "31 characters");
    equal(verifyImage(slotWith(pack(PAYLOAD, { version: v31 })), sha).desc.version, v31, "31 characters fit");
    throwsCode(() => pack(PAYLOAD, { version: v31 + "2" }), "bad-argument", "version");
    throwsCode(() => pack(PAYLOAD, { version: v31 + "23456" }), "bad-argument", "version");
    throwsCode(() => pack(PAYLOAD, { version: "1.0.0-é" }), "bad-argument", "version");
    throwsCode(() => pack(PAYLOAD, { version: "1.0\n" }), "bad-argument", "version");
    throwsCode(() => pack(PAYLOAD, { version: "1.0\u{1F600}" }), "bad-argument", "version");
    throwsCode(() => pack(PAYLOAD, { projectName: "p".repeat(32) }), "bad-argument", "project name");
    throwsCode(() => pack(PAYLOAD, { date: "Jan  1 2026 12:00" }), "bad-argument", "date");
  });

  test("packImage refuses a secure version that is not a u32 integer", () => {
    throwsCode(() => pack(PAYLOAD, { secureVersion: -1 }), "bad-argument", "secure version");
    throwsCode(() => pack(PAYLOAD, { secureVersion: 1.5 }), "bad-argument", "secure version");
    throwsCode(() => pack(PAYLOAD, { secureVersion: 2 ** 32 }), "bad-argument", "secure version");
    equal(verifyImage(slotWith(pack(PAYLOAD, { secureVersion: 0xffffffff })), sha).desc.secureVersion, 0xffffffff, "max fits");
  });
});
