/**
 * Registers a contract suite twice: every case on Node (in this process) and the same case on
 * the device-faithful XS engine (the suite's module bundled and run by hosts/sim/engine's
 * worker). XS's meters for each case are kept in `xsMeters` for benchmarks and budgets.
 *
 * Under `npm run test:moddable` (XS_OTA_MODDABLE_RUNNER set to the program test/moddable built)
 * only a third run is registered: the same cases on Moddable's own XS, the suite's module linked
 * into that program by xsl with xs-ota's preloads.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { suiteEntry, suiteModule } from "../xs/suite-entry.ts";
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

/** The Moddable program `npm run test:moddable` built, when this run is that one. */
export const MODDABLE_RUNNER = process.env.XS_OTA_MODDABLE_RUNNER;

export function contract(suite: Suite, moduleUrl: URL, options: ContractOptions = {}): void {
  if (MODDABLE_RUNNER) {
    onEngine(suite, "moddable", options, async () => {
      const xs = new XsWorker(suite.name, { binary: MODDABLE_RUNNER, args: [] });
      await xs.evaluate(`import(${JSON.stringify(suiteModule(moduleUrl))}).then(() => {});`);
      return xs;
    });
    return;
  }
  describe(`${suite.name} [node]`, () => {
    if (options.env) beforeAll(() => setSuiteEnv(options.env!()));
    for (const c of suite.cases) it(c.name, c.run);
  });
  onEngine(suite, "xs", options, async () => {
    const xs = new XsWorker(suite.name);
    await xs.evaluate(await bundleForXs(suiteEntry(moduleUrl, options.env !== undefined)));
    return xs;
  });
}

function onEngine(suite: Suite, engine: string, options: ContractOptions, start: () => Promise<XsWorker>): void {
  describe(`${suite.name} [${engine}]`, () => {
    let xs: XsWorker | undefined;
    beforeAll(async () => {
      xs = await start();
      if (options.env) {
        const env = options.xsEnv?.() ?? options.env();
        xs.hostCall = bridgeHost({ http: env.http, mqtt: env.mqtt });
        await xs.evaluate(`__setup(${JSON.stringify({ ...env.config, mqtt: env.mqtt !== undefined })})`);
      }
    });
    afterAll(async () => xs?.close());
    suite.cases.forEach((c, i) => {
      it(c.name, async () => {
        if (!xs) throw new Error(`${engine} worker did not start`);
        const run = await xs.evaluate(`__suite.start(${i})`);
        const reply = await xs.evaluate("__suite.result()");
        const outcome = JSON.parse(new TextDecoder().decode(reply.result)) as { name: string; state: string; error?: string };
        xsMeters.set(`${suite.name} / ${c.name}`, run.meters);
        if (outcome.name !== c.name) throw new Error(`XS ran '${outcome.name}' for case ${i}, expected '${c.name}'`);
        if (outcome.state === "pending") throw new Error("case did not finish on XS (it waits for something other than promises)");
        if (outcome.state === "failed") throw new Error(`on ${engine}: ${outcome.error}`);
      });
    });
  });
}
