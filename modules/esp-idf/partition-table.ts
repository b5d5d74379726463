/**
 * Partition tables: the model, ESP-IDF's CSV format (the rules of gen_esp32part.py), a checker, and
 * ESP-IDF's binary format (so a simulated flash can hold a real table at 0x8000).
 *
 * Portable device code: nothing but the language and OtaError, so it runs on XS as well as Node.
 * Hashing is passed in (`md5`) for the same reason.
 *
 * Two layout kinds, chosen by a `# layout: ab|staging` directive comment (default `ab`):
 *
 * - `ab`: ESP-IDF's A/B scheme. An `otadata` partition (data/ota, exactly 0x2000 bytes) says which of
 *   the app slots ota_0, ota_1, ... boots; there must be at least two slots, numbered from ota_0
 *   without gaps. The second-stage bootloader and the partition table itself sit below 0x9000, so
 *   no partition may start there.
 * - `staging`: a W800-class scheme. The bootloader runs one image in place and installs updates from a
 *   staging area. Convention here: exactly one partition of type `app` is the run slot (any app
 *   subtype; `factory` reads best), and the staging area is the partition named `app_ota`, of type
 *   `data` (subtype free; our tables use 0x40, the start of the custom range). There is no otadata and
 *   no ESP partition-table region, and app partitions need only 4 KB alignment, not 64 KB. Auto offsets start at 0, not 0x9000, so staging tables normally
 *   give every offset.
 *
 * Errors are values ({line, message}) so a checker can report all of them at once; line 0 means the
 * table as a whole (something missing rather than something wrong on a line).
 */
import { OtaError } from "../errors.ts";
import { escapeOther, hasOtherCharacter } from "../codec/unicode.ts";

export type LayoutKind = "ab" | "staging";

/** Partition types with names; any other number 0x00-0xFE is a custom type. */
export const PartitionTypes = Object.freeze({ app: 0x00, data: 0x01 } as const);
export type PartitionTypeName = keyof typeof PartitionTypes;

/** App subtypes: factory, test and ota_0..ota_15 (0x10..0x1f). */
export const AppSubtypes: Readonly<Record<string, number>> = Object.freeze((() => {
  const names: Record<string, number> = { factory: 0x00, test: 0x20 };
  for (let i = 0; i < 16; i++) names[`ota_${i}`] = 0x10 + i;
  return names;
})());

export const DataSubtypes: Readonly<Record<string, number>> = Object.freeze({
  ota: 0x00,
  phy: 0x01,
  nvs: 0x02,
  coredump: 0x03,
  nvs_keys: 0x04,
  efuse: 0x05,
  undefined: 0x06,
  esphttpd: 0x80,
  fat: 0x81,
  spiffs: 0x82,
  littlefs: 0x83,
});

export interface Partition {
  name: string;
  /** 0x00 app, 0x01 data, 0x40-0xFE custom. */
  type: number;
  subtype: number;
  offset: number;
  size: number;
  encrypted: boolean;
  readonly: boolean;
  /** CSV line it came from; for a decoded binary table, the entry number (1-based). */
  line: number;
}

export interface TableError {
  /** 1-based line, or 0 for the table as a whole. */
  line: number;
  message: string;
}

export interface ParsedTable {
  partitions: Partition[];
  errors: TableError[];
  flashSize?: number;
  layout: LayoutKind;
  /** The staging partition's name, when a `# staging:` directive gives one. */
  staging?: string;
}

export interface CheckOptions {
  flashSize?: number;
  layout?: LayoutKind;
  /** Staging layouts: the staging partition's name (default `app_ota`). */
  staging?: string;
}

export type Md5 = (bytes: Uint8Array) => Uint8Array;

