/**
 * How an EnOS device proves who it is, without EnOS's SDK (EnOS device-connection guide,
 * "Connecting to EnOS" / non-SDK login, and "Establishing HTTP-based Connection").
 *
 * MQTT CONNECT, for client id C, device key DK, product key PK, time T (Unix ms):
 *   client id  "C|securemode=M,signmethod=sha256,timestamp=T|"
 *   user name  "DK&PK"
 *   password   upper-case hex of sha256("clientId" C "deviceKey" DK "productKey" PK "timestamp" T S)
 * where S is the device secret (securemode 2, static activation) or the product secret
 * (securemode 3, dynamic activation). C is the device's own identifier, at most 64 characters;
 * the guide's worked example (C 123456, DK test, PK 654321, T 1548753362502, S abcdefg) gives
 * B99032D49C706F7B27B22AB5CD2DD3C56A31E1BCBBC83BA0A2A6BB3272FBB166.
 *
 * HTTP broker, `POST /auth/PK/DK` with JSON {signMethod: "sha256", lifetime, sign}: sign is the
 * hex sha256 of "deviceKey" DK "lifetime" L "productKey" PK "signMethod" "sha256" S (the
 * parameters in alphabetical order, then the device secret, as EnOS's Java SDK signs it); the
 * answer carries data.sessionId, valid while the device uses it at least once per `lifetime` ms.
 * The guide's examples write the sign in lower case; EnOS's MQTT sign is upper case; this module
 * sends lower case and the local cloud accepts either.
 */
import { toHex } from "../codec/bytes.ts";
import { OtaError } from "../errors.ts";
import type { DigestFactory } from "../ports/digest.ts";
import { utf8Encode } from "../codec/utf8.ts";
import type { MqttLogin } from "../agent/cloud.ts";

export type EnosSecureMode = 2 | 3;

export interface EnosCredentials {
  productKey: string;
  deviceKey: string;
  /** Static activation (securemode 2): the device's own secret. */
  deviceSecret?: string;
  /** Dynamic activation (securemode 3): the product's secret, used when there is no device secret. */
  productSecret?: string;
  /** The device's identifier in the MQTT client id (default: the device key). */
  clientId?: string;
}


const MAX_CLIENT_ID = 64;

function sha256Hex(digests: DigestFactory, text: string): string {
  const d = digests.create("sha256");
  d.update(utf8Encode(text));
  return toHex(d.finish());
}

/** A key or id as EnOS can carry it between the separators of its login strings. */
function field(value: unknown, what: string, max: number, separators = false): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    throw new OtaError("bad-argument", `EnOS ${what} must be 1 to ${max} characters, got ${typeof value === "string" ? value.length : typeof value}`);
  }
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f || (!separators && (value[i] === "|" || value[i] === "&" || value[i] === ","))) {
      throw new OtaError("bad-argument", `EnOS ${what} holds a character its login cannot carry (${separators ? "space or control" : "space, control, | & or ,"}) at index ${i}`);
    }
  }
  return value;
}

/** Which secret signs and the securemode that names it. */
export function enosSecret(c: EnosCredentials): { secret: string; secureMode: EnosSecureMode } {
  if (c.deviceSecret !== undefined) return { secret: field(c.deviceSecret, "device secret", 256, true), secureMode: 2 };
  if (c.productSecret !== undefined) return { secret: field(c.productSecret, "product secret", 256, true), secureMode: 3 };
  throw new OtaError("bad-argument", "EnOS login needs a device secret (securemode 2) or a product secret (securemode 3)");
}

/** The CONNECT fields of an EnOS login at `timestamp` (Unix ms). */
export function enosMqttLogin(c: EnosCredentials, timestamp: number, digests: DigestFactory): MqttLogin {
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new OtaError("bad-argument", `EnOS login timestamp must be Unix milliseconds, got ${timestamp}`);
  const productKey = field(c.productKey, "product key", 128);
  const deviceKey = field(c.deviceKey, "device key", 128);
  const id = field(c.clientId ?? deviceKey, "client id", MAX_CLIENT_ID);
  const { secret, secureMode } = enosSecret(c);
  const content = `clientId${id}deviceKey${deviceKey}productKey${productKey}timestamp${timestamp}`;
  return {
    clientId: `${id}|securemode=${secureMode},signmethod=sha256,timestamp=${timestamp}|`,
    username: `${deviceKey}&${productKey}`,
    password: sha256Hex(digests, content + secret).toUpperCase(),
  };
}

/** The body of the HTTP broker's `POST /auth/PK/DK` (device secret only: EnOS's SDK signs HTTP with it). */
export function enosHttpAuthBody(c: EnosCredentials, lifetime: number, digests: DigestFactory): string {
  if (!Number.isSafeInteger(lifetime) || lifetime <= 0) throw new OtaError("bad-argument", `EnOS session lifetime must be a positive number of ms, got ${lifetime}`);
  const productKey = field(c.productKey, "product key", 128);
  const deviceKey = field(c.deviceKey, "device key", 128);
  if (c.deviceSecret === undefined) throw new OtaError("bad-argument", "the EnOS HTTP broker signs with the device secret, and this device has none");
  const secret = field(c.deviceSecret, "device secret", 256, true);
  const sign = sha256Hex(digests, `deviceKey${deviceKey}lifetime${lifetime}productKey${productKey}signMethodsha256${secret}`);
  return JSON.stringify({ signMethod: "sha256", lifetime, sign });
}
