/**
 * A streaming VCDIFF (RFC 3284) decoder for the device: it applies a patch made by xdelta3
 * (`xs-ota delta make`) to the running image and hands the new image out in order, a chunk at a
 * time, for the image writer. The patch, the source and the target already written are all read
 * through ByteReaders (flash on the device), so memory stays a few small buffers whatever the
 * window and image sizes: the output chunk, a 4 KB cursor over the window's data section, 1 KB
 * ones over its instructions and addresses, the code table and the address cache.
 *
 * Supported: the default code table, VCD_SOURCE and VCD_TARGET windows and windows with no
 * source segment, xdelta3's application header (skipped) and its Adler-32 window checksum
 * (skipped: checking it would take a JavaScript loop over every target byte, and the image's
 * SHA-256 and signature are checked after applying anyway). Refused with "patch-invalid":
 * secondary compression, custom code tables, compressed sections, and anything inconsistent;
 * with "patch-source": a source segment past the source, which means another running image.
 *
 * Resuming: `checkpoint` is the last window boundary whose target bytes have all gone to
 * `write`; a new applier given it as `resume` (and a `target` reader that returns those bytes)
 * continues from there. Windows are what an encoder makes them: xdelta3's default is 8 MB of
 * target per window, `-W 65536` (xs-ota delta make --window) makes checkpoints every 64 KB.
 */
import { OtaError } from "../errors.ts";
import { AddressCache, ADD, COPY, NOOP, RUN, defaultCodeTable, type CodeTable } from "./code-table.ts";
import { Cursor, type ByteReader } from "./cursor.ts";

export type { ByteReader } from "./cursor.ts";

/** A window boundary: where the next window starts in the patch, and how much target precedes it. */
export interface DeltaCheckpoint {
  patchOffset: number;
  targetOffset: number;
}

export interface ApplyOptions {
  /** The patch, random access (it sits in flash on the device). */
  patch: ByteReader;
  patchSize: number;
  /** The running image, read-only. */
  source: ByteReader;
  sourceSize: number;
  /** Reads back target bytes already passed to `write` (COPY from earlier in the target). */
  target: ByteReader;
  /**
   * Receives the target bytes strictly in order, at most `chunk` bytes a call. The view is the
   * applier's own buffer, valid only during the call: copy it to keep it.
   */
  write(bytes: Uint8Array): void;
  /** The size the target must have (the job's file size): a window that would pass it is refused before any of its bytes are written. */
  targetSize?: number;
  /** Continue at a window boundary that `checkpoint` reported earlier. */
  resume?: DeltaCheckpoint;
  /** Output buffer in bytes (default 4096). */
  chunk?: number;
}

const MAGIC: readonly number[] = Object.freeze([0xd6, 0xc3, 0xc4]);
const VCD_DECOMPRESS = 0x01;
const VCD_CODETABLE = 0x02;
/** xdelta3's extension: an application header (file names) after the header indicator. */
const VCD_APPHEADER = 0x04;
const VCD_SOURCE = 0x01;
const VCD_TARGET = 0x02;
/** xdelta3's extension: a 4-byte Adler-32 of the target window after the addresses length. */
const VCD_ADLER32 = 0x04;
const COMPRESSORS: Readonly<Record<number, string>> = Object.freeze({ 1: "djw", 2: "lzma", 16: "fgk" });

const HEADER_BUFFER = 64;
const DATA_BUFFER = 4096;
const SECTION_BUFFER = 1024;
const MAX_CHUNK = 1 << 20;

const isSize = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
const hex2 = (n: number) => `0x${(n < 16 ? "0" : "") + n.toString(16)}`;

/** The instruction being carried out; a step can end in the middle of one. */
interface Current {
  type: number;
  /** Target bytes still to produce. */
  left: number;
  /** RUN: the byte. COPY: the address (in the window's source segment + target space) of the next source byte. */
  value: number;
  /** COPY inside the target window: target offset of the first byte copied, and where the first copy went. */
  from: number;
  to: number;
}

export class VcdiffApplier {
  readonly #o: ApplyOptions;
  readonly #table: CodeTable = defaultCodeTable();
  readonly #cache = new AddressCache();
  readonly #header: Cursor;
  readonly #data: Cursor;
  readonly #inst: Cursor;
  readonly #addr: Cursor;
  readonly #out: Uint8Array;
  /** Target offset of #out[0]: everything before it has been passed to write(). */
  #outStart: number;
  #outLength = 0;
  #patchOffset: number;
  #checkpoint: DeltaCheckpoint;
  #done = false;
  #failure: unknown = undefined;
  /** Offset where the first window starts (the file header's length). */
  readonly #windowsStart: number;

