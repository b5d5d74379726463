/** The W800 image header, its ImageFormat, the install record and the boot control, under power cuts. */
import { suite } from "./harness.ts";
import { bytesEqual, deepEqual, equal, ok, throwsCode } from "./assert.ts";
import { W800_MAGIC, checkHeader, decodeAttributes, decodeHeader, encodeHeader, makeAttributes, sdkCrc, type W800Header } from "../../modules/w800/header.ts";
import { w800Format } from "../../modules/w800/format.ts";
import { encodeRecord, markInstalled, readInstallRecord, stateOf } from "../../modules/w800/record.ts";
import { isOtaError } from "../../modules/errors.ts";
import type { Tear } from "../../hosts/sim/nor-flash.ts";
import { W800Device, body, digests, layout, w800Image } from "./w800-fixture.ts";

const ascii = (s: string) => new Uint8Array(s.split("").map((c) => c.charCodeAt(0)));
const APP = 0x08000000 + layout.app.offset;
const OTA = 0x08000000 + layout.appOta.offset;

function good(): Omit<W800Header, "hdChecksum"> {
  return { magic: W800_MAGIC, imgAttr: makeAttributes(1, 1), imgAddr: APP + 0x400, imgLen: 4096, imgHeaderAddr: APP, upgradeImgAddr: OTA, orgChecksum: 0x12345678, updNo: 3, version: "2.0.1", flags: 0x15, reserved1: 0, next: 0 };
}

function refused(change: Partial<W800Header>, words: string): void {
  const bytes = encodeHeader({ ...good(), ...change });
  throwsCode(() => checkHeader(bytes, layout, "staged"), "image-invalid", words);
}

/** Every way one flash operation can be cut: cleanly, after the first byte, halfway. */
const TEARS: Tear[] = ["none", "first-byte", "half"];

/**
 * Runs `act` on a copy of `base` with power cut at each of its operations in turn, then checks
 * what `look` sees after power returns equals what it saw before or after an uncut run.
 */
function sweep(base: W800Device, act: (d: W800Device) => void, look: (d: W800Device) => string): number {
  const before = look(new W800Device(base.flash.data.slice()));
  const clean = new W800Device(base.flash.data.slice());
  const start = clean.flash.operations;
  act(clean);
  const operations = clean.flash.operations - start;
  const after = look(clean);
  ok(operations > 0, "the action writes something");
  let points = 0;
  for (let n = 1; n <= operations; n++) {
    for (const tear of TEARS) {
      const d = new W800Device(base.flash.data.slice());
      d.flash.cutAt(n, tear);
      try {
        act(d);
      } catch (e) {
        if (!isOtaError(e, "flash-power-cut")) throw e;
      }
      d.flash.powerOn();
      const seen = look(d);
      ok(seen === before || seen === after, `cut at ${n} (${tear}): ${seen}, expected ${before} or ${after}`);
      points++;
    }
  }
  return points;
}

const view = (d: W800Device) => JSON.stringify(d.boot.info());

