/**
 * The simulated Nuvoton "Cloner" bootloader (APROM 0x72000, entered from LDROM at reset), as its
 * log in OpenNuvoton/NuMaker-mbed-AWS-IoT-CSDK-OTA-example (README.md) shows it working: read the
 * @AFRTOS descriptor, check it, erase APROM, clone the staged image from SPI bank 1, compare
 * CRC-32s, update the flag, boot the application. The restore paths (a rejected image, a trial
 * that restarted without a verdict) follow the backup the PAL leaves in SPI bank 2; the Cloner's
 * source is not public, so they are this project's reading of that design:
 *
 * - NEW (0xFF), sane descriptor and trailer: copy ota_bank to aprom, compare, flag -> 0xFE in
 *   place, boot. A cut before the flag byte leaves NEW: the next boot copies again.
 * - PENDING_COMMIT (0xFE) at boot: the trial ended without a verdict; flag -> 0xF8, then restore.
 * - INVALID (0xF8) with a complete backup: copy it to aprom, compare, then rewrite the descriptor
 *   as the backup's (body first, header last). A cut before that leaves 0xF8: restore again.
 * - VALID (0xFC), no descriptor, or nothing to restore from: boot APROM as it is.
 *
 * Raw binaries carry no check of their own, so the image is always started unless a copy cannot
 * be completed. Synchronous and free of platform imports, like hosts/sim/bootloader.ts.
 */
import type { DigestFactory } from "../../modules/ports/digest.ts";
import type { Flash } from "../../modules/ports/flash.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { BACKUP_SLOT, DESCRIPTOR_PARTITION, RUN_SLOT, STAGING_SLOT, TRAILER_PARTITION, describesImage, writeDescriptor } from "../../modules/afr-staging/boot-control.ts";
import { DESCRIPTOR_SIZE, FLAGS, FLAG_OFFSET, TRAILER_SIZE, decodeDescriptor, decodeTrailer, encodeDescriptor, imageLength, trailerOk, type Descriptor } from "../../modules/afr-staging/descriptor.ts";
import type { SimPartitions } from "./partitions.ts";

export interface ClonerOutcome {
  /** "aprom" when the application starts, undefined when a copy could not be completed. */
  slot: string | undefined;
  log: string[];
}

const COPY_BLOCK = 4096;
/** Blocks of a 64 KB erase: SPI NOR and the FMC driver both have one for aligned ranges. */
const BIG_ERASE = 16;

export function runCloner(partitions: SimPartitions, digests: DigestFactory = nobleDigests): ClonerOutcome {
  const log: string[] = [];
  const descFlash = partitions.open(DESCRIPTOR_PARTITION);
  const aprom = partitions.open(RUN_SLOT);
  const boot = (why: string): ClonerOutcome => {
    log.push(why, "Boot APROM");
    partitions.setRunning(RUN_SLOT);
    return { slot: RUN_SLOT, log };
  };
  const fail = (why: string): ClonerOutcome => {
    log.push(why);
    return { slot: undefined, log };
  };

  const d = decodeDescriptor(new Uint8Array(descFlash.read(DESCRIPTOR_SIZE, 0)));
  if (!d.magic) return boot("read Magic code     : none (no @AFRTOS descriptor)");
  log.push(
    "read Magic code     : @AFRTOS",
    `read Image flag     : ${hex(d.flag, 2)}`,
    `read Sequence Num   : ${hex(d.sequence, 8)}`,
    `read Start addr     : ${hex(d.start, 8)}`,
    `read End addr       : ${hex(d.end, 8)}`,
    `read Exec addr      : ${hex(d.exec, 8)}`,
    `read Hardware ID    : ${hex(d.hardwareId, 8)}`,
    `read Reserved data  : ${hex(d.reserved, 8)}`,
  );
  const apromSize = aprom.status().size;
  const bank = partitions.open(STAGING_SLOT);
  const backup = findBackup(partitions, d, apromSize);

  if (d.flag === FLAGS.NEW) {
    const trailer = decodeTrailer(new Uint8Array(partitions.open(TRAILER_PARTITION).read(TRAILER_SIZE, 0)));
    if (!describesImage(d, Math.min(apromSize, bank.status().size)) || d.exec !== 0 || !trailerOk(trailer)) {
      return boot("Check OTA image failed");
    }
    log.push("Check OTA image success", "Clone OTA image from SPI Flash to APROM");
    const length = imageLength(d);
    const copied = copy(aprom, bank, 0, length, Math.max(length, backup ? imageLength(backup.descriptor) : 0), digests, log);
    if (copied) return fail(copied);
    log.push("Update OTA header ...");
    descFlash.write(new Uint8Array([FLAGS.PENDING_COMMIT]), FLAG_OFFSET);
    return boot("Image flag -> 0xFE (pending commit)");
  }
  if (d.flag === FLAGS.PENDING_COMMIT) {
    log.push("Image was not committed after its trial: mark it invalid");
    descFlash.write(new Uint8Array([FLAGS.INVALID]), FLAG_OFFSET);
  } else if (d.flag !== FLAGS.INVALID) {
    return boot(d.flag === FLAGS.VALID ? "Image is valid" : `Unknown image flag ${hex(d.flag, 2)}`);
  }

  if (!backup) return boot("Image is invalid and no backup is available: APROM stays as it is");
  log.push(`Restore backup image from SPI Flash ${hex(d.reserved + backup.imageOffset, 8)} to APROM`);
  const length = imageLength(backup.descriptor);
  const replaced = describesImage(d, apromSize) ? imageLength(d) : apromSize;
  const copied = copy(aprom, backup.flash, backup.imageOffset, length, Math.max(length, replaced), digests, log);
  if (copied) return fail(copied);
  // The sequence never goes down, so the next update's is higher than every one before it.
  const restored: Descriptor = { ...backup.descriptor, sequence: Math.max(backup.descriptor.sequence, d.sequence) };
  log.push("Update OTA header ...");
  writeDescriptor(descFlash, encodeDescriptor(restored));
  return boot("Backup restored");
}

