/**
 * The simulated ESP32 second-stage bootloader, with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE and no
 * factory slot: it rewrites otadata as ESP-IDF's does (PENDING_VERIFY -> ABORTED, the active
 * NEW -> PENDING_VERIFY, and {seq, VALID} into entry 0 when otadata was blank), then tries slots
 * in ESP-IDF's order and starts the first whose image passes the check. Each rewrite is one
 * sector erase and one 32-byte write, so power cuts land where they would on a chip.
 */
import type { Flash } from "../../modules/ports/flash.ts";
import type { Digest } from "../../modules/ports/digest.ts";
import { isOtaError } from "../../modules/errors.ts";
import { verifyImage } from "../../modules/esp-idf/image.ts";
import { OTADATA_SECTOR, OTA_STATES, bootOrder, decodeEntry, encodeEntry, makeEntry, planBoot, stateName } from "../../modules/esp-idf/otadata.ts";
import type { SimPartitions } from "./partitions.ts";

export interface BootOutcome {
  /** The slot started, or undefined when no slot holds a bootable image. */
  slot: string | undefined;
  log: string[];
}

/** Returns why an image cannot start, or undefined when it can. */
export type ImageCheck = (slot: Flash, name: string) => string | undefined;

/** ESP-IDF's check of a slot: header, segments, checksum and appended SHA-256. */
export function espImageCheck(sha256: () => Digest): ImageCheck {
  return (slot) => {
    try {
      verifyImage(slot, sha256);
      return undefined;
    } catch (e) {
      if (isOtaError(e, "image-invalid")) return e.message;
      throw e;
    }
  };
}

export function runBootloader(partitions: SimPartitions, checkImage: ImageCheck, options: { rollback?: boolean } = {}): BootOutcome {
  const log: string[] = [];
  const otadata = partitions.open("otadata");
  const slots = partitions.appSlots();
  const entries = [0, 1].map((i) => decodeEntry(new Uint8Array(otadata.read(32, i * OTADATA_SECTOR))));
  const plan = planBoot(entries, slots.length, options.rollback ?? true);
  for (const { sector, entry } of plan.writes) {
    log.push(`otadata[${sector}] seq ${entry.seq} -> ${stateName(entry.state)}`);
    writeOtadata(otadata, sector, encodeEntry(entry));
  }
  for (const index of bootOrder(plan.start, slots.length)) {
    const name = slots[index];
    const why = checkImage(partitions.open(name), name);
    if (why !== undefined) {
      log.push(`${name} is not bootable: ${why}`);
      continue;
    }
    if (plan.initial) {
      log.push(`otadata[0] set to seq ${index + 1} VALID (otadata was blank)`);
      writeOtadata(otadata, 0, encodeEntry(makeEntry(index + 1, OTA_STATES.VALID)));
    }
    log.push(`boot ${name}`);
    partitions.setRunning(name);
    return { slot: name, log };
  }
  log.push("no bootable app partition");
  return { slot: undefined, log };
}

function writeOtadata(otadata: Flash, sector: 0 | 1, bytes: Uint8Array): void {
  otadata.eraseBlock(sector);
  otadata.write(bytes, sector * OTADATA_SECTOR);
}
