/**
 * ESP-IDF otadata, bit for bit, and the ESP-IDF bootloader's choice of slot.
 *
 * The partition is 0x2000 bytes: entry 0 in the first 4 KB sector, entry 1 in the second. An
 * entry is 32 bytes, little-endian: u32 ota_seq, u8 seq_label[20] (unused, 0xFF), u32 ota_state,
 * u32 crc, where crc = crc32_le(0xFFFFFFFF, ota_seq) and covers only the sequence number.
 * The rules below follow ESP-IDF's bootloader_common_ota_select_invalid / _valid /
 * get_active_otadata and bootloader_utility_get_selected_boot_partition with
 * CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.
 */
import { crc32 } from "../codec/crc32.ts";
import { OtaError } from "../errors.ts";

export const OTADATA_SIZE = 0x2000;
export const OTADATA_SECTOR = 0x1000;
export const OTA_ENTRY_SIZE = 32;
/** Byte offsets inside an entry. */
export const ENTRY_SEQ = 0;
export const ENTRY_STATE = 24;
export const ENTRY_CRC = 28;

export const OTA_STATES = Object.freeze({
  NEW: 0,
  PENDING_VERIFY: 1,
  VALID: 2,
  INVALID: 3,
  ABORTED: 4,
  UNDEFINED: 0xffffffff,
} as const);
export type OtaStateName = keyof typeof OTA_STATES;

const BLANK = 0xffffffff;

export interface OtaEntry {
  seq: number;
  state: number;
  crc: number;
  /** seq_label, kept so that decoding and encoding again gives the same bytes. */
  label: Uint8Array;
}

export function stateName(state: number): string {
  for (const [name, value] of Object.entries(OTA_STATES)) if (value === state) return name;
  return `0x${state.toString(16).padStart(8, "0")} (not a state)`;
}

export function parseStateName(name: string): number {
  const key = name.toUpperCase().replace(/-/g, "_");
  if (key in OTA_STATES) return OTA_STATES[key as OtaStateName];
  throw new OtaError("bad-argument", `unknown otadata state '${name}' (one of ${Object.keys(OTA_STATES).join(", ")})`);
}

export function seqCrc(seq: number): number {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, seq >>> 0, true);
  return crc32(b, 0xffffffff);
}

/** An entry with the crc ESP-IDF would compute for its seq. */
export function makeEntry(seq: number, state: number): OtaEntry {
  return { seq: seq >>> 0, state: state >>> 0, crc: seqCrc(seq), label: new Uint8Array(20).fill(0xff) };
}

export function blankEntry(): OtaEntry {
  return { seq: BLANK, state: BLANK, crc: BLANK, label: new Uint8Array(20).fill(0xff) };
}

export function encodeEntry(e: OtaEntry): Uint8Array {
  const b = new Uint8Array(OTA_ENTRY_SIZE).fill(0xff);
  const v = new DataView(b.buffer);
  v.setUint32(ENTRY_SEQ, e.seq >>> 0, true);
  b.set(e.label.subarray(0, 20), 4);
  v.setUint32(ENTRY_STATE, e.state >>> 0, true);
  v.setUint32(ENTRY_CRC, e.crc >>> 0, true);
  return b;
}

