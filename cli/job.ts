/**
 * xs-ota job parse [--format aws|enos] [--prefer mqtt|http] [--file-base URL] [--max-size N]
 *                  [--allow-unsigned] [FILE|-]
 *
 * Reads one job message (a file, or stdin for "-" or no FILE) and parses it exactly as the device
 * does (modules/jobs): the plan as JSON (exit 0), "no job" (exit 0), or the refusal (exit 1).
 *
 * xs-ota job create --thing T [--thing T2] --file FW.bin [--key KEY.pem] [--protocol http|mqtt]
 *                   [--format aws|nrf|zerynth|enos] [--job-id ID] [--version V] [--product PK]
 *                   [--certfile LABEL] [--filepath PATH] [--file-url enos-connect|path] [--control URL]
 * (--version: the firmware's version, for a raw binary whose header declares none; --certfile: the label of the key the device verifies with, default signer.crt; --filepath:
 * the document's filepath, default /fw; both AWS OTA documents only, as CreateOTAUpdate sets them;
 * --file-url: how an EnOS offer names its file, by default enos-connect:// when every target is a
 * device registered with `xs-ota enos register`, else a path)
 * The parse also says, on stderr, how the device will fetch the file.
 * xs-ota job list [--control URL]
 * xs-ota job describe ID [--control URL]
 *
 * These talk to the control API of a running `xs-ota cloud` (cloud/server.ts), by default
 * http://127.0.0.1:<DEFAULT_CONTROL_PORT>. Exit 1 with the reason when the cloud refuses or is
 * not there.
 */
import { readFileSync } from "node:fs";
import { checkInput, checkPrivateKeyFile, fsReason, readInput } from "./files.ts";
import { resolve } from "node:path";
import type { Io } from "./main.ts";
import { JOB_DOCUMENT, jobDocumentCommand } from "./job-document.ts";
import { runGroup, withArgs, withArgsSync, type Args, type CommandSpec, type Group } from "./args.ts";
import { findControl } from "./endpoint.ts";
import { parseAwsJobMessage } from "../modules/aws/documents.ts";
import { parseEnosUpgrade } from "../modules/enos/documents.ts";
import type { ParseResult, TransferProtocol, UpdatePlan } from "../modules/jobs/plan.ts";

const PARSE: CommandSpec = {
  name: "job parse",
  usage: ["job parse [--format aws|enos] [--prefer mqtt|http] [--file-base URL] [--max-size N] [--allow-unsigned] [FILE|-]"],
  about: [
    "Parses one job message (FILE, or stdin for - or no FILE) exactly as the device does: the plan as JSON, no job, or the refusal.",
    "With --format aws it takes a Jobs message ({\"execution\": {...}}) or a bare job document ({\"afr_ota\": {...}}, as for aws iot create-job).",
  ],
  options: {
    format: { type: "string", value: "aws|enos", choices: ["aws", "enos"], description: "aws: an AWS IoT Jobs message or job document (afr_ota, nRF aws_fota, Zerynth; default); enos: an EnOS ota/device/upgrade push" },
    prefer: { type: "string", value: "mqtt|http", choices: ["mqtt", "http"], description: "the data plane to use when an AWS OTA job allows both (default mqtt)" },
    "file-base": { type: "string", value: "URL", description: "EnOS: resolves a relative fileUrl to a plain URL (without it the file comes through the EnOS HTTP broker)" },
    "max-size": { type: "string", value: "N", description: "refuse images larger than N bytes (the OTA slot size)" },
    "allow-unsigned": { type: "boolean", description: "take documents without a signature (development devices only)" },
  },
  positionals: { min: 0, max: 1, name: "FILE" },
};

interface Options {
  format: "aws" | "enos";
  prefer?: TransferProtocol;
  fileBase?: string;
  maxSize?: number;
  allowUnsigned: boolean;
  file: string;
}

function parseOptions(a: Args): Options {
  const o: Options = { format: a.string("format") === "enos" ? "enos" : "aws", allowUnsigned: a.flag("allow-unsigned"), file: a.positionals[0] ?? "-" };
  const prefer = a.string("prefer");
  if (prefer === "mqtt" || prefer === "http") o.prefer = prefer;
  const fileBase = a.string("file-base");
  if (fileBase !== undefined) o.fileBase = fileBase;
  const max = a.string("max-size");
  if (max !== undefined) {
    const n = /^[0-9]+$/.test(max) ? Number(max) : NaN;
    if (!Number.isSafeInteger(n) || n <= 0) a.fail(`--max-size takes a positive number of bytes, got ${max}`);
    o.maxSize = n;
  }
  return o;
}

