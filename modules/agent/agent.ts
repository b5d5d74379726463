/**
 * The update agent: a job from the cloud to a confirmed new firmware, or back to the old one with
 * a reason the cloud understands. An explicit transition table (see machine.ts) driven one event
 * at a time; timers from the Clock port; all I/O through ports.
 *
 *   booting -> connecting -> starting -> idle -> downloading -> awaiting-reboot -> rebooting
 *   after the restart: booting -> connecting -> starting -> self-testing -> idle (confirmed)
 *                                                          \-> rebooting (rejected) -> ... -> idle (FAILED reported by the old image)
 *
 * What must survive a restart (the job, its phase, the previous version) is one StateStore record,
 * written before the step it protects; transfer progress has records of its own.
 */
import { runsImageOf, type BootControl } from "../ports/boot-control.ts";
import type { Clock, TimerId } from "../ports/clock.ts";
import type { DigestFactory } from "../ports/digest.ts";
import type { Http } from "../ports/http.ts";
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";
import type { KeyStore } from "../ports/key-store.ts";
import type { Mqtt } from "../ports/mqtt.ts";
import type { Partitions } from "../ports/partitions.ts";
import type { SignatureVerifier } from "../ports/signature.ts";
import type { StateStore } from "../ports/state-store.ts";
import type { System } from "../ports/system.ts";
import type { ParseResult, UpdatePlan } from "../jobs/plan.ts";
import { OtaError, isOtaError } from "../errors.ts";
import { utf8Decode, utf8Encode } from "../codec/utf8.ts";
import { SecurityFloor, checkCandidate } from "../verify/policy.ts";
import { checkNewer } from "../verify/version.ts";
import { verifyAndSelect } from "../verify/staged.ts";
import type { Flash } from "../ports/flash.ts";
import { Machine, type Transition } from "./machine.ts";
import type { FailureStage, JobChannel, JobFailure } from "./channel.ts";
import { DEFAULT_CONFIG, type AgentConfig } from "./config.ts";
import { clearTransferRecords, startTransfer, type RunningTransfer, type TransferOutcome } from "./transfer.ts";

export type AgentState =
  | "booting"
  | "connecting"
  | "starting"
  | "idle"
  | "downloading"
  | "refreshing"
  | "awaiting-reboot"
  | "rebooting"
  | "self-testing"
  | "reporting"
  | "custom-job";

export const AGENT_STATES: readonly AgentState[] = Object.freeze(["booting", "connecting", "starting", "idle", "downloading", "refreshing", "awaiting-reboot", "rebooting", "self-testing", "reporting", "custom-job"]);

export type AgentEvent =
  | { type: "boot" }
  | { type: "connected" }
  | { type: "ready" }
  | { type: "job"; result: ParseResult }
  | { type: "progress"; transfer: number; received: number; total: number }
  | { type: "transfer-done"; transfer: number; outcome: TransferOutcome }
  | { type: "transfer-failed"; transfer: number; error: OtaError }
  | { type: "reboot-ready" }
  | { type: "self-test"; passed: boolean; reason: string }
  | { type: "custom-done"; jobId: string; succeeded: boolean; reason?: string }
  | { type: "reported"; jobId: string; delivered: boolean };

export interface AgentPorts {
  partitions: Partitions;
  boot: BootControl;
  /** The platform's image format (modules/esp-idf/format.ts, modules/w800/format.ts, ...). */
  image: ImageFormat;
  store: StateStore;
  clock: Clock;
  http: Http;
  mqtt: Mqtt;
  digests: DigestFactory;
  verifier: SignatureVerifier;
  keys: KeyStore;
  system: System;
}

export interface AgentApp {
  /** The new firmware's own test, run once after an update; true (or resolving true) to keep it. */
  selfTest(): boolean | Promise<boolean>;
  /** Jobs that are not update documents; absent: they are failed as unsupported. */
  customJob?(jobId: string, document: unknown): Promise<{ succeeded: boolean; reason?: string }>;
}

