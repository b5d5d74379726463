/**
 * How long a simulated ESP32's SPI NOR takes to erase and program, so that the simulator stalls
 * the firmware as the chip would (off unless a board asks for it: `xs-ota sim --flash-timing`).
 *
 * Figures: Winbond W25Q32JV datasheet (3V 32M-bit serial flash, revision F, May 2017), AC
 * electrical characteristics, typical values at 25 °C: tSE 4 KB sector erase 45 ms (max 400),
 * tBE2 64 KB block erase 150 ms (max 2000), tPP page program 0.4 ms (max 3) for a 256-byte page
 * (the figures as issue 14 quotes that table; the PDF itself could not be read from here).
 * A 4 MB NOR of that class is what ESP32 modules carry. These are the defaults ("esp32", also
 * named "w25q32jv"); the issue's own ESP32 measurements (91 ms per sector erase, writes at about
 * 754 KB/s) are slower per sector and faster per byte, and are kept as "esp32-measured", whose
 * 64 KB block erase is the datasheet's block/sector ratio applied to the measured sector (the
 * issue did not measure a block erase). "w25q32jv-max" is the datasheet's worst case.
 *
 * An erase of a range is split as ESP-IDF's spi_flash_erase_range splits it: each 64 KB-aligned
 * run of 64 KB inside it is one block erase, the rest are 4 KB sector erases. A write costs one
 * page program per 256-byte page it touches (spi_flash_write splits at page boundaries).
 * No platform imports.
 */

export interface FlashTiming {
  name: string;
  sectorEraseMs: number;
  blockEraseMs: number;
  /** One page program (a whole or partial page). */
  pageProgramMs: number;
}

export const SECTOR = 4096;
export const BLOCK = 64 * 1024;
export const PAGE = 256;

const W25Q32JV: FlashTiming = { name: "w25q32jv", sectorEraseMs: 45, blockEraseMs: 150, pageProgramMs: 0.4 };

export const FLASH_TIMINGS: Readonly<Record<string, FlashTiming>> = Object.freeze({
  esp32: { ...W25Q32JV, name: "esp32" },
  w25q32jv: W25Q32JV,
  "w25q32jv-max": { name: "w25q32jv-max", sectorEraseMs: 400, blockEraseMs: 2000, pageProgramMs: 3 },
  "esp32-measured": { name: "esp32-measured", sectorEraseMs: 91, blockEraseMs: (91 * 150) / 45, pageProgramMs: (PAGE / (754 * 1024)) * 1000 },
});

export interface EraseCost {
  blocks: number;
  sectors: number;
  ms: number;
}

/** The block and sector erases that erase [offset, offset + length) (both multiples of 4 KB), and their time. */
export function eraseCost(t: FlashTiming, offset: number, length: number): EraseCost {
  let blocks = 0;
  let sectors = 0;
  const end = offset + length;
  for (let at = offset; at < end; ) {
    if (at % BLOCK === 0 && end - at >= BLOCK) {
      blocks++;
      at += BLOCK;
    } else {
      sectors++;
      at += SECTOR;
    }
  }
  return { blocks, sectors, ms: blocks * t.blockEraseMs + sectors * t.sectorEraseMs };
}

/** Page programs a write of `length` bytes at `offset` needs, and their time. */
export function writeCost(t: FlashTiming, offset: number, length: number): { pages: number; ms: number } {
  if (length <= 0) return { pages: 0, ms: 0 };
  const pages = Math.floor((offset + length - 1) / PAGE) - Math.floor(offset / PAGE) + 1;
  return { pages, ms: pages * t.pageProgramMs };
}

/** The least flash time an image of `size` bytes needs: its 64 KB blocks erased as blocks (the rest as sectors), then programmed. */
export function imageFlashMs(t: FlashTiming, size: number): number {
  const erased = Math.ceil(size / SECTOR) * SECTOR;
  return eraseCost(t, 0, erased).ms + writeCost(t, 0, size).ms;
}

/**
 * When each flash call returns: the chip is busy from the call (or from the end of the one before,
 * if that is later) for the operation's time. Timers fire late by a millisecond or so, and over
 * hundreds of calls that would add up to time the chip never took; so the lateness of the reply
 * before is taken off the next start (the firmware's own work between the calls still counts, as
 * it takes real time).
 */
export class FlashStall {
  #busyUntil = -Infinity;
  #lateness = 0;

  /** The moment (same clock as `now`) the operation of `ms` asked at `now` completes. */
  schedule(ms: number, now: number): number {
    const start = Math.max(now - this.#lateness, this.#busyUntil);
    this.#lateness = 0;
    this.#busyUntil = start + ms;
    return this.#busyUntil;
  }

  /** The reply for the operation due at `due` went out at `now`. */
  replied(due: number, now: number): void {
    this.#lateness = Math.max(0, now - due);
  }
}