  // The window being decoded.
  #inWindow = false;
  #windowLabel = "";
  #windowEnd = 0;
  #isTargetSegment = false;
  #segmentLength = 0;
  #segmentPosition = 0;
  #windowTarget = 0;
  #windowLength = 0;
  /** Opcode whose second instruction is still to run, or -1. */
  #second = -1;
  readonly #current: Current = { type: NOOP, left: 0, value: 0, from: 0, to: 0 };

  constructor(o: ApplyOptions) {
    if (!isSize(o.patchSize) || !isSize(o.sourceSize)) throw new OtaError("bad-argument", `patch and source sizes must be non-negative integers, got ${o.patchSize} and ${o.sourceSize}`);
    if (o.targetSize !== undefined && !isSize(o.targetSize)) throw new OtaError("bad-argument", `target size must be a non-negative integer, got ${o.targetSize}`);
    const chunk = o.chunk ?? 4096;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > MAX_CHUNK) throw new OtaError("bad-argument", `chunk must be 1 to ${MAX_CHUNK} bytes, got ${chunk}`);
    this.#o = o;
    this.#out = new Uint8Array(chunk);
    this.#header = new Cursor(o.patch, HEADER_BUFFER);
    this.#data = new Cursor(o.patch, DATA_BUFFER);
    this.#inst = new Cursor(o.patch, SECTION_BUFFER);
    this.#addr = new Cursor(o.patch, SECTION_BUFFER);
    this.#windowsStart = this.#readFileHeader();
    const at = o.resume ?? { patchOffset: this.#windowsStart, targetOffset: 0 };
    if (!isSize(at.patchOffset) || at.patchOffset < this.#windowsStart || at.patchOffset > o.patchSize || !isSize(at.targetOffset) || (o.targetSize !== undefined && at.targetOffset > o.targetSize)) {
      throw new OtaError("bad-argument", `resume point ${at.patchOffset}/${at.targetOffset} is outside the patch (windows from ${this.#windowsStart} to ${o.patchSize}) or the target`);
    }
    this.#patchOffset = at.patchOffset;
    this.#outStart = at.targetOffset;
    this.#checkpoint = { patchOffset: at.patchOffset, targetOffset: at.targetOffset };
  }

