/**
 * Job messages from AWS IoT Jobs, as a device receives them on `$aws/things/T/jobs/notify-next`
 * and `$aws/things/T/jobs/$next/get/accepted` (both carry `{execution: {...}}`), turned into an
 * UpdatePlan after strict checks. Three job document formats are recognised:
 *
 * - AWS OTA (`jobDocument.afr_ota`), as made by CreateOTAUpdate for FreeRTOS's OTA agent;
 * - nRF Connect SDK aws_fota (`jobDocument.operation == "app_fw_update"`, a `location`);
 * - Zerynth FOTA (`jobDocument.bc_idx / bc_crc / bc_size / bc_url`).
 *
 * Any other document with a valid jobId comes back as `custom`, for the app's own handler.
 * Bad input never throws: it comes back as `invalid` with a reason that names the field.
 *
 * Rules for afr_ota, and where they come from (aws/ota-for-aws-iot-embedded-sdk, source/ota.c,
 * its job document model `otaJobDocModelParamStructure` and `validateAndStartJob`, plus
 * source/ota_interface.c `setDataInterface`; limits from the AWS IoT API reference):
 * - execution.jobId, execution.jobDocument, afr_ota, afr_ota.protocols, afr_ota.files, filesize
 *   and fileid are required; statusDetails (self_test, updatedBy), streamname, filepath,
 *   certfile, update_data_url, auth_scheme, sig-sha256-ecdsa, attr and fileType are optional in
 *   the current agent (earlier versions of its model, e.g. the V2.0.0 one in
 *   test/unit-test/ota_job_parsing_utest.c, also required filepath, certfile and the signature).
 * - numbers are read with strtoul, so the agent takes `"filesize": "1024"` (a JSON string) as
 *   well as `1024`; here a string of decimal digits is taken too (no sign, no leading zeros, no
 *   hex: where the agent's reading and this one could differ, the value is refused).
 * - filesize must be > 0 and at most 2^32 - 4096 (OTA_MAX_FILE_SIZE with 4 KB blocks).
 * - only files[0] is used (OTA_MAX_FILES is 1); further entries are ignored, as the agent does.
 * - protocols: the agent picks the first of its priority list ("MQTT" then "HTTP" by default,
 *   configOTA_PRIMARY_DATA_PROTOCOL) that the document lists; a document that lists neither is
 *   failed. Here the device's preference (options.preferProtocol, default "mqtt" like the agent)
 *   wins when the document allows it, otherwise the protocol the document allows. Entries other
 *   than "MQTT" and "HTTP", repeated entries and an empty list are refused.
 * - the signature is base64 (an invalid one fails the job); this device needs it (8 to 100 bytes:
 *   DER or raw r||s of ECDSA P-256) and the certfile naming the key, unless allowUnsigned is set
 *   and the signature is absent. Other `sig-*` keys (RSA) are refused.
 * - stream names: 1..128 of [A-Za-z0-9_-] (CreateStream's streamId); stream file ids 0..255.
 * - jobId: 1..64 of [A-Za-z0-9_-] (CreateJob's jobId).
 * - `xs_ota_delta` in files[0] (xs-ota's own; AWS's agent looks up only the keys of its model,
 *   so it takes the full file and ignores this): a VCDIFF patch from the image the device may
 *   run, `{from_size, from_sha256, filesize, sha256, fileid | update_data_url}`: by the protocol
 *   the plan uses, a file id of the same stream or a URL (a second presigned-URL placeholder).
 *   When present it is checked as strictly as the rest.
 */
import { decodeBase64 } from "../codec/base64.ts";
import { isOtaError } from "../errors.ts";
import type { DeltaOffer, ParseResult, TransferProtocol, UpdatePlan } from "../jobs/plan.ts";
import {
  checkMaxSize,
  fileSize,
  has,
  hexDigest,
  httpUrl,
  invalid,
  isObject,
  messageObject,
  refuse,
  show,
  text,
  wholeNumber,
  type JsonObject,
} from "../jobs/checks.ts";

