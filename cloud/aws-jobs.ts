/**
 * A local AWS IoT Jobs service for the desktop cloud (Node only). It listens on an MQTT broker
 * (aedes, or anything with StreamBroker's three methods, see cloud/aws-streams.ts) and answers the
 * Jobs device MQTT API the way AWS does, as far as AWS documents it (sources and protocol facts:
 * modules/aws/jobs.ts, [M] and [A] there). JSON is Node's own and the request checks are
 * written independently of the device module, so the two test each other.
 *
 * ## Device API (for thing T)
 * - `$aws/things/T/jobs/$next/get` and `$aws/things/T/jobs/<jobId>/get` (DescribeJobExecution)
 *   {clientToken?, includeJobDocument?, executionNumber?}: .../accepted {clientToken?, timestamp,
 *   execution?}. `$next` is the next pending execution: IN_PROGRESS before QUEUED, then by time
 *   queued (then by creation order); none pending: no `execution`. A named job T has no
 *   execution of: rejected ResourceNotFound.
 * - `$aws/things/T/jobs/start-next` (StartNextPendingJobExecution) {clientToken?, statusDetails?,
 *   stepTimeoutInMinutes?}: the next pending execution, set IN_PROGRESS when it was QUEUED
 *   (versionNumber + 1, statusDetails replaced when given); .../accepted {clientToken?, timestamp,
 *   execution?}.
 * - `$aws/things/T/jobs/<jobId>/update` (UpdateJobExecution) {status, statusDetails?,
 *   expectedVersion?, executionNumber?, includeJobExecutionState?, includeJobDocument?,
 *   stepTimeoutInMinutes?, clientToken?}. Checks, in this order, each answered on .../rejected
 *   {clientToken?, timestamp, code, message, executionState?}:
 *     UTF-8 JSON (InvalidJson); a JSON object, field types, statusDetails (keys 1..128 of
 *     [a-zA-Z0-9:_-], string values of 1..1024 code points without \p{C}, at most 10 entries),
 *     stepTimeoutInMinutes 1..10080, clientToken 1..64 bytes, status one of the JobStatus values
 *     (InvalidRequest); the execution exists (ResourceNotFound); it is not terminal
 *     (InvalidStateTransition + executionState); expectedVersion matches (VersionMismatch +
 *     executionState); the status is one a device may set, IN_PROGRESS, SUCCEEDED, FAILED or
 *     REJECTED (InvalidStateTransition + executionState).
 *   Accepted: status set; statusDetails replaced when given, kept when not ("If not specified,
 *   the statusDetails are unchanged"); versionNumber + 1; startedAt set on leaving QUEUED;
 *   lastUpdatedAt now; .../accepted {clientToken?, timestamp, executionState? (when
 *   includeJobExecutionState), jobDocument? (when includeJobDocument)}.
 *   IN_PROGRESS -> IN_PROGRESS is allowed (progress reports); terminal states are final.
 * - `$aws/things/T/jobs/notify-next` {timestamp, execution?}: published whenever the first
 *   execution of T's pending list changes (a job created or canceled, an update), including to
 *   none (no `execution`).
 * - Thing names outside [a-zA-Z0-9:_-]{1,128}, job IDs outside [a-zA-Z0-9_-]{1,64} (and `$next`
 *   where a job ID must be named, as in `$next/update`): InvalidTopic.
 * - A request that cannot be answered at all never throws out of the service: the failure goes
 *   to `lastError` and the service goes on.
 * - `onRequest` may return {drop: true} for a request: it is logged ("dropped") and gets no
 *   answer, as from a silent service.
 *
 * ## Control plane (what the AWS console / CreateJob would do), as methods
 * createJob({jobId, document, targets, presignedUrlConfig?, queuedAt?}) makes one QUEUED
 * execution per target thing (queued now, or at queuedAt); cancelJob(jobId, {force?}) cancels QUEUED executions (and IN_PROGRESS ones with
 * force, as CancelJob's `force`); describeJob, listJobs. Job status: IN_PROGRESS until every
 * execution is terminal, then COMPLETED; CANCELED after cancelJob.
 * Presigned URLs: string values of the document that are exactly
 * `${aws:iot:s3-presigned-url-v2:<url>}` (or the older `${aws:iot:s3-presigned-url:<url>}`) are replaced, each time the document is sent to a device,
 * by `options.presign(<url>, expiresInSec)` (presignedUrlConfig.expiresInSec, default 3600), as
 * AWS does for S3 placeholders, so a device that asks again after its URL expired gets a fresh one.
 *
 * ## State on disk
 * With `dataDir`, every change is on disk before the device gets its answer (cloud/job-store.ts):
 * a job's creation or cancellation rewrites `dataDir/jobs.json` atomically (temporary file, fsync,
 * rename); a device's change of its execution appends one line to `dataDir/jobs.log` and syncs
 * it, so an update costs the same in a fleet of any size. The log is folded into jobs.json at
 * start, on stop() and whenever it outgrows the snapshot. A service constructed on the same
 * dataDir loads both: jobs survive a restart of the cloud, a kill -9 included. What was last announced on notify-next is not kept (after a restart the
 * next change of a thing's next execution is announced).
 *
 * ## Choices where AWS says nothing
 * - A terminal execution refuses every update before expectedVersion is compared.
 * - A valid status a device may not set (QUEUED, TIMED_OUT, REMOVED, CANCELED): InvalidStateTransition.
 * - A JSON value that is not an object: InvalidRequest. Unknown request fields are ignored.
 * - A valid clientToken is echoed in every rejection (InvalidTopic included), an invalid one never.
 */
