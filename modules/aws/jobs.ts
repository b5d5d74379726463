/**
 * AWS IoT Jobs over MQTT, the device side: topic names, request builders, a response parser
 * that never throws, and `AwsJobsClient`, which runs requests over the Mqtt port and matches
 * answers to them by client token.
 *
 * ## Protocol facts (and where they come from)
 *
 * Sources:
 *  [M] AWS IoT Developer Guide, "Jobs device MQTT API operations" (jobs-mqtt-api) and
 *      "Jobs device MQTT and HTTPS API operations and data types" (jobs-mqtt-https-api),
 *      "AWS IoT jobs API operations" (jobs-api: ErrorResponse), "Jobs notifications"
 *      (jobs-comm-notifications).
 *  [A] AWS IoT API Reference, IoT Jobs data plane: UpdateJobExecution, StartNextPendingJobExecution,
 *      JobExecution, JobExecutionState (field types and length constraints).
 *  [O] FreeRTOS OTA agent, github.com/aws/ota-for-aws-iot-embedded-sdk source/ota_mqtt.c
 *      (the reference device: its requests, QoS and statusDetails formats).
 *  [J] github.com/aws/Jobs-for-AWS-IoT-embedded-sdk source/include/jobs.h (topic names, limits).
 *
 * Topics, for thing T [M][J]:
 *   subscribe $aws/things/T/jobs/notify-next          NextJobExecutionChanged {timestamp, execution?}
 *   publish   $aws/things/T/jobs/$next/get             DescribeJobExecution of the next pending job
 *             (answers on .../$next/get/accepted {clientToken, timestamp, execution?} and /rejected)
 *   publish   $aws/things/T/jobs/start-next            StartNextPendingJobExecution (+ /accepted, /rejected)
 *   publish   $aws/things/T/jobs/<jobId>/update        UpdateJobExecution (+ /accepted, /rejected)
 * The broker sends the answers to the requesting client even without a subscription [M], so a
 * client must recognise them whatever it subscribed to, and must check that the thing name in
 * the topic is its own before acting [M].
 *
 * UpdateJobExecution request [A][M]: {status, statusDetails?, expectedVersion?, executionNumber?,
 * includeJobExecutionState?, includeJobDocument?, stepTimeoutInMinutes?, clientToken?}.
 *   status: a device sets IN_PROGRESS, SUCCEEDED, FAILED or REJECTED ("This must be specified
 *   on every update"). statusDetails: a string-to-string map; "If not specified, the
 *   statusDetails are unchanged." Keys: 1..128 characters of [a-zA-Z0-9:_-]. Values: 1..1024
 *   characters, pattern [^\p{C}]+ (no control, format, surrogate, private-use or unassigned
 *   code points). stepTimeoutInMinutes: 1..10080 (7 days). expectedVersion: on mismatch the
 *   update is rejected with VersionMismatch and the current executionState.
 * Accepted answer: {clientToken, timestamp, executionState?: {status, statusDetails, versionNumber},
 * jobDocument?}. Timestamps are seconds since the epoch [M].
 * JobExecution [A][M]: jobId (1..64 of [a-zA-Z0-9_-]), thingName, jobDocument (over MQTT a JSON
 * object; 32768 characters at most), status, statusDetails, queuedAt, startedAt, lastUpdatedAt,
 * versionNumber, executionNumber, approximateSecondsBeforeTimedOut. No `execution` in a
 * $next/get answer or in notify-next means no pending job.
 * Pending order [M]: IN_PROGRESS executions before QUEUED ones, then by time queued; notify-next
 * is sent when the first of that list changes (including to none).
 * ErrorResponse [M]: {code, message, clientToken, timestamp, executionState?}; codes InvalidTopic,
 * InvalidJson, InvalidRequest, InvalidStateTransition, ResourceNotFound, VersionMismatch,
 * InternalError, RequestThrottled, TerminalStateReached. InvalidStateTransition and
 * VersionMismatch carry executionState.
 * Terminal statuses: SUCCEEDED, FAILED, REJECTED, TIMED_OUT, REMOVED, CANCELED [M].
 *
 * FreeRTOS agent conventions [O] (helpers below produce exactly these):
 *   $next/get payload {"clientToken":"<counter>:<thing>"}; status updates at QoS 1 except the
 *   download progress ({"receive":"<blocks received>/<blocks total>"}), sent at QoS 0;
 *   self test: IN_PROGRESS {"self_test":"ready"|"active","updatedBy":"0x%08x"} (AppVersion32 of
 *   the version that did the update); success: SUCCEEDED {"reason":"accepted v<M>.<m>.<b>",
 *   "updatedBy":"v<M>.<m>.<b>"}; failure with codes: FAILED {"reason":"0x%08x: 0x%08x"};
 *   other outcomes {"reason":"<rejected|aborted>: 0x%08x"}. The agent builds each status
 *   message in a 128-byte buffer.
 *
 * ## Choices where AWS says nothing
 * - Client tokens: at most 64 UTF-8 bytes, like the documented limit for MQTT streams and the
 *   limit observed for shadows (the Jobs pages give none; the FreeRTOS agent's "<n>:<thing>" can
 *   be longer, so this is the safe side). Tokens this client makes are far shorter.
 * - At most 10 statusDetails entries, the limit AWS documents for CancelJobExecution's map.
 * - Values are counted in code points (Smithy `length` on strings).
 * - A response that breaks the documented types (a status that is no JobStatus, a statusDetails
 *   value that is not a string, a negative versionNumber) is "unknown" with the reason, never a
 *   half-read job.
 */
