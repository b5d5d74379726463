/**
 * A minimal AWS IoT Jobs service for tests (Node only): it listens on an in-process broker
 * (aedes, or anything with StreamBroker's three methods) and answers DescribeJobExecution of
 * `$next` and UpdateJobExecution the way AWS documents them (see modules/jobs/aws-jobs.ts for the
 * facts and sources). JSON here is Node's own and the checks are written independently of the
 * device module's builders, so the two test each other.
 *
 * What it does:
 * - `$aws/things/T/jobs/$next/get` {clientToken?, includeJobDocument?, executionNumber?}: answers
 *   on .../accepted {clientToken?, timestamp, execution?} with the next pending execution: the
 *   oldest IN_PROGRESS one, else the oldest QUEUED one (AWS's order: IN_PROGRESS before QUEUED,
 *   then by time queued); no `execution` when none is pending.
 * - `$aws/things/T/jobs/J/update` {status, statusDetails?, expectedVersion?, executionNumber?,
 *   includeJobExecutionState?, includeJobDocument?, stepTimeoutInMinutes?, clientToken?}: checks in
 *   this order, answering on .../rejected {clientToken?, timestamp, code, message, executionState?}:
 *   UTF-8 JSON object (InvalidJson); field types, statusDetails rules (keys 1..128 of
 *   [a-zA-Z0-9:_-], string values 1..1024 without \p{C}, at most 10), step timeout 1..10080,
 *   client token at most 64 bytes, status a JobStatus (InvalidRequest); the job exists
 *   (ResourceNotFound); the execution is not terminal (InvalidStateTransition, with
 *   executionState); expectedVersion matches (VersionMismatch, with executionState); the status
 *   is one a device may set: IN_PROGRESS, SUCCEEDED, FAILED, REJECTED (InvalidStateTransition).
 *   Then: status set, statusDetails replaced when given (kept when not), versionNumber + 1,
 *   startedAt set on leaving QUEUED, lastUpdatedAt now; .../accepted {clientToken?, timestamp,
 *   executionState? (includeJobExecutionState), jobDocument? (includeJobDocument)}.
 * - After any change of the pending list's first execution (a job added, an update, a cancel),
 *   `$aws/things/T/jobs/notify-next` {timestamp, execution?} (no execution: none pending).
 * - Thing names outside [a-zA-Z0-9:_-]{1,128} and job IDs outside [a-zA-Z0-9_-]{1,64} (such as
 *   `$next` in an update topic): InvalidTopic.
 * Malformed requests never throw out of the responder; failures while answering go to lastError.
 * Choices AWS does not document are marked "choice" above and in the code.
 */
import type { BrokerPacket, BrokerPublish, StreamBroker } from "../../cloud/aws-streams.ts";

export type ResponderJobStatus = "QUEUED" | "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "REJECTED" | "TIMED_OUT" | "REMOVED" | "CANCELED";

const STATUSES: readonly string[] = ["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"];
const DEVICE_STATUSES: readonly string[] = ["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"];
const TERMINAL: readonly string[] = ["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"];
const THING_NAME = /^[a-zA-Z0-9:_-]{1,128}$/;
const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;
const DETAIL_KEY = /^[a-zA-Z0-9:_-]{1,128}$/;

export interface ResponderExecution {
  jobId: string;
  document: unknown;
  status: ResponderJobStatus;
  statusDetails?: Record<string, string>;
  versionNumber: number;
  executionNumber: number;
  /** Seconds since the epoch. */
  queuedAt: number;
  startedAt?: number;
  lastUpdatedAt: number;
  stepTimeoutInMinutes?: number;
  /** Order of addition, for executions queued in the same second. */
  sequence: number;
}

export interface ResponderLogEntry {
  thing: string;
  operation: "next" | "update";
  jobId?: string;
  /** The request as text (or hex when it was not UTF-8). */
  payload: string;
  /** "accepted" or the rejection's code; "dropped" when `drop` said so. */
  outcome: string;
}

export interface AwsJobsResponderOptions {
  /** QoS of the answers; default 1. */
  qos?: 0 | 1;
  /** Clock in seconds since the epoch; default the wall clock. */
  now?: () => number;
}

class Rejected extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly state?: ResponderExecution,
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function codePoints(s: string): number {
  return [...s].length;
}

