/**
 * BootControl over ESP-IDF otadata, written from JavaScript through the `otadata` partition.
 *
 * Order of writes. Power can fail between any two flash operations, and inside one (a torn
 * write lands only some bytes, a torn erase clears only part of a sector). Three rules make
 * every such cut leave a bootable device:
 *
 * 1. Never touch the sector of the entry the bootloader boots from while it is the only good
 *    one: a new entry always goes into the *other* sector, with a higher sequence number.
 * 2. Program an entry in two writes, body first (seq, label, state) and crc last. The crc is the
 *    commit: until all of it has landed the entry fails its crc check and the bootloader ignores
 *    it, however the body write was torn.
 * 3. Confirming a trial image is where ESP-IDF's own order (erase the PENDING_VERIFY entry's
 *    sector, write it back VALID) can revert a confirmed update: cut after that erase, and only
 *    the old entry is left. Rewriting the other sector instead is no better as such: during its
 *    erase the only entry left is PENDING_VERIFY, which the bootloader turns ABORTED at the next
 *    start, and with no usable entry it starts ota_0, the old image when the new one is ota_1.
 *    So confirm first programs the trial entry's state in place from PENDING_VERIFY (1) to
 *    NEW (0): NOR lets a write clear bits without an erase, and the change is a single byte, so
 *    it lands whole or not at all. A NEW entry survives a restart (the bootloader makes it
 *    PENDING_VERIFY again and starts the new image), so the old entry's sector can now be erased
 *    and rewritten as {higher seq, same slot, VALID}. Every cut during confirm boots the new
 *    image: at worst for one more trial boot, after which the agent confirms again.
 *
 * `order: "esp-idf"` reproduces ESP-IDF's esp_ota_set_boot_partition and
 * esp_ota_mark_app_valid_cancel_rollback writes instead, so the power-cut proof can measure both.
 */
import type { BootControl, BootInfo, SlotState } from "../ports/boot-control.ts";
import type { Flash } from "../ports/flash.ts";
import type { Partitions } from "../ports/partitions.ts";
import { OtaError } from "../errors.ts";
import {
  ENTRY_CRC,
  ENTRY_STATE,
  OTADATA_SECTOR,
  OTA_STATES,
  activeEntry,
  bootOrder,
  crcOk,
  decodeEntry,
  encodeEntry,
  makeEntry,
  nextSeq,
  planBoot,
  selectValid,
  seqSlot,
  type OtaEntry,
} from "./otadata.ts";

export type WriteOrder = "xs-ota" | "esp-idf";

const STATE_NAMES: Record<number, SlotState> = Object.freeze<Record<number, SlotState>>({
  [OTA_STATES.NEW]: "new",
  [OTA_STATES.PENDING_VERIFY]: "pending",
  [OTA_STATES.VALID]: "valid",
  [OTA_STATES.INVALID]: "invalid",
  [OTA_STATES.ABORTED]: "aborted",
  [OTA_STATES.UNDEFINED]: "undefined",
});

export class OtadataBootControl implements BootControl {
  readonly #partitions: Partitions;
  readonly #order: WriteOrder;

  constructor(partitions: Partitions, options: { order?: WriteOrder } = {}) {
    this.#partitions = partitions;
    this.#order = options.order ?? "xs-ota";
  }

  info(): BootInfo {
    const slots = this.#partitions.appSlots();
    const running = this.#partitions.running();
    const entries = this.#read();
    const own = this.#entryFor(entries, slots.indexOf(running));
    const state: SlotState = own === -1 ? "none" : (STATE_NAMES[entries[own].state] ?? "undefined");
    const plan = planBoot(entries, slots.length);
    const next = slots[bootOrder(plan.start, slots.length)[0]];
    const updateSlot = slots[(slots.indexOf(running) + 1) % slots.length];
    const theirs = this.#entryFor(entries, slots.indexOf(updateSlot));
    const updateState: SlotState = theirs === -1 ? "none" : (STATE_NAMES[entries[theirs].state] ?? "undefined");
    return { running, state, next, updateSlot, updateState };
  }

