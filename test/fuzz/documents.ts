/**
 * Fuzz targets for the job messages a device receives: AWS IoT Jobs documents (AWS OTA, nRF
 * aws_fota, Zerynth, custom), EnOS upgrade pushes, and the envelopes of both clouds' topics.
 * Inputs are valid messages with edits to the JSON tree, the text and the bytes, so refusals
 * come from every field. A parser must return its result type and never throw; a plan must keep
 * UpdatePlan's own rules whatever came in; an unedited valid message must give its plan.
 */
import fc from "fast-check";
import { AWS_MAX_FILE_SIZE, MAX_MESSAGE_BYTES, parseAwsJobMessage, type AwsJobOptions } from "../../modules/aws/documents.ts";
import { parseEnosUpgrade, type EnosUpgradeOptions } from "../../modules/enos/documents.ts";
import { parseEnosMessage } from "../../modules/enos/client.ts";
import { isJobStatus, isValidJobId, isValidThingName, parseJobsResponse } from "../../modules/aws/jobs.ts";
import { MAX_JSON_DEPTH } from "../../modules/jobs/json-object.ts";
import { parseHttpUrl } from "../../modules/transfer/url.ts";
import { decodeBase64 } from "../../modules/codec/base64.ts";
import type { ParseResult } from "../../modules/jobs/plan.ts";
import { applyTextEdits, editJson, edits, ensure, jsonDepth, jsonEdits, payloadOf, target, type FuzzTarget, type Json } from "./support.ts";

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;
const SIGNATURES = [
  "MEUCIQDc3+wHQ4PO6aKszPEKa3Wx16yWH8JHlzkMTtZbu0mfYgIgPiw8T0rkPBfUUgZzDXe3+x9Zb9WWMdjCMg2GpLnMyW4=",
  "MEQCIBf0CLnBfJR1VgoMfYvo+zVPbvJvD7Z+QfAjkVR7CNnQAiBSzDZFqB1iW2lqTydLY3iKBdI8Hn9DOo4vSqW/dx0/0Q==",
];
const MD5 = "9e107d9d372bb6826bd81d3542a419d6";
const SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

interface Message {
  payload: string | Uint8Array;
  /** Nothing was edited: the message is valid and `expect` says what it must give. */
  intact: boolean;
  expect: { kind: ParseResult["kind"]; size?: number; protocol?: string };
}

/** A valid tree, then tree, text and byte edits; `intact` when none applied. */
function message<T extends { tree: Json; expect: Message["expect"] }>(valid: fc.Arbitrary<T>) {
  return fc
    .record({
      valid,
      tree: fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 3, arbitrary: jsonEdits(3) }),
      text: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: edits(2) }),
      asBytes: fc.boolean(),
      bytes: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: edits(2) }),
    })
    .map(({ valid, tree, text, asBytes, bytes }) => {
      const json = applyTextEdits(editJson(valid.tree, tree), text);
      const intact = tree.length === 0 && text.length === 0 && (!asBytes || bytes.length === 0);
      const m: Message = { payload: payloadOf(json, asBytes, bytes), intact, expect: valid.expect };
      return { ...valid, ...m };
    });
}

function byteLength(payload: string | Uint8Array): number {
  return typeof payload === "string" ? Buffer.byteLength(payload, "utf8") : payload.length;
}

function depthOf(payload: string | Uint8Array): number {
  // latin1 keeps every ASCII byte where it is, and JSON's structure is all ASCII.
  return jsonDepth(typeof payload === "string" ? payload : Buffer.from(payload).toString("latin1"));
}