export { MAX_MESSAGE_BYTES, MAX_URL_LENGTH } from "../jobs/checks.ts";
export const MAX_STREAM_NAME_LENGTH = 128;
export const MAX_JOB_ID_LENGTH = 64;
/** OTA_MAX_FILE_SIZE of AWS's agent: UINT32_MAX - block size + 1, with 4 KB blocks. */
export const AWS_MAX_FILE_SIZE = 0xffffffff - 4096 + 1;
export const MIN_SIGNATURE_BYTES = 8;
export const MAX_SIGNATURE_BYTES = 100;
const MAX_VERSION_LENGTH = 64;
const MAX_LABEL_LENGTH = 256;
const MAX_PATH_LENGTH = 1024;
const SIGNATURE_KEY = "sig-sha256-ecdsa";

export interface AwsJobOptions {
  /** The largest image this device takes (its OTA slot size); larger files are refused. */
  maxSize?: number;
  /** Development devices only: take documents without a signature. */
  allowUnsigned?: boolean;
  /** The data plane this device prefers when the job allows both; "mqtt" when not given. */
  preferProtocol?: TransferProtocol;
}


function jobIdOf(v: unknown): string {
  if (v === undefined) refuse("execution.jobId is missing");
  if (typeof v !== "string") refuse(`execution.jobId must be a string, got ${show(v)}`);
  if (v.length === 0 || v.length > MAX_JOB_ID_LENGTH) refuse(`execution.jobId is ${v.length} characters; it must have 1 to ${MAX_JOB_ID_LENGTH}`);
  if (!/^[A-Za-z0-9_-]+$/.test(v)) refuse(`execution.jobId ${show(v)} may only have the characters A-Z a-z 0-9 _ -`);
  return v;
}

/** execution.statusDetails: a map of strings (UpdateJobExecution: keys [a-zA-Z0-9:_-]{1,128}, values up to 1024). */
function statusDetailsOf(v: unknown): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) refuse(`execution.statusDetails must be an object, got ${show(v)}`);
  const out: Record<string, string> = {};
  for (const key of Object.keys(v)) {
    if (!/^[A-Za-z0-9:_-]{1,128}$/.test(key)) refuse(`execution.statusDetails key ${show(key)} is not 1 to 128 of A-Z a-z 0-9 : _ -`);
    const value = v[key];
    if (typeof value !== "string") refuse(`execution.statusDetails.${key} must be a string, got ${show(value)}`);
    if (value.length > 1024) refuse(`execution.statusDetails.${key} is ${value.length} characters; at most 1024`);
    out[key] = value;
  }
  return out;
}

function versionNumberOf(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = wholeNumber(v, "execution.versionNumber", false);
  if (n < 0) refuse(`execution.versionNumber must not be negative, got ${show(v)}`);
  return n;
}

function checkOptions(options: AwsJobOptions): { maxSize: number | undefined; allowUnsigned: boolean; prefer: TransferProtocol } {
  if (!isObject(options)) refuse("options must be an object");
  const maxSize = checkMaxSize(options.maxSize);
  const prefer = options.preferProtocol ?? "mqtt";
  if (prefer !== "mqtt" && prefer !== "http") refuse(`options.preferProtocol must be "mqtt" or "http", got ${show(prefer)}`);
  if (options.allowUnsigned !== undefined && typeof options.allowUnsigned !== "boolean") {
    refuse(`options.allowUnsigned must be true or false, got ${show(options.allowUnsigned)}`);
  }
  return { maxSize, allowUnsigned: options.allowUnsigned === true, prefer };
}

type Checked = ReturnType<typeof checkOptions>;

interface Execution {
  jobId: string;
  statusDetails: Record<string, string> | undefined;
  versionNumber: number | undefined;
}

function withExecution(plan: UpdatePlan, ex: Execution): UpdatePlan {
  if (ex.statusDetails !== undefined) plan.statusDetails = ex.statusDetails;
  if (ex.versionNumber !== undefined) plan.versionNumber = ex.versionNumber;
  return plan;
}

