/**
 * `xs-ota otadata` against otadata as ESP-IDF writes it. The fixtures are published bytes:
 * - boot_app0.bin, the otadata image Arduino-ESP32 flashes at 0xe000 (made with ESP-IDF's tools):
 *   entry 0 = seq 1, state 0xFFFFFFFF, crc 9a 98 43 47; everything else erased.
 * - ota_data_initial.bin, ESP-IDF's build output for a blank otadata: 0x2000 bytes of 0xFF.
 * - a dump of 0xd000 from a device whose bootloader initialised blank otadata
 *   (set_actual_ota_seq): 01 00 00 00, 20 x ff, 02 00 00 00, 9a 98 43 47.
 */
import { describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { seqCrc } from "../modules/esp-idf/otadata.ts";
import { runCliLines } from "./support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-otadata-"));
const FF20 = "ff".repeat(20);
const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ""), "hex");

function otadata(entry0?: string, entry1?: string): string {
  const image = Buffer.alloc(0x2000, 0xff);
  if (entry0) hex(entry0).copy(image, 0);
  if (entry1) hex(entry1).copy(image, 0x1000);
  const file = join(dir, `otadata-${Math.random().toString(36).slice(2)}.bin`);
  writeFileSync(file, image);
  return file;
}

async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  return runCliLines(["otadata", ...args]);
}

describe("xs-ota otadata decode", () => {
  it("reads Arduino-ESP32's boot_app0.bin: seq 1, state UNDEFINED, boots ota_0", async () => {
    const r = await run("decode", otadata(`01000000 ${FF20} ffffffff 9a984347`));
    expect(r.code).toBe(0);
    expect(r.out[0]).toBe("entry 0 (0x0000): seq 1, state UNDEFINED, crc 0x4743989a valid; selects ota_0, usable");
    expect(r.out[1]).toBe("entry 1 (0x1000): blank");
    expect(r.out.at(-1)).toBe("boot: ota_0");
  });

  it("reads ESP-IDF's ota_data_initial.bin: blank, boots ota_0 and the bootloader initialises entry 0", async () => {
    const r = await run("decode", otadata());
    expect(r.out).toEqual([
      "entry 0 (0x0000): blank",
      "entry 1 (0x1000): blank",
      "bootloader writes: entry 0 -> seq 1 VALID (otadata blank or corrupt, no factory slot)",
      "boot: ota_0",
    ]);
  });

  it("reads a device dump after the bootloader initialised it: seq 1 VALID, ota_0", async () => {
    const r = await run("decode", otadata(`01000000 ${FF20} 02000000 9a984347`));
    expect(r.out[0]).toContain("seq 1, state VALID, crc 0x4743989a valid");
    expect(r.out.at(-1)).toBe("boot: ota_0");
  });

  it("after esp_ota_set_boot_partition(ota_1) with rollback: NEW goes PENDING_VERIFY and ota_1 boots", async () => {
    const r = await run("decode", otadata(`01000000 ${FF20} 02000000 9a984347`, `02000000 ${FF20} 00000000 7437f655`));
    expect(r.out[1]).toBe("entry 1 (0x1000): seq 2, state NEW, crc 0x55f63774 valid; selects ota_1, usable");
    expect(r.out).toContain("bootloader writes: entry 1 -> PENDING_VERIFY");
    expect(r.out.at(-1)).toBe("boot: ota_1");
  });

  it("an unconfirmed trial (PENDING_VERIFY) rolls back to ota_0", async () => {
    const r = await run("decode", otadata(`01000000 ${FF20} 02000000 9a984347`, `02000000 ${FF20} 01000000 7437f655`));
    expect(r.out).toContain("bootloader writes: entry 1 -> ABORTED");
    expect(r.out.at(-1)).toBe("boot: ota_0");
  });

  it("a bad crc is named with the crc it should have, and the entry is passed over", async () => {
    const r = await run("decode", otadata(`01000000 ${FF20} 02000000 9a984347`, `02000000 ${FF20} 02000000 00000000`));
    expect(r.out[1]).toContain("crc 0x00000000 INVALID (expected 0x55f63774)");
    expect(r.out[1]).toContain("not usable");
    expect(r.out.at(-1)).toBe("boot: ota_0");
  });

  it("garbage states are shown as such and do not crash the decoder", async () => {
    const r = await run("decode", otadata(`05000000 ${FF20} 78563412 ${Buffer.from(Uint32Array.of(seqCrc(5)).buffer).toString("hex")}`));
    expect(r.out[0]).toContain("state 0x12345678 (not a state)");
    expect(r.out.at(-1)).toBe("boot: ota_0");
  });

  it("random bytes decode without a crash and still name a boot slot", async () => {
    const file = join(dir, "random.bin");
    writeFileSync(file, Buffer.from(Array.from({ length: 0x2000 }, (_, i) => (i * 131 + 7) & 0xff)));
    const r = await run("decode", file);
    expect(r.code).toBe(0);
    expect(r.out.at(-1)).toMatch(/^boot: ota_[01]$/);
  });

  it("a file too short for two entries is an error, exit 1", async () => {
    const file = join(dir, "short.bin");
    writeFileSync(file, Buffer.alloc(0x100, 0xff));
    const r = await run("decode", file);
    expect(r.code).toBe(1);
    expect(r.err.join("\n")).toMatch(/otadata must be 0x2000 bytes, got 0x100/);
  });

  it("honours --slots: seq 3 selects ota_2 of three slots", async () => {
    const crc3 = Buffer.from(Uint32Array.of(seqCrc(3)).buffer).toString("hex");
    const r = await run("decode", otadata(`03000000 ${FF20} 02000000 ${crc3}`), "--slots", "3");
    expect(r.out.at(-1)).toBe("boot: ota_2");
  });
});

