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
import { fsReason, readInput } from "./files.ts";
import { resolve } from "node:path";
import { DEFAULT_CONTROL_PORT } from "../cloud/server.ts";
import type { Io } from "./main.ts";
import { jobDocumentCommand } from "./job-document.ts";
import { parseAwsJobMessage } from "../modules/aws/documents.ts";
import { parseEnosUpgrade } from "../modules/enos/documents.ts";
import type { ParseResult, TransferProtocol, UpdatePlan } from "../modules/jobs/plan.ts";

const USAGE = [
  "usage: xs-ota job parse [--format aws|enos] [--prefer mqtt|http] [--file-base URL] [--max-size N] [--allow-unsigned] [FILE|-]",
  "  --format aws    an AWS IoT Jobs message (notify-next or $next/get/accepted): afr_ota, nRF aws_fota, Zerynth (default)",
  "  --format enos   an EnOS ota/device/upgrade push; --file-base resolves a relative fileUrl to a plain URL,",
  "                  without it the file comes through the EnOS HTTP broker's download, as enos-connect:// does",
  "  --prefer        the data plane to use when an AWS OTA job allows both (default mqtt)",
  "  --max-size N    refuse images larger than N bytes (the OTA slot size)",
  "  --allow-unsigned  take documents without a signature (development devices only)",
];

interface Options {
  format: "aws" | "enos";
  prefer?: TransferProtocol;
  fileBase?: string;
  maxSize?: number;
  allowUnsigned: boolean;
  file: string;
}

function usage(io: Io, problem?: string, all = false): number {
  if (problem) io.err(`xs-ota job: ${problem}`);
  USAGE.forEach((l) => io.err(l));
  if (all) CONTROL_USAGE.forEach((l) => io.err(l));
  return 2;
}

function parseArgs(args: string[]): Options | string {
  const o: Options = { format: "aws", allowUnsigned: false, file: "-" };
  let file: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const value = (): string | undefined => args[++i];
    if (a === "--format") {
      const v = value();
      if (v !== "aws" && v !== "enos") return `--format takes aws or enos, got ${v ?? "nothing"}`;
      o.format = v;
    } else if (a === "--prefer") {
      const v = value();
      if (v !== "mqtt" && v !== "http") return `--prefer takes mqtt or http, got ${v ?? "nothing"}`;
      o.prefer = v;
    } else if (a === "--file-base") {
      const v = value();
      if (v === undefined) return "--file-base needs a URL";
      o.fileBase = v;
    } else if (a === "--max-size") {
      const v = value();
      const n = v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n) || n <= 0) return `--max-size takes a positive number of bytes, got ${v ?? "nothing"}`;
      o.maxSize = n;
    } else if (a === "--allow-unsigned") {
      o.allowUnsigned = true;
    } else if (a.startsWith("--")) {
      return `unknown option '${a}'`;
    } else if (file === undefined) {
      file = a;
    } else {
      return `unexpected argument '${a}'`;
    }
  }
  if (file !== undefined) o.file = file;
  return o;
}

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

