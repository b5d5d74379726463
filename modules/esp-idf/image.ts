/**
 * ESP32 app images: the header the ROM and bootloader read, the app descriptor (esp_app_desc_t)
 * that carries version and secure_version, and the structural check the bootloader makes before
 * it starts an image (ESP-IDF's esp_image_verify; esp_ota_end runs the same check on the device).
 *
 * Layout: 24-byte header (magic 0xE9, segment count, ..., chip id at +12, hash_appended at +23);
 * then segments, each an 8-byte header (load address, length, a multiple of 4) and its data; the
 * first segment starts with the 256-byte app descriptor, at image offset 32. After the segments,
 * zero padding so that the checksum byte (0xEF xor every segment data byte) is the last byte of a
 * 16-byte line; then, if hash_appended, the SHA-256 of everything before it.
 * Simulator firmware uses the same layout with its JavaScript bundle as the second segment.
 */
import type { Digest } from "../ports/digest.ts";
import type { Flash } from "../ports/flash.ts";
import { OtaError } from "../errors.ts";

export const IMAGE_MAGIC = 0xe9;
export const APP_DESC_MAGIC = 0xabcd5432;
export const HEADER_SIZE = 24;
export const SEGMENT_HEADER_SIZE = 8;
export const APP_DESC_OFFSET = 32;
export const APP_DESC_SIZE = 256;
/** Header, first segment header and app descriptor: all a version check needs. */
export const IMAGE_PREFIX_SIZE = APP_DESC_OFFSET + APP_DESC_SIZE;
const MAX_SEGMENTS = 16;
const CHECKSUM_SEED = 0xef;
/** Where the simulator's segments load: the ESP32's flash-mapped data region (DROM). */
const DROM = 0x3f400020;

export interface AppDescriptor {
  secureVersion: number;
  version: string;
  projectName: string;
  time: string;
  date: string;
  idfVersion: string;
}

export interface ImageHeader {
  segments: number;
  chipId: number;
  hashAppended: boolean;
  entry: number;
}

function text(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  let s = "";
  for (const b of end < 0 ? bytes : bytes.subarray(0, end)) s += String.fromCharCode(b);
  return s;
}

function fail(reason: string): never {
  throw new OtaError("image-invalid", reason);
}

/** Reads header and app descriptor from the first 288 bytes of an image. */
export function parseImagePrefix(prefix: Uint8Array): { header: ImageHeader; desc: AppDescriptor } {
  if (prefix.length < IMAGE_PREFIX_SIZE) fail(`an image starts with ${IMAGE_PREFIX_SIZE} bytes of header and descriptor, got ${prefix.length}`);
  const v = new DataView(prefix.buffer, prefix.byteOffset, IMAGE_PREFIX_SIZE);
  if (prefix[0] !== IMAGE_MAGIC) fail(`bad image magic 0x${prefix[0].toString(16)} (expected 0xe9)`);
  const header: ImageHeader = {
    segments: prefix[1],
    entry: v.getUint32(4, true),
    chipId: v.getUint16(12, true),
    hashAppended: prefix[23] === 1,
  };
  if (v.getUint32(APP_DESC_OFFSET, true) !== APP_DESC_MAGIC) fail("no app descriptor (magic 0xabcd5432) at offset 32");
  const d = prefix.subarray(APP_DESC_OFFSET, IMAGE_PREFIX_SIZE);
  const desc: AppDescriptor = {
    secureVersion: v.getUint32(APP_DESC_OFFSET + 4, true),
    version: text(d.subarray(16, 48)),
    projectName: text(d.subarray(48, 80)),
    time: text(d.subarray(80, 96)),
    date: text(d.subarray(96, 112)),
    idfVersion: text(d.subarray(112, 144)),
  };
  return { header, desc };
}

/** The version in the app descriptor of the image at the start of `slot` (e.g. the running one). */
export function imageVersion(slot: Flash): string {
  return parseImagePrefix(new Uint8Array(slot.read(IMAGE_PREFIX_SIZE, 0))).desc.version;
}

