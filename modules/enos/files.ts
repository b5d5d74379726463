/**
 * The EnOS HTTP broker as a file source, the device side: it logs in (`POST /auth/PK/DK`, see
 * login.ts) for a session id and makes the download URL of an OTA file,
 *
 *   {service}/multipart/sys/PK/DK/file/download?sessionId=..&fileUri=..&category=ota
 *
 * which the downloader then fetches with Range requests like any other (EnOS device-connection
 * guide, "Downloading Files"; the file URI is the offer's fileUrl, `enos-connect://...` or a
 * path). A session is reused until `lifetime` ms passed since it was last used, or the server
 * refused it; then the next URL comes with a fresh login.
 *
 * The login answer is {code, message, data: {sessionId}} (EnOS's Java SDK AuthResponseBody: code
 * 200 is success); anything else, a status other than 200, a body over 4 KB or a session id that
 * is not 1 to 256 printable characters ends in an OtaError naming what was wrong.
 */
import { OtaError, isOtaError } from "../errors.ts";
import type { Clock } from "../ports/clock.ts";
import type { DigestFactory } from "../ports/digest.ts";
import type { Http, HttpResponse } from "../ports/http.ts";
import { utf8Decode, utf8Encode } from "../codec/utf8.ts";
import { concatBytes } from "../codec/bytes.ts";
import { readJsonObject } from "../jobs/json-object.ts";
import { formatHttpUrl, parseHttpUrl } from "../transfer/url.ts";
import { enosHttpAuthBody, type EnosCredentials } from "./login.ts";

export interface EnosFileServiceOptions {
  http: Http;
  clock: Clock;
  digests: DigestFactory;
  credentials: EnosCredentials;
  /** The HTTP broker's origin, e.g. https://iot-http.eu.envisioniot.com. */
  service: string;
  /** Session lifetime asked for, ms (EnOS's default 300000). */
  lifetime?: number;
  /** PEM CA certificates for an https service. */
  ca?: string;
  /** Milliseconds without a byte before the login request fails. */
  timeout?: number;
}

const MAX_ANSWER = 4096;

async function readSmall(response: HttpResponse): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const chunk = await response.read();
    if (chunk === undefined) break;
    length += chunk.length;
    if (length > MAX_ANSWER) {
      response.close();
      throw new OtaError("http-protocol", `the EnOS login answer is over ${MAX_ANSWER} bytes`);
    }
    parts.push(chunk);
  }
  return concatBytes(parts);
}

export class EnosFileService {
  readonly #o: EnosFileServiceOptions;
  readonly #origin: string;
  #session: { id: string; lastUse: number } | undefined;

  constructor(o: EnosFileServiceOptions) {
    this.#o = o;
    const u = parseHttpUrl(o.service);
    // The broker's origin: a path or query on the configured URL would end up inside every request.
    this.#origin = formatHttpUrl({ ...u, path: "/" }).slice(0, -1);
  }

  get lifetime(): number {
    return this.#o.lifetime ?? 300_000;
  }

  /** The URL that downloads `fileUri` now; `refused`: the last one was refused, log in again. */
  async downloadUrl(fileUri: string, refused: boolean): Promise<string> {
    const now = this.#o.clock.now();
    if (refused || !this.#session || now - this.#session.lastUse >= this.lifetime) this.#session = { id: await this.#login(), lastUse: now };
    this.#session.lastUse = now;
    const { productKey, deviceKey } = this.#o.credentials;
    const query = `sessionId=${encodeURIComponent(this.#session.id)}&fileUri=${encodeURIComponent(fileUri)}&category=ota`;
    return `${this.#origin}/multipart/sys/${encodeURIComponent(productKey)}/${encodeURIComponent(deviceKey)}/file/download?${query}`;
  }

  async #login(): Promise<string> {
    const { credentials, digests } = this.#o;
    const body = utf8Encode(enosHttpAuthBody(credentials, this.lifetime, digests));
    const url = `${this.#origin}/auth/${encodeURIComponent(credentials.productKey)}/${encodeURIComponent(credentials.deviceKey)}`;
    let response: HttpResponse;
    try {
      response = await this.#o.http.request({ method: "POST", url, headers: { "content-type": "application/json" }, body, ca: this.#o.ca, timeout: this.#o.timeout ?? 30_000 });
    } catch (e) {
      throw isOtaError(e) ? new OtaError(e.code, `EnOS login: ${e.message}`) : e;
    }
    const answer = readJsonObject(utf8Decode(await readSmall(response)));
    const reason = typeof answer === "string" ? answer : typeof answer["message"] === "string" && answer["message"] !== "" ? answer["message"].slice(0, 200) : undefined;
    if (response.status !== 200 || typeof answer === "string" || answer["code"] !== 200) {
      throw new OtaError("http-status", `EnOS login refused (HTTP ${response.status}${typeof answer === "object" ? `, code ${String(answer["code"])}` : ""})${reason ? `: ${reason}` : ""}`);
    }
    const data = answer["data"];
    const id = typeof data === "object" && data !== null ? (data as Record<string, unknown>)["sessionId"] : undefined;
    if (typeof id !== "string" || id.length === 0 || id.length > 256 || !/^[\x21-\x7e]+$/.test(id)) {
      throw new OtaError("http-protocol", "the EnOS login answer has no usable data.sessionId");
    }
    return id;
  }
}
