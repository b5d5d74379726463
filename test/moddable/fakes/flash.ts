/**
 * Stand-in for Moddable's ECMA-419 "embedded:storage/flash" on ESP32 (modules/io/flash/esp32),
 * over the runner's NOR chip (erase to 0xFF, writes only clear bits, strict: a write that would
 * need a bit set back throws). Partitions are found as ESP-IDF finds them for Moddable: data
 * partitions by label, app slots only as "running" and "nextota", "xs" as type 0x40 subtype 1;
 * anything else throws "can't find partition". Offsets outside the partition throw as
 * esp_partition_read/write/erase_range refuse them.
 */
import { BridgedFlash } from "../../../hosts/sim/xs/flash.ts";
import type { PartitionExtent } from "../../../hosts/sim/partitions.ts";
import { boardIdentity } from "./identity.ts";

const DATA = 0x01;
const APP = 0x00;
const BLOCK = 4096;

let chip: BridgedFlash | undefined;

function find(path: string): PartitionExtent | undefined {
  const { table, running } = boardIdentity();
  const apps = table.filter((p) => p.type === APP && p.subtype >= 0x10 && p.subtype <= 0x1f).sort((a, b) => a.subtype - b.subtype);
  if (path === "running") return table.find((p) => p.name === running);
  if (path === "nextota") {
    const at = apps.findIndex((p) => p.name === running);
    return apps[(at + 1) % apps.length];
  }
  if (path === "xs") return table.find((p) => p.type === 0x40 && p.subtype === 1);
  return table.find((p) => p.type === DATA && p.name === path);
}

class Flash {
  readonly #partition: PartitionExtent;
  readonly #readOnly: boolean;
  #closed = false;

  constructor(partition: PartitionExtent, readOnly: boolean) {
    this.#partition = partition;
    this.#readOnly = readOnly;
  }

  get format(): "buffer" {
    return "buffer";
  }

  set format(value: string) {
    if (value !== "buffer") throw new RangeError("invalid");
  }

  close(): void {
    this.#closed = true;
  }

  status(): { size: number; blockLength: number; blocks: number } {
    this.#open();
    const size = this.#partition.size;
    return { size, blockLength: BLOCK, blocks: size / BLOCK };
  }

  eraseBlock(start: number, end: number = start + 1): void {
    this.#writable();
    const first = this.#partition.offset / BLOCK + start;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end * BLOCK > this.#partition.size) throw new Error("erase failed");
    flash().eraseBlock(first, first + (end - start));
  }

  read(byteLength: number, byteOffset: number): ArrayBuffer {
    this.#open();
    this.#inside(byteOffset, byteLength, "read failed");
    return flash().read(byteLength, this.#partition.offset + byteOffset);
  }

  write(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number): void {
    this.#writable();
    const bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    this.#inside(byteOffset, bytes.length, "write failed");
    flash().write(bytes, this.#partition.offset + byteOffset);
  }

  #inside(offset: number, length: number, error: string): void {
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > this.#partition.size) throw new Error(error);
  }

  #open(): void {
    if (this.#closed) throw new Error("closed");
  }

  #writable(): void {
    this.#open();
    if (this.#readOnly) throw new Error("read-only");
  }
}

function flash(): BridgedFlash {
  chip ??= new BridgedFlash();
  return chip;
}

export default {
  open(options: { path: string; mode?: string }): Flash {
    if (typeof options?.path !== "string") throw new Error("no path");
    const partition = find(options.path);
    if (!partition) throw new Error("can't find partition");
    if (options.mode !== undefined && options.mode !== "r" && options.mode !== "r+") throw new Error("invalid mode");
    return new Flash(partition, options.mode === "r");
  },
  *[Symbol.iterator](): Iterator<string> {
    for (const p of boardIdentity().table) yield p.name;
  },
};