export interface VerifiedImage {
  /** Bytes the image occupies, hash included. */
  length: number;
  header: ImageHeader;
  desc: AppDescriptor;
  /** [offset, length] of each segment's data within the image. */
  segments: [number, number][];
}

/**
 * Checks an image in flash the way the bootloader does: header, segments inside the partition,
 * checksum, and the appended SHA-256 when the header says there is one. Throws "image-invalid"
 * with the reason. Reads in blocks; nothing of the image is held whole.
 */
export function verifyImage(flash: Flash, sha256: () => Digest, options: { chipId?: number } = {}): VerifiedImage {
  const limit = flash.status().size;
  if (limit < IMAGE_PREFIX_SIZE) fail("partition smaller than an image header");
  const { header, desc } = parseImagePrefix(new Uint8Array(flash.read(IMAGE_PREFIX_SIZE, 0)));
  if (header.chipId !== (options.chipId ?? 0)) fail(`image is for chip id ${header.chipId}, not ${options.chipId ?? 0}`);
  if (header.segments < 1 || header.segments > MAX_SEGMENTS) fail(`bad segment count ${header.segments}`);
  const hash = sha256();
  let xor = 0;
  let offset = HEADER_SIZE;
  const segments: [number, number][] = [];
  hash.update(new Uint8Array(flash.read(HEADER_SIZE, 0)));
  for (let i = 0; i < header.segments; i++) {
    if (offset + SEGMENT_HEADER_SIZE > limit) fail(`segment ${i} header past the end of the partition`);
    const sh = new Uint8Array(flash.read(SEGMENT_HEADER_SIZE, offset));
    const length = new DataView(sh.buffer).getUint32(4, true);
    if (length % 4) fail(`segment ${i} length ${length} is not a multiple of 4`);
    if (offset + SEGMENT_HEADER_SIZE + length > limit) fail(`segment ${i} (${length} bytes) runs past the end of the partition`);
    hash.update(sh);
    offset += SEGMENT_HEADER_SIZE;
    segments.push([offset, length]);
    xor ^= streamXor(flash, offset, length, hash);
    offset += length;
  }
  const checksumAt = offset + 15 - (offset % 16);
  if (checksumAt >= limit) fail("checksum past the end of the partition");
  const tail = new Uint8Array(flash.read(checksumAt + 1 - offset, offset));
  hash.update(tail);
  const expected = (CHECKSUM_SEED ^ xor) & 0xff;
  if (tail[tail.length - 1] !== expected) fail(`checksum 0x${tail[tail.length - 1].toString(16)}, expected 0x${expected.toString(16)}`);
  let length = checksumAt + 1;
  if (header.hashAppended) {
    if (length + 32 > limit) fail("appended SHA-256 past the end of the partition");
    const stored = new Uint8Array(flash.read(32, length));
    const actual = hash.finish();
    for (let i = 0; i < 32; i++) if (stored[i] !== actual[i]) fail("appended SHA-256 does not match the image");
    length += 32;
  }
  return { length, header, desc, segments };
}

/**
 * XOR of a segment's bytes folded to one byte, reading 4 KB at a time, 32 bits per step. This is
 * the one loop over every word of an image that runs in JavaScript on the device; eight words a
 * step halves what XS spends on it (the loop's own bookkeeping, not the XORs, dominates).
 */
function streamXor(flash: Flash, offset: number, length: number, hash: Digest): number {
  let acc = 0;
  for (let done = 0; done < length; ) {
    const n = Math.min(4096, length - done);
    const buf = flash.read(n, offset + done);
    hash.update(buf);
    const w = new Uint32Array(buf, 0, n >> 2);
    const end = w.length;
    let i = 0;
    for (; i + 8 <= end; i += 8) acc ^= w[i] ^ w[i + 1] ^ w[i + 2] ^ w[i + 3] ^ w[i + 4] ^ w[i + 5] ^ w[i + 6] ^ w[i + 7];
    for (; i < end; i++) acc ^= w[i];
    done += n;
  }
  return (acc ^ (acc >>> 8) ^ (acc >>> 16) ^ (acc >>> 24)) & 0xff;
}