/**
 * A bare job document (what `aws iot create-job --document` takes) has no execution around it;
 * the device never sees one, but people have one at hand, so it is wrapped as the execution a
 * device would get, under a placeholder job ID. Anything else is left as it is.
 */
export function wrapBareDocument(bytes: Uint8Array): Uint8Array | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const keys = Object.keys(value);
  // A Jobs message without an execution ("no job") carries only these.
  if (keys.includes("execution") || keys.every((k) => k === "timestamp" || k === "clientToken")) return undefined;
  const message = { execution: { jobId: PLACEHOLDER_JOB_ID, status: "QUEUED", versionNumber: 1, executionNumber: 1, jobDocument: value } };
  return new TextEncoder().encode(JSON.stringify(message));
}

const PLACEHOLDER_JOB_ID = "local-document";

/** The plan as people read it: where it downloads from, how much, and what proves it. */
function describePlan(plan: UpdatePlan): Record<string, unknown> {
  const out: Record<string, unknown> = { jobId: plan.jobId, format: plan.format, protocol: plan.protocol };
  if (plan.url !== undefined) out.url = plan.url;
  if (plan.fileUri !== undefined) out.fileUri = plan.fileUri;
  if (plan.stream !== undefined) out.stream = plan.stream;
  if (plan.fileId !== undefined) out.fileId = plan.fileId;
  out.size = plan.size;
  if (plan.signature !== undefined) {
    out.signature = plan.signature.base64;
    out.keyLabel = plan.signature.keyLabel;
  }
  if (plan.digest !== undefined) out.digest = { algorithm: plan.digest.algorithm, hex: plan.digest.hex };
  if (plan.version !== undefined) out.version = plan.version;
  if (plan.statusDetails !== undefined) out.statusDetails = plan.statusDetails;
  if (plan.versionNumber !== undefined) out.versionNumber = plan.versionNumber;
  return out;
}

/** One line on where the file comes from, as the device will fetch it. */
function howFetched(plan: UpdatePlan): string {
  if (plan.protocol === "mqtt") return `file: MQTT stream ${plan.stream ?? "?"}, file ${plan.fileId ?? 0}, in blocks`;
  if (plan.fileUri !== undefined) {
    return `file: ${plan.fileUri} through the EnOS HTTP broker: POST /auth/{productKey}/{deviceKey} for a session, then GET /multipart/sys/{productKey}/{deviceKey}/file/download?sessionId=..&fileUri=..&category=ota with Range requests (the device needs its device secret and the broker's URL)`;
  }
  return `file: ${plan.url ?? "?"} with HTTP Range requests`;
}

function parse(a: Args, io: Io): number {
  const o = parseOptions(a);
  let bytes: Uint8Array;
  if (o.file === "-") {
    try {
      bytes = new Uint8Array(readFileSync(0));
    } catch (e) {
      io.err(`error: cannot read stdin: ${fsReason(e)}`);
      return 1;
    }
  } else bytes = readInput(o.file, "the job message");
  let result: ParseResult;
  if (o.format === "enos") {
    result = parseEnosUpgrade(bytes, { fileBase: o.fileBase, maxSize: o.maxSize, allowUnsigned: o.allowUnsigned });
  } else {
    const wrapped = wrapBareDocument(bytes);
    if (wrapped !== undefined) {
      io.err(`a bare job document: parsed as the execution of a job '${PLACEHOLDER_JOB_ID}' (a device gets it inside {"execution": {...}})`);
      bytes = wrapped;
    }
    result = parseAwsJobMessage(bytes, { maxSize: o.maxSize, allowUnsigned: o.allowUnsigned, preferProtocol: o.prefer });
  }
  switch (result.kind) {
    case "plan":
      JSON.stringify(describePlan(result.plan), null, 2)
        .split("\n")
        .forEach((l) => io.out(l));
      // On stderr: stdout stays the plan as JSON, for scripts.
      io.err(howFetched(result.plan));
      return 0;
    case "none":
      io.out("no job");
      return 0;
    case "custom":
      io.err(`custom job ${result.jobId}: not an update document this device handles`);
      return 1;
    case "invalid":
      io.err(`error: ${result.reason}${result.jobId === undefined ? "" : ` (job ${result.jobId})`}`);
      return 1;
  }
}

