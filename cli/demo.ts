/**
 * xs-ota demo [--dir DIR] [--broker URL]   (what `npm start` runs)
 *
 * One simulated device, two updates, all on this machine: builds firmware 1.0.0, 1.0.1 and a
 * 1.0.2 whose self-test fails (hosts/sim/apps), signs them with a fresh P-256 key, starts the
 * local cloud (on free ports; `--broker` puts it on your MQTT broker instead of the embedded
 * one) and a device on 1.0.0 running on XS. Job 1 sends 1.0.1 over HTTP: SUCCEEDED. Job 2 sends
 * 1.0.2 over MQTT streams: its self-test fails, the device rolls back to 1.0.1, the job FAILED.
 * Ends with a table; exit 0 only if every outcome is the expected one.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { Presets, SingleBar } from "cli-progress";
import { withArgs, type CommandSpec } from "./args.ts";
import type { Io } from "./main.ts";
import { buildFirmware, DEMO_APP } from "../hosts/sim/firmware.ts";
import { writeSigningKeys } from "./signing.ts";
import { flashDevice } from "../hosts/sim/board.ts";
import { SimulatedDevice, type DeviceEvent } from "../hosts/sim/device.ts";
import { startCloud, SIGNER_LABEL, type Cloud } from "../cloud/server.ts";

export const DEMO: CommandSpec = {
  name: "demo",
  usage: ["demo [--dir DIR] [--broker URL]"],
  about: ["One simulated device, two updates (one succeeds, one rolls back), all on this machine; what `npm start` runs."],
  options: {
    dir: { type: "string", value: "DIR", description: "keep the demo's files there (default: a temporary folder, removed after)" },
    broker: { type: "string", value: "URL", description: "use your MQTT broker instead of the embedded one" },
  },
};
const THING = "dev-1";
/** A job that has not ended by then has gone wrong. */
const JOB_LIMIT_MS = 60_000;

export interface DemoHooks {
  /** Where the progress bar draws (default stdout; nothing is drawn unless it is a terminal). */
  stream?: NodeJS.WriteStream;
}

export interface DemoRow {
  job: string;
  protocol: string;
  bytes: number;
  seconds: number;
  outcome: string;
  running: string;
  expected: boolean;
}

interface Release {
  version: string;
  path: string;
  bytes: number;
  note: string;
}

export async function demoCommand(args: string[], io: Io, hooks: DemoHooks = {}): Promise<number> {
  return withArgs(DEMO, args, io, (a) => runDemo(a.string("dir"), a.string("broker"), io, hooks));
}

