/**
 * Fuzz targets for the two staging layouts: the W800 image header, image check and install
 * record (modules/w800), and the Nuvoton @AFRTOS descriptor, trailer, boot control and raw
 * image format (modules/afr-staging). Valid inputs come from the modules' own packers and
 * encoders, then go through the byte mutators; raw random bytes go in beside them.
 *
 * CRCs are cross-checked against node:zlib's crc32 (an implementation independent of
 * modules/codec/crc32.ts), so a wrong table or seed in the module would show as a mismatch.
 */
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { crc32 as zlibCrc32 } from "node:zlib";
import { parsePartitionCsv } from "../../modules/esp-idf/partition-table.ts";
import { W800_HEADER_SIZE, W800_MAGIC, VERSION_BYTES, checkHeader, decodeHeader, encodeHeader, sdkCrc, w800Layout, type W800Header } from "../../modules/w800/header.ts";
import { w800Format } from "../../modules/w800/format.ts";
import { RECORD_MAGIC, RECORD_STATE, encodeRecord, markConfirmed, markInstalled, markRejected, readInstallRecord, type InstallState } from "../../modules/w800/record.ts";
import { packW800Image } from "../../modules/w800/pack.ts";
import {
  DESCRIPTOR_SIZE,
  FLAGS,
  MAX_SIGNATURE_SIZE,
  SIGNATURE_TYPE,
  SIGNATURE_TYPE_SIZE,
  TRAILER_SIZE,
  decodeDescriptor,
  decodeTrailer,
  encodeDescriptor,
  encodeTrailer,
  makeDescriptor,
  trailerOk,
  type Descriptor,
} from "../../modules/afr-staging/descriptor.ts";
import { afrStagingFormat } from "../../modules/afr-staging/format.ts";
import { AfrStagingBootControl, BACKUP_IMAGE_OFFSET, BACKUP_SLOT, DESCRIPTOR_PARTITION, RUN_SLOT, STAGING_SLOT, TRAILER_PARTITION, describesImage, writeDescriptor } from "../../modules/afr-staging/boot-control.ts";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "../../hosts/sim/partitions.ts";
import { runCloner } from "../../hosts/sim/cloner.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { applyEdits, bytesEq, edits, ensure, refusesWith, target, type FuzzTarget } from "./support.ts";

const csv = (name: string): PartitionExtent[] => {
  const parsed = parsePartitionCsv(readFileSync(new URL(`../../partitions/${name}`, import.meta.url), "utf8"));
  if (parsed.errors.length > 0) throw new Error(`partitions/${name}: ${parsed.errors.map((e) => e.message).join("; ")}`);
  return parsed.partitions;
};
const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 0xfffffffe, 0xffffffff));
const le32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset + at, 4).getUint32(0, true);
/** The SDK's CRC by node:zlib: the complement of zlib's CRC-32 (see modules/w800/header.ts). */
const refSdkCrc = (b: Uint8Array) => (zlibCrc32(b) ^ 0xffffffff) >>> 0;
const sizeOf = (table: readonly PartitionExtent[], name: string) => table.find((p) => p.name === name)?.size ?? 0;
const offsetOf = (table: readonly PartitionExtent[], name: string) => table.find((p) => p.name === name)?.offset ?? 0;

// ---------------------------------------------------------------------------------------------
// W800 header

const W800_TABLE = csv("w800-2mb.csv");
const LAYOUT = w800Layout(W800_TABLE);
const W800_FLASH = 0x200000;
const W800_FORMAT = w800Format(LAYOUT);

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: VERSION_BYTES - 1 });
const header: fc.Arbitrary<Omit<W800Header, "hdChecksum">> = fc.record({
  magic: fc.oneof(fc.constant(W800_MAGIC), u32),
  imgAttr: fc.oneof(fc.constantFrom(1, 0x100001, 0, 0xe, 0x10001, 0x200001), u32),
  imgAddr: u32,
  imgLen: u32,
  imgHeaderAddr: u32,
  upgradeImgAddr: u32,
  orgChecksum: u32,
  updNo: u32,
  version: printable,
  flags: u32,
  reserved1: u32,
  next: u32,
});

