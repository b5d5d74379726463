/**
 * Reads a simulated device's flash.bin and nvs.json from outside (the soak, between kills) with
 * the project's own decoders: the partition table, otadata, ESP-IDF's boot plan and the app image
 * check. Nothing is written: the bootloader's rewrites (PENDING_VERIFY -> ABORTED, ...) are only
 * planned, so looking does not change what the device will do when it powers on.
 */
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, readSync } from "node:fs";
import { join } from "node:path";
import type { Flash } from "../modules/ports/flash.ts";
import { OtaError } from "../modules/errors.ts";
import { decodePartitionTable, appSlots, requirePartition, TABLE_MAX_LENGTH, TABLE_OFFSET } from "../modules/esp-idf/partition-table.ts";
import { OTADATA_SECTOR, activeEntry, bootOrder, crcOk, decodeEntry, planBoot, seqSlot, stateName } from "../modules/esp-idf/otadata.ts";
import { verifyImage } from "../modules/esp-idf/image.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { JOB_KEY } from "../modules/agent/agent.ts";

export interface FlashView {
  /** The slot the bootloader would start, or undefined when none holds a bootable image. */
  boots: string | undefined;
  /** That slot's image version. */
  version: string | undefined;
  /** The otadata state of the entry that selects that slot ("VALID", "PENDING_VERIFY", ...), or "none". */
  state: string;
  /** Why each slot tried before it did not boot, and the entries as read. */
  notes: string[];
}

const md5 = (bytes: Uint8Array) => new Uint8Array(createHash("md5").update(bytes).digest());
const sha256 = () => nodeDigests.create("sha256");

/** A read-only region of an open file, as the Flash port. */
function region(fd: number, base: number, size: number): Flash {
  return {
    status: () => ({ size, blockLength: 4096, blocks: size / 4096 }),
    read(length: number, offset: number): ArrayBuffer {
      if (offset < 0 || offset + length > size) throw new OtaError("flash-bounds", `read ${length} at ${offset} outside ${size}`);
      const out = new Uint8Array(length);
      readSync(fd, out, 0, length, base + offset);
      return out.buffer;
    },
    eraseBlock: () => {
      throw new Error("read-only");
    },
    write: () => {
      throw new Error("read-only");
    },
  };
}

/** What the bootloader would start from this device's flash, if it powered on now. */
export function inspectFlash(dir: string): FlashView {
  const fd = openSync(join(dir, "flash.bin"), "r");
  try {
    const table = new Uint8Array(TABLE_MAX_LENGTH);
    readSync(fd, table, 0, TABLE_MAX_LENGTH, TABLE_OFFSET);
    const partitions = decodePartitionTable(table, md5);
    const slots = appSlots(partitions);
    const otadata = requirePartition(partitions, "otadata");
    const entries = [0, 1].map((i) => decodeEntry(new Uint8Array(region(fd, otadata.offset, otadata.size).read(32, i * OTADATA_SECTOR))));
    const notes = entries.map((e, i) => `otadata[${i}] seq ${e.seq === 0xffffffff ? "blank" : e.seq} ${stateName(e.state)}${crcOk(e) ? "" : " (bad crc)"}`);
    const plan = planBoot(entries, slots.length);
    for (const index of bootOrder(plan.start, slots.length)) {
      const slot = slots[index];
      if (slot === undefined) continue;
      try {
        const image = verifyImage(region(fd, slot.offset, slot.size), sha256);
        const active = activeEntry(plan.entries);
        const entry = active === -1 ? undefined : plan.entries[active];
        // A slot started as a fallback (the active entry's image did not load) has no state of its own.
        const state = plan.initial ? "VALID" : entry !== undefined && seqSlot(entry.seq, slots.length) === index ? stateName(entry.state) : "none";
        return { boots: slot.name, version: image.desc.version, state, notes };
      } catch (e) {
        notes.push(`${slot.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    return { boots: undefined, version: undefined, state: "none", notes };
  } finally {
    closeSync(fd);
  }
}

/** Whether the agent holds a job record in the device's NVS (nvs.json is replaced atomically). */
export function jobRecordPending(dir: string): boolean {
  const path = join(dir, "nvs.json");
  if (!existsSync(path)) return false;
  const records = JSON.parse(readFileSync(path, "utf8")) as Record<string, string>;
  return records[JOB_KEY] !== undefined;
}
