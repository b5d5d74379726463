/** ESP-IDF otadata bit for bit, the bootloader's rules, and boot control through a whole update. */
import { suite } from "./harness.ts";
import { bytesEqual, deepEqual, equal, ok, throwsCode } from "./assert.ts";
import {
  OTA_STATES as S,
  blankEntry,
  bootOrder,
  decodeEntry,
  decodeOtadata,
  encodeEntry,
  encodeOtadata,
  makeEntry,
  nextSeq,
  planBoot,
  seqCrc,
  type OtaEntry,
} from "../../modules/esp-idf/otadata.ts";
import { MiniDevice, MINI_FLASH, MINI_TABLE, appImage, sha256 } from "./boot-fixture.ts";
import { powerCutSweep } from "../../hosts/sim/power-cut.ts";

const hexBytes = (s: string) => new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));
const badCrc = (seq: number, state: number): OtaEntry => ({ ...makeEntry(seq, state), crc: seqCrc(seq) ^ 1 });
const plan = (a: OtaEntry, b: OtaEntry, slots = 2, rollback = true) => {
  const p = planBoot([a, b], slots, rollback);
  return { start: p.start, initial: p.initial, writes: p.writes.map((w) => `${w.sector}:${w.entry.state}`), first: bootOrder(p.start, slots)[0] };
};

