/**
 * The VCDIFF decoder (modules/delta) against Debian's xdelta3 3.0.11: its contract suite on Node
 * and XS, round trips through xdelta3's encoder for random and realistic images (bundles where
 * one function changed), one and many windows, with and without xdelta3's Adler-32, compared
 * with `xdelta3 -d`; and a property: edited patches end in OtaError or in bytes, never in
 * another exception, a read outside the source or the written target, or a write past the size.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build, type Plugin } from "esbuild";
import { contract } from "./contract/vitest.ts";
import vcdiffSuite from "./contract/vcdiff.contract.ts";
import { Sink, XDELTA_PATCH_ADLER_HEX, XDELTA_PATCH_HEX, checkedReader, fromHex, vcdiff, xdeltaNew, xdeltaOld, type PatchSpec } from "./contract/vcdiff-fixture.ts";
import { pattern } from "./contract/pattern.ts";
import { VcdiffApplier, type DeltaCheckpoint } from "../modules/delta/vcdiff.ts";
import { isOtaError } from "../modules/errors.ts";
import { XDELTA3_FLAGS, xdelta3Args } from "../cloud/delta.ts";
import { applyEdits, edits } from "./fuzz/support.ts";

contract(vcdiffSuite, new URL("./contract/vcdiff.contract.ts", import.meta.url));

const dir = mkdtempSync(join(tmpdir(), "xs-ota-vcdiff-"));
let serial = 0;
const temp = (bytes: Uint8Array) => {
  const path = join(dir, `f${serial++}`);
  writeFileSync(path, bytes);
  return path;
};

/** xdelta3 with `delta make`'s flags (and -W when given); `adler` drops -n, so windows carry VCD_ADLER32. */
function encode(old: Uint8Array, neu: Uint8Array, window?: number, adler = false): Uint8Array {
  const out = join(dir, `p${serial++}`);
  const args = xdelta3Args(temp(old), temp(neu), out, window).filter((a) => !(adler && a === "-n"));
  execFileSync("xdelta3", args);
  return new Uint8Array(readFileSync(out));
}

function xdeltaDecode(old: Uint8Array, patch: Uint8Array): Uint8Array {
  const out = join(dir, `d${serial++}`);
  execFileSync("xdelta3", ["-d", "-f", "-s", temp(old), temp(patch), out]);
  return new Uint8Array(readFileSync(out));
}

/** Windows in a patch, as xdelta3 printhdrs counts them. */
function windowCount(patch: Uint8Array): number {
  return execFileSync("xdelta3", ["printhdrs", temp(patch)], { encoding: "utf8" }).split("\n").filter((l) => l.startsWith("VCDIFF window number")).length;
}

interface Decoded {
  output: Uint8Array;
  checkpoints: DeltaCheckpoint[];
}

