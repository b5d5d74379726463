/**
 * BootControl for the W800 staging layout: the image runs from `app`, updates are written to
 * `app_ota`, and the second-stage boot installs a staged image into app when xs-ota's install
 * record (modules/w800/record.ts, partition `ota_state`) asks it to.
 *
 * Power safety: `select` erases the record's sector and writes the record in one write; a cut
 * before that write has landed whole leaves no valid record, which asks for nothing, so the
 * device keeps running the old image (the old state), and the same cut can never request a torn
 * record. Every later step (installed, confirmed, rejected) clears bits of one state byte in
 * place, which lands whole or not at all. `select` refuses while an image is on trial: erasing
 * that record would silently end the trial, a state that is neither the old nor the new.
 *
 * The record names the staged image by its header's hd_checksum and length, so once app_ota is
 * rewritten by a later download, the record says nothing about what app_ota holds.
 *
 * There is no rollback: the install overwrote app, the only run partition, and app_ota (0xAE000)
 * cannot hold an uncompressed copy of a 0x122000 app, so no previous image is kept. An unconfirmed
 * trial image stays "pending" across restarts; `reject` records the verdict and returns false.
 */
import type { BootControl, BootInfo, SlotState } from "../ports/boot-control.ts";
import type { Flash } from "../ports/flash.ts";
import type { Partitions } from "../ports/partitions.ts";
import { OtaError, isOtaError } from "../errors.ts";
import { W800_2MB_LAYOUT, W800_HEADER_SIZE, checkHeader, type W800Layout } from "./header.ts";
import { markConfirmed, markRejected, readInstallRecord, requestInstall, type InstallRecord, type StagedId } from "./record.ts";

export const RUN_SLOT = "app";
export const STAGING_SLOT = "app_ota";
export const RECORD_PARTITION = "ota_state";

/** The staged image's identity when app_ota starts with a header the SDK accepts, else undefined. */
export function stagedId(appOta: Flash, layout: W800Layout): StagedId | undefined {
  try {
    const header = checkHeader(new Uint8Array(appOta.read(W800_HEADER_SIZE, 0)), layout, "staged");
    return { hdChecksum: header.hdChecksum, length: W800_HEADER_SIZE + header.imgLen };
  } catch (e) {
    if (isOtaError(e, "image-invalid")) return undefined;
    throw e;
  }
}

export function sameImage(a: StagedId, b: StagedId): boolean {
  return a.hdChecksum === b.hdChecksum && a.length === b.length;
}

export class W800BootControl implements BootControl {
  readonly #partitions: Partitions;
  readonly #layout: W800Layout;

  /** `layout` gives the partitions' flash offsets the header names (the port does not). */
  constructor(partitions: Partitions, layout: W800Layout = W800_2MB_LAYOUT) {
    this.#partitions = partitions;
    this.#layout = layout;
  }

  info(): BootInfo {
    const record = this.#record();
    const staged = stagedId(this.#partitions.open(STAGING_SLOT), this.#layout);
    const about = record !== undefined && staged !== undefined && sameImage(record, staged) ? record : undefined;
    const info: BootInfo = {
      running: RUN_SLOT,
      state: record?.state === "trial" ? "pending" : "valid",
      next: RUN_SLOT,
      updateSlot: STAGING_SLOT,
    };
    const updateState = updateStateOf(about);
    if (updateState !== undefined) info.updateState = updateState;
    if (about && (about.state === "trial" || about.state === "confirmed")) info.installedFrom = STAGING_SLOT;
    return info;
  }

  select(slot: string): void {
    if (slot === RUN_SLOT) throw new OtaError("boot-state", `'${slot}' is the running slot`);
    if (slot !== STAGING_SLOT) throw new OtaError("partition-unknown", `'${slot}' is not the W800 staging slot (${STAGING_SLOT})`);
    const staged = stagedId(this.#partitions.open(STAGING_SLOT), this.#layout);
    if (!staged) throw new OtaError("boot-state", `${STAGING_SLOT} holds no image the boot would install`);
    if (this.#record()?.state === "trial") throw new OtaError("boot-state", "the running image is on trial: confirm or reject it before selecting another");
    requestInstall(this.#recordFlash(), staged);
  }

  confirm(): void {
    if (this.#record()?.state === "trial") markConfirmed(this.#recordFlash());
  }

  /**
   * Records the verdict on the running trial image (or cancels a requested install) and returns
   * false: the install overwrote app, the W800's one run partition, and app_ota is too small for
   * an uncompressed copy of the old app, so there is no previous image to restart into. The
   * rejected image keeps running and the boot never installs it again.
   */
  reject(): boolean {
    const record = this.#record();
    if (record && record.state !== "rejected") markRejected(this.#recordFlash());
    return false;
  }

  #record(): InstallRecord | undefined {
    return readInstallRecord(this.#recordFlash());
  }

  #recordFlash(): Flash {
    return this.#partitions.open(RECORD_PARTITION);
  }
}

function updateStateOf(record: InstallRecord | undefined): SlotState | undefined {
  if (!record) return "none";
  if (record.state === "requested") return "new";
  if (record.state === "rejected") return "invalid";
  return undefined;
}
