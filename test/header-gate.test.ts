import { describe, expect, it } from "vitest";
import { HeaderGate } from "../modules/transfer/header-gate.ts";
import { espIdfFormat } from "../modules/esp-idf/format.ts";
import { afrStagingFormatForTest, packed } from "./support/header-gate-images.ts";
import { OtaError } from "../modules/errors.ts";

const refuseOld = (prefix: Uint8Array) => {
  const info = espIdfFormat.parsePrefix(prefix);
  if (info.version === "1.0.0") throw new OtaError("version-rejected", "already running");
  return info;
};

describe("the header gate before flash", () => {
  it("holds back sequential bytes until the header is whole, then lets them all through", () => {
    const image = packed("1.0.1", 4000);
    const gate = new HeaderGate(espIdfFormat, image.length, refuseOld);
    expect(gate.take(image.subarray(0, 100), 0).length).toBe(0);
    expect(gate.held).toBe(100);
    const out = gate.take(image.subarray(100, 1000), 100);
    expect(out).toEqual(image.subarray(0, 1000));
    expect(gate.passed).toBe(true);
    expect(gate.take(image.subarray(1000, 2000), 1000)).toEqual(image.subarray(1000, 2000));
  });

  it("a refused header ends the transfer before a byte is let through", () => {
    const image = packed("1.0.0", 4000);
    const gate = new HeaderGate(espIdfFormat, image.length, refuseOld);
    expect(gate.take(image.subarray(0, 200), 0).length).toBe(0);
    expect(() => gate.take(image.subarray(200, 400), 200)).toThrow(/already running/);
    expect(gate.passed).toBe(false);
  });

  it("blocks: none is admitted before block 0, whose header is checked", () => {
    const image = packed("1.0.1", 9000);
    const gate = new HeaderGate(espIdfFormat, image.length, refuseOld);
    expect(gate.admit(2, image.subarray(8192))).toBe(false);
    expect(gate.admit(0, image.subarray(0, 4096))).toBe(true);
    expect(gate.admit(2, image.subarray(8192))).toBe(true);
    const old = packed("1.0.0", 9000);
    expect(() => new HeaderGate(espIdfFormat, old.length, refuseOld).admit(0, old.subarray(0, 4096))).toThrow(/already running/);
  });

  it("a resumed download checks the header already in flash again", () => {
    const old = packed("1.0.0", 9000);
    expect(() => new HeaderGate(espIdfFormat, old.length, refuseOld, 4096, (n) => old.slice(0, n))).toThrow(/already running/);
    const fresh = new HeaderGate(espIdfFormat, old.length, refuseOld, 100, (n) => old.slice(0, n));
    expect(fresh.passed).toBe(false);
  });

  it("a format without a header opens the gate at once", () => {
    const gate = new HeaderGate(afrStagingFormatForTest, 5000, () => {
      throw new Error("never asked");
    });
    expect(gate.passed).toBe(true);
    expect(gate.admit(3, new Uint8Array(10))).toBe(true);
    expect(gate.take(new Uint8Array(7), 0).length).toBe(7);
  });
});
