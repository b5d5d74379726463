/**
 * The FreeRTOS "@AFRTOS" boot descriptor and signature trailer, as the Nuvoton NuMaker-IoT-M487
 * OTA PAL and its Cloner bootloader lay them out in APROM (learned from the FreeRTOS OTA PAL for
 * Numaker-IoT-M487, ota_pal.c: BootImageDescriptor_t, BootImageTrailer_t, AWS_BOOT_FLAG_IMG_*;
 * and the bootloader log in OpenNuvoton/NuMaker-mbed-AWS-IoT-CSDK-OTA-example, README.md).
 *
 * Descriptor, 32 bytes little-endian: magic "@AFRTOS" (7), flag (1), sequence, start, end
 * (inclusive), execution address, hardware id, reserved (the backup's SPI address).
 * Trailer: signature type (32 bytes, zero padded), u32 signature size, signature bytes.
 *
 * The flag only ever loses bits (NEW 0xFF -> PENDING_COMMIT 0xFE -> VALID 0xFC -> INVALID 0xF8),
 * so each step is one byte programmed in place without an erase: it lands whole or not at all.
 */
import { OtaError } from "../errors.ts";

export const DESCRIPTOR_SIZE = 32;
/** Bytes 0..7: magic and flag. Written last, so a descriptor without it reads as absent. */
export const HEADER_SIZE = 8;
export const FLAG_OFFSET = 7;
export const MAGIC = "@AFRTOS";

export const FLAGS = Object.freeze({
  NEW: 0xff,
  PENDING_COMMIT: 0xfe,
  VALID: 0xfc,
  INVALID: 0xf8,
} as const);

export type FlagName = "new" | "pending-commit" | "valid" | "invalid";

export const SIGNATURE_TYPE = "sig-sha256-ecdsa";
export const SIGNATURE_TYPE_SIZE = 32;
/** kOTA_MaxSignatureSize in the FreeRTOS OTA library. */
export const MAX_SIGNATURE_SIZE = 256;
export const TRAILER_SIZE = SIGNATURE_TYPE_SIZE + 4 + MAX_SIGNATURE_SIZE;

export interface Descriptor {
  /** False when bytes 0..6 are not "@AFRTOS": no descriptor (blank, erased or torn). */
  magic: boolean;
  flag: number;
  sequence: number;
  start: number;
  /** Inclusive: start + length - 1. */
  end: number;
  exec: number;
  hardwareId: number;
  reserved: number;
}

export interface Trailer {
  signatureType: string;
  signature: Uint8Array;
}

export function flagName(flag: number): FlagName | undefined {
  if (flag === FLAGS.NEW) return "new";
  if (flag === FLAGS.PENDING_COMMIT) return "pending-commit";
  if (flag === FLAGS.VALID) return "valid";
  if (flag === FLAGS.INVALID) return "invalid";
  return undefined;
}

/** A descriptor for an image of `length` bytes at offset 0 (where both the PAL and the Cloner put it). */
export function makeDescriptor(flag: number, sequence: number, length: number, reserved: number): Descriptor {
  if (!Number.isInteger(length) || length < 1) throw new OtaError("bad-argument", `an image of ${length} bytes cannot be described`);
  return { magic: true, flag, sequence, start: 0, end: length - 1, exec: 0, hardwareId: 0, reserved };
}

export function imageLength(d: Descriptor): number {
  return d.end - d.start + 1;
}

export function encodeDescriptor(d: Descriptor): Uint8Array {
  const out = new Uint8Array(DESCRIPTOR_SIZE).fill(0xff);
  if (d.magic) for (let i = 0; i < MAGIC.length; i++) out[i] = MAGIC.charCodeAt(i);
  out[FLAG_OFFSET] = d.flag & 0xff;
  const view = new DataView(out.buffer);
  const words = [d.sequence, d.start, d.end, d.exec, d.hardwareId, d.reserved];
  for (let i = 0; i < words.length; i++) view.setUint32(HEADER_SIZE + i * 4, words[i] >>> 0, true);
  return out;
}

export function decodeDescriptor(bytes: Uint8Array): Descriptor {
  if (bytes.length < DESCRIPTOR_SIZE) throw new OtaError("malformed", `a descriptor is ${DESCRIPTOR_SIZE} bytes, got ${bytes.length}`);
  let magic = true;
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC.charCodeAt(i)) magic = false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, DESCRIPTOR_SIZE);
  const word = (i: number) => view.getUint32(HEADER_SIZE + i * 4, true);
  return { magic, flag: bytes[FLAG_OFFSET], sequence: word(0), start: word(1), end: word(2), exec: word(3), hardwareId: word(4), reserved: word(5) };
}

/** The whole trailer record: unused signature bytes stay 0xFF (erased), as a page program leaves them. */
export function encodeTrailer(t: Trailer): Uint8Array {
  if (t.signatureType.length >= SIGNATURE_TYPE_SIZE) throw new OtaError("bad-argument", `signature type '${t.signatureType}' does not fit ${SIGNATURE_TYPE_SIZE} bytes`);
  if (t.signature.length > MAX_SIGNATURE_SIZE) throw new OtaError("bad-argument", `a ${t.signature.length}-byte signature does not fit the trailer's ${MAX_SIGNATURE_SIZE}`);
  const out = new Uint8Array(SIGNATURE_TYPE_SIZE + 4 + t.signature.length);
  for (let i = 0; i < t.signatureType.length; i++) out[i] = t.signatureType.charCodeAt(i) & 0x7f;
  new DataView(out.buffer).setUint32(SIGNATURE_TYPE_SIZE, t.signature.length, true);
  out.set(t.signature, SIGNATURE_TYPE_SIZE + 4);
  return out;
}

export interface StoredTrailer extends Trailer {
  /** The size field as stored: past MAX_SIGNATURE_SIZE when blank or torn. */
  size: number;
}

/** Reads a trailer; a blank or torn one gives a wrong type or a size past the maximum (never throws for content). */
export function decodeTrailer(bytes: Uint8Array): StoredTrailer {
  if (bytes.length < SIGNATURE_TYPE_SIZE + 4) throw new OtaError("malformed", `a trailer is at least ${SIGNATURE_TYPE_SIZE + 4} bytes, got ${bytes.length}`);
  let signatureType = "";
  for (let i = 0; i < SIGNATURE_TYPE_SIZE && bytes[i] !== 0; i++) signatureType += String.fromCharCode(bytes[i]);
  const size = new DataView(bytes.buffer, bytes.byteOffset).getUint32(SIGNATURE_TYPE_SIZE, true);
  const available = Math.max(0, bytes.length - SIGNATURE_TYPE_SIZE - 4);
  const signature = bytes.slice(SIGNATURE_TYPE_SIZE + 4, SIGNATURE_TYPE_SIZE + 4 + Math.min(size, available, MAX_SIGNATURE_SIZE));
  return { signatureType, signature, size };
}

/** What the Cloner asks of a trailer before it installs: the PAL's signature type and a size that fits. */
export function trailerOk(t: StoredTrailer): boolean {
  return t.signatureType === SIGNATURE_TYPE && t.size <= MAX_SIGNATURE_SIZE;
}
