import { contract } from "./contract/vitest.ts";
import afr from "./contract/afr-staging.contract.ts";

contract(afr, new URL("./contract/afr-staging.contract.ts", import.meta.url));

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parsePartitionCsv } from "../modules/esp-idf/partition-table.ts";
import { AfrStagingBootControl } from "../modules/afr-staging/boot-control.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { SimPartitions } from "../hosts/sim/partitions.ts";
import { runCloner } from "../hosts/sim/cloner.ts";
import { apromHolds } from "../hosts/sim/afr-power-cut.ts";
import { ImageWriter } from "../modules/storage/image-writer.ts";
import { pattern } from "./contract/pattern.ts";

describe("afr-staging on the shipped Nuvoton M487 table", () => {
  const table = parsePartitionCsv(readFileSync(new URL("../partitions/nuvoton-m487.csv", import.meta.url), "utf8"));

  it("an ICP-flashed device (no descriptor) backs up all of APROM, installs, and rolls back on reject", () => {
    const flash = new NorFlash({ size: table.flashSize!, strict: true });
    flash.record = [];
    const partitions = new SimPartitions(flash, table.partitions, "aprom");
    const boot = new AfrStagingBootControl(partitions);
    const oldImage = pattern(200_000, 5);
    const newImage = pattern(356_672, 9); // the example's V1.0.1 file size
    new ImageWriter(partitions.open("aprom"), oldImage.length).write(oldImage);
    expect(runCloner(partitions).log).toContain("read Magic code     : none (no @AFRTOS descriptor)");

    new ImageWriter(partitions.open("ota_bank"), newImage.length).write(newImage);
    const before = flash.record.length;
    boot.select("ota_bank", { length: newImage.length });
    // With no descriptor the running image's length is unknown: all 0x70000 bytes are backed up.
    const backupWrites = flash.record.slice(before).filter((op) => op.kind === "write" && op.offset >= 0x101000);
    expect(backupWrites.reduce((n, op) => n + op.length, 0)).toBe(0x70000);

    const erasesBefore = flash.record.length;
    const log = runCloner(partitions).log;
    expect(log).toContain("Check OTA image success");
    expect(log.some((l) => l.startsWith("Checksum OK. CRC32: 0x"))).toBe(true);
    expect(apromHolds(partitions, oldImage, newImage)).toBe("new");
    // The image needs 88 pages (the example log's "page_num: 0x58"), but the image it replaces
    // is taken to fill the backup's 0x70000 bytes, so all 112 pages are erased: no tail survives.
    const aprom = flash.record.slice(erasesBefore).filter((op) => op.kind === "erase" && op.offset < 0x70000);
    expect(aprom.length).toBe(112);
    expect(boot.info()).toMatchObject({ state: "pending", installedFrom: "ota_bank" });

    expect(boot.reject()).toBe(true);
    expect(runCloner(partitions).log).toContain("Backup restored");
    const restored = new Uint8Array(partitions.open("aprom").read(0x70000, 0));
    expect(restored.subarray(0, oldImage.length)).toEqual(oldImage);
    expect(restored.subarray(oldImage.length).every((b) => b === 0xff)).toBe(true);
  });
});
