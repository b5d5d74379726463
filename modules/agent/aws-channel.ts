/**
 * AWS IoT Jobs as the agent's job channel, reporting in the FreeRTOS OTA agent's vocabulary:
 * IN_PROGRESS {receive: "bytes/total"} while downloading; IN_PROGRESS {self_test: "ready",
 * updatedBy: 0x%08x} before the reboot and {self_test: "active", ...} after it; SUCCEEDED
 * {reason: "accepted vX", updatedBy: "vY"}; FAILED {reason: "<stage>/<code>: <message>"}.
 */
import type { Clock } from "../ports/clock.ts";
import type { Mqtt } from "../ports/mqtt.ts";
import type { ParseResult, UpdatePlan } from "../jobs/plan.ts";
import { AwsJobsClient, JOBS_LIMITS, acceptedDetails, selfTestDetails, type DeviceJobStatus, type StatusDetails } from "../jobs/aws-jobs.ts";
import { parseAwsJobMessage } from "../jobs/documents.ts";
import { parseVersion, toAppVersion32 } from "../verify/version.ts";
import type { JobChannel, JobFailure } from "./channel.ts";

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
    return this.client.handle(topic, payload);
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
