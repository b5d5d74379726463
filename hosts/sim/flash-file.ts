/**
 * A NOR flash chip kept in a file, so a simulated device keeps its flash across runs. Every
 * change is written through to the file before the operation returns, so killing the process
 * behaves like cutting the power after that operation.
 */
import { closeSync, existsSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { OtaError } from "../../modules/errors.ts";
import { NorFlash } from "./nor-flash.ts";

export interface FlashFile {
  flash: NorFlash;
  close(): void;
}

/** Opens `path` as a flash chip of `size` bytes; a missing file starts as an erased chip. */
export function openFlashFile(path: string, size: number, options: { strict?: boolean } = {}): FlashFile {
  const created = !existsSync(path);
  const fd = openSync(path, created ? "w+" : "r+");
  const data = new Uint8Array(size).fill(0xff);
  if (created) {
    writeSync(fd, data, 0, size, 0);
  } else {
    const actual = fstatSync(fd).size;
    if (actual !== size) {
      closeSync(fd);
      throw new OtaError("bad-argument", `${path} holds ${actual} bytes of flash, expected ${size}`);
    }
    readSync(fd, data, 0, size, 0);
  }
  const flash = new NorFlash({
    size,
    data,
    strict: options.strict,
    onChange: (offset, length) => writeSync(fd, data, offset, length, offset),
  });
  return { flash, close: () => closeSync(fd) };
}
