/**
 * npm run soak [-- --updates 40 --seed S --keep]
 *
 * A soak of the whole update path: `xs-ota cloud` and one `xs-ota sim` device as child
 * processes, one job per update (a new firmware version each, HTTP and MQTT streams in turn),
 * and SIGKILLs of the device and of the cloud at random moments and at each phase of an update
 * (downloading, verified, restarting, trial boot, self-test, confirm), each child started again
 * on the same state (--dir, --data, ports). After every device kill flash.bin is read with
 * modules/storage's decoders to see whether the bootloader would find an image.
 *
 * Ends with `soak: U updates, K kills, B unbootable, R reverted, S stuck, F failed`, after one
 * line per failed job (its reason and the kills that led to it). Exit 0 only if B = R = S = 0.
 * The schedule comes from --seed (printed), so a run can be repeated.
 */
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildFirmware } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "../cli/signing.ts";
import { compareVersions, parseVersion } from "../modules/verify/version.ts";
import { freePort } from "../test/support/ports.ts";
import { Child } from "./soak-proc.ts";
import { inspectFlash, jobRecordPending } from "./soak-flash.ts";
import { Tracker, explain, planUpdate, type Kill, type Phase } from "./soak-plan.ts";
import { seededRandom } from "../test/support/random.ts";

const args = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
};
const updates = Number(option("updates", "40"));
const seed = Number(option("seed", String(Math.floor(Math.random() * 2 ** 31))));
const keep = args.includes("--keep");
if (!(Number.isInteger(updates) && updates >= 1) || !Number.isInteger(seed)) {
  console.error("usage: npm run soak -- [--updates N] [--seed S] [--keep]");
  process.exit(2);
}

const rng = seededRandom(seed);
// Its own stream, so the schedule drawn from `rng` does not depend on how many kills landed.
const pauses = seededRandom(seed ^ 0x5eed);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A generous wait for a job to end after its last kill (retries back off, streams re-ask after 10 s). */
const DEADLINE_MS = 90_000;
const THING = "soak-1";
const started = performance.now();

const work = mkdtempSync(join(tmpdir(), "xs-ota-soak-"));
console.log(`soak: seed ${seed}, ${updates} updates, state in ${work}`);
const APP = fileURLToPath(new URL("./soak-app.ts", import.meta.url));
const versions = Array.from({ length: updates + 1 }, (_, i) => `1.0.${i}`);
const images = new Map<string, string>();
for (const version of versions) {
  const out = join(work, `fw-${version}.bin`);
  // About 1 MB, so that a download lasts long enough to be cut in the middle.
  await buildFirmware({ entry: APP, version, out, padTo: 1024 * 1024 });
  images.set(version, out);
}
const keys = writeSigningKeys(join(work, "keys"));
const [mqttPort, mqttsPort, httpsPort, controlPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
const control = `http://127.0.0.1:${controlPort}`;
const data = join(work, "cloud");
const devices = join(work, "devices");
const deviceDir = join(devices, THING);
const log = createWriteStream(join(work, "soak.log"));

const cloud = new Child("cloud", ["cloud", "--data", data, "--mqtt-port", String(mqttPort), "--mqtts-port", String(mqttsPort), "--https-port", String(httpsPort), "--control-port", String(controlPort)], /^control /, log);
const sim = new Child("sim", ["sim", "--thing", THING, "--key", keys.publicPath, "--broker", `mqtt://127.0.0.1:${mqttPort}`, "--ca", join(data, "tls", "ca.pem"), "--dir", devices], /running; broker/, log);
const tracker = new Tracker(THING);
sim.onLine((line) => tracker.line(line));

let kills = 0;
/** The simulator starts after which the device could not boot (seen in flash.bin or in its log). */
const unbootable = new Set<number>();
const reverted = new Set<string>();
let stuck = 0;
const failures: string[] = [];
let killing = 0;
let lastKill = 0;

tracker.onBoot = (version) => {
  // A version that was confirmed must not give way to an older one (a revert after confirm).
  const confirmed = tracker.confirmed;
  if (confirmed !== undefined && compareVersions(parseVersion(version), parseVersion(confirmed)) < 0 && !reverted.has(confirmed)) {
    reverted.add(confirmed);
    console.log(`  REVERTED: ${confirmed} was confirmed, the device booted ${version}`);
  }
};
tracker.onHalt = (reason) => {
  if (!unbootable.has(sim.starts)) console.log(`  UNBOOTABLE: ${reason}`);
  unbootable.add(sim.starts);
};

const busy = new Map<Child, Promise<void>>();

/**
 * Kills `child`, checks the device's flash, and starts it again after a short random pause. A
 * second kill of the same child waits until it is up again, then lands on the fresh boot.
 */
function kill(child: Child, job: Kill[], label: string): Promise<void> {
  killing++;
  const next = (busy.get(child) ?? Promise.resolve()).then(() => killNow(child, job, label)).finally(() => killing--);
  busy.set(child, next.catch(() => undefined));
  return next;
}

async function killNow(child: Child, job: Kill[], label: string): Promise<void> {
  if (!child.up) return;
  const phase: Phase = tracker.phase;
  await child.kill();
  kills++;
  lastKill = performance.now();
  job.push({ target: child.name, planned: label, phase });
  if (child === sim) {
    const view = inspectFlash(deviceDir);
    if (view.boots === undefined) {
      unbootable.add(sim.starts + 1);
      console.log(`  UNBOOTABLE after a kill at ${phase}: ${view.notes.join("; ")}`);
    }
  }
  await sleep(Math.floor(pauses() * 500));
  await child.start();
}

/** Creates the job, asking again when the cloud went away meanwhile (409: the first request did create it). */
async function createJob(jobId: string, version: string, protocol: "http" | "mqtt"): Promise<void> {
  const body = JSON.stringify({ thing: THING, file: images.get(version), key: keys.privatePath, protocol, jobId });
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(`${control}/jobs`, { method: "POST", body });
      if (response.status === 201 || (attempt > 0 && response.status === 409)) return;
      throw new Error(`${response.status} ${await response.text()}`);
    } catch (e) {
      if (attempt >= 20) throw e;
      await sleep(500);
    }
  }
}

