/**
 * The Flash port over the simulator's bridge: the whole chip, kept by the host in a file with
 * NOR rules enforced (erase to 0xFF, writes only clear bits). Partitions are views over it made
 * on the XS side, as ESP-IDF's partition API does over the SPI flash driver.
 */
import type { Flash, FlashStatus } from "../../../modules/ports/flash.ts";
import { call } from "./bridge.ts";

export class BridgedFlash implements Flash {
  readonly #status: FlashStatus;

  constructor() {
    this.#status = call("flash.status").json.status as FlashStatus;
  }

  status(): FlashStatus {
    return { ...this.#status };
  }

  read(length: number, offset: number): ArrayBuffer {
    const { bytes } = call("flash.read", { length, offset });
    // A raw reply is a buffer of its own; a small one is a view into the reply, copied (cheaply).
    return (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes.buffer : bytes.slice().buffer) as ArrayBuffer;
  }

  write(bytes: ArrayBufferView | ArrayBuffer, offset: number): void {
    const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    call("flash.write", { offset }, view);
  }

  eraseBlock(first: number, last?: number): void {
    call("flash.erase", { first, last });
  }
}