interface Backup {
  flash: Flash;
  descriptor: Descriptor;
  /** Where the image starts in the backup bank. */
  imageOffset: number;
}

/** The backup the descriptor's reserved field points at, when it is complete (its descriptor VALID). */
function findBackup(partitions: SimPartitions, d: Descriptor, apromSize: number): Backup | undefined {
  const bankExtent = partitions.table.find((p) => p.name === STAGING_SLOT);
  const backupExtent = partitions.table.find((p) => p.name === BACKUP_SLOT);
  if (!bankExtent || !backupExtent) return undefined;
  // SPI addresses count from bank 1 (ota_bank) at SPI 0.
  if (d.reserved !== backupExtent.offset - bankExtent.offset) return undefined;
  const flash = partitions.open(BACKUP_SLOT);
  const descriptor = decodeDescriptor(new Uint8Array(flash.read(DESCRIPTOR_SIZE, 0)));
  const imageOffset = descriptor.reserved - d.reserved;
  if (descriptor.flag !== FLAGS.VALID || imageOffset < DESCRIPTOR_SIZE || imageOffset >= backupExtent.size) return undefined;
  if (!describesImage(descriptor, Math.min(apromSize, backupExtent.size - imageOffset))) return undefined;
  return { flash, descriptor, imageOffset };
}

/**
 * Erases aprom over `eraseLength` bytes (the larger of the image coming in and the one it
 * replaces, so no tail of either survives), copies `length` bytes from `source` at `from`, and
 * compares the CRC-32 of both. Returns why it failed, or undefined.
 */
function copy(aprom: Flash, source: Flash, from: number, length: number, eraseLength: number, digests: DigestFactory, log: string[]): string | undefined {
  const { blockLength, size } = aprom.status();
  const blocks = Math.ceil(Math.min(eraseLength, size) / blockLength);
  log.push(`Erasing APROM ${hex(0, 1)} .. ${hex(blocks * blockLength, 1)} ...`);
  for (let at = 0; at < blocks; ) {
    const last = at % BIG_ERASE === 0 && at + BIG_ERASE <= blocks ? at + BIG_ERASE : at + 1;
    aprom.eraseBlock(at, last);
    at = last;
  }
  log.push("Clone APROM ...");
  for (let at = 0; at < length; at += COPY_BLOCK) aprom.write(source.read(Math.min(COPY_BLOCK, length - at), from + at), at);
  log.push("Clone done.");
  const want = crcOf(source, from, length, digests);
  const got = crcOf(aprom, 0, length, digests);
  if (want !== got) return `Checksum failed: CRC32 ${hex(got, 8)}, expected ${hex(want, 8)}`;
  log.push(`Checksum OK. CRC32: ${hex(got, 8)}`);
  return undefined;
}

function crcOf(flash: Flash, from: number, length: number, digests: DigestFactory): number {
  const digest = digests.create("crc32");
  for (let at = 0; at < length; at += COPY_BLOCK) digest.update(flash.read(Math.min(COPY_BLOCK, length - at), from + at));
  const b = digest.finish();
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

function hex(n: number, digits: number): string {
  let s = (n >>> 0).toString(16).toUpperCase();
  while (s.length < digits) s = "0" + s;
  return "0x" + s;
}