export const TABLE_OFFSET = 0x8000;
/** Longest binary table; the second sector is left for the bootloader's own use. */
export const TABLE_MAX_LENGTH = 0xc00;
export const ENTRY_LENGTH = 32;
/** One entry's room goes to the MD5 entry. */
export const MAX_PARTITIONS = TABLE_MAX_LENGTH / ENTRY_LENGTH - 1;
/** First byte after the bootloader and the partition table on ESP32. */
export const FIRST_FREE_OFFSET = 0x9000;
export const APP_ALIGN = 0x10000;
export const DATA_ALIGN = 0x1000;
export const OTADATA_SIZE = 0x2000;
export const NAME_MAX_BYTES = 16;
export const STAGING_NAME = "app_ota";

const OTA_SUBTYPE_MIN = 0x10;
const OTA_SUBTYPE_MAX = 0x1f;

// ---------------------------------------------------------------------------------------------
// Names

export function typeName(type: number): string {
  if (type === PartitionTypes.app) return "app";
  if (type === PartitionTypes.data) return "data";
  return hex(type, 2);
}

export function subtypeName(type: number, subtype: number): string {
  const table = subtypeTable(type);
  if (table) for (const name of Object.keys(table)) if (table[name] === subtype) return name;
  return hex(subtype, 2);
}

function subtypeTable(type: number): Readonly<Record<string, number>> | undefined {
  if (type === PartitionTypes.app) return AppSubtypes;
  if (type === PartitionTypes.data) return DataSubtypes;
  return undefined;
}

export function isOtadata(p: Partition): boolean {
  return p.type === PartitionTypes.data && p.subtype === DataSubtypes.ota;
}

/** N for an ota_N app slot, otherwise undefined. */
export function otaSlotIndex(p: Partition): number | undefined {
  if (p.type !== PartitionTypes.app || p.subtype < OTA_SUBTYPE_MIN || p.subtype > OTA_SUBTYPE_MAX) return undefined;
  return p.subtype - OTA_SUBTYPE_MIN;
}

/** The ota_N app slots, in N order: the order ESP-IDF's bootloader counts them in. */
export function appSlots(partitions: readonly Partition[]): Partition[] {
  return partitions
    .filter((p) => otaSlotIndex(p) !== undefined)
    .sort((a, b) => a.subtype - b.subtype);
}

export function findPartition(partitions: readonly Partition[], name: string): Partition | undefined {
  return partitions.find((p) => p.name === name);
}

/** findPartition for code that cannot go on without it. */
export function requirePartition(partitions: readonly Partition[], name: string): Partition {
  const p = findPartition(partitions, name);
  if (!p) throw new OtaError("partition-unknown", `no partition named '${name}'`);
  return p;
}

// ---------------------------------------------------------------------------------------------
// Numbers

/**
 * gen_esp32part's integers: decimal or 0x hex, optionally with a K or M suffix (powers of 1024).
 * Returns undefined for anything else, or for values that do not fit 32 bits.
 */
export function parseNumber(text: string): number | undefined {
  let s = text.trim().toLowerCase();
  let multiplier = 1;
  if (s.endsWith("k")) multiplier = 1024;
  else if (s.endsWith("m")) multiplier = 1024 * 1024;
  if (multiplier !== 1) s = s.slice(0, -1).trim();
  let value: number;
  if (/^0x[0-9a-f]+$/.test(s)) value = parseInt(s.slice(2), 16);
  else if (/^[0-9]+$/.test(s)) value = parseInt(s, 10);
  else return undefined;
  value *= multiplier;
  return value <= 0xffffffff ? value : undefined;
}

const FLASH_SIZES_MB = Object.freeze([1, 2, 4, 8, 16, 32, 64, 128]);

/** "4MB", "4M", "0x400000" or "4194304"; only the flash chip sizes ESP-IDF knows (1-128 MB). */
export function parseFlashSize(text: string): number | undefined {
  const s = text.trim().toLowerCase();
  const mb = /^([0-9]+)\s*mb$/.exec(s);
  const bytes = mb ? parseInt(mb[1], 10) * 1024 * 1024 : parseNumber(s);
  if (bytes === undefined) return undefined;
  return FLASH_SIZES_MB.some((m) => m * 1024 * 1024 === bytes) ? bytes : undefined;
}

export function hex(n: number, digits = 1): string {
  let s = n.toString(16);
  while (s.length < digits) s = "0" + s;
  return "0x" + s;
}