async function jobStatus(jobId: string): Promise<{ status: string; reason?: string } | undefined> {
  try {
    const response = await fetch(`${control}/jobs/${jobId}`);
    if (response.status !== 200) return undefined;
    const d = (await response.json()) as { executions?: { status: string; statusDetails?: Record<string, string> }[] };
    const e = d.executions?.[0];
    return e ? { status: e.status, reason: e.statusDetails?.["reason"] } : undefined;
  } catch {
    return undefined;
  }
}

const TERMINAL = ["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"];

try {
  await cloud.start();
  await sim.start(["--firmware", images.get(versions[0] ?? "") ?? ""]);
  tracker.confirmed = versions[0];
  for (let i = 1; i <= updates; i++) {
    const version = versions[i] ?? "";
    const protocol = i % 2 === 1 ? "http" : "mqtt";
    const jobId = `soak-${String(i).padStart(2, "0")}`;
    const plan = planUpdate(i, rng);
    const done: Kill[] = [];
    const t0 = performance.now();
    tracker.begin(jobId, version);
    if (plan.cloudBetween) await kill(cloud, done, "cloud between jobs");
    lastKill = 0;
    const pending: Promise<void>[] = [];
    if (plan.cloudAtCreate !== undefined) setTimeout(() => pending.push(kill(cloud, done, "cloud@create")), plan.cloudAtCreate);
    await createJob(jobId, version, protocol);
    // Each planned kill fires once, at its phase (or after its delay), if that moment comes.
    const offs = plan.kills.map((k) => {
      const target = k.target === "cloud" ? cloud : sim;
      const label = `${k.target}@${k.at}`;
      if (k.at === "random") {
        const timer = setTimeout(() => pending.push(kill(target, done, label)), k.delay);
        return () => clearTimeout(timer);
      }
      let fired = false;
      return tracker.when(k.at, k.fraction, () => {
        if (fired) return;
        fired = true;
        setTimeout(() => pending.push(kill(target, done, label)), k.delay);
      });
    });
    let outcome = "";
    let reason: string | undefined;
    for (;;) {
      await sleep(200);
      if (killing > 0) continue;
      const status = await jobStatus(jobId);
      const terminal = status !== undefined && TERMINAL.includes(status.status);
      if (terminal && sim.up && !jobRecordPending(deviceDir)) {
        const view = inspectFlash(deviceDir);
        if (view.state === "VALID" && view.version === tracker.running) {
          outcome = status.status;
          reason = status.reason;
          break;
        }
      }
      if (performance.now() - Math.max(t0, lastKill) > DEADLINE_MS) {
        stuck++;
        outcome = `STUCK (cloud: ${status?.status ?? "no answer"}; device: ${tracker.phase}, running ${tracker.running ?? "nothing"})`;
        break;
      }
    }
    for (const off of offs) off();
    await Promise.all(pending);
    if (outcome === "SUCCEEDED") {
      tracker.confirmed = version;
      if (tracker.running !== version) {
        reverted.add(version);
        console.log(`  REVERTED: ${version} SUCCEEDED but the device runs ${tracker.running}`);
      }
    } else if (TERMINAL.includes(outcome)) {
      const why = explain(reason ?? "", done);
      failures.push(`FAILED ${jobId} ${version} ${protocol}: ${outcome}: ${reason ?? "(no reason)"}; kills: ${done.map((k) => `${k.planned} (landed in ${k.phase})`).join(", ") || "none"}; ${why}`);
    }
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`update ${i}/${updates} ${version} ${protocol}: ${done.length} kill(s)${done.length ? ` [${done.map((k) => `${k.planned}->${k.phase}`).join(", ")}]` : ""} -> ${outcome}, running ${tracker.running} (${seconds} s)`);
    if (unbootable.size > 0) {
      console.log("soak: the device cannot boot; no more updates");
      break;
    }
  }
  // The last word is the flash's: powered off now, the device must boot the newest confirmed version.
  await sim.stop();
  const view = inspectFlash(deviceDir);
  if (view.boots === undefined) unbootable.add(sim.starts + 1);
  else if (tracker.confirmed !== undefined && view.version !== tracker.confirmed) {
    reverted.add(tracker.confirmed);
    console.log(`  REVERTED: ${tracker.confirmed} was confirmed last; flash.bin would boot ${view.version} (${view.notes.join("; ")})`);
  }
} finally {
  await sim.stop();
  await cloud.stop();
  log.end();
}

for (const line of failures) console.log(line);
console.log(`soak: wall time ${((performance.now() - started) / 1000).toFixed(0)} s, seed ${seed}${keep ? `, kept ${work}` : ""}`);
const ok = unbootable.size === 0 && reverted.size === 0 && stuck === 0;
if (!keep && ok) rmSync(work, { recursive: true, force: true });
else if (!ok) console.log(`soak: state and soak.log kept in ${work}`);
console.log(`soak: ${updates} updates, ${kills} kills, ${unbootable.size} unbootable, ${reverted.size} reverted, ${stuck} stuck, ${failures.length} failed`);
process.exitCode = ok ? 0 : 1;