function parse(args: string[], io: Io): number {
  const o = parseArgs(args);
  if (typeof o === "string") return usage(io, o);
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

const CONTROL_USAGE = [
  "usage: xs-ota job create --thing T [--thing T2] --file FW.bin [--key KEY.pem] [--protocol http|mqtt] [--format aws|nrf|zerynth|enos] [--job-id ID] [--version V] [--product PK] [--certfile LABEL] [--filepath PATH] [--file-url enos-connect|path] [--control URL]",
  "  --certfile LABEL  the key label the device verifies the signature with (default signer.crt); --filepath PATH (default /fw)",
  "       xs-ota job list [--control URL]",
  "       xs-ota job describe ID [--control URL]",
];

function controlUsage(io: Io, problem: string): number {
  io.err(`xs-ota job: ${problem}`);
  USAGE.forEach((l) => io.err(l));
  CONTROL_USAGE.forEach((l) => io.err(l));
  return 2;
}

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

async function controlCommand(sub: "create" | "list" | "describe", args: string[], io: Io): Promise<number> {
  let base = `http://127.0.0.1:${DEFAULT_CONTROL_PORT}`;
  const things: string[] = [];
  const request: JsonObject = {};
  const positional: string[] = [];
  const names: Record<string, string> = {
    "--file": "file",
    "--key": "key",
    "--protocol": "protocol",
    "--format": "format",
    "--job-id": "jobId",
    "--version": "version",
    "--product": "productKey",
    "--certfile": "certfile",
    "--filepath": "filepath",
    "--file-url": "enosFileUrl",
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? "";
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const v = args[i + 1];
    if (v === undefined) return controlUsage(io, `${a} needs a value`);
    i++;
    if (a === "--control") base = v;
    else if (sub === "create" && a === "--thing") things.push(v);
    else if (sub === "create" && a in names) {
      const field = names[a] ?? a;
      request[field] = field === "file" || field === "key" ? resolve(v) : v;
    } else return controlUsage(io, `unknown option '${a}' for job ${sub}`);
  }
  if (sub === "create") {
    if (positional.length) return controlUsage(io, `unexpected argument '${positional[0] ?? ""}'`);
    if (things.length === 0) return controlUsage(io, "--thing is required");
    if (request["file"] === undefined) return controlUsage(io, "--file is required");
    if (request["protocol"] !== undefined && request["protocol"] !== "http" && request["protocol"] !== "mqtt") return controlUsage(io, `--protocol takes http or mqtt, got ${String(request["protocol"])}`);
    if (request["format"] !== undefined && !["aws", "nrf", "zerynth", "enos"].includes(String(request["format"]))) {
      return controlUsage(io, `--format takes aws, nrf, zerynth or enos, got ${String(request["format"])}`);
    }
    request["things"] = things;
    const answer = await control(io, base, "POST", "/jobs", request);
    if (!answer) return 1;
    io.out(`created job ${String(answer["jobId"])} for ${things.join(", ")}`);
    printJson(io, answer["document"]);
    return 0;
  }
  if (sub === "list") {
    if (positional.length) return controlUsage(io, `unexpected argument '${positional[0] ?? ""}'`);
    const answer = await control(io, base, "GET", "/jobs");
    if (!answer) return 1;
    const jobs = Array.isArray(answer["jobs"]) ? (answer["jobs"] as JsonObject[]) : [];
    if (jobs.length === 0) io.out("no jobs");
    for (const job of jobs) {
      const targets = Array.isArray(job["targets"]) ? (job["targets"] as string[]).join(",") : "";
      io.out(`${String(job["jobId"])}  ${String(job["status"] ?? job["format"] ?? "")}  ${targets}`);
    }
    return 0;
  }
  const [id, ...extra] = positional;
  if (id === undefined || extra.length) return controlUsage(io, "job describe takes one job ID");
  const answer = await control(io, base, "GET", `/jobs/${encodeURIComponent(id)}`);
  if (!answer) return 1;
  const job = answer["job"];
  const executions = answer["executions"];
  if (typeof job === "object" && job !== null && Array.isArray(executions)) {
    const j = job as JsonObject;
    io.out(`job ${String(j["jobId"])}: ${String(j["status"])}`);
    for (const e of executions as JsonObject[]) {
      const details = e["statusDetails"] === undefined ? "" : `  ${JSON.stringify(e["statusDetails"])}`;
      io.out(`  ${String(e["thingName"])}: ${String(e["status"])}${details}`);
    }
    io.out("document:");
    printJson(io, j["document"]);
  } else {
    printJson(io, answer);
  }
  return 0;
}

export function jobCommand(args: string[], io: Io): number | Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "parse") return parse(rest, io);
  if (sub === "document") return jobDocumentCommand(rest, io);
  if (sub === "create" || sub === "list" || sub === "describe") return controlCommand(sub, rest, io);
  if (sub === undefined || sub === "help" || sub === "--help") return usage(io, undefined, true);
  return usage(io, `unknown subcommand '${sub}'`, true);
}
