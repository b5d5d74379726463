/**
 * npm run bench:xs
 *
 * What the agent costs on the XS engine, measured on the simulator's devices (the firmware runs
 * on xsnap-worker; flash, digests and the network are the host's, outside XS, as on an ESP32
 * with native flash and `crypt` Digest):
 * - JavaScript cost per KB of firmware: XS `compute` summed over every command from the job to
 *   the restart, for a 256 KB and a 1 MB image; the difference over the 768 KB between them
 *   cancels what does not grow with the image (job parsing, the signature check).
 * - Peak live XS heap during the 1 MB update: the highest `currentHeapCount` (slots, 16 bytes
 *   each on a 32-bit MCU) after a collection, sampled after every command (each HTTP chunk and
 *   each batch of stream blocks is one), against the idle firmware's before the job. An empty
 *   xsnap machine holds about 3,900 slots of intrinsics; on a device, preloaded modules live in
 *   flash instead. ArrayBuffer bytes are XS chunks, which the meters do not report: the
 *   transfers hold one HTTP chunk or one stream block at a time.
 * - One ECDSA P-256 verification through modules/verify (what the agent runs), in compute.
 * - Importing the agent (xs-ota/agent/index, every module it reaches) and importing signature
 *   verification alone, on a fresh machine: compute and live slots. On a device the preloaded
 *   modules cost this at build time, in xsl, and their objects sit in flash; what is not
 *   preloaded (verify/keys, noble-signature, @noble) costs it at every boot.
 * - One boot to idle: the firmware's commands from its first evaluation until the first
 *   $next/get is answered, and the live heap the idle agent then holds.
 * HTTP (presigned URL, 64 KB windows) and MQTT streams (4 KB blocks) side by side, all on the
 * device-faithful engine (hosts/sim/engine).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleForXs } from "../hosts/sim/bundle.ts";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice } from "../hosts/sim/device.ts";
import { XsWorker } from "../hosts/sim/xsnap.ts";
import { startCloud, SIGNER_LABEL, signFirmware } from "../cloud/server.ts";

const KB = 1024;
const work = mkdtempSync(join(tmpdir(), "xs-ota-budget-"));
/** The demo app, padded to about `bytes`: an image of the size wanted that still runs. */
async function image(version: string, bytes: number): Promise<string> {
  const out = join(work, `fw-${version}-${bytes}.bin`);
  await buildFirmware({ entry: DEMO_APP.passes, version, out, padTo: bytes });
  return out;
}
const { privatePath: keyPath, publicPem } = writeSigningKeys(join(work, "keys"));
const cloud = await startCloud({ dataDir: join(work, "cloud"), mqttPort: 0, mqttsPort: 0, httpsPort: 0, controlPort: 0 });
const factory = await image("1.0.0", 64 * KB);

interface Run {
  compute: number;
  /** Highest heap count after a command (garbage not yet collected included). */
  peakHeap: number;
  /** Highest live heap after a command, counted after a collection. */
  peakLive: number;
  /** Live heap of the idle firmware before the job: code, intrinsics, the agent at rest. */
  idleLive: number;
  commands: number;
  /** From the boot until the idle agent has its first answer. */
  bootCompute: number;
  bootCommands: number;
}

