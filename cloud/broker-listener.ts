/**
 * What every local-cloud service does with the broker: subscribe to its topic filters and handle
 * what arrives one message at a time, in arrival order, so that answers keep the order of the
 * requests. Other work (a control-plane change that must not interleave with requests) joins the
 * same queue. A failure while handling goes to `lastError`; the service goes on.
 */
import type { BrokerPacket, StreamBroker } from "./aws-streams.ts";

export class BrokerListener {
  /** The last failure while handling or doing queued work. */
  lastError: unknown;
  #queue: Promise<void> = Promise.resolve();
  #started = false;

  readonly #deliver = (packet: BrokerPacket, done: () => void): void => {
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload, "utf8") : Buffer.from(packet.payload);
    const topic = packet.topic;
    this.enqueue(() => this.handle(topic, payload)).catch(() => undefined);
    done();
  };

  constructor(
    readonly broker: StreamBroker,
    readonly filters: readonly string[],
    readonly handle: (topic: string, payload: Buffer) => Promise<void>,
  ) {}

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const filter of this.filters) await new Promise<void>((resolve) => this.broker.subscribe(filter, this.#deliver, resolve));
  }

  /** Stops listening and waits until everything received so far is handled. */
  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    for (const filter of this.filters) await new Promise<void>((resolve) => this.broker.unsubscribe(filter, this.#deliver, resolve));
    await this.idle();
  }

  /** Resolves when everything queued so far (and whatever that queued) is done. */
  async idle(): Promise<void> {
    let seen: Promise<void>;
    do {
      seen = this.#queue;
      await seen;
    } while (seen !== this.#queue);
  }

  /** Runs `work` after everything queued before it; its failure is both returned and kept. */
  enqueue(work: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(work);
    this.#queue = run.catch((e: unknown) => {
      this.lastError = e;
    });
    return run;
  }
}