// ---------------------------------------------------------------------------------------------
// CSV

// RegExps are made per call, never kept at module level: in flash (preload) a RegExp has no
// match data, and Moddable's XS (8.2.3) crashes in exec's temporary copy once a collection runs.
const DIRECTIVE = () => /^#\s*(flash-size|layout|staging)\s*:\s*(.*?)\s*$/i;

/** Parses an ESP-IDF partition CSV. Never throws for bad input: every problem comes back in `errors`. */
export function parsePartitionCsv(text: string): ParsedTable {
  const lines = text.split(/\r\n|\n|\r/);
  const errors: TableError[] = [];
  const partitions: Partition[] = [];
  let flashSize: number | undefined;
  let layout: LayoutKind = "ab";
  let staging: string | undefined;
  const directiveLine: Record<string, number> = {};

  // Directives first: they may sit anywhere, and the layout decides where auto offsets start.
  for (let i = 0; i < lines.length; i++) {
    const m = DIRECTIVE().exec(lines[i].trim());
    if (!m) continue;
    const line = i + 1;
    const key = m[1].toLowerCase();
    const value = m[2];
    if (directiveLine[key] !== undefined) {
      errors.push({ line, message: `${key} given twice (first on line ${directiveLine[key]})` });
      continue;
    }
    directiveLine[key] = line;
    if (key === "flash-size") {
      const size = parseFlashSize(value);
      if (size === undefined) errors.push({ line, message: `flash-size '${value}' is not a flash size (1MB .. 128MB)` });
      else flashSize = size;
      continue;
    }
    if (key === "staging") {
      if (value === "" || value.includes(",")) errors.push({ line, message: `staging '${value}' is not a partition name` });
      else staging = value;
      continue;
    }
    const kind = value.toLowerCase();
    if (kind === "ab" || kind === "staging") layout = kind;
    else errors.push({ line, message: `layout '${value}' is unknown (expected 'ab' or 'staging')` });
  }

  let next = layout === "ab" ? FIRST_FREE_OFFSET : 0;
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i].trim();
    if (text === "" || text.startsWith("#")) continue;
    const line = i + 1;
    const parsed = parseRow(text, line, next);
    if (typeof parsed === "string") {
      errors.push({ line, message: parsed });
      continue;
    }
    partitions.push(parsed);
    next = parsed.offset + parsed.size;
  }

  errors.sort((a, b) => a.line - b.line);
  const result: ParsedTable = { partitions, errors, layout };
  if (flashSize !== undefined) result.flashSize = flashSize;
  if (staging !== undefined) result.staging = staging;
  return result;
}