export class AwsJobsResponder {
  readonly #broker: StreamBroker;
  readonly #qos: 0 | 1;
  readonly #now: () => number;
  readonly #things = new Map<string, Map<string, ResponderExecution>>();
  /** The first pending job ID per thing, as last announced (undefined: none). */
  readonly #announced = new Map<string, string | undefined>();
  #sequence = 0;
  #queue: Promise<void> = Promise.resolve();
  #started = false;
  /** Every request received, in order. */
  readonly log: ResponderLogEntry[] = [];
  /** Requests for which this returns true get no answer at all (to test timeouts). */
  drop: (entry: { thing: string; operation: "next" | "update"; jobId?: string }) => boolean = () => false;
  lastError: unknown;

  readonly #deliver = (packet: BrokerPacket, done: () => void): void => {
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload, "utf8") : Buffer.from(packet.payload);
    const topic = packet.topic;
    this.#queue = this.#queue
      .then(() => this.#handle(topic, payload))
      .catch((e: unknown) => {
        this.lastError = e;
      });
    done();
  };

  constructor(broker: StreamBroker, options: AwsJobsResponderOptions = {}) {
    this.#broker = broker;
    this.#qos = options.qos ?? 1;
    this.#now = options.now ?? (() => Math.floor(Date.now() / 1000));
  }

  static readonly NEXT_FILTER = "$aws/things/+/jobs/$next/get";
  static readonly UPDATE_FILTER = "$aws/things/+/jobs/+/update";

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    await new Promise<void>((resolve) => this.#broker.subscribe(AwsJobsResponder.NEXT_FILTER, this.#deliver, resolve));
    await new Promise<void>((resolve) => this.#broker.subscribe(AwsJobsResponder.UPDATE_FILTER, this.#deliver, resolve));
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await new Promise<void>((resolve) => this.#broker.unsubscribe(AwsJobsResponder.NEXT_FILTER, this.#deliver, resolve));
    await new Promise<void>((resolve) => this.#broker.unsubscribe(AwsJobsResponder.UPDATE_FILTER, this.#deliver, resolve));
    await this.idle();
  }

  /** Resolves when every request received (and every notification started) so far is done. */
  async idle(): Promise<void> {
    let seen: Promise<void>;
    do {
      seen = this.#queue;
      await seen;
    } while (seen !== this.#queue);
  }

  /** Queues a job execution for `thing`; publishes notify-next when it becomes the next one. */
  addJob(thing: string, jobId: string, document: unknown, options: { queuedAt?: number; status?: "QUEUED" | "IN_PROGRESS" } = {}): Promise<void> {
    if (!THING_NAME.test(thing)) throw new Error(`thing name ${thing}`);
    if (!JOB_ID.test(jobId)) throw new Error(`job ID ${jobId}`);
    let jobs = this.#things.get(thing);
    if (!jobs) this.#things.set(thing, (jobs = new Map()));
    const previous = jobs.get(jobId);
    const now = options.queuedAt ?? this.#now();
    jobs.set(jobId, {
      jobId,
      document,
      status: options.status ?? "QUEUED",
      versionNumber: 1,
      executionNumber: previous ? previous.executionNumber + 1 : 1,
      queuedAt: now,
      lastUpdatedAt: now,
      ...(options.status === "IN_PROGRESS" ? { startedAt: now } : {}),
      sequence: this.#sequence++,
    });
    return this.#enqueue(() => this.#announce(thing));
  }

  /** Cancels an execution from the cloud side (CANCELED is terminal); notify-next follows. */
  cancelJob(thing: string, jobId: string): Promise<void> {
    const e = this.#things.get(thing)?.get(jobId);
    if (!e) throw new Error(`no job ${jobId} for ${thing}`);
    e.status = "CANCELED";
    e.versionNumber++;
    e.lastUpdatedAt = this.#now();
    return this.#enqueue(() => this.#announce(thing));
  }

  /** A copy of the execution's current state. */
  execution(thing: string, jobId: string): ResponderExecution | undefined {
    const e = this.#things.get(thing)?.get(jobId);
    return e ? structuredClone(e) : undefined;
  }

  /** The log entries of update requests. */
  get updates(): ResponderLogEntry[] {
    return this.log.filter((e) => e.operation === "update");
  }

  /** The next pending execution of `thing`: IN_PROGRESS before QUEUED, then oldest first. */
  next(thing: string): ResponderExecution | undefined {
    const jobs = [...(this.#things.get(thing)?.values() ?? [])];
    const rank = (e: ResponderExecution) => (e.status === "IN_PROGRESS" ? 0 : 1);
    return jobs
      .filter((e) => e.status === "IN_PROGRESS" || e.status === "QUEUED")
      .sort((a, b) => rank(a) - rank(b) || a.queuedAt - b.queuedAt || a.sequence - b.sequence)[0];
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(work);
    this.#queue = run.catch((e: unknown) => {
      this.lastError = e;
    });
    return run;
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

  #executionJson(e: ResponderExecution, withDocument: boolean): Json {
    const out: Json = { jobId: e.jobId, status: e.status };
    if (e.statusDetails) out["statusDetails"] = { ...e.statusDetails };
    out["queuedAt"] = e.queuedAt;
    if (e.startedAt !== undefined) out["startedAt"] = e.startedAt;
    out["lastUpdatedAt"] = e.lastUpdatedAt;
    out["versionNumber"] = e.versionNumber;
    out["executionNumber"] = e.executionNumber;
    if (withDocument) out["jobDocument"] = e.document;
    return out;
  }

  #stateJson(e: ResponderExecution): Json {
    const out: Json = { status: e.status };
    if (e.statusDetails) out["statusDetails"] = { ...e.statusDetails };
    out["versionNumber"] = e.versionNumber;
    return out;
  }

  async #handle(topic: string, payload: Buffer): Promise<void> {
    const levels = topic.split("/");
    const thing = levels[2] ?? "";
    const isNext = levels[4] === "$next" && levels[5] === "get" && levels.length === 6;
    const operation = isNext ? "next" : "update";
    const jobId = isNext ? undefined : levels[4];
    const entry: ResponderLogEntry = { thing, operation, payload: readable(payload), outcome: "accepted" };
    if (jobId !== undefined) entry.jobId = jobId;
    this.log.push(entry);
    if (this.drop({ thing, operation, ...(jobId !== undefined ? { jobId } : {}) })) {
      entry.outcome = "dropped";
      return;
    }
    const base = `$aws/things/${thing}/jobs/${isNext ? "$next/get" : `${jobId}/update`}`;
    let token: string | undefined;
    try {
      if (!THING_NAME.test(thing)) throw new Rejected("InvalidTopic", "The thing name in the topic is invalid.");
      if (!isNext && !JOB_ID.test(jobId ?? "")) throw new Rejected("InvalidTopic", "The topic does not map to any Jobs API.");
      const request = parseJson(payload);
      token = readToken(request);
      if (isNext) await this.#describeNext(thing, base, request, token);
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

  async #describeNext(thing: string, base: string, request: Json, token: string | undefined): Promise<void> {
    const include = request["includeJobDocument"];
    if (include !== undefined && typeof include !== "boolean") throw new Rejected("InvalidRequest", "includeJobDocument must be a boolean.");
    const execNumber = request["executionNumber"];
    if (execNumber !== undefined && !(Number.isSafeInteger(execNumber) && (execNumber as number) >= 0)) {
      throw new Rejected("InvalidRequest", "executionNumber must be a non-negative integer.");
    }
    const answer: Json = {};
    if (token !== undefined) answer["clientToken"] = token;
    answer["timestamp"] = this.#now();
    const next = this.next(thing);
    if (next) answer["execution"] = this.#executionJson(next, include !== false);
    await this.#publish(`${base}/accepted`, answer);
  }

  async #update(thing: string, jobId: string, base: string, request: Json, token: string | undefined): Promise<void> {
    const status = request["status"];
    if (typeof status !== "string" || !STATUSES.includes(status)) throw new Rejected("InvalidRequest", "status must be a job execution status.");
    const details = request["statusDetails"];
    if (details !== undefined) checkDetails(details);
    const expected = request["expectedVersion"];
    if (expected !== undefined && !(Number.isSafeInteger(expected) && (expected as number) >= 0)) {
      throw new Rejected("InvalidRequest", "expectedVersion must be a non-negative integer.");
    }
    const execNumber = request["executionNumber"];
    if (execNumber !== undefined && !(Number.isSafeInteger(execNumber) && (execNumber as number) >= 0)) {
      throw new Rejected("InvalidRequest", "executionNumber must be a non-negative integer.");
    }
    for (const flag of ["includeJobExecutionState", "includeJobDocument"]) {
      if (request[flag] !== undefined && typeof request[flag] !== "boolean") throw new Rejected("InvalidRequest", `${flag} must be a boolean.`);
    }
    const step = request["stepTimeoutInMinutes"];
    if (step !== undefined && !(Number.isInteger(step) && (step as number) >= 1 && (step as number) <= 10080)) {
      throw new Rejected("InvalidRequest", "stepTimeoutInMinutes must be an integer from 1 to 10080.");
    }
    const e = this.#things.get(thing)?.get(jobId);
    if (!e) throw new Rejected("ResourceNotFound", `Job execution of job ${jobId} on thing ${thing} not found.`);
    if (execNumber !== undefined && execNumber !== e.executionNumber) {
      throw new Rejected("ResourceNotFound", `Job execution ${String(execNumber)} of job ${jobId} not found.`);
    }
    // Choice: a terminal execution refuses every update before the version is compared.
    if (TERMINAL.includes(e.status)) {
      throw new Rejected("InvalidStateTransition", `Job execution of job ${jobId} is in terminal state ${e.status}.`, e);
    }
    if (expected !== undefined && expected !== e.versionNumber) {
      throw new Rejected("VersionMismatch", `Expected version ${String(expected)} does not match version ${e.versionNumber}.`, e);
    }
    // Choice: a valid status a device may not set (QUEUED, TIMED_OUT, REMOVED, CANCELED) is a transition error.
    if (!DEVICE_STATUSES.includes(status)) {
      throw new Rejected("InvalidStateTransition", `A device cannot change a job execution from ${e.status} to ${status}.`, e);
    }
    const now = this.#now();
    if (e.status === "QUEUED") e.startedAt = now;
    e.status = status as ResponderJobStatus;
    // Choice: given statusDetails replace the old ones ("If not specified, the statusDetails are unchanged").
    if (details !== undefined) e.statusDetails = { ...(details as Record<string, string>) };
    if (step !== undefined) e.stepTimeoutInMinutes = step as number;
    e.versionNumber++;
    e.lastUpdatedAt = now;
    const answer: Json = {};
    if (token !== undefined) answer["clientToken"] = token;
    answer["timestamp"] = now;
    if (request["includeJobExecutionState"] === true) answer["executionState"] = this.#stateJson(e);
    if (request["includeJobDocument"] === true) answer["jobDocument"] = e.document;
    await this.#publish(`${base}/accepted`, answer);
    await this.#announce(thing);
  }

  #publish(topic: string, message: Json): Promise<void> {
    const packet: BrokerPublish = { cmd: "publish", topic, payload: Buffer.from(JSON.stringify(message), "utf8"), qos: this.#qos, retain: false, dup: false };
    return new Promise<void>((resolve, reject) => this.#broker.publish(packet, (error) => (error ? reject(error) : resolve())));
  }
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

/** The request's client token; a bad one is refused (and then not echoed). */
function readToken(request: Json): string | undefined {
  const token = request["clientToken"];
  if (token === undefined) return undefined;
  if (typeof token !== "string" || token.length === 0 || Buffer.byteLength(token, "utf8") > 64) {
    throw new Rejected("InvalidRequest", "clientToken must be a string of 1 to 64 bytes.");
  }
  return token;
}

function checkDetails(details: unknown): void {
  if (!isObject(details)) throw new Rejected("InvalidRequest", "statusDetails must be a map of strings.");
  const keys = Object.keys(details);
  if (keys.length > 10) throw new Rejected("InvalidRequest", "statusDetails has more than 10 entries.");
  for (const key of keys) {
    const value = details[key];
    if (!DETAIL_KEY.test(key)) throw new Rejected("InvalidRequest", `statusDetails key ${key} is invalid.`);
    if (typeof value !== "string") throw new Rejected("InvalidRequest", `statusDetails value of ${key} must be a string.`);
    const n = codePoints(value);
    if (n < 1 || n > 1024) throw new Rejected("InvalidRequest", `statusDetails value of ${key} must have 1 to 1024 characters.`);
    if (/\p{C}/u.test(value)) throw new Rejected("InvalidRequest", `statusDetails value of ${key} contains invalid characters.`);
  }
}