import { mkdirSync } from "node:fs";
import type { BrokerPublish, StreamBroker } from "./aws-streams.ts";
import { BrokerListener } from "./broker-listener.ts";
import { JobStore, type ExecutionChange, type JobsState } from "./job-store.ts";

export type ExecutionStatus = "QUEUED" | "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "REJECTED" | "TIMED_OUT" | "REMOVED" | "CANCELED";
export type JobState = "IN_PROGRESS" | "CANCELED" | "COMPLETED";
export type JobsRejectionCode = "InvalidTopic" | "InvalidJson" | "InvalidRequest" | "InvalidStateTransition" | "ResourceNotFound" | "VersionMismatch" | "InternalError";

const STATUSES: readonly string[] = ["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"];
const DEVICE_STATUSES: readonly string[] = ["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"];
const TERMINAL: readonly string[] = ["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"];
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;
const DETAIL_KEY = /^[a-zA-Z0-9:_-]{1,128}$/;
/** AWS's documented v2 placeholder, and the older form without "-v2". */
const PLACEHOLDER = /^\$\{aws:iot:s3-presigned-url(?:-v2)?:(.+)\}$/s;
const MAX_DOCUMENT = 32768;

export interface JobExecutionRecord {
  jobId: string;
  thingName: string;
  status: ExecutionStatus;
  statusDetails?: Record<string, string>;
  versionNumber: number;
  executionNumber: number;
  /** Seconds since the epoch. */
  queuedAt: number;
  startedAt?: number;
  lastUpdatedAt: number;
  stepTimeoutInMinutes?: number;
  /** Creation order, for executions queued in the same second. */
  sequence: number;
}

export interface JobRecord {
  jobId: string;
  document: Record<string, unknown>;
  targets: string[];
  status: JobState;
  description?: string;
  presignedUrlConfig?: { expiresInSec: number };
  createdAt: number;
  lastUpdatedAt: number;
  completedAt?: number;
  /** Set by cancelJob. */
  forceCanceled?: boolean;
}

export interface JobDescription {
  job: JobRecord & { jobProcessDetails: Record<string, number> };
  executions: JobExecutionRecord[];
}

export interface CreateJobInput {
  jobId: string;
  /** A JSON object, at most 32768 characters as JSON. */
  document: Record<string, unknown>;
  /** Thing names; one execution each. */
  targets: string[];
  description?: string;
  /** For `${aws:iot:s3-presigned-url:...}` placeholders; expiresInSec 60..3600 (AWS's range). */
  presignedUrlConfig?: { expiresInSec: number };
  /** When the executions count as queued, seconds since the epoch; default now (orders `$next`). */
  queuedAt?: number;
}

