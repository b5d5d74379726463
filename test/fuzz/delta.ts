/**
 * Fuzz target for the device's VCDIFF decoder (modules/delta/vcdiff.ts): patches made by
 * xdelta3 (the committed fixtures) and hand-encoded ones with every window kind, edited by the
 * byte mutators, plus raw bytes behind a valid header. Whatever the patch, the decoder refuses
 * with patch-invalid or patch-source, or makes exactly the target size; it never reads outside
 * the patch, the source or the target written so far, and never writes a byte past the size.
 * Unedited, each base patch makes its known target.
 */
import fc from "fast-check";
import { VcdiffApplier } from "../../modules/delta/vcdiff.ts";
import { Sink, XDELTA_PATCH_ADLER_HEX, XDELTA_PATCH_HEX, checkedReader, concat, fromHex, vcdiff, xdeltaNew, xdeltaOld } from "../contract/vcdiff-fixture.ts";
import { pattern } from "../contract/pattern.ts";
import { applyEdits, bytesEq, edits, ensure, refusesWith, target, type FuzzTarget } from "./support.ts";

const SOURCE = pattern(20000, 5);
const HAND = vcdiff({
  windows: [
    { source: [1000, 9000], pairs: true, insts: [{ add: [1, 2] }, { copy: 10, size: 5 }, { run: 0, size: 300 }, { copy: 8000, size: 4, mode: 1 }, { copy: 9100, size: 700 }, { add: [3] }, { copy: 20, size: 4, mode: 2 }] },
    { insts: [{ add: [9, 8, 7] }, { copy: 0, size: 5000 }] },
    { target: [100, 4000], adler: true, insts: [{ copy: 0, size: 4000 }, { copy: 4000, size: 1000 }] },
  ],
});

/** What the hand-made patch makes, worked out by hand from its instructions. */
function handTarget(): Uint8Array {
  const seg = SOURCE.subarray(1000, 10000);
  const t: number[] = [1, 2, ...seg.subarray(10, 15), ...new Array<number>(300).fill(0), ...seg.subarray(8000, 8004)];
  for (let k = 0; k < 700; k++) t.push(t[100 + k]);
  t.push(3, ...seg.subarray(20, 24));
  const w2 = [9, 8, 7];
  for (let k = 0; k < 5000; k++) w2.push(w2[k]);
  t.push(...w2);
  const w3 = t.slice(100, 4100);
  for (let k = 0; k < 1000; k++) w3.push(w3[k]);
  t.push(...w3);
  return Uint8Array.from(t);
}

const bases: { patch: Uint8Array; source: Uint8Array; expected: Uint8Array }[] = [
  { patch: fromHex(XDELTA_PATCH_HEX), source: xdeltaOld(), expected: xdeltaNew() },
  { patch: fromHex(XDELTA_PATCH_ADLER_HEX), source: xdeltaOld(), expected: xdeltaNew() },
  { patch: HAND, source: SOURCE, expected: handTarget() },
];

/** Applies `patch` through checked readers; a write past `targetSize` breaks the property at once. */
function run(patch: Uint8Array, source: Uint8Array, targetSize: number, chunk: number): Uint8Array {
  const sink = new Sink();
  const a = new VcdiffApplier({
    patch: checkedReader(patch, "patch"),
    patchSize: patch.length,
    source: checkedReader(source, "source"),
    sourceSize: source.length,
    target: sink.reader,
    write: (b) => {
      ensure(b.length > 0 && b.length <= chunk, `a write of ${b.length} bytes with a ${chunk}-byte chunk`);
      sink.write(b);
      ensure(sink.length <= targetSize, `${sink.length} bytes written, the target size is ${targetSize}`);
    },
    targetSize,
    chunk,
  });
  let steps = 0;
  while (!a.step(8192)) ensure(++steps < 100000, "no end after 100000 steps");
  ensure(sink.length === targetSize, `done after ${sink.length} of ${targetSize} bytes`);
  return sink.output;
}

export const vcdiffPatch = target(
  "vcdiff",
  fc.tuple(
    fc.integer({ min: 0, max: bases.length - 1 }),
    fc.oneof(edits(5), fc.constant([])),
    fc.uint8Array({ maxLength: 64 }),
    fc.boolean(),
    fc.integer({ min: 1, max: 6000 }),
  ),
  ([i, list, raw, useRaw, chunk]) => {
    const base = bases[i];
    const size = base.expected.length;
    const patch = useRaw ? concat(base.patch.subarray(0, 5), raw) : applyEdits(base.patch, list);
    const out = refusesWith(() => run(patch, base.source, size, chunk), ["patch-invalid", "patch-source"]);
    if (!useRaw && list.length === 0) ensure(out !== undefined && bytesEq(out, base.expected), "an unedited patch did not make its target");
  },
);

export const deltaTargets: FuzzTarget[] = [vcdiffPatch];
