/**
 * Writes an image into its slot in any order, block by block, as MQTT stream blocks arrive:
 * flash is erased ahead of what is about to be requested (`prepare`, in `eraseAhead` units as
 * ImageWriter does, or the whole slot first), never twice, and each
 * byte is written once into erased flash. Writing the same bytes again (a block received twice,
 * or re-received after a reboot lost its record) is harmless on NOR: it clears no further bits.
 * The erase mark is part of the stream's resume record, so a resumed download never erases a
 * block that holds recorded data.
 */
import type { Flash } from "../ports/flash.ts";
import { OtaError } from "../errors.ts";
import { toBytes } from "./flash-checks.ts";
import { eraseTarget, type EraseOptions } from "./image-writer.ts";

export class BlockWriter {
  readonly size: number;
  readonly #slot: Flash;
  readonly #blockLength: number;
  readonly #erase: EraseOptions;
  #erasedTo = 0;

  constructor(slot: Flash, size: number, erasedTo = 0, erase: EraseOptions = {}) {
    const { size: slotSize, blockLength } = slot.status();
    if (!Number.isSafeInteger(size) || size <= 0) throw new OtaError("bad-argument", `image size must be a positive integer, got ${size}`);
    if (size > slotSize) throw new OtaError("image-too-large", `image of ${size} bytes does not fit the slot of ${slotSize} bytes`);
    if (!Number.isSafeInteger(erasedTo) || erasedTo < 0 || erasedTo % blockLength || erasedTo > slotSize) {
      throw new OtaError("image-offset", `erase mark ${erasedTo} is not a block boundary inside the slot`);
    }
    this.size = size;
    this.#slot = slot;
    this.#blockLength = blockLength;
    this.#erasedTo = erasedTo;
    // A resumed slot is never erased whole again.
    this.#erase = erasedTo > 0 ? { ...erase, wholeSlot: false } : erase;
  }

  /** Where erased flash ends: bytes below may be written. */
  get erasedTo(): number {
    return this.#erasedTo;
  }

  /** Makes [0, end) writable by erasing the blocks not yet erased; never past the image (whole-slot mode: the slot). */
  prepare(end: number): void {
    if (Math.min(end, this.size) <= this.#erasedTo) return;
    const target = eraseTarget(end, this.size, this.#slot, this.#erase);
    this.#slot.eraseBlock(this.#erasedTo / this.#blockLength, target / this.#blockLength);
    this.#erasedTo = target;
  }

  writeAt(offset: number, chunk: ArrayBuffer | ArrayBufferView): void {
    const bytes = toBytes(chunk);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > this.size) {
      throw new OtaError("image-offset", `${bytes.length} bytes at ${offset} fall outside the image of ${this.size} bytes`);
    }
    if (offset + bytes.length > this.#erasedTo) {
      throw new OtaError("image-offset", `bytes at ${offset} are past the erased area (${this.#erasedTo}): prepare first`);
    }
    if (bytes.length) this.#slot.write(bytes, offset);
  }

  read(length: number, offset: number): ArrayBuffer {
    return this.#slot.read(length, offset);
  }
}
