import { describe, expect, it } from "vitest";
import { createServer, connect, type AddressInfo, type Socket } from "node:net";
import { LinkProxy, LinkSchedule } from "../hosts/sim/link.ts";

describe("link schedule", () => {
  it("serialises segments at the rate, then adds the one-way delay", () => {
    const s = new LinkSchedule({ rate: 1000, delayMs: 50, segment: 100 });
    // 250 bytes at 1000 B/s: segments end at 100, 200 and 250 ms, each arriving 50 ms later.
    expect(s.send(250, 0)).toEqual([
      { length: 100, at: 150 },
      { length: 100, at: 250 },
      { length: 50, at: 300 },
    ]);
    expect(s.backlog(0)).toBeCloseTo(250, 9);
    expect(s.backlog(100)).toBeCloseTo(150, 9);
    // Queued behind what is still being serialised.
    expect(s.send(100, 100)).toEqual([{ length: 100, at: 400 }]);
    // An idle link starts at once.
    expect(s.send(10, 1000)).toEqual([{ length: 10, at: 1060 }]);
    expect(s.backlog(2000)).toBe(0);
  });

  it("refuses a link without a rate", () => {
    expect(() => new LinkSchedule({ rate: 0, delayMs: 1 })).toThrow(RangeError);
  });
});

describe("link proxy", () => {
  it("delivers bytes intact and in order both ways, and counts them", async () => {
    const echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", () => r()));
    const proxy = new LinkProxy({ port: (echo.address() as AddressInfo).port }, { rate: 20e6, delayMs: 1, queueBytes: 16 * 1024 });
    const port = await proxy.start();
    const sent = new Uint8Array(300_000);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 2654435761) >>> 24;
    const client: Socket = connect({ port, host: "127.0.0.1" });
    const chunks: Buffer[] = [];
    let got = 0;
    const done = new Promise<void>((resolve) =>
      client.on("data", (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= sent.length) resolve();
      }),
    );
    for (let at = 0; at < sent.length; at += 7000) client.write(sent.subarray(at, at + 7000));
    await done;
    expect(Buffer.concat(chunks).equals(Buffer.from(sent))).toBe(true);
    expect(proxy.counters).toMatchObject({ up: sent.length, down: sent.length, connections: 1 });
    client.destroy();
    await proxy.close();
    await new Promise<void>((r) => echo.close(() => r()));
  });
});