// Packed images: header and body from the packer, plain and XZ-flagged, a few body lengths
// (0 and unaligned ones exercise the 0xFF pad).
const W800_IMAGES = [0, 1, 7, 100, 5000].map((n, i) =>
  packW800Image({ version: `2.${i}.${n}`, body: new Uint8Array(n).map((_, k) => (k * 37 + i * 11) & 0xff), layout: LAYOUT, digests: nobleDigests, compressType: i % 2 === 0 ? 0 : 1, updNo: i }),
);

export const w800Header = target(
  "w800-header",
  fc.tuple(
    header,
    fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: W800_IMAGES.length - 1 }), edits(3)).map(([i, e]) => applyEdits(W800_IMAGES[i].subarray(0, W800_HEADER_SIZE + 8), e)),
      fc.tuple(header, edits(2)).map(([h, e]) => applyEdits(encodeHeader(h), e)),
      fc.uint8Array({ minLength: 0, maxLength: 80 }),
    ),
  ),
  ([h, bytes]) => {
    // decode(encode(h)) round trips, and the checksum is the SDK's CRC of bytes 0..59.
    const encoded = encodeHeader(h);
    const back = decodeHeader(encoded);
    ensure(back.hdChecksum === refSdkCrc(encoded.subarray(0, 60)) && back.hdChecksum === sdkCrc(encoded.subarray(0, 60)), "hd_checksum is not the SDK's CRC of bytes 0..59");
    for (const k of Object.keys(h) as (keyof typeof h)[]) ensure(back[k] === h[k], `header field ${k} changed by encode and decode`);

    // Any bytes: decode refuses only when short; checkHeader and parsePrefix refuse only with
    // image-invalid, and what they accept carries a matching checksum.
    const decoded = refusesWith(() => decodeHeader(bytes), ["image-invalid"]);
    ensure((decoded === undefined) === (bytes.length < W800_HEADER_SIZE), `${bytes.length} bytes ${decoded ? "decoded" : "refused"}`);
    for (const place of ["staged", "installed"] as const) {
      const checked = refusesWith(() => checkHeader(bytes, LAYOUT, place), ["image-invalid"]);
      if (checked === undefined) continue;
      ensure(checked.magic === W800_MAGIC && checked.hdChecksum === refSdkCrc(bytes.subarray(0, 60)), `a ${place} header accepted without magic or matching hd_checksum`);
    }
    const info = refusesWith(() => W800_FORMAT.parsePrefix(bytes), ["image-invalid"]);
    if (info !== undefined) {
      ensure(decoded !== undefined && info.version === decoded.version && decoded.hdChecksum === refSdkCrc(bytes.subarray(0, 60)), "parsePrefix took a header whose checksum does not match or changed its version");
    }
  },
);

// ---------------------------------------------------------------------------------------------
// W800 image check

/** One simulated W800, shared by the inputs: each input rewrites only what it reads back. */
let w800: { flash: NorFlash; partitions: SimPartitions; dirty: number } | undefined;
function w800Device() {
  if (w800 === undefined) {
    const flash = new NorFlash({ size: W800_FLASH, strict: true });
    w800 = { flash, partitions: new SimPartitions(flash, W800_TABLE, "app"), dirty: 0 };
  }
  return w800;
}

/** app_ota holds `bytes` then erased flash; the partition as a Flash. */
function stageW800(bytes: Uint8Array) {
  const d = w800Device();
  const base = offsetOf(W800_TABLE, "app_ota");
  const room = Math.min(bytes.length, sizeOf(W800_TABLE, "app_ota"));
  d.flash.data.fill(0xff, base, base + d.dirty);
  d.flash.data.set(bytes.subarray(0, room), base);
  d.dirty = room;
  return d.partitions.open("app_ota");
}

