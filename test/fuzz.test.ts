/**
 * A short fuzz pass with a fixed seed over every target of test/fuzz (`npm run fuzz` runs them
 * long with fresh seeds): every parser and codec the device runs, cross-checked where an
 * independent implementation exists.
 */
import { describe, it } from "vitest";
import fc from "fast-check";
import { targets } from "./fuzz/targets.ts";

const SEED = 20261203;
// The signature target verifies P-256 twice per input that decodes: fewer of those.
const RUNS: Record<string, number> = { signature: 300, "public-key": 500 };

describe("fuzz, fixed seed", () => {
  for (const t of targets) {
    it(t.name, () => {
      fc.assert(fc.property(t.arbitrary, (input) => t.check(input)), { seed: SEED, numRuns: RUNS[t.name] ?? 2000 });
    });
  }
});
