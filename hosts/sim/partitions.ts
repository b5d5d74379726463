/**
 * Partitions of a simulated chip: views over one NOR flash laid out by a partition table.
 * No platform imports, so the simulated device also runs on XS.
 */
import type { Flash } from "../../modules/ports/flash.ts";
import type { Partitions } from "../../modules/ports/partitions.ts";
import { OtaError } from "../../modules/errors.ts";
import { FlashRegion } from "../../modules/storage/flash-region.ts";

/** The part of a partition-table entry the simulator needs. */
export interface PartitionExtent {
  name: string;
  type: number;
  subtype: number;
  offset: number;
  size: number;
}

const APP = 0x00;
const OTA_0 = 0x10;
const OTA_15 = 0x1f;

export class SimPartitions implements Partitions {
  readonly flash: Flash;
  readonly table: readonly PartitionExtent[];
  #running: string;

  constructor(flash: Flash, table: readonly PartitionExtent[], running = "ota_0") {
    this.flash = flash;
    this.table = table;
    this.#running = running;
  }

  open(name: string): Flash {
    const p = this.table.find((e) => e.name === name);
    if (!p) throw new OtaError("partition-unknown", `no partition named '${name}'`);
    return new FlashRegion(this.flash, p.offset, p.size);
  }

  running(): string {
    return this.#running;
  }

  /** Set by the simulated bootloader when it starts a slot. */
  setRunning(name: string): void {
    this.#running = name;
  }

  appSlots(): string[] {
    return this.table
      .filter((p) => p.type === APP && p.subtype >= OTA_0 && p.subtype <= OTA_15)
      .sort((a, b) => a.subtype - b.subtype)
      .map((p) => p.name);
  }
}
