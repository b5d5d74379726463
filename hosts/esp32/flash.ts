/**
 * Flash and Partitions over Moddable's ECMA-419 flash storage (`embedded:storage/flash`), which
 * ESP32 builds have (modules/io/flash/esp32). Its instances already have the port's shape
 * (`status`, `eraseBlock(start, end)`, `read(length, offset)`, `write(buffer, offset)`), so
 * Esp32Flash only adds the port's argument checks and errors.
 *
 * Moddable finds data partitions (`otadata`, `nvs`, ...) by label but app slots only as
 * "running" and "nextota" (esp_ota_get_next_update_partition: the next slot after the running
 * one). With the two slots of the xs-ota tables that is enough: the running slot's label comes
 * from the native module, and the other label is "nextota".
 */
import flash, { type Flash as PartitionIo } from "embedded:storage/flash";
import { runningPartition } from "xs-ota/esp32/native";
import type { Flash, FlashStatus } from "xs-ota/ports/flash";
import type { Partitions } from "xs-ota/ports/partitions";
import { OtaError } from "xs-ota/errors";
import { checkErase, checkRange, toBytes } from "xs-ota/storage/flash-checks";

export class Esp32Flash implements Flash {
  readonly #io: PartitionIo;
  readonly #status: FlashStatus;

  constructor(io: PartitionIo) {
    this.#io = io;
    const { size, blockLength } = io.status();
    this.#status = { size, blockLength, blocks: size / blockLength };
  }

  status(): FlashStatus {
    return { ...this.#status };
  }

  eraseBlock(first: number, last = first + 1): void {
    checkErase(this.#status, first, last);
    this.#io.eraseBlock(first, last);
  }

  read(length: number, offset: number): ArrayBuffer {
    checkRange(this.#status, offset, length);
    return this.#io.read(length, offset);
  }

  write(bytes: ArrayBuffer | ArrayBufferView, offset: number): void {
    const view = toBytes(bytes);
    checkRange(this.#status, offset, view.length);
    if (view.length) this.#io.write(view, offset);
  }
}

export interface Esp32PartitionOptions {
  /** The two OTA app slots in slot order (default ota_0, ota_1, as in partitions/esp32-*.csv). */
  slots?: readonly [string, string];
  /** The running slot's label; default: the native module's answer. */
  running?: string;
}

export class Esp32Partitions implements Partitions {
  readonly #slots: readonly [string, string];
  readonly #running: string;
  readonly #open = new Map<string, Flash>();

  constructor(options: Esp32PartitionOptions = {}) {
    this.#slots = options.slots ?? ["ota_0", "ota_1"];
    this.#running = options.running ?? runningPartition();
    const labels = new Set<string>();
    for (const label of flash) labels.add(label);
    for (const slot of this.#slots) {
      if (!labels.has(slot)) throw new OtaError("partition-unknown", `the partition table has no app slot '${slot}'`);
    }
    if (!this.#slots.includes(this.#running)) {
      throw new OtaError("partition-unknown", `running from '${this.#running}', which is not one of the OTA slots ${this.#slots.join(", ")}`);
    }
  }

  open(name: string): Flash {
    let region = this.#open.get(name);
    if (!region) {
      const path = !this.#slots.includes(name) ? name : name === this.#running ? "running" : "nextota";
      let io: PartitionIo;
      try {
        io = flash.open({ path });
      } catch (e) {
        throw new OtaError("partition-unknown", `no partition named '${name}' (${e instanceof Error ? e.message : String(e)})`);
      }
      region = new Esp32Flash(io);
      this.#open.set(name, region);
    }
    return region;
  }

  running(): string {
    return this.#running;
  }

  appSlots(): string[] {
    return [...this.#slots];
  }
}
