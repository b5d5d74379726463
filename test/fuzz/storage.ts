/**
 * Fuzz targets for what the device reads from flash: otadata (round trips, and the boot choice
 * against a reference written from ESP-IDF's C with its uint32 arithmetic), partition tables
 * (CSV and binary), and ESP app images (the prefix and the bootloader's whole-image check).
 */
import fc from "fast-check";
import { createHash } from "node:crypto";
import { OTADATA_SECTOR, OTA_STATES, decodeEntry, decodeOtadata, encodeEntry, encodeOtadata, makeEntry, planBoot, seqCrc, type OtaEntry } from "../../modules/esp-idf/otadata.ts";
import { checkPartitionTable, decodePartitionTable, encodePartitionTable, parsePartitionCsv, type Partition } from "../../modules/esp-idf/partition-table.ts";
import { IMAGE_PREFIX_SIZE, packImage, parseImagePrefix, verifyImage } from "../../modules/esp-idf/image.ts";
import type { Flash } from "../../modules/ports/flash.ts";
import type { Digest } from "../../modules/ports/digest.ts";
import { applyEdits, applyTextEdits, bytesEq, edits, ensure, refusesWith, target, type FuzzTarget } from "./support.ts";

// ---------------------------------------------------------------------------------------------
// otadata

const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 2, 3, 0xfffffffe, 0xffffffff));
const state = fc.oneof(fc.constantFrom(...Object.values(OTA_STATES)), u32);
const entry: fc.Arbitrary<OtaEntry> = fc.oneof(
  fc.tuple(u32, state).map(([seq, st]) => makeEntry(seq, st)),
  fc.record({ seq: u32, state, crc: u32, label: fc.uint8Array({ minLength: 20, maxLength: 20 }) }),
  fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => decodeEntry(b)),
);

/** ESP-IDF's bootloader_utility_get_selected_boot_partition with rollback, over uint32 values. */
function referenceStart(input: readonly OtaEntry[], slots: number): number {
  const e = input.map((x) => ({ ...x, state: x.state === OTA_STATES.PENDING_VERIFY ? OTA_STATES.ABORTED : x.state }));
  const invalid = (x: OtaEntry) => x.seq === 0xffffffff || x.state === OTA_STATES.INVALID || x.state === OTA_STATES.ABORTED;
  const valid = e.map((x) => !invalid(x) && x.crc === seqCrc(x.seq));
  if (invalid(e[0]) && invalid(e[1])) return 0;
  const active = valid[0] && valid[1] ? (e[0].seq >= e[1].seq ? 0 : 1) : valid[0] ? 0 : valid[1] ? 1 : -1;
  if (active === -1) return -1;
  // uint32_t ota_seq = otadata[active].ota_seq - 1; boot_index = ota_seq % app_count;
  return ((e[active].seq - 1) >>> 0) % slots;
}

export const otadata = target("otadata", fc.tuple(entry, entry, fc.integer({ min: 1, max: 16 }), fc.uint8Array({ minLength: 32, maxLength: 32 })), ([a, b, slots, raw]) => {
  ensure(bytesEq(encodeEntry(decodeEntry(raw)), raw), "an entry's bytes do not survive decode and encode");
  const [da, db] = decodeOtadata(encodeOtadata([a, b]));
  for (const [x, y] of [[a, da], [b, db]]) ensure(x.seq === y.seq && x.state === y.state && x.crc === y.crc && bytesEq(x.label, y.label), "entry changed by encode and decode");
  const plan = planBoot([da, db], slots);
  const expected = referenceStart([da, db], slots);
  ensure(plan.start >= -1 && plan.start < slots, `boot start ${plan.start} outside ${slots} slots`);
  ensure(plan.start === expected, `boot start ${plan.start}, ESP-IDF's bootloader starts ${expected}`);
});

export const otadataBytes = target("otadata-bytes", fc.tuple(fc.integer({ min: 0, max: 0x2100 }), fc.uint8Array({ maxLength: 32 })), ([length, head]) => {
  const bytes = new Uint8Array(length).fill(0xff);
  bytes.set(head.subarray(0, length));
  if (length >= OTADATA_SECTOR + 32) bytes.set(head, OTADATA_SECTOR);
  const entries = refusesWith(() => decodeOtadata(bytes), ["otadata-corrupt"]);
  ensure((entries === undefined) === (length < OTADATA_SECTOR + 32), `length 0x${length.toString(16)} ${entries ? "taken" : "refused"}`);
});

// ---------------------------------------------------------------------------------------------
// Partition tables

const md5 = (b: Uint8Array) => new Uint8Array(createHash("md5").update(b).digest());

const ROWS = ["nvs, data, nvs, 0x9000, 0x5000", "otadata, data, ota, 0xe000, 0x2000", "app0, app, ota_0, 0x10000, 0x180000", "app1, app, ota_1, , 1536K",
  "spiffs, data, spiffs, , 0x60000, readonly", "factory, app, factory, , 1M", "# layout: staging", "# flash-size: 4MB", "# layout: ab", "app_ota, data, 0x40, , 64K",
  "x, 0x40, 0x05, 0x200000, 4096, encrypted:readonly", "cd, data, coredump, , 64K", "é\u{1f600}, data, fat, , 64K", "# comment", ""];
