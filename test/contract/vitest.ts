/**
 * Registers a contract suite twice: every case on Node (in this process) and the same case on
 * the real XS engine (the suite's module bundled and run by xsnap-worker). XS's meters for each
 * case are kept in `xsMeters` for benchmarks and budgets.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { fileURLToPath } from "node:url";
import type { Suite } from "./harness.ts";
import { bundleForXs } from "../xs/bundle.ts";
import { XsWorker, type XsMeters } from "../xs/worker.ts";

export const xsMeters = new Map<string, XsMeters>();

export function contract(suite: Suite, moduleUrl: URL): void {
  describe(`${suite.name} [node]`, () => {
    for (const c of suite.cases) it(c.name, c.run);
  });

  describe(`${suite.name} [xs]`, () => {
    let xs: XsWorker | undefined;
    beforeAll(async () => {
      const script = await bundleForXs(suiteEntry(moduleUrl));
      xs = new XsWorker(suite.name);
      await xs.evaluate(script);
    });
    afterAll(async () => xs?.close());
    suite.cases.forEach((c, i) => {
      it(c.name, async () => {
        if (!xs) throw new Error("XS worker did not start");
        const run = await xs.evaluate(`__suite.start(${i})`);
        const reply = await xs.evaluate("__suite.result()");
        const outcome = JSON.parse(new TextDecoder().decode(reply.result)) as { name: string; state: string; error?: string };
        xsMeters.set(`${suite.name} / ${c.name}`, run.meters);
        if (outcome.name !== c.name) throw new Error(`XS ran '${outcome.name}' for case ${i}, expected '${c.name}'`);
        if (outcome.state === "pending") throw new Error("case did not finish on XS (it waits for something other than promises)");
        if (outcome.state === "failed") throw new Error(`on XS: ${outcome.error}`);
      });
    });
  });
}

/** The entry module that bundles a suite with the in-XS runner. */
export function suiteEntry(moduleUrl: URL): string {
  const runner = fileURLToPath(new URL("../xs/suite-runner.ts", import.meta.url));
  return `import suite from ${JSON.stringify(fileURLToPath(moduleUrl))};\nimport { expose } from ${JSON.stringify(runner)};\nexpose(suite);\n`;
}
