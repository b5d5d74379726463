/**
 * What the device accepts before a single byte is written: a newer version, a security version
 * not below the device's minimum, and a signature unless the device is set up for development.
 * The minimum security version rises only when an update is confirmed, so a rolled-back image
 * never locks the device out of the version it falls back to.
 */
import type { StateStore } from "../ports/state-store.ts";
import type { LogLevel } from "../ports/system.ts";
import { OtaError } from "../errors.ts";
import type { ImageInfo } from "../ports/image-format.ts";
import { checkNewer } from "./version.ts";

const FLOOR_KEY = "ota.minsec";

/** The device's minimum security version (anti-rollback), kept in the StateStore. */
export class SecurityFloor {
  readonly #store: StateStore;
  constructor(store: StateStore) {
    this.#store = store;
  }

  get minimum(): number {
    const b = this.#store.get(FLOOR_KEY);
    return b && b.length === 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0) : 0;
  }

  check(secureVersion: number): void {
    const min = this.minimum;
    if (secureVersion < min) {
      throw new OtaError("security-version", `image security version ${secureVersion} is below the device minimum ${min}: anti-rollback refuses it`);
    }
  }

  /** After a confirmed update: the minimum becomes the new image's, never lower. */
  raise(secureVersion: number): void {
    if (!Number.isInteger(secureVersion) || secureVersion < 0 || secureVersion > 0xffffffff) {
      throw new OtaError("bad-argument", `security version ${secureVersion} is not a u32`);
    }
    if (secureVersion <= this.minimum) return;
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, secureVersion);
    this.#store.set(FLOOR_KEY, b);
  }
}

export interface CandidateContext {
  runningVersion: string;
  floor: SecurityFloor;
}

/**
 * Checks what an image's header declares (ImageFormat.parsePrefix) before anything is written:
 * newer than the running firmware, security version allowed. A format that declares no version
 * (a raw binary) is checked after the reboot instead, against the version it replaced.
 */
export function checkCandidate(info: ImageInfo, context: CandidateContext): ImageInfo {
  if (info.version !== undefined) checkNewer(context.runningVersion, info.version);
  if (info.secureVersion !== undefined) context.floor.check(info.secureVersion);
  return info;
}

/**
 * An image that comes without a signature: refused, unless the device was built with the
 * development switch `allowUnsigned`, and then with a warning every time.
 */
export function acceptUnsigned(allowUnsigned: boolean, log: (level: LogLevel, message: string) => void, what: string): void {
  if (!allowUnsigned) throw new OtaError("unsigned", `${what} has no signature and this device accepts only signed images`);
  log("warn", `accepting UNSIGNED ${what}: allowUnsigned is on, a development setting that must be off in production`);
}
