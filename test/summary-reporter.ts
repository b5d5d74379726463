/**
 * Ends `npm test` with one plain line, "N passed, N failed" (", N skipped" when any), which any
 * CI can read whatever the runner. `countSkipped: false` leaves out the tests a name filter
 * skipped on purpose (npm run test:moddable).
 */
import type { Reporter, TestModule } from "vitest/node";

export default class SummaryReporter implements Reporter {
  readonly #countSkipped: boolean;
  constructor(options: { countSkipped?: boolean } = {}) {
    this.#countSkipped = options.countSkipped !== false;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, errors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = errors.length;
    let skipped = 0;
    for (const m of modules) {
      if (m.state() === "failed" && [...m.children.allTests()].length === 0) failed++;
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else skipped++;
      }
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped && this.#countSkipped ? `, ${skipped} skipped` : ""}\n`);
  }
}