export const w800Image = target(
  "w800-image",
  fc.tuple(
    fc.integer({ min: 0, max: W800_IMAGES.length - 1 }),
    fc.nat(),
    fc.integer({ min: 0, max: 7 }),
    edits(3),
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: -8, max: 64 }),
  ),
  ([i, at, bit, list, how, slack]) => {
    const original = W800_IMAGES[i];
    const format = W800_FORMAT;
    // how 0: exactly one bit flipped, 1: the mutators, 2: the image untouched, 3: one flip in the header.
    let image = original;
    let flipped = false;
    if (how === 0 || how === 3) {
      image = original.slice();
      image[at % (how === 3 ? W800_HEADER_SIZE : original.length)] ^= 1 << bit;
      flipped = true;
    } else if (how === 1) image = applyEdits(original, list);
    const length = Math.max(0, image.length + slack);
    const info = refusesWith(() => format.verify(stageW800(image), length, nobleDigests), ["image-invalid"]);
    if (flipped) ensure(info === undefined, `a one-bit flip at byte ${at % original.length} was accepted`);
    if (how === 2) ensure(info !== undefined || slack < 0, "the packed image was refused");
    if (info === undefined) return;
    // Accepted: the image lies within the length written, and both CRCs hold by an independent
    // CRC over what is in flash (past a cut image flash is erased, which is what the 0xFF pad
    // is: a cut pad with the length claimed whole is the same bytes).
    const inFlash = w800Device().flash.data.subarray(offsetOf(W800_TABLE, "app_ota"), offsetOf(W800_TABLE, "app_ota") + Math.max(length, W800_HEADER_SIZE));
    const h = decodeHeader(inFlash);
    ensure(h.hdChecksum === refSdkCrc(inFlash.subarray(0, 60)), "accepted with a wrong hd_checksum");
    ensure(W800_HEADER_SIZE + h.imgLen <= length, "accepted an image longer than the length written");
    ensure(h.orgChecksum === refSdkCrc(inFlash.subarray(W800_HEADER_SIZE, W800_HEADER_SIZE + h.imgLen)), "accepted with a wrong org_checksum");
    if (image.length >= W800_HEADER_SIZE + h.imgLen) ensure(bytesEq(image.subarray(0, W800_HEADER_SIZE + h.imgLen), original), "an altered image passed both CRCs");
    ensure(info.version === h.version, "verify gave another version than the header's");
  },
);

// ---------------------------------------------------------------------------------------------
// W800 install record

const STATES: readonly InstallState[] = ["requested", "trial", "confirmed", "rejected"];
const RANK: Record<InstallState, number> = { requested: 0, trial: 1, confirmed: 2, rejected: 3 };
const MARKS = [markInstalled, markConfirmed, markRejected];

export const w800Record = target(
  "w800-record",
  fc.tuple(
    fc.oneof(
      fc.tuple(u32, u32, fc.integer({ min: 0, max: 255 }), edits(2)).map(([hd, len, st, e]) => {
        const r = new Uint8Array(RECORD_STATE + 1).fill(st);
        r.set(encodeRecord({ hdChecksum: hd, length: len }));
        return applyEdits(r, e);
      }),
      fc.uint8Array({ maxLength: 40 }),
    ),
    fc.array(fc.integer({ min: 0, max: MARKS.length - 1 }), { maxLength: 4 }),
  ),
  ([head, marks]) => {
    const d = w800Device();
    const base = offsetOf(W800_TABLE, "ota_state");
    d.flash.data.fill(0xff, base, base + 4096);
    d.flash.data.set(head.subarray(0, 4096), base);
    const sector = d.partitions.open("ota_state");
    const bytes = () => d.flash.data.slice(base, base + 4096);

    const read = () => {
      const r = refusesWith(() => readInstallRecord(sector), []);
      const b = bytes();
      const valid = le32(b, 0) === RECORD_MAGIC && le32(b, 12) === zlibCrc32(b.subarray(0, 12));
      ensure((r !== undefined) === valid, `record ${r ? "read" : "refused"}; magic and CRC say ${valid ? "there is one" : "there is none"}`);
      if (r === undefined) return undefined;
      ensure(STATES.includes(r.state), `state '${String(r.state)}' outside the union`);
      ensure(r.hdChecksum === le32(b, 4) && r.length === le32(b, 8), "record fields differ from the bytes");
      return r;
    };
    let before = read();
    for (const m of marks) {
      const old = bytes();
      // A strict chip refuses any write that sets a bit: a transition that throws set one.
      refusesWith(() => MARKS[m](sector), []);
      const now = bytes();
      // The message is built only on failure: 4096 template strings per step cost more than the step.
      let setBits = -1;
      let moved = -1;
      for (let k = 0; k < now.length; k++) {
        if ((now[k] & old[k]) !== now[k]) setBits = k;
        if (k !== RECORD_STATE && now[k] !== old[k]) moved = k;
      }
      ensure(setBits < 0, `a transition set bits of byte ${setBits}`);
      ensure(moved < 0, `a transition changed byte ${moved}, not the state byte`);
      const after = read();
      ensure((after === undefined) === (before === undefined), "a transition made or lost a record");
      if (before !== undefined && after !== undefined) {
        ensure(after.hdChecksum === before.hdChecksum && after.length === before.length, "a transition changed the record's id");
        ensure(RANK[after.state] >= RANK[before.state] && RANK[after.state] >= m + 1, `${before.state} went to ${after.state} after mark ${m}`);
      }
      before = after;
    }
  },
);

