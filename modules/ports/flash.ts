/**
 * Flash: a NOR flash region (a whole chip, or one partition of it), shaped after ECMA-419's
 * `embedded:storage/flash` as Moddable implements it on ESP32, so the esp32 host passes calls
 * straight through.
 *
 * Contract, every host:
 * - Offsets are bytes from the start of the region; blocks are numbered from 0.
 * - `eraseBlock(first, last)` erases blocks `first` up to but not including `last` (default
 *   `first + 1`); every erased byte reads 0xFF. Blocks outside the region: OtaError "flash-bounds".
 * - `write(bytes, offset)` can only clear bits (1 -> 0): the stored byte becomes `old & new`.
 *   Writing over bytes that are not erased is allowed by NOR chips and by this contract (it is
 *   how a state field is programmed in place); a host's strict mode may refuse it for testing.
 *   Out of range: "flash-bounds". Writes may start at any byte offset.
 * - `read(length, offset)` returns a fresh ArrayBuffer of exactly `length` bytes.
 * - All calls are synchronous, as on the device; an operation either completes, or power is lost
 *   while it runs (simulated hosts throw OtaError "flash-power-cut" and leave what a real chip
 *   would: a torn write lands only some of its bytes, a torn erase clears only part of a block).
 */
export interface FlashStatus {
  /** Bytes in the region. */
  size: number;
  /** Erase unit in bytes: 4096 on ESP32 SPI NOR. */
  blockLength: number;
  /** size / blockLength. */
  blocks: number;
}

export interface Flash {
  status(): FlashStatus;
  eraseBlock(first: number, last?: number): void;
  read(length: number, offset: number): ArrayBuffer;
  write(bytes: ArrayBuffer | ArrayBufferView, offset: number): void;
}
