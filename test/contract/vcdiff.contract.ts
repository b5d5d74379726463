/**
 * The VCDIFF decoder's contract (modules/delta/vcdiff.ts): patches made by xdelta3 and
 * hand-encoded ones for each instruction, address mode and window kind, resume from a
 * checkpoint, bounded reads and writes, and every refusal with its code. Portable: runs on
 * Node and XS (test/vcdiff.test.ts runs xdelta3 itself on Node).
 */
import { suite } from "./harness.ts";
import { AssertionError, bytesEqual, equal, ok, throwsCode } from "./assert.ts";
import { VcdiffApplier, type ApplyOptions, type DeltaCheckpoint } from "../../modules/delta/vcdiff.ts";
import type { OtaErrorCode } from "../../modules/errors.ts";
import { pattern } from "./pattern.ts";
import {
  Sink,
  XDELTA_PATCH_ADLER_HEX,
  XDELTA_PATCH_HEX,
  ascii,
  checkedReader,
  concat,
  fromHex,
  integer,
  vcdiff,
  xdeltaNew,
  xdeltaOld,
  type Inst,
  type PatchSpec,
} from "./vcdiff-fixture.ts";

interface Run {
  output: Uint8Array;
  sink: Sink;
  applier: VcdiffApplier;
  patchReads: number[];
  sourceReads: number[];
  checkpoints: DeltaCheckpoint[];
  steps: number;
}

type Extra = Partial<Pick<ApplyOptions, "chunk" | "targetSize" | "resume">> & { step?: number; sink?: Sink; stopAfter?: number };

/** Applies `patch` to `source` through checked readers, stepping `step` bytes at a time. */
function apply(patch: Uint8Array, source: Uint8Array, extra: Extra = {}): Run {
  const sink = extra.sink ?? new Sink();
  const patchReads: number[] = [];
  const sourceReads: number[] = [];
  const chunk = extra.chunk ?? 4096;
  const applier = new VcdiffApplier({
    patch: checkedReader(patch, "patch", undefined, patchReads),
    patchSize: patch.length,
    source: checkedReader(source, "source", undefined, sourceReads),
    sourceSize: source.length,
    target: sink.reader,
    write: (b) => {
      if (b.length > chunk || b.length === 0) throw new AssertionError(`write of ${b.length} bytes, chunk is ${chunk}`);
      sink.write(b);
    },
    ...(extra.chunk !== undefined ? { chunk: extra.chunk } : {}),
    ...(extra.targetSize !== undefined ? { targetSize: extra.targetSize } : {}),
    ...(extra.resume !== undefined ? { resume: extra.resume } : {}),
  });
  const checkpoints: DeltaCheckpoint[] = [];
  let steps = 0;
  for (;;) {
    const before = applier.targetOffset + 0;
    const done = applier.step(extra.step ?? 1 << 20);
    steps++;
    const cp = applier.checkpoint;
    if (checkpoints.length === 0 || checkpoints[checkpoints.length - 1].patchOffset !== cp.patchOffset) checkpoints.push(cp);
    ok(cp.targetOffset <= applier.targetOffset, "checkpoint ahead of what was written");
    ok(applier.targetOffset - before <= (extra.step ?? 1 << 20) + chunk, "a step wrote far more than it was given");
    if (done) break;
    if (extra.stopAfter !== undefined && steps >= extra.stopAfter) break;
    if (steps > 1e6) throw new AssertionError("no end");
  }
  return { output: sink.output, sink, applier, patchReads, sourceReads, checkpoints, steps };
}

/** Runs `spec` (or bytes) and expects a refusal with `code` whose message mentions `text`. */
function refused(patch: PatchSpec | Uint8Array, source: Uint8Array, code: OtaErrorCode, text: string, extra: Extra = {}): void {
  const bytes = patch instanceof Uint8Array ? patch : vcdiff(patch);
  throwsCode(() => apply(bytes, source, extra), code, text);
}