// ---------------------------------------------------------------------------------------------
// @AFRTOS descriptor and trailer

const FLAG = fc.oneof(fc.constantFrom(FLAGS.NEW, FLAGS.PENDING_COMMIT, FLAGS.VALID, FLAGS.INVALID), fc.integer({ min: 0, max: 255 }));
const descriptor: fc.Arbitrary<Descriptor> = fc.record({ magic: fc.boolean(), flag: FLAG, sequence: u32, start: u32, end: u32, exec: u32, hardwareId: u32, reserved: u32 });
const MAGIC_BYTES = encodeDescriptor(makeDescriptor(FLAGS.NEW, 0, 1, 0)).subarray(0, 7);

export const afrDescriptor = target(
  "afr-descriptor",
  fc.tuple(
    descriptor,
    fc.oneof(descriptor.chain((d) => edits(3).map((e) => applyEdits(encodeDescriptor(d), e))), fc.uint8Array({ maxLength: 40 })),
    fc.string({ unit: fc.integer({ min: 1, max: 0x7f }).map((c) => String.fromCharCode(c)), maxLength: SIGNATURE_TYPE_SIZE + 2 }),
    fc.uint8Array({ maxLength: MAX_SIGNATURE_SIZE + 4 }),
    fc.oneof(fc.uint8Array({ maxLength: TRAILER_SIZE + 8 }), fc.tuple(fc.uint8Array({ maxLength: MAX_SIGNATURE_SIZE }), edits(3)).map(([s, e]) => applyEdits(encodeTrailer({ signatureType: SIGNATURE_TYPE, signature: s }), e))),
  ),
  ([d, bytes, type, sig, trailerBytes]) => {
    const back = decodeDescriptor(encodeDescriptor(d));
    for (const k of Object.keys(d) as (keyof Descriptor)[]) ensure(back[k] === (k === "flag" ? d.flag & 0xff : d[k]), `descriptor field ${k} changed by encode and decode`);

    const got = refusesWith(() => decodeDescriptor(bytes), ["malformed"]);
    ensure((got === undefined) === (bytes.length < DESCRIPTOR_SIZE), `${bytes.length} bytes ${got ? "decoded" : "refused"}`);
    if (got !== undefined) {
      ensure(got.magic === bytesEq(bytes.subarray(0, 7), MAGIC_BYTES), "magic read wrong");
      const again = encodeDescriptor(got);
      // Without magic, encode writes erased bytes where the magic goes; the rest must come back.
      ensure(bytesEq(again.subarray(got.magic ? 0 : 7), bytes.subarray(got.magic ? 0 : 7, DESCRIPTOR_SIZE)), "descriptor bytes do not survive decode and encode");
    }

    // Trailer: round trip where encode takes it, refusal with bad-argument where it does not.
    const t = refusesWith(() => encodeTrailer({ signatureType: type, signature: sig }), ["bad-argument"]);
    ensure((t === undefined) === (type.length >= SIGNATURE_TYPE_SIZE || sig.length > MAX_SIGNATURE_SIZE), "encodeTrailer refused or took the wrong sizes");
    if (t !== undefined) {
      const r = decodeTrailer(t);
      ensure(r.signatureType === type && bytesEq(r.signature, sig) && r.size === sig.length, "trailer changed by encode and decode");
      ensure(trailerOk(r) === (type === SIGNATURE_TYPE), "trailerOk disagrees with the type");
    }
    const stored = refusesWith(() => decodeTrailer(trailerBytes), ["malformed"]);
    ensure((stored === undefined) === (trailerBytes.length < SIGNATURE_TYPE_SIZE + 4), `${trailerBytes.length} trailer bytes ${stored ? "decoded" : "refused"}`);
    if (stored !== undefined) {
      ensure(stored.size === le32(trailerBytes, SIGNATURE_TYPE_SIZE) && stored.signature.length <= MAX_SIGNATURE_SIZE && stored.signatureType.length <= SIGNATURE_TYPE_SIZE, "trailer read past its bounds");
      if (trailerOk(stored)) ensure(stored.size <= MAX_SIGNATURE_SIZE && stored.signatureType === SIGNATURE_TYPE, "trailerOk took a blank or torn trailer");
    }
  },
);

