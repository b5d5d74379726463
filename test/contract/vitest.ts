/**
 * Registers a contract suite twice: every case on Node (in this process) and the same case on
 * the real XS engine (the suite's module bundled and run by xsnap-worker). XS's meters for each
 * case are kept in `xsMeters` for benchmarks and budgets.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { fileURLToPath } from "node:url";
import type { Suite } from "./harness.ts";
import { setSuiteEnv, type SuiteEnv } from "./env.ts";
import { bundleForXs } from "../../hosts/sim/bundle.ts";
import { XsWorker, type XsMeters } from "../../hosts/sim/xsnap.ts";
import { bridgeHost } from "../xs/bridge-host.ts";

export const xsMeters = new Map<string, XsMeters>();

export interface ContractOptions {
  /**
   * The suite's environment, made when its cases are about to run (servers are up by then). On
   * Node the suite gets it as is; on XS it gets the same config with its Http bridged to this one.
   */
  env?: () => SuiteEnv;
  /** The ports the XS run's bridge uses, when they must differ from Node's (a second MQTT client). */
  xsEnv?: () => SuiteEnv;
}

export function contract(suite: Suite, moduleUrl: URL, options: ContractOptions = {}): void {
  describe(`${suite.name} [node]`, () => {
    if (options.env) beforeAll(() => setSuiteEnv(options.env!()));
    for (const c of suite.cases) it(c.name, c.run);
  });

  describe(`${suite.name} [xs]`, () => {
    let xs: XsWorker | undefined;
    beforeAll(async () => {
      const script = await bundleForXs(suiteEntry(moduleUrl, options.env !== undefined));
      xs = new XsWorker(suite.name);
      await xs.evaluate(script);
      if (options.env) {
        const env = options.xsEnv?.() ?? options.env();
        xs.hostCall = bridgeHost({ http: env.http, mqtt: env.mqtt });
        await xs.evaluate(`__setup(${JSON.stringify({ ...env.config, mqtt: env.mqtt !== undefined })})`);
      }
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

/** The entry module that bundles a suite with the in-XS runner (and the bridged environment). */
export function suiteEntry(moduleUrl: URL, withEnv = false): string {
  const path = (relative: string) => JSON.stringify(fileURLToPath(new URL(relative, import.meta.url)));
  const lines = [
    `import suite from ${JSON.stringify(fileURLToPath(moduleUrl))};`,
    `import { expose } from ${path("../xs/suite-runner.ts")};`,
    withEnv ? `import { setup } from ${path("../xs/env-setup.ts")};\nglobalThis.__setup = setup;` : "",
    "expose(suite);",
  ];
  return lines.join("\n") + "\n";
}