/** What every ParseResult must be, and what every plan must keep. */
function checkResult(r: ParseResult, m: Message, rules: { jobId: RegExp; maxSize?: number; allowUnsigned: boolean }): void {
  ensure(r !== null && typeof r === "object", "result is not an object");
  if (byteLength(m.payload) > MAX_MESSAGE_BYTES) ensure(r.kind === "invalid", `a message over ${MAX_MESSAGE_BYTES} bytes gave ${r.kind}`);
  if (depthOf(m.payload) > MAX_JSON_DEPTH) ensure(r.kind === "invalid", `a message nested deeper than ${MAX_JSON_DEPTH} gave ${r.kind}`);
  if (m.intact) {
    ensure(r.kind === m.expect.kind, `valid message gave ${r.kind}${r.kind === "invalid" ? ` (${r.reason})` : ""}, expected ${m.expect.kind}`);
  }
  switch (r.kind) {
    case "none":
      return;
    case "invalid":
      ensure(typeof r.reason === "string" && r.reason.length > 0, "invalid without a reason");
      if (r.jobId !== undefined) ensure(rules.jobId.test(r.jobId), `invalid with a bad jobId ${JSON.stringify(r.jobId)}`);
      return;
    case "custom":
      ensure(rules.jobId.test(r.jobId), `custom with a bad jobId ${JSON.stringify(r.jobId)}`);
      return;
    case "plan":
      break;
    default:
      throw new Error(`unknown result kind ${JSON.stringify(r)}`);
  }
  const p = r.plan;
  ensure(rules.jobId.test(p.jobId), `plan jobId ${JSON.stringify(p.jobId)} breaks the rules`);
  ensure(Number.isSafeInteger(p.size) && p.size > 0, `plan size ${p.size} is not a positive integer`);
  if (rules.maxSize !== undefined) ensure(p.size <= rules.maxSize, `plan size ${p.size} over maxSize ${rules.maxSize}`);
  if (p.format === "aws-ota") ensure(p.size <= AWS_MAX_FILE_SIZE, "aws-ota size over AWS's limit");
  if (p.protocol === "http") {
    ensure((p.url === undefined) !== (p.fileUri === undefined), "an http plan needs exactly one of url and fileUri");
    if (p.url !== undefined) {
      const u = parseHttpUrl(p.url);
      ensure(u.scheme === "http" || u.scheme === "https", "url is not http(s)");
    }
    if (p.fileUri !== undefined) ensure(p.fileUri.length > 0 && !/[\s\x00-\x1f\x7f]/.test(p.fileUri), "bad fileUri");
  } else {
    ensure(p.protocol === "mqtt", `protocol ${String(p.protocol)}`);
    ensure(typeof p.stream === "string" && /^[A-Za-z0-9_-]{1,128}$/.test(p.stream), "an mqtt plan needs a stream name");
    ensure(Number.isInteger(p.fileId) && (p.fileId as number) >= 0 && (p.fileId as number) <= 255, "an mqtt plan needs a file id 0..255");
  }
  if (p.signature !== undefined) {
    const n = decodeBase64(p.signature.base64).length;
    ensure(n >= 8 && n <= 100 && p.signature.keyLabel.length > 0, "signature out of its rules");
  } else ensure(rules.allowUnsigned, "an unsigned plan on a production device");
  if (p.digest !== undefined) {
    ensure(/^[0-9a-f]+$/.test(p.digest.hex) && p.digest.hex.length === (p.digest.algorithm === "md5" ? 32 : 64), "digest is not lower-case hex of its length");
  }
  if (m.intact && m.expect.size !== undefined) ensure(p.size === m.expect.size, `size ${p.size}, the document says ${m.expect.size}`);
  if (m.intact && m.expect.protocol !== undefined) ensure(p.protocol === m.expect.protocol, `protocol ${p.protocol}, expected ${m.expect.protocol}`);
}

// ---------------------------------------------------------------------------------------------
// AWS IoT Jobs documents

const jobId = fc.oneof(fc.constantFrom("job-1", "A", "x".repeat(64), "ota_2-b"), fc.nat().map((n) => `j${n}`));
const size = fc.oneof(fc.integer({ min: 1, max: 4 << 20 }), fc.constantFrom(1, AWS_MAX_FILE_SIZE));
const awsOptions = fc.record(
  { allowUnsigned: fc.boolean(), preferProtocol: fc.constantFrom<"mqtt" | "http">("mqtt", "http"), maxSize: fc.integer({ min: 1, max: 8 << 20 }) },
  { requiredKeys: [] },
);
const PROTOCOLS = ["MQTT", "HTTP", "MQTT,HTTP", "HTTP,MQTT"];

