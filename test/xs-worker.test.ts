/** The XS driver the contract suites stand on: results, meters, the host-call bridge, errors. */
import { afterAll, describe, expect, it } from "vitest";
import { XsError, XsWorker } from "../hosts/sim/xsnap.ts";
import { bundleForXs } from "../hosts/sim/bundle.ts";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const xs = new XsWorker("xs-worker-test");
afterAll(() => xs.close());

describe("xsnap-worker driver", () => {
  it("returns an ArrayBuffer result and XS's meters", async () => {
    const r = await xs.evaluate("new TextEncoder().encode(String(6 * 7)).buffer");
    expect(new TextDecoder().decode(r.result)).toBe("42");
    expect(r.meters.compute).toBeGreaterThan(0);
    expect(r.meters.currentHeapCount).toBeGreaterThan(0);
  });

  it("counts more compute for more work", async () => {
    const small = await xs.evaluate("let a = 0; for (let i = 0; i < 10; i++) a += i;");
    const large = await xs.evaluate("let b = 0; for (let i = 0; i < 10000; i++) b += i;");
    expect(large.meters.compute).toBeGreaterThan(small.meters.compute * 100);
  });

  it("bridges issueCommand to the host synchronously", async () => {
    xs.hostCall = (req) => new TextEncoder().encode(new TextDecoder().decode(req).toUpperCase());
    const r = await xs.evaluate(`issueCommand(new TextEncoder().encode("flash").buffer)`);
    expect(new TextDecoder().decode(r.result)).toBe("FLASH");
  });

  it("runs promise jobs before it answers, and keeps state between commands", async () => {
    await xs.evaluate("globalThis.seen = []; Promise.resolve().then(() => seen.push('job'))");
    const r = await xs.evaluate("new TextEncoder().encode(seen.join()).buffer");
    expect(new TextDecoder().decode(r.result)).toBe("job");
  });

  it("reports an uncaught exception as XsError and carries on", async () => {
    await expect(xs.evaluate("throw new RangeError('too far')")).rejects.toThrow(XsError);
    await expect(xs.evaluate("null.x")).rejects.toThrow(/TypeError/);
    const r = await xs.evaluate("new Uint8Array([1]).buffer");
    expect(r.result).toEqual(new Uint8Array([1]));
  });

  it("bundles TypeScript with class static fields lowered for this XS build", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "xs-bundle-")), "point.ts");
    writeFileSync(file, "class Point { static ORIGIN = new Point(0, 0); constructor(readonly x: number, readonly y: number) {} }\n(globalThis as Record<string, unknown>).origin = Point.ORIGIN.x;\n");
    const script = await bundleForXs(`import ${JSON.stringify(file)};`);
    await xs.evaluate(script);
    const r = await xs.evaluate("new Uint8Array([origin === 0 ? 1 : 0]).buffer");
    expect(r.result).toEqual(new Uint8Array([1]));
  });
});