export interface AwsJobsServiceOptions {
  /** Where jobs.json lives; without it the state is in memory only. */
  dataDir?: string;
  /** QoS of the answers and notifications; default 1. */
  qos?: 0 | 1;
  /** Clock in seconds since the epoch; default the wall clock. */
  now?: () => number;
  /** Resolves `${aws:iot:s3-presigned-url:<url>}` in documents each time one is sent. */
  presign?: (url: string, expiresInSec: number) => string;
}

export interface JobsLogEntry {
  thing: string;
  operation: "describe" | "start-next" | "update" | "invalid";
  jobId?: string;
  /** The request as text (hex when it was not UTF-8). */
  payload: string;
  /** "accepted" or the rejection's code; "dropped" when `onRequest` said so. */
  outcome: string;
}

/** What `onRequest` sees of each device request, before the service acts on it. */
export interface JobsRequestInfo {
  thing: string;
  operation: JobsLogEntry["operation"];
  jobId?: string;
}

/** Behaviour for one request, returned by `onRequest`; `drop`: send no answer at all (a silent service). */
export interface JobsAction {
  drop?: boolean;
}

/**
 * What `onActivity` is told after the service changed or answered something: a device request
 * (its thing, operation, job and outcome, as in `log`) or a control-plane change of a job.
 */
export type JobsActivity = (JobsLogEntry & { kind: "request" }) | { kind: "job"; jobId: string; change: "created" | "canceled" };

/** Counters for benchmarks and tests. */
export interface JobsStats {
  /** UpdateJobExecution requests received (accepted or not). */
  updates: number;
  /** Process CPU (user + system, microseconds) spent on them until each answer was handed to the broker. */
  updateCpuMicros: number;
  /** Times jobs.json was written whole (cloud/job-store.ts). */
  snapshots: number;
  /** Execution changes appended to jobs.log instead. */
  appends: number;
}

type Json = Record<string, unknown>;

