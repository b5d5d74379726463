/**
 * A simulated board's hardware, kept in a folder so the device outlives the process:
 * `flash.bin` (the whole NOR chip, written through on every operation), `nvs.json` (Preference
 * records) and `board.json` (which board it is; absent: an ESP32). An ESP32 keeps its partition
 * table in flash at 0x8000, as ESP-IDF's bootloader reads it; the other boards' flash maps come
 * from their CSV under partitions/. `flashDevice` is what the vendor's flasher does for a factory
 * image (ESP32: `esptool write_flash` of table and app into ota_0, otadata erased).
 *
 * Each board names its bootloader (BOARDS below): the ESP-IDF second stage with rollback
 * (bootloader.ts), and how to read the JavaScript program an installed image carries.
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
import { espImageCheck, runBootloader, type BootOutcome, type ImageCheck } from "./bootloader.ts";
import { layoutOf, type BoardName } from "./layouts.ts";
import { runCloner } from "./cloner.ts";
import { runW800Secboot, w800Program, writeW800Factory } from "./w800-secboot.ts";
import { w800Layout } from "../../modules/w800/header.ts";
import { rawAppProgram } from "./raw-app.ts";
import { DESCRIPTOR_PARTITION, RUN_SLOT, writeDescriptor } from "../../modules/afr-staging/boot-control.ts";
import { FLAGS, encodeDescriptor, makeDescriptor } from "../../modules/afr-staging/descriptor.ts";

const DEFAULT_FLASH_SIZE = 4 * 1024 * 1024;

const md5 = (bytes: Uint8Array) => new Uint8Array(createHash("md5").update(bytes).digest());
export const sha256 = () => nodeDigests.create("sha256");

/** What differs between simulated boards on the Node side. */
export interface BoardSpec {
  name: BoardName;
  /** The partition table a factory-fresh device gets. */
  defaultTable: string;
  /** The table sits in flash at 0x8000 (ESP-IDF); otherwise board.json names it. */
  tableInFlash: boolean;
  /** Factory programming of the first image, after the flash was erased. */
  factory(partitions: SimPartitions, image: Uint8Array): void;
  /** The bootloader, run at every power-on: the slot it starts, or none. */
  bootloader(partitions: SimPartitions): BootOutcome | Promise<BootOutcome>;
  /** The version and JavaScript program of the image `slot` runs. */
  program(partitions: SimPartitions, slot: string): { version: string; source: string };
}

const esp32: BoardSpec = {
  name: "esp32",
  defaultTable: fileURLToPath(new URL("../../partitions/esp32-4mb.csv", import.meta.url)),
  tableInFlash: true,
  factory(sim, image) {
    for (const name of ["otadata", "nvs"]) {
      const p = sim.table.find((e) => e.name === name);
      if (p) sim.open(name).eraseBlock(0, p.size / 4096);
    }
    const first = sim.appSlots()[0];
    if (first === undefined) throw new OtaError("bad-argument", "the partition table has no app slot");
    writeFactoryImage(sim, first, image);
  },
  bootloader: (sim) => runBootloader(sim, checkImage),
  program: (sim, slot) => imageProgram(sim.open(slot)),
};

/** NuMaker-IoT-M487 with Mbed: a raw app in APROM under an @AFRTOS descriptor, the Cloner at boot. */
const nuvoton: BoardSpec = {
  name: "nuvoton",
  defaultTable: fileURLToPath(new URL("../../partitions/nuvoton-m487.csv", import.meta.url)),
  tableInFlash: false,
  factory(sim, image) {
    writeFactoryImage(sim, RUN_SLOT, image);
    // The ICP tool writes the app; the descriptor of an image that runs as delivered is VALID.
    writeDescriptor(sim.open(DESCRIPTOR_PARTITION), encodeDescriptor(makeDescriptor(FLAGS.VALID, 1, image.length, 0)));
  },
  bootloader: (sim) => runCloner(sim, nodeDigests),
  program(sim, slot) {
    const aprom = sim.open(slot);
    return rawAppProgram(new Uint8Array(aprom.read(aprom.status().size, 0)));
  },
};

/** WinnerMicro W800 (wm_iot_sdk): one run partition `app`, images staged in `app_ota`, secboot installs. */
const w800: BoardSpec = {
  name: "w800",
  defaultTable: fileURLToPath(new URL("../../partitions/w800-2mb.csv", import.meta.url)),
  tableInFlash: false,
  factory: (sim, image) => writeW800Factory(sim, image),
  bootloader: (sim) => runW800Secboot(sim, { layout: w800Layout(sim.table) }),
  program(sim) {
    const { version, body } = w800Program(sim, w800Layout(sim.table));
    // The SDK pads a body to a word with 0xFF, which is no UTF-8.
    let end = body.length;
    while (end > 0 && body[end - 1] === 0xff) end--;
    return { version, source: new TextDecoder("utf-8", { fatal: true }).decode(body.subarray(0, end)).trimEnd() };
  },
};

