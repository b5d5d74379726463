/**
 * W800: the contract suite (header, format, boot control under cuts) on Node and XS, then the
 * Node-only parts: CRCs against node:zlib, the XZ install through the simulated secboot, a power
 * cut sweep over a whole update, and `xs-ota image pack|info --target w800`.
 */
import { describe, expect, it } from "vitest";
import { crc32 } from "node:zlib";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { contract } from "./contract/vitest.ts";
import w800 from "./contract/w800.contract.ts";
import { W800Device, W800_TABLE, body, layout, w800Image } from "./contract/w800-fixture.ts";
import { decodeHeader, encodeHeader, W800_2MB_LAYOUT } from "../modules/w800/header.ts";
import { packW800Image } from "../modules/w800/pack.ts";
import { w800Format } from "../modules/w800/format.ts";
import { readInstallRecord } from "../modules/w800/record.ts";
import { parsePartitionCsv } from "../modules/esp-idf/partition-table.ts";
import { runW800Secboot, w800Program } from "../hosts/sim/w800-secboot.ts";
import { nodeDigests } from "../hosts/sim/node-digest.ts";
import { xzCompress } from "../hosts/sim/xz.ts";
import { powerCutSweep } from "../hosts/sim/power-cut.ts";
import { w800SweepBoard } from "../hosts/sim/w800-power-cut.ts";
import { W800_TABLE_FILE, packW800Xz } from "../cli/w800-image.ts";
import { runCli } from "./support/cli.ts";

contract(w800, new URL("./contract/w800.contract.ts", import.meta.url));

/** A body that compresses as firmware does: repeated structure with some noise. */
function firmware(version: string, length: number): Uint8Array {
  const b = new Uint8Array(length);
  for (let i = 0; i < length; i++) b[i] = i % 64 < 40 ? (i >> 6) & 0xff : (i * 131 + version.length) % 251;
  return b;
}

describe("W800 layout and CRCs", () => {
  it("the fixture table and W800_2MB_LAYOUT are partitions/w800-2mb.csv", () => {
    const { partitions } = parsePartitionCsv(readFileSync(W800_TABLE_FILE, "utf8"));
    expect(partitions.map(({ name, type, subtype, offset, size }) => ({ name, type, subtype, offset, size }))).toEqual(W800_TABLE);
    expect(W800_2MB_LAYOUT).toEqual({ app: { offset: 0xf000, size: 0x122000 }, appOta: { offset: 0x131000, size: 0xae000 } });
  });

  it("hd_checksum and org_checksum are node:zlib's crc32 complemented", () => {
    const image = w800Image("4.5.6", 777);
    const v = new DataView(image.buffer);
    expect(v.getUint32(60, true)).toBe((crc32(image.subarray(0, 60)) ^ 0xffffffff) >>> 0);
    expect(v.getUint32(24, true)).toBe((crc32(image.subarray(64)) ^ 0xffffffff) >>> 0);
    expect(v.getUint32(12, true)).toBe(780);
  });
});

describe("W800 secboot", () => {
  it("installs an XZ image: the installed body is the source byte for byte, and it boots", () => {
    const d = W800Device.fresh("1.0.0");
    const source = firmware("2.0.0", 70_000);
    const image = packW800Xz({ version: "2.0.0", body: source, layout });
    expect(image.length).toBeLessThan(source.length / 2);
    d.stage(image);
    expect(w800Format(layout).verify(d.partitions.open("app_ota"), image.length, nodeDigests)).toEqual({ version: "2.0.0" });
    d.boot.select("app_ota");
    const boot = runW800Secboot(d.partitions, { layout });
    expect(boot.slot).toBe("app");
    expect(boot.log).toContain("unxz...");
    expect(boot.log).toContain("unxz succeed");
    const program = w800Program(d.partitions, layout);
    expect(program.version).toBe("2.0.0");
    expect(Buffer.from(program.body.subarray(0, source.length)).equals(Buffer.from(source))).toBe(true);
    expect(d.boot.info()).toMatchObject({ state: "pending", installedFrom: "app_ota" });
    // Restarting does not install again.
    const ops = d.flash.operations;
    expect(runW800Secboot(d.partitions, { layout }).slot).toBe("app");
    expect(d.flash.operations).toBe(ops);
  });

  it("installs an uncompressed staged image the same way", () => {
    const d = W800Device.fresh("1.0.0");
    d.stage(w800Image("1.1.0", 9000));
    d.boot.select("app_ota");
    expect(runW800Secboot(d.partitions, { layout }).slot).toBe("app");
    expect(Buffer.from(w800Program(d.partitions, layout).body).equals(Buffer.from(body("1.1.0", 9000)))).toBe(true);
  });

  it("refuses to install a damaged XZ stream, an inner image with a bad CRC, or a big dictionary, and keeps booting the old image", async () => {
    const inner = packW800Image({ version: "2.0.0", body: firmware("2.0.0", 20_000), layout, digests: nodeDigests });
    const broken = inner.slice();
    broken[64 + 100] ^= 1;
    const lzma = createRequire(import.meta.url)("lzma-native") as { compress(b: Uint8Array, preset: number): Promise<Buffer> };
    const bigDict = new Uint8Array(await lzma.compress(inner, 6));
    const damaged = xzCompress(inner);
    damaged[damaged.length >> 1] ^= 0x10;
    for (const [name, stream, why] of [
      ["damaged", damaged, "unxz failed"],
      ["bad inner crc", xzCompress(broken), "org_checksum"],
      ["8 MiB dictionary", bigDict, "unxz failed"],
    ] as const) {
      const d = W800Device.fresh("1.0.0");
      d.stage(packW800Image({ version: "2.0.0", body: stream, layout, digests: nodeDigests, compressType: 1 }));
      d.boot.select("app_ota");
      const boot = runW800Secboot(d.partitions, { layout });
      expect(boot.slot, name).toBe("app");
      expect(boot.log.join("\n"), name).toContain(why);
      expect(w800Program(d.partitions, layout).version, name).toBe("1.0.0");
      expect(readInstallRecord(d.partitions.open("ota_state"))?.state, name).toBe("requested");
    }
  });

  it("with no valid run image and nothing to install, boots nothing and says why", () => {
    const d = new W800Device();
    const boot = runW800Secboot(d.partitions, { layout });
    expect(boot.slot).toBeUndefined();
    expect(boot.log.join("\n")).toContain("app is not bootable: W800 header: magic_no");
  });

  it("power cut at every flash operation of an update (npm run powercut -- --board w800's sweep): never unbootable, a confirmed image stays", () => {
    const old = packW800Image({ version: "1.0.0", body: firmware("1.0.0", 30_000), layout, digests: nodeDigests });
    const image = packW800Xz({ version: "2.0.0", body: firmware("2.0.0", 40_000), layout });
    const table = parsePartitionCsv(readFileSync(W800_TABLE_FILE, "utf8"));
    const o = { table: table.partitions, flashSize: table.flashSize ?? 0, oldImage: old, newImage: image, chunk: 1460, sha256: () => nodeDigests.create("sha256"), digests: nodeDigests, board: w800SweepBoard(old, image, layout) };
    const r = powerCutSweep(o);
    expect([r.unbootable, r.revertedAfterConfirm]).toEqual([0, 0]);
    expect(r.points.length).toBeGreaterThanOrEqual(50);
    // Until select's record write has landed whole nothing is requested; from then on the install completes.
    expect(r.byPhase.write.old).toBe(r.byPhase.write.points);
    expect(r.byPhase["first boot"].new).toBe(r.byPhase["first boot"].points);
    const failing = powerCutSweep({ ...o, selfTest: "fails" });
    expect(failing.unbootable).toBe(0);
    expect(failing.fallback, "the one run partition keeps the new image").toBe("new");
  });
});