/** What survives a restart. */
export interface JobRecord {
  plan: UpdatePlan;
  phase: "download" | "reboot" | "confirmed" | "rolled-back";
  slot: string;
  /** The version running when the update started (AWS `updatedBy`). */
  previous: string;
  secureVersion?: number;
  failure?: JobFailure;
  /** Trial boots of the new image retried after an interrupted one (at most 1). */
  trialRetries?: number;
}

export const JOB_KEY = "ota.job";

type Row = Transition<AgentState, AgentEvent, Agent>;
type On<T extends AgentEvent["type"]> = Extract<AgentEvent, { type: T }>;

function row<T extends AgentEvent["type"]>(state: AgentState, event: T, next: AgentState[], handler: (a: Agent, e: On<T>) => AgentState | void): Row {
  // Frozen, rows and their lists: the table lives in flash on a device (preload).
  return Object.freeze({ state, event, next: Object.freeze(next), handler: handler as Row["handler"] });
}

export const AGENT_TABLE: readonly Row[] = Object.freeze([
  row("booting", "boot", ["connecting", "rebooting"], (a) => a.onBoot()),
  row("rebooting", "boot", ["connecting", "rebooting"], (a) => a.onBoot()),
  row("connecting", "connected", ["starting"], (a) => a.startChannel()),
  row("starting", "ready", ["idle", "self-testing", "rebooting", "reporting"], (a) => a.onReady()),
  // A start that failed (the broker went away while it subscribed) waits for the next connection.
  row("starting", "connected", ["starting"], (a) => a.startChannel()),
  row("idle", "job", ["idle", "downloading", "custom-job"], (a, e) => a.onJob(e.result)),
  row("idle", "connected", ["starting"], (a) => a.startChannel()),
  row("downloading", "progress", ["downloading"], (a, e) => a.onProgress(e)),
  row("downloading", "transfer-done", ["awaiting-reboot", "idle"], (a, e) => a.onTransferDone(e)),
  row("downloading", "transfer-failed", ["idle", "refreshing"], (a, e) => a.onTransferFailed(e)),
  row("downloading", "job", ["downloading", "idle", "custom-job"], (a, e) => a.onJobWhileDownloading(e.result)),
  row("downloading", "connected", ["downloading"], (a) => a.restartChannel()),
  row("refreshing", "job", ["downloading", "idle", "custom-job"], (a, e) => a.onJobWhileDownloading(e.result)),
  row("refreshing", "connected", ["refreshing"], (a) => a.restartChannel(true)),
  row("awaiting-reboot", "reboot-ready", ["rebooting"], (a) => a.restart()),
  row("self-testing", "self-test", ["reporting", "rebooting"], (a, e) => a.onSelfTest(e)),
  row("self-testing", "connected", ["self-testing"], (a) => a.restartChannel()),
  row("reporting", "reported", ["idle"], (a, e) => a.onReported(e)),
  row("reporting", "connected", ["reporting"], (a) => a.restartChannel()),
  row("custom-job", "custom-done", ["idle"], (a, e) => a.onCustomDone(e)),
]);

export class Agent {
  readonly machine: Machine<AgentState, AgentEvent, Agent>;
  readonly config: AgentConfig;
  readonly #ports: AgentPorts;
  readonly #app: AgentApp;
  readonly #channel: JobChannel;
  readonly #floor: SecurityFloor;
  #record: JobRecord | undefined;
  #transfer: RunningTransfer | undefined;
  #transferId = 0;
  #reported = 0;
  #selfTestTimer: TimerId | undefined;
  #stopped = false;
  /** The latest transitions and ignored events, oldest first, for logs and tests. */
  readonly trace: string[] = [];
  /** A device runs for months: the trace keeps only this many entries. */
  readonly #traceLimit: number;

