/**
 * A NOR flash chip in memory, with the rules of the real thing and a way to cut its power.
 *
 * - 4 KB erase blocks; an erase sets every byte of a block to 0xFF.
 * - A write can only clear bits: the stored byte becomes `old & new`. With `strict`, a write that
 *   would need to set a bit (so the stored byte would differ from what was written) throws
 *   "flash-not-erased" instead of silently corrupting, which is what a missing erase does on a chip.
 *   Clearing more bits of a programmed byte stays allowed: it is what a chip does, and otadata
 *   confirmation relies on it.
 * - Power cut: `cutAt(n, tear)` makes the n-th mutating operation from now (1-based, one per block
 *   erased, one per write) fail. With tear "none" it does nothing; "first-byte" or "half" lands
 *   that part of a write, or erases that part of a block, as an interrupted program or erase
 *   would. From then on every call throws "flash-power-cut" until `powerOn()`.
 *
 * No platform imports: the model also runs inside the XS engine for the contract suites.
 */
import type { Flash, FlashStatus } from "../../modules/ports/flash.ts";
import { OtaError } from "../../modules/errors.ts";
import { checkErase, checkRange, toBytes } from "../../modules/storage/flash-checks.ts";

export type Tear = "none" | "first-byte" | "half";

export interface FlashOperation {
  kind: "erase" | "write";
  /** Absolute byte offset and length of what the operation touches. */
  offset: number;
  length: number;
}

export interface NorFlashOptions {
  size: number;
  blockLength?: number;
  strict?: boolean;
  /** Existing contents (not copied: the model works in place, so a host can persist them). */
  data?: Uint8Array;
  /** Called after each operation changed bytes [offset, offset + length). */
  onChange?: (offset: number, length: number) => void;
}

export class NorFlash implements Flash {
  readonly data: Uint8Array;
  readonly strict: boolean;
  /** Mutating operations done since creation (each block erased counts one). */
  operations = 0;
  /** Every mutating operation, when `record` is set. */
  record: FlashOperation[] | undefined;
  readonly #status: FlashStatus;
  readonly #onChange: NorFlashOptions["onChange"];
  #cut: { at: number; tear: Tear } | undefined;
  #dead = false;

  constructor(options: NorFlashOptions) {
    const blockLength = options.blockLength ?? 4096;
    if (options.size <= 0 || options.size % blockLength) {
      throw new OtaError("bad-argument", `flash size ${options.size} is not a whole number of ${blockLength}-byte blocks`);
    }
    if (options.data && options.data.length !== options.size) {
      throw new OtaError("bad-argument", `flash contents are ${options.data.length} bytes, expected ${options.size}`);
    }
    this.data = options.data ?? new Uint8Array(options.size).fill(0xff);
    this.strict = options.strict ?? false;
    this.#onChange = options.onChange;
    this.#status = { size: options.size, blockLength, blocks: options.size / blockLength };
  }

  status(): FlashStatus {
    this.#alive();
    return { ...this.#status };
  }

  read(length: number, offset: number): ArrayBuffer {
    this.#alive();
    checkRange(this.#status, offset, length);
    return this.data.slice(offset, offset + length).buffer;
  }

  eraseBlock(first: number, last = first + 1): void {
    this.#alive();
    checkErase(this.#status, first, last);
    const bl = this.#status.blockLength;
    for (let block = first; block < last; block++) {
      const tear = this.#step({ kind: "erase", offset: block * bl, length: bl });
      const length = tear === undefined ? bl : tear === "half" ? bl / 2 : tear === "first-byte" ? 1 : 0;
      this.data.fill(0xff, block * bl, block * bl + length);
      if (length) this.#onChange?.(block * bl, length);
      if (tear !== undefined) this.#die();
    }
  }

  write(bytes: ArrayBuffer | ArrayBufferView, offset: number): void {
    this.#alive();
    const src = toBytes(bytes);
    checkRange(this.#status, offset, src.length);
    if (this.strict) {
      for (let i = 0; i < src.length; i++) {
        if ((this.data[offset + i] & src[i]) !== src[i]) {
          throw new OtaError("flash-not-erased", `write at 0x${(offset + i).toString(16)} needs bits set that are 0 (0x${this.data[offset + i].toString(16)} -> 0x${src[i].toString(16)}): erase first`);
        }
      }
    }
    const tear = this.#step({ kind: "write", offset, length: src.length });
    const length = tear === undefined ? src.length : tear === "half" ? src.length >> 1 : tear === "first-byte" ? Math.min(1, src.length) : 0;
    for (let i = 0; i < length; i++) this.data[offset + i] &= src[i];
    if (length) this.#onChange?.(offset, length);
    if (tear !== undefined) this.#die();
  }

  /** Arms a power cut at the n-th mutating operation from now. */
  cutAt(n: number, tear: Tear = "none"): void {
    if (!Number.isInteger(n) || n < 1) throw new OtaError("bad-argument", "cutAt counts operations from 1");
    this.#cut = { at: this.operations + n, tear };
  }

  /** Power comes back: calls work again and no cut is armed. */
  powerOn(): void {
    this.#dead = false;
    this.#cut = undefined;
  }

  get poweredOff(): boolean {
    return this.#dead;
  }

  #step(op: FlashOperation): Tear | undefined {
    this.operations++;
    this.record?.push(op);
    if (this.#cut && this.operations === this.#cut.at) return this.#cut.tear;
    return undefined;
  }

  #die(): never {
    this.#dead = true;
    throw new OtaError("flash-power-cut", `power lost at flash operation ${this.operations}`);
  }

  #alive(): void {
    if (this.#dead) throw new OtaError("flash-power-cut", "the flash has no power");
  }
}
