/**
 * A simulated ESP32's hardware, kept in a folder so the device outlives the process:
 * `flash.bin` (the whole NOR chip, written through on every operation, partition table at
 * 0x8000) and `nvs.json` (Preference records). `flashDevice` is what `esptool write_flash` does
 * for a factory image: table, app in ota_0, otadata erased.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { OtaError } from "../../modules/errors.ts";
import type { Flash } from "../../modules/ports/flash.ts";
import { decodePartitionTable, encodePartitionTable, parsePartitionCsv, checkPartitionTable, TABLE_OFFSET, TABLE_MAX_LENGTH, type Partition } from "../../modules/esp-idf/partition-table.ts";
import { verifyImage } from "../../modules/esp-idf/image.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { openFlashFile, type FlashFile } from "./flash-file.ts";
import { SimPartitions, type PartitionExtent } from "./partitions.ts";
import { MemoryStateStore } from "./state-store.ts";
import { nodeDigests } from "./node-digest.ts";
import { espImageCheck, type ImageCheck } from "./bootloader.ts";

export const DEFAULT_TABLE = fileURLToPath(new URL("../../partitions/esp32-4mb.csv", import.meta.url));
const DEFAULT_FLASH_SIZE = 4 * 1024 * 1024;

const md5 = (bytes: Uint8Array) => new Uint8Array(createHash("md5").update(bytes).digest());
export const sha256 = () => nodeDigests.create("sha256");

export interface Board {
  file: FlashFile;
  partitions: SimPartitions;
  table: PartitionExtent[];
  store: MemoryStateStore;
  close(): void;
}

/** Reads a CSV partition table and checks it; throws "bad-argument" with every error. */
export function loadTable(csvPath: string): { partitions: Partition[]; flashSize: number } {
  const parsed = parsePartitionCsv(readFileSync(csvPath, "utf8"));
  const flashSize = parsed.flashSize ?? DEFAULT_FLASH_SIZE;
  const errors = [...parsed.errors, ...(parsed.errors.length ? [] : checkPartitionTable(parsed.partitions, { flashSize }))];
  if (errors.length) throw new OtaError("bad-argument", `${csvPath}: ${errors.map((e) => `line ${e.line}: ${e.message}`).join("; ")}`);
  return { partitions: parsed.partitions, flashSize };
}

/** Factory flashing: the partition table, `image` in the first app slot, otadata and NVS erased. */
export function flashDevice(dir: string, image: Uint8Array, tablePath = DEFAULT_TABLE): void {
  const { partitions, flashSize } = loadTable(tablePath);
  mkdirSync(dir, { recursive: true });
  const file = openFlashFile(join(dir, "flash.bin"), flashSize, { strict: true });
  try {
    const chip = file.flash;
    const tableBytes = encodePartitionTable(partitions, md5);
    chip.eraseBlock(TABLE_OFFSET / 4096);
    chip.write(tableBytes, TABLE_OFFSET);
    const sim = new SimPartitions(chip, partitions);
    for (const name of ["otadata", "nvs"]) {
      const p = partitions.find((e) => e.name === name);
      if (p) sim.open(name).eraseBlock(0, p.size / 4096);
    }
    const first = sim.appSlots()[0];
    if (first === undefined) throw new OtaError("bad-argument", "the partition table has no app slot");
    const slot = sim.open(first);
    if (image.length > slot.status().size) throw new OtaError("bad-argument", `the image (${image.length} bytes) does not fit ${first} (${slot.status().size} bytes)`);
    if (image.length === 0) throw new OtaError("bad-argument", "the image is empty");
    // As esptool writes what it is given: an image the bootloader refuses halts the device at boot.
    new ImageWriter(slot, image.length).write(image);
  } finally {
    file.close();
  }
  writeFileSync(join(dir, "nvs.json"), "{}\n");
}

/** Opens a flashed device's hardware; the table is read back from flash, as the bootloader does. */
export function openBoard(dir: string): Board {
  const path = join(dir, "flash.bin");
  if (!existsSync(path)) throw new OtaError("bad-argument", `${dir} holds no flashed device (no flash.bin): flash a firmware image first`);
  const size = statSync(path).size;
  if (size < TABLE_OFFSET + TABLE_MAX_LENGTH || size % 4096 !== 0) {
    throw new OtaError("bad-argument", `${path} is ${size} bytes: not a whole flash chip (truncated?); flash a firmware image again`);
  }
  const file = openFlashFile(path, size, { strict: true });
  let table: PartitionExtent[];
  try {
    const raw = new Uint8Array(file.flash.read(TABLE_MAX_LENGTH, TABLE_OFFSET));
    table = decodePartitionTable(raw, md5).map(({ name, type, subtype, offset, size: length }) => ({ name, type, subtype, offset, size: length }));
    const end = Math.max(...table.map((p) => p.offset + p.size));
    if (end > size) throw new OtaError("bad-argument", `its partition table reaches 0x${end.toString(16)}, the file ends at 0x${size.toString(16)} (truncated?)`);
  } catch (e) {
    file.close();
    throw new OtaError("bad-argument", `${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const nvsPath = join(dir, "nvs.json");
  const saved = existsSync(nvsPath) ? readNvs(nvsPath) : {};
  const store = new MemoryStateStore(
    Object.entries(saved).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, "base64"))]),
    (records) => {
      const out: Record<string, string> = {};
      for (const [k, v] of records) out[k] = Buffer.from(v).toString("base64");
      const temp = `${nvsPath}.tmp`;
      writeFileSync(temp, JSON.stringify(out));
      renameSync(temp, nvsPath);
    },
  );
  return { file, partitions: new SimPartitions(file.flash, table), table, store, close: () => file.close() };
}

/** The bootloader's image check, with the host's native SHA-256. */
export const checkImage: ImageCheck = espImageCheck(sha256);

/** nvs.json: key -> base64 of the record. A file that is not that names itself. */
function readNvs(path: string): Record<string, string> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new OtaError("bad-argument", `${path} is not the device's NVS (JSON: ${e instanceof Error ? e.message : String(e)}); flash the device again to start over`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.values(value).every((v) => typeof v === "string")) {
    throw new OtaError("bad-argument", `${path} is not the device's NVS (an object of base64 strings); flash the device again to start over`);
  }
  return value as Record<string, string>;
}

/** The JavaScript program an image carries: its second segment (after the app descriptor). */
export function imageProgram(slot: Flash): { version: string; source: string } {
  const v = verifyImage(slot, sha256);
  const segment = v.segments[1];
  if (segment === undefined) throw new OtaError("image-invalid", "the image has no program segment");
  const [at, length] = segment;
  const bytes = new Uint8Array(slot.read(length, at));
  return { version: v.desc.version, source: new TextDecoder("utf-8", { fatal: true }).decode(bytes).trimEnd() };
}
