/**
 * xs-ota's install record, in partition `ota_state` (the last sector of the SDK's app_ota): what
 * the agent asks the second-stage boot to install, and how far that install has come.
 *
 *   0 u32 magic "XSW8"   4 u32 hd_checksum of the staged image   8 u32 its length (header + body)
 *   12 u32 zlib CRC-32 of bytes 0..11   16 u8 state
 *
 * Written once after an erase (bytes 0..15, the state byte left erased), then advanced only by
 * clearing bits of the state byte in place: NOR programs 1 -> 0 without an erase, and one byte
 * lands whole or not at all, so every step leaves the state before it or the one after. A torn
 * first write fails the CRC and reads as no record at all.
 *
 * State byte: 0xFF install requested; bit 0 cleared: installed, on trial; bit 1 cleared:
 * confirmed; bit 2 cleared: rejected (from any state: a rejected request is never installed).
 */
import type { Flash } from "../ports/flash.ts";
import { OtaError } from "../errors.ts";
import { crc32 } from "../codec/crc32.ts";

export const RECORD_MAGIC = 0x38575358; // "XSW8" little-endian
export const RECORD_BYTES = 16;
export const RECORD_STATE = 16;
const SECTOR = 4096;

const INSTALLED = 0x01;
const CONFIRMED = 0x02;
const REJECTED = 0x04;

export type InstallState = "requested" | "trial" | "confirmed" | "rejected";

/** What identifies a staged image: its header's hd_checksum and its length. */
export interface StagedId {
  hdChecksum: number;
  length: number;
}

export interface InstallRecord extends StagedId {
  state: InstallState;
}

export function stateOf(byte: number): InstallState {
  if ((byte & REJECTED) === 0) return "rejected";
  if ((byte & CONFIRMED) === 0) return "confirmed";
  if ((byte & INSTALLED) === 0) return "trial";
  return "requested";
}

export function encodeRecord(id: StagedId): Uint8Array {
  const out = new Uint8Array(RECORD_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, RECORD_MAGIC, true);
  v.setUint32(4, id.hdChecksum >>> 0, true);
  v.setUint32(8, id.length >>> 0, true);
  v.setUint32(12, crc32(out.subarray(0, 12)), true);
  return out;
}

/** The record in `ota_state`, or undefined when the sector holds none (erased, torn, foreign). */
export function readInstallRecord(flash: Flash): InstallRecord | undefined {
  checkSize(flash);
  const bytes = new Uint8Array(flash.read(RECORD_STATE + 1, 0));
  const v = new DataView(bytes.buffer);
  if (v.getUint32(0, true) !== RECORD_MAGIC || v.getUint32(12, true) !== crc32(bytes.subarray(0, 12))) return undefined;
  return { hdChecksum: v.getUint32(4, true), length: v.getUint32(8, true), state: stateOf(bytes[RECORD_STATE]) };
}

/** Asks for `id` to be installed at the next restart: erase, then one write of the record. */
export function requestInstall(flash: Flash, id: StagedId): void {
  checkSize(flash);
  flash.eraseBlock(0);
  flash.write(encodeRecord(id), 0);
}

/** The second-stage boot installed the requested image: it now runs on trial. */
export function markInstalled(flash: Flash): void {
  advance(flash, INSTALLED);
}

export function markConfirmed(flash: Flash): void {
  advance(flash, CONFIRMED);
}

export function markRejected(flash: Flash): void {
  advance(flash, REJECTED);
}

function advance(flash: Flash, bit: number): void {
  checkSize(flash);
  const now = new Uint8Array(flash.read(1, RECORD_STATE))[0];
  if ((now & bit) === 0) return;
  flash.write(new Uint8Array([now & ~bit & 0xff]), RECORD_STATE);
}

function checkSize(flash: Flash): void {
  const size = flash.status().size;
  if (size < SECTOR) throw new OtaError("partition-table", `ota_state is ${size} bytes; the install record needs one 4 KB sector`);
}