const awsDocument = fc
  .record({
    jobId,
    size,
    digits: fc.boolean(),
    protocols: fc.constantFrom(...PROTOCOLS).map((p) => p.split(",")),
    signature: fc.option(fc.constantFrom(...SIGNATURES)),
    versionNumber: fc.option(fc.nat()),
    details: fc.boolean(),
    kind: fc.constantFrom("aws", "aws", "aws", "nrf", "zerynth", "custom", "none"),
    options: awsOptions,
  })
  .map((g) => {
    const options: AwsJobOptions = { ...g.options };
    if (options.maxSize !== undefined && options.maxSize < g.size) options.maxSize = g.size;
    let doc: Json;
    let expect: Message["expect"] = { kind: "plan", size: g.size };
    const unsigned = options.allowUnsigned === true;
    if (g.kind === "aws") {
      const file: { [k: string]: Json } = { filepath: "/fw", filesize: g.digits ? String(g.size) : g.size, fileid: 0, certfile: "signer.crt" };
      file.update_data_url = "https://bucket.s3.amazonaws.com/fw.bin?X-Amz-Signature=ab";
      file.auth_scheme = "aws.s3.presigned";
      if (g.signature !== null) file["sig-sha256-ecdsa"] = g.signature;
      const allowed = g.protocols.map((p) => p.toLowerCase());
      doc = { afr_ota: { protocols: g.protocols, streamname: "AFR_OTA-1", files: [file] } };
      const prefer = options.preferProtocol ?? "mqtt";
      expect.protocol = allowed.includes(prefer) ? prefer : allowed[0];
      if (g.signature === null && !unsigned) expect = { kind: "invalid" };
    } else if (g.kind === "nrf") {
      doc = { operation: "app_fw_update", fwversion: "v1.0.2", size: g.size, location: { protocol: "https:", host: "b.s3.amazonaws.com", path: "app.bin" } };
      if (!unsigned) expect = { kind: "invalid" };
    } else if (g.kind === "zerynth") {
      doc = { bc_idx: 1, bc_crc: MD5, bc_size: g.size, bc_url: "https://z.example.com/fw" };
      if (!unsigned) expect = { kind: "invalid" };
    } else doc = { operation: "reboot", when: [1, { at: "now" }] };
    const execution: { [k: string]: Json } = { jobId: g.jobId, status: "QUEUED", jobDocument: doc };
    if (g.versionNumber !== null) execution.versionNumber = g.versionNumber;
    if (g.details) execution.statusDetails = { self_test: "ready", updatedBy: "v1.0.0" };
    if (g.kind === "custom") expect = { kind: "custom" };
    const tree: Json = g.kind === "none" ? { timestamp: 1, clientToken: "t" } : { timestamp: 1700000000, execution };
    if (g.kind === "none") expect = { kind: "none" };
    return { tree, expect, options };
  });

export const awsJobMessage = target("aws-job-message", message(awsDocument), (m) => {
  checkResult(parseAwsJobMessage(m.payload, m.options), m, { jobId: JOB_ID, maxSize: m.options.maxSize, allowUnsigned: m.options.allowUnsigned === true });
});

// ---------------------------------------------------------------------------------------------
// EnOS upgrade pushes

const FILE_URLS = ["https://files.example.com/fw.bin", "enos-connect://1b30e0ea83002000.bin", "/1b30e0ea83002000/ota/kadak13", "ota/fw.bin?x=1"];
const enosDocument = fc
  .record({
    id: fc.oneof(fc.constantFrom("1001", "~!x", "9".repeat(64)), fc.nat().map(String)),
    size,
    sha: fc.boolean(),
    fileUrl: fc.constantFrom(...FILE_URLS),
    fileBase: fc.option(fc.constantFrom("https://enos.example.com/base/", "http://127.0.0.1:8080")),
    allowUnsigned: fc.oneof(fc.constant(true), fc.boolean()),
    maxSize: fc.option(fc.integer({ min: 1, max: 8 << 20 })),
  })
  .map((g) => {
    const options: EnosUpgradeOptions = { allowUnsigned: g.allowUnsigned };
    if (g.fileBase !== null) options.fileBase = g.fileBase;
    if (g.maxSize !== null) options.maxSize = Math.max(g.maxSize, g.size);
    const params: Json = { version: "1.0.2", sign: g.sha ? SHA256 : MD5.toUpperCase(), signMethod: g.sha ? "SHA256" : "md5", fileUrl: g.fileUrl, fileSize: g.size };
    const tree: Json = { id: g.id, version: "1.0", method: "ota.device.upgrade", params };
    const expect: Message["expect"] = g.allowUnsigned ? { kind: "plan", size: g.size, protocol: "http" } : { kind: "invalid" };
    return { tree, expect, options };
  });

export const enosUpgrade = target("enos-upgrade", message(enosDocument), (m) => {
  const r = parseEnosUpgrade(m.payload, m.options);
  checkResult(r, m, { jobId: /^[\x21-\x7e]{1,64}$/, maxSize: m.options.maxSize, allowUnsigned: m.options.allowUnsigned === true });
  if (r.kind === "plan") {
    const p = r.plan;
    ensure(p.format === "enos" && p.protocol === "http" && p.digest !== undefined && typeof p.version === "string", "EnOS plan fields");
    if (p.fileUri !== undefined && !p.fileUri.startsWith("enos-connect://")) ensure(m.options.fileBase === undefined, "a relative fileUrl left unresolved with a file base");
  }
});

// ---------------------------------------------------------------------------------------------
// Topic envelopes: EnOS OTA topics and AWS IoT Jobs topics

