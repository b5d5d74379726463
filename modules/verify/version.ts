/**
 * Firmware versions as the clouds and images write them:
 * - semantic versions "1.0.1", "v1.0.2" (nRF fwversion), "2.1" (patch 0), with semver
 *   pre-release ordering ("1.0.0-rc.1" < "1.0.0") and build metadata ignored;
 * - AWS's 32-bit AppVersion32, written "0x%08x" of major << 24 | minor << 16 | build
 *   (the `updatedBy` status detail of AWS OTA jobs).
 */
import { OtaError } from "../errors.ts";

export interface Version {
  major: number;
  minor: number;
  patch: number;
  /** Pre-release identifiers; empty for a release. */
  pre: (string | number)[];
}

// RegExps are made per call, never kept at module level: in flash (preload) a RegExp has no
// match data, and Moddable's XS (8.2.3) crashes in exec's temporary copy once a collection runs.
const NUMBER = () => /^(0|[1-9][0-9]*)$/;
const IDENT = () => /^[0-9A-Za-z-]+$/;

function part(text: string, what: string, source: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!NUMBER().test(text) || Number(text) > max) throw new OtaError("malformed", `version '${source}': ${what} '${text}' is not a number without leading zeros`);
  return Number(text);
}

export function parseVersion(source: string): Version {
  if (typeof source !== "string" || source.length === 0 || source.length > 64) {
    throw new OtaError("malformed", `version must be a string of 1 to 64 characters`);
  }
  if (/^0x[0-9a-fA-F]{8}$/.test(source)) {
    const n = parseInt(source.slice(2), 16);
    return { major: n >>> 24, minor: (n >>> 16) & 0xff, patch: n & 0xffff, pre: [] };
  }
  const text = source[0] === "v" ? source.slice(1) : source;
  const plus = text.indexOf("+");
  const core = plus < 0 ? text : text.slice(0, plus);
  if (plus >= 0 && !text.slice(plus + 1).split(".").every((p) => IDENT().test(p))) {
    throw new OtaError("malformed", `version '${source}': bad build metadata`);
  }
  const dash = core.indexOf("-");
  const numbers = (dash < 0 ? core : core.slice(0, dash)).split(".");
  if (numbers.length < 2 || numbers.length > 3) throw new OtaError("malformed", `version '${source}' is not major.minor[.patch]`);
  const pre = dash < 0 ? [] : core.slice(dash + 1).split(".").map((id) => {
    if (!IDENT().test(id)) throw new OtaError("malformed", `version '${source}': bad pre-release identifier '${id}'`);
    return /^[0-9]+$/.test(id) ? part(id, "pre-release number", source) : id;
  });
  return {
    major: part(numbers[0], "major", source),
    minor: part(numbers[1], "minor", source),
    patch: numbers.length === 3 ? part(numbers[2], "patch", source) : 0,
    pre,
  };
}

/** -1, 0 or 1 as a is older than, the same as, or newer than b (semver precedence). */
export function compareVersions(a: Version, b: Version): -1 | 0 | 1 {
  for (const k of ["major", "minor", "patch"] as const) if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  if (!a.pre.length || !b.pre.length) return a.pre.length === b.pre.length ? 0 : a.pre.length ? -1 : 1;
  for (let i = 0; i < Math.min(a.pre.length, b.pre.length); i++) {
    const x = a.pre[i];
    const y = b.pre[i];
    if (x === y) continue;
    if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return a.pre.length === b.pre.length ? 0 : a.pre.length < b.pre.length ? -1 : 1;
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.patch}${v.pre.length ? "-" + v.pre.join(".") : ""}`;
}

/** AWS AppVersion32 as the agent reports it in `updatedBy`: "0x%08x". */
export function toAppVersion32(v: Version): string {
  if (v.major > 0xff || v.minor > 0xff || v.patch > 0xffff) {
    throw new OtaError("bad-argument", `${formatVersion(v)} does not fit AWS's 32-bit version (8.8.16 bits)`);
  }
  return "0x" + (((v.major << 24) | (v.minor << 16) | v.patch) >>> 0).toString(16).padStart(8, "0");
}

/** Refuses an image that is not strictly newer than the running firmware, saying which way. */
export function checkNewer(running: string, candidate: string): void {
  const order = compareVersions(parseVersion(candidate), parseVersion(running));
  if (order === 0) throw new OtaError("version-rejected", `image version ${candidate} is the version already running`);
  if (order < 0) throw new OtaError("version-rejected", `image version ${candidate} is older than the running ${running}: downgrade refused`);
}
