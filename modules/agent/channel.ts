/**
 * JobChannel: a cloud's job protocol as the agent sees it. Each cloud implements it in its own
 * vocabulary (modules/aws/channel.ts, modules/enos/channel.ts) and routes its own
 * MQTT messages: the agent never looks at a topic.
 *
 * Contract:
 * - `start()` subscribes; after a reconnect the agent calls it again.
 * - `onJob` receives every job the cloud offers (answers to `requestNext`, notifications, pushes),
 *   already parsed, including refusals (`kind: "invalid"`) and "no job".
 * - Report methods resolve once the cloud took the report (or it could not be delivered: they do
 *   not reject, since the agent carries on either way and the cloud learns the outcome later).
 */
import type { ParseResult, UpdatePlan } from "../jobs/plan.ts";
import type { BlockTransfer, BlockTransferOptions } from "../transfer/blocks.ts";

export type FailureStage = "document" | "download" | "verify" | "flash" | "self-test" | "boot";

export interface JobFailure {
  stage: FailureStage;
  /** The OtaError code, or "self-test" / "rolled-back". */
  code: string;
  reason: string;
}

export interface JobChannel {
  start(): Promise<void>;
  requestNext(): void;
  onJob(handler: (result: ParseResult) => void): void;
  /** Routes a message of the device's MQTT session (jobs, and a block transfer it runs); true when it was the channel's. */
  handle(topic: string, payload: Uint8Array): boolean;
  /**
   * Plans with protocol "mqtt": the cloud's own block transfer of the plan's file (AWS MQTT
   * streams), whose messages `handle` then routes. May throw an OtaError for a plan it cannot
   * fetch. Absent: the cloud has none, and such plans fail.
   */
  blockTransfer?(plan: UpdatePlan, options: BlockTransferOptions): BlockTransfer;
  /**
   * Plans with `fileUri`: the http(s) URL that fetches the file now (EnOS: the HTTP broker's file
   * download with a session from its login). Called before every HTTP download of such a plan,
   * with `refused` true when the last URL was refused (401/403: the session expired), so that
   * the channel logs in again. Rejects with an OtaError when it cannot (no credentials, a login
   * refused). Absent: the cloud has none, and such plans fail.
   */
  downloadUrl?(plan: UpdatePlan, refused: boolean): Promise<string>;
  progress(plan: UpdatePlan, received: number, total: number): Promise<void>;
  /** The image is verified and selected: the device restarts into it next. */
  beforeReboot(plan: UpdatePlan, previousVersion: string): Promise<void>;
  /** The new image runs and tests itself; `previous` is the version that installed it. */
  selfTestStarted(plan: UpdatePlan, previous: string): Promise<void>;
  /**
   * The outcome reports. They resolve true once the cloud has the report (it answered, or the
   * transport acknowledged it), false when it could not be delivered: the agent then keeps its
   * record and reports again after the next connect, so a power cut or a drop never loses an
   * outcome. They never reject.
   */
  succeeded(plan: UpdatePlan, version: string, previous: string): Promise<boolean>;
  failed(job: { jobId: string; plan?: UpdatePlan }, failure: JobFailure): Promise<boolean>;
  /** A custom job's outcome (AWS: the app's own status), for channels that have custom jobs. */
  customResult?(jobId: string, succeeded: boolean, reason?: string): Promise<void>;
}
