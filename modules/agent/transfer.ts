/**
 * One image transfer for the agent: from a plan to bytes in the update slot, by HTTP ranges or
 * the cloud's own block transfer (AWS MQTT streams, made by its JobChannel), resuming from what
 * the StateStore and flash hold. The image header (version, anti-rollback) is checked from the
 * first bytes the ImageFormat names, held back until then. Outcomes come back
 * as callbacks, which the agent turns into events.
 */
import type { Clock } from "../ports/clock.ts";
import type { Digest, DigestFactory } from "../ports/digest.ts";
import type { Flash } from "../ports/flash.ts";
import type { Http } from "../ports/http.ts";
import type { StateStore } from "../ports/state-store.ts";
import type { UpdatePlan } from "../jobs/plan.ts";
import type { AgentConfig } from "./config.ts";
import { OtaError, isOtaError } from "../errors.ts";
import type { ImageFormat, ImageInfo } from "../ports/image-format.ts";
import { BlockWriter } from "../storage/block-writer.ts";
import { downloadRange } from "../transfer/http-download.ts";
import { ProgressRecorder, resumeImage } from "../transfer/progress.ts";
import { blockCount, fullBitmap, type BlockTransfer } from "../transfer/blocks.ts";
import type { JobChannel } from "./channel.ts";
import { ImageWriter } from "../storage/image-writer.ts";
import { HeaderGate } from "../transfer/header-gate.ts";

export const PROGRESS_KEY = "ota.prog";
/** A stream download's resume record: the erase mark (u32, big-endian), then the bitmap of blocks still needed. */
export const STREAM_KEY = "ota.stream";

export type TransferSettings = Pick<
  AgentConfig,
  "blockSize" | "blocksPerRequest" | "window" | "httpWindow" | "timeout" | "requestTimeout" | "retries" | "minRate" | "rateWindow" | "recordInterval" | "eraseAhead" | "eraseWholeSlot" | "ca"
>;

export interface TransferPorts {
  http: Http;
  clock: Clock;
  store: StateStore;
  digests: DigestFactory;
  /** The platform's image format: how many header bytes to hold back until they are checked. */
  image: ImageFormat;
}

export interface TransferOutcome {
  sha256: Uint8Array;
  /** The digest the plan names (MD5 for Zerynth), when it names one. */
  promised?: Uint8Array;
}

export interface TransferCallbacks {
  /** The image header is what this device may install (throws an OtaError otherwise). */
  checkHeader(prefix: Uint8Array): ImageInfo;
  progress(received: number, total: number): void;
  done(outcome: TransferOutcome): void;
  failed(error: OtaError): void;
}

export interface RunningTransfer {
  cancel(): void;
  /**
   * After "url-refused": go on from exactly the byte reached, with a fresh URL (HTTP only; the
   * writer and digests are still live, so nothing is re-read from flash).
   */
  continueWith?(url: string): void;
}

function asOtaError(e: unknown): OtaError {
  return isOtaError(e) ? e : new OtaError("flash-bounds", `transfer failed: ${String(e)}`);
}

export function startTransfer(
  plan: UpdatePlan,
  slot: Flash,
  ports: TransferPorts,
  settings: TransferSettings,
  channel: Pick<JobChannel, "blockTransfer" | "downloadUrl">,
  cb: TransferCallbacks,
): RunningTransfer {
  const digests: Digest[] = [ports.digests.create("sha256")];
  const promised = plan.digest && plan.digest.algorithm !== "sha256" ? ports.digests.create(plan.digest.algorithm) : undefined;
  if (promised) digests.push(promised);
  let cancelled = false;
  const finish = () => cb.done({ sha256: digests[0].finish(), promised: promised?.finish() });
  if (plan.protocol === "http") {
    let session: HttpSession | undefined;
    const run = (url: string | undefined) => {
      const go = async () => {
        session ??= new HttpSession(plan, slot, ports, settings, channel, cb, digests, () => cancelled);
        await session.run(url);
      };
      go().then(
        () => (cancelled ? undefined : finish()),
        (e: unknown) => (cancelled ? undefined : cb.failed(asOtaError(e))),
      );
    };
    run(plan.url);
    return { cancel: () => (cancelled = true), continueWith: (url) => run(url) };
  }
  let stream: BlockTransfer | undefined;
  try {
    stream = blockTransfer(plan, slot, ports, settings, channel, cb, digests);
  } catch (e) {
    Promise.resolve().then(() => cb.failed(asOtaError(e)));
    return { cancel: () => undefined };
  }
  stream.start().then(
    () => (cancelled ? undefined : finish()),
    (e: unknown) => (cancelled ? undefined : cb.failed(asOtaError(e))),
  );
  return {
    cancel: () => {
      cancelled = true;
      stream?.cancel();
    },
  };
}

/** An HTTP download into the slot that can go on with another URL after a refusal. */
class HttpSession {
  readonly #recorder: ProgressRecorder;
  readonly #writer: ImageWriter;
  readonly #gate: HeaderGate;