/** What `insts` make over a source segment `seg` and the target so far (the naive way: a byte at a time). */
function naive(seg: Uint8Array, target: number[], insts: readonly Inst[]): number[] {
  const start = target.length;
  for (const i of insts) {
    if ("add" in i) for (const b of i.add) target.push(b);
    else if ("run" in i) for (let k = 0; k < i.size; k++) target.push(i.run);
    else for (let k = 0; k < i.size; k++) {
      const a = i.copy + k;
      target.push(a < seg.length ? seg[a] : target[start + a - seg.length]);
    }
  }
  return target;
}

/** Math.max(...list) puts the list on XS's stack. */
function largest(list: readonly number[]): number {
  let m = 0;
  for (const n of list) if (n > m) m = n;
  return m;
}

const SOURCE = pattern(20000, 5);
const none = new Uint8Array(0);

export default suite("vcdiff", (test) => {
  test("applies xdelta3's patch (3 windows, ADD, RUN, COPY from source and target) and its Adler-32 variant", () => {
    for (const hex of [XDELTA_PATCH_HEX, XDELTA_PATCH_ADLER_HEX]) {
      const patch = fromHex(hex);
      const r = apply(patch, xdeltaOld(), { targetSize: xdeltaNew().length, step: 1000 });
      bytesEqual(r.output, xdeltaNew(), "target");
      ok(r.applier.done, "done");
      equal(r.checkpoints.map((c) => c.targetOffset).join(","), "0,16384,32768,40300", "the start, then a checkpoint at each window's end");
      equal(r.checkpoints[r.checkpoints.length - 1].patchOffset, patch.length, "last checkpoint at the patch's end");
    }
  });

  test("the output does not depend on the chunk or step size; writes are at most a chunk, patch reads at most 4 KB", () => {
    const patch = fromHex(XDELTA_PATCH_HEX);
    for (const [chunk, step] of [[1, 1000], [7, 3], [100, 1], [4096, 5000], [65536, 1 << 20], [333, 777]]) {
      const r = apply(patch, xdeltaOld(), { chunk, step });
      bytesEqual(r.output, xdeltaNew(), `chunk ${chunk}, step ${step}`);
      ok(largest(r.sink.writes) <= chunk, "write larger than a chunk");
      ok(largest(r.patchReads) <= 4096, "patch read over 4 KB");
      ok(largest(r.sourceReads) <= chunk, "source read larger than a chunk");
    }
  });

  test("a step produces at most the bytes it is given and returns true only at the end", () => {
    const patch = fromHex(XDELTA_PATCH_HEX);
    const sink = new Sink();
    const a = new VcdiffApplier({ patch: checkedReader(patch, "patch"), patchSize: patch.length, source: checkedReader(xdeltaOld(), "source"), sourceSize: 40000, target: sink.reader, write: sink.write, chunk: 1000 });
    let steps = 0;
    while (!a.step(5000)) {
      steps++;
      ok(a.targetOffset <= steps * 5000, `after ${steps} steps ${a.targetOffset} bytes written`);
    }
    ok(steps >= 8, `${steps} steps for 40300 bytes`);
    equal(a.step(1), true, "true again after the end");
    bytesEqual(sink.output, xdeltaNew());
  });

  test("RUN, ADD (small and larger than the buffers) and COPY from the source", () => {
    const big = pattern(10000, 9);
    const insts: Inst[] = [{ run: 0xaa, size: 9000 }, { add: [1, 2, 3] }, { add: big }, { copy: 100, size: 5000 }, { copy: 19990, size: 10 }, { add: ascii("x") }];
    const r = apply(vcdiff({ windows: [{ source: [0, 20000], insts }] }), SOURCE, { chunk: 4096 });
    bytesEqual(r.output, Uint8Array.from(naive(SOURCE, [], insts)));
    equal(r.output.length, 24014, "length");
  });

  test("overlapping COPY from the target (periods 1, 3, 1000) repeats the pattern, in few reads", () => {
    for (const [period, size] of [[1, 100000], [3, 50001], [1000, 70000]]) {
      const seed = pattern(period, period);
      const insts: Inst[] = [{ add: seed }, { copy: 0, size }];
      let targetReads = 0;
      const sink = new Sink();
      const read = sink.reader.read;
      sink.reader.read = (l, o) => {
        targetReads++;
        return read(l, o);
      };
      const r = apply(vcdiff({ windows: [{ insts }] }), none, { sink, chunk: 4096 });
      bytesEqual(r.output, Uint8Array.from(naive(none, [], insts)), `period ${period}`);
      ok(targetReads <= Math.ceil((period + size) / 4096) + 2, `${targetReads} target reads for ${size} bytes`);
    }
  });

  test("all nine address modes, single and paired opcodes", () => {
    const seg = SOURCE.subarray(1000, 3000);
    const insts: Inst[] = [
      { add: [7] },
      { copy: 10, size: 4, mode: 0 }, // self
      { add: [8, 9] },
      { copy: 500, size: 6, mode: 0 },
      { copy: 1990, size: 5, mode: 1 }, // here
      { copy: 30, size: 4, mode: 2 }, // near 0 (10) + 20
      { add: [1, 2, 3, 4] },
      { copy: 520, size: 4, mode: 3 }, // near 1 (500) + 20
      { add: [5] },
      { copy: 2000, size: 30, mode: 4 }, // near 2 (1990) + 10: the target's first bytes
      { copy: 600, size: 4, mode: 5 }, // near 3 (30) + 570
      { add: [6] },
      { copy: 10, size: 4, mode: 6 }, // same block 0 (addr % 768 below 256)
      { copy: 30, size: 7, mode: 6 },
      { copy: 520, size: 4, mode: 8 }, // same block 2 (520)
      { copy: 2000, size: 5, mode: 0 },
      { copy: 2000, size: 4, mode: 7 }, // same block 1 (2000 % 768 = 464)
      { add: [9] },
      { copy: 1990, size: 10, mode: 7 }, // same block 1 (454)
    ];
    for (const pairs of [false, true]) {
      const r = apply(vcdiff({ windows: [{ source: [1000, 2000], insts, pairs }] }), SOURCE);
      bytesEqual(r.output, Uint8Array.from(naive(seg, [], insts)), pairs ? "paired" : "single");
    }
  });

  test("a COPY that starts in the source segment and runs into the target window is refused (RFC 3284 section 3, as xdelta3 does)", () => {
    const insts: Inst[] = [{ add: [1, 2, 3, 4, 5] }, { copy: 95, size: 40 }];
    refused({ windows: [{ source: [0, 100], insts }] }, SOURCE, "patch-invalid", "a COPY of 40 bytes from address 95 runs past the source segment's 100 bytes");
    // Up to the segment's end is fine, and so is a COPY that starts right after it.
    const fine: Inst[] = [{ add: [1, 2, 3, 4, 5] }, { copy: 95, size: 5 }, { copy: 100, size: 30 }];
    bytesEqual(apply(vcdiff({ windows: [{ source: [0, 100], insts: fine }] }), SOURCE).output, Uint8Array.from(naive(SOURCE.subarray(0, 100), [], fine)));
  });

  test("several windows: VCD_SOURCE, none, VCD_TARGET; checkpoints at each boundary", () => {
    const w1: Inst[] = [{ copy: 0, size: 3000 }, { add: ascii("hello") }];
    const w2: Inst[] = [{ add: ascii("ab") }, { copy: 0, size: 5000 }];
    const w3: Inst[] = [{ copy: 2990, size: 15 }, { copy: 10, size: 4000 }, { run: 0, size: 7 }];
    const spec: PatchSpec = { windows: [{ source: [500, 3000], insts: w1 }, { insts: w2 }, { target: [1000, 5000], insts: w3 }] };
    const patch = vcdiff(spec);
    const expected = naive(SOURCE.subarray(500, 3500), [], w1);
    naive(none, expected, w2);
    const before = expected.slice(1000, 6000);
    naive(Uint8Array.from(before), expected, w3);
    for (const chunk of [4096, 1000, 1]) {
      const r = apply(patch, SOURCE, { chunk, targetSize: expected.length, step: 500 });
      bytesEqual(r.output, Uint8Array.from(expected), `chunk ${chunk}`);
      equal(r.checkpoints.map((c) => c.targetOffset).join(","), `0,3005,8007,${expected.length}`, "target offsets at the start and the window ends");
    }
  });

  test("resume: half applied, a new applier from the checkpoint and the same target makes the same bytes", () => {
    const w: Inst[] = [{ add: ascii("0123456789") }, { copy: 0, size: 6000 }];
    const hand = vcdiff({ windows: [{ source: [0, 9000], insts: [{ copy: 0, size: 9000 }] }, { insts: w }, { target: [3000, 9000], insts: [{ copy: 0, size: 9000 }] }, { insts: w }] });
    const cases: [Uint8Array, Uint8Array][] = [[fromHex(XDELTA_PATCH_HEX), xdeltaOld()], [fromHex(XDELTA_PATCH_ADLER_HEX), xdeltaOld()], [hand, SOURCE]];
    for (const [patch, source] of cases) {
      const whole = apply(patch, source).output;
      for (const stopAfter of [1, 3, 5, 8]) {
        const first = apply(patch, source, { step: 3000, chunk: 1024, stopAfter });
        const cp = first.applier.checkpoint;
        ok(cp.targetOffset <= first.sink.length, "checkpoint beyond what was written");
        // Power lost after the checkpoint: what was written after it is gone or garbage.
        const sink = new Sink();
        sink.write(first.sink.output.subarray(0, cp.targetOffset));
        const second = apply(patch, source, { resume: cp, sink, step: 2000, targetSize: whole.length });
        bytesEqual(second.output, whole, `resumed at ${cp.patchOffset}/${cp.targetOffset} after ${stopAfter} steps`);
      }
    }
  });

  test("an application header (xdelta3 without -A) is skipped; an empty target and a header alone make no bytes", () => {
    const insts: Inst[] = [{ add: [1, 2, 3] }];
    const r = apply(vcdiff({ indicator: 0x04, headerBytes: [5, ...ascii("a//b/")], windows: [{ insts }] }), none);
    bytesEqual(r.output, Uint8Array.of(1, 2, 3));
    // What xdelta3 makes for an empty new file: one window of 0 bytes.
    const empty = apply(fromHex("d6c3c4000000050000000000"), SOURCE, { targetSize: 0 });
    equal(empty.output.length, 0, "empty");
    ok(empty.applier.done, "done");
    equal(apply(vcdiff({ windows: [] }), none).output.length, 0, "header only");
  });

  test("refuses what is not RFC 3284 version 0 or uses what the decoder lacks, in the constructor", () => {
    const w = { windows: [{ insts: [{ add: [1] }] }] };
    refused(Uint8Array.of(0xd6, 0xc3, 0xc5, 0, 0), none, "patch-invalid", "not a VCDIFF patch");
    refused(ascii("PK\u0003\u0004 a zip file"), none, "patch-invalid", "not a VCDIFF patch");
    refused({ ...w, version: 1 }, none, "patch-invalid", "version 1");
    refused(Uint8Array.of(0xd6, 0xc3), none, "patch-invalid", "truncated");
    refused(new Uint8Array(0), none, "patch-invalid", "truncated");
    refused({ ...w, indicator: 0x01, headerBytes: [2] }, none, "patch-invalid", "secondary compression (VCD_DECOMPRESS, compressor 2 lzma)");
    refused({ ...w, indicator: 0x02, headerBytes: [3, 0, 0, 0] }, none, "patch-invalid", "custom code table (VCD_CODETABLE)");
    refused({ ...w, indicator: 0x08 }, none, "patch-invalid", "header indicator 0x08");
    refused({ ...w, indicator: 0x04, headerBytes: [100, 1, 2] }, none, "patch-invalid", "application header");
  });

  test("refuses windows that are malformed: indicators, compressed sections, lengths, overflow", () => {
    const insts: Inst[] = [{ add: [1, 2] }];
    refused({ windows: [{ insts, indicator: 0x03 }] }, SOURCE, "patch-invalid", "both VCD_SOURCE and VCD_TARGET");
    refused({ windows: [{ insts, indicator: 0x10 }] }, SOURCE, "patch-invalid", "window indicator 0x10");
    for (const d of [1, 2, 4]) refused({ windows: [{ insts, deltaIndicator: d }] }, none, "patch-invalid", "compressed sections");
    refused({ windows: [{ insts, deltaLengthError: 1 }] }, none, "patch-invalid", "truncated");
    refused({ windows: [{ insts, deltaLengthError: -1 }] }, none, "patch-invalid", "does not match its parts");
    const second = vcdiff({ windows: [{ insts }] }).length;
    refused(vcdiff({ windows: [{ insts }, { insts, deltaLengthError: -1 }] }), none, "patch-invalid", `window at patch offset ${second}`);
    // A target length of 2^32 (5 bytes of integer) and one with a sixth byte.
    const overflow = concat([0xd6, 0xc3, 0xc4, 0, 0, 0], integer(12), [0x90, 0x80, 0x80, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0]);
    refused(overflow, none, "patch-invalid", "target window length does not fit 32 bits");
    refused(concat([0xd6, 0xc3, 0xc4, 0, 0, 0], [0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), none, "patch-invalid", "delta encoding length does not fit 32 bits");
  });

  test("refuses segments outside the source (patch-source) or the decoded target, and COPY addresses outside the window", () => {
    refused({ windows: [{ source: [19000, 1001], insts: [{ copy: 0, size: 4 }] }] }, SOURCE, "patch-source", "made from another image");
    refused({ windows: [{ source: [0, 20000], insts: [{ copy: 0, size: 4 }] }] }, SOURCE.subarray(0, 19999), "patch-source", "source of 19999 bytes");
    const first: Inst[] = [{ add: [1, 2, 3, 4, 5, 6, 7, 8] }];
    refused({ windows: [{ insts: first }, { target: [4, 5], insts: [{ copy: 0, size: 4 }] }] }, none, "patch-invalid", "VCD_TARGET segment [4, 9)");
    refused({ windows: [{ target: [0, 1], insts: [{ copy: 0, size: 4 }] }] }, none, "patch-invalid", "VCD_TARGET segment");
    refused({ windows: [{ source: [0, 100], insts: [{ copy: 100, size: 4 }] }] }, SOURCE, "patch-invalid", "only 100 bytes");
    refused({ windows: [{ insts: [{ add: [1, 2] }, { copy: 2, size: 4 }] }] }, none, "patch-invalid", "COPY from address 2");
    refused({ windows: [{ insts: [{ copy: 0, size: 4 }] }] }, none, "patch-invalid", "only 0 bytes");
    // VCD_HERE with a distance beyond the start.
    const here = vcdiff({ windows: [{ source: [0, 10], insts: [{ copy: 0, size: 4, mode: 1 }], rawInstructions: [19 + 16 + 1] }] });
    here[here.length - 1] = 11;
    refused(here, SOURCE, "patch-invalid", "before the source segment");
    refused({ windows: [{ source: [0, 100], insts: [{ copy: 0x7fffffff, size: 4 }] }] }, SOURCE, "patch-invalid", "addressable");
  });

  test("refuses instructions that make more or fewer bytes than the window, and sections that run out or are left over", () => {
    const insts: Inst[] = [{ add: [1, 2, 3] }, { run: 9, size: 10 }];
    refused({ windows: [{ insts, targetLength: 12 }] }, none, "patch-invalid", "an instruction of 10 bytes at target byte 3 runs past the window's 12 bytes");
    refused({ windows: [{ insts, targetLength: 14 }] }, none, "patch-invalid", "make 13 bytes, the window declares 14");
    refused({ windows: [{ insts, extraData: [0] }] }, none, "patch-invalid", "1 bytes of its data section are left unused");
    refused({ windows: [{ insts: [{ copy: 0, size: 4 }], source: [0, 8], extraAddresses: [1, 2] }] }, SOURCE, "patch-invalid", "2 bytes of its addresses section are left unused");
    refused({ windows: [{ insts: [{ add: [1, 2] }], rawInstructions: [1 + 5], targetLength: 5 }] }, none, "patch-invalid", "data section: it ends inside an ADD's bytes");
    refused({ windows: [{ insts: [{ add: [1, 2] }], rawInstructions: [1] }] }, none, "patch-invalid", "instructions section: it ends inside an instruction's size");
    refused({ windows: [{ insts: [], rawInstructions: [0, 3], targetLength: 3 }] }, none, "patch-invalid", "data section: it ends inside a RUN's byte");
    refused({ windows: [{ source: [0, 8], insts: [{ add: [1] }], rawInstructions: [19 + 1], targetLength: 4 }] }, SOURCE, "patch-invalid", "addresses section: it ends inside a COPY address");
    refused({ windows: [{ insts: [{ add: [1] }], rawInstructions: [1, 0xff, 0xff, 0xff, 0xff, 0x7f] }] }, none, "patch-invalid", "instruction's size does not fit 32 bits");
  });

  test("refuses trailing garbage and every truncation of a patch", () => {
    const patch = fromHex(XDELTA_PATCH_HEX);
    const size = xdeltaNew().length;
    refused(concat(patch, [0xff]), xdeltaOld(), "patch-invalid", "trailing bytes after the last window");
    refused(concat(patch, [0x00]), xdeltaOld(), "patch-invalid", "trailing bytes after the last window");
    refused(concat(patch, [0x01, 0x02]), xdeltaOld(), "patch-invalid", "truncated");
    // Cut anywhere, the patch is refused; cut at a window boundary, it is short of the target size.
    for (let n = 0; n < patch.length; n++) {
      throwsCode(() => apply(patch.subarray(0, n), xdeltaOld(), { targetSize: size }), "patch-invalid");
    }
  });

  test("with targetSize, a window past it is refused before any of its bytes are written", () => {
    const insts: Inst[] = [{ add: pattern(5000, 1) }];
    const patch = vcdiff({ windows: [{ insts }, { insts }] });
    const sink = new Sink();
    throwsCode(() => apply(patch, none, { targetSize: 9999, sink }), "patch-invalid", "run past the target size of 9999");
    equal(sink.length, 5000, "only the first window written");
    refused(patch, none, "patch-invalid", "the patch makes 10000 target bytes, the target must have 10001", { targetSize: 10001 });
  });

  test("bad arguments: chunk, step, resume point; a refusal sticks", () => {
    const patch = vcdiff({ windows: [{ insts: [{ add: [1, 2] }] }] });
    const base = { patch: checkedReader(patch, "patch"), patchSize: patch.length, source: checkedReader(none, "source"), sourceSize: 0, target: new Sink().reader, write: () => {} };
    for (const chunk of [0, -1, 1.5, 2 ** 21]) throwsCode(() => new VcdiffApplier({ ...base, chunk }), "bad-argument", "chunk");
    throwsCode(() => new VcdiffApplier({ ...base, patchSize: -1 }), "bad-argument");
    throwsCode(() => new VcdiffApplier({ ...base, resume: { patchOffset: 2, targetOffset: 0 } }), "bad-argument", "resume point");
    throwsCode(() => new VcdiffApplier({ ...base, resume: { patchOffset: patch.length + 1, targetOffset: 0 } }), "bad-argument", "resume point");
    throwsCode(() => new VcdiffApplier({ ...base, targetSize: 1, resume: { patchOffset: 5, targetOffset: 2 } }), "bad-argument", "resume point");
    const a = new VcdiffApplier(base);
    for (const n of [0, -5, 0.5, Number.NaN]) throwsCode(() => a.step(n), "bad-argument", "step");
    const bad = vcdiff({ windows: [{ insts: [{ add: [1, 2] }], targetLength: 1 }] });
    const b = new VcdiffApplier({ ...base, patch: checkedReader(bad, "patch"), patchSize: bad.length });
    throwsCode(() => b.step(10), "patch-invalid", "runs past");
    throwsCode(() => b.step(10), "patch-invalid", "runs past");
  });
});
