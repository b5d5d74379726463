import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlashFile } from "../hosts/sim/flash-file.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-flash-"));

describe("file-backed NOR flash", () => {
  it("starts erased, and every operation is in the file when it returns", () => {
    const path = join(dir, "a.bin");
    const { flash, close } = openFlashFile(path, 4 * 4096);
    expect(statSync(path).size).toBe(4 * 4096);
    expect(readFileSync(path).every((b) => b === 0xff)).toBe(true);
    flash.write(Uint8Array.of(1, 2, 3), 4095);
    expect([...readFileSync(path).subarray(4095, 4098)]).toEqual([1, 2, 3]);
    flash.eraseBlock(1);
    expect([...readFileSync(path).subarray(4095, 4098)]).toEqual([1, 0xff, 0xff]);
    close();
  });

  it("reopens with the same contents", () => {
    const path = join(dir, "b.bin");
    const first = openFlashFile(path, 2 * 4096);
    first.flash.write(Uint8Array.of(0x5a), 100);
    first.close();
    const again = openFlashFile(path, 2 * 4096);
    expect(new Uint8Array(again.flash.read(1, 100))[0]).toBe(0x5a);
    again.close();
  });

  it("a torn write reaches the file as far as it landed", () => {
    const path = join(dir, "c.bin");
    const { flash, close } = openFlashFile(path, 4096);
    flash.cutAt(1, "half");
    expect(() => flash.write(Uint8Array.of(1, 2, 3, 4), 0)).toThrow(/power lost/);
    expect([...readFileSync(path).subarray(0, 4)]).toEqual([1, 2, 0xff, 0xff]);
    close();
  });

  it("refuses a file of the wrong size", () => {
    const path = join(dir, "d.bin");
    writeFileSync(path, Buffer.alloc(1000));
    expect(() => openFlashFile(path, 4096)).toThrow(/holds 1000 bytes of flash, expected 4096/);
  });
});
