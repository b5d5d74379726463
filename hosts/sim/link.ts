/**
 * A slow network link between a simulated device and the cloud: a TCP proxy on loopback that
 * holds every byte for the link's serialisation time (rate) and its one-way delay, in each
 * direction, with a bounded queue in front of the link. There is no netem here; this is it.
 *
 * The proxy is two TCP connections, so nothing is ever dropped: a full queue stops reading from
 * the sender (whose TCP then backs off, as a full bottleneck queue makes it back off), and a
 * receiver that stops reading (a device busy in its flash driver) stops the link behind it once
 * its socket buffers are full. Bytes already on the wire still arrive. Counts are TCP payload
 * bytes; the packets' own headers and ACKs are not modelled.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";

export interface LinkOptions {
  /** Bytes per second, each direction. */
  rate: number;
  /** One-way delay in milliseconds. */
  delayMs: number;
  /** Bytes waiting to be serialised before the sender is held back (default 64 KB). */
  queueBytes?: number;
  /** Bytes serialised as one unit (default 1460, an Ethernet TCP segment). */
  segment?: number;
}

/** The clock arithmetic of one direction, apart from sockets so it can be checked with any clock. */
export class LinkSchedule {
  readonly rate: number;
  readonly delayMs: number;
  readonly segment: number;
  #free = -Infinity;

  constructor(o: LinkOptions) {
    if (!(o.rate > 0) || !(o.delayMs >= 0)) throw new RangeError("a link needs a rate above 0 and a delay of 0 or more");
    this.rate = o.rate;
    this.delayMs = o.delayMs;
    this.segment = o.segment ?? 1460;
  }

  /** Bytes handed to the link at `now`: when each segment of them arrives at the far end. */
  send(length: number, now: number): { length: number; at: number }[] {
    const out: { length: number; at: number }[] = [];
    for (let at = 0; at < length; at += this.segment) {
      const n = Math.min(this.segment, length - at);
      this.#free = Math.max(now, this.#free) + (n * 1000) / this.rate;
      out.push({ length: n, at: this.#free + this.delayMs });
    }
    return out;
  }

  /** Bytes still waiting to be serialised at `now`. */
  backlog(now: number): number {
    return Math.max(0, ((this.#free - now) * this.rate) / 1000);
  }
}

/** One direction of one connection: reads `from`, delivers into `to` on the schedule. */
class Pipe {
  readonly #schedule: LinkSchedule;
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #queueBytes: number;
  readonly #count: (n: number) => void;
  readonly #line: { bytes: Uint8Array; at: number }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #held = { queue: false, receiver: false };

  constructor(o: LinkOptions, from: Socket, to: Socket, count: (n: number) => void) {
    this.#schedule = new LinkSchedule(o);
    this.#queueBytes = o.queueBytes ?? 64 * 1024;
    this.#from = from;
    this.#to = to;
    this.#count = count;
    from.on("data", (chunk: Buffer) => this.#take(chunk));
    from.on("end", () => {
      this.#ended = true;
      this.#flush();
    });
    to.on("drain", () => this.#hold("receiver", false));
  }

  #take(chunk: Buffer): void {
    const now = performance.now();
    let at = 0;
    for (const s of this.#schedule.send(chunk.length, now)) {
      this.#line.push({ bytes: chunk.subarray(at, at + s.length), at: s.at });
      at += s.length;
    }
    this.#count(chunk.length);
    const backlog = this.#schedule.backlog(now);
    if (backlog > this.#queueBytes) {
      this.#hold("queue", true);
      setTimeout(() => this.#hold("queue", false), ((backlog - this.#queueBytes / 2) * 1000) / this.#schedule.rate);
    }
    this.#arm();
  }

  #hold(why: "queue" | "receiver", on: boolean): void {
    this.#held[why] = on;
    if (this.#held.queue || this.#held.receiver) this.#from.pause();
    else this.#from.resume();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#line.length === 0) return;
    const head = this.#line[0];
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, Math.max(0, (head?.at ?? 0) - performance.now()));
  }

  /** Writes every segment that has arrived, as one write. */
  #flush(): void {
    const now = performance.now();
    const due: Uint8Array[] = [];
    while (this.#line.length > 0 && (this.#line[0]?.at ?? Infinity) <= now) due.push((this.#line.shift() as { bytes: Uint8Array }).bytes);
    if (due.length > 0 && !this.#to.destroyed && !this.#to.write(Buffer.concat(due))) this.#hold("receiver", true);
    if (this.#line.length === 0 && this.#ended && !this.#to.destroyed) this.#to.end();
    this.#arm();
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#line.length = 0;
  }
}

export interface LinkCounters {
  /** Payload bytes device -> cloud and cloud -> device. */
  up: number;
  down: number;
  connections: number;
}

/** Listens on 127.0.0.1 and forwards each connection to `target` through the link model. */
export class LinkProxy {
  readonly #o: LinkOptions;
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  counters: LinkCounters = { up: 0, down: 0, connections: 0 };

  constructor(target: { host?: string; port: number }, options: LinkOptions) {
    this.#o = options;
    this.#target = { host: target.host ?? "127.0.0.1", port: target.port };
  }

  /** Resolves with the port it listens on. */
  async start(port = 0): Promise<number> {
    const server = createServer({ allowHalfOpen: true }, (client) => this.#accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    return (server.address() as AddressInfo).port;
  }

  resetCounters(): void {
    this.counters = { up: 0, down: 0, connections: 0 };
  }

  #accept(client: Socket): void {
    this.counters.connections++;
    // The TCP handshake to the cloud rides the link too: the client's connect completed at
    // once on loopback, so its first bytes wait here for the round trip the SYN would take.
    const server = connect({ ...this.#target, noDelay: true, allowHalfOpen: true });
    client.setNoDelay(true);
    client.pause();
    for (const s of [client, server]) {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    }
    const pipes = [new Pipe(this.#o, client, server, (n) => (this.counters.up += n)), new Pipe(this.#o, server, client, (n) => (this.counters.down += n))];
    const close = () => {
      for (const p of pipes) p.close();
      client.destroy();
      server.destroy();
    };
    client.on("error", close);
    server.on("error", close);
    client.on("close", () => server.end());
    server.on("close", () => client.end());
    server.once("connect", () => setTimeout(() => client.resume(), 2 * this.#o.delayMs));
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
