/**
 * ImageWriter's contract, checked through its public API and what lands in a NOR model: the
 * bytes, the operation counter and the operation log. Portable: runs on Node and on XS.
 */
import { suite } from "./harness.ts";
import { AssertionError, bytesEqual, equal, ok, throwsCode } from "./assert.ts";
import { isOtaError } from "../../modules/errors.ts";
import { ImageWriter } from "../../modules/storage/image-writer.ts";
import { NorFlash, type FlashOperation, type Tear } from "../../hosts/sim/nor-flash.ts";
import { pattern } from "./pattern.ts";

const BL = 4096;

/** A slot of `blocks` blocks whose every byte is `fill` (not erased unless fill is 0xFF). */
function slot(blocks: number, fill: number, strict = false): NorFlash {
  return new NorFlash({ size: blocks * BL, data: new Uint8Array(blocks * BL).fill(fill), strict });
}

const read = (f: NorFlash, offset: number, length: number) => new Uint8Array(f.read(length, offset));

function allAre(bytes: Uint8Array, value: number, what: string): void {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== value) throw new AssertionError(`${what}: byte ${i} is 0x${bytes[i].toString(16)}, expected 0x${value.toString(16)}`);
  }
}

/**
 * Feeds `image` from `writer.offset` to the end, cycling through chunk `sizes` (0 allowed),
 * passing `at` and calling `after` once each write returned.
 */
function stream(writer: ImageWriter, image: Uint8Array, sizes: number[], after?: (w: ImageWriter) => void): void {
  let i = 0;
  let guard = 0;
  while (writer.offset < image.length) {
    if (++guard > 100000) throw new AssertionError("stream makes no progress");
    const n = Math.min(sizes[i++ % sizes.length], image.length - writer.offset);
    writer.write(image.subarray(writer.offset, writer.offset + n), writer.offset);
    after?.(writer);
  }
}

/** Blocks erased by the operations in `ops`, in order. */
const erasedBlocks = (ops: FlashOperation[]) => ops.filter((o) => o.kind === "erase").map((o) => o.offset / BL);

const CHUNKS = [1, 7, 1500, 0, 4096, 5000];