export const BOARDS: Record<BoardName, BoardSpec> = { esp32, w800, nuvoton };

export function boardSpec(name: BoardName): BoardSpec {
  layoutOf(name);
  return BOARDS[name];
}

/** Writes a factory image into `slot` as a flasher does: what it is given, checked only for size. */
export function writeFactoryImage(sim: SimPartitions, slot: string, image: Uint8Array): void {
  const flash = sim.open(slot);
  if (image.length > flash.status().size) throw new OtaError("bad-argument", `the image (${image.length} bytes) does not fit ${slot} (${flash.status().size} bytes)`);
  if (image.length === 0) throw new OtaError("bad-argument", "the image is empty");
  // As esptool writes what it is given: an image the bootloader refuses halts the device at boot.
  new ImageWriter(flash, image.length).write(image);
}

export interface Board {
  spec: BoardSpec;
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
  const errors = [...parsed.errors, ...(parsed.errors.length ? [] : checkPartitionTable(parsed.partitions, { flashSize, layout: parsed.layout, staging: parsed.staging }))];
  if (errors.length) throw new OtaError("bad-argument", `${csvPath}: ${errors.map((e) => `line ${e.line}: ${e.message}`).join("; ")}`);
  return { partitions: parsed.partitions, flashSize };
}

export interface FlashOptions {
  board?: BoardName;
  /** A CSV partition table (default: the board's). */
  table?: string;
}

/** Factory flashing: the whole chip erased, the board's table, `image` in its first app slot, NVS erased. */
export function flashDevice(dir: string, image: Uint8Array, options: FlashOptions = {}): void {
  const spec = boardSpec(options.board ?? "esp32");
  const tablePath = options.table ?? spec.defaultTable;
  const { partitions, flashSize } = loadTable(tablePath);
  mkdirSync(dir, { recursive: true });
  const file = openFlashFile(join(dir, "flash.bin"), flashSize, { strict: true });
  try {
    const chip = file.flash;
    chip.eraseBlock(0, flashSize / 4096);
    if (spec.tableInFlash) chip.write(encodePartitionTable(partitions, md5), TABLE_OFFSET);
    spec.factory(new SimPartitions(chip, partitions, layoutOf(spec.name).firstSlot), image);
  } finally {
    file.close();
  }
  writeFileSync(join(dir, "board.json"), `${JSON.stringify({ board: spec.name, ...(spec.tableInFlash ? {} : { table: partitions }) }, null, 1)}\n`);
  writeFileSync(join(dir, "nvs.json"), "{}\n");
}

/** Opens a flashed device's hardware; an ESP32's table is read back from flash, as its bootloader does. */
export function openBoard(dir: string): Board {
  const path = join(dir, "flash.bin");
  if (!existsSync(path)) throw new OtaError("bad-argument", `${dir} holds no flashed device (no flash.bin): flash a firmware image first`);
  const described = readBoardJson(join(dir, "board.json"));
  const spec = boardSpec(described.board);
  const size = statSync(path).size;
  if ((spec.tableInFlash && size < TABLE_OFFSET + TABLE_MAX_LENGTH) || size % 4096 !== 0) {
    throw new OtaError("bad-argument", `${path} is ${size} bytes: not a whole flash chip (truncated?); flash a firmware image again`);
  }
  const file = openFlashFile(path, size, { strict: true });
  let table: PartitionExtent[];
  try {
    if (spec.tableInFlash) {
      const raw = new Uint8Array(file.flash.read(TABLE_MAX_LENGTH, TABLE_OFFSET));
      table = decodePartitionTable(raw, md5).map(({ name, type, subtype, offset, size: length }) => ({ name, type, subtype, offset, size: length }));
    } else {
      table = described.table ?? [];
    }
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
  const partitions = new SimPartitions(file.flash, table, layoutOf(spec.name).firstSlot);
  return { spec, file, partitions, table, store, close: () => file.close() };
}

/** board.json: which board a device folder holds, and its flash map when not in flash. */
function readBoardJson(path: string): { board: BoardName; table?: PartitionExtent[] } {
  if (!existsSync(path)) return { board: "esp32" };
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new OtaError("bad-argument", `${path} is not JSON (${e instanceof Error ? e.message : String(e)}); flash the device again`);
  }
  const v = value as { board?: unknown; table?: unknown };
  if (typeof v !== "object" || v === null || typeof v.board !== "string") throw new OtaError("bad-argument", `${path} names no board; flash the device again`);
  layoutOf(v.board);
  if (v.table !== undefined && !Array.isArray(v.table)) throw new OtaError("bad-argument", `${path}: its table is not a list; flash the device again`);
  return { board: v.board as BoardName, table: v.table as PartitionExtent[] | undefined };
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
