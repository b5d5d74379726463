/**
 * Block transfers: a cloud that moves a file in numbered blocks of one size (AWS IoT MQTT file
 * streams) does so behind this contract, so the agent keeps the flash writer, the digests and the
 * resume records, and the cloud keeps its protocol (modules/<cloud>/).
 *
 * Contract of a BlockTransfer made from these options:
 * - blocks go to `writer` at index * blockSize, each checked by `beforeWrite` first (throwing
 *   ends the transfer with that error; false drops the block, which stays needed); `digests`
 *   are fed the file's bytes in file order;
 * - after each block is in flash, `persist` gets the bitmap of blocks still needed and the erase
 *   mark, so a restart with them as `resume` asks only for what flash lacks;
 * - `start()` resolves when every block is written and digested, and rejects with an OtaError
 *   ("no-progress", "too-slow", "stream-protocol", ...) when the transfer gives up; `cancel()` stops it
 *   without settling.
 */
import type { Digest } from "../ports/digest.ts";
import type { BlockWriter } from "../storage/block-writer.ts";
import type { RateFloorOptions } from "./rate.ts";

export interface BlockState {
  /** Bit i % 8 of byte i / 8 set: block i is still needed. */
  bitmap: Uint8Array;
  /** BlockWriter's erase mark. */
  erasedTo: number;
}

export interface BlockTransferOptions {
  size: number;
  writer: BlockWriter;
  /** Fed with the file's bytes in order (SHA-256 for the signature, say). */
  digests: Digest[];
  blockSize?: number;
  /** Blocks asked for per request (the cloud caps it at what one answer may carry). */
  blocksPerRequest?: number;
  /** Requests in flight at once. */
  window?: number;
  /** Milliseconds a request may stay silent before it is asked again. */
  requestTimeout?: number;
  /** Requests asked again in a row without a new block before giving up. */
  maxRetries?: number;
  /** The minimum sustained rate (modules/transfer/rate.ts; default 256 B/s over 2 minutes). */
  rate?: Partial<RateFloorOptions>;
  /** State from before a reboot (same file and block size). */
  resume?: BlockState;
  /**
   * Called with each new block before it is written; throwing ends the transfer with that error,
   * false leaves the block unwritten and still needed (the header gate: nothing before block 0).
   */
  beforeWrite?(index: number, bytes: Uint8Array): boolean | void;
  /**
   * Called after each block is in flash, with what a resume would need. The bitmap is the live
   * one, valid during the call: copy it to keep it (StateStore.set does).
   */
  persist?(state: BlockState): void;
  cancelled?(): boolean;
}

export interface BlockTransfer {
  start(): Promise<unknown>;
  cancel(): void;
}

export function blockCount(size: number, blockSize: number): number {
  return Math.ceil(size / blockSize);
}

/** A bitmap with every block of the file marked needed. */
export function fullBitmap(blocks: number): Uint8Array {
  const b = new Uint8Array(Math.ceil(blocks / 8)).fill(0xff);
  if (blocks % 8) b[b.length - 1] = (1 << blocks % 8) - 1;
  return b;
}