  /** The last window boundary whose output has all been passed to write(). */
  get checkpoint(): DeltaCheckpoint {
    return { patchOffset: this.#checkpoint.patchOffset, targetOffset: this.#checkpoint.targetOffset };
  }

  /** Target bytes passed to write() so far. */
  get targetOffset(): number {
    return this.#outStart;
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Produces up to `maxOutput` target bytes (fewer at the end); true once the whole patch is
   * applied and written. After a refusal every further call throws the same error.
   */
  step(maxOutput: number): boolean {
    if (!Number.isInteger(maxOutput) || maxOutput < 1) throw new OtaError("bad-argument", `step needs a positive number of bytes, got ${maxOutput}`);
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#done) return true;
    try {
      return this.#run(maxOutput);
    } catch (e) {
      this.#failure = e;
      throw e;
    }
  }

  #run(budget: number): boolean {
    const c = this.#current;
    // Only making bytes spends the budget: headers, opcodes and a window's close go on after it
    // is spent, so the step that makes the last byte also writes it and reports the end.
    for (;;) {
      if (c.left > 0) {
        if (budget === 0) return false;
        budget -= this.#produce(budget);
      } else if (!this.#inWindow) {
        if (this.#patchOffset === this.#o.patchSize) return this.#finish();
        this.#openWindow();
      } else if (this.#second >= 0) {
        const op = this.#second;
        this.#second = -1;
        this.#begin(this.#table.type2[op], this.#table.size2[op], this.#table.mode2[op]);
      } else if (this.#inst.remaining > 0) {
        const op = this.#inst.byte("an opcode");
        this.#second = this.#table.type2[op] === NOOP ? -1 : op;
        this.#begin(this.#table.type1[op], this.#table.size1[op], this.#table.mode1[op]);
      } else this.#closeWindow();
    }
  }

  #readFileHeader(): number {
    const h = this.#header;
    h.reset(0, this.#o.patchSize, "the patch header", "the patch is truncated in");
    for (let i = 0; i < 3; i++) {
      if (h.byte("the magic") !== MAGIC[i]) h.fail("not a VCDIFF patch (the magic is not d6 c3 c4)");
    }
    const version = h.byte("the version");
    if (version !== 0) h.fail(`VCDIFF version ${version}; only RFC 3284's version 0 is supported`);
    const indicator = h.byte("the header indicator");
    if (indicator & ~(VCD_DECOMPRESS | VCD_CODETABLE | VCD_APPHEADER)) h.fail(`header indicator ${hex2(indicator)} has bits RFC 3284 does not define`);
    if (indicator & VCD_DECOMPRESS) {
      const id = h.byte("the secondary compressor id");
      h.fail(`secondary compression (VCD_DECOMPRESS, compressor ${id}${COMPRESSORS[id] ? ` ${COMPRESSORS[id]}` : ""}) is not supported: make the patch with xdelta3 -S none`);
    }
    if (indicator & VCD_CODETABLE) h.fail("a custom code table (VCD_CODETABLE) is not supported: only the default code table");
    if (indicator & VCD_APPHEADER) {
      const length = h.integer("the application header's length");
      if (length > h.remaining) h.fail(`the patch is truncated in the application header of ${length} bytes`);
      h.skip(length, "the application header");
    }
    return h.position;
  }

  #openWindow(): void {
    const start = this.#patchOffset;
    const label = `window at patch offset ${start}`;
    const h = this.#header;
    const after = start > this.#windowsStart ? " (trailing bytes after the last window, or a damaged patch)" : "";
    h.reset(start, this.#o.patchSize, label + after, "the patch is truncated in");
    const indicator = h.byte("the window indicator");
    if (indicator & ~(VCD_SOURCE | VCD_TARGET | VCD_ADLER32)) h.fail(`window indicator ${hex2(indicator)} has bits RFC 3284 does not define`);
    if ((indicator & (VCD_SOURCE | VCD_TARGET)) === (VCD_SOURCE | VCD_TARGET)) h.fail("the window indicator sets both VCD_SOURCE and VCD_TARGET");
    let segmentLength = 0;
    let segmentPosition = 0;
    if (indicator & (VCD_SOURCE | VCD_TARGET)) {
      segmentLength = h.integer("the source segment length");
      segmentPosition = h.integer("the source segment position");
    }
    const deltaLength = h.integer("the delta encoding length");
    const deltaStart = h.position;
    if (deltaLength > this.#o.patchSize - deltaStart) {
      h.fail(`the patch is truncated: the delta encoding of ${deltaLength} bytes from offset ${deltaStart} runs past its ${this.#o.patchSize} bytes`);
    }
    const targetLength = h.integer("the target window length");
    const deltaIndicator = h.byte("the delta indicator");
    if (deltaIndicator !== 0) h.fail(`delta indicator ${hex2(deltaIndicator)}: compressed sections (VCD_DATACOMP, VCD_INSTCOMP, VCD_ADDRCOMP) are not supported`);
    const dataLength = h.integer("the data section length");
    const instLength = h.integer("the instructions section length");
    const addrLength = h.integer("the addresses section length");
    if (indicator & VCD_ADLER32) h.skip(4, "the Adler-32 checksum");
    const sections = h.position;
    const end = deltaStart + deltaLength;
    if (sections + dataLength + instLength + addrLength !== end) {
      h.fail(`the delta encoding length ${deltaLength} does not match its parts (${sections - deltaStart + dataLength + instLength + addrLength})`);
    }

    // Only now is it a window: what it reads and writes must fit what exists.
    const fail = (code: "patch-invalid" | "patch-source", reason: string): never => {
      throw new OtaError(code, `${label}: ${reason}`);
    };
    const windowTarget = this.#outStart;
    if (segmentLength + targetLength > 0xffffffff) fail("patch-invalid", "its source segment and target window together exceed 32 bits");
    if (indicator & VCD_SOURCE && segmentPosition + segmentLength > this.#o.sourceSize) {
      fail("patch-source", `its source segment [${segmentPosition}, ${segmentPosition + segmentLength}) runs past the source of ${this.#o.sourceSize} bytes: the patch was made from another image`);
    }
    if (indicator & VCD_TARGET && segmentPosition + segmentLength > windowTarget) {
      fail("patch-invalid", `its VCD_TARGET segment [${segmentPosition}, ${segmentPosition + segmentLength}) runs past the ${windowTarget} target bytes decoded before it`);
    }
    const targetSize = this.#o.targetSize;
    if (targetSize !== undefined && windowTarget + targetLength > targetSize) {
      fail("patch-invalid", `its ${targetLength} target bytes from offset ${windowTarget} run past the target size of ${targetSize}`);
    }
    this.#data.reset(sections, sections + dataLength, `${label}: data section`, "it ends inside");
    this.#inst.reset(sections + dataLength, sections + dataLength + instLength, `${label}: instructions section`, "it ends inside");
    this.#addr.reset(sections + dataLength + instLength, end, `${label}: addresses section`, "it ends inside");
    this.#cache.reset();
    this.#inWindow = true;
    this.#windowLabel = label;
    this.#windowEnd = end;
    this.#isTargetSegment = (indicator & VCD_TARGET) !== 0;
    this.#segmentLength = segmentLength;
    this.#segmentPosition = segmentPosition;
    this.#windowTarget = windowTarget;
    this.#windowLength = targetLength;
    this.#second = -1;
  }

  /** Target bytes of the current window produced so far. */
  #produced(): number {
    return this.#outStart + this.#outLength - this.#windowTarget;
  }

  /** Sets up one instruction (size 0 in the table: the size follows in the instructions section). */
  #begin(type: number, tableSize: number, mode: number): void {
    if (type === NOOP) return;
    const size = tableSize !== 0 ? tableSize : this.#inst.integer("an instruction's size");
    const produced = this.#produced();
    if (size > this.#windowLength - produced) {
      throw new OtaError("patch-invalid", `${this.#windowLabel}: an instruction of ${size} bytes at target byte ${produced} runs past the window's ${this.#windowLength} bytes`);
    }
    const c = this.#current;
    c.type = type;
    c.left = size;
    if (type === RUN) c.value = this.#data.byte("a RUN's byte");
    else if (type === COPY) {
      const segment = this.#segmentLength;
      const addr = this.#cache.decode(mode, segment + produced, this.#addr);
      // open-vcdiff decodes such a COPY as two; xdelta3 refuses it, as RFC 3284 section 3 says.
      if (addr < segment && addr + size > segment) {
        throw new OtaError("patch-invalid", `${this.#windowLabel}: a COPY of ${size} bytes from address ${addr} runs past the source segment's ${segment} bytes into the target window`);
      }
      c.value = addr;
      c.from = this.#windowTarget + addr - segment;
      c.to = this.#windowTarget + produced;
    }
  }

