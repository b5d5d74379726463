/**
 * Declarations for the Moddable modules hosts/esp32 uses that @moddable/typings 5.6.0 lacks,
 * each limited to what the host calls and written from Moddable's sources and documentation:
 *
 * - `embedded:storage/flash`: ECMA-419 flash storage as Moddable implements it on ESP32
 *   (modules/io/flash/esp32/flash-esp32.js and .c). `open({path})` finds a partition by label;
 *   only data partitions are found by label, app slots only as "running" and "nextota"
 *   (esp_ota_get_running_partition / esp_ota_get_next_update_partition), "xs" is the mods partition.
 * - `crypt`: Digest (documentation/crypt/crypt.md, modules/crypt/digest/crypt.js): hash names in
 *   capitals, `write` takes a String or a buffer, `close()` returns the digest as an ArrayBuffer.
 * - `xs-ota/esp32/native`: this host's own native module (hosts/esp32/native).
 */
declare module "embedded:storage/flash" {
  export interface FlashStatus {
    size: number;
    blockLength: number;
    blocks: number;
  }

  export interface Flash {
    close(): void;
    /** Erases blocks `start` up to, not including, `end` (default `start + 1`). */
    eraseBlock(start: number, end?: number): void;
    read(byteLength: number, byteOffset: number): ArrayBuffer;
    write(buffer: ArrayBuffer | ArrayBufferView, byteOffset: number): void;
    status(): FlashStatus;
    format: "buffer";
  }

  export interface OpenOptions {
    path: string;
    /** "r" opens read-only; "r+" (the default) for reading and writing. */
    mode?: "r" | "r+";
  }

  const flash: {
    open(options: OpenOptions): Flash;
    /** The labels of every partition in the table. */
    [Symbol.iterator](): Iterator<string>;
  };
  export default flash;
}

declare module "crypt" {
  export type DigestName = "MD5" | "SHA1" | "SHA224" | "SHA256" | "SHA384" | "SHA512";

  export class Digest {
    constructor(type: DigestName);
    write(data: string | ArrayBuffer | ArrayBufferView): void;
    close(): ArrayBuffer;
    reset(): void;
    readonly outputSize: number;
  }
}

declare module "xs-ota/esp32/native" {
  /** The partition-table label of the app slot the bootloader started. */
  export function runningPartition(): string;
}