export function parseAwsJobMessage(payload: string | Uint8Array, options: AwsJobOptions = {}): ParseResult {
  let jobId: string | undefined;
  try {
    const opts = checkOptions(options);
    const message = messageObject(payload);
    if (!has(message, "execution")) return { kind: "none" };
    const execution = message.execution;
    if (!isObject(execution)) refuse(`execution must be an object, got ${show(execution)}`);
    jobId = jobIdOf(execution.jobId);
    const ex: Execution = {
      jobId,
      statusDetails: statusDetailsOf(execution.statusDetails),
      versionNumber: versionNumberOf(execution.versionNumber),
    };
    const document = execution.jobDocument;
    if (document === undefined) refuse("execution.jobDocument is missing");
    if (!isObject(document)) refuse(`execution.jobDocument must be an object, got ${show(document)}`);

    let plan: UpdatePlan;
    if (has(document, "afr_ota")) plan = awsOta(document.afr_ota, ex, opts);
    else if (document.operation === "app_fw_update") plan = nrfFota(document, ex, opts);
    else if (["bc_idx", "bc_crc", "bc_size", "bc_url"].some((k) => has(document, k))) plan = zerynth(document, ex, opts);
    else {
      const custom: ParseResult = { kind: "custom", jobId, document };
      if (ex.statusDetails !== undefined) custom.statusDetails = ex.statusDetails;
      if (ex.versionNumber !== undefined) custom.versionNumber = ex.versionNumber;
      return custom;
    }
    return { kind: "plan", plan: withExecution(plan, ex) };
  } catch (e) {
    return invalid(e, jobId);
  }
}

function protocolsOf(v: unknown): TransferProtocol[] {
  const path = "afr_ota.protocols";
  if (v === undefined) refuse(`${path} is missing`);
  if (!Array.isArray(v)) refuse(`${path} must be an array, got ${show(v)}`);
  if (v.length === 0) refuse(`${path} is empty; it must list "MQTT", "HTTP" or both`);
  const out: TransferProtocol[] = [];
  v.forEach((p: unknown, i: number) => {
    if (p !== "MQTT" && p !== "HTTP") refuse(`${path}[${i}] must be "MQTT" or "HTTP", got ${show(p)}`);
    const protocol: TransferProtocol = p === "MQTT" ? "mqtt" : "http";
    if (out.includes(protocol)) refuse(`${path} lists "${p}" twice`);
    out.push(protocol);
  });
  return out;
}

function streamNameOf(v: unknown): string {
  const path = "afr_ota.streamname";
  if (typeof v !== "string") refuse(`${path} must be a string, got ${show(v)}`);
  if (v.length === 0 || v.length > MAX_STREAM_NAME_LENGTH) refuse(`${path} is ${v.length} characters; it must have 1 to ${MAX_STREAM_NAME_LENGTH}`);
  if (!/^[A-Za-z0-9_-]+$/.test(v)) refuse(`${path} ${show(v)} may only have the characters A-Z a-z 0-9 _ -`);
  return v;
}

