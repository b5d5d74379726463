/**
 * EnOS OTA as the agent's job channel: upgrade pushes answered on `_reply`, progress as steps
 * 0..100 and the failure codes (-1 upgrade, -2 download, -3 verification, -4 flash write), and
 * success as an inform of the new version. EnOS has no "next job" query: `requestNext` informs
 * the running version (which makes the cloud push an upgrade) and asks getversion.
 */
import type { Clock } from "../ports/clock.ts";
import type { Mqtt } from "../ports/mqtt.ts";
import type { ParseResult, UpdatePlan } from "../jobs/plan.ts";
import { EnosOtaClient, ENOS_STEP, ENOS_SUCCESS } from "./client.ts";
import { parseEnosUpgrade } from "./documents.ts";
import { compareVersions, parseVersion, type Version } from "../verify/version.ts";
import type { FailureStage, JobChannel, JobFailure } from "../agent/channel.ts";
import { OtaError } from "../errors.ts";
import type { EnosFileService } from "./files.ts";

export interface EnosChannelOptions {
  mqtt: Mqtt;
  clock: Clock;
  /** The HTTP broker's file download, for offers whose file is an enos-connect:// URI or a path on it. */
  files?: EnosFileService;
  productKey: string;
  deviceKey: string;
  maxSize: number;
  allowUnsigned: boolean;
  /** Base URL for a relative fileUrl (the EnOS file service). */
  fileBase?: string;
  /** The running version, informed at start and when asked for jobs. */
  version(): string;
  log?(message: string): void;
}

const STEP_FOR: Record<FailureStage, number> = Object.freeze({
  document: ENOS_STEP.upgradeFailed,
  download: ENOS_STEP.downloadFailed,
  verify: ENOS_STEP.verificationFailed,
  flash: ENOS_STEP.flashFailed,
  "self-test": ENOS_STEP.upgradeFailed,
  boot: ENOS_STEP.upgradeFailed,
});

export class EnosJobChannel implements JobChannel {
  readonly client: EnosOtaClient;
  readonly #o: EnosChannelOptions;
  #handler: ((result: ParseResult) => void) | undefined;
  #offers = 0;

  constructor(o: EnosChannelOptions) {
    this.#o = o;
    this.client = new EnosOtaClient({ mqtt: o.mqtt, clock: o.clock, productKey: o.productKey, deviceKey: o.deviceKey });
  }

  start(): Promise<void> {
    return this.client.start();
  }

  /**
   * Informs the running version (what makes the cloud push an upgrade) and asks getversion for
   * the versions on offer: the newest one above the running version is taken as an upgrade.
   */
  requestNext(): void {
    this.#quietly("inform", this.client.inform(this.#o.version()));
    this.client.getVersions().then(
      (list) => this.#offerNewest(list),
      (e: unknown) => this.#o.log?.(`EnOS getversion: ${String(e)}`),
    );
  }

  #offerNewest(list: unknown[]): void {
    const running = parseVersion(this.#o.version());
    let best: { entry: Record<string, unknown>; version: Version } | undefined;
    for (const entry of list) {
      if (typeof entry !== "object" || entry === null || typeof (entry as Record<string, unknown>)["version"] !== "string") continue;
      let version: Version;
      try {
        version = parseVersion((entry as Record<string, string>)["version"]);
      } catch {
        continue;
      }
      if (compareVersions(version, running) > 0 && (!best || compareVersions(version, best.version) > 0)) best = { entry: entry as Record<string, unknown>, version };
    }
    if (!best || !this.#handler) return;
    const envelope = JSON.stringify({ id: `getversion-${++this.#offers}`, version: "1.0", method: "ota.device.upgrade", params: best.entry });
    this.#handler(parseEnosUpgrade(envelope, { fileBase: this.#o.fileBase, maxSize: this.#o.maxSize, allowUnsigned: this.#o.allowUnsigned }));
  }

  onJob(handler: (result: ParseResult) => void): void {
    this.#handler = handler;
    this.client.onUpgrade((payload, id) => {
      const result = parseEnosUpgrade(payload, { fileBase: this.#o.fileBase, maxSize: this.#o.maxSize, allowUnsigned: this.#o.allowUnsigned });
      const accepted = result.kind === "plan";
      this.#quietly("reply", this.client.reply(id, accepted ? ENOS_SUCCESS : 400, accepted ? undefined : result.kind === "invalid" ? result.reason : "not an upgrade"));
      handler(result);
    });
  }

  downloadUrl(plan: UpdatePlan, refused: boolean): Promise<string> {
    const { files } = this.#o;
    if (plan.fileUri === undefined) return Promise.reject(new OtaError("bad-argument", `job ${plan.jobId} names no EnOS file`));
    if (!files) {
      return Promise.reject(new OtaError("bad-argument", `the offer's file ${plan.fileUri} comes from the EnOS HTTP broker: configure its URL (fileService) and the device secret`));
    }
    return files.downloadUrl(plan.fileUri, refused);
  }

  handle(topic: string, payload: Uint8Array): boolean {
    return this.client.handle(topic, payload);
  }

  async progress(_plan: UpdatePlan, received: number, total: number): Promise<void> {
    await this.#quietly("progress", this.client.progress(Math.min(99, Math.floor((received * 100) / total)), "downloading"));
  }

  async beforeReboot(): Promise<void> {
    await this.#quietly("progress", this.client.progress(100, "verified; restarting into the new firmware"));
  }

  selfTestStarted(): Promise<void> {
    return Promise.resolve();
  }

  succeeded(_plan: UpdatePlan, version: string): Promise<boolean> {
    return this.#quietly("inform", this.client.inform(version));
  }

  failed(_job: { jobId: string }, failure: JobFailure): Promise<boolean> {
    return this.#quietly("progress", this.client.progress(STEP_FOR[failure.stage], `${failure.code}: ${failure.reason}`.slice(0, 256)));
  }

  /** True once the message went out (EnOS answers nothing the device needs for it). */
  #quietly(what: string, p: Promise<unknown>): Promise<boolean> {
    return p.then(
      () => true,
      (e: unknown) => {
        this.#o.log?.(`EnOS ${what}: ${String(e)}`);
        return false;
      },
    );
  }
}