// ---------------------------------------------------------------------------------------------
// @AFRTOS boot control

const AFR_TABLE = csv("nuvoton-m487.csv");
const AFR_FLASH = 0x200000;
/**
 * partitions/nuvoton-m487.csv with the three image regions cut to a sixteenth, laid end to end:
 * `select` backs up the whole run area, and half a megabyte copied per input would leave few
 * inputs a minute. The backup bank keeps its real relation to APROM (exactly the image and its
 * 4 KB descriptor block), which is what decides whether a backup fits.
 */
const SMALL_TABLE: PartitionExtent[] = (() => {
  let at = 0;
  return AFR_TABLE.map((p) => {
    const size = p.size >= 0x10000 ? p.size / 16 : p.size;
    const e = { name: p.name, type: p.type, subtype: p.subtype, offset: at, size };
    at += size;
    return e;
  });
})();
const SMALL_FLASH = Math.ceil((SMALL_TABLE.at(-1)!.offset + SMALL_TABLE.at(-1)!.size) / 0x1000) * 0x1000;

interface AfrSim {
  flash: NorFlash;
  partitions: SimPartitions;
  boot: AfrStagingBootControl;
}
const sims = new Map<PartitionExtent[], AfrSim>();
function afrSim(table: PartitionExtent[], size: number): AfrSim {
  let s = sims.get(table);
  if (s === undefined) {
    const flash = new NorFlash({ size, strict: true });
    const partitions = new SimPartitions(flash, table, RUN_SLOT);
    s = { flash, partitions, boot: new AfrStagingBootControl(partitions) };
    sims.set(table, s);
  }
  return s;
}
/** Puts `bytes` at the start of partition `name` of `sim`, erased flash for the rest of its first block. */
function place(sim: AfrSim, table: PartitionExtent[], name: string, bytes: Uint8Array): void {
  const base = offsetOf(table, name);
  sim.flash.data.fill(0xff, base, base + 0x1000);
  sim.flash.data.set(bytes.subarray(0, 0x1000), base);
}

/** Descriptors near the ones the PAL, the Cloner and `select` write, then mutated; or any bytes. */
function descriptorBytes(table: PartitionExtent[]): fc.Arbitrary<Uint8Array> {
  const bank = sizeOf(table, STAGING_SLOT);
  const aprom = sizeOf(table, RUN_SLOT);
  const near = fc.record({
    magic: fc.integer({ min: 0, max: 7 }).map((n) => n > 0),
    flag: FLAG,
    sequence: u32,
    start: fc.oneof(fc.constant(0), u32),
    end: fc.oneof(fc.integer({ min: 0, max: aprom + 2 }), u32),
    exec: fc.oneof(fc.constant(0), u32),
    hardwareId: u32,
    reserved: fc.oneof(fc.constantFrom(bank, bank + BACKUP_IMAGE_OFFSET, 0), u32),
  });
  return fc.oneof(
    fc.tuple(near, edits(2), fc.integer({ min: 0, max: 3 })).map(([d, e, n]) => (n === 0 ? applyEdits(encodeDescriptor(d), e) : encodeDescriptor(d))),
    fc.uint8Array({ minLength: DESCRIPTOR_SIZE, maxLength: DESCRIPTOR_SIZE }),
    fc.constant(new Uint8Array(0)),
  );
}

