/** Fakes and a simulated device for the agent's suites. Portable. */
import { p256 } from "../../modules/verify/noble-signature.ts";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import type { Http, HttpRequest, HttpResponse } from "../../modules/ports/http.ts";
import type { System, LogLevel } from "../../modules/ports/system.ts";
import type { JobChannel, JobFailure } from "../../modules/agent/channel.ts";
import type { ParseResult, UpdatePlan } from "../../modules/jobs/plan.ts";
import { Agent, type AgentApp } from "../../modules/agent/agent.ts";
import { OtaError } from "../../modules/errors.ts";
import type { Clock } from "../../modules/ports/clock.ts";
import type { Mqtt } from "../../modules/ports/mqtt.ts";
import type { BlockTransfer, BlockTransferOptions } from "../../modules/transfer/blocks.ts";
import { StreamDownload } from "../../modules/aws/stream.ts";
import { encodeBase64 } from "../../modules/codec/base64.ts";
import { nobleDigests } from "../../modules/verify/noble-digest.ts";
import { nobleVerifier } from "../../modules/verify/noble-signature.ts";
import { PemKeyStore } from "../../modules/verify/pem-key-store.ts";
import { MemoryStateStore } from "../../hosts/sim/state-store.ts";
import { ManualClock } from "./manual-clock.ts";
import { nextTurn } from "./env.ts";
import { FakeStreamBroker } from "./fake-streams.ts";
import { MiniDevice, appImage } from "./boot-fixture.ts";
import { parseImagePrefix } from "../../modules/esp-idf/image.ts";
import { espIdfFormat } from "../../modules/esp-idf/format.ts";

const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
export const SIGNER = nobleSha256(ascii("agent test signer"));
const SPKI = "3059301306072a8648ce3d020106082a8648ce3d030107034200";

export function signerPem(): string {
  const point = p256.getPublicKey(SIGNER, false);
  const der = new Uint8Array(26 + 65);
  der.set(Uint8Array.from(SPKI.match(/../g)!, (h) => parseInt(h, 16)));
  der.set(point, 26);
  return `-----BEGIN PUBLIC KEY-----\n${encodeBase64(der)}\n-----END PUBLIC KEY-----\n`;
}

export const sign = (image: Uint8Array) => encodeBase64(p256.sign(nobleSha256(image), SIGNER, { prehash: false }));

/** A web server in memory with Range support; `refuse` makes URLs answer 403 for a while. */
export class FakeHttp implements Http {
  readonly files = new Map<string, Uint8Array>();
  refuse = new Set<string>();
  requests: string[] = [];
  /** Bytes after which a response is cut (to simulate a drop), per URL. */
  cutAfter = new Map<string, number>();

  async request(req: HttpRequest): Promise<HttpResponse> {
    this.requests.push(`${req.url} ${req.headers?.range ?? ""}`);
    const body = this.files.get(req.url);
    const status = this.refuse.has(req.url) ? 403 : body ? 206 : 404;
    if (status !== 206 || !body) return respond(status, {}, new Uint8Array(0));
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers?.range ?? "");
    const start = m ? Number(m[1]) : 0;
    const end = m && m[2] ? Number(m[2]) : body.length - 1;
    const slice = body.subarray(start, end + 1);
    const cut = this.cutAfter.get(req.url);
    return respond(206, { "content-range": `bytes ${start}-${end}/${body.length}`, "content-length": String(slice.length) }, slice, cut);
  }
}

function respond(status: number, headers: Record<string, string>, body: Uint8Array, cut?: number): HttpResponse {
  let at = 0;
  let closed = false;
  return {
    status,
    headers,
    async read() {
      if (closed || at >= body.length) return undefined;
      if (cut !== undefined && at >= cut) throw new OtaError("network", "connection reset (test)");
      const n = Math.min(1500, body.length - at, cut !== undefined ? cut - at : Infinity);
      const chunk = body.subarray(at, at + n);
      at += n;
      return chunk;
    },
    close() {
      closed = true;
    },
  };
}

export interface Report {
  kind: "progress" | "before-reboot" | "self-test" | "succeeded" | "failed" | "custom";
  jobId: string;
  detail: string;
}

/** A job channel that records what the agent reports and lets a test hand it jobs. */
export class FakeChannel implements JobChannel {
  reports: Report[] = [];
  nextRequests = 0;
  starts = 0;
  #handler: ((r: ParseResult) => void) | undefined;