import { OtaError } from "../errors.ts";
import { utf8Length } from "../codec/utf8.ts";
import { hasOtherCharacter } from "../codec/unicode.ts";
import type { Clock, TimerId } from "../ports/clock.ts";
import type { Mqtt, QoS } from "../ports/mqtt.ts";
import { requestSettings } from "../jobs/client-options.ts";
import { readJsonObject } from "../jobs/json-object.ts";

export type JobStatus = "QUEUED" | "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "REJECTED" | "TIMED_OUT" | "REMOVED" | "CANCELED";

/** The statuses a device may set with UpdateJobExecution. */
export type DeviceJobStatus = "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "REJECTED";

export const JOB_STATUSES: readonly JobStatus[] = Object.freeze(["QUEUED", "IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"]);
export const DEVICE_JOB_STATUSES: readonly DeviceJobStatus[] = Object.freeze(["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"]);
export const TERMINAL_JOB_STATUSES: readonly JobStatus[] = Object.freeze(["SUCCEEDED", "FAILED", "REJECTED", "TIMED_OUT", "REMOVED", "CANCELED"]);

export type JobsErrorCode =
  | "InvalidTopic"
  | "InvalidJson"
  | "InvalidRequest"
  | "InvalidStateTransition"
  | "ResourceNotFound"
  | "VersionMismatch"
  | "InternalError"
  | "RequestThrottled"
  | "TerminalStateReached";

export const JOBS_ERROR_CODES: readonly JobsErrorCode[] = Object.freeze([
  "InvalidTopic",
  "InvalidJson",
  "InvalidRequest",
  "InvalidStateTransition",
  "ResourceNotFound",
  "VersionMismatch",
  "InternalError",
  "RequestThrottled",
  "TerminalStateReached",
]);

export const JOBS_LIMITS = Object.freeze({
  maxThingNameLength: 128,
  maxJobIdLength: 64,
  /** A choice, see the file comment. */
  maxClientTokenBytes: 64,
  /** A choice, see the file comment. */
  maxStatusDetails: 10,
  maxStatusDetailKeyLength: 128,
  maxStatusDetailValueLength: 1024,
  minStepTimeoutInMinutes: 1,
  maxStepTimeoutInMinutes: 10080,
  maxJobDocumentLength: 32768,
} as const);

export type StatusDetails = Record<string, string>;

export function isJobStatus(value: unknown): value is JobStatus {
  return typeof value === "string" && (JOB_STATUSES as readonly string[]).includes(value);
}

export function isDeviceJobStatus(value: unknown): value is DeviceJobStatus {
  return typeof value === "string" && (DEVICE_JOB_STATUSES as readonly string[]).includes(value);
}

export function isTerminalJobStatus(status: JobStatus): boolean {
  return TERMINAL_JOB_STATUSES.includes(status);
}

// RegExps are made per call, never kept at module level: in flash (preload) a RegExp has no
// match data, and Moddable's XS (8.2.3) crashes in exec's temporary copy once a collection runs.
const THING_NAME = () => /^[a-zA-Z0-9:_-]{1,128}$/;
const JOB_ID = () => /^[a-zA-Z0-9_-]{1,64}$/;
const DETAIL_KEY = () => /^[a-zA-Z0-9:_-]{1,128}$/;

export function isValidThingName(thing: unknown): thing is string {
  return typeof thing === "string" && THING_NAME().test(thing);
}

export function isValidJobId(jobId: unknown): jobId is string {
  return typeof jobId === "string" && JOB_ID().test(jobId);
}

// ---------------------------------------------------------------------------------------------
// Topics

export interface JobTopics {
  notifyNext: string;
  /** JobExecutionsChanged (the list); not used by this client. */
  notify: string;
  nextGet: string;
  nextGetAccepted: string;
  nextGetRejected: string;
  startNext: string;
  startNextAccepted: string;
  startNextRejected: string;
  /** Filters for every job's update answers. */
  updateAcceptedFilter: string;
  updateRejectedFilter: string;
  update(jobId: string): string;
  updateAccepted(jobId: string): string;
  updateRejected(jobId: string): string;
}

