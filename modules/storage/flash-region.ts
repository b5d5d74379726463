/**
 * A partition-sized window onto a larger Flash: offset 0 is the region's first byte and nothing
 * outside it can be read, written or erased. Used by hosts that see the whole chip.
 */
import type { Flash, FlashStatus } from "../ports/flash.ts";
import { OtaError } from "../errors.ts";
import { checkErase, checkRange } from "./flash-checks.ts";

export class FlashRegion implements Flash {
  readonly #base: Flash;
  readonly #offset: number;
  readonly #status: FlashStatus;

  constructor(base: Flash, offset: number, size: number) {
    const { size: baseSize, blockLength } = base.status();
    if (offset % blockLength || size % blockLength || size <= 0 || offset < 0 || offset + size > baseSize) {
      throw new OtaError("flash-bounds", `region 0x${offset.toString(16)}+0x${size.toString(16)} is not whole blocks inside 0x${baseSize.toString(16)} bytes`);
    }
    this.#base = base;
    this.#offset = offset;
    this.#status = { size, blockLength, blocks: size / blockLength };
  }

  status(): FlashStatus {
    return { ...this.#status };
  }

  eraseBlock(first: number, last = first + 1): void {
    checkErase(this.#status, first, last);
    const shift = this.#offset / this.#status.blockLength;
    this.#base.eraseBlock(first + shift, last + shift);
  }

  read(length: number, offset: number): ArrayBuffer {
    checkRange(this.#status, offset, length);
    return this.#base.read(length, offset + this.#offset);
  }

  write(bytes: ArrayBuffer | ArrayBufferView, offset: number): void {
    checkRange(this.#status, offset, bytes.byteLength);
    this.#base.write(bytes, offset + this.#offset);
  }
}
