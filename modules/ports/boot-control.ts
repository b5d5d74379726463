/**
 * BootControl: which app slot the bootloader will start, and the trial-boot protocol around an
 * update. One implementation per boot layout: ESP-IDF's otadata A/B (modules/esp-idf), a W800
 * staging partition its second-stage boot installs from (modules/w800), an @AFRTOS descriptor
 * over a staging bank a cloner copies from (modules/afr-staging).
 *
 * Staging layouts: the agent writes the image into `updateSlot` (the staging area), `select`
 * asks the bootloader to install it at the next restart, and after the install the image runs
 * from the one run slot (`running`), with `installedFrom` naming the staging slot.
 *
 * Lifecycle of one update:
 *   running VALID image -> `select(slot)` after the new image is written and verified
 *   -> restart -> the bootloader starts the new image for a trial (state "pending")
 *   -> self-test passes: `confirm()` makes it permanent ("valid")
 *   -> self-test fails: `reject()` marks it invalid so the next restart starts the previous image,
      where the layout keeps one (it returns false where it keeps none: the image then stays).
 *   A trial image that restarts without confirming is rolled back by the bootloader itself
 *   (its slot then reads "aborted" in `updateState`).
 *
 * Contract:
 * - `select(slot, staged)` never makes an image bootable that was not fully written; it is called
 *   only after verification, with the image's length in bytes (a staging layout's bootloader
 *   copies that many) and the job's signature bytes (an @AFRTOS trailer keeps them). Selecting
 *   the running slot: OtaError "boot-state".
 * - Every method survives power loss at any flash operation: the device afterwards boots either
 *   the old or the new image, never nothing (see modules/esp-idf/otadata.ts for the order of
 *   writes that guarantees it).
 * - `confirm()` on an image that is already valid does nothing.
 */
export type SlotState = "new" | "pending" | "valid" | "invalid" | "aborted" | "undefined" | "none";

export interface BootInfo {
  /** The slot the bootloader started. */
  running: string;
  /** The running slot's trial state: "pending" during a trial boot, "valid" once confirmed. */
  state: SlotState;
  /** The slot the bootloader will pick at the next restart, if nothing changes. */
  next: string;
  /** The slot an update should be written to: the one that is not running. */
  updateSlot: string;
  /**
   * The update slot's state as the boot data records it, when it can tell: "aborted" once the
   * bootloader gave up on a trial boot of it that ended without a verdict (a power cut or crash
   * before confirm or reject), "invalid" once it was rejected.
   */
  updateState?: SlotState;
  /**
   * Staging layouts: the staging slot whose image the bootloader installed into `running`, while
   * that image is on trial or confirmed and no later update has replaced it. A/B layouts leave
   * it out (the image runs from the slot it was written to).
   */
  installedFrom?: string;
}

/** Whether the image written to `slot` by an update is the one running now. */
export function runsImageOf(info: BootInfo, slot: string): boolean {
  return info.running === slot || info.installedFrom === slot;
}

/** What `select` learns of the verified image. */
export interface SelectedImage {
  /** Bytes of the image in the slot. */
  length: number;
  /** The job's code-signing signature as it came (AWS: DER), when it had one. */
  signature?: Uint8Array;
}

export interface BootControl {
  info(): BootInfo;
  select(slot: string, staged: SelectedImage): void;
  confirm(): void;
  /**
   * The running trial image failed: true when the next restart starts the previous image; false
   * when the layout keeps no previous image to go back to (the verdict is recorded, the image
   * stays, and the bootloader never tries to install it again).
   */
  reject(): boolean;
}