/** Every Jobs topic of `thing`. Throws "bad-argument" for a thing name AWS does not allow. */
export function jobTopics(thing: string): JobTopics {
  if (!isValidThingName(thing)) throw new OtaError("bad-argument", `thing name ${JSON.stringify(thing)}: 1 to 128 of [a-zA-Z0-9:_-]`);
  const base = `$aws/things/${thing}/jobs`;
  const job = (jobId: string) => {
    if (!isValidJobId(jobId)) throw new OtaError("bad-argument", `job ID ${JSON.stringify(jobId)}: 1 to 64 of [a-zA-Z0-9_-]`);
    return `${base}/${jobId}/update`;
  };
  return {
    notifyNext: `${base}/notify-next`,
    notify: `${base}/notify`,
    nextGet: `${base}/$next/get`,
    nextGetAccepted: `${base}/$next/get/accepted`,
    nextGetRejected: `${base}/$next/get/rejected`,
    startNext: `${base}/start-next`,
    startNextAccepted: `${base}/start-next/accepted`,
    startNextRejected: `${base}/start-next/rejected`,
    updateAcceptedFilter: `${base}/+/update/accepted`,
    updateRejectedFilter: `${base}/+/update/rejected`,
    update: job,
    updateAccepted: (jobId) => `${job(jobId)}/accepted`,
    updateRejected: (jobId) => `${job(jobId)}/rejected`,
  };
}

// ---------------------------------------------------------------------------------------------
// statusDetails

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) i++;
    n++;
  }
  return n;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why `details` breaks AWS's statusDetails rules, or undefined when it keeps them. */
export function statusDetailsProblem(details: unknown): string | undefined {
  if (!isPlainObject(details)) return "statusDetails must be an object of strings";
  const keys = Object.keys(details);
  if (keys.length > JOBS_LIMITS.maxStatusDetails) return `statusDetails has ${keys.length} entries, at most ${JOBS_LIMITS.maxStatusDetails}`;
  for (const key of keys) {
    if (!DETAIL_KEY().test(key)) return `statusDetails key ${JSON.stringify(key)}: 1 to 128 of [a-zA-Z0-9:_-]`;
    const value = details[key];
    if (typeof value !== "string") return `statusDetails.${key} must be a string`;
    const length = codePoints(value);
    if (length === 0) return `statusDetails.${key} is empty`;
    if (length > JOBS_LIMITS.maxStatusDetailValueLength) {
      return `statusDetails.${key} has ${length} characters, at most ${JOBS_LIMITS.maxStatusDetailValueLength}`;
    }
    if (hasOtherCharacter(value)) return `statusDetails.${key} contains a control, format or unassigned character`;
  }
  return undefined;
}

/** `details` as a StatusDetails, or OtaError "bad-argument" saying which rule it breaks. */
export function checkStatusDetails(details: unknown): StatusDetails {
  const problem = statusDetailsProblem(details);
  if (problem !== undefined) throw new OtaError("bad-argument", problem);
  return details as StatusDetails;
}

function hex32(n: number, what: string): string {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0xffffffff) throw new OtaError("bad-argument", `${what} ${n} is not a 32-bit integer`);
  return (n >>> 0).toString(16).padStart(8, "0");
}

function count(n: number, what: string): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new OtaError("bad-argument", `${what} must be a non-negative integer, got ${n}`);
  return String(n);
}

/** FreeRTOS download progress: {"receive":"<received>/<total>"} (blocks). */
export function receiveDetails(received: number, total: number): StatusDetails {
  if (received > total) throw new OtaError("bad-argument", `received ${received} of ${total}`);
  return { receive: `${count(received, "received")}/${count(total, "total")}` };
}

/**
 * FreeRTOS self-test phase: {"self_test":"ready"|"active","updatedBy":"0x%08x"}. `updatedBy` is
 * the AppVersion32 of the version that installed the update, as verify/version.ts's
 * toAppVersion32 writes it, or the number itself.
 */
export function selfTestDetails(phase: "ready" | "active", updatedBy: string | number): StatusDetails {
  const by = typeof updatedBy === "number" ? "0x" + hex32(updatedBy, "updatedBy") : updatedBy;
  if (!/^0x[0-9a-f]{8}$/.test(by)) throw new OtaError("bad-argument", `updatedBy ${JSON.stringify(by)} is not 0x%08x`);
  return { self_test: phase, updatedBy: by };
}

function vVersion(version: string): string {
  const text = version.startsWith("v") ? version.slice(1) : version;
  if (!/^[0-9A-Za-z.+-]{1,64}$/.test(text)) throw new OtaError("bad-argument", `version ${JSON.stringify(version)}`);
  return "v" + text;
}

/** FreeRTOS success: {"reason":"accepted v1.2.3","updatedBy":"v1.0.0"}. */
export function acceptedDetails(version: string, updatedBy: string): StatusDetails {
  return { reason: `accepted ${vVersion(version)}`, updatedBy: vVersion(updatedBy) };
}

/** FreeRTOS failure with an error code and a sub-code: {"reason":"0x%08x: 0x%08x"}. */
export function failedWithValueDetails(code: number, subCode: number): StatusDetails {
  return { reason: `0x${hex32(code, "code")}: 0x${hex32(subCode, "sub-code")}` };
}

