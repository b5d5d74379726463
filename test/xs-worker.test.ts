/**
 * The XS engine every [xs] case and whole-program test stands on: the driver (results, meters,
 * the host-call bridge, errors) and the ways the engine behaves as a Moddable device's XS does
 * rather than as Agoric's xsnap-worker: strings by code point, no RegExp property escapes, a
 * Moddable app's globals only, and preload's freeze.
 */
import { afterAll, describe, expect, it } from "vitest";
import { XsError, XsWorker } from "../hosts/sim/xsnap.ts";
import { bundleForXs } from "../hosts/sim/bundle.ts";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const workers: XsWorker[] = [];
afterAll(() => Promise.all(workers.map((w) => w.close())));

function worker(name: string): XsWorker {
  const xs = new XsWorker(name);
  workers.push(xs);
  return xs;
}

/** The value of `expression` in XS, through JSON (the engine has no TextEncoder). */
async function value(xs: XsWorker, expression: string): Promise<unknown> {
  const r = await xs.evaluate(`(() => {
    let v; try { v = (${expression}); } catch (e) { v = { threw: String(e) }; }
    const t = JSON.stringify(v === undefined ? null : v), b = new Uint8Array(t.length);
    for (let i = 0; i < t.length; i++) b[i] = t.charCodeAt(i);
    return b.buffer;
  })()`);
  return JSON.parse(String.fromCharCode(...r.result));
}

describe("xsnap protocol driver", () => {
  const xs = worker("xs-worker-test");

  it("returns an ArrayBuffer result and XS's meters", async () => {
    const r = await xs.evaluate("new Uint8Array([6 * 7]).buffer");
    expect(r.result).toEqual(new Uint8Array([42]));
    expect(r.meters.compute).toBeGreaterThan(0);
    expect(r.meters.currentHeapCount).toBeGreaterThan(0);
  });

  it("counts more compute for more work", async () => {
    const small = await xs.evaluate("let a = 0; for (let i = 0; i < 10; i++) a += i;");
    const large = await xs.evaluate("let b = 0; for (let i = 0; i < 10000; i++) b += i;");
    expect(large.meters.compute).toBeGreaterThan(small.meters.compute * 100);
  });

  it("bridges issueCommand to the host synchronously", async () => {
    xs.hostCall = (req) => req.map((b) => b + 1);
    const r = await xs.evaluate("xsnap.issueCommand(new Uint8Array([1, 2]).buffer)");
    expect(r.result).toEqual(new Uint8Array([2, 3]));
  });

  it("runs promise jobs before it answers, and keeps state between commands", async () => {
    await xs.evaluate("globalThis.seen = []; Promise.resolve().then(() => seen.push('job'))");
    expect(await value(xs, "seen")).toEqual(["job"]);
  });

  it("reports an uncaught exception as XsError and carries on", async () => {
    await expect(xs.evaluate("throw new RangeError('too far')")).rejects.toThrow(XsError);
    await expect(xs.evaluate("null.x")).rejects.toThrow(/TypeError/);
    const r = await xs.evaluate("new Uint8Array([1]).buffer");
    expect(r.result).toEqual(new Uint8Array([1]));
  });

  it("bundles TypeScript with class static fields lowered for XS", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "xs-bundle-")), "point.ts");
    writeFileSync(file, "class Point { static ORIGIN = new Point(0, 0); constructor(readonly x: number, readonly y: number) {} }\n(globalThis as Record<string, unknown>).origin = Point.ORIGIN.x;\n");
    const script = await bundleForXs(`import ${JSON.stringify(file)};`, { preload: false });
    await xs.evaluate(script);
    expect(await value(xs, "origin")).toBe(0);
  });
});

describe("device-faithful engine: what a Moddable device's XS does", () => {
  const xs = worker("xs-device-test");

  it("indexes strings by code point, not UTF-16 unit (no CESU-8)", async () => {
    expect(await value(xs, `["\\u{10151}".length, "\\u{10151}".charCodeAt(0), "a\\u{1F600}b".slice(1, 2) === "\\u{1F600}"]`)).toEqual([1, 0x10151, true]);
  });

  it("refuses RegExp property escapes, as Moddable's xsc does", async () => {
    await expect(xs.evaluate(`/\\p{L}/u.test("a")`)).rejects.toThrow(/SyntaxError/);
  });

  it("has a Moddable app's globals: none of xsnap's", async () => {
    const names = ["TextEncoder", "TextDecoder", "setImmediate", "Base64", "harden", "lockdown", "print", "gc", "performance", "issueCommand"];
    expect(await value(xs, `${JSON.stringify(names)}.filter((n) => n in globalThis)`)).toEqual([]);
    expect(await value(xs, "typeof trace")).toBe("function");
  });

  it("computes integer -0 as a device does (no mxMinusZero)", async () => {
    expect(await value(xs, "Object.is(0 * -1, -0)")).toBe(false);
  });
});

describe("device-faithful engine: preload freezes as Moddable's linker does", () => {
  const xs = worker("xs-preload-test");
  const attempt = (statement: string) => value(xs, `(() => { "use strict"; try { ${statement}; return "ok"; } catch (e) { return String(e); } })()`);

  it("sets up objects of every kind before the freeze", async () => {
    await xs.evaluate(`
      class Failure extends Error { constructor(m) { super(m); this.name = "Failure"; } }
      class Tagged { static count = 0; }
      let handler = function () {};
      let counter = 0;
      Object.assign(globalThis, {
        Failure, Tagged, setHandler: () => { "use strict"; handler = 1; }, bump: () => ++counter,
        table: { a: 1 }, list: [1, 2], map: new Map(), set: new Set(), bytes: new Uint8Array(4), pattern: /a/g,
      });
      xsnap.preload();
    `);
    await expect(xs.evaluate("xsnap.preload()")).rejects.toThrow(/already/);
  });

  it("freezes the built-in prototypes: assigning an inherited name or toString throws", async () => {
    expect(await attempt(`new Failure("x")`)).toMatch(/not writable/);
    expect(await attempt(`const o = {}; o.toString = () => ""`)).toMatch(/not writable/);
    expect(await attempt(`Object.defineProperty({}, "toString", { value: 1, writable: true })`)).toBe("ok");
  });

  it("petrifies functions, classes and their prototypes", async () => {
    expect(await attempt(`Tagged.count = 1`)).toMatch(/TypeError/);
    expect(await attempt(`Tagged.prototype.x = 1`)).toMatch(/TypeError/);
  });

  it("keeps module bindings that hold functions constant, the others writable", async () => {
    expect(await attempt(`setHandler()`)).toMatch(/const/);
    expect(await value(xs, "[bump(), bump()]")).toEqual([1, 2]);
  });

  it("makes Maps, Sets, typed arrays and RegExps read-only", async () => {
    expect(await attempt(`map.set(1, 2)`)).toMatch(/read-only/);
    expect(await attempt(`set.add(1)`)).toMatch(/read-only/);
    expect(await attempt(`bytes[0] = 1`)).toMatch(/read-only/);
    expect(await attempt(`"aa".replace(pattern, "b")`)).toMatch(/lastIndex: not writable/);
  });

  it("leaves plain objects and arrays writable (a device copies them into RAM)", async () => {
    expect(await attempt(`table.a = 2; list.push(3)`)).toBe("ok");
  });

  it("freezes only what existed: objects made afterwards behave normally", async () => {
    expect(await attempt(`const m = new Map(); m.set(1, 2); new Uint8Array(2)[0] = 1; "aa".replace(/a/g, "b")`)).toBe("ok");
  });
});