  constructor(options: { ports: AgentPorts; app: AgentApp; channel: JobChannel; config: Partial<AgentConfig>; traceLimit?: number }) {
    this.#traceLimit = options.traceLimit ?? 32;
    this.#ports = options.ports;
    this.#app = options.app;
    this.#channel = options.channel;
    this.config = { ...DEFAULT_CONFIG, ...options.config };
    this.#floor = new SecurityFloor(options.ports.store);
    this.machine = new Machine<AgentState, AgentEvent, Agent>({
      table: AGENT_TABLE,
      initial: "booting",
      context: this as Agent,
      unmatched: (state, event) => this.#log(`ignored ${event.type} in ${state}`),
      onTransition: (from, event, to) => this.#trace(`${from} --${event.type}--> ${to}`),
    });
    this.#channel.onJob((result) => this.dispatch({ type: "job", result }));
  }

  get state(): AgentState {
    return this.machine.state;
  }

  get record(): JobRecord | undefined {
    return this.#record;
  }

  dispatch(event: AgentEvent): void {
    if (this.#stopped) return;
    this.machine.dispatch(event);
  }

  /**
   * Stops for good: the transfer is abandoned and every later event ignored, with no records
   * touched, as when the device loses power. A host calls it before it drops the agent.
   */
  stop(): void {
    this.#stopped = true;
    this.#transfer?.cancel();
    this.#transfer = undefined;
    if (this.#selfTestTimer !== undefined) this.#ports.clock.clearTimer(this.#selfTestTimer);
  }

  // ---- handlers (called from the table) ----

  onBoot(): AgentState {
    this.#record = this.#loadRecord();
    const r = this.#record;
    const info = this.#ports.boot.info();
    if (r && r.phase === "download" && runsImageOf(info, r.slot) && info.state === "pending") {
      // A trial boot of the slot this job was downloading into: the image was verified and
      // selected, and power went before the record said so. It is this job's new image.
      this.#ports.system.log("warn", `job ${r.plan.jobId}: the trial boot of ${r.slot} began before the record of its selection was written; carrying on as after the update's restart`);
      r.phase = "reboot";
      r.secureVersion = this.#secureVersion(r.slot);
      this.#saveRecord();
      clearTransferRecords(this.#ports.store);
    }
    if (r && r.phase === "reboot" && !runsImageOf(info, r.slot)) {
      // The bootloader went back to the old image: the new one never confirmed. A trial that
      // ended without a verdict (power cut, crash, watchdog) gets one more, if the image in the
      // slot still verifies: the download and the check are not the user's to do again.
      const interrupted = info.updateState === "aborted" && info.updateSlot === r.slot;
      if (interrupted && (r.trialRetries ?? 0) < 1) {
        const retried = this.#retryTrial(r);
        if (retried) return retried;
      }
      r.phase = "rolled-back";
      const twice = interrupted && (r.trialRetries ?? 0) >= 1;
      r.failure ??= {
        stage: "boot",
        code: "rolled-back",
        reason: twice
          ? `the trial boot of the new image in ${r.slot} was interrupted twice (a restart before its self-test's verdict): the bootloader went back to ${info.running}`
          : `the new image in ${r.slot} did not stay running: the bootloader went back to ${info.running}`,
      };
      this.#saveRecord();
    }
    return "connecting";
  }

  /** The anti-rollback version the image in `slot` carries, if its header says. */
  #secureVersion(slot: string): number | undefined {
    const format = this.#ports.image;
    try {
      return format.prefixSize ? format.parsePrefix(new Uint8Array(this.#ports.partitions.open(slot).read(format.prefixSize, 0))).secureVersion : undefined;
    } catch {
      return undefined;
    }
  }

  /** The signature, digest and header checks of the image in `slot`, then its selection for the next boot. */
  #verifyAndSelect(r: JobRecord, slot: Flash, sha256: Uint8Array, actual: Uint8Array | undefined): ImageInfo {
    const plan = r.plan;
    return verifyAndSelect(
      {
        slot,
        slotName: r.slot,
        length: plan.size,
        sha256,
        signature: plan.signature,
        expected: plan.digest && actual ? { algorithm: plan.digest.algorithm, hex: plan.digest.hex, actual } : undefined,
      },
      {
        keys: this.#ports.keys,
        verifier: this.#ports.verifier,
        boot: this.#ports.boot,
        format: this.#ports.image,
        digests: this.#ports.digests,
        allowUnsigned: this.config.allowUnsigned,
        log: (level, message) => this.#ports.system.log(level, message),
      },
    );
  }

  /** Verifies the image in the update slot again and selects it for one more trial boot. */
  #retryTrial(r: JobRecord): AgentState | undefined {
    // Counted before the slot is selected: a cut in between must not retry for ever.
    r.trialRetries = (r.trialRetries ?? 0) + 1;
    this.#saveRecord();
    const plan = r.plan;
    const slot = this.#ports.partitions.open(r.slot);
    try {
      const sha256 = this.#ports.digests.create("sha256");
      const promised = plan.digest && plan.digest.algorithm !== "sha256" ? this.#ports.digests.create(plan.digest.algorithm) : undefined;
      const CHUNK = 4096;
      for (let at = 0; at < plan.size; at += CHUNK) {
        const bytes = new Uint8Array(slot.read(Math.min(CHUNK, plan.size - at), at));
        sha256.update(bytes);
        promised?.update(bytes);
      }
      const digest = sha256.finish();
      const actual = plan.digest?.algorithm === "sha256" ? digest : promised?.finish();
      this.#verifyAndSelect(r, slot, digest, actual);
    } catch (e) {
      if (!isOtaError(e)) throw e;
      r.failure = { stage: "boot", code: e.code, reason: `the trial boot of ${r.slot} was interrupted, and its image no longer verifies: ${e.message}` };
      return undefined;
    }
    this.#ports.system.log("warn", `job ${plan.jobId}: the trial boot of ${r.slot} was interrupted before its self-test's verdict; trying it once more`);
    this.#ports.system.restart();
    return "rebooting";
  }

  startChannel(): AgentState {
    this.#channel.start().then(
      () => this.dispatch({ type: "ready" }),
      (e: unknown) => this.#log(`job channel did not start: ${String(e)}`),
    );
    return "starting";
  }

  restartChannel(askAgain = false): void {
    this.#channel.start().then(
      () => (askAgain ? this.#channel.requestNext() : undefined),
      (e: unknown) => this.#log(`job channel did not restart: ${String(e)}`),
    );
  }

  onReady(): AgentState {
    const r = this.#record;
    if (r?.phase === "rolled-back") {
      this.#info(`job ${r.plan.jobId}: rolled back to ${this.#ports.system.version()}`);
      return this.#report(r, this.#channel.failed({ jobId: r.plan.jobId, plan: r.plan }, r.failure ?? { stage: "boot", code: "rolled-back", reason: "rolled back" }));
    }
    if (r?.phase === "confirmed") return this.#report(r, this.#channel.succeeded(r.plan, this.#ports.system.version(), r.previous));
    if (r?.phase === "reboot") {
      const running = this.#ports.system.version();
      try {
        checkNewer(r.previous, running);
      } catch (e) {
        return this.#rollBack({ stage: "boot", code: "version-rejected", reason: `after the reboot: ${(e as Error).message}` });
      }
      this.#channel.selfTestStarted(r.plan, r.previous);
      this.#runSelfTest();
      return "self-testing";
    }
    return this.#askNext();
  }

  onJob(result: ParseResult): AgentState {
    switch (result.kind) {
      case "none":
        return "idle";
      case "invalid":
        if (result.jobId) this.#channel.failed({ jobId: result.jobId }, { stage: "document", code: "document", reason: result.reason });
        return "idle";
      case "custom":
        if (!this.#app.customJob) {
          this.#channel.failed({ jobId: result.jobId }, { stage: "document", code: "unsupported", reason: "not an update document, and this app takes no custom jobs" });
          return this.#askNext();
        }
        this.#app.customJob(result.jobId, result.document).then(
          (r) => this.dispatch({ type: "custom-done", jobId: result.jobId, ...r }),
          (e: unknown) => this.dispatch({ type: "custom-done", jobId: result.jobId, succeeded: false, reason: String(e) }),
        );
        return "custom-job";
      case "plan":
        return this.#begin(result.plan);
    }
  }