  /** Starts that fail, as a subscribe does when the connection drops under it. */
  failStarts = 0;
  async start(): Promise<void> {
    this.starts++;
    if (this.failStarts > 0) {
      this.failStarts--;
      throw new OtaError("network", "subscribe: not connected");
    }
  }
  requestNext(): void {
    this.nextRequests++;
  }
  onJob(handler: (result: ParseResult) => void): void {
    this.#handler = handler;
  }
  offer(result: ParseResult): void {
    this.#handler?.(result);
  }
  /** Where stream downloads go: the rig's fake AWS stream service. */
  streams: { mqtt: Mqtt; clock: Clock; thing: string } | undefined;
  #stream: StreamDownload | undefined;
  handle(topic: string, payload: Uint8Array): boolean {
    return this.#stream?.handle(topic, payload) ?? false;
  }
  blockTransfer(plan: UpdatePlan, options: BlockTransferOptions): BlockTransfer {
    if (!this.streams || plan.stream === undefined || plan.fileId === undefined) throw new OtaError("bad-argument", "no stream for this plan");
    const stream = new StreamDownload({ ...options, ...this.streams, stream: plan.stream, fileId: plan.fileId });
    this.#stream = stream;
    return stream;
  }
  async progress(plan: UpdatePlan, received: number, total: number): Promise<void> {
    this.reports.push({ kind: "progress", jobId: plan.jobId, detail: `${received}/${total}` });
  }
  async beforeReboot(plan: UpdatePlan, previous: string): Promise<void> {
    this.reports.push({ kind: "before-reboot", jobId: plan.jobId, detail: previous });
  }
  async selfTestStarted(plan: UpdatePlan, _previous: string): Promise<void> {
    this.reports.push({ kind: "self-test", jobId: plan.jobId, detail: "" });
  }
  /** Whether outcome reports reach the cloud (false: as if the connection dropped under them); a promise holds the answer back. */
  delivers: boolean | Promise<boolean> = true;
  async succeeded(plan: UpdatePlan, version: string, _previous: string): Promise<boolean> {
    this.reports.push({ kind: "succeeded", jobId: plan.jobId, detail: version });
    return this.delivers;
  }
  async failed(job: { jobId: string }, failure: JobFailure): Promise<boolean> {
    this.reports.push({ kind: "failed", jobId: job.jobId, detail: `${failure.stage}/${failure.code}: ${failure.reason}` });
    return this.delivers;
  }
  async customResult(jobId: string, succeeded: boolean, reason?: string): Promise<void> {
    this.reports.push({ kind: "custom", jobId, detail: `${succeeded} ${reason ?? ""}` });
  }
  last(kind: Report["kind"]): Report | undefined {
    return [...this.reports].reverse().find((r) => r.kind === kind);
  }
}

/** The running firmware: its version comes from the image the bootloader started. */
export class FakeSystem implements System {
  restarts = 0;
  logs: string[] = [];
  constructor(private readonly device: MiniDevice) {}
  restart(): void {
    this.restarts++;
  }
  version(): string {
    const slot = this.device.partitions.open(this.device.partitions.running());
    return parseImagePrefix(new Uint8Array(slot.read(288, 0))).desc.version;
  }
  freeMemory(): number | undefined {
    return undefined;
  }
  log(level: LogLevel, message: string): void {
    this.logs.push(`${level}: ${message}`);
  }
}

/** One simulated device whose flash and state survive `reboot()`; each boot makes a new agent. */
export class AgentRig {
  readonly device = MiniDevice.fresh({ strict: true }, "1.0.0");
  readonly store = new MemoryStateStore();
  readonly http = new FakeHttp();
  readonly broker: FakeStreamBroker;
  readonly clock = new ManualClock();
  readonly channel = new FakeChannel();
  readonly keys = new PemKeyStore("dev-1", { "signer.crt": signerPem() });
  system: FakeSystem;
  agent!: Agent;
  /** Transitions of every agent this rig booted, oldest first. */
  readonly traces: string[] = [];
  app: AgentApp = { selfTest: () => true };

  constructor(streamFile: Uint8Array = new Uint8Array(0)) {
    this.broker = new FakeStreamBroker(streamFile, 0);
    this.channel.streams = { mqtt: this.broker, clock: this.clock, thing: "dev-1" };
    this.system = new FakeSystem(this.device);
    this.boot();
  }

  boot(config: Record<string, unknown> = {}): Agent {
    if (this.agent) this.traces.push(...this.agent.trace);
    this.channel.onJob(() => undefined);
    this.agent = new Agent({
      ports: {
        partitions: this.device.partitions, boot: this.device.boot, image: espIdfFormat, store: this.store, clock: this.clock, http: this.http,
        mqtt: this.broker, digests: nobleDigests, verifier: nobleVerifier, keys: this.keys, system: this.system,
      },
      app: { selfTest: () => this.app.selfTest(), customJob: this.app.customJob ? (id, doc) => this.app.customJob!(id, doc) : undefined },
      channel: this.channel,
      config: { selfTestTimeout: 5000, progressInterval: 2000, recordInterval: 2000, blockSize: 1024, ...config },
      // The cases check which rows of the table they took: keep the whole trace.
      traceLimit: Number.MAX_SAFE_INTEGER,
    });
    this.broker.onMessage((topic, payload) => this.channel.handle(topic, payload));
    return this.agent;
  }

  /** Boot, connect and get the channel ready. */
  async online(): Promise<Agent> {
    this.agent.dispatch({ type: "boot" });
    this.agent.dispatch({ type: "connected" });
    await settle();
    return this.agent;
  }

  /** The device restarts: the bootloader picks a slot, a new agent starts on it. */
  async reboot(): Promise<Agent> {
    if (this.device.restart() === undefined) throw new Error("device does not boot");
    this.boot();
    return this.online();
  }
}

/** Lets every pending job and callback run. */
export async function settle(turns = 30): Promise<void> {
  for (let i = 0; i < turns; i++) await nextTurn();
}

export function httpPlan(jobId: string, url: string, image: Uint8Array, extra: Partial<UpdatePlan> = {}): UpdatePlan {
  return { jobId, format: "aws-ota", protocol: "http", url, size: image.length, signature: { base64: sign(image), keyLabel: "signer.crt" }, ...extra };
}

export { appImage };
