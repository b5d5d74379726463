/**
 * Runs inside XS: exposes a contract suite to the test process as `globalThis.__suite`.
 * `start(i)` begins case i; `result()` answers, as JSON bytes, how it ended (XS has run every
 * queued job by the time a command returns, so a case that awaits only promises is finished).
 */
import type { Suite } from "../contract/harness.ts";
import { utf8Encode } from "../../modules/codec/utf8.ts";

interface Outcome {
  name: string;
  state: "pending" | "passed" | "failed";
  error?: string;
}

export function expose(suite: Suite): void {
  let outcome: Outcome = { name: "", state: "pending" };
  const describe = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));
  (globalThis as Record<string, unknown>).__suite = {
    start(i: number) {
      const c = suite.cases[i];
      outcome = { name: c.name, state: "pending" };
      const o = outcome;
      try {
        Promise.resolve(c.run()).then(
          () => (o.state = "passed"),
          (e) => Object.assign(o, { state: "failed", error: describe(e) }),
        );
      } catch (e) {
        Object.assign(o, { state: "failed", error: describe(e) });
      }
    },
    result(): ArrayBuffer {
      return utf8Encode(JSON.stringify(outcome)).buffer as ArrayBuffer;
    },
  };
}
