/**
 * Applying a patch into the update slot (modules/transfer/patch.ts) on a NOR model, and the delta
 * cycle under power cuts (hosts/sim/power-cut.ts with `patch`). The patches are made by the
 * fixture's encoder, one 4 KB window at a time (a COPY of the source where the bytes match, an
 * ADD where they do not), so every window ends on a block. Portable: runs on Node and XS.
 */
import { suite } from "./harness.ts";
import { bytesEqual, equal, ok, throwsCode } from "./assert.ts";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { MemoryStateStore } from "../../hosts/sim/state-store.ts";
import { HeaderGate } from "../../modules/transfer/header-gate.ts";
import { DELTA_KEY, PatchApply, isPatchSource, loadCheckpoint, patchArea, type ApplyPatchOptions } from "../../modules/transfer/patch.ts";
import { toHex } from "../../modules/codec/bytes.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";
import { packImage } from "../../modules/esp-idf/image.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { powerCutSweep } from "../../hosts/sim/power-cut.ts";
import { MINI_FLASH, MINI_TABLE, sha256 } from "./boot-fixture.ts";
import { vcdiff, type WindowSpec } from "./vcdiff-fixture.ts";
import { pattern } from "./pattern.ts";

const BL = 4096;

/** 1.0.0 and 1.0.1 of an app: the same bytes but for one changed stretch (and the header and digest). */
function images(size = 20_000): { old: Uint8Array; new: Uint8Array } {
  const a = pattern(size, 7);
  const b = a.slice();
  b.set(pattern(700, 9), size >> 1);
  return { old: packImage({ version: "1.0.0", payload: a, sha256 }), new: packImage({ version: "1.0.1", payload: b, sha256 }) };
}

/** A patch of 4 KB windows: COPY from the same place in the source where it is equal, else ADD. */
function naivePatch(from: Uint8Array, to: Uint8Array): Uint8Array {
  const windows: WindowSpec[] = [];
  for (let at = 0; at < to.length; at += BL) {
    const part = to.subarray(at, Math.min(to.length, at + BL));
    const same = at + part.length <= from.length && part.every((v, i) => v === from[at + i]);
    windows.push(same ? { source: [at, part.length], insts: [{ copy: 0, size: part.length }] } : { insts: [{ add: part }] });
  }
  return vcdiff({ windows });
}

function setup() {
  const { old, new: next } = images();
  const patch = naivePatch(old, next);
  const source = new NorFlash({ size: 0x10000 });
  source.eraseBlock(0, 16);
  source.write(old, 0);
  const slot = new NorFlash({ size: 0x10000, data: new Uint8Array(0x10000).fill(0x5a) });
  const area = patchArea(slot, next.length, patch.length);
  if (!area) throw new Error("no room for the patch");
  area.eraseBlock(0, area.status().blocks);
  area.write(patch, 0);
  const store = new MemoryStateStore();
  const options = (digest = sha256()): ApplyPatchOptions => ({
    patch: area,
    patchSize: patch.length,
    source,
    sourceSize: old.length,
    slot,
    size: next.length,
    store,
    digests: [digest],
    gate: (written) => new HeaderGate(espIdfFormat, next.length, (p) => espIdfFormat.parsePrefix(p), written, (n) => new Uint8Array(slot.read(n, 0))),
    erase: {},
  });
  return { old, next, patch, source, slot, area, store, options };
}

