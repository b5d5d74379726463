/**
 * BootControl for the @AFRTOS staging layout of the Nuvoton NuMaker-IoT-M487 (Mbed, AWS OTA): the
 * image runs from `aprom`, updates are staged in `ota_bank` (SPI bank 1), and the Cloner
 * bootloader copies a NEW image into APROM at the next reset and restores the backup in
 * `ota_backup` (SPI bank 2) after a rejected or unconfirmed trial (see hosts/sim/cloner.ts).
 *
 * `select` does what the FreeRTOS PAL's CloseFile and ActivateNewImage do together (FreeRTOS OTA
 * PAL for Numaker-IoT-M487, ota_pal.c: prvContextUpdateImageHeaderAndTrailer,
 * prvSPI_FLASH_BackupBank), but in an order that survives a power cut at any flash operation.
 * The PAL rewrites the descriptor page by erase-then-write each time (prvFLASH_update), so a cut
 * after that erase leaves no descriptor, and it writes NEW before the backup exists.
 *
 * Order of writes, and why each cut is safe:
 * 1. The running image is backed up to ota_backup, the backup's own descriptor (VALID) last and
 *    its 8-byte magic+flag header after its body. Until the APROM descriptor is rewritten in
 *    step 3 nothing sends the Cloner to the backup (the descriptor still reads VALID), and a torn
 *    backup has no magic, so it never reads as a backup.
 * 2. The trailer page is erased and written. The Cloner looks at it only for a NEW descriptor.
 * 3. The APROM descriptor page is erased, then the body (bytes 8..31) written, then the header.
 *    Erased or torn, the page has no "@AFRTOS" and the Cloner boots APROM as it is (the old
 *    image). The header is the commit: its flag byte is NEW (0xFF, the erased value), so the
 *    descriptor turns NEW exactly when the seventh magic byte lands.
 * After that every step is one flag byte programmed in place (bits only cleared): by the Cloner
 * (NEW -> PENDING_COMMIT once the copy is checked), by `confirm` (-> VALID) or `reject` (-> INVALID).
 *
 * A raw binary does not say how long it is: `select` takes the staged image's length (and the
 * signature for the trailer) from the port's second argument.
 */
import type { BootControl, BootInfo, SlotState, SelectedImage } from "../ports/boot-control.ts";
import type { Flash } from "../ports/flash.ts";
import type { Partitions } from "../ports/partitions.ts";
import { OtaError } from "../errors.ts";
import {
  DESCRIPTOR_SIZE,
  FLAGS,
  FLAG_OFFSET,
  HEADER_SIZE,
  SIGNATURE_TYPE,
  decodeDescriptor,
  encodeDescriptor,
  encodeTrailer,
  imageLength,
  makeDescriptor,
  type Descriptor,
} from "./descriptor.ts";

export const RUN_SLOT = "aprom";
export const STAGING_SLOT = "ota_bank";
export const BACKUP_SLOT = "ota_backup";
export const DESCRIPTOR_PARTITION = "ota_desc";
export const TRAILER_PARTITION = "ota_trailer";
/** The backup image starts one 4 KB SPI block into its bank, after the backup's descriptor. */
export const BACKUP_IMAGE_OFFSET = 0x1000;

const COPY_BLOCK = 4096;

/** What `select` needs beyond the slot name: a raw binary carries neither. */

export interface AfrStagingOptions {
  /** The descriptor's hardware id field (the PAL leaves it unset; the Cloner only logs it). */
  hardwareId?: number;
}

/** The SPI address of the backup bank: bank 1 starts at SPI 0 and bank 2 follows it (OTA_SPI_BANK_SIZE). */
export function backupAddress(stagingSize: number): number {
  return stagingSize;
}

/** A descriptor that installs or describes an image at 0 no longer than `limit`. */
export function describesImage(d: Descriptor, limit: number): boolean {
  return d.magic && d.start === 0 && d.end >= d.start && d.end < limit;
}

export class AfrStagingBootControl implements BootControl {
  readonly #partitions: Partitions;
  readonly #hardwareId: number;

  constructor(partitions: Partitions, options: AfrStagingOptions = {}) {
    this.#partitions = partitions;
    this.#hardwareId = options.hardwareId ?? 0;
  }

