/**
 * One fuzzing thread: takes the targets in turn, each for a slice of time with a fresh seed,
 * and tells the runner what it is on, how many inputs it ran, and what broke.
 */
import fc from "fast-check";
import { parentPort, workerData } from "node:worker_threads";
import { targets } from "./targets.ts";

export interface WorkerSetup {
  /** First seed; the worker's k-th slice uses seed + k * stride. */
  seed: number;
  stride: number;
  /** Date.now() after which the worker stops. */
  deadline: number;
  sliceMs: number;
  /** An input slower than this is a hang even if it ends. */
  slowMs: number;
  only?: string[];
}

export type WorkerMessage =
  | { kind: "slice"; target: string; seed: number }
  | { kind: "inputs"; count: number }
  | { kind: "crash"; target: string; seed: number; path: string; error: string; input: string }
  | { kind: "slow"; target: string; seed: number; ms: number; input: string }
  | { kind: "done" };

const setup = workerData as WorkerSetup;
const port = parentPort!;
const post = (m: WorkerMessage) => port.postMessage(m);
const chosen = targets.filter((t) => setup.only === undefined || setup.only.includes(t.name));
const show = (v: unknown) => {
  const s = fc.stringify(v);
  return s.length > 600 ? `${s.slice(0, 600)}... (${s.length} characters)` : s;
};

for (let k = 0; Date.now() < setup.deadline; k++) {
  const t = chosen[k % chosen.length];
  const seed = (setup.seed + k * setup.stride) | 0;
  post({ kind: "slice", target: t.name, seed });
  let slowSeen = false;
  const property = fc.property(t.arbitrary, (input) => {
    const start = performance.now();
    t.check(input);
    const ms = performance.now() - start;
    if (ms > setup.slowMs && !slowSeen) {
      slowSeen = true;
      post({ kind: "slow", target: t.name, seed, ms, input: show(input) });
    }
  });
  const limit = Math.max(1, Math.min(setup.sliceMs, setup.deadline - Date.now()));
  const r = fc.check(property, { seed, numRuns: 1e9, interruptAfterTimeLimit: limit, markInterruptAsFailure: false });
  post({ kind: "inputs", count: r.numRuns });
  if (r.failed) {
    const e = r.errorInstance;
    post({ kind: "crash", target: t.name, seed, path: r.counterexamplePath ?? "", error: e instanceof Error ? `${e.name}: ${e.message}` : String(e), input: show(r.counterexample) });
  }
}
post({ kind: "done" });
