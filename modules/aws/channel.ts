/**
 * AWS IoT Jobs as the agent's job channel, reporting in the FreeRTOS OTA agent's vocabulary:
 * IN_PROGRESS {receive: "bytes/total"} while downloading; IN_PROGRESS {self_test: "ready",
 * updatedBy: 0x%08x} before the reboot and {self_test: "active", ...} after it; SUCCEEDED
 * {reason: "accepted vX", updatedBy: "vY"}; FAILED {reason: "<stage>/<code>: <message>"}.
 */
import type { Clock } from "../ports/clock.ts";
import type { Mqtt } from "../ports/mqtt.ts";
import type { ParseResult, UpdatePlan } from "../jobs/plan.ts";
import { AwsJobsClient, JOBS_LIMITS, acceptedDetails, selfTestDetails, type DeviceJobStatus, type StatusDetails } from "./jobs.ts";
import { parseAwsJobMessage } from "./documents.ts";
import { parseVersion, toAppVersion32 } from "../verify/version.ts";
import { OtaError } from "../errors.ts";
import type { BlockTransfer, BlockTransferOptions } from "../transfer/blocks.ts";
import { StreamDownload } from "./stream.ts";
import type { JobChannel, JobFailure } from "../agent/channel.ts";

export interface AwsChannelOptions {
  mqtt: Mqtt;
  clock: Clock;
  thing: string;
  /** The largest image the update slot holds. */
  maxSize: number;
  allowUnsigned: boolean;
  preferProtocol: "http" | "mqtt";
  /** Called with what could not be reported (a refusal or a timeout); the agent carries on. */
  log?(message: string): void;
}

function appVersion32(version: string): string {
  try {
    return toAppVersion32(parseVersion(version));
  } catch {
    return "0x00000000";
  }
}

export class AwsJobChannel implements JobChannel {
  readonly client: AwsJobsClient;
  readonly #o: AwsChannelOptions;
  /** The stream download running, if any: its messages come through `handle`. */
  #stream: StreamDownload | undefined;

  constructor(o: AwsChannelOptions) {
    this.#o = o;
    this.client = new AwsJobsClient({ mqtt: o.mqtt, clock: o.clock, thing: o.thing });
  }

  start(): Promise<void> {
    return this.client.start();
  }

  requestNext(): void {
    // The answer reaches onJob like any notification; a refusal or timeout is only logged.
    this.client.requestNext().then(
      (r) => (r.ok ? undefined : this.#o.log?.(`$next/get: ${r.code} ${r.message}`)),
      (e: unknown) => this.#o.log?.(`$next/get: ${String(e)}`),
    );
  }

  onJob(handler: (result: ParseResult) => void): void {
    this.client.onJob((notice) =>
      handler(parseAwsJobMessage(notice.payload, { maxSize: this.#o.maxSize, allowUnsigned: this.#o.allowUnsigned, preferProtocol: this.#o.preferProtocol })),
    );
  }

  handle(topic: string, payload: Uint8Array): boolean {
    return this.client.handle(topic, payload) || (this.#stream?.handle(topic, payload) ?? false);
  }

  /** The plan's file over the thing's MQTT stream (`$aws/things/T/streams/S/...`). */
  blockTransfer(plan: UpdatePlan, options: BlockTransferOptions): BlockTransfer {
    if (plan.stream === undefined || plan.fileId === undefined) throw new OtaError("bad-argument", `job ${plan.jobId}: an MQTT plan without a stream and file id`);
    const o = this.#o;
    const stream = new StreamDownload({ ...options, mqtt: o.mqtt, clock: o.clock, thing: o.thing, stream: plan.stream, fileId: plan.fileId });
    this.#stream?.cancel();
    this.#stream = stream;
    const forget = () => {
      if (this.#stream === stream) this.#stream = undefined;
    };
    return {
      start: () => stream.start().finally(forget),
      cancel: () => {
        stream.cancel();
        forget();
      },
    };
  }

  async progress(plan: UpdatePlan, received: number, total: number): Promise<void> {
    await this.#update(plan.jobId, "IN_PROGRESS", { receive: `${received}/${total}` }, 0);
  }

  async beforeReboot(plan: UpdatePlan, previous: string): Promise<void> {
    await this.#update(plan.jobId, "IN_PROGRESS", selfTestDetails("ready", appVersion32(previous)));
  }

  async selfTestStarted(plan: UpdatePlan, previous: string): Promise<void> {
    await this.#update(plan.jobId, "IN_PROGRESS", selfTestDetails("active", appVersion32(previous)));
  }

  succeeded(plan: UpdatePlan, version: string, previous: string): Promise<boolean> {
    return this.#update(plan.jobId, "SUCCEEDED", acceptedDetails(version, previous));
  }

  failed(job: { jobId: string }, failure: JobFailure): Promise<boolean> {
    return this.#update(job.jobId, "FAILED", { reason: clip(`${failure.stage}/${failure.code}: ${failure.reason}`) });
  }

  async customResult(jobId: string, succeeded: boolean, reason?: string): Promise<void> {
    await this.#update(jobId, succeeded ? "SUCCEEDED" : "FAILED", reason ? { reason: clip(reason) } : undefined);
  }

  /** True when the service answered (a rejection too: it has the report and refused it for good). */
  async #update(jobId: string, status: DeviceJobStatus, details: StatusDetails | undefined, qos: 0 | 1 = 1): Promise<boolean> {
    try {
      const r = await this.client.update(jobId, status, details, { qos });
      if (!r.accepted) this.#o.log?.(`job ${jobId} ${status}: ${r.code} ${r.message}`);
      return true;
    } catch (e) {
      this.#o.log?.(`job ${jobId} ${status}: ${String(e)}`);
      return false;
    }
  }
}

function clip(reason: string): string {
  const max = JOBS_LIMITS.maxStatusDetailValueLength;
  return reason.length <= max ? reason : reason.slice(0, max - 1) + "…";
}