export default suite("W800 header, format and boot control", (test) => {
  test("the SDK's CRC-32 is the complement of zlib's (check value of '123456789')", () => {
    equal(sdkCrc(ascii("123456789")), (0xcbf43926 ^ 0xffffffff) >>> 0);
    equal(sdkCrc(ascii("123456789")), 0x340bc6d9);
  });

  test("header round trip: every field at its offset, hd_checksum over the first 60 bytes", () => {
    const bytes = encodeHeader(good());
    equal(bytes.length, 64);
    const h = decodeHeader(bytes);
    deepEqual({ ...h, hdChecksum: 0 }, { ...good(), hdChecksum: 0 });
    equal(h.hdChecksum, sdkCrc(bytes.subarray(0, 60)));
    const v = new DataView(bytes.buffer);
    deepEqual([v.getUint32(0, true), v.getUint32(4, true), v.getUint32(12, true), v.getUint32(28, true), v.getUint32(48, true)], [0xa0ffff9f, 0x00100001, 4096, 3, 0x15]);
    bytesEqual(bytes.subarray(32, 38), ascii("2.0.1\u0000"));
    bytesEqual(encodeHeader(decodeHeader(bytes)), bytes);
  });

  test("img_attr bits as the SDK's log shows them: 00100001 is img_type 1, compress_type 1", () => {
    const a = decodeAttributes(0x00100001);
    deepEqual([a.imgType, a.compressType, a.gzip, a.signature], [1, 1, false, false]);
    deepEqual(decodeAttributes(1 << 16).gzip, true);
    deepEqual(decodeAttributes(0x7 << 5 | 1 << 8).prikeySel, 7);
  });

  test("versions: at most 15 printable ASCII characters", () => {
    equal(decodeHeader(encodeHeader({ ...good(), version: "v".repeat(15) })).version, "v".repeat(15));
    throwsCode(() => encodeHeader({ ...good(), version: "v".repeat(16) }), "bad-argument");
    throwsCode(() => encodeHeader({ ...good(), version: "1.0\u00e9" }), "bad-argument");
  });

  test("staged header: accepted as the SDK accepts it", () => {
    checkHeader(encodeHeader(good()), layout, "staged");
    checkHeader(encodeHeader({ ...good(), imgAddr: OTA + 0x400, imgHeaderAddr: OTA, upgradeImgAddr: 0 }), layout, "staged");
    checkHeader(encodeHeader({ ...good(), imgLen: layout.appOta.size - 64 }), layout, "staged");
  });

  test("staged header: every refusal of wm_ota_ops_check_header", () => {
    refused({ magic: 0xa0ffff9e }, "magic_no");
    refused({ imgAttr: makeAttributes(0, 0) }, "img_type 0");
    refused({ imgAttr: makeAttributes(0xe, 0) }, "img_type 14");
    refused({ imgAttr: makeAttributes(1, 0) | (1 << 16) }, "gzip_enable");
    refused({ imgAttr: (1 | (2 << 20)) >>> 0 }, "compress_type 2");
    refused({ imgAttr: (1 | (3 << 20)) >>> 0 }, "compress_type 3");
    refused({ imgAddr: APP + 0x200 }, "img_addr");
    refused({ imgLen: layout.appOta.size - 63 }, "img_len");
    refused({ imgHeaderAddr: APP + 0x1000 }, "img_header_addr");
    refused({ upgradeImgAddr: APP }, "upgrade_img_addr");
    const bytes = encodeHeader(good());
    bytes[40] ^= 1;
    throwsCode(() => checkHeader(bytes, layout, "staged"), "image-invalid", "hd_checksum");
    throwsCode(() => checkHeader(bytes.subarray(0, 63), layout, "staged"), "image-invalid", "64-byte");
  });

  test("installed header: names app, uncompressed, fits app", () => {
    const inst = { ...good(), imgAttr: makeAttributes(1, 0) };
    checkHeader(encodeHeader({ ...inst, imgLen: layout.app.size - 0x400 }), layout, "installed");
    throwsCode(() => checkHeader(encodeHeader(good()), layout, "installed"), "image-invalid", "not compressed");
    throwsCode(() => checkHeader(encodeHeader({ ...inst, imgAddr: OTA + 0x400, imgHeaderAddr: OTA }), layout, "installed"), "image-invalid", "img_addr");
    throwsCode(() => checkHeader(encodeHeader({ ...inst, imgLen: layout.app.size - 0x3fc }), layout, "installed"), "image-invalid", "img_len");
  });

  test("format: prefix gives the version only; verify checks org_checksum and the length written", () => {
    const f = w800Format(layout);
    equal(f.prefixSize, 64);
    const image = w800Image("1.2.3", 5001);
    equal(image.length, 64 + 5004, "body padded to 4 bytes");
    deepEqual(f.parsePrefix(image.subarray(0, 64)), { version: "1.2.3" });
    const d = new W800Device();
    d.stage(image);
    deepEqual(f.verify(d.partitions.open("app_ota"), image.length, digests), { version: "1.2.3" });
    throwsCode(() => f.verify(d.partitions.open("app_ota"), image.length - 1, digests), "image-invalid", "more than");
    const bad = image.slice();
    bad[64 + 4097] ^= 0x80;
    const e = new W800Device();
    e.stage(bad);
    throwsCode(() => f.verify(e.partitions.open("app_ota"), bad.length, digests), "image-invalid", "org_checksum");
  });

  test("format: an image built to run from app_ota is refused (the boot installs into app)", () => {
    const h = encodeHeader({ ...good(), imgAddr: OTA + 0x400, imgHeaderAddr: OTA });
    throwsCode(() => w800Format(layout).parsePrefix(h), "image-invalid", "app_ota");
  });

  test("record: magic, identity and CRC in 16 bytes; the state byte goes down by cleared bits", () => {
    const r = encodeRecord({ hdChecksum: 0xdeadbeef, length: 0x1234 });
    equal(r.length, 16);
    deepEqual([stateOf(0xff), stateOf(0xfe), stateOf(0xfc), stateOf(0xfa), stateOf(0xf8), stateOf(0xfb)], ["requested", "trial", "confirmed", "rejected", "rejected", "rejected"]);
    const d = new W800Device();
    equal(readInstallRecord(d.partitions.open("ota_state")), undefined, "erased: no record");
    d.partitions.open("ota_state").write(r.subarray(0, 15), 0);
    equal(readInstallRecord(d.partitions.open("ota_state")), undefined, "torn: no record");
  });

  test("boot control: a fresh device runs app, valid, nothing staged", () => {
    const d = W800Device.fresh();
    deepEqual(d.boot.info(), { running: "app", state: "valid", next: "app", updateSlot: "app_ota", updateState: "none" });
  });

  test("boot control: select, install, trial, confirm", () => {
    const d = W800Device.fresh();
    const image = w800Image("1.0.1");
    d.stage(image);
    d.boot.select("app_ota");
    deepEqual(d.boot.info(), { running: "app", state: "valid", next: "app", updateSlot: "app_ota", updateState: "new" });
    const rec = readInstallRecord(d.partitions.open("ota_state"));
    deepEqual(rec, { hdChecksum: decodeHeader(image).hdChecksum, length: image.length, state: "requested" });
    markInstalled(d.partitions.open("ota_state"));
    deepEqual(d.boot.info(), { running: "app", state: "pending", next: "app", updateSlot: "app_ota", installedFrom: "app_ota" });
    throwsCode(() => d.boot.select("app_ota"), "boot-state", "on trial");
    d.boot.confirm();
    deepEqual(d.boot.info(), { running: "app", state: "valid", next: "app", updateSlot: "app_ota", installedFrom: "app_ota" });
    const ops = d.flash.operations;
    d.boot.confirm();
    equal(d.flash.operations, ops, "confirming again writes nothing");
  });

  test("boot control: reject records the verdict and says no previous image remains", () => {
    const d = W800Device.fresh();
    d.stage(w800Image("1.0.1"));
    d.boot.select("app_ota");
    markInstalled(d.partitions.open("ota_state"));
    equal(d.boot.reject(), false);
    deepEqual(d.boot.info(), { running: "app", state: "valid", next: "app", updateSlot: "app_ota", updateState: "invalid" });
    equal(readInstallRecord(d.partitions.open("ota_state"))?.state, "rejected");
  });

  test("boot control: a new download into app_ota ends what the record said about the old one", () => {
    const d = W800Device.fresh();
    d.stage(w800Image("1.0.1"));
    d.boot.select("app_ota");
    markInstalled(d.partitions.open("ota_state"));
    d.boot.confirm();
    d.stage(w800Image("1.0.2", 4000));
    deepEqual(d.boot.info(), { running: "app", state: "valid", next: "app", updateSlot: "app_ota", updateState: "none" });
    d.boot.select("app_ota");
    equal(d.boot.info().updateState, "new");
  });

  test("boot control: select refuses the running slot, unknown names and an empty staging slot, writing nothing", () => {
    const d = W800Device.fresh();
    const ops = d.flash.operations;
    throwsCode(() => d.boot.select("app"), "boot-state", "running");
    throwsCode(() => d.boot.select("nvs"), "partition-unknown");
    throwsCode(() => d.boot.select("app_ota"), "boot-state", "no image");
    equal(d.flash.operations, ops);
  });

  test("power cuts: select, install mark, confirm and reject each leave the state before or after", () => {
    const d = W800Device.fresh();
    d.stage(w800Image("1.0.1"));
    let points = sweep(d, (x) => x.boot.select("app_ota"), view);
    d.boot.select("app_ota");
    points += sweep(d, (x) => markInstalled(x.partitions.open("ota_state")), view);
    markInstalled(d.partitions.open("ota_state"));
    points += sweep(d, (x) => x.boot.confirm(), view);
    points += sweep(d, (x) => x.boot.reject(), view);
    d.boot.confirm();
    points += sweep(d, (x) => x.boot.reject(), view);
    d.stage(w800Image("1.0.2", 5000));
    points += sweep(d, (x) => x.boot.select("app_ota"), view);
    ok(points >= 18, `${points} cut points`);
  });

  test("power cuts: a cut select never leaves a record that requests an image other than the staged one", () => {
    const d = W800Device.fresh();
    d.stage(w800Image("1.0.1"));
    d.boot.select("app_ota");
    markInstalled(d.partitions.open("ota_state"));
    d.boot.confirm();
    d.stage(w800Image("1.0.2", 5000));
    const staged = decodeHeader(w800Image("1.0.2", 5000)).hdChecksum;
    sweep(d, (x) => x.boot.select("app_ota"), (x) => {
      const r = readInstallRecord(x.partitions.open("ota_state"));
      return r?.state === "requested" ? (r.hdChecksum === staged ? "requests the staged image" : "requests another") : "requests nothing";
    });
  });

  test("the body a packed image carries is the body given, padded with 0xFF", () => {
    const image = w800Image("3.0.0", 10);
    bytesEqual(image.subarray(64, 74), body("3.0.0", 10));
    bytesEqual(image.subarray(74), new Uint8Array([0xff, 0xff]));
  });
});