let next = 0;
async function update(protocol: "http" | "mqtt", bytes: number): Promise<Run> {
  const thing = `budget-${++next}`;
  const dir = join(work, thing);
  flashDevice(dir, new Uint8Array(readFileSync(factory)));
  const run: Run = { compute: 0, peakHeap: 0, peakLive: 0, idleLive: 0, commands: 0, bootCompute: 0, bootCommands: 0 };
  let measuring = false;
  let restarted = false;
  let running = false;
  const device = new SimulatedDevice({
    dir,
    thing,
    brokerUrl: cloud.urls.mqtt,
    keys: { [SIGNER_LABEL]: publicPem },
    config: { ca: cloud.caCert, httpWindow: 64 * KB, blockSize: 4 * KB },
    liveHeap: true,
    onMeters: (m, _kind, live) => {
      if (!measuring) {
        if (!restarted) {
          run.idleLive = live ?? 0;
          run.bootCompute += m.compute;
          run.bootCommands++;
        }
        return;
      }
      run.compute += m.compute;
      run.peakHeap = Math.max(run.peakHeap, m.currentHeapCount);
      run.peakLive = Math.max(run.peakLive, live ?? 0);
      run.commands++;
    },
  });
  device.on("event", (e) => {
    if (e.type === "log" && e.message.startsWith("app 1.0.0 running")) running = true;
    if (e.type === "restart" && measuring) {
      measuring = false;
      restarted = true;
    }
  });
  await device.start();
  while (!running) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 200)); // let the first $next/get answer land before measuring
  measuring = true;
  const response = await fetch(`${cloud.urls.control}/jobs`, { method: "POST", body: JSON.stringify({ thing, file: await image("1.0.1", bytes), key: keyPath, protocol, jobId: thing }) });
  if (response.status !== 201) throw new Error(await response.text());
  const t0 = performance.now();
  while (!restarted) {
    if (performance.now() - t0 > 120_000) throw new Error(`${protocol} ${bytes} did not finish`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await device.stop();
  return run;
}

/** One P-256 verification through the agent's own verifier, on XS. */
async function verifyCost(): Promise<{ first: number; second: number }> {
  const message = new Uint8Array(1024).fill(7);
  const signature = signFirmware(message, readFileSync(keyPath, "utf8"));
  const path = (p: string) => JSON.stringify(fileURLToPath(new URL(p, import.meta.url)));
  const script = await bundleForXs(`
import { nobleVerifier } from ${path("../modules/verify/noble-signature.ts")};
import { publicKeyFromPem } from ${path("../modules/verify/keys.ts")};
import { signatureFromBase64 } from ${path("../modules/verify/signature.ts")};
import { nobleDigests } from ${path("../modules/verify/noble-digest.ts")};
const key = publicKeyFromPem(${JSON.stringify(publicPem)});
const d = nobleDigests.create("sha256"); d.update(new Uint8Array(1024).fill(7)); const digest = d.finish();
const signature = signatureFromBase64(${JSON.stringify(signature)});
globalThis.__verify = () => nobleVerifier.verify(key, digest, signature);
`);
  const xs = new XsWorker("budget-verify");
  try {
    await xs.evaluate(script);
    const empty = (await xs.evaluate("0")).meters.compute;
    const once = async () => {
      const r = await xs.evaluate("new Uint8Array([__verify() ? 1 : 0]).buffer");
      if (r.result[0] !== 1) throw new Error("XS did not verify the signature");
      return r.meters.compute - empty;
    };
    return { first: await once(), second: await once() };
  } finally {
    await xs.close();
  }
}

/** Evaluating `entry` on a fresh machine: compute, and live slots after a collection, above an empty machine. */
async function importCost(entry: string): Promise<{ compute: number; live: number }> {
  const script = await bundleForXs(entry);
  const xs = new XsWorker("budget-import");
  try {
    const empty = (await xs.evaluate("xsnap.gc()")).meters.currentHeapCount;
    const loaded = await xs.evaluate(script);
    const live = (await xs.evaluate("xsnap.gc()")).meters.currentHeapCount;
    return { compute: loaded.meters.compute, live: live - empty };
  } finally {
    await xs.close();
  }
}

/**
 * Budgets, set from what this bench measured (HTTP 3.6 k/KB, MQTT 5.7 k/KB at 4 KB blocks, the
 * update's own heap +1.3 k slots, 2.6 M per verification) with headroom; a change that goes over
 * one is a regression to explain. HTTP's rose to 4.0 k/KB when the bench moved to the
 * device-faithful engine (strings held as UTF-8 and indexed by code point, preloaded objects
 * read-only), with no change to the agent: its budget is 4.5 k since.
 */
const BUDGET = { httpPerKb: 4_500, mqttPerKb: 6_500, updateHeap: 2_000, verify: 3_000_000 };
let over = 0;
const check = (value: number, budget: number) => {
  if (value <= budget) return `within budget ${budget.toLocaleString("en-US")}`;
  over++;
  return `OVER BUDGET ${budget.toLocaleString("en-US")}`;
};

try {
  const n = (x: number) => Math.round(x).toLocaleString("en-US");
  console.log("XS budgets (device-faithful XS meters; flash, digests and network are native, outside XS)");
  for (const protocol of ["http", "mqtt"] as const) {
    const small = await update(protocol, 256 * KB);
    const large = await update(protocol, 1024 * KB);
    const perKb = (large.compute - small.compute) / 768;
    const grown = large.peakLive - large.idleLive;
    console.log(`  ${protocol.toUpperCase().padEnd(4)} 1 MB update: ${n(large.compute)} compute in ${large.commands} commands, ${n(perKb)} per KB (${check(perKb, protocol === "http" ? BUDGET.httpPerKb : BUDGET.mqttPerKb)})`);
    console.log(`       live heap: idle ${n(large.idleLive)} slots, peak ${n(large.peakLive)} during the update, +${n(grown)} (${check(grown, BUDGET.updateHeap)}; 256 KB image: +${n(small.peakLive - small.idleLive)}); before collection ${n(large.peakHeap)}`);
  }
  const boot = await update("http", 64 * KB);
  console.log(`  boot to idle: ${n(boot.bootCompute)} compute in ${boot.bootCommands} commands; the idle firmware holds ${n(boot.idleLive)} live slots`);
  const path = (p: string) => JSON.stringify(fileURLToPath(new URL(p, import.meta.url)));
  const agent = await importCost(`import * as a from ${path("../modules/agent/index.ts")};\nglobalThis.__a = a;\n`);
  console.log(`  import the agent (xs-ota/agent/index): ${n(agent.compute)} compute, +${n(agent.live)} live slots`);
  const verify = await importCost(`import * as v from ${path("../modules/verify/noble-signature.ts")};\nimport * as k from ${path("../modules/verify/keys.ts")};\nglobalThis.__v = [v, k];\n`);
  const floor = await importCost(`import * as w from ${JSON.stringify(fileURLToPath(import.meta.resolve("@noble/curves/abstract/weierstrass.js")))};\nimport * as h from ${JSON.stringify(fileURLToPath(import.meta.resolve("@noble/hashes/sha2.js")))};\nglobalThis.__w = [w, h];\n`);
  console.log(`  import signature verification (verify/noble-signature + verify/keys): ${n(verify.compute)} compute, +${n(verify.live)} live slots; @noble's weierstrass and sha2 alone: ${n(floor.compute)}, +${n(floor.live)}`);
  const v = await verifyCost();
  console.log(`  P-256 verification (modules/verify): ${n(v.second)} compute (first ${n(v.first)}) (${check(v.second, BUDGET.verify)})`);
  process.exitCode = over ? 1 : 0;
} finally {
  await cloud.close();
  rmSync(work, { recursive: true, force: true });
}