/** One CSV row to a Partition, or the reason it is not one. */
function parseRow(text: string, line: number, next: number): Partition | string {
  const fields = text.split(",").map((f) => f.trim());
  if (fields.length < 5 || fields.length > 6) {
    return `expected 5 or 6 columns (Name, Type, SubType, Offset, Size[, Flags]), got ${fields.length}`;
  }
  const [name, typeText, subtypeText, offsetText, sizeText, flagsText = ""] = fields;

  if (name === "") return "partition name is empty";
  // The binary table pads names with NUL: a control character would cut or hide the name.
  if (hasOtherCharacter(name)) return `name '${escapeOther(name)}' has a control or format character`;
  const nameBytes = utf8Encode(name).length;
  if (nameBytes > NAME_MAX_BYTES) return `name '${name}' is ${nameBytes} bytes long; at most ${NAME_MAX_BYTES} fit`;

  let type: number | undefined;
  const lowerType = typeText.toLowerCase();
  if (lowerType === "app" || lowerType === "data") type = PartitionTypes[lowerType];
  else type = parseNumber(typeText);
  if (type === undefined || type > 0xfe) return `type '${typeText}' is not app, data or a number 0x00-0xfe`;

  let subtype: number | undefined;
  const names = subtypeTable(type);
  if (subtypeText === "") {
    // gen_esp32part: data (and custom) partitions default to 'undefined'; an app must say which slot.
    if (type === PartitionTypes.app) return "app partition needs a subtype";
    subtype = DataSubtypes.undefined;
  } else if (names && Object.prototype.hasOwnProperty.call(names, subtypeText.toLowerCase())) {
    subtype = names[subtypeText.toLowerCase()];
  } else {
    subtype = parseNumber(subtypeText);
    if (subtype === undefined) {
      return `subtype '${subtypeText}' is unknown for type ${typeName(type)}` +
        (names ? ` (names: ${Object.keys(names).join(", ")})` : " (custom types take a number)");
    }
    if (subtype > 0xfe) return `subtype '${subtypeText}' is out of range 0x00-0xfe`;
  }

  let offset: number | undefined;
  if (offsetText === "") {
    offset = alignUp(next, type === PartitionTypes.app ? APP_ALIGN : DATA_ALIGN);
  } else {
    offset = parseNumber(offsetText);
    if (offset === undefined) return `offset '${offsetText}' is not a number (decimal, 0x hex, K or M suffix)`;
  }

  if (sizeText === "") return "size is empty";
  const size = parseNumber(sizeText);
  if (size === undefined) return `size '${sizeText}' is not a number (decimal, 0x hex, K or M suffix)`;
  if (offset + size > 0x100000000) return `partition ends past 4 GB (offset ${hex(offset)} + size ${hex(size)})`;

  let encrypted = false;
  let readonly = false;
  for (const flag of flagsText.split(":").map((f) => f.trim())) {
    if (flag === "") continue;
    if (flag === "encrypted") encrypted = true;
    else if (flag === "readonly") readonly = true;
    else return `flag '${flag}' is unknown (flags: encrypted, readonly, separated by ':')`;
  }

  return { name, type, subtype, offset, size, encrypted, readonly, line };
}

function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

// ---------------------------------------------------------------------------------------------
// Checker

/** Everything wrong with a table, in line order. An empty list means the table is usable. */
export function checkPartitionTable(partitions: readonly Partition[], options: CheckOptions = {}): TableError[] {
  const layout = options.layout ?? "ab";
  const flashSize = options.flashSize;
  const errors: TableError[] = [];
  const add = (line: number, message: string) => errors.push({ line, message });
  const where = (p: Partition) => `'${p.name}' (line ${p.line})`;

  if (partitions.length > MAX_PARTITIONS) {
    add(partitions[MAX_PARTITIONS].line, `too many partitions: a table holds at most ${MAX_PARTITIONS}`);
  }

  for (const p of partitions) {
    const end = p.offset + p.size;
    if (p.size === 0) add(p.line, `'${p.name}' has size 0`);
    else if (p.size % DATA_ALIGN !== 0) add(p.line, `'${p.name}' size ${hex(p.size)} is not a multiple of 0x1000 (one flash sector)`);
    // 64 KB is the ESP32 MMU's page; a staging layout's boot runs its image from wherever the
    // flash map puts it (wm_iot_sdk's W800 app starts at 0xF000), so sectors suffice there.
    const align = p.type === PartitionTypes.app && layout === "ab" ? APP_ALIGN : DATA_ALIGN;
    if (p.offset % align !== 0) {
      add(p.line, `'${p.name}' offset ${hex(p.offset)} is not aligned to ${hex(align)} (${p.type === PartitionTypes.app ? "app" : "data"} partitions)`);
    }
    if (layout === "ab" && p.offset < FIRST_FREE_OFFSET) {
      add(p.line, `'${p.name}' at ${hex(p.offset)} overlaps the bootloader and partition table (below 0x9000)`);
    }
    if (flashSize !== undefined && end > flashSize) {
      add(p.line, `'${p.name}' ends at ${hex(end)}, past the end of the ${flashSize / 0x100000} MB flash (${hex(flashSize)})`);
    }
    if (isOtadata(p) && p.size !== OTADATA_SIZE) {
      add(p.line, `otadata '${p.name}' is ${hex(p.size)} bytes; it must be exactly 0x2000 (two 4 KB entries)`);
    }
  }

  // Pairs: each problem is reported on the later line, naming the earlier partition.
  for (let j = 0; j < partitions.length; j++) {
    const b = partitions[j];
    for (let i = 0; i < j; i++) {
      const a = partitions[i];
      if (a.name === b.name) add(b.line, `duplicate name '${b.name}' (also ${where(a)})`);
      if (a.type === PartitionTypes.app && b.type === PartitionTypes.app && a.subtype === b.subtype) {
        add(b.line, `app subtype ${subtypeName(b.type, b.subtype)} used twice: '${b.name}' and ${where(a)}`);
      }
      if (a.size > 0 && b.size > 0 && a.offset < b.offset + b.size && b.offset < a.offset + a.size) {
        add(b.line, `'${b.name}' ${span(b)} overlaps ${where(a)} ${span(a)}`);
      }
    }
  }

  const otadata = partitions.filter(isOtadata);
  if (otadata.length > 1) add(otadata[1].line, `more than one otadata partition ('${otadata[0].name}' and '${otadata[1].name}')`);

  if (layout === "ab") checkAb(partitions, otadata, add);
  else checkStaging(partitions, otadata, options.staging ?? STAGING_NAME, add);

  return errors.sort((x, y) => x.line - y.line);
}