  constructor(
    readonly plan: UpdatePlan,
    readonly slot: Flash,
    readonly ports: TransferPorts,
    readonly s: TransferSettings,
    readonly channel: Pick<JobChannel, "downloadUrl">,
    readonly cb: TransferCallbacks,
    readonly digests: Digest[],
    readonly cancelled: () => boolean,
  ) {
    this.#recorder = new ProgressRecorder(ports.store, PROGRESS_KEY, s.recordInterval);
    const recorded = this.#recorder.load(plan.jobId, plan.size);
    const erase = { eraseAhead: s.eraseAhead, wholeSlot: s.eraseWholeSlot };
    this.#writer = recorded > 0 ? resumeImage(slot, plan.size, recorded, digests, erase) : new ImageWriter(slot, plan.size, erase);
    // The record must never run ahead of flash: say where the writer really resumes.
    this.#recorder.record(plan.jobId, plan.size, this.#writer.offset, true);
    this.#gate = new HeaderGate(ports.image, plan.size, cb.checkHeader, this.#writer.offset, (n) => new Uint8Array(slot.read(n, 0)));
  }

  async run(url: string | undefined): Promise<void> {
    const { plan, channel } = this;
    if (plan.fileUri === undefined) return this.#fetch(url);
    if (!channel.downloadUrl) throw new OtaError("bad-argument", `this cloud has no file service to fetch ${plan.fileUri}`);
    // After a refusal (an expired session) the channel logs in again; refused twice at the same
    // byte, the login itself is no good.
    let refused = false;
    let freshAt: number | undefined;
    for (;;) {
      if (refused) {
        if (freshAt === this.#writer.offset) throw new OtaError("http-status", `the file service refused ${plan.fileUri} again after a fresh login`);
        freshAt = this.#writer.offset;
      }
      const target = await channel.downloadUrl(plan, refused);
      try {
        return await this.#fetch(target);
      } catch (e) {
        if (!isOtaError(e) || e.code !== "url-refused") throw e;
        refused = true;
      }
    }
  }

  async #fetch(url: string | undefined): Promise<void> {
    if (!url) throw new OtaError("bad-argument", "HTTP plan without a URL");
    const { plan, s } = this;
    const writer = this.#writer;
    // Held-back header bytes are not in flash yet: fetch from where flash ends.
    this.#gate.drop();
    await downloadRange({
      http: this.ports.http,
      clock: this.ports.clock,
      url,
      size: plan.size,
      offset: writer.offset,
      window: s.httpWindow,
      ca: s.ca,
      timeout: s.timeout,
      retries: s.retries,
      rate: { minRate: s.minRate, window: s.rateWindow },
      cancelled: this.cancelled,
      sink: (chunk, at) => this.#sink(chunk, at),
    });
    writer.finish();
    this.#recorder.clear();
  }

  #sink(chunk: Uint8Array, at: number): void {
    const bytes = this.#gate.take(chunk, at);
    if (bytes.length === 0) return;
    this.#writer.write(bytes);
    for (const d of this.digests) d.update(bytes);
    this.#recorder.record(this.plan.jobId, this.plan.size, this.#writer.offset);
    this.cb.progress(this.#writer.offset, this.plan.size);
  }
}

function blockTransfer(
  plan: UpdatePlan,
  slot: Flash,
  ports: TransferPorts,
  s: TransferSettings,
  channel: Pick<JobChannel, "blockTransfer">,
  cb: TransferCallbacks,
  digests: Digest[],
): BlockTransfer {
  if (!channel.blockTransfer) throw new OtaError("bad-argument", `this cloud has no MQTT file transfer for job ${plan.jobId}`);
  const blocks = blockCount(plan.size, s.blockSize);
  const saved = ports.store.get(STREAM_KEY);
  const resume =
    saved && saved.length === 4 + fullBitmap(blocks).length
      ? { erasedTo: new DataView(saved.buffer, saved.byteOffset).getUint32(0), bitmap: saved.slice(4) }
      : undefined;
  const writer = new BlockWriter(slot, plan.size, resume?.erasedTo ?? 0, { eraseAhead: s.eraseAhead, wholeSlot: s.eraseWholeSlot });
  // Block 0 carries the header: on a resume that already holds it, it is checked again now.
  const has0 = resume !== undefined && (resume.bitmap[0] & 1) === 0;
  const gate = new HeaderGate(ports.image, plan.size, cb.checkHeader, has0 ? plan.size : 0, (n) => new Uint8Array(slot.read(Math.min(n, plan.size), 0)));
  let received = resume ? blocks - countSet(resume.bitmap) : 0;
  return channel.blockTransfer(plan, {
    size: plan.size,
    writer,
    digests,
    blockSize: s.blockSize,
    blocksPerRequest: s.blocksPerRequest,
    window: s.window,
    requestTimeout: s.requestTimeout,
    maxRetries: s.retries,
    rate: { minRate: s.minRate, window: s.rateWindow },
    resume,
    beforeWrite: (index, bytes) => gate.admit(index, bytes),
    persist: (state) => {
      received++;
      // Every 16 blocks: NVS writes wear flash, and a lost record only costs re-asking for blocks.
      // One record holds both halves, so each checkpoint is one write and they never disagree.
      if (received % 16 === 0 || received === blocks) {
        const record = new Uint8Array(4 + state.bitmap.length);
        new DataView(record.buffer).setUint32(0, state.erasedTo);
        record.set(state.bitmap, 4);
        ports.store.set(STREAM_KEY, record);
      }
      cb.progress(Math.min(plan.size, received * s.blockSize), plan.size);
    },
  });
}

function countSet(bitmap: Uint8Array): number {
  let n = 0;
  for (const b of bitmap) for (let x = b; x; x &= x - 1) n++;
  return n;
}

/** Forgets every transfer record (after success, failure or a new job). */
export function clearTransferRecords(store: StateStore): void {
  for (const key of [PROGRESS_KEY, STREAM_KEY]) store.delete(key);
}