  /** Carries the current instruction on by up to `budget` bytes; returns how many it produced. */
  #produce(budget: number): number {
    if (this.#outLength === this.#out.length) this.#flush();
    const c = this.#current;
    const out = this.#out;
    let n = Math.min(c.left, budget, out.length - this.#outLength);
    if (c.type === ADD) {
      const piece = this.#data.piece(n, "an ADD's bytes");
      out.set(piece, this.#outLength);
      n = piece.length;
    } else if (c.type === RUN) {
      out.fill(c.value, this.#outLength, this.#outLength + n);
    } else if (c.value < this.#segmentLength) {
      // From the source segment: the running image, or for VCD_TARGET earlier target bytes.
      const at = this.#segmentPosition + c.value;
      n = this.#isTargetSegment ? this.#fromTarget(at, n) : this.#place(this.#o.source.read(n, at), n, "source");
      c.value += n;
    } else {
      // From this window's target. When the copy runs into the bytes it makes, they repeat with
      // period p = to - from: copying from `from + (done % p)` keeps the phase, and each piece
      // can be as long as everything made since then, so the pieces double instead of one per byte.
      const here = this.#outStart + this.#outLength;
      const src = c.from + ((here - c.to) % (c.to - c.from));
      n = this.#fromTarget(src, Math.min(n, here - src));
    }
    this.#outLength += n;
    c.left -= n;
    return n;
  }

  /** Copies up to `n` target bytes that are already made from target offset `src`; returns how many. */
  #fromTarget(src: number, n: number): number {
    if (src >= this.#outStart) {
      const i = src - this.#outStart;
      this.#out.copyWithin(this.#outLength, i, i + n);
      return n;
    }
    const m = Math.min(n, this.#outStart - src);
    return this.#place(this.#o.target.read(m, src), m, "target");
  }

  #place(bytes: ArrayBuffer, n: number, what: string): number {
    if (bytes.byteLength !== n) throw new OtaError("bad-argument", `the ${what} reader returned ${bytes.byteLength} bytes for ${n}`);
    this.#out.set(new Uint8Array(bytes), this.#outLength);
    return n;
  }

  #flush(): void {
    if (this.#outLength === 0) return;
    this.#o.write(this.#out.subarray(0, this.#outLength));
    this.#outStart += this.#outLength;
    this.#outLength = 0;
  }

  #closeWindow(): void {
    const label = this.#windowLabel;
    const produced = this.#produced();
    if (produced !== this.#windowLength) throw new OtaError("patch-invalid", `${label}: its instructions make ${produced} bytes, the window declares ${this.#windowLength}`);
    if (this.#data.remaining > 0) throw new OtaError("patch-invalid", `${label}: ${this.#data.remaining} bytes of its data section are left unused`);
    if (this.#addr.remaining > 0) throw new OtaError("patch-invalid", `${label}: ${this.#addr.remaining} bytes of its addresses section are left unused`);
    this.#flush();
    this.#inWindow = false;
    this.#patchOffset = this.#windowEnd;
    this.#checkpoint = { patchOffset: this.#patchOffset, targetOffset: this.#outStart };
  }

  #finish(): boolean {
    const size = this.#o.targetSize;
    if (size !== undefined && this.#outStart !== size) {
      throw new OtaError("patch-invalid", `the patch makes ${this.#outStart} target bytes, the target must have ${size}`);
    }
    this.#done = true;
    return true;
  }
}
