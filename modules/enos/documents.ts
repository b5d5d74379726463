/**
 * The EnOS firmware upgrade push, as a device receives it on `/sys/{pk}/{dk}/ota/device/upgrade`:
 *
 *   {"id": "123", "version": "1.0", "method": "ota.device.upgrade",
 *    "params": {"version": "v1.0", "sign": "<hex>", "signMethod": "md5", "fileUrl": "...", "fileSize": 1024}}
 *
 * Field names as in EnvisionIot/enos-device-sdk-python (OtaUpgradeCommand.get_firmware_info:
 * params.version, signMethod, sign, fileUrl, fileSize) and the EnOS device-connection guide.
 * fileUrl comes in three forms:
 * - an http(s) URL: fetched as it is;
 * - `enos-connect://...` (newer EnOS): a file the EnOS HTTP broker serves to a logged-in device
 *   (`/multipart/sys/{pk}/{dk}/file/download?sessionId&fileUri&category=ota`); the plan carries
 *   it as `fileUri` and the EnOS channel makes the download URL (modules/enos/files.ts);
 * - a path relative to that service (older offers, "/1b30e0ea83002000/ota/kadak13"): resolved
 *   against `options.fileBase` when one is configured (RFC 3986 reference resolution: an
 *   absolute path replaces the base's path), otherwise carried as `fileUri` like enos-connect.
 * Any other scheme is refused.
 *
 * `sign` is a digest (md5 or sha256, by signMethod), not a signature: like the other unsigned
 * formats, the plan is refused unless `allowUnsigned`. The method name is not checked (EnOS SDKs
 * differ; dispatch is by topic), only that it is a string when present.
 */
import { isOtaError } from "../errors.ts";
import { formatHttpUrl, parseHttpUrl, resolveLocation, type HttpUrl } from "../transfer/url.ts";
import {
  MAX_URL_LENGTH,
  checkMaxSize,
  fileSize,
  hexDigest,
  httpUrl,
  invalid,
  isObject,
  messageObject,
  refuse,
  show,
  text,
} from "../jobs/checks.ts";
import type { ParseResult, UpdatePlan } from "../jobs/plan.ts";

export interface EnosUpgradeOptions {
  /** Absolute http(s) URL that relative fileUrls are resolved against. */
  fileBase?: string;
  /** The largest image this device takes; larger files are refused. */
  maxSize?: number;
  /** Development devices only: take upgrades that carry a digest but no signature. */
  allowUnsigned?: boolean;
}

const MAX_ID_LENGTH = 64;

function messageId(v: unknown): string {
  if (v === undefined) refuse("id is missing");
  if (typeof v !== "string") refuse(`id must be a string, got ${show(v)}`);
  if (v.length === 0 || v.length > MAX_ID_LENGTH) refuse(`id is ${v.length} characters; it must have 1 to ${MAX_ID_LENGTH}`);
  if (!/^[\x21-\x7e]+$/.test(v)) refuse(`id ${show(v)} must be printable ASCII without spaces`);
  return v;
}

function fileBaseOf(v: unknown): HttpUrl | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "string") refuse(`options.fileBase must be a string, got ${show(v)}`);
  try {
    return parseHttpUrl(v);
  } catch (e) {
    if (isOtaError(e)) refuse(`options.fileBase: ${e.message}`);
    throw e;
  }
}

function fileUrlOf(v: unknown, base: HttpUrl | undefined): { url: string } | { fileUri: string } {
  const path = "params.fileUrl";
  if (v === undefined) refuse(`${path} is missing`);
  if (typeof v !== "string") refuse(`${path} must be a string, got ${show(v)}`);
  if (v.length === 0) refuse(`${path} is empty`);
  if (v.length > MAX_URL_LENGTH) refuse(`${path} is ${v.length} characters; at most ${MAX_URL_LENGTH}`);
  if (/[\s\x00-\x1f\x7f]/.test(v)) refuse(`${path} has spaces or control characters`);
  if (v.startsWith("enos-connect://")) {
    if (v.length === "enos-connect://".length) refuse(`${path} ${show(v)} names no file`);
    return { fileUri: v };
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(v)) return { url: httpUrl(v, path) };
  if (base === undefined) return { fileUri: v };
  try {
    return { url: formatHttpUrl(resolveLocation(base, v)) };
  } catch (e) {
    if (isOtaError(e)) refuse(`${path} ${show(v)} does not resolve against the file base (${e.message})`);
    throw e;
  }
}

export function parseEnosUpgrade(payload: string | Uint8Array, options: EnosUpgradeOptions = {}): ParseResult {
  let jobId: string | undefined;
  try {
    if (!isObject(options)) refuse("options must be an object");
    const maxSize = checkMaxSize(options.maxSize);
    const base = fileBaseOf(options.fileBase);
    if (options.allowUnsigned !== undefined && typeof options.allowUnsigned !== "boolean") {
      refuse(`options.allowUnsigned must be true or false, got ${show(options.allowUnsigned)}`);
    }
    const message = messageObject(payload);
    jobId = messageId(message.id);
    if (message.version !== undefined && typeof message.version !== "string") refuse(`version must be a string, got ${show(message.version)}`);
    if (message.method !== undefined && typeof message.method !== "string") refuse(`method must be a string, got ${show(message.method)}`);
    const params = message.params;
    if (params === undefined) refuse("params is missing");
    if (!isObject(params)) refuse(`params must be an object, got ${show(params)}`);

    if (params.version === undefined) refuse("params.version is missing");
    const version = text(params.version, "params.version", 64);
    const method = params.signMethod;
    if (method === undefined) refuse("params.signMethod is missing");
    if (typeof method !== "string" || !/^(md5|sha256)$/i.test(method)) refuse(`params.signMethod must be "md5" or "sha256", got ${show(method)}`);
    const algorithm = method.toLowerCase() === "md5" ? "md5" : "sha256";
    if (params.sign === undefined) refuse("params.sign is missing");
    const hex = hexDigest(params.sign, "params.sign", algorithm === "md5" ? 32 : 64, algorithm === "md5" ? "an MD5" : "a SHA-256");
    const size = fileSize(params.fileSize, "params.fileSize", false, maxSize);
    const file = fileUrlOf(params.fileUrl, base);
    if (options.allowUnsigned !== true) refuse(`EnOS upgrades carry only a ${algorithm} digest, no signature: unsigned document on a production device`);

    const plan: UpdatePlan = { jobId, format: "enos", protocol: "http", size, ...file, version, digest: { algorithm, hex } };
    return { kind: "plan", plan };
  } catch (e) {
    return invalid(e, jobId);
  }
}
