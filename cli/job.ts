/**
 * xs-ota job parse [--format aws|enos] [--prefer mqtt|http] [--file-base URL] [--max-size N]
 *                  [--allow-unsigned] [FILE|-]
 *
 * Reads one job message (a file, or stdin for "-" or no FILE) and parses it exactly as the device
 * does (modules/jobs): the plan as JSON (exit 0), "no job" (exit 0), or the refusal (exit 1).
 * Other `job` subcommands (create, list, describe) are not there yet.
 */
import { readFileSync } from "node:fs";
import type { Io } from "./main.ts";
import { parseAwsJobMessage } from "../modules/jobs/documents.ts";
import { parseEnosUpgrade } from "../modules/jobs/enos-documents.ts";
import type { ParseResult, TransferProtocol, UpdatePlan } from "../modules/jobs/plan.ts";

const USAGE = [
  "usage: xs-ota job parse [--format aws|enos] [--prefer mqtt|http] [--file-base URL] [--max-size N] [--allow-unsigned] [FILE|-]",
  "  --format aws    an AWS IoT Jobs message (notify-next or $next/get/accepted): afr_ota, nRF aws_fota, Zerynth (default)",
  "  --format enos   an EnOS ota/device/upgrade push; --file-base resolves a relative fileUrl",
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

function usage(io: Io, problem?: string): number {
  if (problem) io.err(`xs-ota job: ${problem}`);
  USAGE.forEach((l) => io.err(l));
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

function parse(args: string[], io: Io): number {
  const o = parseArgs(args);
  if (typeof o === "string") return usage(io, o);
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(o.file === "-" ? 0 : o.file));
  } catch (e) {
    io.err(`error: cannot read ${o.file === "-" ? "stdin" : o.file}: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
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

export function jobCommand(args: string[], io: Io): number {
  const [sub, ...rest] = args;
  if (sub === "parse") return parse(rest, io);
  if (sub === undefined || sub === "help" || sub === "--help") return usage(io);
  return usage(io, sub === "create" || sub === "list" || sub === "describe" ? `'job ${sub}' is not available yet` : `unknown subcommand '${sub}'`);
}
