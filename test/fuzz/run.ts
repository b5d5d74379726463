/**
 * npm run fuzz [-- --minutes N] [--seed S] [--workers W] [--target NAME]...
 * npm run fuzz -- --replay NAME SEED PATH
 *
 * Runs every fuzz target (test/fuzz/targets.ts) on W threads for N minutes and ends with
 * `fuzz: N inputs, C crashes, H hangs`. A crash is a broken property (fast-check shrinks it and
 * the line before the total gives the seed and path to replay it); a hang is an input slower
 * than SLOW_MS, or a thread that reports nothing for STALL_MS (killed and replaced).
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { WorkerMessage, WorkerSetup } from "./worker.ts";

const SLICE_MS = 300;
const SLOW_MS = 1000;
const STALL_MS = 30_000;

const args = process.argv.slice(2);
function option(name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}
const minutes = Number(option("minutes") ?? "1");
const seed = Number(option("seed") ?? Date.now() % 2 ** 31);
const workers = Number(option("workers") ?? availableParallelism());
const only = args.flatMap((a, i) => (args[i - 1] === "--target" ? [a] : []));
if (!(minutes > 0) || !Number.isInteger(seed) || !(Number.isInteger(workers) && workers > 0)) {
  console.error("usage: npm run fuzz -- [--minutes N] [--seed S] [--workers W] [--target NAME]...");
  process.exit(2);
}

// --replay NAME SEED PATH: the input a crash line names, run once here, with its stack.
const replay = args.indexOf("--replay");
if (replay >= 0) {
  const [name, replaySeed, path] = args.slice(replay + 1, replay + 4);
  const { targets } = await import("./targets.ts");
  const fc = (await import("fast-check")).default;
  const t = targets.find((x) => x.name === name);
  if (t === undefined || replaySeed === undefined) {
    console.error(`usage: npm run fuzz -- --replay NAME SEED PATH (targets: ${targets.map((x) => x.name).join(", ")})`);
    process.exit(2);
  }
  try {
    fc.assert(fc.property(t.arbitrary, (input) => t.check(input)), { seed: Number(replaySeed), path, endOnFailure: true });
  } catch (e) {
    console.log(e instanceof Error ? e.message : String(e));
    process.exit(1);
  }
  console.log(`fuzz: ${name} seed ${replaySeed} path "${path ?? ""}" holds`);
  process.exit(0);
}

const deadline = Date.now() + minutes * 60_000;
const bootstrap = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(new URL("./worker.ts", import.meta.url).href)}); });`;
let inputs = 0;
let crashes = 0;
let hangs = 0;
let restarts = 0;
console.log(`fuzz: seed ${seed}, ${workers} threads, ${minutes} min${only.length ? `, targets ${only.join(" ")}` : ""}`);

function start(id: number, firstSeed: number): Promise<void> {
  const setup: WorkerSetup = { seed: firstSeed, stride: workers * 7919, deadline, sliceMs: SLICE_MS, slowMs: SLOW_MS, only: only.length ? only : undefined };
  const worker = new Worker(bootstrap, { eval: true, workerData: setup });
  let last = Date.now();
  let on = "(starting)";
  return new Promise((resolve) => {
    const watch = setInterval(() => {
      if (Date.now() - last < STALL_MS) return;
      hangs++;
      console.log(`hang: ${on}: no progress for ${STALL_MS / 1000} s; thread replaced`);
      clearInterval(watch);
      void worker.terminate();
      // A new seed, so the replacement does not walk into the same input.
      resolve(start(id, firstSeed + ++restarts * 104729));
    }, 1000);
    worker.on("message", (m: WorkerMessage) => {
      last = Date.now();
      if (m.kind === "slice") on = `${m.target} seed ${m.seed}`;
      else if (m.kind === "inputs") inputs += m.count;
      else if (m.kind === "slow") {
        hangs++;
        console.log(`hang: ${m.target} seed ${m.seed}: one input took ${Math.round(m.ms)} ms: ${m.input}`);
      } else if (m.kind === "crash") {
        crashes++;
        console.log(`crash: ${m.target} seed ${m.seed} path "${m.path}": ${m.error}\n  input: ${m.input}\n  replay: npm run fuzz -- --replay ${m.target} ${m.seed} "${m.path}"`);
      } else {
        clearInterval(watch);
        resolve();
      }
    });
    worker.on("error", (e) => {
      crashes++;
      console.log(`crash: ${on}: the thread died: ${e instanceof Error ? e.message : String(e)}`);
      clearInterval(watch);
      resolve(Date.now() < deadline ? start(id, firstSeed + ++restarts * 104729) : undefined);
    });
  });
}

await Promise.all(Array.from({ length: workers }, (_, i) => start(i, seed + i * 7919)));
console.log(`fuzz: ${inputs} inputs, ${crashes} crashes, ${hangs} hangs`);
process.exitCode = crashes + hangs > 0 ? 1 : 0;
