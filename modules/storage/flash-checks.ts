/** Argument checks every Flash implementation shares, with the errors the port promises. */
import type { FlashStatus } from "../ports/flash.ts";
import { OtaError } from "../errors.ts";

const isIndex = (n: number) => Number.isInteger(n) && n >= 0;

export function checkRange(status: FlashStatus, offset: number, length: number): void {
  if (!isIndex(offset) || !isIndex(length) || offset + length > status.size) {
    throw new OtaError("flash-bounds", `0x${Number(length).toString(16)} bytes at 0x${Number(offset).toString(16)} is outside 0x${status.size.toString(16)} bytes of flash`);
  }
}

export function checkErase(status: FlashStatus, first: number, last: number): void {
  if (!isIndex(first) || !isIndex(last) || first >= last || last > status.blocks) {
    throw new OtaError("flash-bounds", `erase of blocks [${first}, ${last}) is outside the ${status.blocks} blocks of flash`);
  }
}

export function toBytes(bytes: ArrayBuffer | ArrayBufferView): Uint8Array {
  return bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
