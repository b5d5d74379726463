/**
 * xs-ota image pack / info: a JavaScript bundle packed into the simulator's ESP32 app image
 * layout, then checked the way the bootloader checks a slot.
 */
import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseImagePrefix, verifyImage } from "../modules/esp-idf/image.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { nobleDigests } from "../modules/verify/noble-digest.ts";
import { runCli } from "./support/cli.ts";

const dir = mkdtempSync(join(tmpdir(), "xs-ota-image-"));
const path = (name: string) => join(dir, name);

async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(args);
}

const bundle = path("app.js");
writeFileSync(bundle, 'export default function main() { trace("hello from 2.3.4\\n"); }\n'.repeat(300));

async function packed(name: string, ...extra: string[]): Promise<Uint8Array> {
  const r = await run("image", "pack", "--version", "2.3.4", ...extra, "-o", path(name), bundle);
  expect(r).toMatchObject({ code: 0 });
  return new Uint8Array(readFileSync(path(name)));
}

describe("xs-ota image pack / info", () => {
  it("packs a bundle and reads it back", async () => {
    const r = await run("image", "pack", "--version", "2.3.4", "--secure-version", "7", "--project", "blinky", "-o", path("a.bin"), bundle);
    expect(r.code).toBe(0);
    const image = readFileSync(path("a.bin"));
    const sha = createHash("sha256").update(image).digest("hex");
    expect(r.out).toContain(path("a.bin"));
    expect(r.out).toContain(`size: ${image.length} bytes`);
    expect(r.out).toContain("version: 2.3.4");
    expect(r.out).toContain("secure version: 7");
    expect(r.out).toContain(`sha256: ${sha}`);

    const info = await run("image", "info", path("a.bin"));
    expect(info.code).toBe(0);
    expect(info.out).toContain("version: 2.3.4");
    expect(info.out).toContain("secure version: 7");
    expect(info.out).toContain("project: blinky");
    expect(info.out).toMatch(/segments: 2 /);
    expect(info.out).toContain(`length: ${image.length} bytes`);
    expect(info.out).toContain("hash: sha256 appended, ok");
    expect(info.out).toContain(`sha256: ${sha}`);
  });

  it("the packed image verifies with modules/esp-idf/image.ts and carries the bundle", async () => {
    const image = await packed("b.bin");
    const flash = new NorFlash({ size: 0x10000 });
    flash.write(image, 0);
    const v = verifyImage(flash, () => nobleDigests.create("sha256"));
    expect(v.length).toBe(image.length);
    expect(v.desc).toMatchObject({ version: "2.3.4", secureVersion: 0, projectName: "xs-ota-app" });
    expect(parseImagePrefix(image.subarray(0, 288)).desc.version).toBe("2.3.4");
    const [at, length] = v.segments[1];
    const js = readFileSync(bundle);
    expect(Buffer.from(image.subarray(at, at + js.length)).equals(js)).toBe(true);
    expect(length).toBe((js.length + 3) & ~3);
  });

  it("a truncated image is invalid, with the reason", async () => {
    const image = await packed("c.bin");
    for (const cut of [image.length - 1, image.length - 40, 1000, 100]) {
      writeFileSync(path("cut.bin"), image.subarray(0, cut));
      const r = await run("image", "info", path("cut.bin"));
      expect(r.code, `cut at ${cut}`).toBe(1);
      expect(r.out).toMatch(/^invalid: /);
    }
    writeFileSync(path("cut.bin"), image.subarray(0, 100));
    expect((await run("image", "info", path("cut.bin"))).out).toBe("invalid: truncated: an image starts with 288 bytes of header and descriptor, the file has 100");
    writeFileSync(path("cut.bin"), image.subarray(0, 1000));
    expect((await run("image", "info", path("cut.bin"))).out).toMatch(/^invalid: truncated: the file has 1000 bytes, segment 1 ends at \d+ \(the bootloader says: /);
    writeFileSync(path("cut.bin"), image.subarray(0, image.length - 1));
    expect((await run("image", "info", path("cut.bin"))).out).toContain("invalid: appended SHA-256 does not match");
    writeFileSync(path("empty.bin"), new Uint8Array(0));
    expect((await run("image", "info", path("empty.bin"))).code).toBe(1);
  });

  it("a flipped bit is invalid, with the reason", async () => {
    const image = await packed("d.bin");
    const flip = (at: number, bit: number) => {
      const copy = new Uint8Array(image);
      copy[at] ^= 1 << bit;
      writeFileSync(path("flip.bin"), copy);
      return run("image", "info", path("flip.bin"));
    };
    const payload = await flip(1000, 3);
    expect(payload.code).toBe(1);
    expect(payload.out).toMatch(/^invalid: checksum 0x/);
    const hash = await flip(image.length - 5, 0);
    expect(hash).toMatchObject({ code: 1, out: "invalid: appended SHA-256 does not match the image" });
    const magic = await flip(0, 1);
    expect(magic).toMatchObject({ code: 1, out: "invalid: bad image magic 0xeb (expected 0xe9)" });
  });

  it("a missing file is an error (exit 1)", async () => {
    const r = await run("image", "info", path("nope.bin"));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: /);
    expect((await run("image", "pack", "--version", "1.0.0", "-o", path("x.bin"), path("nope.js"))).code).toBe(1);
  });

  it("usage errors exit 2", async () => {
    const cases: string[][] = [
      ["image"],
      ["image", "frob"],
      ["image", "pack", "-o", path("x.bin"), bundle],
      ["image", "pack", "--version", "1.0.0", bundle],
      ["image", "pack", "--version", "1.0.0", "-o", path("x.bin")],
      ["image", "pack", "--version", "1.0.0", "-o", path("x.bin"), bundle, bundle],
      ["image", "pack", "--version", "1.0.0", "--secure-version", "-1", "-o", path("x.bin"), bundle],
      ["image", "pack", "--version", "1.0.0", "--secure-version", "4294967296", "-o", path("x.bin"), bundle],
      ["image", "pack", "--version", "1.0.0", "--secure-version", "one", "-o", path("x.bin"), bundle],
      ["image", "pack", "--version", "x".repeat(40), "-o", path("x.bin"), bundle],
      ["image", "pack", "--version", "1.0.0", "--bogus", "1", "-o", path("x.bin"), bundle],
      ["image", "pack", "--version", "1.0.0", "-o", path("x.bin"), bundle, "--version"],
      ["image", "info"],
      ["image", "info", "a.bin", "b.bin"],
      ["image", "info", "--verbose", "a.bin"],
    ];
    for (const args of cases) {
      const r = await run(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err, args.join(" ")).toContain("usage:");
    }
  });

  it("is listed in xs-ota's usage", async () => {
    const r = await run("help");
    expect(r.out).toContain("xs-ota image pack --version V");
  });
});
