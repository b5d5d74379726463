/**
 * EnOS device identity for the local cloud (Node only): the devices and products it knows with
 * their secrets, the MQTT login check (modules/enos/login.ts has the formulas and sources), and
 * the HTTP broker's sessions.
 *
 * - MQTT: a CONNECT that presents an EnOS login (a client id "C|securemode=...|" or a user name
 *   "DK&PK") is checked: a known device, securemode 2 signed with its device secret or 3 with its
 *   product's secret, sha256 only; anything else is refused (CONNACK 4). A registered device's
 *   topics (/sys/PK/DK/...) are then only for a client logged in as that device. Clients that
 *   present no EnOS login (AWS things, and EnOS devices never registered here, for local use)
 *   are not held to these rules.
 * - HTTP: `POST /auth/PK/DK` {signMethod, lifetime, sign} answers {code: 200, message, data:
 *   {sessionId}}; a session lasts `lifetime` ms after its last use (EnOS asks the device to log in
 *   again when it was silent that long), and belongs to one device.
 *
 * Choices where EnOS says nothing: the login timestamp is not checked against the clock; a bad
 * HTTP login is answered 401 {code: 401, message}; secrets made here are 32 random hex digits.
 * Registrations are kept in `file` (JSON) when one is given.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import type { BrokerGuard, GuardedClient } from "./embedded-broker.ts";

export interface EnosDeviceIdentity {
  productKey: string;
  deviceKey: string;
  deviceSecret: string;
  productSecret: string;
}

interface Session {
  productKey: string;
  deviceKey: string;
  lifetime: number;
  lastUse: number;
}

interface Saved {
  products: Record<string, string>;
  devices: Record<string, string>;
}

/** Product and device keys as EnOS makes them, and as the login strings can carry them. */
const KEY = /^[A-Za-z0-9_.:-]{1,128}$/;
const LOGIN_CLIENT_ID = /^([^|]{1,64})\|securemode=([0-9]+),signmethod=([A-Za-z0-9]+),timestamp=([0-9]{1,16})\|$/;
const MAX_LIFETIME = 24 * 3600 * 1000;

function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

function secret(): string {
  return randomBytes(16).toString("hex");
}

export class EnosIdentities {
  readonly #products = new Map<string, string>();
  /** "PK/DK" -> device secret. */
  readonly #devices = new Map<string, string>();
  readonly #sessions = new Map<string, Session>();
  readonly #file: string | undefined;
  readonly #now: () => number;