  info(): BootInfo {
    const d = this.#descriptor();
    const info: BootInfo = { running: RUN_SLOT, state: "valid", next: RUN_SLOT, updateSlot: STAGING_SLOT };
    if (!d.magic) return info;
    if (d.flag === FLAGS.PENDING_COMMIT) info.state = "pending";
    const updateState: SlotState | undefined = d.flag === FLAGS.NEW ? "new" : d.flag === FLAGS.INVALID ? "invalid" : undefined;
    if (updateState) info.updateState = updateState;
    const installed = d.flag === FLAGS.PENDING_COMMIT || d.flag === FLAGS.VALID;
    // A restored descriptor points at the backup's image, not at the backup bank: it describes
    // the image that was there before, not one installed from staging.
    if (installed && d.reserved === this.#backupAddress() && describesImage(d, this.#size(STAGING_SLOT))) info.installedFrom = STAGING_SLOT;
    return info;
  }

  select(slot: string, staged: SelectedImage): void {
    if (slot === RUN_SLOT) throw new OtaError("boot-state", `'${slot}' is the running slot`);
    if (slot !== STAGING_SLOT) throw new OtaError("partition-unknown", `'${slot}' is not the staging slot (${STAGING_SLOT})`);
    const length = staged.length;
    const limit = Math.min(this.#size(STAGING_SLOT), this.#size(RUN_SLOT));
    if (!Number.isInteger(length) || length < 1 || length > limit) {
      throw new OtaError("image-too-large", `a staged image of ${length} bytes does not fit (1..${limit})`);
    }
    const trailer = encodeTrailer({ signatureType: SIGNATURE_TYPE, signature: staged.signature ?? new Uint8Array(0) });

    const d = this.#descriptor();
    if (d.magic && d.flag === FLAGS.PENDING_COMMIT) throw new OtaError("boot-state", "the running image is on trial: confirm or reject it first");
    // Selected again before the restart: the staging slot may since hold other bytes, so the
    // earlier selection must not install while the backup is rewritten.
    if (d.magic && d.flag === FLAGS.NEW) this.#setFlag(FLAGS.INVALID);

    const running = d.magic && d.flag === FLAGS.VALID && describesImage(d, this.#size(RUN_SLOT)) ? imageLength(d) : this.#size(RUN_SLOT);
    this.#backUp(running, d.magic ? d.sequence : 0);

    const trailerFlash = this.#partitions.open(TRAILER_PARTITION);
    trailerFlash.eraseBlock(0);
    trailerFlash.write(trailer, 0);

    const sequence = d.magic && d.sequence !== 0xffffffff ? d.sequence + 1 : 1;
    const next = makeDescriptor(FLAGS.NEW, sequence, length, this.#backupAddress());
    next.hardwareId = this.#hardwareId;
    writeDescriptor(this.#partitions.open(DESCRIPTOR_PARTITION), encodeDescriptor(next));
  }

  confirm(): void {
    const d = this.#descriptor();
    if (!d.magic || d.flag === FLAGS.VALID || d.flag === FLAGS.NEW) return;
    if (d.flag === FLAGS.PENDING_COMMIT) return this.#setFlag(FLAGS.VALID);
    throw new OtaError("boot-state", `the running image's descriptor reads flag 0x${d.flag.toString(16)}: it was rejected, not on trial`);
  }

  reject(): boolean {
    const d = this.#descriptor();
    if (!d.magic || d.flag === FLAGS.NEW) throw new OtaError("boot-state", "no installed image to reject");
    if (d.flag !== FLAGS.INVALID) {
      // A flag outside the four with a bit INVALID keeps set (0x00, 0x7F: corruption) cannot be
      // programmed to INVALID in place, and the Cloner boots APROM as it is for it: saying the
      // previous image comes back would be false.
      if ((d.flag & FLAGS.INVALID) !== FLAGS.INVALID) throw new OtaError("boot-state", `the descriptor reads flag 0x${d.flag.toString(16)}, which cannot be marked invalid in place`);
      this.#setFlag(FLAGS.INVALID);
    }
    return this.#hasBackup(d);
  }

  /** Whether the Cloner will find a complete backup where the descriptor says one is. */
  #hasBackup(d: Descriptor): boolean {
    if (d.reserved !== this.#backupAddress()) return false;
    const backup = this.#partitions.open(BACKUP_SLOT);
    const b = decodeDescriptor(new Uint8Array(backup.read(DESCRIPTOR_SIZE, 0)));
    return b.flag === FLAGS.VALID && b.reserved === d.reserved + BACKUP_IMAGE_OFFSET &&
      describesImage(b, Math.min(this.#size(RUN_SLOT), backup.status().size - BACKUP_IMAGE_OFFSET));
  }

  #backUp(length: number, sequence: number): void {
    const backup = this.#partitions.open(BACKUP_SLOT);
    const { size, blockLength } = backup.status();
    if (BACKUP_IMAGE_OFFSET + length > size) {
      throw new OtaError("image-too-large", `a ${length}-byte running image and its descriptor do not fit the ${size}-byte backup bank`);
    }
    backup.eraseBlock(0, Math.ceil((BACKUP_IMAGE_OFFSET + length) / blockLength));
    const run = this.#partitions.open(RUN_SLOT);
    for (let at = 0; at < length; at += COPY_BLOCK) {
      backup.write(run.read(Math.min(COPY_BLOCK, length - at), at), BACKUP_IMAGE_OFFSET + at);
    }
    const own = makeDescriptor(FLAGS.VALID, sequence, length, this.#backupAddress() + BACKUP_IMAGE_OFFSET);
    own.hardwareId = this.#hardwareId;
    const bytes = encodeDescriptor(own);
    backup.write(bytes.subarray(HEADER_SIZE), HEADER_SIZE);
    backup.write(bytes.subarray(0, HEADER_SIZE), 0);
  }

  #setFlag(flag: number): void {
    this.#partitions.open(DESCRIPTOR_PARTITION).write(new Uint8Array([flag]), FLAG_OFFSET);
  }

  #descriptor(): Descriptor {
    return decodeDescriptor(new Uint8Array(this.#partitions.open(DESCRIPTOR_PARTITION).read(DESCRIPTOR_SIZE, 0)));
  }

  #backupAddress(): number {
    return backupAddress(this.#size(STAGING_SLOT));
  }

  #size(name: string): number {
    return this.#partitions.open(name).status().size;
  }
}

/**
 * Rewrites a descriptor page: erase, body, header. Exported for the simulated Cloner, which
 * restores a descriptor the same way.
 */
export function writeDescriptor(page: Flash, bytes: Uint8Array): void {
  page.eraseBlock(0);
  page.write(bytes.subarray(HEADER_SIZE, DESCRIPTOR_SIZE), HEADER_SIZE);
  page.write(bytes.subarray(0, HEADER_SIZE), 0);
}