async function runDemo(dir: string | undefined, broker: string | undefined, io: Io, hooks: DemoHooks): Promise<number> {
  const work = dir ?? mkdtempSync(join(tmpdir(), "xs-ota-demo-"));
  // A kept folder starts each run afresh: a new cloud (job IDs are reused) and a new device.
  for (const old of ["cloud", "devices"]) rmSync(join(work, old), { recursive: true, force: true });
  const started = performance.now();
  let cloud: Cloud | undefined;
  let device: SimulatedDevice | undefined;
  try {
    io.out(`xs-ota demo: a simulated ESP32 updates itself from a local cloud (files in ${work})`);
    io.out("");
    io.out("> building firmware: the demo app bundled for XS, packed as ESP32 app images");
    mkdirSync(join(work, "firmware"), { recursive: true });
    const build = async (entry: string, version: string, note: string): Promise<Release> => {
      const path = join(work, "firmware", `demo-${version}.bin`);
      const image = await buildFirmware({ entry, version, out: path, projectName: "xs-ota-demo" });
      io.out(`  ${version}  ${image.length} bytes  ${note}`);
      return { version, path, bytes: image.length, note };
    };
    const v100 = await build(DEMO_APP.passes, "1.0.0", "self-test passes (factory firmware)");
    const v101 = await build(DEMO_APP.passes, "1.0.1", "self-test passes");
    const v102 = await build(DEMO_APP.fails, "1.0.2", "self-test fails: a release with a bug");
    const v103 = await build(DEMO_APP.passes, "1.0.3", "self-test passes; sent as a patch from 1.0.1");

    rmSync(join(work, "keys"), { recursive: true, force: true });
    const { privatePath: keyPath, publicPem } = writeSigningKeys(join(work, "keys"));
    io.out(`> signing key: a fresh ECDSA P-256 key (${keyPath}); the device trusts its public half as '${SIGNER_LABEL}'`);

    cloud = await startCloud({ dataDir: join(work, "cloud"), httpsPort: 0, controlPort: 0, httpPort: 0, ...(broker ? { brokerUrl: broker } : { mqttPort: 0, mqttsPort: 0 }) });
    io.out(`> local cloud: AWS IoT Jobs and file streams on ${cloud.urls.mqtt}${broker ? " (your broker)" : " (embedded broker)"}, presigned files on ${cloud.urls.https}`);

    flashDevice(join(work, "devices", THING), new Uint8Array(readFileSync(v100.path)));
    device = new SimulatedDevice({
      dir: join(work, "devices", THING),
      thing: THING,
      brokerUrl: cloud.urls.mqtt,
      keys: { [SIGNER_LABEL]: publicPem },
      config: { ca: cloud.caCert, progressInterval: 16 * 1024 },
    });
    const printer = new StepPrinter(io, hooks.stream ?? process.stdout);
    device.on("event", (e) => printer.device(THING, e));
    io.out(`> device ${THING}: flashed with 1.0.0, powering on (firmware runs on the XS engine)`);
    let appRunning = false;
    device.on("event", (e) => (appRunning ||= e.type === "log" && e.message.startsWith("app 1.0.0 running")));
    await device.start();
    await waitFor(() => appRunning, 10_000, "the device to start 1.0.0");

    const rows: DemoRow[] = [];
    rows.push(await runJob(cloud, device, printer, io, { jobId: "job-1", release: v101, protocol: "http", keyPath, expect: { status: "SUCCEEDED", running: "1.0.1" } }));
    rows.push(await runJob(cloud, device, printer, io, { jobId: "job-2", release: v102, protocol: "mqtt", keyPath, expect: { status: "FAILED", running: "1.0.1" } }));
    if (deltaToolMissing()) io.out(`\n> job-3 left out: ${deltaToolMissing()}`);
    else rows.push(await runJob(cloud, device, printer, io, { jobId: "job-3", release: v103, protocol: "mqtt", keyPath, deltaFrom: v101, expect: { status: "SUCCEEDED", running: "1.0.3" } }));

    io.out("");
    for (const line of table(rows)) io.out(line);
    io.out("");
    const good = rows.every((r) => r.expected);
    io.out(good ? `demo: every outcome as expected (${((performance.now() - started) / 1000).toFixed(1)} s)` : "demo: an outcome was not the expected one");
    return good ? 0 : 1;
  } catch (e) {
    io.err(`demo: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    await device?.stop();
    await cloud?.close();
    if (dir === undefined) rmSync(work, { recursive: true, force: true });
  }
}

interface JobSpec {
  jobId: string;
  release: Release;
  protocol: "http" | "mqtt";
  keyPath: string;
  /** Offer a patch from this release too (the device runs it, so it takes the patch). */
  deltaFrom?: Release;
  expect: { status: string; running: string };
}

async function runJob(cloud: Cloud, device: SimulatedDevice, printer: StepPrinter, io: Io, spec: JobSpec): Promise<DemoRow> {
  const how = spec.protocol === "http" ? "HTTPS (presigned URL)" : "MQTT file stream";
  io.out("");
  io.out(`> ${spec.jobId}: ${spec.release.version} over ${how}, signed (${spec.release.note})`);
  const response = await fetch(`${cloud.urls.control}/jobs`, {
    method: "POST",
    body: JSON.stringify({ thing: THING, file: spec.release.path, key: spec.keyPath, protocol: spec.protocol, jobId: spec.jobId, ...(spec.deltaFrom ? { deltaFrom: spec.deltaFrom.path } : {}) }),
  });
  if (response.status !== 201) throw new Error(`the cloud refused ${spec.jobId}: ${await response.text()}`);
  const patchBytes = spec.deltaFrom ? patchSizeOf(await response.json()) : undefined;
  if (patchBytes !== undefined) io.out(`  patch from ${spec.deltaFrom?.version}: ${patchBytes} bytes instead of ${spec.release.bytes} (xdelta3, VCDIFF)`);
  const t0 = performance.now();
  let status = "QUEUED";
  let details: Record<string, string> = {};
  printer.startBar(patchBytes ?? spec.release.bytes);
  try {
    while (!["SUCCEEDED", "FAILED", "REJECTED", "REMOVED", "CANCELED", "TIMED_OUT"].includes(status)) {
      if (performance.now() - t0 > JOB_LIMIT_MS) throw new Error(`${spec.jobId} did not end within ${JOB_LIMIT_MS / 1000} s (status ${status})`);
      await new Promise((r) => setTimeout(r, 50));
      const execution = cloud.jobs.describeJob(spec.jobId)?.executions.find((x) => x.thingName === THING);
      status = execution?.status ?? status;
      details = (execution?.statusDetails as Record<string, string> | undefined) ?? {};
      const m = /^(\d+)\/(\d+)$/.exec(details["receive"] ?? "");
      if (m) printer.progress(Number(m[1]));
    }
  } finally {
    printer.stopBar();
  }
  const seconds = (performance.now() - t0) / 1000;
  // The device reports FAILED from the old firmware; let it settle on whatever it runs now.
  await waitFor(() => device.bootInfo()?.state === "valid", 10_000, "the device to settle").catch(() => undefined);
  const running = device.version ?? "(none)";
  const outcome = status === "SUCCEEDED" ? status : describeFailure(status, details["reason"]);
  io.out(`  ${spec.jobId}  ${outcome}; the device runs ${running}`);
  return {
    job: spec.jobId,
    protocol: `${spec.protocol === "http" ? "HTTP" : "MQTT"}${patchBytes !== undefined ? ", patch" : ""}`,
    bytes: patchBytes ?? spec.release.bytes,
    seconds,
    outcome,
    running,
    expected: status === spec.expect.status && running === spec.expect.running,
  };
}

/** The patch's size in a job document the cloud answered with (afr_ota.files[0].xs_ota_delta.filesize). */
function patchSizeOf(answer: unknown): number | undefined {
  const files = (answer as { document?: { afr_ota?: { files?: { xs_ota_delta?: { filesize?: unknown } }[] } } }).document?.afr_ota?.files;
  const size = files?.[0]?.xs_ota_delta?.filesize;
  return typeof size === "number" ? size : undefined;
}

/** Why the demo cannot offer a patch here, or undefined when it can (xdelta3 makes them). */
function deltaToolMissing(): string | undefined {
  const r = spawnSync("xdelta3", ["-V"], { stdio: "ignore" });
  return r.error ? "xdelta3, which makes patches, is not installed (Debian: apt install xdelta3)" : undefined;
}

/**
 * "FAILED" and the device's reason, "stage/code: text" (modules/aws/channel.ts), as people read
 * it: "FAILED (self-test): text"; the code is left out when it only repeats the stage.
 */
export function describeFailure(status: string, reason: string | undefined): string {
  if (!reason) return status;
  const m = /^([a-z-]+)\/([a-z0-9_-]+): ([\s\S]*)$/.exec(reason);
  if (!m) return `${status}: ${reason}`;
  const [, stage, code, text] = m;
  return `${status} (${stage === code ? stage : `${stage}, ${code}`}): ${text}`;
}

/**
 * Step lines from the device, and the progress bar (on a terminal only) between them. A line
 * never goes under the bar: the bar is cleared, the line written through io (stdout, in order
 * with every other line), and the bar drawn again below it. cli-progress's own log() would
 * write to the bar's stream behind io's back, and lose lines still buffered when the bar stops.
 */
export class StepPrinter {
  #bar: SingleBar | undefined;
  #total = 0;
  #value = 0;

  constructor(
    readonly io: Io,
    readonly stream: NodeJS.WriteStream,
  ) {}

  device(thing: string, e: DeviceEvent): void {
    const trial = e.type === "boot" && e.bootloader.some((l) => l.endsWith("-> PENDING_VERIFY")) ? " (a trial boot: it must confirm itself)" : "";
    const text = e.type === "boot" ? `boot ${e.boots}: bootloader starts ${e.slot}, firmware ${e.version}${trial}` : e.type === "log" ? (e.level === "debug" ? undefined : e.message) : e.type === "restart" ? `restart (${e.reason})` : `halted: ${e.reason}`;
    if (text !== undefined) this.line(`  ${thing}  ${text}`);
  }

  line(text: string): void {
    if (this.#bar === undefined) {
      this.io.out(text);
      return;
    }
    this.#bar.stop(); // clearOnComplete: the bar's line is erased, the cursor at its start
    this.io.out(text);
    this.#bar = this.#draw();
  }

  startBar(total: number): void {
    if (!this.stream.isTTY) return;
    this.#total = total;
    this.#value = 0;
    this.#bar = this.#draw();
  }

  #draw(): SingleBar {
    const bar = new SingleBar({ stream: this.stream, format: "  download [{bar}] {percentage}% {value}/{total} bytes", hideCursor: true, clearOnComplete: true }, Presets.shades_classic);
    bar.start(this.#total, this.#value);
    return bar;
  }

  progress(received: number): void {
    this.#value = received;
    this.#bar?.update(received);
  }

  /** The bar goes away; the job's outcome line that follows says how it ended. */
  stopBar(): void {
    this.#bar?.stop();
    this.#bar = undefined;
  }
}

function table(rows: DemoRow[]): string[] {
  const head = ["job", "protocol", "bytes", "time", "outcome", "running", "check"];
  const body = rows.map((r) => [r.job, r.protocol, String(r.bytes), `${r.seconds.toFixed(1)} s`, r.outcome, r.running, r.expected ? "as expected" : "NOT EXPECTED"]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? "").length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 2 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join("  ").trimEnd();
  return [fmt(head), fmt(widths.map((w) => "-".repeat(w))), ...body.map(fmt)];
}

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