function checkAb(partitions: readonly Partition[], otadata: Partition[], add: (line: number, message: string) => void): void {
  if (otadata.length === 0) add(0, "A/B layout has no otadata partition (type data, subtype ota)");
  const slots = appSlots(partitions);
  if (slots.length < 2) {
    add(slots.length === 1 ? slots[0].line : 0, `A/B layout needs at least two ota_N app slots, found ${slots.length}`);
  }
  // The bootloader maps sequence numbers onto slots 0..count-1, so a gap would make a slot unreachable.
  let expected = 0;
  for (const slot of slots) {
    const n = slot.subtype - OTA_SUBTYPE_MIN;
    if (n > expected) {
      add(slot.line, `app slot '${slot.name}' is ota_${n} but ota_${expected} is missing: slots must be numbered from ota_0 without gaps`);
    }
    expected = n + 1;
  }
}

function checkStaging(partitions: readonly Partition[], otadata: Partition[], name: string, add: (line: number, message: string) => void): void {
  for (const p of otadata) add(p.line, `staging layout has no otadata, but '${p.name}' is one`);
  const apps = partitions.filter((p) => p.type === PartitionTypes.app);
  if (apps.length === 0) add(0, "staging layout needs one app partition to run from, found none");
  for (const extra of apps.slice(1)) {
    add(extra.line, `staging layout has exactly one app partition to run from; '${extra.name}' is a second (first '${apps[0].name}')`);
  }
  const staging = findPartition(partitions, name);
  if (!staging) add(0, `staging layout needs a staging partition named '${name}' (type data)`);
  else if (staging.type !== PartitionTypes.data) {
    add(staging.line, `staging partition '${name}' must be type data, not ${typeName(staging.type)}`);
  }
}

function span(p: Partition): string {
  return `[${hex(p.offset)}, ${hex(p.offset + p.size)})`;
}

// ---------------------------------------------------------------------------------------------
// Binary table (ESP-IDF esp_partition_info_t, 32 bytes each, little-endian)

const MAGIC = Object.freeze([0xaa, 0x50]);
const MD5_MAGIC = Object.freeze([0xeb, 0xeb]);
const FLAG_ENCRYPTED = 1;
const FLAG_READONLY = 2;