describe("xs-ota otadata encode", () => {
  it("writes the same bytes ESP-IDF's device dump holds", async () => {
    const out = join(dir, "enc1.bin");
    const r = await run("encode", "--seq", "1", "--state", "VALID", "-o", out);
    expect(r.code).toBe(0);
    expect(readFileSync(out).equals(readFileSync(otadata(`01000000 ${FF20} 02000000 9a984347`)))).toBe(true);
  });

  it("writes two entries at 0x0 and 0x1000 and decodes back", async () => {
    const out = join(dir, "enc2.bin");
    await run("encode", "--seq", "1", "--state", "VALID", "--seq", "2", "--state", "pending_verify", "-o", out);
    const bytes = readFileSync(out);
    expect(bytes.length).toBe(0x2000);
    expect(bytes.subarray(0x1000, 0x1020).toString("hex")).toBe(`02000000${FF20}010000007437f655`);
    const r = await run("decode", out);
    expect(r.out.at(-1)).toBe("boot: ota_0");
  });

  it("refuses unknown states, bad sequence numbers and missing output", async () => {
    expect((await run("encode", "--seq", "1", "--state", "GOOD", "-o", join(dir, "x"))).err.join()).toMatch(/unknown otadata state 'GOOD'/);
    expect((await run("encode", "--seq", "0", "--state", "VALID", "-o", join(dir, "x"))).code).toBe(2);
    expect((await run("encode", "--seq", "4294967295", "--state", "VALID", "-o", join(dir, "x"))).code).toBe(2);
    expect((await run("encode", "--seq", "1", "--state", "VALID")).code).toBe(2);
    expect((await run("encode", "--seq", "1", "-o", join(dir, "x"))).code).toBe(2);
  });
});

describe("otadata crc against an independent implementation", () => {
  it("matches Python's zlib.crc32(seq_bytes, 0xFFFFFFFF), the ROM crc32_le(UINT32_MAX, ...)", () => {
    const seqs = [1, 2, 3, 4, 255, 256, 65535, 65536, 0x7fffffff, 0xfffffffe];
    for (let i = 0; i < 200; i++) seqs.push((i * 2654435761) >>> 0 || 1);
    const script = "import sys,zlib,struct\nfor s in sys.argv[1:]: print(zlib.crc32(struct.pack('<I', int(s)), 0xFFFFFFFF))";
    const python = execFileSync("python3", ["-c", script, ...seqs.map(String)], { encoding: "utf8" }).trim().split("\n").map(Number);
    expect(seqs.map(seqCrc)).toEqual(python);
  });
});

describe("the installed command", () => {
  it("bin/xs-ota.js runs otadata decode end to end", () => {
    const file = otadata(`01000000 ${FF20} ffffffff 9a984347`);
    const out = execFileSync(process.execPath, ["bin/xs-ota.js", "otadata", "decode", file], { encoding: "utf8" });
    expect(out.trim().split("\n").at(-1)).toBe("boot: ota_0");
  });
});