export default suite("otadata and boot control", (test) => {
  test("crc is crc32_le(0xFFFFFFFF, seq) over the 4 sequence bytes only", () => {
    equal(seqCrc(1), 0x4743989a, "seq 1");
    equal(seqCrc(2), 0x55f63774, "seq 2");
    equal(seqCrc(3), 0xed4a5011, "seq 3");
  });

  test("an entry is 32 bytes: seq, 20 bytes of 0xFF label, state, crc, little-endian", () => {
    bytesEqual(encodeEntry(makeEntry(1, S.VALID)), hexBytes("01000000" + "ff".repeat(20) + "02000000" + "9a984347"));
    bytesEqual(encodeEntry(makeEntry(2, S.NEW)), hexBytes("02000000" + "ff".repeat(20) + "00000000" + "7437f655"));
  });

  test("otadata image is 0x2000 bytes, entry 0 at 0x0 and entry 1 at 0x1000, the rest erased", () => {
    const img = encodeOtadata([makeEntry(1, S.VALID), makeEntry(2, S.PENDING_VERIFY)]);
    equal(img.length, 0x2000, "length");
    equal(img[0x1000], 2, "entry 1 seq");
    ok(img.subarray(32, 0x1000).every((b) => b === 0xff), "sector 0 after the entry erased");
    const [a, b] = decodeOtadata(img);
    deepEqual([a.seq, a.state, b.seq, b.state], [1, S.VALID, 2, S.PENDING_VERIFY]);
  });

  test("decode then encode keeps every byte, label included", () => {
    const raw = encodeEntry(makeEntry(7, 0x12345678));
    raw[5] = 0x00;
    bytesEqual(encodeEntry(decodeEntry(raw)), raw);
  });

  test("short otadata is refused as corrupt", () => {
    throwsCode(() => decodeOtadata(new Uint8Array(100)), "otadata-corrupt");
    throwsCode(() => decodeEntry(new Uint8Array(31)), "otadata-corrupt");
  });

  test("bootloader: both entries blank -> ota_0, and it initialises entry 0", () => {
    deepEqual(plan(blankEntry(), blankEntry()), { start: 0, initial: true, writes: [], first: 0 });
  });

  test("bootloader: highest valid seq wins; seq maps to slot (seq - 1) % slots", () => {
    equal(plan(makeEntry(1, S.VALID), makeEntry(2, S.VALID)).first, 1);
    equal(plan(makeEntry(3, S.VALID), makeEntry(2, S.VALID)).first, 0);
    equal(plan(makeEntry(4, S.VALID), blankEntry()).first, 1);
    equal(plan(makeEntry(5, S.VALID), blankEntry(), 3).first, 1);
    equal(plan(makeEntry(2, S.VALID), makeEntry(2, S.VALID)).start, 1, "tie: entry 0");
    // The bootloader's uint32 arithmetic: seq 0 with its crc selects (0 - 1) % 2 = 0xFFFFFFFF % 2.
    equal(plan(makeEntry(0, S.VALID), blankEntry()).start, 1, "seq 0 wraps");
    equal(plan(makeEntry(0, S.VALID), blankEntry(), 3).start, 0xffffffff % 3, "seq 0 wraps, three slots");
  });

  test("bootloader with rollback: NEW becomes PENDING_VERIFY and boots", () => {
    deepEqual(plan(makeEntry(1, S.VALID), makeEntry(2, S.NEW)), { start: 1, initial: false, writes: [`1:${S.PENDING_VERIFY}`], first: 1 });
  });

  test("bootloader with rollback: PENDING_VERIFY becomes ABORTED and the other slot boots", () => {
    deepEqual(plan(makeEntry(1, S.VALID), makeEntry(2, S.PENDING_VERIFY)), { start: 0, initial: false, writes: [`1:${S.ABORTED}`], first: 0 });
  });

  test("bootloader without rollback leaves states alone", () => {
    deepEqual(plan(makeEntry(1, S.VALID), makeEntry(2, S.PENDING_VERIFY), 2, false).writes, []);
    equal(plan(makeEntry(1, S.VALID), makeEntry(2, S.PENDING_VERIFY), 2, false).first, 1);
  });

  test("bootloader: a bad crc, INVALID or ABORTED entry is passed over", () => {
    equal(plan(makeEntry(1, S.VALID), badCrc(2, S.VALID)).first, 0, "bad crc");
    equal(plan(makeEntry(1, S.VALID), makeEntry(2, S.INVALID)).first, 0, "invalid");
    equal(plan(makeEntry(1, S.VALID), makeEntry(2, S.ABORTED)).first, 0, "aborted");
  });

  test("bootloader: a state that is no state at all still boots (ESP-IDF checks only INVALID and ABORTED)", () => {
    equal(plan(makeEntry(1, S.VALID), makeEntry(2, 0x12345678)).first, 1);
    equal(plan(makeEntry(1, S.VALID), makeEntry(2, S.UNDEFINED)).first, 1);
  });

  test("bootloader: only bad-crc entries -> no choice, tries slots from ota_0, no initialisation", () => {
    deepEqual(plan(badCrc(2, S.VALID), badCrc(9, S.NEW)), { start: -1, initial: false, writes: [], first: 0 });
  });

  test("bootloader: both unusable with bad crcs counts as blank and initialises", () => {
    equal(plan(badCrc(2, S.INVALID), blankEntry()).initial, true);
    equal(plan(makeEntry(2, S.INVALID), blankEntry()).initial, false, "a good crc is not initial contents");
  });

  test("boot order: down from the chosen slot, then up", () => {
    deepEqual(bootOrder(2, 4), [2, 1, 0, 3]);
    deepEqual(bootOrder(-1, 2), [0, 1]);
  });

  test("next sequence number: smallest above, selecting the slot", () => {
    equal(nextSeq(1, 1, 2), 2);
    equal(nextSeq(2, 1, 2), 4);
    equal(nextSeq(0, 0, 2), 1);
    equal(nextSeq(5, 2, 3), 6);
    throwsCode(() => nextSeq(0xfffffffe, 0, 2), "boot-state");
  });

  test("fresh device: boots ota_0, otadata entry 0 becomes {1, VALID}", () => {
    const d = MiniDevice.fresh();
    const [a, b] = decodeOtadata(d.otadata());
    deepEqual([a.seq, a.state, b.seq], [1, S.VALID, 0xffffffff]);
    deepEqual(d.boot.info(), { running: "ota_0", state: "valid", next: "ota_0", updateSlot: "ota_1", updateState: "none" });
  });

  for (const order of ["xs-ota", "esp-idf"] as const) {
    test(`${order} order: select, trial boot, confirm, and it stays`, () => {
      const d = MiniDevice.fresh({ strict: true, order });
      d.install("ota_1", appImage("1.0.1"));
      d.boot.select("ota_1");
      equal(d.boot.info().next, "ota_1", "selected");
      equal(d.restart(), "ota_1", "trial boot");
      equal(d.boot.info().state, "pending", "on trial");
      equal(d.boot.info().next, "ota_0", "an unconfirmed restart would roll back");
      d.boot.confirm();
      const { running, state, next, updateSlot } = d.boot.info();
      deepEqual({ running, state, next, updateSlot }, { running: "ota_1", state: "valid", next: "ota_1", updateSlot: "ota_0" });
      const before = d.otadata();
      equal(d.restart(), "ota_1", "boots the confirmed image");
      bytesEqual(d.otadata(), before, "steady state: the bootloader writes nothing");
    });
  }

  test("an unconfirmed trial image is rolled back at the next restart", () => {
    const d = MiniDevice.fresh();
    d.install("ota_1", appImage("1.0.1"));
    d.boot.select("ota_1");
    equal(d.restart(), "ota_1");
    equal(d.restart(), "ota_0", "rolled back");
    equal(decodeOtadata(d.otadata())[1].state, S.ABORTED, "trial entry aborted");
    equal(d.boot.info().updateState, "aborted", "what the agent reads: the trial ended without a verdict");
    equal(d.restart(), "ota_0", "and stays rolled back");
  });

  test("reject marks the trial image INVALID and the previous slot boots", () => {
    const d = MiniDevice.fresh();
    d.install("ota_1", appImage("1.0.1"));
    d.boot.select("ota_1");
    d.restart();
    d.boot.reject();
    equal(decodeOtadata(d.otadata())[1].state, S.INVALID);
    equal(d.restart(), "ota_0");
    deepEqual(d.boot.info(), { running: "ota_0", state: "valid", next: "ota_0", updateSlot: "ota_1", updateState: "invalid" });
  });

  test("reject of a confirmed image points otadata back at the previous slot", () => {
    const d = MiniDevice.fresh();
    d.install("ota_1", appImage("1.0.1"));
    d.boot.select("ota_1");
    d.restart();
    d.boot.confirm();
    d.boot.reject();
    equal(d.restart(), "ota_0");
  });

  test("two updates in a row alternate slots with rising sequence numbers", () => {
    const d = MiniDevice.fresh({ strict: true });
    for (const [slot, version] of [["ota_1", "1.0.1"], ["ota_0", "1.0.2"], ["ota_1", "1.0.3"]]) {
      d.install(slot, appImage(version));
      d.boot.select(slot);
      equal(d.restart(), slot);
      d.boot.confirm();
      equal(d.restart(), slot);
      equal(d.boot.info().state, "valid");
    }
    const [a, b] = decodeOtadata(d.otadata());
    ok(Math.max(a.seq, b.seq) >= 4, "sequence numbers grew");
  });

  test("confirming twice writes nothing the second time", () => {
    const d = MiniDevice.fresh();
    d.install("ota_1", appImage("1.0.1"));
    d.boot.select("ota_1");
    d.restart();
    d.boot.confirm();
    const ops = d.flash.operations;
    d.boot.confirm();
    equal(d.flash.operations, ops);
  });

  test("confirm on a slot started as a fallback leaves the active entry's sector alone", () => {
    const d = MiniDevice.fresh();
    // Entry 0 selects ota_1, which holds no image: the bootloader falls back to ota_0, and no
    // entry selects the running slot.
    d.putEntry(0, encodeEntry(makeEntry(2, S.VALID)));
    d.putEntry(1, new Uint8Array(32).fill(0xff));
    equal(d.restart(), "ota_0");
    d.boot.confirm();
    const [a, b] = decodeOtadata(d.otadata());
    deepEqual([a.seq, a.state], [2, S.VALID], "active entry untouched");
    deepEqual([b.seq, b.state], [3, S.VALID], "ota_0 confirmed in the other sector");
    equal(d.restart(), "ota_0");
  });

  test("select refuses the running slot and unknown names, and writes nothing", () => {
    const d = MiniDevice.fresh();
    const ops = d.flash.operations;
    throwsCode(() => d.boot.select("ota_0"), "boot-state", "running");
    throwsCode(() => d.boot.select("nvs"), "partition-unknown");
    equal(d.flash.operations, ops);
  });

  test("a selected slot without a valid image is skipped by the bootloader", () => {
    const d = MiniDevice.fresh();
    d.boot.select("ota_1");
    equal(d.restart(), "ota_0");
    ok(d.lastLog.some((l) => l.includes("ota_1 is not bootable")), "the log says why");
  });

  test("corrupt otadata: a higher entry with a bad crc is ignored", () => {
    const d = MiniDevice.fresh();
    d.install("ota_1", appImage("1.0.1"));
    d.putEntry(1, encodeEntry(badCrc(2, S.VALID)));
    equal(d.restart(), "ota_0");
  });

  test("corrupt otadata: a torn entry (crc not written) is ignored", () => {
    const d = MiniDevice.fresh();
    d.install("ota_1", appImage("1.0.1"));
    d.putEntry(1, encodeEntry(makeEntry(2, S.VALID)).subarray(0, 28));
    equal(d.restart(), "ota_0");
  });

  test("corrupt otadata: garbage in both sectors still boots a valid image", () => {
    const d = MiniDevice.fresh();
    const junk = new Uint8Array(32);
    for (let i = 0; i < 32; i++) junk[i] = (i * 37 + 11) & 0xff;
    d.putEntry(0, junk);
    d.putEntry(1, junk.slice().reverse());
    equal(d.restart(), "ota_0");
    d.install("ota_1", appImage("1.0.1"));
    d.boot.select("ota_1");
    equal(d.restart(), "ota_1", "and can still be updated");
  });

  test("an otadata partition smaller than 0x2000 is refused", () => {
    const d = new MiniDevice({ table: MINI_TABLE.map((p) => (p.name === "otadata" ? { ...p, size: 0x1000 } : p)) });
    throwsCode(() => d.boot.info(), "otadata-corrupt");
  });

  test("power cut at every flash operation of an update: never unbootable, never reverted after confirm", () => {
    const r = powerCutSweep({ table: MINI_TABLE, flashSize: MINI_FLASH, oldImage: appImage("1.0.0", 900), newImage: appImage("1.0.1", 5000), chunk: 1460, sha256 });
    ok(r.points.length > r.operations, "torn variants were cut too");
    equal(r.unbootable, 0, "unbootable");
    equal(r.revertedAfterConfirm, 0, "reverted after confirm");
    ok(r.byPhase.confirm.points > 0 && r.byPhase.confirm.new === r.byPhase.confirm.points, "every cut during confirm ends on the new image");
  });

  test("ESP-IDF's own order, cut the same way, can revert a confirmed update", () => {
    const r = powerCutSweep({ table: MINI_TABLE, flashSize: MINI_FLASH, oldImage: appImage("1.0.0", 900), newImage: appImage("1.0.1", 900), chunk: 1460, sha256, order: "esp-idf" });
    equal(r.unbootable, 0, "unbootable");
    ok(r.revertedAfterConfirm > 0, "esp-idf order reverts after some cuts during confirm");
  });
});