function decode(patch: Uint8Array, old: Uint8Array, o: { chunk?: number; step?: number; targetSize?: number; resume?: DeltaCheckpoint; sink?: Sink; stopAt?: number } = {}): Decoded & { applier: VcdiffApplier } {
  const sink = o.sink ?? new Sink();
  const applier = new VcdiffApplier({
    patch: checkedReader(patch, "patch"),
    patchSize: patch.length,
    source: checkedReader(old, "source"),
    sourceSize: old.length,
    target: sink.reader,
    write: sink.write,
    ...(o.chunk ? { chunk: o.chunk } : {}),
    ...(o.targetSize !== undefined ? { targetSize: o.targetSize } : {}),
    ...(o.resume ? { resume: o.resume } : {}),
  });
  const checkpoints = [applier.checkpoint];
  for (;;) {
    const done = applier.step(o.step ?? 1 << 20);
    const cp = applier.checkpoint;
    if (cp.patchOffset !== checkpoints[checkpoints.length - 1].patchOffset) checkpoints.push(cp);
    if (done || (o.stopAt !== undefined && applier.targetOffset >= o.stopAt)) break;
  }
  return { output: sink.output, checkpoints, applier };
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** Two bundles of the xs-ota CLI (about 500 KB) that differ in one function of cli/otadata.ts. */
async function bundles(minify: boolean): Promise<[Uint8Array, Uint8Array]> {
  const edit: Plugin = {
    name: "edit-one-function",
    setup(b) {
      b.onLoad({ filter: /cli[\\/]otadata\.ts$/ }, (args) => {
        const text = readFileSync(args.path, "utf8");
        const changed = text.replace("return `${where}: blank`;", "if (slots > 16) return `${where}: blank, and more slots than ESP-IDF has`;\n  return `${where}: blank`;");
        if (changed === text) throw new Error("the edit found nothing to change in cli/otadata.ts");
        return { contents: changed, loader: "ts" };
      });
    },
  };
  const one = async (plugins: Plugin[]) => {
    const r = await build({ entryPoints: [new URL("../cli/main.ts", import.meta.url).pathname], bundle: true, write: false, format: "esm", platform: "node", packages: "external", minify, plugins, logLevel: "silent" });
    return r.outputFiles[0].contents;
  };
  return [await one([]), await one([edit])];
}

/** A firmware-like change: a few constants patched, a block inserted, the tail shifted. */
function edited(old: Uint8Array): Uint8Array {
  const neu = Buffer.concat([old.subarray(0, 200000), randomBytes(3000), old.subarray(200000, 700000), new Uint8Array(5000), old.subarray(690000)]);
  for (const at of [17, 4096, 65537, 300001, 512345]) neu[at] ^= 0x5a;
  return new Uint8Array(neu);
}

describe("against xdelta3 3.0.11", () => {
  it("the committed fixtures: xdelta3 -d makes xdeltaNew() from them, and xdelta3 -e still writes them byte for byte", () => {
    expect(same(xdeltaDecode(xdeltaOld(), fromHex(XDELTA_PATCH_HEX)), xdeltaNew())).toBe(true);
    expect(same(xdeltaDecode(xdeltaOld(), fromHex(XDELTA_PATCH_ADLER_HEX)), xdeltaNew())).toBe(true);
    expect(Buffer.from(encode(xdeltaOld(), xdeltaNew(), 16384)).toString("hex")).toBe(XDELTA_PATCH_HEX);
    expect(Buffer.from(encode(xdeltaOld(), xdeltaNew(), 16384, true)).toString("hex")).toBe(XDELTA_PATCH_ADLER_HEX);
    expect(XDELTA3_FLAGS).toEqual(["-e", "-9", "-S", "none", "-A", "-D", "-n", "-f"]);
  });

  it("hand-encoded patches (the contract suite's encoder) decode the same with xdelta3 -d", () => {
    // xdelta3 does not implement VCD_TARGET windows (XD3_UNIMPLEMENTED): those are left out.
    const source = pattern(20000, 5);
    const specs: PatchSpec[] = [
      { windows: [{ source: [0, 20000], insts: [{ run: 0xaa, size: 9000 }, { add: pattern(5000, 2) }, { copy: 100, size: 5000 }, { copy: 25000, size: 3000 }] }] },
      {
        windows: [
          {
            source: [1000, 2000],
            pairs: true,
            insts: [{ add: [7] }, { copy: 10, size: 4 }, { add: [8, 9] }, { copy: 500, size: 6 }, { copy: 1990, size: 5, mode: 1 }, { copy: 30, size: 4, mode: 2 }, { add: [1, 2, 3, 4] }, { copy: 520, size: 4, mode: 3 },
              { add: [5] }, { copy: 2000, size: 30, mode: 4 }, { copy: 600, size: 4, mode: 5 }, { add: [6] }, { copy: 10, size: 4, mode: 6 }, { copy: 520, size: 4, mode: 8 }, { copy: 2000, size: 4, mode: 7 }, { add: [9] }],
          },
          { insts: [{ add: [1, 2, 3] }, { copy: 0, size: 40000 }] },
          { source: [0, 5], insts: [{ copy: 0, size: 5 }] },
        ],
      },
    ];
    for (const spec of specs) {
      const patch = vcdiff(spec);
      expect(same(decode(patch, source).output, xdeltaDecode(source, patch))).toBe(true);
    }
  });

  const inputs: [string, () => Promise<[Uint8Array, Uint8Array]>][] = [
    ["random 300 KB with an insertion, a deletion and a moved block", async () => {
      const old = new Uint8Array(randomBytes(300000));
      return [old, new Uint8Array(Buffer.concat([old.subarray(0, 100000), Buffer.from("a new line\n"), old.subarray(100500, 250000), old.subarray(20000, 40000), old.subarray(250000)]))];
    }],
    ["random 1 MB, firmware-like edits", async () => {
      const old = new Uint8Array(randomBytes(1 << 20));
      return [old, edited(old)];
    }],
    ["the CLI bundle (500 KB), one function changed", () => bundles(false)],
    ["the CLI bundle minified, one function changed", () => bundles(true)],
    ["unrelated 200 KB (all ADD)", async () => [new Uint8Array(randomBytes(200000)), new Uint8Array(randomBytes(200000))]],
  ];

  it.each(inputs)("%s: equals NEW and xdelta3 -d, for 1 and many windows, with and without Adler-32", async (_name, make) => {
    const [old, neu] = await make();
    for (const window of [undefined, 65536, 16384]) {
      for (const adler of [false, true]) {
        const patch = encode(old, neu, window, adler);
        expect(patch[4], "no header extras").toBe(0);
        expect(patch[5] & 0x04, "VCD_ADLER32 as asked").toBe(adler ? 4 : 0);
        const r = decode(patch, old, { targetSize: neu.length, step: 4096 });
        expect(same(r.output, neu), `window ${window}, adler ${adler}`).toBe(true);
        expect(same(xdeltaDecode(old, patch), neu)).toBe(true);
        expect(r.checkpoints.length - 1, "a checkpoint per window").toBe(windowCount(patch));
        if (window) expect(windowCount(patch)).toBe(Math.ceil(neu.length / window));
      }
    }
    // Small buffers and steps, and a resume from a checkpoint in the middle.
    const patch = encode(old, neu, 16384);
    expect(same(decode(patch, old, { chunk: 1000, step: 777 }).output, neu)).toBe(true);
    const first = decode(patch, old, { step: 10000, stopAt: neu.length >> 1 });
    const cp = first.applier.checkpoint;
    expect(cp.targetOffset).toBeGreaterThan(neu.length / 4);
    const sink = new Sink();
    sink.write(first.output.subarray(0, cp.targetOffset));
    expect(same(decode(patch, old, { resume: cp, sink, targetSize: neu.length }).output, neu)).toBe(true);
    const tiny = encode(old, neu.subarray(0, 1));
    expect(same(decode(tiny, old, { targetSize: 1 }).output, neu.subarray(0, 1))).toBe(true);
  }, 60_000);
});

describe("edited patches", () => {
  it("never throw anything but OtaError, read outside the source or the written target, or write past the target size", () => {
    const old = pattern(60000, 3);
    const neu = new Uint8Array(Buffer.concat([old.subarray(0, 20000), Buffer.from("abcabcabcabcabcabcabcabcabc"), new Uint8Array(700), old.subarray(25000, 60000), old.subarray(1000, 3000)]));
    const pool: [Uint8Array, Uint8Array, number][] = [
      [encode(old, neu, 16384), old, neu.length],
      [encode(old, neu, 16384, true), old, neu.length],
      [encode(old, neu), old, neu.length],
      [fromHex(XDELTA_PATCH_HEX), xdeltaOld(), xdeltaNew().length],
      [vcdiff({ windows: [{ insts: [{ add: [1, 2, 3] }, { copy: 0, size: 3000 }] }, { target: [100, 2000], insts: [{ copy: 0, size: 2000 }, { run: 7, size: 10 }] }] }), old, 5013],
    ];
    fc.assert(
      fc.property(fc.integer({ min: 0, max: pool.length - 1 }), edits(4), fc.integer({ min: 1, max: 5000 }), (i, list, chunk) => {
        const [base, source, targetSize] = pool[i];
        const patch = applyEdits(base, list);
        const sink = new Sink();
        try {
          const a = new VcdiffApplier({
            patch: checkedReader(patch, "patch"),
            patchSize: patch.length,
            source: checkedReader(source, "source"),
            sourceSize: source.length,
            target: sink.reader,
            write: (b) => {
              if (b.length > chunk) throw new Error(`write of ${b.length} bytes, chunk ${chunk}`);
              sink.write(b);
              if (sink.length > targetSize) throw new Error(`wrote ${sink.length} bytes, target size ${targetSize}`);
            },
            targetSize,
            chunk,
          });
          while (!a.step(4096));
          expect(sink.length).toBe(targetSize);
        } catch (e) {
          if (!isOtaError(e) || (e.code !== "patch-invalid" && e.code !== "patch-source")) throw e;
          expect(sink.length).toBeLessThanOrEqual(targetSize);
        }
      }),
      { seed: 20261203, numRuns: 1500 },
    );
  });
});