  onJobWhileDownloading(result: ParseResult): AgentState {
    const current = this.#record?.plan;
    if (result.kind === "plan" && current && result.plan.jobId === current.jobId) {
      if (this.state === "refreshing") {
        // The same job again, with a fresh URL: carry on from the byte where it stopped.
        const fresh: UpdatePlan = { ...current, url: result.plan.url ?? current.url };
        if (current.delta) fresh.delta = { ...current.delta, url: result.plan.delta?.url ?? current.delta.url };
        this.#record = { ...this.#record!, plan: fresh };
        this.#saveRecord();
        if (this.#transfer?.continueWith && this.#record.plan.url) this.#transfer.continueWith(this.#record.plan);
        else this.#startTransfer(this.#record.plan);
        return "downloading";
      }
      return this.state;
    }
    if (result.kind === "none" && this.state === "downloading") return this.state;
    // Another job (or the current one gone): drop this transfer; the slot stays unselected.
    this.#stopTransfer();
    clearTransferRecords(this.#ports.store);
    this.#forget();
    return this.onJob(result);
  }

  onProgress(e: On<"progress">): void {
    if (e.transfer !== this.#transferId || !this.#record) return;
    if (e.received - this.#reported < this.config.progressInterval && e.received !== e.total) return;
    this.#reported = e.received;
    this.#ports.system.log("debug", `job ${this.#record.plan.jobId}: ${e.received}/${e.total} bytes`);
    this.#channel.progress(this.#record.plan, e.received, e.total);
  }

  onTransferDone(e: On<"transfer-done">): AgentState | void {
    const r = this.#record;
    if (e.transfer !== this.#transferId || !r) return;
    this.#transfer = undefined;
    const plan = r.plan;
    const slot = this.#ports.partitions.open(r.slot);
    try {
      const actual = plan.digest?.algorithm === "sha256" ? e.outcome.sha256 : e.outcome.promised;
      const verified = this.#verifyAndSelect(r, slot, e.outcome.sha256, actual);
      r.phase = "reboot";
      r.secureVersion = verified.secureVersion;
      this.#info(`job ${plan.jobId}: ${verified.version ?? "the image"} verified (${plan.signature ? `signature by ${plan.signature.keyLabel}` : "unsigned"}), ${r.slot} selected; restarting`);
      this.#saveRecord();
      clearTransferRecords(this.#ports.store);
      this.#channel.beforeReboot(plan, r.previous).then(() => this.dispatch({ type: "reboot-ready" }));
      return "awaiting-reboot";
    } catch (err) {
      if (!isOtaError(err)) throw err;
      return this.#fail("verify", err);
    }
  }

  onTransferFailed(e: On<"transfer-failed">): AgentState | void {
    if (e.transfer !== this.#transferId) return;
    if (e.error.code === "url-refused") {
      // A presigned URL expired: ask for the job again; its fresh URL continues from here.
      this.#channel.requestNext();
      return "refreshing";
    }
    this.#transfer = undefined;
    const stage: FailureStage = e.error.code.startsWith("flash") || e.error.code.startsWith("image") ? "flash" : e.error.code === "version-rejected" || e.error.code === "security-version" ? "verify" : "download";
    return this.#fail(stage, e.error);
  }

  restart(): AgentState {
    this.#ports.system.restart();
    return "rebooting";
  }

  onSelfTest(e: On<"self-test">): AgentState {
    if (this.#selfTestTimer !== undefined) this.#ports.clock.clearTimer(this.#selfTestTimer);
    this.#selfTestTimer = undefined;
    const r = this.#record!;
    if (!e.passed) return this.#rollBack({ stage: "self-test", code: "self-test", reason: e.reason });
    this.#ports.boot.confirm();
    this.#info(`job ${r.plan.jobId}: self-test passed; ${this.#ports.system.version()} confirmed`);
    if (r.secureVersion !== undefined) this.#floor.raise(r.secureVersion);
    r.phase = "confirmed";
    this.#saveRecord();
    return this.#report(r, this.#channel.succeeded(r.plan, this.#ports.system.version(), r.previous));
  }

  /** The outcome reached the cloud: the record goes. If not, it stays and the next connect reports again. */
  onReported(e: On<"reported">): AgentState {
    if (!e.delivered) {
      this.#log(`job ${e.jobId}: the outcome was not delivered; it is reported again after the next connect`);
      return "idle";
    }
    if (this.#record?.plan.jobId === e.jobId) this.#forget();
    return this.#askNext();
  }

  onCustomDone(e: On<"custom-done">): AgentState {
    this.#channel.customResult?.(e.jobId, e.succeeded, e.reason);
    return this.#askNext();
  }

  // ---- helpers ----

  #begin(plan: UpdatePlan): AgentState {
    const running = this.#ports.system.version();
    try {
      if (plan.statusDetails?.["self_test"] && this.#record?.plan.jobId !== plan.jobId) {
        throw new OtaError("boot-state", "the job came back after a reboot, but this device holds no record of it: the update did not take");
      }
      if (plan.version !== undefined) checkNewer(running, plan.version);
    } catch (e) {
      if (!isOtaError(e)) throw e;
      this.#channel.failed({ jobId: plan.jobId, plan }, { stage: "document", code: e.code, reason: e.message });
      return this.#askNext();
    }
    const slot = this.#ports.boot.info().updateSlot;
    // The progress records describe the slot they were written for: never another one (that
    // could be the image this device would fall back to).
    const resuming = this.#record?.phase === "download" && this.#record.plan.jobId === plan.jobId && this.#record.plan.size === plan.size && this.#record.slot === slot;
    if (!resuming) clearTransferRecords(this.#ports.store);
    this.#record = { plan, phase: "download", slot, previous: running };
    this.#saveRecord();
    const offer = plan.delta ? ` (or a ${plan.delta.size}-byte patch)` : "";
    this.#info(`job ${plan.jobId}: ${resuming ? "resuming" : "downloading"} ${plan.size} bytes${offer} over ${plan.protocol === "mqtt" ? "MQTT" : "HTTP"} into ${slot}`);
    this.#startTransfer(plan);
    return "downloading";
  }

  #startTransfer(plan: UpdatePlan): void {
    const id = ++this.#transferId;
    this.#reported = 0;
    const r = this.#record!;
    const running = this.#ports.system.version();
    this.#transfer = startTransfer(
      plan,
      this.#ports.partitions.open(r.slot),
      this.#ports,
      this.config,
      this.#channel,
      {
        checkHeader: (prefix) => checkCandidate(this.#ports.image.parsePrefix(prefix), { runningVersion: running, floor: this.#floor }),
        progress: (received, total) => this.dispatch({ type: "progress", transfer: id, received, total }),
        note: (message) => this.#info(`job ${plan.jobId}: ${message}`),
        done: (outcome) => this.dispatch({ type: "transfer-done", transfer: id, outcome }),
        failed: (error) => this.dispatch({ type: "transfer-failed", transfer: id, error }),
      },
      plan.delta ? this.#ports.partitions.open(this.#ports.boot.info().running) : undefined,
    );
  }

  #stopTransfer(): void {
    this.#transfer?.cancel();
    this.#transfer = undefined;
    this.#transferId++;
  }

  #runSelfTest(): void {
    let settled = false;
    const settle = (passed: boolean, reason: string) => {
      if (settled) return;
      settled = true;
      this.dispatch({ type: "self-test", passed, reason });
    };
    this.#selfTestTimer = this.#ports.clock.setTimer(this.config.selfTestTimeout, () => settle(false, `self-test did not finish within ${this.config.selfTestTimeout} ms`));
    Promise.resolve()
      .then(() => this.#app.selfTest())
      .then(
        (ok) => settle(ok === true, ok === true ? "passed" : "the app's self-test returned false"),
        (e: unknown) => settle(false, `self-test threw: ${e instanceof Error ? e.message : String(e)}`),
      );
  }

  #rollBack(failure: JobFailure): AgentState {
    const r = this.#record!;
    this.#ports.system.log("error", `job ${r.plan.jobId}: ${failure.reason}; rolling back`);
    let back: boolean;
    try {
      back = this.#ports.boot.reject();
    } catch (e) {
      // Boot data the layout cannot mark (corrupt, or no installed image): nothing will start
      // the previous image, so this is reported like a layout without one.
      if (!isOtaError(e)) throw e;
      this.#ports.system.log("error", `job ${r.plan.jobId}: the boot data refused the rejection: ${e.message}`);
      back = false;
    }
    if (!back) {
      // A layout with one run slot (W800): the install replaced the old image, so there is
      // nothing to go back to. The verdict is recorded and the cloud hears why this one stays.
      const version = this.#ports.system.version();
      r.phase = "rolled-back";
      r.failure = { ...failure, reason: `${failure.reason}; this layout keeps no previous image, so ${version} stays running` };
      this.#saveRecord();
      this.#ports.system.log("error", `job ${r.plan.jobId}: no previous image to roll back to; ${version} stays running`);
      return this.#report(r, this.#channel.failed({ jobId: r.plan.jobId, plan: r.plan }, r.failure));
    }
    r.phase = "rolled-back";
    r.failure = failure;
    this.#saveRecord();
    this.#ports.system.restart();
    return "rebooting";
  }

  #fail(stage: FailureStage, error: OtaError): AgentState {
    const r = this.#record;
    clearTransferRecords(this.#ports.store);
    this.#forget();
    if (r) {
      this.#ports.system.log("error", `job ${r.plan.jobId} failed (${stage}): ${error.message}`);
      this.#channel.failed({ jobId: r.plan.jobId, plan: r.plan }, { stage, code: error.code, reason: error.message });
    }
    return this.#askNext();
  }

  /** Waits for an outcome report before the record that holds it is forgotten. */
  #report(r: JobRecord, sent: Promise<boolean>): AgentState {
    const jobId = r.plan.jobId;
    sent.then((delivered) => this.dispatch({ type: "reported", jobId, delivered }));
    return "reporting";
  }

  #askNext(): AgentState {
    this.#channel.requestNext();
    return "idle";
  }

  #forget(): void {
    this.#record = undefined;
    this.#ports.store.delete(JOB_KEY);
  }

  #saveRecord(): void {
    if (!this.#record) return;
    let json = JSON.stringify(this.#record);
    // A presigned URL can be long; without it the record still fits, and the job brings it again.
    if (json.length > 3900) json = JSON.stringify({ ...this.#record, plan: { ...this.#record.plan, url: undefined } });
    this.#ports.store.set(JOB_KEY, utf8Encode(json));
  }

  #loadRecord(): JobRecord | undefined {
    const bytes = this.#ports.store.get(JOB_KEY);
    if (!bytes) return undefined;
    try {
      const r = JSON.parse(utf8Decode(bytes)) as JobRecord;
      return r && typeof r === "object" && r.plan && typeof r.phase === "string" ? r : undefined;
    } catch {
      return undefined;
    }
  }

  #trace(entry: string): void {
    this.trace.push(entry);
    if (this.trace.length > this.#traceLimit) this.trace.splice(0, this.trace.length - this.#traceLimit);
  }

  #info(message: string): void {
    this.#ports.system.log("info", message);
  }

  #log(message: string): void {
    this.#trace(message);
    this.#ports.system.log("debug", message);
  }
}