export const afrBootInfo = target(
  "afr-boot-info",
  fc.tuple(descriptorBytes(AFR_TABLE), descriptorBytes(AFR_TABLE), fc.uint8Array({ maxLength: TRAILER_SIZE }), fc.integer({ min: 0, max: 2 })),
  ([desc, backupDesc, trailer, verdict]) => {
    const sim = afrSim(AFR_TABLE, AFR_FLASH);
    place(sim, AFR_TABLE, DESCRIPTOR_PARTITION, desc);
    place(sim, AFR_TABLE, BACKUP_SLOT, backupDesc);
    place(sim, AFR_TABLE, TRAILER_PARTITION, trailer);
    const info = refusesWith(() => sim.boot.info(), []);
    if (info === undefined) return;
    const d = decodeDescriptor(new Uint8Array(sim.partitions.open(DESCRIPTOR_PARTITION).read(DESCRIPTOR_SIZE, 0)));
    ensure(info.running === RUN_SLOT && info.next === RUN_SLOT && info.updateSlot === STAGING_SLOT, "info names other slots than the layout's");
    ensure((info.state === "pending") === (d.magic && d.flag === FLAGS.PENDING_COMMIT) && (info.state === "pending" || info.state === "valid"), `state ${info.state} for flag 0x${d.flag.toString(16)}`);
    if (info.installedFrom !== undefined) {
      ensure(d.magic && (d.flag === FLAGS.PENDING_COMMIT || d.flag === FLAGS.VALID) && describesImage(d, sizeOf(AFR_TABLE, STAGING_SLOT)), "installedFrom without an installed descriptor");
    }
    // The verdicts on the same bytes: refused only as the boot state allows, and a flag they
    // write lands as written (a strict chip throws when a write would need a bit set).
    if (verdict === 0) return;
    if (verdict === 1) {
      refusesWith(() => sim.boot.confirm(), ["boot-state"]);
      const after = decodeDescriptor(new Uint8Array(sim.partitions.open(DESCRIPTOR_PARTITION).read(DESCRIPTOR_SIZE, 0)));
      if (d.magic && d.flag === FLAGS.PENDING_COMMIT) ensure(after.flag === FLAGS.VALID, "confirm left a trial unconfirmed");
      return;
    }
    const back = refusesWith(() => sim.boot.reject(), ["boot-state"]);
    const after = decodeDescriptor(new Uint8Array(sim.partitions.open(DESCRIPTOR_PARTITION).read(DESCRIPTOR_SIZE, 0)));
    if (back !== undefined) ensure(after.magic && after.flag === FLAGS.INVALID, `reject returned ${back} but left flag 0x${after.flag.toString(16)}`);
  },
);

const SIGNATURE = new Uint8Array(71).map((_, k) => (k * 13 + 1) & 0xff);
const STAGED = new Uint8Array(sizeOf(SMALL_TABLE, STAGING_SLOT)).map((_, k) => (k * 7 + 3) & 0xff);
const RUNNING = new Uint8Array(sizeOf(SMALL_TABLE, RUN_SLOT)).map((_, k) => (k * 5 + 9) & 0xff);