/** FreeRTOS outcome with a reason word: {"reason":"rejected: 0x%08x"} ("rejected", "aborted"...). */
export function reasonDetails(reason: string, subCode: number): StatusDetails {
  if (!/^[a-z_]{1,32}$/.test(reason)) throw new OtaError("bad-argument", `reason ${JSON.stringify(reason)}`);
  return { reason: `${reason}: 0x${hex32(subCode, "sub-code")}` };
}

// ---------------------------------------------------------------------------------------------
// Requests

function checkToken(clientToken: unknown): string {
  if (typeof clientToken !== "string" || clientToken.length === 0) throw new OtaError("bad-argument", "clientToken must be a non-empty string");
  const bytes = utf8Length(clientToken);
  if (bytes > JOBS_LIMITS.maxClientTokenBytes) {
    throw new OtaError("bad-argument", `clientToken is ${bytes} UTF-8 bytes, at most ${JOBS_LIMITS.maxClientTokenBytes}`);
  }
  return clientToken;
}

function checkCount(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) throw new OtaError("bad-argument", `${what} must be a non-negative integer`);
  return value;
}

function checkStepTimeout(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < JOBS_LIMITS.minStepTimeoutInMinutes || value > JOBS_LIMITS.maxStepTimeoutInMinutes) {
    throw new OtaError("bad-argument", `stepTimeoutInMinutes must be an integer from 1 to 10080`);
  }
  return value;
}

function checkFlag(value: unknown, what: string): boolean {
  if (typeof value !== "boolean") throw new OtaError("bad-argument", `${what} must be a boolean`);
  return value;
}

/** DescribeJobExecution of `$next`: {"clientToken":"..."}. */
export function nextGetRequest(clientToken: string): string {
  return JSON.stringify({ clientToken: checkToken(clientToken) });
}

export interface UpdateRequestFields {
  status: DeviceJobStatus;
  statusDetails?: StatusDetails;
  expectedVersion?: number;
  executionNumber?: number;
  includeJobExecutionState?: boolean;
  includeJobDocument?: boolean;
  stepTimeoutInMinutes?: number;
  clientToken: string;
}

/**
 * UpdateJobExecution payload (the job ID goes in the topic). Keys in this order: status,
 * statusDetails, expectedVersion, executionNumber, includeJobExecutionState, includeJobDocument,
 * stepTimeoutInMinutes, clientToken; absent fields are left out. Throws "bad-argument" for
 * anything AWS would refuse.
 */
export function updateRequest(fields: UpdateRequestFields): string {
  if (!isDeviceJobStatus(fields.status)) {
    throw new OtaError("bad-argument", `status ${JSON.stringify(fields.status)}: a device sets IN_PROGRESS, SUCCEEDED, FAILED or REJECTED`);
  }
  const out: Record<string, unknown> = { status: fields.status };
  if (fields.statusDetails !== undefined) out["statusDetails"] = checkStatusDetails(fields.statusDetails);
  if (fields.expectedVersion !== undefined) out["expectedVersion"] = checkCount(fields.expectedVersion, "expectedVersion");
  if (fields.executionNumber !== undefined) out["executionNumber"] = checkCount(fields.executionNumber, "executionNumber");
  if (fields.includeJobExecutionState !== undefined) out["includeJobExecutionState"] = checkFlag(fields.includeJobExecutionState, "includeJobExecutionState");
  if (fields.includeJobDocument !== undefined) out["includeJobDocument"] = checkFlag(fields.includeJobDocument, "includeJobDocument");
  if (fields.stepTimeoutInMinutes !== undefined) out["stepTimeoutInMinutes"] = checkStepTimeout(fields.stepTimeoutInMinutes);
  out["clientToken"] = checkToken(fields.clientToken);
  return JSON.stringify(out);
}

/** StartNextPendingJobExecution payload: {statusDetails?, stepTimeoutInMinutes?, clientToken}. */
export function startNextRequest(fields: { clientToken: string; statusDetails?: StatusDetails; stepTimeoutInMinutes?: number }): string {
  const out: Record<string, unknown> = {};
  if (fields.statusDetails !== undefined) out["statusDetails"] = checkStatusDetails(fields.statusDetails);
  if (fields.stepTimeoutInMinutes !== undefined) out["stepTimeoutInMinutes"] = checkStepTimeout(fields.stepTimeoutInMinutes);
  out["clientToken"] = checkToken(fields.clientToken);
  return JSON.stringify(out);
}

// ---------------------------------------------------------------------------------------------
// Responses

export interface JobExecution {
  jobId: string;
  status: JobStatus;
  /** The job document as AWS sent it (over MQTT a JSON object); undefined when left out. */
  jobDocument?: unknown;
  statusDetails?: StatusDetails;
  thingName?: string;
  /** Seconds since the epoch. */
  queuedAt?: number;
  startedAt?: number;
  lastUpdatedAt?: number;
  versionNumber?: number;
  executionNumber?: number;
  approximateSecondsBeforeTimedOut?: number;
}

