/**
 * Hand-made VCDIFF for the decoder's contract: a small encoder that writes exactly the
 * instructions, opcodes, address modes and headers a case asks for (including wrong ones), and
 * readers that check every read the decoder makes. Portable: runs on Node and XS.
 */
import type { ByteReader } from "../../modules/delta/vcdiff.ts";
import { AssertionError } from "./assert.ts";

export type Inst =
  | { add: Uint8Array | readonly number[] }
  | { run: number; size: number }
  /** `addr` in the window's address space (source segment, then target window); `mode` 0-8 (default 0, VCD_SELF). */
  | { copy: number; size: number; mode?: number };

export interface WindowSpec {
  /** VCD_SOURCE segment [position, position + length) of the source. */
  source?: readonly [number, number];
  /** VCD_TARGET segment of the target decoded so far. */
  target?: readonly [number, number];
  insts: readonly Inst[];
  /** Use the default table's ADD+COPY and COPY+ADD opcodes where they fit. */
  pairs?: boolean;
  /** xdelta3's VCD_ADLER32: four (unchecked) checksum bytes after the section lengths. */
  adler?: boolean;
  // Overrides, to make a window wrong in one way.
  indicator?: number;
  targetLength?: number;
  deltaIndicator?: number;
  /** Added to the delta encoding length as written. */
  deltaLengthError?: number;
  extraData?: readonly number[];
  extraAddresses?: readonly number[];
  /** The instructions section as written, instead of the encoded one. */
  rawInstructions?: readonly number[];
}

export interface PatchSpec {
  /** Hdr_Indicator (default 0) and the bytes after it. */
  indicator?: number;
  headerBytes?: readonly number[];
  /** Version byte (default 0). */
  version?: number;
  windows: readonly WindowSpec[];
  trailing?: readonly number[];
}

export function integer(n: number): number[] {
  const out = [n & 0x7f];
  for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) out.unshift(0x80 | (v & 0x7f));
  return out;
}