/** The 0xC00-byte table a bootloader reads at 0x8000: entries, the MD5 entry, then 0xFF. */
export function encodePartitionTable(partitions: readonly Partition[], md5: Md5): Uint8Array {
  if (partitions.length > MAX_PARTITIONS) {
    throw new OtaError("partition-table", `${partitions.length} partitions; a table holds at most ${MAX_PARTITIONS}`);
  }
  const out = new Uint8Array(TABLE_MAX_LENGTH).fill(0xff);
  let pos = 0;
  for (const p of partitions) {
    const label = utf8Encode(p.name);
    if (label.length > NAME_MAX_BYTES) throw new OtaError("partition-table", `name '${p.name}' is longer than ${NAME_MAX_BYTES} bytes`);
    if (!isByte(p.type) || p.type === 0xff || !isByte(p.subtype)) {
      throw new OtaError("partition-table", `'${p.name}' has type ${p.type}/subtype ${p.subtype} outside 0x00-0xfe`);
    }
    if (!isU32(p.offset) || !isU32(p.size)) throw new OtaError("partition-table", `'${p.name}' offset or size does not fit 32 bits`);
    out.set(MAGIC, pos);
    out[pos + 2] = p.type;
    out[pos + 3] = p.subtype;
    putU32(out, pos + 4, p.offset);
    putU32(out, pos + 8, p.size);
    out.fill(0, pos + 12, pos + 28);
    out.set(label, pos + 12);
    putU32(out, pos + 28, (p.encrypted ? FLAG_ENCRYPTED : 0) | (p.readonly ? FLAG_READONLY : 0));
    pos += ENTRY_LENGTH;
  }
  out.set(MD5_MAGIC, pos);
  out.set(md5(out.subarray(0, pos)), pos + 16);
  return out;
}

/**
 * Reads a binary table. Stops at the first blank (all 0xFF) entry or after the MD5 entry, whose
 * digest must match; a bad magic or digest is an OtaError "partition-table".
 */
export function decodePartitionTable(bytes: Uint8Array, md5: Md5): Partition[] {
  const partitions: Partition[] = [];
  const end = Math.min(bytes.length, TABLE_MAX_LENGTH);
  for (let pos = 0; pos + ENTRY_LENGTH <= end; pos += ENTRY_LENGTH) {
    const entry = bytes.subarray(pos, pos + ENTRY_LENGTH);
    if (entry.every((b) => b === 0xff)) return partitions;
    if (entry[0] === MD5_MAGIC[0] && entry[1] === MD5_MAGIC[1]) {
      const want = entry.subarray(16, 32);
      const got = md5(bytes.subarray(0, pos));
      if (got.length !== want.length || got.some((b, i) => b !== want[i])) {
        throw new OtaError("partition-table", `partition table MD5 does not match (entry ${pos / ENTRY_LENGTH + 1})`);
      }
      return partitions;
    }
    if (entry[0] !== MAGIC[0] || entry[1] !== MAGIC[1]) {
      throw new OtaError("partition-table", `entry ${pos / ENTRY_LENGTH + 1} at ${hex(pos)} has bad magic ${hex(entry[0], 2)} ${hex(entry[1], 2)}`);
    }
    const labelEnd = entry.indexOf(0, 12);
    const flags = getU32(entry, 28);
    partitions.push({
      name: utf8Decode(entry.subarray(12, labelEnd === -1 || labelEnd > 28 ? 28 : labelEnd)),
      type: entry[2],
      subtype: entry[3],
      offset: getU32(entry, 4),
      size: getU32(entry, 8),
      encrypted: (flags & FLAG_ENCRYPTED) !== 0,
      readonly: (flags & FLAG_READONLY) !== 0,
      line: pos / ENTRY_LENGTH + 1,
    });
  }
  return partitions;
}

function isByte(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xff;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v & 0xff;
  b[at + 1] = (v >>> 8) & 0xff;
  b[at + 2] = (v >>> 16) & 0xff;
  b[at + 3] = (v >>> 24) & 0xff;
}

function getU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
}

// Labels are bytes on flash; TextEncoder is not a given on every XS build, so UTF-8 by hand.
function utf8Encode(s: string): Uint8Array {
  const out: number[] = [];
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return Uint8Array.from(out);
}

function utf8Decode(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const n = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    let cp = n === 1 ? c : c & (0xff >> (n + 1));
    for (let k = 1; k < n; k++) cp = (cp << 6) | ((b[i + k] ?? 0) & 0x3f);
    s += String.fromCodePoint(cp > 0x10ffff ? 0xfffd : cp);
    i += n;
  }
  return s;
}