export interface PackOptions {
  version: string;
  secureVersion?: number;
  projectName?: string;
  /** The app's code: for the simulator, its JavaScript bundle. */
  payload: Uint8Array;
  sha256: () => Digest;
  chipId?: number;
  /** Build stamp; fixed by default so that builds are reproducible. */
  time?: string;
  date?: string;
}

function putAscii(into: Uint8Array, at: number, s: string, max: number, what: string): void {
  if (s.length >= max || !/^[\x20-\x7e]*$/.test(s)) throw new OtaError("bad-argument", `${what} must be printable ASCII under ${max} characters`);
  for (let i = 0; i < s.length; i++) into[at + i] = s.charCodeAt(i);
}

/** Builds an app image in the layout above, with the SHA-256 appended. */
export function packImage(o: PackOptions): Uint8Array {
  const desc = new Uint8Array(APP_DESC_SIZE);
  const dv = new DataView(desc.buffer);
  dv.setUint32(0, APP_DESC_MAGIC, true);
  const secureVersion = o.secureVersion ?? 0;
  if (!Number.isInteger(secureVersion) || secureVersion < 0 || secureVersion > 0xffffffff) {
    throw new OtaError("bad-argument", `secure version must be an integer from 0 to 4294967295, got ${secureVersion}`);
  }
  dv.setUint32(4, secureVersion, true);
  putAscii(desc, 16, o.version, 32, "version");
  putAscii(desc, 48, o.projectName ?? "xs-ota-app", 32, "project name");
  putAscii(desc, 80, o.time ?? "00:00:00", 16, "time");
  putAscii(desc, 96, o.date ?? "Jan  1 2026", 16, "date");
  putAscii(desc, 112, "xs-ota-sim", 32, "idf version");
  const padded = (o.payload.length + 3) & ~3;
  const body = HEADER_SIZE + SEGMENT_HEADER_SIZE + APP_DESC_SIZE + SEGMENT_HEADER_SIZE + padded;
  const checksumAt = body + 15 - (body % 16);
  const out = new Uint8Array(checksumAt + 1 + 32);
  const v = new DataView(out.buffer);
  out[0] = IMAGE_MAGIC;
  out[1] = 2;
  out[2] = 2; // DIO
  out[3] = 0x20; // 4 MB, 40 MHz
  v.setUint32(4, 0x40080000, true);
  out[8] = 0xee; // no write-protect pin
  v.setUint16(12, o.chipId ?? 0, true);
  v.setUint16(17, 0xffff, true); // no maximum chip revision
  out[23] = 1;
  let at = HEADER_SIZE;
  v.setUint32(at, DROM, true);
  v.setUint32(at + 4, APP_DESC_SIZE, true);
  out.set(desc, at + 8);
  at += SEGMENT_HEADER_SIZE + APP_DESC_SIZE;
  v.setUint32(at, DROM + APP_DESC_SIZE, true);
  v.setUint32(at + 4, padded, true);
  out.set(o.payload, at + 8);
  out.fill(0x20, at + 8 + o.payload.length, at + 8 + padded); // spaces: harmless after a JS bundle
  let xor = CHECKSUM_SEED;
  for (let i = HEADER_SIZE + 8; i < HEADER_SIZE + 8 + APP_DESC_SIZE; i++) xor ^= out[i];
  for (let i = at + 8; i < at + 8 + padded; i++) xor ^= out[i];
  out[checksumAt] = xor;
  const h = o.sha256();
  h.update(out.subarray(0, checksumAt + 1));
  out.set(h.finish(), checksumAt + 1);
  return out;
}