export function ascii(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function concat(...parts: (Uint8Array | readonly number[])[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The same address cache as the decoder's, on the encoding side. */
function encodeAddress(addr: number, mode: number, here: number, near: number[], same: number[], state: { next: number }): number[] {
  let out: number[];
  if (mode === 0) out = integer(addr);
  else if (mode === 1) out = integer(here - addr);
  else if (mode < 6) {
    if (addr < near[mode - 2]) throw new AssertionError(`fixture: address ${addr} below near[${mode - 2}] = ${near[mode - 2]}`);
    out = integer(addr - near[mode - 2]);
  } else {
    const slot = (mode - 6) * 256;
    const i = same.indexOf(addr, slot);
    if (i < 0 || i >= slot + 256) throw new AssertionError(`fixture: address ${addr} is not in same cache ${mode - 6}`);
    out = [i - slot];
  }
  near[state.next] = addr;
  state.next = (state.next + 1) % 4;
  same[addr % 768] = addr;
  return out;
}

const sizeOf = (i: Inst) => ("add" in i ? i.add.length : i.size);

function encodeWindow(w: WindowSpec): number[] {
  const segment = w.source ?? w.target;
  const segLength = segment ? segment[1] : 0;
  const data: number[] = [];
  const inst: number[] = [];
  const addr: number[] = [];
  const near = [0, 0, 0, 0];
  const same = new Array<number>(768).fill(0);
  const state = { next: 0 };
  let produced = 0;
  const insts = w.insts;
  for (let k = 0; k < insts.length; k++) {
    const i = insts[k];
    const next = insts[k + 1];
    if ("add" in i) {
      for (let b = 0; b < i.add.length; b++) data.push(i.add[b]);
      const n = i.add.length;
      if (w.pairs && n >= 1 && n <= 4 && next && "copy" in next) {
        const mode = next.mode ?? 0;
        const fits = mode < 6 ? next.size >= 4 && next.size <= 6 : next.size === 4;
        if (fits) {
          inst.push(mode < 6 ? 163 + mode * 12 + (n - 1) * 3 + (next.size - 4) : 235 + (mode - 6) * 4 + (n - 1));
          produced += n;
          addr.push(...encodeAddress(next.copy, mode, segLength + produced, near, same, state));
          produced += next.size;
          k++;
          continue;
        }
      }
      if (n >= 1 && n <= 17) inst.push(1 + n);
      else inst.push(1, ...integer(n));
      produced += n;
    } else if ("run" in i) {
      data.push(i.run);
      inst.push(0, ...integer(i.size));
      produced += i.size;
    } else {
      const mode = i.mode ?? 0;
      addr.push(...encodeAddress(i.copy, mode, segLength + produced, near, same, state));
      if (w.pairs && i.size === 4 && next && "add" in next && next.add.length === 1) {
        inst.push(247 + mode);
        data.push(next.add[0]);
        produced += 5;
        k++;
        continue;
      }
      if (i.size >= 4 && i.size <= 18) inst.push(19 + mode * 16 + (i.size - 3));
      else inst.push(19 + mode * 16, ...integer(i.size));
      produced += i.size;
    }
  }
  if (w.extraData) data.push(...w.extraData);
  if (w.extraAddresses) addr.push(...w.extraAddresses);
  const instructions = w.rawInstructions ? [...w.rawInstructions] : inst;
  const targetLength = w.targetLength ?? insts.reduce((s, i) => s + sizeOf(i), 0);
  // Joined by loops: XS puts spread arguments on its stack, and a data section overflows it.
  const body = join(integer(targetLength), [w.deltaIndicator ?? 0], integer(data.length), integer(instructions.length), integer(addr.length), w.adler ? [0x12, 0x34, 0x56, 0x78] : [], data, instructions, addr);
  const indicator = w.indicator ?? (w.source ? 0x01 : w.target ? 0x02 : 0) | (w.adler ? 0x04 : 0);
  return join([indicator], segment ? join(integer(segment[1]), integer(segment[0])) : [], integer(body.length + (w.deltaLengthError ?? 0)), body);
}

function join(...parts: readonly (readonly number[])[]): number[] {
  const out: number[] = [];
  for (const p of parts) for (let i = 0; i < p.length; i++) out.push(p[i]);
  return out;
}

/** A VCDIFF file as `spec` says. */
export function vcdiff(spec: PatchSpec): Uint8Array {
  const parts = [[0xd6, 0xc3, 0xc4, spec.version ?? 0, spec.indicator ?? 0], spec.headerBytes ?? []];
  for (const w of spec.windows) parts.push(encodeWindow(w));
  parts.push(spec.trailing ?? []);
  return Uint8Array.from(join(...parts));
}

/** A reader over `bytes` that refuses (AssertionError, not OtaError) reads outside [0, limit()) and records read lengths. */
export function checkedReader(bytes: Uint8Array, what: string, limit: () => number = () => bytes.length, lengths?: number[]): ByteReader {
  return {
    read(length: number, offset: number): ArrayBuffer {
      if (!Number.isInteger(length) || !Number.isInteger(offset) || length < 0 || offset < 0 || offset + length > limit()) {
        throw new AssertionError(`${what}: read of ${length} bytes at ${offset} outside [0, ${limit()})`);
      }
      lengths?.push(length);
      return bytes.slice(offset, offset + length).buffer;
    },
  };
}

/** Where an applier writes: a growing byte array, which is also what its target reader reads back. */
export class Sink {
  bytes = new Uint8Array(1024);
  length = 0;
  writes: number[] = [];
  readonly reader: ByteReader;
  constructor() {
    this.reader = {
      read: (length: number, offset: number) => {
        if (!Number.isInteger(length) || length < 0 || offset < 0 || offset + length > this.length) {
          throw new AssertionError(`target: read of ${length} bytes at ${offset}, but only ${this.length} are written`);
        }
        return this.bytes.slice(offset, offset + length).buffer;
      },
    };
  }
  write = (b: Uint8Array): void => {
    if (this.length + b.length > this.bytes.length) {
      const bigger = new Uint8Array(Math.max(this.bytes.length * 2, this.length + b.length));
      bigger.set(this.bytes.subarray(0, this.length));
      this.bytes = bigger;
    }
    this.bytes.set(b, this.length);
    this.length += b.length;
    this.writes.push(b.length);
  };
  get output(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

/**
 * Made by xdelta3 3.0.11 (`xdelta3 -e -9 -S none -A -D -n -W 16384 -s OLD NEW`) from
 * xdeltaOld() and xdeltaNew(); test/vcdiff.test.ts checks that `xdelta3 -d` still makes
 * xdeltaNew() from it. Several windows, ADD, RUN, COPY from the source and from the target.
 */
export const XDELTA_PATCH_HEX =
  "d6c3c400000181804300338180000021080361206e65772066756e6374696f6e202829207b2072657475726e2034323b207d0a13c628012113b93700c70c0181985d8180432081800000040f0600616263139b5d00822c23ae7004233913b24b00cc79039b5d01ce10819c2017ba6c0007070374686520656e64239b45139f20089b4500";

/** Same inputs, without -n: every window carries xdelta3's Adler-32. */
export const XDELTA_PATCH_ADLER_HEX =
  "d6c3c400000581804300378180000021080337cd587561206e65772066756e6374696f6e202829207b2072657475726e2034323b207d0a13c628012113b93700c70c0581985d8180432481800000040f062b9ae0fa00616263139b5d00822c23ae7004233913b24b00cc79039b5d05ce10819c201bba6c00070703ce1d93b574686520656e64239b45139f20089b4500";

export function xdeltaOld(): Uint8Array {
  return letters(40000, 11);
}

export function xdeltaNew(): Uint8Array {
  const old = xdeltaOld();
  return concat(
    old.subarray(0, 9000),
    ascii("a new function () { return 42; }\n"),
    old.subarray(9100, 20000),
    new Uint8Array(300).fill(0),
    old.subarray(30000, 36000),
    ascii("abcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabcabc"),
    old.subarray(20000, 30000),
    old.subarray(20000, 24000),
    ascii("the end"),
  );
}

/** Bytes that compress like code (words over a small alphabet), deterministic. */
function letters(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[i] = 0x61 + (x % 26);
  }
  return out;
}

export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}
