import { afterEach, describe, expect, it, vi } from "vitest";
import { FLASH_TIMINGS, FlashStall, eraseCost, imageFlashMs, writeCost, type FlashTiming } from "../hosts/sim/flash-timing.ts";
import { BridgeHost } from "../hosts/sim/bridge-host.ts";
import { NorFlash } from "../hosts/sim/nor-flash.ts";
import { MemoryStateStore } from "../hosts/sim/state-store.ts";
import { NodeHttp } from "../hosts/sim/http.ts";
import { frame, unframe } from "../hosts/sim/xs/bridge.ts";

const t = FLASH_TIMINGS["w25q32jv"] as FlashTiming;

describe("flash timing model", () => {
  it("erases an aligned 64 KB run as one block, the rest as sectors", () => {
    expect(eraseCost(t, 0x10000, 0x10000)).toEqual({ blocks: 1, sectors: 0, ms: 150 });
    expect(eraseCost(t, 0x10000, 0x1000)).toEqual({ blocks: 0, sectors: 1, ms: 45 });
    // 60 KB before the boundary, one block, 8 KB after: as spi_flash_erase_range splits it.
    expect(eraseCost(t, 0x11000, 0xf000 + 0x10000 + 0x2000)).toEqual({ blocks: 1, sectors: 17, ms: 150 + 17 * 45 });
    // 64 KB that is not aligned is 16 sectors.
    expect(eraseCost(t, 0x11000, 0x10000)).toEqual({ blocks: 0, sectors: 16, ms: 16 * 45 });
  });

  it("programs one page per 256-byte page a write touches", () => {
    expect(writeCost(t, 0, 256)).toEqual({ pages: 1, ms: 0.4 });
    expect(writeCost(t, 255, 2).pages).toBe(2);
    expect(writeCost(t, 0, 4096).pages).toBe(16);
    expect(writeCost(t, 100, 0)).toEqual({ pages: 0, ms: 0 });
  });

  it("gives an image's least flash time: its blocks erased as blocks, then programmed", () => {
    expect(imageFlashMs(t, 1024 * 1024)).toBeCloseTo(16 * 150 + 4096 * 0.4, 6);
    expect(imageFlashMs(t, 65536 + 4096)).toBeCloseTo(150 + 45 + 272 * 0.4, 6);
  });

  it("keeps the datasheet's figures and the issue's measured ESP32 ones", () => {
    expect(FLASH_TIMINGS["esp32"]).toMatchObject({ sectorEraseMs: 45, blockEraseMs: 150, pageProgramMs: 0.4 });
    const measured = FLASH_TIMINGS["esp32-measured"] as FlashTiming;
    expect(measured.sectorEraseMs).toBe(91);
    // 754 KB/s of writes.
    expect(writeCost(measured, 0, 754 * 1024).ms).toBeCloseTo(1000, 6);
  });

  it("schedules back-to-back operations without adding a late timer's delay", () => {
    const stall = new FlashStall();
    expect(stall.schedule(150, 1000)).toBe(1150);
    // The reply went out 2 ms late; the firmware asked again 1 ms after that.
    stall.replied(1150, 1152);
    expect(stall.schedule(6.4, 1153)).toBeCloseTo(1157.4, 9);
    stall.replied(1157.4, 1157.4);
    // After idle time the chip starts when asked.
    expect(stall.schedule(45, 2000)).toBe(2045);
  });
});

describe("the bridge stalls the firmware for the flash's time", () => {
  afterEach(() => vi.useRealTimers());

  it("answers a 64 KB block erase after 150 ms and a sector erase after 45 ms", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const flash = new NorFlash({ size: 4 * 1024 * 1024 });
    const bridge = new BridgeHost({
      flash,
      store: new MemoryStateStore(),
      http: new NodeHttp(),
      mqtt: undefined,
      identity: { thing: "t", board: "esp32", version: "1.0.0", cloud: { kind: "aws" }, keys: {}, config: {}, table: [], running: "ota_0", connected: false },
      log: () => undefined,
      restart: () => undefined,
      wake: () => undefined,
      flashTiming: t,
    });
    const answered = async (request: Uint8Array, ms: number) => {
      let done = false;
      const reply = Promise.resolve(bridge.serve(request)).then((r) => {
        done = true;
        return unframe(r).json;
      });
      await vi.advanceTimersByTimeAsync(ms - 1);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe(true);
      return reply;
    };
    expect(await answered(frame({ op: "flash.erase", first: 16, last: 32 }), 150)).toEqual({});
    expect(flash.data[0x10000]).toBe(0xff);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await answered(frame({ op: "flash.erase", first: 40, last: 41 }), 45)).toEqual({});
  });
});