export default suite("applying a patch into the update slot", (test) => {
  test("rebuilds the image byte for byte; the running slot is only read; the digest is the image's", () => {
    const s = setup();
    const before = new Uint8Array(s.source.read(0x10000, 0));
    const digest = sha256();
    const work = new PatchApply(s.options(digest));
    let steps = 0;
    while (!work.step()) steps++;
    bytesEqual(new Uint8Array(s.slot.read(s.next.length, 0)), s.next, "the image");
    bytesEqual(new Uint8Array(s.source.read(0x10000, 0)), before, "the running slot");
    equal(toHex(digest.finish()), sha256Of(s.next), "sha256");
    ok(steps >= 1, "more than one step for 24 KB");
  });

  test("a restart goes on from the last checkpoint (a block boundary) and ends with the same image", () => {
    const s = setup();
    const first = new PatchApply(s.options());
    first.step(); // 16 KB: four windows, checkpoints on their blocks
    const c = loadCheckpoint(s.store, s.next.length, s.patch.length, BL);
    ok(c !== undefined && c.targetOffset > 0 && c.targetOffset % BL === 0, `a checkpoint on a block: ${JSON.stringify(c)}`);
    // Power off: what the first run still held is gone; the next boot starts from the record.
    const digest = sha256();
    const again = new PatchApply({ ...s.options(digest), resume: c });
    while (!again.step());
    bytesEqual(new Uint8Array(s.slot.read(s.next.length, 0)), s.next, "the image");
    equal(toHex(digest.finish()), sha256Of(s.next), "the digest, rebuilt from flash");
  });

  test("the source check reads the running slot: another image, or a shorter slot, is not the patch's source", () => {
    const s = setup();
    const offer = { sourceSize: s.old.length, sourceSha256: sha256Of(s.old), size: s.patch.length, sha256: sha256Of(s.patch) };
    ok(isPatchSource(s.source, offer, nobleDigests), "the running image");
    ok(!isPatchSource(s.source, { ...offer, sourceSha256: sha256Of(s.next) }, nobleDigests), "another image");
    ok(!isPatchSource(s.source, { ...offer, sourceSize: 0x20000 }, nobleDigests), "longer than the slot");
  });

  test("no room for image and patch in the slot: no patch area", () => {
    const slot = new NorFlash({ size: 0x10000 });
    equal(patchArea(slot, 0xe000, 0x1000)?.status().size, 0x1000, "one block left for the patch");
  });

  test("a checkpoint record that is not one of this job's shapes is ignored", () => {
    const store = new MemoryStateStore();
    store.set(DELTA_KEY, new Uint8Array([0, 0, 0, 10, 0, 0, 0x10, 1]));
    equal(loadCheckpoint(store, 0x10000, 100, BL), undefined, "not on a block");
    store.set(DELTA_KEY, new Uint8Array([0, 0, 1, 0, 0, 0, 0x10, 0]));
    equal(loadCheckpoint(store, 0x10000, 100, BL), undefined, "past the patch");
    store.set(DELTA_KEY, new Uint8Array(3));
    equal(loadCheckpoint(store, 0x10000, 100, BL), undefined, "short");
  });

  test("a patch whose header the image format refuses fails before any byte of the image is written", () => {
    const s = setup();
    const refuse = () => {
      throw new Error("refused");
    };
    const work = new PatchApply({ ...s.options(), gate: (w) => new HeaderGate(espIdfFormat, s.next.length, refuse, w) });
    let threw = false;
    try {
      work.step();
    } catch {
      threw = true;
    }
    ok(threw, "the header check stops it");
    ok(new Uint8Array(s.slot.read(0x1000, 0)).every((b) => b === 0x5a || b === 0xff), "nothing of the image written");
    throwsCode(() => new PatchApply({ ...s.options(), patchSize: 3 }), "patch-invalid");
  });

  test("power cut at every flash operation of a delta cycle: never unbootable, and every cut while writing or applying finishes after the reboot", () => {
    const { old, new: next } = images(9000);
    const r = powerCutSweep({ table: MINI_TABLE, flashSize: MINI_FLASH, oldImage: old, newImage: next, chunk: 1460, sha256, patch: naivePatch(old, next) });
    equal(r.unbootable, 0, "unbootable");
    equal(r.revertedAfterConfirm, 0, "reverted after confirm");
    ok(r.byPhase.write.points > 10, "cuts while writing and applying");
    equal(r.finishedAfterCut, r.byPhase.write.old, "each of those finished after the reboot");
  });
});

function sha256Of(bytes: Uint8Array): string {
  const d = sha256();
  d.update(bytes);
  return toHex(d.finish());
}