function awsOta(ota: unknown, ex: Execution, opts: Checked): UpdatePlan {
  if (!isObject(ota)) refuse(`afr_ota must be an object, got ${show(ota)}`);
  const protocols = protocolsOf(ota.protocols);
  const stream = ota.streamname === undefined ? undefined : streamNameOf(ota.streamname);

  const files = ota.files;
  if (files === undefined) refuse("afr_ota.files is missing");
  if (!Array.isArray(files)) refuse(`afr_ota.files must be an array, got ${show(files)}`);
  if (files.length === 0) refuse("afr_ota.files is empty; it must describe the file to download");
  const file: unknown = files[0];
  const at = "afr_ota.files[0]";
  if (!isObject(file)) refuse(`${at} must be an object, got ${show(file)}`);

  const size = fileSize(file.filesize, `${at}.filesize`, true, opts.maxSize, {
    value: AWS_MAX_FILE_SIZE,
    why: "the largest file AWS's OTA agent takes",
  });
  if (file.fileid === undefined) refuse(`${at}.fileid is missing`);
  const fileId = wholeNumber(file.fileid, `${at}.fileid`, true);
  if (fileId < 0 || fileId > 255) refuse(`${at}.fileid must be 0 to 255 (a stream file id), got ${show(file.fileid)}`);
  if (file.filepath !== undefined) text(file.filepath, `${at}.filepath`, MAX_PATH_LENGTH);
  const certfile = file.certfile === undefined ? undefined : text(file.certfile, `${at}.certfile`, MAX_LABEL_LENGTH);
  const url = file.update_data_url === undefined ? undefined : httpUrl(file.update_data_url, `${at}.update_data_url`);
  if (file.auth_scheme !== undefined) text(file.auth_scheme, `${at}.auth_scheme`, MAX_LABEL_LENGTH);
  if (file.fileType !== undefined) {
    const type = wholeNumber(file.fileType, `${at}.fileType`, true);
    if (type < 0 || type > 255) refuse(`${at}.fileType must be 0 to 255, got ${show(file.fileType)}`);
  }
  if (file.attr !== undefined) {
    const attr = wholeNumber(file.attr, `${at}.attr`, true);
    if (attr < 0 || attr > 0xffffffff) refuse(`${at}.attr must be a 32-bit unsigned integer, got ${show(file.attr)}`);
  }

  let signature: UpdatePlan["signature"];
  const sig = file[SIGNATURE_KEY];
  if (sig === undefined) {
    const other = Object.keys(file).find((k) => k.startsWith("sig-"));
    if (other !== undefined) refuse(`${at} is signed with ${show(other)}; only "${SIGNATURE_KEY}" (ECDSA P-256) signatures are supported`);
    if (!opts.allowUnsigned) refuse(`${at}.${SIGNATURE_KEY} is missing: unsigned document on a production device`);
  } else {
    if (typeof sig !== "string") refuse(`${at}.${SIGNATURE_KEY} must be a base64 string, got ${show(sig)}`);
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(sig);
    } catch (e) {
      if (isOtaError(e)) refuse(`${at}.${SIGNATURE_KEY} is not valid base64 (${e.message})`);
      throw e;
    }
    if (bytes.length < MIN_SIGNATURE_BYTES || bytes.length > MAX_SIGNATURE_BYTES) {
      refuse(`${at}.${SIGNATURE_KEY} decodes to ${bytes.length} bytes; an ECDSA P-256 signature has ${MIN_SIGNATURE_BYTES} to ${MAX_SIGNATURE_BYTES}`);
    }
    if (certfile === undefined) refuse(`${at}.certfile is missing; it names the key that verifies ${SIGNATURE_KEY}`);
    signature = { base64: sig, keyLabel: certfile };
  }

  const protocol = protocols.includes(opts.prefer) ? opts.prefer : protocols[0];
  const plan: UpdatePlan = { jobId: ex.jobId, format: "aws-ota", protocol, size };
  if (protocol === "mqtt") {
    if (stream === undefined) refuse("afr_ota.streamname is missing; MQTT downloads need it");
    plan.stream = stream;
    plan.fileId = fileId;
  } else {
    if (url === undefined) refuse(`${at}.update_data_url is missing; HTTP downloads need it`);
    plan.url = url;
  }
  if (signature !== undefined) plan.signature = signature;
  if (file[DELTA_KEY] !== undefined) plan.delta = deltaOf(file[DELTA_KEY], `${at}.${DELTA_KEY}`, protocol, fileId, opts.maxSize);
  return plan;
}

const DELTA_KEY = "xs_ota_delta";

function deltaOf(v: unknown, at: string, protocol: TransferProtocol, imageFileId: number, maxSize: number | undefined): DeltaOffer {
  if (!isObject(v)) refuse(`${at} must be an object, got ${show(v)}`);
  const sourceSize = fileSize(v.from_size, `${at}.from_size`, true, maxSize);
  const sourceSha256 = hexDigest(v.from_sha256, `${at}.from_sha256`, 64, "the SHA-256 of the image the patch applies to");
  const size = fileSize(v.filesize, `${at}.filesize`, true, maxSize);
  const sha256 = hexDigest(v.sha256, `${at}.sha256`, 64, "the SHA-256 of the patch");
  const delta: DeltaOffer = { sourceSize, sourceSha256, size, sha256 };
  if (protocol === "mqtt") {
    if (v.fileid === undefined) refuse(`${at}.fileid is missing; a patch over MQTT is a file of the job's stream`);
    const fileId = wholeNumber(v.fileid, `${at}.fileid`, true);
    if (fileId < 0 || fileId > 255) refuse(`${at}.fileid must be 0 to 255 (a stream file id), got ${show(v.fileid)}`);
    if (fileId === imageFileId) refuse(`${at}.fileid is ${fileId}, the full image's own file id`);
    delta.fileId = fileId;
  } else {
    if (v.update_data_url === undefined) refuse(`${at}.update_data_url is missing; HTTP downloads of the patch need it`);
    delta.url = httpUrl(v.update_data_url, `${at}.update_data_url`);
  }
  return delta;
}