export default suite("image writer", (test) => {
  test("streams an image in odd chunk sizes; the slot holds exactly it, erased after it, untouched past its last block", () => {
    const size = 3 * BL + 1000;
    const image = pattern(size, 1);
    const flash = slot(6, 0xa5);
    const writer = new ImageWriter(flash, size);
    equal(writer.size, size, "size");
    equal(writer.offset, 0, "offset before");
    const seen: number[] = [];
    stream(writer, image, CHUNKS, (w) => seen.push(w.offset));
    // Offsets follow the chunk sizes exactly, including the 0-byte chunk.
    equal(seen.slice(0, 6).join(","), "1,8,1508,1508,5604,10604", "offsets after each chunk");
    equal(writer.offset, size, "offset after");
    ok(writer.done, "done");
    bytesEqual(read(flash, 0, size), image, "image in the slot");
    allAre(read(flash, size, 4 * BL - size), 0xff, "rest of the image's last block");
    allAre(read(flash, 4 * BL, 2 * BL), 0xa5, "blocks after the image's last block");
  });

  test("accepts ArrayBuffer and DataView chunks as well as byte views at an offset", () => {
    const image = pattern(300, 2);
    const flash = slot(1, 0);
    const writer = new ImageWriter(flash, 300);
    writer.write(image.slice(0, 100).buffer);
    writer.write(new DataView(image.buffer, 100, 100), 100);
    writer.write(image.subarray(200), 200);
    writer.finish();
    bytesEqual(read(flash, 0, 300), image);
  });

  /**
   * The erase rule: every erase starts where erased flash ends, ends on an `unit` boundary or at
   * the image's last block, comes before the write that needs it and behind no written data.
   */
  const eraseRule = (unit: number, size: number, slotBlocks: number) => {
    const image = pattern(size, 3);
    const flash = slot(slotBlocks, 0x00);
    const ops: FlashOperation[] = [];
    flash.record = ops;
    stream(new ImageWriter(flash, size, { eraseAhead: unit }), image, [1, 7, 1500, 0, 4096, 5000, 9000, 40000, 70000]);
    bytesEqual(read(flash, 0, size), image, "image");
    const imageBlocks = Math.ceil(size / BL);
    let written = 0;
    let erasedTo = 0; // bytes [0, erasedTo) erased so far
    let erases = 0;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (op.kind === "erase") {
        // NorFlash logs one operation per block erased: a run of them is one eraseBlock call.
        equal(op.offset, erasedTo, `op ${i}: erases the next block in order, once`);
        ok(op.offset >= written - (written % BL), `op ${i}: erased block ${op.offset / BL} behind data already written up to ${written}`);
        erasedTo += BL;
        const runEnds = i + 1 >= ops.length || ops[i + 1].kind !== "erase";
        if (runEnds) {
          erases++;
          ok(erasedTo % unit === 0 || erasedTo === imageBlocks * BL, `op ${i}: an erase ends at ${erasedTo}, neither a ${unit}-byte boundary nor the image's end`);
        }
      } else {
        equal(op.offset, written, `op ${i}: writes are sequential`);
        ok(op.offset + op.length <= erasedTo, `op ${i}: write up to ${op.offset + op.length} before it was erased`);
        ok(op.length > 0, `op ${i}: an empty write reached the flash`);
        written = op.offset + op.length;
      }
    }
    equal(written, size, "every byte written");
    equal(erasedBlocks(ops).join(","), Array.from({ length: imageBlocks }, (_, k) => k).join(","), "each of the image's blocks erased once, none past it");
    return erases;
  };

  test("erases ahead in 64 KB units (one SPI NOR block erase each), never past the image's last block, each block once", () => {
    equal(eraseRule(16 * BL, 40 * BL + 123, 48), 3, "erases for 41 blocks: 16 + 16 + 9");
    equal(eraseRule(16 * BL, 4 * BL + 123, 8), 1, "a small image: one erase of its 5 blocks");
  });

  test("with a 4 KB unit it erases just ahead of the data, block by block", () => {
    equal(eraseRule(BL, 4 * BL + 123, 8) >= 3, true, "several erases");
    const flash = slot(8, 0x00);
    const writer = new ImageWriter(flash, 4 * BL + 123, { eraseAhead: BL });
    writer.write(pattern(10, 1));
    allAre(read(flash, BL, BL), 0x00, "block 1 untouched while only block 0 holds data");
  });

  test("wholeSlot erases the entire slot before the first byte, once (as esp_ota_begin does)", () => {
    const flash = slot(8, 0x00);
    const ops: FlashOperation[] = [];
    flash.record = ops;
    const image = pattern(3 * BL + 5, 2);
    stream(new ImageWriter(flash, image.length, { wholeSlot: true }), image, [100, 5000]);
    equal(erasedBlocks(ops).join(","), "0,1,2,3,4,5,6,7", "every block of the slot, once");
    equal(ops.findIndex((o) => o.kind === "write") > ops.map((o) => o.kind).lastIndexOf("erase"), true, "all erased before the first write");
    bytesEqual(read(flash, 0, image.length), image, "image");
  });

  test("refuses an image larger than the slot before any flash operation, naming both sizes", () => {
    const flash = slot(4, 0x00);
    flash.record = [];
    throwsCode(() => new ImageWriter(flash, 4 * BL + 1), "image-too-large", String(4 * BL + 1));
    throwsCode(() => new ImageWriter(flash, 4 * BL + 1), "image-too-large", String(4 * BL));
    throwsCode(() => ImageWriter.resume(flash, 5 * BL, 0), "image-too-large", String(5 * BL));
    equal(flash.operations, 0, "operations");
    equal(flash.record.length, 0, "operation log");
    allAre(read(flash, 0, 4 * BL), 0x00, "slot unchanged");
  });

  test("refuses image sizes that are not positive integers with bad-argument", () => {
    const flash = slot(2, 0x00);
    for (const size of [0, -1, -4096, Number.NaN, 1.5, Number.POSITIVE_INFINITY]) {
      throwsCode(() => new ImageWriter(flash, size), "bad-argument", String(size));
    }
    equal(flash.operations, 0, "operations");
  });

  test("an image of exactly the slot size fits", () => {
    const image = pattern(3 * BL, 4);
    const flash = slot(3, 0x00, true);
    flash.record = [];
    const writer = new ImageWriter(flash, 3 * BL);
    stream(writer, image, [5000, 1]);
    writer.finish();
    bytesEqual(read(flash, 0, 3 * BL), image, "image");
    equal(erasedBlocks(flash.record).join(","), "0,1,2", "erased blocks");
  });

  test("a chunk that goes past the announced size is refused and nothing of it is written", () => {
    const size = BL + 904; // 5000
    const image = pattern(size + 1, 5);
    const flash = slot(3, 0x00);
    const writer = new ImageWriter(flash, size, { eraseAhead: BL });
    writer.write(image.subarray(0, 4000), 0);
    const before = flash.operations;
    throwsCode(() => writer.write(image.subarray(4000, size + 1), 4000), "image-too-large", String(size));
    equal(flash.operations, before, "no flash operation for the refused chunk");
    equal(writer.offset, 4000, "offset unchanged");
    ok(!writer.done, "not done");
    allAre(read(flash, 4000, BL - 4000), 0xff, "rest of block 0 still erased, nothing written");
    allAre(read(flash, BL, 2 * BL), 0x00, "block 1 not erased for the refused chunk");
    // The right chunk still goes in.
    writer.write(image.subarray(4000, size), 4000);
    writer.finish();
    bytesEqual(read(flash, 0, size), image.subarray(0, size), "image");
  });

  test("a first chunk bigger than the whole image touches no flash", () => {
    const flash = slot(2, 0x00);
    const writer = new ImageWriter(flash, 10);
    throwsCode(() => writer.write(new Uint8Array(11)), "image-too-large", "10");
    equal(flash.operations, 0, "operations");
    equal(writer.offset, 0, "offset");
  });

  test("write(chunk, at) with at other than the offset is refused with image-offset", () => {
    const image = pattern(100, 6);
    const flash = slot(1, 0x00);
    const writer = new ImageWriter(flash, 100);
    writer.write(image.subarray(0, 10), 0);
    const before = flash.operations;
    throwsCode(() => writer.write(image.subarray(10, 20), 11), "image-offset", "11");
    throwsCode(() => writer.write(image.subarray(10, 20), 9), "image-offset", "10");
    throwsCode(() => writer.write(image.subarray(10, 20), 0), "image-offset");
    equal(flash.operations, before, "no flash operation");
    equal(writer.offset, 10, "offset unchanged");
    writer.write(image.subarray(10, 100), 10);
    writer.finish();
    bytesEqual(read(flash, 0, 100), image);
  });

  test("finish() before every byte is image-incomplete; after, it passes and done is set", () => {
    const image = pattern(5000, 7);
    const writer = new ImageWriter(slot(2, 0x00), 5000);
    ok(!writer.done, "not done at the start");
    throwsCode(() => writer.finish(), "image-incomplete", "0 of 5000");
    writer.write(image.subarray(0, 4999));
    ok(!writer.done, "not done one byte short");
    throwsCode(() => writer.finish(), "image-incomplete", "4999 of 5000");
    writer.write(image.subarray(4999), 4999);
    ok(writer.done, "done");
    writer.finish();
  });

  test("resume inside a block whose rest is still erased keeps the offset and does not erase that block again", () => {
    const size = 3 * BL + 500;
    const image = pattern(size, 8);
    const flash = slot(5, 0x00, true);
    const first = new ImageWriter(flash, size);
    first.write(image.subarray(0, BL + 1234), 0);
    flash.record = [];
    const writer = ImageWriter.resume(flash, size, BL + 1234);
    equal(writer.offset, BL + 1234, "offset unchanged");
    ok(!writer.done, "not done");
    equal(flash.record.length, 0, "resume itself changes nothing");
    stream(writer, image, [1000, 3]);
    writer.finish();
    bytesEqual(read(flash, 0, size), image, "image");
    equal(erasedBlocks(flash.record).join(","), "2,3", "only the blocks after the resumed one are erased");
    allAre(read(flash, 4 * BL, BL), 0x00, "block after the image untouched");
  });

  test("resume ignores programmed bytes past the resumed block: that block is erased before use anyway", () => {
    const size = 3 * BL;
    const image = pattern(size, 9);
    const flash = slot(3, 0xff, true);
    new ImageWriter(flash, size).write(image.subarray(0, 100), 0);
    // Stale bytes in block 1, which the first writer had not erased yet (strict: they must be erased before use).
    flash.write(new Uint8Array(8).fill(0x11), BL);
    const writer = ImageWriter.resume(flash, size, 100);
    equal(writer.offset, 100, "offset unchanged");
    stream(writer, image, [4096]);
    bytesEqual(read(flash, 0, size), image, "image");
  });

  test("resume after bytes past the recorded offset were programmed backs off to the block start and erases it again", () => {
    const size = 3 * BL + 77;
    const image = pattern(size, 10);
    const flash = slot(4, 0x00, true);
    const first = new ImageWriter(flash, size);
    first.write(image.subarray(0, BL + 1000), 0);
    const recorded = first.offset;
    // A write that happened after the offset was saved: other bytes than the image's at that place.
    first.write(new Uint8Array(2000), recorded);
    flash.record = [];
    const writer = ImageWriter.resume(flash, size, recorded);
    equal(writer.offset, BL, "backs off to the start of the block");
    stream(writer, image, [1500]);
    writer.finish();
    bytesEqual(read(flash, 0, size), image, "image");
    equal(erasedBlocks(flash.record).join(","), "1,2,3", "the block is erased again, then the rest");
  });

  test("resume backs off even when the only programmed byte is the last one of the block", () => {
    const size = 2 * BL + 10;
    const image = pattern(size, 11);
    const flash = slot(3, 0x00, true);
    new ImageWriter(flash, size).write(image.subarray(0, 1000), 0);
    flash.write(new Uint8Array([0x7e]), BL - 1);
    const writer = ImageWriter.resume(flash, size, 1000);
    equal(writer.offset, 0, "backs off to block 0");
    stream(writer, image, [4096]);
    bytesEqual(read(flash, 0, size), image, "image");
  });

  test("resume at a block-aligned offset continues there and erases from that block on", () => {
    const size = 3 * BL + 10;
    const image = pattern(size, 12);
    const flash = slot(4, 0x00, true);
    new ImageWriter(flash, size).write(image.subarray(0, 2 * BL), 0);
    flash.record = [];
    const writer = ImageWriter.resume(flash, size, 2 * BL);
    equal(writer.offset, 2 * BL, "offset");
    stream(writer, image, [777]);
    writer.finish();
    bytesEqual(read(flash, 0, size), image, "image");
    equal(erasedBlocks(flash.record).join(","), "2,3", "erased blocks");
  });

  test("resume at offset 0 starts over on an unerased slot", () => {
    const size = BL + 5;
    const image = pattern(size, 13);
    const flash = slot(2, 0x00, true);
    flash.record = [];
    const writer = ImageWriter.resume(flash, size, 0);
    equal(writer.offset, 0, "offset");
    stream(writer, image, [3000]);
    writer.finish();
    bytesEqual(read(flash, 0, size), image, "image");
    equal(erasedBlocks(flash.record).join(","), "0,1", "erased blocks");
  });

  test("resume at offset == size is done at once, aligned or not", () => {
    for (const size of [BL + 300, 2 * BL]) {
      const image = pattern(size, 14);
      const flash = slot(3, 0x00, true);
      stream(new ImageWriter(flash, size), image, [2048]);
      const before = flash.operations;
      const writer = ImageWriter.resume(flash, size, size);
      equal(writer.offset, size, `offset (size ${size})`);
      ok(writer.done, `done (size ${size})`);
      writer.finish();
      throwsCode(() => writer.write(new Uint8Array(1), size), "image-too-large");
      writer.write(new Uint8Array(0), size);
      equal(flash.operations, before, `no flash operation (size ${size})`);
      bytesEqual(read(flash, 0, size), image, `image (size ${size})`);
    }
  });

  test("resume with an offset past the end, negative or fractional is image-offset, with no flash operation", () => {
    const flash = slot(2, 0x00);
    flash.record = [];
    for (const offset of [5001, 2 * BL, -1, 1.5, Number.NaN]) {
      throwsCode(() => ImageWriter.resume(flash, 5000, offset), "image-offset", String(offset));
      throwsCode(() => ImageWriter.resume(flash, 5000, offset), "image-offset", "5000");
    }
    equal(flash.operations, 0, "operations");
    equal(flash.record.length, 0, "operation log");
  });

  test("strict NOR: the whole stream programs only erased bytes, over a slot of zeros", () => {
    const size = 5 * BL - 3;
    const image = pattern(size, 15);
    const flash = slot(6, 0x00, true);
    const writer = new ImageWriter(flash, size);
    stream(writer, image, CHUNKS);
    writer.finish();
    bytesEqual(read(flash, 0, size), image, "image");
    allAre(read(flash, 5 * BL, BL), 0x00, "block after the image");
  });

  test("a power cut mid-stream keeps the written prefix; resuming from the last reported offset completes the image", () => {
    const size = 3 * BL + 1234;
    const image = pattern(size, 16);
    const sizes = [1000, 3000, 5000, 7, 4096];
    const clean = slot(5, 0x00);
    stream(new ImageWriter(clean, size), image, sizes);
    const total = clean.operations;
    ok(total >= 8, `a clean stream has several operations (${total})`);
    const tears: Tear[] = ["none", "first-byte", "half"];
    let backedOff = 0;
    for (const tear of tears) {
      for (let n = 1; n <= total; n++) {
        const where = `cut at ${n} (${tear})`;
        const flash = slot(5, 0x00, true);
        flash.cutAt(n, tear);
        let saved = 0;
        let cut = false;
        try {
          stream(new ImageWriter(flash, size), image, sizes, (w) => (saved = w.offset));
        } catch (e) {
          if (!isOtaError(e, "flash-power-cut")) throw e;
          cut = true;
        }
        ok(cut, `${where}: the power was cut`);
        ok(saved < size, `${where}: cut before the end`);
        flash.powerOn();
        bytesEqual(read(flash, 0, saved), image.subarray(0, saved), `${where}: prefix`);
        const writer = ImageWriter.resume(flash, size, saved);
        ok(writer.offset === saved || writer.offset === saved - (saved % BL), `${where}: resumes at ${writer.offset} from ${saved}`);
        if (writer.offset !== saved) backedOff++;
        stream(writer, image, sizes);
        writer.finish();
        bytesEqual(read(flash, 0, size), image, `${where}: image`);
        allAre(read(flash, 4 * BL, BL), 0x00, `${where}: block after the image`);
      }
    }
    ok(backedOff > 0, "some torn write made a resume back off");
  });

  test("a second power cut after a back-off also resumes, when the caller saves the offset resume returned", () => {
    const size = 3 * BL;
    const image = pattern(size, 17);
    const sizes = [1000];
    for (const tear of ["first-byte", "half"] as Tear[]) {
      for (let second = 1; second <= 4; second++) {
        const where = `${tear}, second cut at ${second}`;
        const flash = slot(3, 0x00, true);
        const first = new ImageWriter(flash, size);
        first.write(image.subarray(0, 1000), 0);
        first.write(image.subarray(1000, 2000), 1000);
        let saved = first.offset;
        flash.cutAt(1, tear);
        throwsCode(() => first.write(image.subarray(2000, 3000), 2000), "flash-power-cut");
        flash.powerOn();
        const again = ImageWriter.resume(flash, size, saved);
        equal(again.offset, 0, `${where}: backed off`);
        saved = again.offset;
        flash.cutAt(second, tear);
        try {
          stream(again, image, sizes, (w) => (saved = w.offset));
        } catch (e) {
          if (!isOtaError(e, "flash-power-cut")) throw e;
        }
        ok(flash.poweredOff, `${where}: the second cut happened`);
        flash.powerOn();
        const last = ImageWriter.resume(flash, size, saved);
        stream(last, image, sizes);
        bytesEqual(read(flash, 0, size), image, `${where}: image`);
      }
    }
  });
});
