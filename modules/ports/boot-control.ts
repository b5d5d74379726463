/**
 * BootControl: which app slot the bootloader will start, and the trial-boot protocol around an
 * update. Kept behind a port so that layouts other than ESP-IDF's otadata (a bootloader that
 * installs from a staging slot, an @AFRTOS descriptor) fit the same agent.
 *
 * Lifecycle of one update:
 *   running VALID image -> `select(slot)` after the new image is written and verified
 *   -> restart -> the bootloader starts the new image for a trial (state "pending")
 *   -> self-test passes: `confirm()` makes it permanent ("valid")
 *   -> self-test fails: `reject()` marks it invalid so the next restart starts the previous slot.
 *   A trial image that restarts without confirming is rolled back by the bootloader itself
 *   (its slot then reads "aborted" in `updateState`).
 *
 * Contract:
 * - `select(slot)` never makes an image bootable that was not fully written; it is called only
 *   after verification. Selecting the running slot: OtaError "boot-state".
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
}

export interface BootControl {
  info(): BootInfo;
  select(slot: string): void;
  confirm(): void;
  reject(): void;
}