const ENOS_NAMES = ["upgrade", "inform_reply", "progress_reply", "getversion_reply", "upgrade_reply", "inform", "x"];
const enosEnvelope = fc
  .record({
    name: fc.constantFrom(...ENOS_NAMES),
    topicEdits: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: edits(2) }),
    id: fc.constantFrom<Json>("7", 7, "", -1, 1.5, "x".repeat(65), null),
    code: fc.constantFrom<Json>(200, 404, "200", 1.5, null),
  })
  .map((g) => {
    const topic = applyTextEdits(`/sys/pk1/dev-1/ota/device/${g.name}`, g.topicEdits);
    const tree: Json = g.name === "upgrade" ? { id: g.id, method: "ota.device.upgrade", params: { version: "1" } } : { id: g.id, code: g.code, data: { v: "1" }, message: "ok" };
    return { topic, tree, expect: { kind: "plan" as const } };
  });

const usableId = (id: unknown) => (typeof id === "string" && id.length > 0 && id.length <= 64) || (typeof id === "number" && Number.isSafeInteger(id) && id >= 0);

export const enosMessage = target("enos-envelope", message(enosEnvelope), (m) => {
  const r = parseEnosMessage(m.topic, m.payload);
  if (depthOf(m.payload) > MAX_JSON_DEPTH) ensure(r.kind === "unknown", "a message nested too deep was read");
  if (r.kind === "unknown") ensure(typeof r.reason === "string" && r.reason.length > 0, "unknown without a reason");
  else if (r.kind === "upgrade") ensure(usableId(r.id) && m.topic.endsWith("/upgrade"), "upgrade with a bad id or topic");
  else {
    ensure(r.kind === "reply", `kind ${JSON.stringify(r)}`);
    ensure(Number.isInteger(r.code) && (r.id === undefined || usableId(r.id)), "reply with a bad code or id");
    ensure(m.topic.endsWith(`/${r.operation}_reply`), `reply ${r.operation} on ${m.topic}`);
  }
});

const JOBS_TOPICS = ["notify-next", "$next/get/accepted", "$next/get/rejected", "start-next/accepted", "start-next/rejected", "job-1/update/accepted", "job-1/update/rejected", "job-1/get/accepted"];
const jobsEnvelope = fc
  .record({
    rest: fc.constantFrom(...JOBS_TOPICS),
    thing: fc.constantFrom("dev-1", "a:b_c", "bad/thing", "", "x".repeat(129)),
    topicEdits: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: edits(2) }),
    status: fc.constantFrom<Json>("QUEUED", "IN_PROGRESS", "queued", 1),
    jobId,
  })
  .map((g) => {
    const topic = applyTextEdits(`$aws/things/${g.thing}/jobs/${g.rest}`, g.topicEdits);
    const execution: Json = { jobId: g.jobId, status: g.status, versionNumber: 2, statusDetails: { a: "b" }, jobDocument: { x: 1 }, queuedAt: 1 };
    const tree: Json = g.rest.endsWith("rejected")
      ? { code: "InvalidRequest", message: "no", clientToken: "t", executionState: { status: "FAILED" } }
      : { clientToken: "t", timestamp: 1, execution, executionState: { status: "IN_PROGRESS", versionNumber: 3 } };
    return { topic, tree, expect: { kind: "plan" as const } };
  });

export const jobsResponse = target("aws-jobs-envelope", message(jobsEnvelope), (m) => {
  const r = parseJobsResponse(m.topic, m.payload);
  if (depthOf(m.payload) > MAX_JSON_DEPTH) ensure(r.kind === "unknown", "a message nested too deep was read");
  if (r.kind === "unknown") {
    ensure(typeof r.reason === "string" && r.reason.length > 0, "unknown without a reason");
    // The parser's catch-all turns anything into "unknown": a bug would hide there as a JS error.
    ensure(!/is not a function|Cannot read prop|is not iterable|Cannot convert|Maximum call stack/.test(r.reason), `a JS error became a reason: ${r.reason}`);
    return;
  }
  ensure(isValidThingName(r.thing) && m.topic.startsWith(`$aws/things/${r.thing}/jobs/`), "bad thing");
  if ("execution" in r && r.execution !== undefined) ensure(isValidJobId(r.execution.jobId) && isJobStatus(r.execution.status), "bad execution");
  if ("jobId" in r) ensure(isValidJobId(r.jobId), "bad job id");
  if ("code" in r) ensure(typeof r.code === "string" && r.code.length > 0, "rejection without a code");
});

export const documentTargets: FuzzTarget[] = [awsJobMessage, enosUpgrade, enosMessage, jobsResponse];