export const afrBootSelect = target(
  "afr-boot-select",
  fc.tuple(
    descriptorBytes(SMALL_TABLE),
    fc.oneof(fc.integer({ min: 1, max: sizeOf(SMALL_TABLE, RUN_SLOT) }), fc.constantFrom(0, -1, 0.5, sizeOf(SMALL_TABLE, RUN_SLOT) + 1, sizeOf(SMALL_TABLE, STAGING_SLOT), Number.NaN)),
    fc.oneof(fc.constant(undefined), fc.uint8Array({ maxLength: MAX_SIGNATURE_SIZE + 2 })),
    fc.boolean(),
  ),
  ([desc, length, signature, boot]) => {
    const sim = afrSim(SMALL_TABLE, SMALL_FLASH);
    sim.flash.data.fill(0xff);
    sim.flash.data.set(RUNNING, offsetOf(SMALL_TABLE, RUN_SLOT));
    sim.flash.data.set(STAGED, offsetOf(SMALL_TABLE, STAGING_SLOT));
    sim.partitions.setRunning(RUN_SLOT);
    // Through the page write the PAL and Cloner use, so the descriptor sits as on a chip.
    const page = sim.partitions.open(DESCRIPTOR_PARTITION);
    if (desc.length > 0) writeDescriptor(page, desc);
    const prior = decodeDescriptor(new Uint8Array(page.read(DESCRIPTOR_SIZE, 0)));

    // select returns nothing: the flag tells a refusal from success.
    let selected = false;
    refusesWith(() => {
      sim.boot.select(STAGING_SLOT, { length, signature });
      selected = true;
    }, ["boot-state", "image-too-large", "bad-argument"]);
    if (!selected) {
      // Refusals are the documented ones: a trial in progress, a length that does not fit, a
      // signature the trailer cannot hold.
      const pending = prior.magic && prior.flag === FLAGS.PENDING_COMMIT;
      const fits = Number.isInteger(length) && length >= 1 && length <= sizeOf(SMALL_TABLE, RUN_SLOT);
      const sigFits = (signature?.length ?? 0) <= MAX_SIGNATURE_SIZE;
      ensure(pending || !fits || !sigFits, `select refused a ${length}-byte image over flag 0x${prior.flag.toString(16)}`);
      return;
    }
    const d = decodeDescriptor(new Uint8Array(page.read(DESCRIPTOR_SIZE, 0)));
    const sequence = prior.magic && prior.sequence !== 0xffffffff ? (prior.sequence + 1) >>> 0 : 1;
    ensure(d.magic && d.flag === FLAGS.NEW && d.start === 0 && d.end === length - 1 && d.exec === 0, `select left ${JSON.stringify(d)} for a ${length}-byte image`);
    ensure(d.sequence === sequence && d.reserved === sizeOf(SMALL_TABLE, STAGING_SLOT), `select left sequence ${d.sequence} (after ${prior.sequence}) or reserved ${d.reserved}`);
    const t = decodeTrailer(new Uint8Array(sim.partitions.open(TRAILER_PARTITION).read(TRAILER_SIZE, 0)));
    ensure(trailerOk(t) && bytesEq(t.signature, signature ?? new Uint8Array(0)), "the trailer does not hold the signature");
    const info = sim.boot.info();
    ensure(info.updateState === "new" && info.state === "valid", `after select info says ${JSON.stringify(info)}`);
    if (!boot) return;
    // And the simulated Cloner then installs exactly the staged image.
    const outcome = runCloner(sim.partitions);
    ensure(outcome.slot === RUN_SLOT, `the Cloner did not boot: ${outcome.log.join(" | ")}`);
    const aprom = new Uint8Array(sim.partitions.open(RUN_SLOT).read(length, 0));
    ensure(bytesEq(aprom, STAGED.subarray(0, length)), "the Cloner installed other bytes than the staged image");
  },
);

// ---------------------------------------------------------------------------------------------
// Raw binary format

export const afrFormat = target(
  "afr-format",
  fc.tuple(
    fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.tuple(fc.integer({ min: 0, max: 0x1100 }), fc.nat(), fc.integer({ min: 0, max: 254 })).map(([at, n, b]) => {
      // Erased up to `at`, then one programmed byte: where a blank check stops matters.
      const out = new Uint8Array(at + 1).fill(0xff);
      out[at] = n % 2 === 0 ? b : 0xff;
      return out;
    })),
    fc.oneof(fc.integer({ min: -2, max: 0x2200 }), fc.constantFrom(0.5, Number.NaN, Infinity, sizeOf(SMALL_TABLE, STAGING_SLOT), sizeOf(SMALL_TABLE, STAGING_SLOT) + 1)),
  ),
  ([head, length]) => {
    const sim = afrSim(SMALL_TABLE, SMALL_FLASH);
    const base = offsetOf(SMALL_TABLE, STAGING_SLOT);
    const size = sizeOf(SMALL_TABLE, STAGING_SLOT);
    sim.flash.data.fill(0xff, base, base + size);
    sim.flash.data.set(head.subarray(0, size), base);
    const info = refusesWith(() => afrStagingFormat.verify(sim.partitions.open(STAGING_SLOT), length, nobleDigests), ["image-invalid"]);
    const sane = Number.isInteger(length) && length >= 1 && length <= size;
    const written = head.subarray(0, Math.min(length, 4096)).some((b) => b !== 0xff);
    ensure((info !== undefined) === (sane && written), `a ${length}-byte image ${info ? "accepted" : "refused"} (first block ${written ? "written" : "blank"})`);
  },
);

export const stagingTargets: FuzzTarget[] = [w800Header, w800Image, w800Record, afrDescriptor, afrBootInfo, afrBootSelect, afrFormat];