export interface JobExecutionState {
  status: JobStatus;
  statusDetails?: StatusDetails;
  versionNumber?: number;
}

export type JobsResponse =
  | { kind: "next"; thing: string; execution: JobExecution | undefined; clientToken: string | undefined; timestamp?: number }
  | { kind: "notify-next"; thing: string; execution: JobExecution | undefined; timestamp?: number }
  | { kind: "start-next"; thing: string; execution: JobExecution | undefined; clientToken: string | undefined; timestamp?: number }
  | {
      kind: "update-accepted";
      thing: string;
      jobId: string;
      clientToken: string | undefined;
      executionState?: JobExecutionState;
      jobDocument?: unknown;
      timestamp?: number;
    }
  | {
      kind: "update-rejected";
      thing: string;
      jobId: string;
      code: string;
      message: string;
      clientToken: string | undefined;
      executionState?: JobExecutionState;
      timestamp?: number;
    }
  | { kind: "next-rejected"; thing: string; code: string; message: string; clientToken: string | undefined; timestamp?: number }
  | { kind: "start-next-rejected"; thing: string; code: string; message: string; clientToken: string | undefined; timestamp?: number }
  | { kind: "unknown"; reason: string };

/** A response field that breaks the documented types. */
class Bad {
  constructor(readonly reason: string) {}
}

function optionalCount(o: Record<string, unknown>, key: string, where: string): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new Bad(`${where}.${key} is not a non-negative integer`);
  return v;
}

function optionalString(o: Record<string, unknown>, key: string, where: string): string | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new Bad(`${where}.${key} is not a string`);
  return v;
}

function readDetails(o: Record<string, unknown>, where: string): StatusDetails | undefined {
  const d = o["statusDetails"];
  if (d === undefined) return undefined;
  if (!isPlainObject(d)) throw new Bad(`${where}.statusDetails is not an object`);
  const out: StatusDetails = {};
  for (const key of Object.keys(d)) {
    const v = d[key];
    if (typeof v !== "string") throw new Bad(`${where}.statusDetails.${key} is not a string`);
    out[key] = v;
  }
  return out;
}

function readStatus(o: Record<string, unknown>, where: string): JobStatus {
  const s = o["status"];
  if (!isJobStatus(s)) throw new Bad(`${where}.status ${JSON.stringify(s) ?? "undefined"} is not a job status`);
  return s;
}

function readExecution(value: unknown): JobExecution | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw new Bad("execution is not an object");
  const jobId = value["jobId"];
  if (!isValidJobId(jobId)) throw new Bad(`execution.jobId ${JSON.stringify(jobId) ?? "undefined"} is not a job ID`);
  const execution: JobExecution = { jobId, status: readStatus(value, "execution") };
  if (value["jobDocument"] !== undefined) execution.jobDocument = value["jobDocument"];
  const details = readDetails(value, "execution");
  if (details !== undefined) execution.statusDetails = details;
  const thingName = optionalString(value, "thingName", "execution");
  if (thingName !== undefined) execution.thingName = thingName;
  for (const key of ["queuedAt", "startedAt", "lastUpdatedAt", "versionNumber", "executionNumber", "approximateSecondsBeforeTimedOut"] as const) {
    const n = optionalCount(value, key, "execution");
    if (n !== undefined) execution[key] = n;
  }
  return execution;
}

function readState(value: unknown): JobExecutionState | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw new Bad("executionState is not an object");
  const state: JobExecutionState = { status: readStatus(value, "executionState") };
  const details = readDetails(value, "executionState");
  if (details !== undefined) state.statusDetails = details;
  const version = optionalCount(value, "versionNumber", "executionState");
  if (version !== undefined) state.versionNumber = version;
  return state;
}

function readError(o: Record<string, unknown>): { code: string; message: string } {
  const code = o["code"];
  if (typeof code !== "string" || code.length === 0) throw new Bad("rejection without a code");
  return { code, message: optionalString(o, "message", "rejection") ?? "" };
}

/** Reads the JSON object of a response; a Bad for bytes that are not UTF-8 JSON of an object. */
function readObject(payload: Uint8Array | string): Record<string, unknown> {
  const o = readJsonObject(payload);
  if (typeof o === "string") throw new Bad(o);
  return o;
}

/**
 * Classifies a message on a Jobs topic. Never throws: anything that is not a well-formed answer
 * of a kind this module knows is `{kind: "unknown", reason}`. The caller checks `thing`.
 */