  constructor(options: { file?: string; now?: () => number } = {}) {
    this.#file = options.file;
    this.#now = options.now ?? Date.now;
    if (this.#file !== undefined) this.#load(this.#file);
  }

  /** Registers a device (its product too), keeping secrets it already has unless new ones are given. */
  register(productKey: string, deviceKey: string, secrets: { deviceSecret?: string; productSecret?: string } = {}): EnosDeviceIdentity {
    for (const [what, key] of [["product key", productKey], ["device key", deviceKey]] as const) {
      if (typeof key !== "string" || !KEY.test(key)) throw new Error(`${what} ${JSON.stringify(key)}: [A-Za-z0-9_.:-]{1,128}`);
    }
    for (const [what, s] of [["device secret", secrets.deviceSecret], ["product secret", secrets.productSecret]] as const) {
      if (s !== undefined && (typeof s !== "string" || !/^[\x21-\x7e]{1,256}$/.test(s))) throw new Error(`${what}: 1 to 256 printable characters, no spaces`);
    }
    const productSecret = secrets.productSecret ?? this.#products.get(productKey) ?? secret();
    const deviceSecret = secrets.deviceSecret ?? this.#devices.get(`${productKey}/${deviceKey}`) ?? secret();
    this.#products.set(productKey, productSecret);
    this.#devices.set(`${productKey}/${deviceKey}`, deviceSecret);
    this.#save();
    return { productKey, deviceKey, deviceSecret, productSecret };
  }

  identity(productKey: string, deviceKey: string): EnosDeviceIdentity | undefined {
    const deviceSecret = this.#devices.get(`${productKey}/${deviceKey}`);
    const productSecret = this.#products.get(productKey);
    return deviceSecret === undefined || productSecret === undefined ? undefined : { productKey, deviceKey, deviceSecret, productSecret };
  }

  /** Why an MQTT login is refused, or undefined when it holds (or is no EnOS login at all). */
  checkMqttLogin(clientId: string, username: string | undefined, password: Uint8Array | undefined): string | undefined {
    const login = LOGIN_CLIENT_ID.exec(clientId);
    const claimsEnos = login !== null || clientId.includes("|securemode=") || (username !== undefined && username.includes("&"));
    if (!claimsEnos) return undefined;
    if (login === null) return "EnOS login: the client id must be {clientId}|securemode={2|3},signmethod=sha256,timestamp={ms}|";
    const [, id, mode, method, timestamp] = login;
    if (method !== "sha256") return `EnOS login: signmethod ${method} is not supported (sha256)`;
    if (mode !== "2" && mode !== "3") return `EnOS login: securemode ${mode} is not 2 (device secret) or 3 (product secret)`;
    const parts = username?.split("&") ?? [];
    if (parts.length !== 2 || !parts[0] || !parts[1]) return "EnOS login: the user name must be {deviceKey}&{productKey}";
    const [deviceKey, productKey] = parts as [string, string];
    const known = this.identity(productKey, deviceKey);
    if (!known) return `EnOS login: no device ${deviceKey} in product ${productKey}`;
    const signWith = mode === "2" ? known.deviceSecret : known.productSecret;
    const expected = sha256Hex(`clientId${id}deviceKey${deviceKey}productKey${productKey}timestamp${timestamp}${signWith}`).toUpperCase();
    const given = password === undefined ? "" : Buffer.from(password).toString("utf8");
    if (given !== expected) return `EnOS login: the password is not the securemode ${mode} signature of device ${deviceKey}`;
    return undefined;
  }

  /** The broker's rules for EnOS clients (see the file's comment). */
  guard(): BrokerGuard {
    const owner = (topic: string): string | undefined => {
      const levels = topic.split("/");
      if (levels[0] !== "" || (levels[1] !== "sys" && levels[1] !== "ext") || levels.length < 4) return undefined;
      const [productKey = "", deviceKey = ""] = levels[1] === "sys" ? [levels[2], levels[3]] : [levels[3], levels[4]];
      return this.#devices.has(`${productKey}/${deviceKey}`) ? `${deviceKey}&${productKey}` : undefined;
    };
    const topicRule = (client: GuardedClient, topic: string): string | undefined => {
      const user = owner(topic);
      if (user === undefined || client.username === user) return undefined;
      return `${topic} belongs to EnOS device ${user.replace("&", " of product ")}, and this client did not log in as it`;
    };
    return {
      connect: (client, password) => this.checkMqttLogin(client.id, client.username, password),
      publish: topicRule,
      subscribe: topicRule,
    };
  }

  /** `POST /auth/PK/DK`: the session id, or why not. */
  httpLogin(productKey: string, deviceKey: string, body: unknown): { sessionId: string } | { status: number; reason: string } {
    if (typeof body !== "object" || body === null || Array.isArray(body)) return { status: 400, reason: "the body must be a JSON object {signMethod, lifetime, sign}" };
    const b = body as Record<string, unknown>;
    if (b["signMethod"] !== "sha256") return { status: 400, reason: `signMethod ${JSON.stringify(b["signMethod"])} is not supported (sha256)` };
    const lifetime = typeof b["lifetime"] === "string" && /^[0-9]{1,9}$/.test(b["lifetime"]) ? Number(b["lifetime"]) : b["lifetime"];
    if (typeof lifetime !== "number" || !Number.isSafeInteger(lifetime) || lifetime <= 0 || lifetime > MAX_LIFETIME) {
      return { status: 400, reason: `lifetime must be 1 to ${MAX_LIFETIME} ms` };
    }
    const known = this.identity(productKey, deviceKey);
    if (!known) return { status: 401, reason: `no device ${deviceKey} in product ${productKey}` };
    const expected = sha256Hex(`deviceKey${deviceKey}lifetime${lifetime}productKey${productKey}signMethodsha256${known.deviceSecret}`);
    if (typeof b["sign"] !== "string" || b["sign"].toLowerCase() !== expected) return { status: 401, reason: `the sign is not device ${deviceKey}'s signature` };
    const sessionId = randomUUID();
    this.#sessions.set(sessionId, { productKey, deviceKey, lifetime, lastUse: this.#now() });
    return { sessionId };
  }

  /** Why `sessionId` may not act for the device, or undefined (and the session is used now). */
  useSession(sessionId: string | null, productKey: string, deviceKey: string): string | undefined {
    const s = sessionId === null ? undefined : this.#sessions.get(sessionId);
    if (!s) return "no such session: log in with POST /auth/{productKey}/{deviceKey}";
    const now = this.#now();
    if (now - s.lastUse > s.lifetime) {
      this.#sessions.delete(sessionId as string);
      return `the session expired (unused for more than ${s.lifetime} ms): log in again`;
    }
    if (s.productKey !== productKey || s.deviceKey !== deviceKey) return `the session is device ${s.deviceKey}'s of product ${s.productKey}`;
    s.lastUse = now;
    return undefined;
  }

  /** Forgets every HTTP session, as a restarted broker would: devices must log in again. */
  endSessions(): void {
    this.#sessions.clear();
  }

  #load(file: string): void {
    let saved: Saved;
    try {
      saved = JSON.parse(readFileSync(file, "utf8")) as Saved;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    for (const [k, v] of Object.entries(saved.products ?? {})) if (typeof v === "string") this.#products.set(k, v);
    for (const [k, v] of Object.entries(saved.devices ?? {})) if (typeof v === "string") this.#devices.set(k, v);
  }

  #save(): void {
    if (this.#file === undefined) return;
    const saved: Saved = { products: Object.fromEntries(this.#products), devices: Object.fromEntries(this.#devices) };
    const temp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(saved, null, 1), { mode: 0o600 });
    renameSync(temp, this.#file);
  }
}
