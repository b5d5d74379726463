/**
 * The embedded MQTT broker: aedes 1.x behind a node:net server on 127.0.0.1. aedes 1.x has no
 * default export; `Aedes.createBroker()` constructs and awaits `listen()` (persistence setup),
 * which must happen before clients connect. Persistence is aedes' memory store: sessions
 * (clean: false) survive a dropped connection but not `close()`.
 */
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Aedes } from "aedes";
import type { StreamBroker } from "./aws-streams.ts";
import { reservedTopicBroker } from "./reserved-topics.ts";

export interface EmbeddedBroker {
  /** mqtt://127.0.0.1:<port> */
  url: string;
  port: number;
  aedes: Aedes;
  /** What the cloud's services use: `aedes`, with AWS's reserved-topic answers (cloud/reserved-topics.ts). */
  broker: StreamBroker;
  /** Cuts every client connection from the broker side (no DISCONNECT); sessions stay. */
  dropConnections(): void;
  /** Closes every connection, the broker and the listening socket. */
  close(): Promise<void>;
}

/** Starts a broker on 127.0.0.1, on `port` if given (0 or absent: any free port). */
export async function startEmbeddedBroker(options: { port?: number } = {}): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const broker = reservedTopicBroker(aedes);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    aedes.handle(socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (e) {
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    aedes,
    broker,
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}