export function parseJobsResponse(topic: string, payload: Uint8Array | string): JobsResponse {
  try {
    if (typeof topic !== "string") return { kind: "unknown", reason: "topic is not a string" };
    const levels = topic.split("/");
    if (levels.length < 5 || levels[0] !== "$aws" || levels[1] !== "things" || levels[3] !== "jobs") {
      return { kind: "unknown", reason: `not a Jobs topic: ${topic}` };
    }
    const thing = levels[2];
    if (!isValidThingName(thing)) return { kind: "unknown", reason: `bad thing name in ${topic}` };
    const rest = levels.slice(4).join("/");
    const o = readObject(payload);
    const clientToken = optionalString(o, "clientToken", "response");
    const timestamp = optionalCount(o, "timestamp", "response");
    const stamp = timestamp === undefined ? {} : { timestamp };
    switch (rest) {
      case "notify-next":
        return { kind: "notify-next", thing, execution: readExecution(o["execution"]), ...stamp };
      case "$next/get/accepted":
        return { kind: "next", thing, execution: readExecution(o["execution"]), clientToken, ...stamp };
      case "start-next/accepted":
        return { kind: "start-next", thing, execution: readExecution(o["execution"]), clientToken, ...stamp };
      case "$next/get/rejected":
        return { kind: "next-rejected", thing, ...readError(o), clientToken, ...stamp };
      case "start-next/rejected":
        return { kind: "start-next-rejected", thing, ...readError(o), clientToken, ...stamp };
    }
    if (levels.length === 7 && levels[5] === "update" && (levels[6] === "accepted" || levels[6] === "rejected")) {
      const jobId = levels[4];
      if (!isValidJobId(jobId)) return { kind: "unknown", reason: `bad job ID in ${topic}` };
      const executionState = readState(o["executionState"]);
      const state = executionState === undefined ? {} : { executionState };
      if (levels[6] === "rejected") return { kind: "update-rejected", thing, jobId, ...readError(o), clientToken, ...state, ...stamp };
      const document = o["jobDocument"] === undefined ? {} : { jobDocument: o["jobDocument"] };
      return { kind: "update-accepted", thing, jobId, clientToken, ...state, ...document, ...stamp };
    }
    return { kind: "unknown", reason: `unhandled Jobs topic: ${topic}` };
  } catch (e) {
    if (e instanceof Bad) return { kind: "unknown", reason: e.reason };
    return { kind: "unknown", reason: e instanceof Error ? e.message : "unreadable response" };
  }
}

// ---------------------------------------------------------------------------------------------
// Client

export interface AwsJobsClientOptions {
  mqtt: Mqtt;
  clock: Clock;
  thing: string;
  /** Milliseconds to wait for the answer to a request; default 10000. */
  timeoutMs?: number;
  /** QoS of subscriptions and requests; default 1 (as the FreeRTOS agent). */
  qos?: QoS;
  /** Start of every client token (at most 40 bytes); default "xs-ota-<random>-". */
  tokenPrefix?: string;
}

export interface UpdateOptions {
  expectedVersion?: number;
  executionNumber?: number;
  includeJobExecutionState?: boolean;
  includeJobDocument?: boolean;
  stepTimeoutInMinutes?: number;
  /** QoS of this update (the FreeRTOS agent sends download progress at 0). */
  qos?: QoS;
  timeoutMs?: number;
}

/**
 * What became of an update: accepted (with the execution state when asked for), or refused by
 * the service with its error code, or `code: "Timeout"` when no answer came in time.
 */
export type UpdateResult =
  | { accepted: true; state?: JobExecutionState; jobDocument?: unknown }
  | { accepted: false; code: string; message: string; state?: JobExecutionState };

/** The answer to a $next/get: the next pending execution (undefined: none), or a refusal/"Timeout". */
export type NextResult = { ok: true; execution: JobExecution | undefined } | { ok: false; code: string; message: string };

/** A job offered by the service: from notify-next or from any $next/get answer. */
export interface JobNotice {
  source: "next" | "notify-next";
  /** The next pending execution; undefined: there is none (or `problem` says why it is unreadable). */
  execution: JobExecution | undefined;
  /** The message as received, for parseAwsJobMessage (documents.ts). */
  payload: Uint8Array;
  clientToken?: string;
  /**
   * Set when the message broke the documented types (see parseJobsResponse); `execution` is then
   * undefined even though there may be a job: a document parser may still find its jobId in
   * `payload` and fail it.
   */
  problem?: string;
}

interface PendingUpdate {
  token: string;
  jobId: string;
  timer: TimerId;
  resolve(result: UpdateResult): void;
}

interface PendingNext {
  token: string;
  timer: TimerId;
  resolve(result: NextResult): void;
}

export const TIMEOUT_CODE = "Timeout";
export const CANCELLED_CODE = "Cancelled";