class Rejected extends Error {
  constructor(
    readonly code: JobsRejectionCode,
    message: string,
    readonly state?: JobExecutionRecord,
  ) {
    super(message);
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isNonNegativeInteger(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

export class AwsJobsService {
  static readonly GET_FILTER = "$aws/things/+/jobs/+/get";
  static readonly UPDATE_FILTER = "$aws/things/+/jobs/+/update";
  static readonly START_NEXT_FILTER = "$aws/things/+/jobs/start-next";

  readonly #broker: StreamBroker;
  readonly #qos: 0 | 1;
  readonly #now: () => number;
  readonly #presign: ((url: string, expiresInSec: number) => string) | undefined;
  readonly #store: JobStore | undefined;
  readonly #jobs = new Map<string, JobRecord>();
  /** thing -> jobId -> execution */
  readonly #things = new Map<string, Map<string, JobExecutionRecord>>();
  /** The first pending job ID per thing, as last announced (undefined: none). */
  readonly #announced = new Map<string, string | undefined>();
  #sequence = 0;
  readonly #listener: BrokerListener;
  /** Every device request received, in order. */
  readonly log: JobsLogEntry[] = [];
  readonly #stats = { updates: 0, updateCpuMicros: 0 };
  /** Called for each device request before it is answered; may make the service stay silent. */
  onRequest: ((request: JobsRequestInfo) => JobsAction | undefined | void) | undefined;
  /** Called after each device request is handled and after each job creation or cancellation (the dashboard, cloud/dashboard.ts). */
  onActivity: ((activity: JobsActivity) => void) | undefined;

  constructor(broker: StreamBroker, options: AwsJobsServiceOptions = {}) {
    this.#broker = broker;
    this.#listener = new BrokerListener(broker, [AwsJobsService.GET_FILTER, AwsJobsService.UPDATE_FILTER, AwsJobsService.START_NEXT_FILTER], (topic, payload) =>
      this.#handle(topic, payload),
    );
    this.#qos = options.qos ?? 1;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
    this.#presign = options.presign;
    if (options.dataDir !== undefined) {
      mkdirSync(options.dataDir, { recursive: true });
      this.#store = new JobStore(options.dataDir);
      this.#load();
    }
  }

  start(): Promise<void> {
    return this.#listener.start();
  }

  /** Stops listening, waits until every request received so far has been answered, and folds the log of execution changes into jobs.json. */
  async stop(): Promise<void> {
    await this.#listener.stop();
    this.#store?.close(this.#state());
  }

  /** Resolves when every request received (and every notification started) so far is done. */
  idle(): Promise<void> {
    return this.#listener.idle();
  }

  /** What the service has done so far (a copy). */
  get stats(): JobsStats {
    return { ...this.#stats, snapshots: this.#store?.snapshots ?? 0, appends: this.#store?.appends ?? 0 };
  }

  /** The last failure while answering (a publish the broker refused, a failed write). */
  get lastError(): unknown {
    return this.#listener.lastError;
  }

  // ---- control plane ----

  /** Creates a job with one QUEUED execution per target; notify-next follows where it is next. */
  async createJob(input: CreateJobInput): Promise<JobRecord> {
    const { jobId, document, targets } = input;
    if (typeof jobId !== "string" || !JOB_ID.test(jobId)) throw new Error(`job ID ${JSON.stringify(jobId)}: [a-zA-Z0-9_-]{1,64}`);
    if (this.#jobs.has(jobId)) throw new Error(`job ${jobId} already exists`);
    if (!isObject(document)) throw new Error("the job document must be a JSON object");
    const text = JSON.stringify(document);
    if (text.length > MAX_DOCUMENT) throw new Error(`the job document has ${text.length} characters, more than ${MAX_DOCUMENT}`);
    if (!Array.isArray(targets) || targets.length === 0) throw new Error("a job needs at least one target thing");
    if (new Set(targets).size !== targets.length) throw new Error("a target is named twice");
    for (const thing of targets) {
      if (typeof thing !== "string" || !THING_NAME.test(thing)) throw new Error(`thing name ${JSON.stringify(thing)}: [a-zA-Z0-9:_-]{1,128}`);
    }
    const expires = input.presignedUrlConfig?.expiresInSec;
    if (expires !== undefined && !(Number.isInteger(expires) && expires >= 60 && expires <= 3600)) {
      throw new Error("presignedUrlConfig.expiresInSec must be an integer from 60 to 3600");
    }
    const queuedAt = input.queuedAt;
    if (queuedAt !== undefined && !isNonNegativeInteger(queuedAt)) throw new Error("queuedAt must be a non-negative integer (seconds)");
    const now = this.#now();
    const job: JobRecord = {
      jobId,
      document: JSON.parse(text) as Record<string, unknown>,
      targets: [...targets],
      status: "IN_PROGRESS",
      createdAt: now,
      lastUpdatedAt: now,
    };
    if (input.description !== undefined) job.description = input.description;
    if (expires !== undefined) job.presignedUrlConfig = { expiresInSec: expires };
    this.#jobs.set(jobId, job);
    for (const thing of targets) {
      let executions = this.#things.get(thing);
      if (!executions) this.#things.set(thing, (executions = new Map()));
      executions.set(jobId, {
        jobId,
        thingName: thing,
        status: "QUEUED",
        versionNumber: 1,
        executionNumber: 1,
        queuedAt: queuedAt ?? now,
        lastUpdatedAt: now,
        sequence: this.#sequence++,
      });
    }
    this.#save();
    const created = structuredClone(job);
    this.#tell({ kind: "job", jobId, change: "created" });
    await this.#enqueue(async () => {
      for (const thing of targets) await this.#announce(thing);
    });
    return created;
  }

  /**
   * Cancels a job: its QUEUED executions become CANCELED, and with `force` its IN_PROGRESS ones
   * too (as CancelJob). Canceling a canceled job does nothing; a completed one cannot be canceled.
   */
  async cancelJob(jobId: string, options: { force?: boolean } = {}): Promise<void> {
    const job = this.#jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    if (job.status === "CANCELED") return;
    if (job.status === "COMPLETED") throw new Error(`job ${jobId} is completed`);
    const now = this.#now();
    job.status = "CANCELED";
    job.lastUpdatedAt = now;
    if (options.force) job.forceCanceled = true;
    for (const thing of job.targets) {
      const e = this.#things.get(thing)?.get(jobId);
      if (!e) continue;
      if (e.status === "QUEUED" || (options.force === true && e.status === "IN_PROGRESS")) {
        e.status = "CANCELED";
        e.versionNumber++;
        e.lastUpdatedAt = now;
      }
    }
    this.#save();
    this.#tell({ kind: "job", jobId, change: "canceled" });
    await this.#enqueue(async () => {
      for (const thing of job.targets) await this.#announce(thing);
    });
  }