/**
 * nRF Connect SDK aws_fota (subsys/net/lib/aws_fota/src/aws_fota_json.c): the agent needs
 * execution.jobId, execution.versionNumber, jobDocument.location either as `url` (newer SDKs) or
 * as `host` and `path` strings (each shorter than its buffer, 255 by default); it ignores
 * `operation`, `fwversion`, `size` and `location.protocol` (the download client learns the size
 * from Content-Range). Here `operation == "app_fw_update"` tells the format apart, and `size`
 * is required because an UpdatePlan has one. The path comes without its leading "/".
 */
function nrfFota(doc: JsonObject, ex: Execution, opts: Checked): UpdatePlan {
  const size = fileSize(doc.size, "size", false, opts.maxSize);
  const version = doc.fwversion === undefined ? undefined : text(doc.fwversion, "fwversion", MAX_VERSION_LENGTH);
  const location = doc.location;
  if (location === undefined) refuse("location is missing");
  if (!isObject(location)) refuse(`location must be an object, got ${show(location)}`);
  let url: string;
  if (location.url !== undefined) {
    url = httpUrl(location.url, "location.url");
  } else {
    let scheme = "https";
    if (location.protocol !== undefined) {
      const p = location.protocol;
      if (typeof p !== "string" || !/^https?:?$/i.test(p)) refuse(`location.protocol must be "http:" or "https:", got ${show(p)}`);
      scheme = p.replace(":", "").toLowerCase();
    }
    if (location.host === undefined) refuse("location.host is missing");
    const host = text(location.host, "location.host", 253);
    if (!/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(host)) refuse(`location.host ${show(host)} is not a host name`);
    if (location.path === undefined) refuse("location.path is missing");
    const path = text(location.path, "location.path", 255);
    if (/\s/.test(path)) refuse("location.path has spaces");
    url = httpUrl(`${scheme}://${host}/${path.startsWith("/") ? path.slice(1) : path}`, "location");
  }
  if (!opts.allowUnsigned) refuse("nRF aws_fota documents carry no signature: unsigned document on a production device");
  const plan: UpdatePlan = { jobId: ex.jobId, format: "nrf-fota", protocol: "http", size, url };
  if (version !== undefined) plan.version = version;
  return plan;
}

/**
 * Zerynth FOTA (lib.aws.iot fota): bc_idx (the bytecode slot; validated, then not used: this
 * device picks its slot from the partition table), bc_crc (MD5 of the image), bc_size, bc_url.
 */
function zerynth(doc: JsonObject, ex: Execution, opts: Checked): UpdatePlan {
  if (doc.bc_idx === undefined) refuse("bc_idx is missing");
  const idx = wholeNumber(doc.bc_idx, "bc_idx", false);
  if (idx < 0) refuse(`bc_idx must be a non-negative integer, got ${show(doc.bc_idx)}`);
  if (doc.bc_crc === undefined) refuse("bc_crc is missing");
  const md5 = hexDigest(doc.bc_crc, "bc_crc", 32, "an MD5");
  const size = fileSize(doc.bc_size, "bc_size", false, opts.maxSize);
  if (doc.bc_url === undefined) refuse("bc_url is missing");
  const url = httpUrl(doc.bc_url, "bc_url");
  if (!opts.allowUnsigned) refuse("Zerynth FOTA documents carry only an MD5, no signature: unsigned document on a production device");
  return { jobId: ex.jobId, format: "zerynth", protocol: "http", size, url, digest: { algorithm: "md5", hex: md5 } };
}
