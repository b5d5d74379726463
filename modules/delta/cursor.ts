/**
 * A buffered, bounded view of one stretch of a patch: the file header, a window header, or one
 * of a window's three sections. The patch sits in flash on the device, so the cursor reads it
 * in pieces of at most its capacity and never holds more; every read past the stretch's end is
 * refused with the stretch's name, which is how a truncated or inconsistent patch is caught.
 */
import { OtaError } from "../errors.ts";

/** Random access to bytes: the Flash port's `read` (a fresh ArrayBuffer of exactly `length` bytes). */
export interface ByteReader {
  read(length: number, offset: number): ArrayBuffer;
}

/** RFC 3284 integers are unsigned base-128; xs-ota's images and flash never exceed 32 bits. */
const MAX_INTEGER = 0xffffffff;

export class Cursor {
  readonly #reader: ByteReader;
  readonly #capacity: number;
  #buffer = new Uint8Array(0);
  /** Index of the next byte in #buffer. */
  #at = 0;
  /** Patch offset of #buffer[0]. */
  #base = 0;
  #end = 0;
  #label = "";
  /** What running out of bytes means here: "truncated" for headers, "ends inside" for sections. */
  #short = "";

  constructor(reader: ByteReader, capacity: number) {
    this.#reader = reader;
    this.#capacity = capacity;
  }

  /** Points the cursor at patch bytes [start, end); `label` names them in refusals. */
  reset(start: number, end: number, label: string, short: string): void {
    this.#buffer = new Uint8Array(0);
    this.#at = 0;
    this.#base = start;
    this.#end = end;
    this.#label = label;
    this.#short = short;
  }

  /** Patch offset of the next byte. */
  get position(): number {
    return this.#base + this.#at;
  }

  get remaining(): number {
    return this.#end - this.position;
  }

  fail(reason: string): never {
    throw new OtaError("patch-invalid", `${this.#label}: ${reason}`);
  }

  /** Up to `max` bytes (at least one), as a view that is valid until the next call. */
  piece(max: number, what: string): Uint8Array {
    if (this.#at === this.#buffer.length) this.#fill(what);
    const n = Math.min(max, this.#buffer.length - this.#at);
    const view = this.#buffer.subarray(this.#at, this.#at + n);
    this.#at += n;
    return view;
  }

  byte(what: string): number {
    if (this.#at === this.#buffer.length) this.#fill(what);
    return this.#buffer[this.#at++];
  }

  /** An RFC 3284 integer: 7 bits a byte, most significant first, the top bit set on all but the last. */
  integer(what: string): number {
    let value = 0;
    for (;;) {
      const b = this.byte(what);
      // Checked before the shift, so the value never leaves the range where doubles are exact.
      if (value > MAX_INTEGER >>> 7) this.fail(`${what} does not fit 32 bits`);
      value = value * 128 + (b & 0x7f);
      if (b < 0x80) break;
    }
    if (value > MAX_INTEGER) this.fail(`${what} does not fit 32 bits`);
    return value;
  }

  skip(n: number, what: string): void {
    while (n > 0) n -= this.piece(n, what).length;
  }

  #fill(what: string): void {
    const offset = this.position;
    const n = Math.min(this.#capacity, this.#end - offset);
    if (n <= 0) this.fail(`${this.#short} ${what}`);
    this.#buffer = new Uint8Array(this.#reader.read(n, offset));
    if (this.#buffer.length !== n) throw new OtaError("bad-argument", `the patch reader returned ${this.#buffer.length} bytes for ${n} at offset ${offset}`);
    this.#base = offset;
    this.#at = 0;
  }
}