  describeJob(jobId: string): JobDescription | undefined {
    const job = this.#jobs.get(jobId);
    if (!job) return undefined;
    const executions = job.targets.flatMap((thing) => {
      const e = this.#things.get(thing)?.get(jobId);
      return e ? [structuredClone(e)] : [];
    });
    const counts: Record<string, number> = {};
    for (const s of STATUSES) counts[`numberOf${processName(s)}Things`] = 0;
    for (const e of executions) {
      const key = `numberOf${processName(e.status)}Things`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    return { job: { ...structuredClone(job), jobProcessDetails: counts }, executions };
  }

  listJobs(): JobRecord[] {
    return [...this.#jobs.values()].map((job) => structuredClone(job));
  }

  /** A copy of one execution. */
  execution(thing: string, jobId: string): JobExecutionRecord | undefined {
    const e = this.#things.get(thing)?.get(jobId);
    return e ? structuredClone(e) : undefined;
  }

  /** The next pending execution of `thing`: IN_PROGRESS before QUEUED, then oldest first. */
  next(thing: string): JobExecutionRecord | undefined {
    const pending = [...(this.#things.get(thing)?.values() ?? [])].filter((e) => e.status === "IN_PROGRESS" || e.status === "QUEUED");
    const rank = (e: JobExecutionRecord) => (e.status === "IN_PROGRESS" ? 0 : 1);
    const first = pending.sort((a, b) => rank(a) - rank(b) || a.queuedAt - b.queuedAt || a.sequence - b.sequence)[0];
    return first ? structuredClone(first) : undefined;
  }

  // ---- persistence (cloud/job-store.ts) ----

  #load(): void {
    const state = this.#store?.load();
    if (state === undefined) return;
    for (const job of state.jobs) this.#jobs.set(job.jobId, job);
    for (const e of state.executions) {
      let executions = this.#things.get(e.thingName);
      if (!executions) this.#things.set(e.thingName, (executions = new Map()));
      executions.set(e.jobId, e);
    }
    this.#sequence = Math.max(state.sequence, ...state.executions.map((e) => e.sequence + 1));
  }

  #state(): JobsState {
    return {
      sequence: this.#sequence,
      jobs: [...this.#jobs.values()],
      executions: [...this.#things.values()].flatMap((m) => [...m.values()]),
    };
  }

  /** For the control plane's changes, which touch a job and many executions. */
  #save(): void {
    this.#store?.snapshot(this.#state());
  }

  /** For a device's change of one execution: on disk before the caller answers. */
  #saveExecution(e: JobExecutionRecord, completedAt?: number): void {
    const change: ExecutionChange = { execution: e };
    if (completedAt !== undefined) change.completedAt = completedAt;
    this.#store?.append(change, () => this.#state());
  }

  // ---- device API ----

  #enqueue(work: () => Promise<void>): Promise<void> {
    return this.#listener.enqueue(work);
  }

  async #announce(thing: string): Promise<void> {
    const next = this.next(thing);
    const known = this.#announced.has(thing);
    if (known && this.#announced.get(thing) === next?.jobId) return;
    if (!known && next === undefined) return;
    this.#announced.set(thing, next?.jobId);
    const message: Json = { timestamp: this.#now() };
    if (next) message["execution"] = this.#executionJson(next, true);
    await this.#publish(`$aws/things/${thing}/jobs/notify-next`, message);
  }

  #document(jobId: string): unknown {
    const job = this.#jobs.get(jobId);
    if (!job) return {};
    const presign = this.#presign;
    if (presign === undefined) return structuredClone(job.document);
    const expires = job.presignedUrlConfig?.expiresInSec ?? 3600;
    const resolve = (v: unknown): unknown => {
      if (typeof v === "string") {
        const m = PLACEHOLDER.exec(v);
        return m ? presign(m[1] ?? "", expires) : v;
      }
      if (Array.isArray(v)) return v.map(resolve);
      if (isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x)]));
      return v;
    };
    return resolve(job.document);
  }

  #executionJson(e: JobExecutionRecord, withDocument: boolean): Json {
    const out: Json = { jobId: e.jobId, thingName: e.thingName, status: e.status };
    if (e.statusDetails) out["statusDetails"] = { ...e.statusDetails };
    out["queuedAt"] = e.queuedAt;
    if (e.startedAt !== undefined) out["startedAt"] = e.startedAt;
    out["lastUpdatedAt"] = e.lastUpdatedAt;
    out["versionNumber"] = e.versionNumber;
    out["executionNumber"] = e.executionNumber;
    if (withDocument) out["jobDocument"] = this.#document(e.jobId);
    return out;
  }

  #stateJson(e: JobExecutionRecord): Json {
    const out: Json = { status: e.status };
    if (e.statusDetails) out["statusDetails"] = { ...e.statusDetails };
    out["versionNumber"] = e.versionNumber;
    return out;
  }

  /**
   * Everything a request costs before its first wait (checks, the state change, the write to
   * disk, the answer handed to the broker) runs synchronously, so the CPU measured around that
   * part is the service's own even when other work shares the process (the simulator in
   * bench/fleet.ts).
   */
  #handle(topic: string, payload: Buffer): Promise<void> {
    const update = topic.endsWith("/update");
    const before = update ? process.cpuUsage() : undefined;
    const answered = this.#answer(topic, payload);
    if (before !== undefined) {
      const used = process.cpuUsage(before);
      this.#stats.updates++;
      this.#stats.updateCpuMicros += used.user + used.system;
    }
    // Told once the state changed (synchronously above), whatever became of the answer.
    const entry = this.log.at(-1);
    if (entry !== undefined) this.#tell({ kind: "request", ...entry });
    return answered;
  }

  /** A listener's failure is its own: the device still gets its answer. */
  #tell(activity: JobsActivity): void {
    try {
      this.onActivity?.(activity);
    } catch {
      // The listener (the dashboard) reports nothing back to the device.
    }
  }

  async #answer(topic: string, payload: Buffer): Promise<void> {
    // $aws/things/<thing>/jobs/<jobId|$next>/<get|update>  or  $aws/things/<thing>/jobs/start-next
    const levels = topic.split("/");
    const thing = levels[2] ?? "";
    const startNext = levels.length === 5 && levels[4] === "start-next";
    const action = startNext ? "start-next" : levels[5];
    const jobId = startNext ? undefined : levels[4];
    const operation: JobsLogEntry["operation"] = action === "get" ? "describe" : action === "update" ? "update" : action === "start-next" ? "start-next" : "invalid";
    const entry: JobsLogEntry = { thing, operation, payload: readable(payload), outcome: "accepted" };
    if (jobId !== undefined) entry.jobId = jobId;
    this.log.push(entry);
    if (this.onRequest?.({ thing, operation, ...(jobId !== undefined ? { jobId } : {}) })?.drop === true) {
      entry.outcome = "dropped";
      return;
    }
    const base = levels.join("/");
    // A valid token is echoed even when the topic is refused; an invalid one never.
    let token = quietToken(payload);
    try {
      if (!THING_NAME.test(thing)) throw new Rejected("InvalidTopic", "The thing name in the topic is invalid.");
      if (operation === "invalid") throw new Rejected("InvalidTopic", "The topic does not map to any Jobs API.");
      if (jobId !== undefined && !(JOB_ID.test(jobId) || (jobId === "$next" && operation === "describe"))) {
        throw new Rejected("InvalidTopic", "The topic does not map to any Jobs API.");
      }
      const request = parseJson(payload);
      token = undefined;
      token = readToken(request);
      if (operation === "describe") await this.#describe(thing, jobId ?? "$next", base, request, token);
      else if (operation === "start-next") await this.#startNext(thing, base, request, token);
      else await this.#update(thing, jobId ?? "", base, request, token);
    } catch (e) {
      if (!(e instanceof Rejected)) throw e;
      entry.outcome = e.code;
      const answer: Json = {};
      if (token !== undefined) answer["clientToken"] = token;
      answer["timestamp"] = this.#now();
      answer["code"] = e.code;
      answer["message"] = e.message;
      if (e.state) answer["executionState"] = this.#stateJson(e.state);
      await this.#publish(`${base}/rejected`, answer);
    }
  }

  async #describe(thing: string, jobId: string, base: string, request: Json, token: string | undefined): Promise<void> {
    const include = request["includeJobDocument"];
    if (include !== undefined && typeof include !== "boolean") throw new Rejected("InvalidRequest", "includeJobDocument must be a boolean.");
    const execNumber = request["executionNumber"];
    if (execNumber !== undefined && !isNonNegativeInteger(execNumber)) throw new Rejected("InvalidRequest", "executionNumber must be a non-negative integer.");
    let execution: JobExecutionRecord | undefined;
    if (jobId === "$next") execution = this.next(thing);
    else {
      execution = this.#things.get(thing)?.get(jobId);
      if (!execution || (execNumber !== undefined && execNumber !== execution.executionNumber)) {
        throw new Rejected("ResourceNotFound", `Job execution of job ${jobId} on thing ${thing} not found.`);
      }
    }
    const answer: Json = {};
    if (token !== undefined) answer["clientToken"] = token;
    answer["timestamp"] = this.#now();
    if (execution) answer["execution"] = this.#executionJson(execution, include !== false);
    await this.#publish(`${base}/accepted`, answer);
  }

  async #startNext(thing: string, base: string, request: Json, token: string | undefined): Promise<void> {
    const details = request["statusDetails"];
    if (details !== undefined) checkDetails(details);
    const step = readStepTimeout(request);
    const next = this.next(thing);
    const e = next ? this.#things.get(thing)?.get(next.jobId) : undefined;
    const now = this.#now();
    if (e && e.status === "QUEUED") {
      e.status = "IN_PROGRESS";
      e.startedAt = now;
      if (details !== undefined) e.statusDetails = { ...(details as Record<string, string>) };
      if (step !== undefined) e.stepTimeoutInMinutes = step;
      e.versionNumber++;
      e.lastUpdatedAt = now;
      this.#saveExecution(e);
    }
    const answer: Json = {};
    if (token !== undefined) answer["clientToken"] = token;
    answer["timestamp"] = now;
    if (e) answer["execution"] = this.#executionJson(e, true);
    await this.#publish(`${base}/accepted`, answer);
    await this.#announce(thing);
  }

  async #update(thing: string, jobId: string, base: string, request: Json, token: string | undefined): Promise<void> {
    const status = request["status"];
    if (typeof status !== "string" || !STATUSES.includes(status)) throw new Rejected("InvalidRequest", "status must be a job execution status.");
    const details = request["statusDetails"];
    if (details !== undefined) checkDetails(details);
    const expected = request["expectedVersion"];
    if (expected !== undefined && !isNonNegativeInteger(expected)) throw new Rejected("InvalidRequest", "expectedVersion must be a non-negative integer.");
    const execNumber = request["executionNumber"];
    if (execNumber !== undefined && !isNonNegativeInteger(execNumber)) throw new Rejected("InvalidRequest", "executionNumber must be a non-negative integer.");
    for (const flag of ["includeJobExecutionState", "includeJobDocument"]) {
      if (request[flag] !== undefined && typeof request[flag] !== "boolean") throw new Rejected("InvalidRequest", `${flag} must be a boolean.`);
    }
    const step = readStepTimeout(request);
    const e = this.#things.get(thing)?.get(jobId);
    if (!e || (execNumber !== undefined && execNumber !== e.executionNumber)) {
      throw new Rejected("ResourceNotFound", `Job execution of job ${jobId} on thing ${thing} not found.`);
    }
    if (TERMINAL.includes(e.status)) {
      throw new Rejected("InvalidStateTransition", `Job execution of job ${jobId} is in terminal state ${e.status}.`, e);
    }
    if (expected !== undefined && expected !== e.versionNumber) {
      throw new Rejected("VersionMismatch", `Expected version ${expected} does not match version ${e.versionNumber}.`, e);
    }
    if (!DEVICE_STATUSES.includes(status)) {
      throw new Rejected("InvalidStateTransition", `A device cannot change a job execution from ${e.status} to ${status}.`, e);
    }
    const now = this.#now();
    if (e.status === "QUEUED") e.startedAt = now;
    e.status = status as ExecutionStatus;
    if (details !== undefined) e.statusDetails = { ...(details as Record<string, string>) };
    if (step !== undefined) e.stepTimeoutInMinutes = step;
    e.versionNumber++;
    e.lastUpdatedAt = now;
    const completed = this.#completeIfDone(jobId, now);
    this.#saveExecution(e, completed ? now : undefined);
    const answer: Json = {};
    if (token !== undefined) answer["clientToken"] = token;
    answer["timestamp"] = now;
    if (request["includeJobExecutionState"] === true) answer["executionState"] = this.#stateJson(e);
    if (request["includeJobDocument"] === true) answer["jobDocument"] = this.#document(jobId);
    await this.#publish(`${base}/accepted`, answer);
    await this.#announce(thing);
  }

  /** True when this change completed the job. */
  #completeIfDone(jobId: string, now: number): boolean {
    const job = this.#jobs.get(jobId);
    if (!job || job.status !== "IN_PROGRESS") return false;
    const done = job.targets.every((thing) => {
      const e = this.#things.get(thing)?.get(jobId);
      return e === undefined || TERMINAL.includes(e.status);
    });
    if (!done) return false;
    job.status = "COMPLETED";
    job.completedAt = now;
    job.lastUpdatedAt = now;
    return true;
  }

  #publish(topic: string, message: Json): Promise<void> {
    const packet: BrokerPublish = { cmd: "publish", topic, payload: Buffer.from(JSON.stringify(message), "utf8"), qos: this.#qos, retain: false, dup: false };
    return new Promise<void>((resolve, reject) => this.#broker.publish(packet, (error) => (error ? reject(error) : resolve())));
  }
}