const CONTROL_OPTIONS: CommandSpec["options"] = {
  control: { type: "string", value: "URL", description: "the cloud's control API (default: from DIR/cloud.json, else http://127.0.0.1:8180)" },
  data: { type: "string", value: "DIR", description: "the cloud's data folder, where a running cloud leaves cloud.json (default .xs-ota-cloud)" },
};

const CREATE: CommandSpec = {
  name: "job create",
  usage: [
    "job create --thing T [--thing T2] --file FW.bin [--key KEY.pem] [--protocol http|mqtt] [--format aws|nrf|zerynth|enos] [--job-id ID] [--version V] [--product PK] [--certfile LABEL] [--filepath PATH] [--file-url enos-connect|path] [--delta-from OLD.bin] [--control URL] [--data DIR]",
  ],
  about: [
    "Creates an update job on a running `xs-ota cloud` for one or more things, and prints its job document.",
    "--delta-from: the cloud also offers a patch from OLD.bin (made by xdelta3); a device running OLD.bin downloads the patch, any other the full image.",
  ],
  options: {
    thing: { type: "string", value: "T", multiple: true, required: true, description: "a target thing" },
    file: { type: "string", value: "FW.bin", required: true, description: "the firmware image" },
    key: { type: "string", value: "KEY.pem", description: "the private signing key (keygen's signing-key.pem); without it the job is unsigned" },
    protocol: { type: "string", value: "http|mqtt", choices: ["http", "mqtt"], description: "how the device downloads: HTTPS presigned URL or MQTT stream" },
    format: { type: "string", value: "FORMAT", choices: ["aws", "nrf", "zerynth", "enos"], description: "the job document's format (default aws)" },
    "job-id": { type: "string", value: "ID", description: "the job's ID (default: made up)" },
    version: { type: "string", value: "V", description: "the firmware's version, for a raw binary whose header declares none" },
    product: { type: "string", value: "PK", description: "EnOS: the product key" },
    certfile: { type: "string", value: "LABEL", description: "the key label the device verifies the signature with (default signer.crt; AWS OTA documents)" },
    filepath: { type: "string", value: "PATH", description: "the document's filepath (default /fw; AWS OTA documents)" },
    "file-url": { type: "string", value: "enos-connect|path", choices: ["enos-connect", "path"], description: "how an EnOS offer names its file" },
    "delta-from": { type: "string", value: "OLD.bin", description: "offer a patch from this image too (AWS OTA documents)" },
    ...CONTROL_OPTIONS,
  },
};

const LIST: CommandSpec = {
  name: "job list",
  usage: ["job list [--control URL] [--data DIR]"],
  about: ["Lists the cloud's jobs: ID, status, format, targets."],
  options: CONTROL_OPTIONS,
};

const DESCRIBE: CommandSpec = {
  name: "job describe",
  usage: ["job describe ID [--control URL] [--data DIR]"],
  about: ["One job: its status, each thing's execution (status, progress, reason) and its document."],
  options: CONTROL_OPTIONS,
  positionals: { min: 1, max: 1, name: "the job ID" },
};

type JsonObject = Record<string, unknown>;

