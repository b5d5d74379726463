/**
 * The first stage of every transfer: nothing reaches flash before the image's header passed.
 * The ImageFormat says how many bytes the header takes; the agent's check (version, security
 * version) decides. HTTP hands bytes over in file order: the gate holds back the first
 * `prefixSize` bytes, checks them, then lets everything through. Block transfers hand over
 * numbered blocks in any order: block 0 carries the header, and no other block is admitted
 * until it passed (a refused block stays needed and is asked for again).
 * A format with no header (prefixSize 0) opens the gate at once.
 */
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";

export class HeaderGate {
  readonly #size: number;
  readonly #check: (prefix: Uint8Array) => ImageInfo;
  /** Held-back header bytes (HTTP), until the check. */
  #held: Uint8Array | undefined;
  #passed: boolean;

  /**
   * `written` bytes of this image are in flash already (a resumed download): if they cover the
   * header, `readBack` reads it from there and it is checked again now.
   */
  constructor(format: ImageFormat, size: number, check: (prefix: Uint8Array) => ImageInfo, written = 0, readBack?: (length: number) => Uint8Array) {
    this.#size = size;
    this.#check = (prefix) => check(prefix);
    this.#passed = format.prefixSize === 0;
    this.prefixSize = format.prefixSize;
    if (!this.#passed && written >= format.prefixSize && readBack) {
      this.#check(readBack(format.prefixSize));
      this.#passed = true;
    }
    if (!this.#passed) this.#held = new Uint8Array(0);
  }

  readonly prefixSize: number;

  get passed(): boolean {
    return this.#passed;
  }

  /** Bytes held back, not yet in flash: a sequential transfer fetches from `written - held`. */
  get held(): number {
    return this.#held?.length ?? 0;
  }

  /** The held-back bytes themselves (a patch may copy from them before they reach flash). */
  get pending(): Uint8Array {
    return this.#held ?? new Uint8Array(0);
  }

  /** Forgets held-back bytes (a fresh request starts again from where flash ends). */
  drop(): void {
    if (this.#held) this.#held = new Uint8Array(0);
  }

  /**
   * Sequential bytes that start at file offset `at`: what may be written now (possibly nothing,
   * while the header is incomplete). Throws the check's OtaError when the header is refused.
   */
  take(chunk: Uint8Array, at: number): Uint8Array {
    const held = this.#held;
    if (this.#passed || held === undefined) return chunk;
    const joined = new Uint8Array(held.length + chunk.length);
    joined.set(held);
    joined.set(chunk, held.length);
    if (joined.length < this.prefixSize && at + chunk.length < this.#size) {
      this.#held = joined;
      return new Uint8Array(0);
    }
    this.#check(joined.subarray(0, Math.min(joined.length, this.prefixSize)));
    this.#passed = true;
    this.#held = undefined;
    return joined;
  }

  /** Whether block `index` may be written now; block 0 is checked here (throws when refused). */
  admit(index: number, bytes: Uint8Array): boolean {
    if (this.#passed) return true;
    if (index !== 0) return false;
    this.#check(bytes.subarray(0, Math.min(bytes.length, this.prefixSize)));
    this.#passed = true;
    this.#held = undefined;
    return true;
  }
}