describe("xs-ota image pack|info --target w800", () => {
  const dir = mkdtempSync(join(tmpdir(), "xs-ota-w800-"));
  const payload = join(dir, "app.bin");
  writeFileSync(payload, firmware("3.0.0", 30_001));

  it("packs an uncompressed image that info reads back", async () => {
    const r = await runCli(["image", "pack", "--target", "w800", "--version", "3.0.0", "--payload", payload, "-o", join(dir, "a.img")]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const image = new Uint8Array(readFileSync(join(dir, "a.img")));
    expect(decodeHeader(image)).toMatchObject({ version: "3.0.0", imgLen: 30_004, imgHeaderAddr: 0x0800f000, imgAddr: 0x0800f400 });
    const info = await runCli(["image", "info", join(dir, "a.img")]);
    expect(info.code).toBe(0);
    expect(info.out).toContain("magic_no: a0ffff9f");
    expect(info.out).toContain("img_attr: 00000001 (img_type 1, compress_type 0)");
    expect(info.out).toContain("img_addr: 0800f400");
    expect(info.out).toContain("ver: 3.0.0");
    expect(info.out).toMatch(/\nvalid$/);
  });

  it("packs an XZ image; info prints the outer and the inner header", async () => {
    const r = await runCli(["image", "pack", "--target", "w800", "--xz", "--version", "3.0.0", "--payload", payload, "-o", join(dir, "x.img")]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("xz");
    const info = await runCli(["image", "info", join(dir, "x.img")]);
    expect(info.code).toBe(0);
    expect(info.out).toContain("img_attr: 00100001 (img_type 1, compress_type 1 xz)");
    expect(info.out).toContain("inner image (30068 bytes):");
    expect(info.out).toContain("  img_attr: 00000001 (img_type 1, compress_type 0)");
    expect(info.out).toContain("  img_len: 30004 bytes");
  });

  it("info says invalid for a damaged header or a truncated file", async () => {
    const image = new Uint8Array(readFileSync(join(dir, "a.img")));
    const bad = image.slice();
    bad[40] ^= 1;
    writeFileSync(join(dir, "bad.img"), bad);
    const r = await runCli(["image", "info", join(dir, "bad.img")]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/invalid: W800 header: hd_checksum/);
    writeFileSync(join(dir, "cut.img"), image.subarray(0, 5000));
    const c = await runCli(["image", "info", join(dir, "cut.img")]);
    expect(c.code).toBe(1);
    expect(c.out).toContain("invalid:");
  });

  it("refuses bad arguments with exit 2, and the ESP default still packs", async () => {
    expect((await runCli(["image", "pack", "--target", "w800", "--version", "3.0.0", "-o", join(dir, "n.img")])).code).toBe(2);
    expect((await runCli(["image", "pack", "--target", "w800", "--version", "x".repeat(16), "--payload", payload, "-o", join(dir, "n.img")])).code).toBe(2);
    expect((await runCli(["image", "pack", "--target", "nrf", "--version", "1", "--payload", payload, "-o", join(dir, "n.img")])).code).toBe(2);
    expect((await runCli(["image", "pack", "--xz", "--version", "1.0.0", "-o", join(dir, "e.bin"), payload])).code).toBe(2);
    expect((await runCli(["image", "pack", "--version", "1.0.0", "-o", join(dir, "e.bin"), payload])).code).toBe(0);
  });

  it("a header encoded from a decoded one is the same bytes", () => {
    const image = new Uint8Array(readFileSync(join(dir, "x.img")));
    expect(Buffer.from(encodeHeader(decodeHeader(image))).equals(Buffer.from(image.subarray(0, 64)))).toBe(true);
  });
});