export function decodeEntry(bytes: Uint8Array): OtaEntry {
  if (bytes.length < OTA_ENTRY_SIZE) throw new OtaError("otadata-corrupt", `an otadata entry is 32 bytes, got ${bytes.length}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, OTA_ENTRY_SIZE);
  return {
    seq: v.getUint32(ENTRY_SEQ, true),
    state: v.getUint32(ENTRY_STATE, true),
    crc: v.getUint32(ENTRY_CRC, true),
    label: bytes.slice(4, 24),
  };
}

/** Both entries of a whole otadata image (at least 0x1000 + 32 bytes). */
export function decodeOtadata(bytes: Uint8Array): [OtaEntry, OtaEntry] {
  if (bytes.length < OTADATA_SECTOR + OTA_ENTRY_SIZE) {
    throw new OtaError("otadata-corrupt", `otadata must be 0x2000 bytes, got 0x${bytes.length.toString(16)}`);
  }
  return [decodeEntry(bytes.subarray(0, 32)), decodeEntry(bytes.subarray(OTADATA_SECTOR, OTADATA_SECTOR + 32))];
}

/** A whole 0x2000-byte otadata image: erased sectors holding the given entries. */
export function encodeOtadata(entries: [OtaEntry, OtaEntry]): Uint8Array {
  const out = new Uint8Array(OTADATA_SIZE).fill(0xff);
  out.set(encodeEntry(entries[0]), 0);
  out.set(encodeEntry(entries[1]), OTADATA_SECTOR);
  return out;
}

export function crcOk(e: OtaEntry): boolean {
  return e.crc === seqCrc(e.seq);
}

/** ESP-IDF's ota_select_invalid: blank, INVALID or ABORTED. Says nothing about the crc. */
export function selectInvalid(e: OtaEntry): boolean {
  return e.seq === BLANK || e.state === OTA_STATES.INVALID || e.state === OTA_STATES.ABORTED;
}

/** ESP-IDF's ota_select_valid: usable and its crc matches. */
export function selectValid(e: OtaEntry): boolean {
  return !selectInvalid(e) && crcOk(e);
}

/** ESP-IDF's get_active_otadata: the valid entry with the highest seq (entry 0 on a tie), or -1. */
export function activeEntry(entries: readonly OtaEntry[]): -1 | 0 | 1 {
  const v0 = selectValid(entries[0]);
  const v1 = selectValid(entries[1]);
  if (v0 && v1) return entries[0].seq >= entries[1].seq ? 0 : 1;
  return v0 ? 0 : v1 ? 1 : -1;
}

/** The app slot index a sequence number selects. */
export function seqSlot(seq: number, slotCount: number): number {
  // uint32 arithmetic, as the bootloader's C: seq 0 (valid with its crc) wraps to 0xFFFFFFFF.
  return ((seq - 1) >>> 0) % slotCount;
}

/** The smallest sequence number above `above` that selects `slot`. */
export function nextSeq(above: number, slot: number, slotCount: number): number {
  let seq = above + 1;
  seq += (((slot - seqSlot(seq, slotCount)) % slotCount) + slotCount) % slotCount;
  if (seq >= BLANK) throw new OtaError("boot-state", "otadata sequence numbers exhausted");
  return seq;
}

export interface BootPlan {
  /** Entry rewrites the bootloader makes before it loads an image, in order (each erase + write). */
  writes: { sector: 0 | 1; entry: OtaEntry }[];
  /**
   * The first slot index the bootloader tries; -1 when otadata chose nothing, so it tries slots
   * from ota_0 upwards. If an image does not load, it goes down from here, then up.
   */
  start: number;
  /**
   * Both entries were blank or had bad crcs (no factory slot): whichever slot loads, the
   * bootloader then writes entry 0 = {seq: slot + 1, VALID}.
   */
  initial: boolean;
  /** The entries as the bootloader sees them after its rewrites. */
  entries: [OtaEntry, OtaEntry];
}

/**
 * What ESP-IDF's bootloader does with this otadata, for a table with `slotCount` OTA slots and
 * no factory slot. With rollback: every PENDING_VERIFY entry becomes ABORTED, and the active
 * entry, if NEW, becomes PENDING_VERIFY (the trial boot).
 */
export function planBoot(input: readonly OtaEntry[], slotCount: number, rollback = true): BootPlan {
  if (slotCount < 1) throw new OtaError("boot-no-slot", "no OTA app slots");
  const entries: [OtaEntry, OtaEntry] = [{ ...input[0] }, { ...input[1] }];
  const writes: BootPlan["writes"] = [];
  if (rollback) {
    for (const i of [0, 1] as const) {
      if (entries[i].state === OTA_STATES.PENDING_VERIFY) {
        entries[i] = { ...entries[i], state: OTA_STATES.ABORTED };
        writes.push({ sector: i, entry: entries[i] });
      }
    }
  }
  if (selectInvalid(entries[0]) && selectInvalid(entries[1])) {
    const fresh = (e: OtaEntry) => e.seq === BLANK || !crcOk(e);
    return { writes, start: 0, initial: fresh(entries[0]) && fresh(entries[1]), entries };
  }
  const active = activeEntry(entries);
  if (active === -1) return { writes, start: -1, initial: false, entries };
  if (rollback && entries[active].state === OTA_STATES.NEW) {
    entries[active] = { ...entries[active], state: OTA_STATES.PENDING_VERIFY };
    writes.push({ sector: active, entry: entries[active] });
  }
  return { writes, start: seqSlot(entries[active].seq, slotCount), initial: false, entries };
}

/** The order in which the bootloader tries slots, from a plan's start index. */
export function bootOrder(start: number, slotCount: number): number[] {
  const order: number[] = [];
  for (let i = Math.min(start, slotCount - 1); i >= 0; i--) order.push(i);
  for (let i = start + 1; i < slotCount; i++) order.push(i);
  return order;
}
