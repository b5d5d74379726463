/**
 * The Flash port's contract, run against the simulator's NOR model and a FlashRegion over it.
 * Hosts (esp32 fakes later) add their factories to `flashes`.
 */
import { suite } from "./harness.ts";
import { bytesEqual, equal, ok, throwsCode } from "./assert.ts";
import type { Flash } from "../../modules/ports/flash.ts";
import { NorFlash } from "../../hosts/sim/nor-flash.ts";
import { FlashRegion } from "../../modules/storage/flash-region.ts";

const flashes: Record<string, (blocks: number) => Flash> = {
  "nor model": (blocks) => new NorFlash({ size: blocks * 4096 }),
  "region of nor model": (blocks) => new FlashRegion(new NorFlash({ size: (blocks + 4) * 4096 }), 2 * 4096, blocks * 4096),
};

const bytes = (...b: number[]) => new Uint8Array(b);
const read = (f: Flash, length: number, offset: number) => new Uint8Array(f.read(length, offset));

export default suite("flash port", (test) => {
  for (const [kind, make] of Object.entries(flashes)) {
    test(`${kind}: status reports size, 4 KB blocks and block count`, () => {
      const s = make(8).status();
      equal(s.size, 8 * 4096, "size");
      equal(s.blockLength, 4096, "blockLength");
      equal(s.blocks, 8, "blocks");
    });

    test(`${kind}: erase sets every byte of the blocks to 0xFF, and only those`, () => {
      const f = make(4);
      f.eraseBlock(0, 4);
      f.write(new Uint8Array(4 * 4096), 0);
      f.eraseBlock(1, 3);
      equal(read(f, 1, 4095)[0], 0, "last byte of block 0 kept");
      ok(read(f, 8192, 4096).every((b) => b === 0xff), "blocks 1 and 2 erased");
      equal(read(f, 1, 3 * 4096)[0], 0, "first byte of block 3 kept");
      f.eraseBlock(3);
      equal(read(f, 1, 4 * 4096 - 1)[0], 0xff, "eraseBlock(first) erases one block");
    });

    test(`${kind}: a write only clears bits (stored = old AND new)`, () => {
      const f = make(1);
      f.eraseBlock(0);
      f.write(bytes(0xf0, 0x0f), 10);
      f.write(bytes(0x3c, 0xff), 10);
      bytesEqual(read(f, 2, 10), bytes(0x30, 0x0f));
    });

    test(`${kind}: writes accept ArrayBuffer and views at any byte offset`, () => {
      const f = make(1);
      f.eraseBlock(0);
      f.write(bytes(1, 2, 3).buffer, 4093);
      const backing = new Uint8Array([9, 8, 7, 6]);
      f.write(new DataView(backing.buffer, 1, 2), 7);
      bytesEqual(read(f, 3, 4093), bytes(1, 2, 3));
      bytesEqual(read(f, 2, 7), bytes(8, 7));
    });

    test(`${kind}: read returns a fresh ArrayBuffer of exactly the length`, () => {
      const f = make(1);
      const a = f.read(5, 0);
      equal(a.byteLength, 5, "length");
      new Uint8Array(a)[0] = 0;
      equal(read(f, 1, 0)[0], 0xff, "flash unchanged by editing the buffer");
    });

    test(`${kind}: out-of-range reads, writes and erases are refused`, () => {
      const f = make(2);
      throwsCode(() => f.read(2, 8191), "flash-bounds");
      throwsCode(() => f.read(1, -1), "flash-bounds");
      throwsCode(() => f.write(bytes(1, 2), 8191), "flash-bounds");
      throwsCode(() => f.write(bytes(1), 1.5), "flash-bounds");
      throwsCode(() => f.eraseBlock(2), "flash-bounds");
      throwsCode(() => f.eraseBlock(1, 1), "flash-bounds");
      throwsCode(() => f.eraseBlock(0, 3), "flash-bounds");
    });
  }

  test("nor model strict: a write that needs a bit set is refused and changes nothing", () => {
    const f = new NorFlash({ size: 4096, strict: true });
    f.write(bytes(0x0f), 0);
    throwsCode(() => f.write(bytes(0xf0, 0x00), 0), "flash-not-erased", "0x0");
    equal(read(f, 1, 0)[0], 0x0f, "unchanged");
    equal(read(f, 1, 1)[0], 0xff, "second byte unchanged");
    f.write(bytes(0x05), 0); // clearing more bits in place stays legal
    equal(read(f, 1, 0)[0], 0x05);
  });

  test("nor model: a cut before a write leaves flash as it was and the chip dead until power returns", () => {
    const f = new NorFlash({ size: 4096 });
    f.cutAt(2);
    f.write(bytes(1), 0);
    throwsCode(() => f.write(bytes(2, 2), 1), "flash-power-cut");
    throwsCode(() => f.read(1, 0), "flash-power-cut");
    f.powerOn();
    bytesEqual(read(f, 3, 0), bytes(1, 0xff, 0xff));
  });

  test("nor model: torn writes land their first byte or first half", () => {
    const f = new NorFlash({ size: 4096 });
    f.cutAt(1, "first-byte");
    throwsCode(() => f.write(bytes(1, 2, 3, 4), 0), "flash-power-cut");
    f.powerOn();
    f.cutAt(1, "half");
    throwsCode(() => f.write(bytes(5, 6, 7, 8), 8), "flash-power-cut");
    f.powerOn();
    bytesEqual(read(f, 12, 0), bytes(1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 5, 6, 0xff, 0xff));
  });

  test("nor model: a torn erase clears only part of the block; a multi-block erase counts per block", () => {
    const f = new NorFlash({ size: 3 * 4096 });
    f.write(new Uint8Array(3 * 4096), 0);
    const before = f.operations;
    f.cutAt(2, "half");
    throwsCode(() => f.eraseBlock(0, 3), "flash-power-cut");
    equal(f.operations - before, 2, "stopped at the second block");
    f.powerOn();
    equal(read(f, 1, 4095)[0], 0xff, "block 0 erased");
    equal(read(f, 1, 4096 + 2047)[0], 0xff, "first half of block 1 erased");
    equal(read(f, 1, 4096 + 2048)[0], 0, "second half of block 1 not");
    equal(read(f, 1, 8192)[0], 0, "block 2 untouched");
  });

  test("region: refuses a window that is not whole blocks inside the flash", () => {
    const base = new NorFlash({ size: 4 * 4096 });
    throwsCode(() => new FlashRegion(base, 100, 4096), "flash-bounds");
    throwsCode(() => new FlashRegion(base, 4096, 4 * 4096), "flash-bounds");
    throwsCode(() => new FlashRegion(base, 0, 0), "flash-bounds");
  });

  test("region: offsets are relative and nothing outside it changes", () => {
    const base = new NorFlash({ size: 4 * 4096 });
    base.write(new Uint8Array(4 * 4096), 0);
    const r = new FlashRegion(base, 4096, 2 * 4096);
    r.eraseBlock(0, 2);
    r.write(bytes(7), 0);
    equal(read(base, 1, 4096)[0], 7, "region byte 0 is base byte 4096");
    equal(read(base, 1, 4095)[0], 0, "before the region untouched");
    equal(read(base, 1, 3 * 4096)[0], 0, "after the region untouched");
  });
});
