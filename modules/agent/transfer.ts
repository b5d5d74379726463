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
import type { DeltaOffer } from "../jobs/plan.ts";
import { DELTA_KEY, applyPatch, isPatchSource, loadCheckpoint, patchArea } from "../transfer/patch.ts";
import { toHex } from "../codec/bytes.ts";

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
  /** What the transfer decided that the user should hear (a patch taken or not, and why). */
  note?(message: string): void;
  done(outcome: TransferOutcome): void;
  failed(error: OtaError): void;
}

export interface RunningTransfer {
  cancel(): void;
  /**
   * After "url-refused": go on from exactly the byte reached, with the fresh URLs of the job sent
   * again (HTTP only; the writer and digests are still live, so nothing is re-read from flash).
   */
  continueWith?(plan: UpdatePlan): void;
}

function asOtaError(e: unknown): OtaError {
  return isOtaError(e) ? e : new OtaError("flash-bounds", `transfer failed: ${String(e)}`);
}

/** The patch is a file with no image header of its own: its gate opens at once. */
const NO_HEADER: ImageFormat = Object.freeze({
  name: "patch",
  prefixSize: 0,
  parsePrefix: () => ({}),
  verify: () => ({}),
});

/**
 * One file into one flash region, by the plan's protocol. Each attempt ends in `finished` or
 * `failed`; after a failed "url-refused" `continueWith` makes another attempt (HTTP).
 */
interface FileDownload {
  cancel(): void;
  continueWith?(url: string): void;
}

function download(
  plan: UpdatePlan,
  slot: Flash,
  ports: TransferPorts,
  settings: TransferSettings,
  channel: Pick<JobChannel, "blockTransfer" | "downloadUrl">,
  cb: TransferCallbacks,
  digests: Digest[],
  cancelled: () => boolean,
  finished: () => void,
  failed: (e: unknown) => void,
): FileDownload {
  if (plan.protocol === "http") {
    let session: HttpSession | undefined;
    const run = (url: string | undefined) => {
      const go = async () => {
        session ??= new HttpSession(plan, slot, ports, settings, channel, cb, digests, cancelled);
        await session.run(url);
      };
      go().then(finished, failed);
    };
    run(plan.url);
    return { cancel: () => undefined, continueWith: (url) => run(url) };
  }
  let stream: BlockTransfer;
  try {
    stream = blockTransfer(plan, slot, ports, settings, channel, cb, digests);
  } catch (e) {
    Promise.resolve().then(() => failed(e));
    return { cancel: () => undefined };
  }
  stream.start().then(finished, failed);
  return { cancel: () => stream.cancel() };
}

export function startTransfer(
  plan: UpdatePlan,
  slot: Flash,
  ports: TransferPorts,
  settings: TransferSettings,
  channel: Pick<JobChannel, "blockTransfer" | "downloadUrl">,
  cb: TransferCallbacks,
  /** The running image, which a patch (plan.delta) rebuilds the new one from. */
  source?: Flash,
): RunningTransfer {
  const digests: Digest[] = [ports.digests.create("sha256")];
  const promised = plan.digest && plan.digest.algorithm !== "sha256" ? ports.digests.create(plan.digest.algorithm) : undefined;
  if (promised) digests.push(promised);
  let cancelled = false;
  const isCancelled = () => cancelled;
  const finish = () => (cancelled ? undefined : cb.done({ sha256: digests[0].finish(), promised: promised?.finish() }));
  const fail = (e: unknown) => (cancelled ? undefined : cb.failed(asOtaError(e)));

  const route = plan.delta && source ? patchRoute(plan, plan.delta, slot, source, ports, cb) : undefined;
  if (!route || !source) {
    const file = download(plan, slot, ports, settings, channel, cb, digests, isCancelled, finish, fail);
    return {
      cancel: () => {
        cancelled = true;
        file.cancel();
      },
      continueWith: file.continueWith && ((p) => (p.url ? file.continueWith?.(p.url) : undefined)),
    };
  }

  // A delta: the patch into the slot's end (unless it is there and checked already), then applied.
  const { delta, area } = route;
  const running = source;
  const resume = loadCheckpoint(ports.store, plan.size, delta.size, slot.status().blockLength);
  const apply = () => {
    applyPatch({
      patch: area,
      patchSize: delta.size,
      source: running,
      sourceSize: delta.sourceSize,
      slot,
      size: plan.size,
      store: ports.store,
      digests,
      gate: (written) => new HeaderGate(ports.image, plan.size, cb.checkHeader, written, (n) => new Uint8Array(slot.read(n, 0))),
      erase: { eraseAhead: settings.eraseAhead, wholeSlot: settings.eraseWholeSlot },
      ...(resume ? { resume } : {}),
    }, ports.clock, isCancelled).then(finish, fail);
  };
  let file: FileDownload | undefined;
  if (resume) Promise.resolve().then(apply);
  else {
    const patchDigest = ports.digests.create("sha256");
    const patchPlan: UpdatePlan = { jobId: plan.jobId, format: plan.format, protocol: plan.protocol, size: delta.size };
    if (delta.url !== undefined) patchPlan.url = delta.url;
    if (plan.stream !== undefined) patchPlan.stream = plan.stream;
    if (delta.fileId !== undefined) patchPlan.fileId = delta.fileId;
    const downloaded = () => {
      if (cancelled) return;
      if (toHex(patchDigest.finish()) !== delta.sha256) return fail(new OtaError("digest-mismatch", "the patch's SHA-256 is not the one the job names"));
      // Its resume records are done with; from here the apply checkpoints say where things stand.
      ports.store.delete(PROGRESS_KEY);
      ports.store.delete(STREAM_KEY);
      apply();
    };
    file = download(patchPlan, area, { ...ports, image: NO_HEADER }, settings, channel, { ...cb, checkHeader: () => ({}) }, [patchDigest], isCancelled, downloaded, fail);
  }
  return {
    cancel: () => {
      cancelled = true;
      file?.cancel();
    },
    continueWith: (p) => (p.delta?.url ? file?.continueWith?.(p.delta.url) : undefined),
  };
}

/** Whether this device takes the plan's patch: its running image is the source, and the slot holds both. */
function patchRoute(plan: UpdatePlan, delta: DeltaOffer, slot: Flash, source: Flash, ports: TransferPorts, cb: TransferCallbacks): { delta: DeltaOffer; area: Flash } | undefined {
  if (!isPatchSource(source, delta, ports.digests)) {
    cb.note?.(`the patch was made from another image than the one running: taking the full image (${plan.size} bytes)`);
    return undefined;
  }
  const area = patchArea(slot, plan.size, delta.size);
  if (!area) {
    cb.note?.(`the update slot cannot hold the image and the ${delta.size}-byte patch: taking the full image`);
    return undefined;
  }
  cb.note?.(`the running image is the patch's source: downloading a ${delta.size}-byte patch instead of ${plan.size} bytes`);
  return { delta, area };
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
  for (const key of [PROGRESS_KEY, STREAM_KEY, DELTA_KEY]) store.delete(key);
}