/**
 * The device's AWS IoT Jobs session for one thing. Wire `mqtt.onMessage` to `handle`; call
 * `start()` after every (re)connect that lost the session.
 *
 * - `requestNext()` and `update()` resolve with the service's answer, matched by client token
 *   (an answer without a token goes to the oldest request of its kind and job), or with
 *   `code: "Timeout"` when none came within the timeout; they reject only for local problems:
 *   OtaError "bad-argument" (invalid status, statusDetails, options) or the Mqtt port's error
 *   when the request could not be published.
 * - `onJob` handlers receive every notify-next and every accepted $next/get answer, including
 *   answers to requests that already timed out (the information is still current), with the raw
 *   payload; a malformed one comes with `problem` set (and no execution); a malformed $next/get
 *   answer does not settle its request, which then times out.
 * - Messages on other things' topics are not this client's (`handle` returns false); messages on
 *   this thing's Jobs topics are consumed even when malformed (counted in `ignored`).
 */
export class AwsJobsClient {
  readonly thing: string;
  readonly topics: JobTopics;
  readonly #mqtt: Mqtt;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #qos: QoS;
  readonly #prefix: string;
  readonly #handlers: ((notice: JobNotice) => void)[] = [];
  #updates: PendingUpdate[] = [];
  #nexts: PendingNext[] = [];
  #counter = 0;
  /** Messages on this thing's Jobs topics that were malformed or answered nothing pending. */
  ignored = 0;
  /** Why the last ignored message was ignored. */
  lastIgnored: string | undefined;

  constructor(options: AwsJobsClientOptions) {
    this.topics = jobTopics(options.thing);
    this.thing = options.thing;
    this.#mqtt = options.mqtt;
    this.#clock = options.clock;
    const settings = requestSettings(options);
    this.#timeoutMs = settings.timeoutMs;
    this.#qos = settings.qos;
    const prefix = options.tokenPrefix ?? `xs-ota-${Math.floor(Math.random() * 0x7fffffff).toString(36)}-`;
    if (typeof prefix !== "string" || utf8Length(prefix) > 40) throw new OtaError("bad-argument", "tokenPrefix must be a string of at most 40 bytes");
    this.#prefix = prefix;
  }

  /** Subscribes to notify-next, the $next/get answers and every job's update answers. */
  async start(): Promise<void> {
    const t = this.topics;
    for (const topic of [t.notifyNext, t.nextGetAccepted, t.nextGetRejected, t.updateAcceptedFilter, t.updateRejectedFilter]) {
      await this.#mqtt.subscribe(topic, this.#qos);
    }
  }

  onJob(handler: (notice: JobNotice) => void): void {
    this.#handlers.push(handler);
  }

  /** Requests, not yet answered or timed out. */
  get pending(): number {
    return this.#updates.length + this.#nexts.length;
  }