/** One request to the control API: the JSON answer, or the reason it failed (printed). */
export async function control(io: Io, base: string, method: "GET" | "POST", path: string, body?: JsonObject): Promise<JsonObject | undefined> {
  const url = `${base.replace(/\/+$/, "")}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : e instanceof Error ? e.message : String(e);
    io.err(`error: no cloud at ${base}: start one with xs-ota cloud (${cause})`);
    return undefined;
  }
  let answer: unknown;
  try {
    answer = await res.json();
  } catch {
    io.err(`error: ${base} answered ${res.status} without JSON: is it an xs-ota cloud?`);
    return undefined;
  }
  const obj: JsonObject = typeof answer === "object" && answer !== null && !Array.isArray(answer) ? (answer as JsonObject) : {};
  if (!res.ok) {
    io.err(`error: the cloud refused: ${typeof obj["error"] === "string" ? obj["error"] : `HTTP ${res.status}`}`);
    return undefined;
  }
  return obj;
}

function printJson(io: Io, value: unknown): void {
  JSON.stringify(value, null, 2)
    .split("\n")
    .forEach((l) => io.out(l));
}

/** Columns padded to their widest cell, the header first. */
export function alignedTable(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  return [head, ...rows].map((cells) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd());
}

const text = (v: unknown): string => (v === undefined || v === null ? "" : typeof v === "string" ? v : JSON.stringify(v));

/** statusDetails, the progress first: receive 1024/4096 -> "25% (1024/4096)". */
function progressOf(details: unknown): { progress: string; reason: string; rest: string } {
  const d = typeof details === "object" && details !== null ? (details as JsonObject) : {};
  const m = /^(\d+)\/(\d+)$/.exec(text(d["receive"]));
  const progress = m ? `${Math.floor((100 * Number(m[1])) / Math.max(1, Number(m[2])))}% (${m[1]}/${m[2]})` : "";
  const reason = text(d["reason"]);
  const rest = Object.entries(d)
    .filter(([k]) => k !== "receive" && k !== "reason")
    .map(([k, v]) => `${k}=${text(v)}`)
    .join(" ");
  return { progress, reason, rest };
}

async function create(a: Args, io: Io): Promise<number> {
  const things = a.list("thing");
  const file = a.string("file") ?? "";
  // Local problems are the user's, said as such before anything reaches the cloud.
  checkInput(file, "");
  const key = a.string("key");
  if (key !== undefined) checkPrivateKeyFile(key);
  const deltaFrom = a.string("delta-from");
  if (deltaFrom !== undefined) checkInput(deltaFrom, "");
  const request: JsonObject = {
    file: resolve(file),
    things,
    ...a.fields({ protocol: "protocol", format: "format", "job-id": "jobId", version: "version", product: "productKey", certfile: "certfile", filepath: "filepath", "file-url": "enosFileUrl" }),
  };
  if (key !== undefined) request["key"] = resolve(key);
  if (deltaFrom !== undefined) request["deltaFrom"] = resolve(deltaFrom);
  const base = await findControl(io, { control: a.string("control"), data: a.string("data") });
  if (base === undefined) return 1;
  const answer = await control(io, base, "POST", "/jobs", request);
  if (!answer) return 1;
  io.out(`created job ${String(answer["jobId"])} for ${things.join(", ")}`);
  printJson(io, answer["document"]);
  return 0;
}

async function list(a: Args, io: Io): Promise<number> {
  const base = await findControl(io, { control: a.string("control"), data: a.string("data") });
  if (base === undefined) return 1;
  const answer = await control(io, base, "GET", "/jobs");
  if (!answer) return 1;
  const jobs = Array.isArray(answer["jobs"]) ? (answer["jobs"] as JsonObject[]) : [];
  if (jobs.length === 0) {
    io.out("no jobs");
    return 0;
  }
  const rows = jobs.map((job) => [text(job["jobId"]), text(job["status"]), text(job["format"]), Array.isArray(job["targets"]) ? (job["targets"] as unknown[]).map(text).join(",") : ""]);
  for (const line of alignedTable(["job", "status", "format", "targets"], rows)) io.out(line);
  return 0;
}

async function describe(a: Args, io: Io): Promise<number> {
  const id = a.positionals[0] ?? "";
  const base = await findControl(io, { control: a.string("control"), data: a.string("data") });
  if (base === undefined) return 1;
  const answer = await control(io, base, "GET", `/jobs/${encodeURIComponent(id)}`);
  if (!answer) return 1;
  const job = answer["job"];
  const executions = answer["executions"];
  if (typeof job === "object" && job !== null && Array.isArray(executions)) {
    const j = job as JsonObject;
    io.out(`job ${text(j["jobId"])}: ${text(j["status"])}`);
    io.out("");
    const rows = (executions as JsonObject[]).map((e) => {
      const p = progressOf(e["statusDetails"]);
      return [text(e["thingName"]), text(e["status"]), p.progress, p.reason, p.rest];
    });
    if (rows.length === 0) io.out("no executions");
    else for (const line of alignedTable(["thing", "status", "progress", "reason", "statusDetails"], rows)) io.out(line);
    io.out("");
    io.out("document:");
    printJson(io, j["document"]);
  } else {
    printJson(io, answer);
  }
  return 0;
}

const GROUP: Group = {
  name: "job",
  subcommands: {
    parse: { spec: PARSE, run: (args, io) => withArgsSync(PARSE, args, io, (a) => parse(a, io)) },
    document: { spec: JOB_DOCUMENT, run: jobDocumentCommand },
    create: { spec: CREATE, run: (args, io) => withArgs(CREATE, args, io, (a) => create(a, io)) },
    list: { spec: LIST, run: (args, io) => withArgs(LIST, args, io, (a) => list(a, io)) },
    describe: { spec: DESCRIBE, run: (args, io) => withArgs(DESCRIBE, args, io, (a) => describe(a, io)) },
  },
};

export function jobCommand(args: string[], io: Io): number | Promise<number> {
  return runGroup(GROUP, args, io);
}
