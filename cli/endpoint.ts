/**
 * Where a running `xs-ota cloud` listens, written into its data folder as cloud.json, so that
 * the commands that talk to it (job, enos, sim) find it without --control/--broker even when it
 * runs on other ports, and never talk by accident to something else on the default port: before
 * anything is sent, the control URL must answer as an xs-ota cloud does.
 */
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_CONTROL_PORT } from "../cloud/server.ts";
import type { Io } from "./main.ts";

export const DEFAULT_DATA = ".xs-ota-cloud";
export const DEFAULT_CONTROL = `http://127.0.0.1:${DEFAULT_CONTROL_PORT}`;

export interface CloudEndpoint {
  pid: number;
  control: string;
  mqtt: string;
  mqtts?: string;
  https: string;
  http: string;
  ca: string;
}

export const endpointPath = (dataDir: string): string => join(dataDir, "cloud.json");

/** Temp file + rename: a reader sees the old file or the whole new one, never half of it. */
export function writeEndpoint(dataDir: string, endpoint: CloudEndpoint): void {
  const path = endpointPath(dataDir);
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, JSON.stringify(endpoint, null, 2) + "\n");
  renameSync(temp, path);
}

/** Removes the file only if it is still this process's (another cloud may have taken the folder). */
export function removeEndpoint(dataDir: string, pid = process.pid): void {
  if (readEndpoint(dataDir, { checkAlive: false })?.pid === pid) rmSync(endpointPath(dataDir), { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, run by someone else.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The endpoint a cloud left in DIR; undefined if none, unreadable, or its process is gone (a crash). */
export function readEndpoint(dataDir: string, o: { checkAlive?: boolean } = {}): CloudEndpoint | undefined {
  const path = endpointPath(dataDir);
  if (!existsSync(path)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, "utf8"));
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const e = value as Record<string, unknown>;
  const strings = ["control", "mqtt", "https", "http", "ca"].every((k) => typeof e[k] === "string");
  if (!strings || typeof e["pid"] !== "number") return undefined;
  const endpoint = value as CloudEndpoint;
  if (o.checkAlive !== false && !alive(endpoint.pid)) return undefined;
  return endpoint;
}

/**
 * The control URL to use: --control, else the cloud.json in --data, else the default port; and
 * checked to be an xs-ota cloud (GET /jobs answers JSON with a jobs array). Prints why not and
 * returns undefined when it is not.
 */
export async function findControl(io: Io, o: { control?: string; data?: string }): Promise<string | undefined> {
  const fromFile = o.control === undefined ? readEndpoint(o.data ?? DEFAULT_DATA)?.control : undefined;
  const base = (o.control ?? fromFile ?? DEFAULT_CONTROL).replace(/\/+$/, "");
  let res: Response;
  try {
    res = await fetch(`${base}/jobs`, { signal: AbortSignal.timeout(5_000) });
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : e instanceof Error ? e.message : String(e);
    io.err(`error: no xs-ota cloud at ${base}: start one with \`xs-ota cloud\`${o.control === undefined && fromFile === undefined ? "" : ` (${cause})`}`);
    return undefined;
  }
  let answer: unknown;
  try {
    answer = await res.json();
  } catch {
    io.err(`error: ${base} is not an xs-ota cloud (GET /jobs answered HTTP ${res.status} without JSON)`);
    return undefined;
  }
  const jobs = typeof answer === "object" && answer !== null ? (answer as Record<string, unknown>)["jobs"] : undefined;
  if (!res.ok || !Array.isArray(jobs)) {
    io.err(`error: ${base} is not an xs-ota cloud (GET /jobs answered HTTP ${res.status} without a jobs list)`);
    return undefined;
  }
  return base;
}