  #token(): string {
    this.#counter = (this.#counter + 1) % 1_000_000_000;
    return `${this.#prefix}${this.#counter}`;
  }

  /** Asks for the next pending job execution ($next/get). */
  async requestNext(options: { timeoutMs?: number } = {}): Promise<NextResult> {
    const token = this.#token();
    const payload = nextGetRequest(token);
    const timeout = this.#checkTimeout(options.timeoutMs);
    return this.#send<NextResult>(this.topics.nextGet, payload, this.#qos, (resolve) => {
      const entry: PendingNext = {
        token,
        resolve,
        timer: this.#clock.setTimer(timeout, () => {
          if (this.#remove(this.#nexts, entry)) resolve({ ok: false, code: TIMEOUT_CODE, message: `no answer to $next/get within ${timeout} ms` });
        }),
      };
      this.#nexts.push(entry);
      return entry;
    });
  }

  /** Reports `status` (and statusDetails) for `jobId`; see UpdateResult. */
  async update(jobId: string, status: DeviceJobStatus, statusDetails?: StatusDetails, options: UpdateOptions = {}): Promise<UpdateResult> {
    const topic = this.topics.update(jobId);
    const token = this.#token();
    const fields: UpdateRequestFields = { status, clientToken: token };
    if (statusDetails !== undefined) fields.statusDetails = statusDetails;
    if (options.expectedVersion !== undefined) fields.expectedVersion = options.expectedVersion;
    if (options.executionNumber !== undefined) fields.executionNumber = options.executionNumber;
    if (options.includeJobExecutionState !== undefined) fields.includeJobExecutionState = options.includeJobExecutionState;
    if (options.includeJobDocument !== undefined) fields.includeJobDocument = options.includeJobDocument;
    if (options.stepTimeoutInMinutes !== undefined) fields.stepTimeoutInMinutes = options.stepTimeoutInMinutes;
    const payload = updateRequest(fields);
    const qos = options.qos ?? this.#qos;
    if (qos !== 0 && qos !== 1) throw new OtaError("bad-argument", "qos must be 0 or 1");
    const timeout = this.#checkTimeout(options.timeoutMs);
    return this.#send<UpdateResult>(topic, payload, qos, (resolve) => {
      const entry: PendingUpdate = {
        token,
        jobId,
        resolve,
        timer: this.#clock.setTimer(timeout, () => {
          if (this.#remove(this.#updates, entry)) {
            resolve({ accepted: false, code: TIMEOUT_CODE, message: `no answer to the update of job ${jobId} within ${timeout} ms` });
          }
        }),
      };
      this.#updates.push(entry);
      return entry;
    });
  }

  /** Settles every request still waiting with `code: "Cancelled"` (e.g. when the session is gone). */
  cancelPending(reason = "cancelled"): void {
    const updates = this.#updates;
    const nexts = this.#nexts;
    this.#updates = [];
    this.#nexts = [];
    for (const u of updates) {
      this.#clock.clearTimer(u.timer);
      u.resolve({ accepted: false, code: CANCELLED_CODE, message: reason });
    }
    for (const n of nexts) {
      this.#clock.clearTimer(n.timer);
      n.resolve({ ok: false, code: CANCELLED_CODE, message: reason });
    }
  }

  /** Routes a message; true when it was on one of this thing's Jobs topics. */
  handle(topic: string, payload: Uint8Array): boolean {
    if (!topic.startsWith(`$aws/things/${this.thing}/jobs/`)) return false;
    const r = parseJobsResponse(topic, payload);
    switch (r.kind) {
      case "unknown":
        if (topic === this.topics.notifyNext || topic === this.topics.nextGetAccepted) {
          const source = topic === this.topics.notifyNext ? "notify-next" : "next";
          this.#notify({ source, execution: undefined, payload, problem: r.reason });
        }
        return this.#ignore(r.reason);
      case "notify-next":
        this.#notify({ source: "notify-next", execution: r.execution, payload });
        return true;
      case "next": {
        const p = this.#take(this.#nexts, r.clientToken, () => true);
        p?.resolve({ ok: true, execution: r.execution });
        const notice: JobNotice = { source: "next", execution: r.execution, payload };
        if (r.clientToken !== undefined) notice.clientToken = r.clientToken;
        this.#notify(notice);
        return true;
      }
      case "next-rejected": {
        const p = this.#take(this.#nexts, r.clientToken, () => true);
        if (p === undefined) return this.#ignore(`$next/get rejection ${r.code} answers no pending request`);
        p.resolve({ ok: false, code: r.code, message: r.message });
        return true;
      }
      case "update-accepted": {
        const p = this.#take(this.#updates, r.clientToken, (u) => u.jobId === r.jobId);
        if (p === undefined) return this.#ignore(`update acceptance for job ${r.jobId} answers no pending update`);
        const result: UpdateResult = { accepted: true };
        if (r.executionState !== undefined) result.state = r.executionState;
        if (r.jobDocument !== undefined) result.jobDocument = r.jobDocument;
        p.resolve(result);
        return true;
      }
      case "update-rejected": {
        const p = this.#take(this.#updates, r.clientToken, (u) => u.jobId === r.jobId);
        if (p === undefined) return this.#ignore(`update rejection ${r.code} for job ${r.jobId} answers no pending update`);
        const result: UpdateResult = { accepted: false, code: r.code, message: r.message };
        if (r.executionState !== undefined) result.state = r.executionState;
        p.resolve(result);
        return true;
      }
      default:
        return this.#ignore(`${r.kind} is not used by this client`);
    }
  }

  #checkTimeout(ms: number | undefined): number {
    const timeout = ms ?? this.#timeoutMs;
    if (!Number.isFinite(timeout) || timeout <= 0) throw new OtaError("bad-argument", "timeoutMs must be a positive number");
    return timeout;
  }

  /** Registers the pending entry before publishing (an answer may beat the PUBACK), then publishes. */
  #send<R>(topic: string, payload: string, qos: QoS, register: (resolve: (r: R) => void) => PendingUpdate | PendingNext): Promise<R> {
    let entry: PendingUpdate | PendingNext | undefined;
    let fail: (e: unknown) => void = () => undefined;
    const answer = new Promise<R>((resolve, reject) => {
      fail = reject;
      entry = register(resolve);
    });
    const failed = (e: unknown) => {
      if (entry === undefined) return;
      const removed = "jobId" in entry ? this.#remove(this.#updates, entry) : this.#remove(this.#nexts, entry);
      if (removed) fail(e);
    };
    try {
      this.#mqtt.publish(topic, payload, qos).then(undefined, failed);
    } catch (e) {
      failed(e);
    }
    return answer;
  }

  #remove<T extends { timer: TimerId }>(list: T[], entry: T): boolean {
    const i = list.indexOf(entry);
    if (i < 0) return false;
    list.splice(i, 1);
    this.#clock.clearTimer(entry.timer);
    return true;
  }

  /** The entry with `token`; without a token, the oldest entry that `fits`. */
  #take<T extends { token: string; timer: TimerId }>(list: T[], token: string | undefined, fits: (entry: T) => boolean): T | undefined {
    const entry = token !== undefined ? list.find((e) => e.token === token) : list.find(fits);
    if (entry !== undefined) this.#remove(list, entry);
    return entry;
  }

  #notify(notice: JobNotice): void {
    for (const handler of this.#handlers) handler(notice);
  }

  #ignore(reason: string): true {
    this.ignored++;
    this.lastIgnored = reason;
    return true;
  }
}
