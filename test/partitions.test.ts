import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import suiteModule from "./contract/partition-table.contract.ts";
import { contract } from "./contract/vitest.ts";
import { main, type Io } from "../cli/main.ts";
import {
  appSlots,
  checkPartitionTable,
  findPartition,
  parsePartitionCsv,
  STAGING_NAME,
} from "../modules/esp-idf/partition-table.ts";

contract(suiteModule, new URL("./contract/partition-table.contract.ts", import.meta.url));

const root = new URL("../", import.meta.url);
const shipped = (name: string) => readFileSync(new URL(`partitions/${name}`, root), "utf8");

function capture(): Io & { outLines: string[]; errLines: string[] } {
  const outLines: string[] = [];
  const errLines: string[] = [];
  return { outLines, errLines, out: (l) => outLines.push(l), err: (l) => errLines.push(l) };
}

describe("shipped partition tables", () => {
  // wm_iot_sdk's W800 table stops at 0x1F8000: it lists nothing in the last 32 KB, so neither do we.
  for (const [file, layout, flashSize, end] of [
    ["esp32-4mb.csv", "ab", 0x400000, 0x400000],
    ["esp32-8mb.csv", "ab", 0x800000, 0x800000],
    ["w800-2mb.csv", "staging", 0x200000, 0x1f8000],
  ] as const) {
    it(`${file} parses and checks clean`, () => {
      const t = parsePartitionCsv(shipped(file));
      expect(t.errors).toEqual([]);
      expect(t.layout).toBe(layout);
      expect(t.flashSize).toBe(flashSize);
      expect(checkPartitionTable(t.partitions, { flashSize: t.flashSize, layout: t.layout })).toEqual([]);
      // Every byte the vendor's table covers is accounted for: the last partition ends where it does.
      expect(Math.max(...t.partitions.map((p) => p.offset + p.size))).toBe(end);
    });
  }

  it("the 4 MB table ends at 0x400000 with 64 KB aligned app slots", () => {
    const { partitions } = parsePartitionCsv(shipped("esp32-4mb.csv"));
    const slots = appSlots(partitions);
    expect(slots.map((p) => p.name)).toEqual(["ota_0", "ota_1"]);
    for (const s of slots) expect(s.offset % 0x10000).toBe(0);
    expect(findPartition(partitions, "xs")).toMatchObject({ type: 0x40, subtype: 1, offset: 0x3d0000, size: 0x30000 });
    expect(findPartition(partitions, "otadata")).toMatchObject({ offset: 0xd000, size: 0x2000 });
  });

  it("the 8 MB table has two 3840 KB slots", () => {
    const slots = appSlots(parsePartitionCsv(shipped("esp32-8mb.csv")).partitions);
    expect(slots.map((p) => [p.offset, p.size])).toEqual([
      [0x10000, 0x3c0000],
      [0x3d0000, 0x3c0000],
    ]);
  });

  it("the Nuvoton M487 table checks clean with ota_bank as its staging partition", () => {
    const t = parsePartitionCsv(shipped("nuvoton-m487.csv"));
    expect(t.errors).toEqual([]);
    expect([t.layout, t.flashSize, t.staging]).toEqual(["staging", 0x200000, "ota_bank"]);
    expect(checkPartitionTable(t.partitions, { flashSize: t.flashSize, layout: t.layout, staging: t.staging })).toEqual([]);
    expect(t.partitions.map((p) => [p.name, p.offset, p.size, p.readonly])).toEqual([
      ["aprom", 0x0, 0x70000, false],
      ["ota_desc", 0x70000, 0x1000, false],
      ["ota_trailer", 0x71000, 0x1000, false],
      ["cloner", 0x72000, 0xe000, true],
      ["ota_bank", 0x80000, 0x80000, false],
      ["ota_backup", 0x100000, 0x80000, false],
    ]);
  });

  it("the W800 table follows wm_iot_sdk's partition_table_with_ota.csv, with the record split off app_ota", () => {
    const { partitions } = parsePartitionCsv(shipped("w800-2mb.csv"));
    expect(findPartition(partitions, STAGING_NAME)).toMatchObject({ type: 1, offset: 0x131000, size: 0xae000 });
    expect(findPartition(partitions, "ota_state")).toMatchObject({ type: 1, offset: 0x1df000, size: 0x1000, readonly: false });
    expect(partitions.filter((p) => p.type === 0)).toMatchObject([{ name: "app", offset: 0xf000, size: 0x122000 }]);
    expect(partitions.filter((p) => p.readonly).map((p) => p.name)).toEqual(["ft", "bootloader", "partition_table"]);
  });
});

describe("xs-ota partitions check", () => {
  it("prints the table and ok for a good file", async () => {
    const io = capture();
    const code = await main(["partitions", "check", "partitions/esp32-4mb.csv"], io);
    expect(io.errLines).toEqual([]);
    expect(code).toBe(0);
    const out = io.outLines.join("\n");
    expect(out).toContain("layout ab");
    expect(out).toContain("4 MB");
    expect(out).toMatch(/ota_1\s+app\s+ota_1\s+0x1f0000\s+0x1e0000\s+1920 KB/);
    expect(out).toMatch(/xs\s+0x40\s+0x01\s+0x3d0000\s+0x30000\s+192 KB/);
    expect(io.outLines.at(-1)).toBe("ok");
  });

  it("reports errors as FILE:LINE: message and returns 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-partitions-"));
    try {
      const file = join(dir, "bad.csv");
      writeFileSync(
        file,
        [
          "# flash-size: 4MB",
          "nvs,      data, nvs,   0x9000,  0x4000",
          "otadata,  data, ota,   0xd000,  0x2000",
          "ota_0,    app,  ota_0, 0x10000, 0x200000",
          "ota_1,    app,  ota_1, 0x200000, 0x200000",
        ].join("\n"),
      );
      const io = capture();
      expect(await main(["partitions", "check", file], io)).toBe(1);
      expect(io.errLines[0]).toBe(`${file}:5: 'ota_1' [0x200000, 0x400000) overlaps 'ota_0' (line 4) [0x10000, 0x210000)`);
      expect(io.outLines).not.toContain("ok");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reports parse errors with their line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "xs-ota-partitions-"));
    try {
      const file = join(dir, "bad.csv");
      writeFileSync(file, "# header\nnvs, data, nvs, 0x9000\n");
      const io = capture();
      expect(await main(["partitions", "check", file], io)).toBe(1);
      expect(io.errLines[0]).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:2: expected 5 or 6 columns`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("--flash-size overrides the directive", async () => {
    const io = capture();
    expect(await main(["partitions", "check", "partitions/esp32-8mb.csv", "--flash-size", "4MB"], io)).toBe(1);
    expect(io.errLines.join("\n")).toContain("partitions/esp32-8mb.csv:");
    expect(io.errLines.join("\n")).toContain("past the end of the 4 MB flash");
  });

  it("usage errors return 2", async () => {
    for (const args of [["partitions"], ["partitions", "list"], ["partitions", "check"], ["partitions", "check", "a.csv", "--flash-size", "3MB"]]) {
      const io = capture();
      expect(await main(args, io)).toBe(2);
      expect(io.errLines.join("\n")).toContain("usage: xs-ota partitions check FILE");
    }
  });

  it("an unreadable file returns 1", async () => {
    const io = capture();
    expect(await main(["partitions", "check", join(tmpdir(), "xs-ota-no-such-file.csv")], io)).toBe(1);
    expect(io.errLines[0]).toContain("cannot read");
  });
});