const csv = fc.tuple(fc.array(fc.constantFrom(...ROWS), { maxLength: 8 }), fc.constantFrom("\n", "\r\n", "\r"), edits(3)).map(([rows, nl, e]) => applyTextEdits(rows.join(nl), e));

export const partitionCsv = target("partition-csv", csv, (text) => {
  const parsed = refusesWith(() => parsePartitionCsv(text), []) as ReturnType<typeof parsePartitionCsv>;
  const lines = text.split(/\r\n|\n|\r/).length;
  for (const e of parsed.errors) ensure(e.line >= 0 && e.line <= lines && e.message.length > 0, "error without a line or message");
  for (const p of parsed.partitions) {
    ensure(Number.isInteger(p.offset) && Number.isInteger(p.size) && p.offset + p.size <= 2 ** 32, `partition ${p.name} outside 4 GB`);
    ensure(p.type >= 0 && p.type <= 0xfe && p.subtype >= 0 && p.subtype <= 0xfe, "type or subtype out of range");
  }
  const errors = refusesWith(() => checkPartitionTable(parsed.partitions, { layout: parsed.layout, flashSize: parsed.flashSize }), []) ?? [];
  if (errors.length > 0 || parsed.errors.length > 0 || parsed.partitions.length === 0) return;
  const again = decodePartitionTable(encodePartitionTable(parsed.partitions, md5), md5);
  ensure(again.length === parsed.partitions.length, "binary table lost partitions");
  again.forEach((q, i) => {
    const p: Partition = parsed.partitions[i];
    ensure(q.name === p.name && q.type === p.type && q.subtype === p.subtype && q.offset === p.offset && q.size === p.size && q.encrypted === p.encrypted && q.readonly === p.readonly, `partition ${i} changed through the binary table`);
  });
});

const TABLE = encodePartitionTable(parsePartitionCsv(ROWS.slice(0, 4).join("\n")).partitions, md5);
export const partitionBinary = target("partition-binary", fc.oneof(edits(3).map((e) => applyEdits(TABLE, e)), fc.uint8Array({ maxLength: 200 })), (bytes) => {
  const parts = refusesWith(() => decodePartitionTable(bytes, md5), ["partition-table"]);
  if (parts === undefined) return;
  ensure(parts.length <= 95, "more partitions than a table holds");
  refusesWith(() => checkPartitionTable(parts), []);
});

// ---------------------------------------------------------------------------------------------
// ESP app images

function sha256(): Digest {
  const h = createHash("sha256");
  return {
    update(b: ArrayBuffer | ArrayBufferView) {
      h.update(b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    },
    finish: () => new Uint8Array(h.digest()),
  };
}

/** A read-only partition holding `bytes` (then erased flash up to `size`) that refuses reads outside it. */
function partition(bytes: Uint8Array, size: number): Flash {
  const data = new Uint8Array(size).fill(0xff);
  data.set(bytes.subarray(0, size));
  return {
    status: () => ({ size, blockLength: 4096, blocks: Math.ceil(size / 4096) }),
    eraseBlock() {
      throw new Error("read only");
    },
    read(length: number, offset: number) {
      if (offset < 0 || length < 0 || offset + length > size) throw new Error(`read outside the partition: ${offset}+${length}`);
      return data.slice(offset, offset + length).buffer;
    },
    write() {
      throw new Error("read only");
    },
  };
}

const IMAGES = [0, 1, 5, 64, 300].map((n, i) => packImage({ version: `1.0.${i}`, payload: new Uint8Array(n).map((_, k) => (k * 31 + i) & 0xff), sha256 }));

export const espImage = target(
  "esp-image",
  fc.tuple(fc.integer({ min: 0, max: IMAGES.length - 1 }), edits(3), fc.integer({ min: 0, max: 64 })).map(([i, e, slack]) => ({ i, image: applyEdits(IMAGES[i], e), slack })),
  ({ i, image, slack }) => {
    const prefix = refusesWith(() => parseImagePrefix(image), ["image-invalid"]);
    if (prefix !== undefined) ensure(image.length >= IMAGE_PREFIX_SIZE && image[0] === 0xe9, "prefix taken without magic or length");
    const size = Math.max(IMAGE_PREFIX_SIZE, image.length + slack);
    const v = refusesWith(() => verifyImage(partition(image, size), sha256), ["image-invalid"]);
    if (v === undefined) return;
    ensure(v.length <= size && v.segments.every(([o, n]) => o + n <= v.length), "verified image outside its partition");
    // The SHA-256 covers every byte before it: an image that passes is the original, unless
    // the header's hash_appended byte itself was changed (ESP-IDF then checks only the checksum).
    const original = IMAGES[i];
    if (image[23] === 1) ensure(v.length === original.length && bytesEq(image.subarray(0, v.length), original), "an altered image passed with its hash appended");
  },
);

export const storageTargets: FuzzTarget[] = [otadata, otadataBytes, partitionCsv, partitionBinary, espImage];
