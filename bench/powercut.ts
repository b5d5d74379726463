/**
 * npm run powercut [-- --board esp32|w800|nuvoton] [--image KB] [--chunk BYTES]
 *
 * One full update on a simulated board: stream the new image into the update slot (ESP32:
 * ota_1 of partitions/esp32-4mb.csv; W800: app_ota of partitions/w800-2mb.csv; Nuvoton: the SPI
 * staging bank of partitions/nuvoton-m487.csv), verify it, select it, restart (ESP32: a trial
 * boot; W800: secboot checks and decompresses it into the run partition; Nuvoton: select backs
 * the running image up to the second SPI bank, the Cloner copies the staged one into APROM),
 * confirm, restart. Then the same
 * cycle again for every flash operation in it, with the power cut at that operation, cleanly or
 * torn (after its first byte, or halfway), and the device restarted and left to carry on as its
 * firmware would. Prints what each phase's cuts led to (for the ESP32 also ESP-IDF's own write
 * order, for comparison), and last the line for xs-ota's order. On the ESP32 it also runs a
 * delta cycle: a patch into the end of ota_1, applied from ota_0 into ota_1; after each cut in
 * that phase the device boots 1.0.1 and finishes the update from its records.
 */
import { readFileSync } from "node:fs";
import { parsePartitionCsv } from "../modules/esp-idf/partition-table.ts";
import { packImage } from "../modules/esp-idf/image.ts";
import { powerCutSweep, type SweepResult, type SweepOptions } from "../hosts/sim/power-cut.ts";
import { afrSweepBoard } from "../hosts/sim/afr-power-cut.ts";
import { w800SweepBoard } from "../hosts/sim/w800-power-cut.ts";
import { packW800Image } from "../modules/w800/pack.ts";
import { w800Layout } from "../modules/w800/header.ts";
import { xzCompress } from "../hosts/sim/xz.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { makeDelta } from "../cloud/delta.ts";

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} takes a positive integer`);
  return value;
}

function text(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : (process.argv[i + 1] ?? "");
}

const board = text("--board", "esp32");
if (!["esp32", "w800", "nuvoton"].includes(board)) throw new Error(`--board takes esp32, w800 or nuvoton, got '${board}'`);
const imageKb = option("--image", 64);
const chunk = option("--chunk", 1460);
const csvName = board === "esp32" ? "esp32-4mb.csv" : board === "w800" ? "w800-2mb.csv" : "nuvoton-m487.csv";
const table = parsePartitionCsv(readFileSync(new URL(`../partitions/${csvName}`, import.meta.url), "utf8"));
if (table.errors.length) throw new Error(`partition table: ${table.errors.map((e) => e.message).join("; ")}`);
const sha256 = () => nodeDigests.create("sha256");
/** Bytes that do not compress to nothing: a stand-in for code. */
const payload = (version: string, bytes: number) => {
  const out = new Uint8Array(bytes);
  let x = 0x9e3779b9 ^ version.charCodeAt(4);
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
};

function report(title: string, r: SweepResult): void {
  console.log(`${title}: ${r.operations} flash operations in the cycle, ${r.points.length} cut points`);
  console.log("  phase        points   old    new    unbootable");
  for (const [phase, c] of Object.entries(r.byPhase)) {
    console.log(`  ${phase.padEnd(12)} ${String(c.points).padStart(6)} ${String(c.old).padStart(5)} ${String(c.new).padStart(6)} ${String(c.unbootable).padStart(8)}`);
  }
}

const started = Date.now();
const base = { table: table.partitions, flashSize: table.flashSize ?? 0x400000, chunk, sha256, digests: nodeDigests };
let ours: SweepResult;
let ok = true;
let lastOptions: SweepOptions | undefined;
if (board === "esp32") {
  const oldImage = packImage({ version: "1.0.0", payload: payload("1.0.0", 40 * 1024), sha256 });
  const newImage = packImage({ version: "1.0.1", payload: payload("1.0.1", imageKb * 1024 - 400), sha256 });
  const sweep = (order: "xs-ota" | "esp-idf") => powerCutSweep((lastOptions = { ...base, oldImage, newImage, order }));
  console.log(`image ${newImage.length} bytes written in ${chunk}-byte chunks to ota_1 of partitions/esp32-4mb.csv`);
  const espIdf = sweep("esp-idf");
  report("ESP-IDF's write order (esp_ota_set_boot_partition, esp_ota_mark_app_valid_cancel_rollback)", espIdf);
  console.log(`esp-idf order: ${espIdf.points.length} points, ${espIdf.unbootable} unbootable, ${espIdf.revertedAfterConfirm} reverted-after-confirm`);
  ours = sweep("xs-ota");
  ok = espIdf.unbootable === 0;
  report("xs-ota's write order (modules/esp-idf/boot-control.ts)", ours);
} else if (board === "w800") {
  const layout = w800Layout(table.partitions);
  const pack = (version: string, body: Uint8Array, xz: boolean) => {
    const inner = packW800Image({ version, body, layout, digests: nodeDigests });
    return xz ? packW800Image({ version, body: xzCompress(inner), compressType: 1, layout, digests: nodeDigests }) : inner;
  };
  // Code compresses; random bytes would not. Half the body repeats, as code and data do.
  const body = (version: string, bytes: number) => {
    const out = payload(version, bytes);
    out.copyWithin(bytes >> 1, 0, bytes >> 1);
    return out;
  };
  const oldImage = pack("1.0.0", body("1.0.0", 40 * 1024), false);
  const newImage = pack("1.0.1", body("1.0.1", imageKb * 1024), true);
  console.log(`XZ image ${newImage.length} bytes (${imageKb * 1024} bytes of body inside) written in ${chunk}-byte chunks to app_ota of partitions/w800-2mb.csv; secboot decompresses it into app`);
  ours = powerCutSweep((lastOptions = { ...base, oldImage, newImage, board: w800SweepBoard(oldImage, newImage, layout) }));
  report("xs-ota on the W800 layout (modules/w800/boot-control.ts, hosts/sim/w800-secboot.ts)", ours);
} else {
  const oldImage = payload("1.0.0", 40 * 1024);
  const newImage = payload("1.0.1", imageKb * 1024);
  const o: SweepOptions = { ...base, oldImage, newImage, board: afrSweepBoard(oldImage, newImage, nodeDigests), signature: new Uint8Array(71).fill(0x30) };
  console.log(`raw image ${newImage.length} bytes written in ${chunk}-byte chunks to ota_bank of partitions/nuvoton-m487.csv; the Cloner copies it into APROM`);
  ours = powerCutSweep((lastOptions = o));
  report("xs-ota on the @AFRTOS layout (modules/afr-staging/boot-control.ts, hosts/sim/cloner.ts)", ours);
}
// The same cycle with a self-test that fails: what each layout falls back to, under every cut.
if (!lastOptions) throw new Error("no sweep ran");
if (board === "esp32") {
  // A delta cycle: 1.0.2 rebuilt on the device from the running 1.0.1 and a patch (xdelta3).
  const oldPayload = payload("1.0.1", imageKb * 1024 - 400);
  const newPayload = oldPayload.slice();
  newPayload.set(payload("1.0.2", 2048), imageKb * 512); // one "module" changed, mid-image
  const oldImage = packImage({ version: "1.0.1", payload: oldPayload, sha256 });
  const newImage = packImage({ version: "1.0.2", payload: newPayload, sha256 });
  const patch = await makeDelta(oldImage, newImage);
  console.log(`delta: a ${patch.length}-byte patch written in ${chunk}-byte chunks to the end of ota_1, then applied from ota_0 into ota_1 (${newImage.length} bytes)`);
  const delta = powerCutSweep({ ...base, oldImage, newImage, patch });
  report("xs-ota's delta cycle (modules/transfer/patch.ts)", delta);
  console.log(`delta: ${delta.points.length} points, ${delta.unbootable} unbootable, ${delta.revertedAfterConfirm} reverted-after-confirm; ${delta.finishedAfterCut} cuts while writing or applying the patch, each finished after the reboot`);
  ok &&= delta.unbootable === 0 && delta.revertedAfterConfirm === 0;
}
const failing = powerCutSweep({ ...lastOptions, selfTest: "fails" });
const falls = failing.fallback === "old" ? "the old image" : "the new image, which stays (no previous image is kept)";
console.log(`self-test fails: ${failing.points.length} points, ${failing.unbootable} unbootable; falls back to ${falls}`);
ok &&= failing.unbootable === 0;
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
console.log(`power-cut: ${ours.points.length} points, ${ours.unbootable} unbootable, ${ours.revertedAfterConfirm} reverted-after-confirm`);
process.exitCode = ours.unbootable === 0 && ok ? 0 : 1;