/** "IN_PROGRESS" -> "InProgress", for jobProcessDetails' numberOf...Things. */
function processName(status: string): string {
  return status
    .toLowerCase()
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}

function readable(payload: Buffer): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(payload);
  } catch {
    return payload.toString("hex");
  }
}

function parseJson(payload: Buffer): Json {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload));
  } catch {
    throw new Rejected("InvalidJson", "The request could not be interpreted as valid UTF-8 encoded JSON.");
  }
  if (!isObject(value)) throw new Rejected("InvalidRequest", "The request must be a JSON object.");
  return value;
}

/** The client token of a payload if it is JSON with a valid one; never throws. */
function quietToken(payload: Buffer): string | undefined {
  try {
    const request = parseJson(payload);
    return readToken(request);
  } catch {
    return undefined;
  }
}

/** The request's client token; a bad one is refused (and then not echoed). */
function readToken(request: Json): string | undefined {
  const token = request["clientToken"];
  if (token === undefined) return undefined;
  if (typeof token !== "string" || token.length === 0 || Buffer.byteLength(token, "utf8") > 64) {
    throw new Rejected("InvalidRequest", "clientToken must be a string of 1 to 64 bytes.");
  }
  return token;
}

function readStepTimeout(request: Json): number | undefined {
  const step = request["stepTimeoutInMinutes"];
  if (step === undefined) return undefined;
  if (!(typeof step === "number" && Number.isInteger(step) && step >= 1 && step <= 10080)) {
    throw new Rejected("InvalidRequest", "stepTimeoutInMinutes must be an integer from 1 to 10080.");
  }
  return step;
}

function checkDetails(details: unknown): void {
  if (!isObject(details)) throw new Rejected("InvalidRequest", "statusDetails must be a map of strings.");
  const keys = Object.keys(details);
  if (keys.length > 10) throw new Rejected("InvalidRequest", "statusDetails has more than 10 entries.");
  for (const key of keys) {
    const value = details[key];
    if (!DETAIL_KEY.test(key)) throw new Rejected("InvalidRequest", `statusDetails key ${key} is invalid.`);
    if (typeof value !== "string") throw new Rejected("InvalidRequest", `statusDetails value of ${key} must be a string.`);
    const n = [...value].length;
    if (n < 1 || n > 1024) throw new Rejected("InvalidRequest", `statusDetails value of ${key} must have 1 to 1024 characters.`);
    if (/\p{C}/u.test(value)) throw new Rejected("InvalidRequest", `statusDetails value of ${key} contains invalid characters.`);
  }
}