  select(slot: string): void {
    const slots = this.#partitions.appSlots();
    const index = slots.indexOf(slot);
    if (index < 0) throw new OtaError("partition-unknown", `'${slot}' is not an OTA app slot (${slots.join(", ")})`);
    if (slot === this.#partitions.running()) throw new OtaError("boot-state", `'${slot}' is the running slot`);
    const entries = this.#read();
    const active = activeEntry(entries);
    // ESP-IDF writes a first selection into entry 0, later ones into the inactive entry.
    const sector = active === -1 ? 0 : active === 0 ? 1 : 0;
    const seq = nextSeq(this.#highestValidSeq(entries), index, slots.length);
    const state = OTA_STATES.NEW;
    this.#writeEntry(sector, makeEntry(seq, state));
  }

  confirm(): void {
    const slots = this.#partitions.appSlots();
    const index = slots.indexOf(this.#partitions.running());
    const entries = this.#read();
    const own = this.#entryFor(entries, index);
    const active = activeEntry(entries);
    if (own !== -1 && own === active && entries[own].state === OTA_STATES.VALID) return;

    if (this.#order === "esp-idf") {
      if (own === -1) throw new OtaError("boot-state", "no otadata entry selects the running slot");
      this.#flash().eraseBlock(own);
      this.#flash().write(encodeEntry(makeEntry(entries[own].seq, OTA_STATES.VALID)), own * OTADATA_SECTOR);
      return;
    }
    if (own !== -1 && entries[own].state === OTA_STATES.PENDING_VERIFY) {
      this.#flash().write(new Uint8Array([OTA_STATES.NEW]), own * OTADATA_SECTOR + ENTRY_STATE);
    }
    // Into the sector that does not hold our trial entry; started as a fallback with no entry
    // of our own, into the one that does not hold the active entry (rule 1).
    const sector = own !== -1 ? (own === 0 ? 1 : 0) : active === 0 ? 1 : 0;
    const seq = nextSeq(this.#highestValidSeq(entries), index, slots.length);
    this.#writeEntry(sector, makeEntry(seq, OTA_STATES.VALID));
  }

  reject(): boolean {
    const slots = this.#partitions.appSlots();
    const index = slots.indexOf(this.#partitions.running());
    const entries = this.#read();
    const own = this.#entryFor(entries, index);
    const other = ([0, 1] as const).find((i) => i !== own && selectValid(entries[i]) && seqSlot(entries[i].seq, slots.length) !== index);
    if (other === undefined) {
      // No entry points elsewhere (a trial boot that followed a cut during confirm, say):
      // point one at the previous slot, in the sector that does not hold ours.
      const previous = (index + slots.length - 1) % slots.length;
      const sector = own === 0 ? 1 : 0;
      this.#writeEntry(sector, makeEntry(nextSeq(this.#highestValidSeq(entries), previous, slots.length), OTA_STATES.VALID));
      return true;
    }
    if (own !== -1) this.#writeEntry(own, makeEntry(entries[own].seq, OTA_STATES.INVALID));
    return true;
  }

  /** The sector holding the usable entry with the highest seq that selects slot `index`, or -1. */
  #entryFor(entries: [OtaEntry, OtaEntry], index: number): -1 | 0 | 1 {
    const slots = this.#partitions.appSlots().length;
    let best: -1 | 0 | 1 = -1;
    for (const i of [0, 1] as const) {
      const e = entries[i];
      if (e.seq === 0xffffffff || !crcOk(e) || seqSlot(e.seq, slots) !== index) continue;
      if (best === -1 || e.seq > entries[best].seq) best = i;
    }
    return best;
  }

  #highestValidSeq(entries: [OtaEntry, OtaEntry]): number {
    let seq = 0;
    for (const e of entries) if (e.seq !== 0xffffffff && crcOk(e) && e.seq > seq) seq = e.seq;
    return seq;
  }

  #writeEntry(sector: 0 | 1, entry: OtaEntry): void {
    const flash = this.#flash();
    const bytes = encodeEntry(entry);
    flash.eraseBlock(sector);
    if (this.#order === "esp-idf") {
      flash.write(bytes, sector * OTADATA_SECTOR);
      return;
    }
    flash.write(bytes.subarray(0, ENTRY_CRC), sector * OTADATA_SECTOR);
    flash.write(bytes.subarray(ENTRY_CRC), sector * OTADATA_SECTOR + ENTRY_CRC);
  }

  #read(): [OtaEntry, OtaEntry] {
    const flash = this.#flash();
    return [decodeEntry(new Uint8Array(flash.read(32, 0))), decodeEntry(new Uint8Array(flash.read(32, OTADATA_SECTOR)))];
  }

  #flash(): Flash {
    const flash = this.#partitions.open("otadata");
    if (flash.status().size < 2 * OTADATA_SECTOR) throw new OtaError("otadata-corrupt", "the otadata partition is smaller than 0x2000");
    return flash;
  }
}
