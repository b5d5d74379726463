/**
 * The @AFRTOS staging layout (Nuvoton M487 + Cloner): descriptor and trailer bytes, the raw
 * binary format, a whole update through the simulated Cloner, rollback, and the power-cut proof.
 * Runs on Node and XS.
 */
import { suite } from "./harness.ts";
import { bytesEqual, deepEqual, equal, ok, throwsCode } from "./assert.ts";
import { pattern } from "./pattern.ts";
import {
  FLAGS,
  MAX_SIGNATURE_SIZE,
  decodeDescriptor,
  decodeTrailer,
  encodeDescriptor,
  encodeTrailer,
  flagName,
  makeDescriptor,
  trailerOk,
} from "../../modules/afr-staging/descriptor.ts";
import { afrStagingFormat } from "../../modules/afr-staging/format.ts";
import { AfrStagingBootControl, writeDescriptor } from "../../modules/afr-staging/boot-control.ts";
import { runCloner } from "../../hosts/sim/cloner.ts";
import { afrSweepBoard, apromHolds, factoryDevice, type AfrDevice } from "../../hosts/sim/afr-power-cut.ts";
import { powerCutSweep } from "../../hosts/sim/power-cut.ts";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { SimPartitions, type PartitionExtent } from "../../hosts/sim/partitions.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";

/** The Nuvoton map scaled down (same names and order, smaller regions) so sweeps stay quick on XS. */
export const AFR_MINI_TABLE: PartitionExtent[] = [
  { name: "aprom", type: 0, subtype: 0, offset: 0x0, size: 0x30000 },
  { name: "ota_desc", type: 1, subtype: 0x41, offset: 0x30000, size: 0x1000 },
  { name: "ota_trailer", type: 1, subtype: 0x42, offset: 0x31000, size: 0x1000 },
  { name: "cloner", type: 1, subtype: 0x43, offset: 0x32000, size: 0xe000 },
  { name: "ota_bank", type: 1, subtype: 0x40, offset: 0x40000, size: 0x20000 },
  { name: "ota_backup", type: 1, subtype: 0x44, offset: 0x60000, size: 0x20000 },
];
export const AFR_MINI_FLASH = 0x80000;

const OLD = pattern(12000, 7);
const NEW = pattern(30001, 11);
const SIGNATURE = pattern(71, 3);
const hexBytes = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

function fresh(strict = true): AfrDevice {
  const d = factoryDevice({ table: AFR_MINI_TABLE, flashSize: AFR_MINI_FLASH, image: OLD });
  if (!strict) return d;
  // The factory image was written leniently; the cycle itself runs on a strict chip.
  const flash = new NorFlash({ size: AFR_MINI_FLASH, data: d.flash.data, strict: true });
  const partitions = new SimPartitions(flash, AFR_MINI_TABLE, "aprom");
  return { flash, partitions, boot: new AfrStagingBootControl(partitions) };
}

function stage(d: AfrDevice, image: Uint8Array): void {
  new ImageWriter(d.partitions.open("ota_bank"), image.length).write(image);
}

function descriptorOf(d: AfrDevice) {
  return decodeDescriptor(new Uint8Array(d.partitions.open("ota_desc").read(32, 0)));
}

function boot(d: AfrDevice): string[] {
  const outcome = runCloner(d.partitions);
  equal(outcome.slot, "aprom", `the Cloner boots APROM (${outcome.log.join(" | ")})`);
  return outcome.log;
}

