/**
 * Streams an image into an (inactive) app slot: each chunk is written at the current offset,
 * and flash is erased ahead of the bytes that need it, up to the next `eraseAhead` boundary
 * (64 KB by default: SPI NOR erases an aligned 64 KB block in one command, in the time of three
 * or four 4 KB sector erases, and ESP-IDF's esp_partition_erase_range uses it for aligned ranges), never past
 * the image's last block, and an image that does not fit is refused before the first erase.
 * `wholeSlot` erases the entire slot before the first byte instead, as esp_ota_begin does for an
 * image of unknown size (AWS's ESP32 agent): slower, kept for comparison.
 *
 * `offset` is durable once `write` returns: a caller that records it (StateStore) can resume
 * after a reboot with `ImageWriter.resume`, which keeps what is already in flash. The record must
 * never run ahead of what flash holds, so after `resume` the caller records `writer.offset`
 * (which may have backed off to a block start) before the next `write`, because that write
 * erases the block again.
 */
import type { Flash } from "../ports/flash.ts";
import { OtaError } from "../errors.ts";
import { toBytes } from "./flash-checks.ts";

/** How a writer erases ahead of what it writes. */
export interface EraseOptions {
  /** Bytes erased at once, up to a multiple of this from the region's start (default 64 KB). */
  eraseAhead?: number;
  /** Erase the whole slot before the first write (default false). */
  wholeSlot?: boolean;
}

export const DEFAULT_ERASE_AHEAD = 64 * 1024;

/** The end of the erase that makes [.., end) writable: a block boundary, within the image's blocks (or the slot). */
export function eraseTarget(end: number, size: number, slot: Flash, o: EraseOptions): number {
  const { size: slotSize, blockLength: bl } = slot.status();
  if (o.wholeSlot) return slotSize;
  const unit = Math.max(bl, Math.ceil((o.eraseAhead ?? DEFAULT_ERASE_AHEAD) / bl) * bl);
  const limit = Math.ceil(size / bl) * bl;
  return Math.min(limit, Math.ceil(end / unit) * unit);
}

export class ImageWriter {
  readonly size: number;
  readonly #slot: Flash;
  readonly #blockLength: number;
  readonly #erase: EraseOptions;
  #offset: number;
  /** Bytes from #offset up to here are known to be erased. */
  #erasedTo: number;

  constructor(slot: Flash, size: number, erase: EraseOptions = {}) {
    const { size: slotSize, blockLength } = slot.status();
    if (!Number.isSafeInteger(size) || size <= 0) throw new OtaError("bad-argument", `image size must be a positive integer, got ${size}`);
    if (size > slotSize) {
      throw new OtaError("image-too-large", `image of ${size} bytes does not fit the slot of ${slotSize} bytes`);
    }
    this.size = size;
    this.#slot = slot;
    this.#blockLength = blockLength;
    this.#erase = erase;
    this.#offset = 0;
    this.#erasedTo = 0;
  }

  /**
   * Continues an image whose first `offset` bytes were written before. The rest of the block
   * holding `offset` is reused if it is still erased; if anything was programmed there after the
   * offset was recorded, the writer backs off to the start of that block and erases it again.
   * Read `offset` afterwards to know where the data must resume.
   */
  static resume(slot: Flash, size: number, offset: number, erase: EraseOptions = {}): ImageWriter {
    // A resumed slot is never erased whole again: only what lies ahead of the offset.
    const writer = new ImageWriter(slot, size, { ...erase, wholeSlot: false });
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
      throw new OtaError("image-offset", `resume offset ${offset} is outside the image of ${size} bytes`);
    }
    const bl = writer.#blockLength;
    const blockStart = offset - (offset % bl);
    const blockEnd = Math.min(blockStart + bl, writer.#slot.status().size);
    let resumeAt = offset;
    if (offset % bl && !isErased(new Uint8Array(slot.read(blockEnd - offset, offset)))) resumeAt = blockStart;
    writer.#offset = resumeAt;
    writer.#erasedTo = resumeAt === offset && offset % bl ? blockEnd : resumeAt;
    return writer;
  }

  /** Bytes of the image written so far: where the next chunk goes. */
  get offset(): number {
    return this.#offset;
  }

  get done(): boolean {
    return this.#offset === this.size;
  }

  /** Writes the next chunk. `at`, when given, must equal `offset` (a guard for callers that track it too). */
  write(chunk: ArrayBuffer | ArrayBufferView, at?: number): void {
    const bytes = toBytes(chunk);
    if (at !== undefined && at !== this.#offset) {
      throw new OtaError("image-offset", `chunk for offset ${at}, but the image is written up to ${this.#offset}`);
    }
    const end = this.#offset + bytes.length;
    if (end > this.size) {
      throw new OtaError("image-too-large", `${end - this.size} bytes more than the announced image size of ${this.size}`);
    }
    if (end > this.#erasedTo) {
      const bl = this.#blockLength;
      const target = eraseTarget(end, this.size, this.#slot, this.#erase);
      this.#slot.eraseBlock(Math.floor(this.#erasedTo / bl), target / bl);
      this.#erasedTo = target;
    }
    if (bytes.length) this.#slot.write(bytes, this.#offset);
    this.#offset = end;
  }

  /** Throws unless every byte of the image arrived. */
  finish(): void {
    if (!this.done) throw new OtaError("image-incomplete", `image has ${this.#offset} of ${this.size} bytes`);
  }
}

function isErased(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0xff) return false;
  return true;
}
