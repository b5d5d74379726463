import { createHash, randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { contract } from "./contract/vitest.ts";
import writer from "./contract/image-writer.contract.ts";
import image from "./contract/esp-image.contract.ts";
import { packImage } from "../modules/esp-idf/image.ts";
import { nobleDigests } from "../modules/verify/noble-digest.ts";

contract(writer, new URL("./contract/image-writer.contract.ts", import.meta.url));
contract(image, new URL("./contract/esp-image.contract.ts", import.meta.url));

it("packImage's checksum and SHA-256 agree with node:crypto and a Buffer walk of the segments", () => {
  for (const n of [0, 3, 1001, 70001]) {
    const payload = new Uint8Array(randomBytes(n));
    const img = Buffer.from(packImage({ version: "0.0.1", payload, sha256: () => nobleDigests.create("sha256") }));
    const hashAt = img.length - 32;
    expect(createHash("sha256").update(img.subarray(0, hashAt)).digest().equals(img.subarray(hashAt))).toBe(true);

    let at = 24;
    let xor = 0xef;
    for (let s = 0; s < img.readUInt8(1); s++) {
      const length = img.readUInt32LE(at + 4);
      for (const b of img.subarray(at + 8, at + 8 + length)) xor ^= b;
      at += 8 + length;
    }
    expect(at).toBe(24 + 8 + 256 + 8 + ((n + 3) & ~3));
    const checksumAt = (at | 15) >>> 0;
    expect(checksumAt).toBe(hashAt - 1);
    expect(img.subarray(at, checksumAt).every((b) => b === 0)).toBe(true);
    expect(img[checksumAt]).toBe(xor);
    expect(img.subarray(296, 296 + n).equals(Buffer.from(payload))).toBe(true);
  }
});
