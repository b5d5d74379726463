/**
 * npm run powercut [-- --image KB --chunk BYTES]
 *
 * One full update on a simulated 4 MB ESP32 (partitions/esp32-4mb.csv): stream the new image
 * into ota_1, verify it, select it, restart (trial boot), confirm, restart. Then the same cycle
 * again for every flash operation in it, with the power cut at that operation, cleanly or torn
 * (after its first byte, or halfway), and the device restarted and left to carry on as its
 * firmware would. Prints what each phase's cuts led to, ESP-IDF's own write order for
 * comparison, and last the line for xs-ota's order.
 */
import { readFileSync } from "node:fs";
import { parsePartitionCsv } from "../modules/esp-idf/partition-table.ts";
import { packImage } from "../modules/esp-idf/image.ts";
import { powerCutSweep, type SweepResult } from "../hosts/sim/power-cut.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const value = i < 0 ? fallback : Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} takes a positive integer`);
  return value;
}

const imageKb = option("--image", 64);
const chunk = option("--chunk", 1460);
const csv = new URL("../partitions/esp32-4mb.csv", import.meta.url);
const table = parsePartitionCsv(readFileSync(csv, "utf8"));
if (table.errors.length) throw new Error(`partition table: ${table.errors.map((e) => e.message).join("; ")}`);
const sha256 = () => nodeDigests.create("sha256");
const image = (version: string, bytes: number) => {
  const payload = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) payload[i] = (i * 31 + version.charCodeAt(4)) & 0xff;
  return packImage({ version, payload, sha256 });
};
const oldImage = image("1.0.0", 40 * 1024);
const newImage = image("1.0.1", imageKb * 1024 - 400);

function report(title: string, r: SweepResult): void {
  console.log(`${title}: ${r.operations} flash operations in the cycle, ${r.points.length} cut points`);
  console.log("  phase        points   old    new    unbootable");
  for (const [phase, c] of Object.entries(r.byPhase)) {
    console.log(`  ${phase.padEnd(12)} ${String(c.points).padStart(6)} ${String(c.old).padStart(5)} ${String(c.new).padStart(6)} ${String(c.unbootable).padStart(8)}`);
  }
}

const started = Date.now();
const sweep = (order: "xs-ota" | "esp-idf") =>
  powerCutSweep({ table: table.partitions, flashSize: table.flashSize ?? 0x400000, oldImage, newImage, chunk, order, sha256 });

console.log(`image ${newImage.length} bytes written in ${chunk}-byte chunks to ota_1 of partitions/esp32-4mb.csv`);
const espIdf = sweep("esp-idf");
report("ESP-IDF's write order (esp_ota_set_boot_partition, esp_ota_mark_app_valid_cancel_rollback)", espIdf);
console.log(`esp-idf order: ${espIdf.points.length} points, ${espIdf.unbootable} unbootable, ${espIdf.revertedAfterConfirm} reverted-after-confirm`);
const ours = sweep("xs-ota");
report("xs-ota's write order (modules/esp-idf/boot-control.ts)", ours);
console.log(`(${((Date.now() - started) / 1000).toFixed(1)} s)`);
console.log(`power-cut: ${ours.points.length} points, ${ours.unbootable} unbootable, ${ours.revertedAfterConfirm} reverted-after-confirm`);
process.exitCode = ours.unbootable === 0 && espIdf.unbootable === 0 ? 0 : 1;