export default suite("afr-staging: @AFRTOS descriptor, Cloner and boot control", (test) => {
  test("a descriptor is 32 bytes: '@AFRTOS', flag, then six little-endian words", () => {
    const d = { ...makeDescriptor(FLAGS.NEW, 0x15, 0x57140, 0x80000), hardwareId: 0x2000aab4 };
    const want = hexBytes("40414652544f53" + "ff" + "15000000" + "00000000" + "3f710500" + "00000000" + "b4aa0020" + "00000800");
    bytesEqual(encodeDescriptor(d), want);
    deepEqual(decodeDescriptor(want), d);
    equal(decodeDescriptor(want).end, 0x5713f, "end is inclusive, as in the Cloner's 'read End addr : 0x0005713F'");
  });

  test("flags only clear bits: new, pending commit, valid, invalid", () => {
    deepEqual([FLAGS.NEW, FLAGS.PENDING_COMMIT, FLAGS.VALID, FLAGS.INVALID].map(flagName), ["new", "pending-commit", "valid", "invalid"]);
    ok((FLAGS.NEW & FLAGS.PENDING_COMMIT) === FLAGS.PENDING_COMMIT && (FLAGS.PENDING_COMMIT & FLAGS.VALID) === FLAGS.VALID && (FLAGS.VALID & FLAGS.INVALID) === FLAGS.INVALID);
    equal(flagName(0x12), undefined);
  });

  test("a blank or torn header has no magic", () => {
    equal(decodeDescriptor(new Uint8Array(32).fill(0xff)).magic, false, "blank");
    const torn = encodeDescriptor(makeDescriptor(FLAGS.VALID, 1, 100, 0));
    torn.fill(0xff, 4, 8);
    equal(decodeDescriptor(torn).magic, false, "half a header");
    throwsCode(() => decodeDescriptor(new Uint8Array(31)), "malformed");
  });

  test("the trailer: zero-padded type, u32 size, signature; a blank one fails the Cloner's check", () => {
    const bytes = encodeTrailer({ signatureType: "sig-sha256-ecdsa", signature: hexBytes("3045aa") });
    bytesEqual(bytes.subarray(0, 32), Uint8Array.from([...ascii("sig-sha256-ecdsa"), ...new Uint8Array(16)]));
    bytesEqual(bytes.subarray(32), hexBytes("03000000" + "3045aa"));
    const back = decodeTrailer(bytes);
    deepEqual([back.signatureType, back.size, Array.from(back.signature)], ["sig-sha256-ecdsa", 3, [0x30, 0x45, 0xaa]]);
    ok(trailerOk(back), "a written trailer passes");
    ok(!trailerOk(decodeTrailer(new Uint8Array(292).fill(0xff))), "a blank trailer fails");
    const half = new Uint8Array(292).fill(0xff);
    half.set(bytes.subarray(0, 34));
    ok(!trailerOk(decodeTrailer(half)), "a trailer torn inside its size fails");
    throwsCode(() => encodeTrailer({ signatureType: "sig-sha256-ecdsa", signature: new Uint8Array(MAX_SIGNATURE_SIZE + 1) }), "bad-argument");
  });

  test("the raw format: no prefix, and verify refuses empty, blank and oversized images", () => {
    equal(afrStagingFormat.prefixSize, 0);
    deepEqual(afrStagingFormat.parsePrefix(new Uint8Array(0)), {});
    const d = fresh();
    const bank = d.partitions.open("ota_bank");
    throwsCode(() => afrStagingFormat.verify(bank, 100, nobleDigests), "image-invalid", "blank");
    throwsCode(() => afrStagingFormat.verify(bank, 0, nobleDigests), "image-invalid", "empty");
    throwsCode(() => afrStagingFormat.verify(bank, 0x20001, nobleDigests), "image-invalid", "longer");
    stage(d, NEW);
    deepEqual(afrStagingFormat.verify(bank, NEW.length, nobleDigests), {});
    const late = new Uint8Array(5000).fill(0xff);
    late[4999] = 0;
    new ImageWriter(d.partitions.open("ota_bank"), late.length).write(late);
    throwsCode(() => afrStagingFormat.verify(bank, late.length, nobleDigests), "image-invalid", "blank");
  });

  test("a factory device runs its image as valid, from aprom, with nothing staged", () => {
    const d = fresh();
    deepEqual(d.boot.info(), { running: "aprom", state: "valid", next: "aprom", updateSlot: "ota_bank" });
    boot(d);
    equal(apromHolds(d.partitions, OLD, NEW), "old");
  });

  test("a full cycle: select, the Cloner installs, trial, confirm, and it stays new", () => {
    const d = fresh();
    stage(d, NEW);
    d.boot.select("ota_bank", { length: NEW.length, signature: SIGNATURE });
    const desc = descriptorOf(d);
    deepEqual([desc.flag, desc.sequence, desc.start, desc.end, desc.reserved], [FLAGS.NEW, 2, 0, NEW.length - 1, 0x20000]);
    equal(d.boot.info().updateState, "new");
    const trailer = decodeTrailer(new Uint8Array(d.partitions.open("ota_trailer").read(292, 0)));
    bytesEqual(trailer.signature, SIGNATURE, "trailer signature");
    const backup = decodeDescriptor(new Uint8Array(d.partitions.open("ota_backup").read(32, 0)));
    deepEqual([backup.flag, backup.end, backup.reserved], [FLAGS.VALID, OLD.length - 1, 0x21000], "backup descriptor");
    bytesEqual(new Uint8Array(d.partitions.open("ota_backup").read(OLD.length, 0x1000)), OLD, "backup image");

    const log = boot(d);
    ok(log.includes("Check OTA image success") && log.some((l) => l.startsWith("Checksum OK")), log.join(" | "));
    equal(apromHolds(d.partitions, OLD, NEW), "new");
    deepEqual(d.boot.info(), { running: "aprom", state: "pending", next: "aprom", updateSlot: "ota_bank", installedFrom: "ota_bank" });
    d.boot.confirm();
    equal(descriptorOf(d).flag, FLAGS.VALID);
    d.boot.confirm();
    boot(d);
    equal(apromHolds(d.partitions, OLD, NEW), "new", "after the next restart");
    deepEqual(d.boot.info(), { running: "aprom", state: "valid", next: "aprom", updateSlot: "ota_bank", installedFrom: "ota_bank" });
  });

  test("reject: the Cloner restores the old image byte for byte and its descriptor", () => {
    const d = fresh();
    stage(d, NEW);
    d.boot.select("ota_bank", { length: NEW.length });
    boot(d);
    equal(d.boot.reject(), true, "a backup remains");
    equal(d.boot.info().updateState, "invalid");
    const log = boot(d);
    ok(log.includes("Backup restored"), log.join(" | "));
    equal(apromHolds(d.partitions, OLD, NEW), "old");
    bytesEqual(new Uint8Array(d.partitions.open("aprom").read(OLD.length, 0)), OLD);
    const desc = descriptorOf(d);
    deepEqual([desc.flag, desc.end, desc.sequence], [FLAGS.VALID, OLD.length - 1, 2]);
    const info = d.boot.info();
    deepEqual([info.state, info.installedFrom], ["valid", undefined], "the restored image was not installed from staging");
    boot(d);
    equal(apromHolds(d.partitions, OLD, NEW), "old", "it stays");
  });

  test("a trial that restarts without a verdict is rolled back", () => {
    const d = fresh();
    stage(d, NEW);
    d.boot.select("ota_bank", { length: NEW.length });
    boot(d);
    const log = boot(d);
    ok(log.some((l) => l.includes("not committed")), log.join(" | "));
    equal(apromHolds(d.partitions, OLD, NEW), "old");
    equal(d.boot.info().state, "valid");
  });

  test("the next update after one gets a higher sequence and backs up the installed image", () => {
    const d = fresh();
    stage(d, NEW);
    d.boot.select("ota_bank", { length: NEW.length });
    boot(d);
    d.boot.confirm();
    const third = pattern(5000, 99);
    stage(d, third);
    d.boot.select("ota_bank", { length: third.length });
    equal(descriptorOf(d).sequence, 3);
    boot(d);
    equal(apromHolds(d.partitions, NEW, third), "new");
    equal(d.boot.reject(), true);
    boot(d);
    equal(apromHolds(d.partitions, NEW, third), "old", "the second image comes back, the third's longer tail erased");
  });

  test("select refuses the running slot, unknown slots, a length that does not fit, and a trial image", () => {
    const d = fresh();
    throwsCode(() => d.boot.select("aprom", { length: 10 }), "boot-state");
    throwsCode(() => d.boot.select("ota_0", { length: 10 }), "partition-unknown");
    throwsCode(() => d.boot.select("ota_bank", { length: 0 }), "image-too-large");
    throwsCode(() => d.boot.select("ota_bank", { length: 0x20001 }), "image-too-large");
    stage(d, NEW);
    d.boot.select("ota_bank", { length: NEW.length });
    boot(d);
    throwsCode(() => d.boot.select("ota_bank", { length: NEW.length }), "boot-state", "trial");
  });

  test("reject without a backup keeps the image and says so; no descriptor: nothing to reject", () => {
    const d = fresh();
    d.partitions.open("ota_desc").eraseBlock(0);
    throwsCode(() => d.boot.reject(), "boot-state");
    writeDescriptor(d.partitions.open("ota_desc"), encodeDescriptor(makeDescriptor(FLAGS.PENDING_COMMIT, 4, OLD.length, 0)));
    equal(d.boot.reject(), false);
    boot(d);
    equal(apromHolds(d.partitions, OLD, NEW), "old");
    throwsCode(() => d.boot.confirm(), "boot-state", "rejected");
  });

  test("reject of a descriptor whose flag cannot be programmed to INVALID refuses and leaves it (found by fuzzing)", () => {
    // On a strict chip the flag write threw flash-not-erased; on a lenient one it left 0x00 and
    // reject said the backup would come back, while the Cloner boots APROM as it is.
    for (const strict of [true, false]) {
      const d = fresh(strict);
      writeDescriptor(d.partitions.open("ota_desc"), encodeDescriptor(makeDescriptor(0x00, 4, OLD.length, 0x20000)));
      throwsCode(() => d.boot.reject(), "boot-state", "invalid");
      equal(descriptorOf(d).flag, 0x00, "the flag is left as it was");
    }
  });

  test("the Cloner refuses a NEW descriptor without the PAL's trailer, and one past the bank", () => {
    const d = fresh();
    stage(d, NEW);
    writeDescriptor(d.partitions.open("ota_desc"), encodeDescriptor(makeDescriptor(FLAGS.NEW, 2, NEW.length, 0x20000)));
    ok(boot(d).includes("Check OTA image failed"), "blank trailer");
    equal(apromHolds(d.partitions, OLD, NEW), "old");
    const t = d.partitions.open("ota_trailer");
    t.write(encodeTrailer({ signatureType: "sig-sha256-ecdsa", signature: new Uint8Array(0) }), 0);
    writeDescriptor(d.partitions.open("ota_desc"), encodeDescriptor(makeDescriptor(FLAGS.NEW, 2, 0x20001, 0x20000)));
    ok(boot(d).includes("Check OTA image failed"), "end past the bank");
    equal(apromHolds(d.partitions, OLD, NEW), "old");
  });

  test("power cut at every flash operation of a cycle: APROM holds the old or the new image, and a confirmed update stays", () => {
    const r = powerCutSweep({
      table: AFR_MINI_TABLE,
      flashSize: AFR_MINI_FLASH,
      oldImage: OLD,
      newImage: NEW,
      signature: SIGNATURE,
      chunk: 1460,
      sha256: () => nobleDigests.create("sha256"),
      board: afrSweepBoard(OLD, NEW, nobleDigests),
    });
    ok(r.points.length > r.operations, "torn variants were cut too");
    equal(r.unbootable, 0, `points with neither image or no boot: ${JSON.stringify(r.points.filter((p) => p.outcome === "unbootable"))}`);
    equal(r.revertedAfterConfirm, 0, "reverted after confirm");
    equal(r.byPhase.write.old, r.byPhase.write.points, "a cut while staging keeps the old image");
    // The one select point that ends new: a clean cut after the header's last byte landed.
    equal(r.byPhase.select.old, r.byPhase.select.points - 1, "a cut during select keeps the old image until the descriptor is whole");
    // Confirming is the cycle's last flash operation, one byte: it lands or it does not, so it
    // has no cut points of its own. Cut cleanly there, the trial restarts without a verdict and
    // rolls back; that is the one "first boot" point that ends old.
    deepEqual([r.byPhase.confirm.points, r.byPhase["next boot"].points], [0, 0], "confirm and the next boot have no torn states");
    const last = r.points[r.points.length - 1];
    deepEqual([last.operation, last.tear, last.outcome], [r.operations, "none", "old"], "the cut at the confirming byte");
    equal(r.byPhase["first boot"].new, r.byPhase["first boot"].points - 1, "every cut while the Cloner copies installs the new image on the next boot");
    deepEqual([r.operations, r.points.length], [AFR_SWEEP_OPERATIONS, AFR_SWEEP_POINTS], "operations and points of the sweep");
  });
});

/** Recorded so a change to the write order shows up as a changed count. */
export const AFR_SWEEP_OPERATIONS = 61;
export const AFR_SWEEP_POINTS = 157;
