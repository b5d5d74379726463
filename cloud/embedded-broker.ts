/**
 * The embedded MQTT broker: aedes 1.x behind a node:net server on 127.0.0.1. aedes 1.x has no
 * default export; `Aedes.createBroker()` constructs and awaits `listen()` (persistence setup),
 * which must happen before clients connect. Persistence is aedes' memory store: sessions
 * (clean: false) survive a dropped connection but not `close()`.
 *
 * With `tls`, a second listener on 127.0.0.1 speaks MQTT over mutual TLS, as AWS IoT Core does on
 * 8883: TLS 1.2 or newer, and the client must present a certificate issued by `tls.ca`, or the
 * handshake fails before any MQTT. The verified certificate's CN is the client's `thingName` for
 * the guards (AWS policies' `iot:Connection.Thing.ThingName`); a certificate with no single CN
 * names no thing and its connection is closed. The plain listener stays for local use; its
 * clients have no thing name.
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, TLSSocket } from "node:tls";
import { Aedes, type AuthenticateError, type Client } from "aedes";
import type { StreamBroker } from "./aws-streams.ts";
import { reservedTopicBroker } from "./reserved-topics.ts";

/** A connection as the broker's guards see it. */
export interface GuardedClient {
  /** The MQTT client id of the CONNECT. */
  id: string;
  /** The user name the client logged in with. */
  username?: string;
  /** The CN of the verified client certificate on the TLS listener; undefined on the plain one. */
  thingName?: string;
}

/**
 * A cloud's rules for who may connect and use which topics (AWS policies, EnOS device login).
 * Each returns undefined to let the request through, or the reason it is refused. Every guard
 * is asked; the first refusal wins. A refused CONNECT gets CONNACK 4 (bad user name or
 * password), a refused SUBSCRIBE the failure code 0x80 for that filter, and a refused PUBLISH
 * closes the connection (MQTT 3.1.1 has no way to refuse a PUBLISH; AWS IoT Core does the same).
 */
export interface BrokerGuard {
  connect?(client: GuardedClient, password: Uint8Array | undefined): string | undefined;
  publish?(client: GuardedClient, topic: string): string | undefined;
  subscribe?(client: GuardedClient, filter: string): string | undefined;
}

export interface EmbeddedBrokerOptions {
  /** 0 or absent: any free port. */
  port?: number;
  guards?: BrokerGuard[];
  /** A mutual-TLS listener next to the plain one: the CA clients' certificates must chain to, and the server's certificate and key (PEM). */
  tls?: { port?: number; ca: string; cert: string; key: string };
}

export interface EmbeddedBroker {
  /** mqtt://127.0.0.1:<port> */
  url: string;
  port: number;
  /** mqtts://127.0.0.1:<port>, with `tls` only. */
  mqttsUrl?: string;
  mqttsPort?: number;
  aedes: Aedes;
  /** What the cloud's services use: `aedes`, with AWS's reserved-topic answers (cloud/reserved-topics.ts). */
  broker: StreamBroker;
  /** Cuts every client connection from the broker side (no DISCONNECT); sessions stay. */
  dropConnections(): void;
  /** Closes every connection, the broker and the listening socket. */
  close(): Promise<void>;
  /** Why connections were refused, newest last (at most 100 kept): what a test or a log shows. */
  refusals: string[];
}

const MAX_REFUSALS = 100;

/** Installs the guards on aedes' hooks; every refusal's reason goes to `refusals`. */
function guard(aedes: Aedes, guards: BrokerGuard[], refusals: string[]): void {
  const users = new WeakMap<Client, string | undefined>();
  const things = new WeakMap<Client, string>();
  const who = (client: Client): GuardedClient => ({ id: client.id, username: users.get(client), thingName: things.get(client) });
  const refuse = (client: Client, what: string, reason: string): Error => {
    refusals.push(`${client.id}: ${what}: ${reason}`);
    if (refusals.length > MAX_REFUSALS) refusals.shift();
    return new Error(reason);
  };
  const first = (ask: (g: BrokerGuard) => string | undefined): string | undefined => {
    for (const g of guards) {
      const reason = ask(g);
      if (reason !== undefined) return reason;
    }
    return undefined;
  };
  aedes.authenticate = (client, username, password, done) => {
    users.set(client, username ?? undefined);
    // aedes' client.conn is the socket it was handed: a TLSSocket only from the TLS listener.
    const thing = client.conn instanceof TLSSocket ? certificateThing(client.conn) : undefined;
    if (thing !== undefined) things.set(client, thing);
    const reason = first((g) => g.connect?.(who(client), password ? new Uint8Array(password) : undefined));
    if (reason === undefined) return done(null, true);
    const error = refuse(client, "connect", reason) as AuthenticateError;
    error.returnCode = 4;
    done(error, false);
  };
  aedes.authorizePublish = (client, packet, done) => {
    if (client === null) return done(null);
    const reason = first((g) => g.publish?.(who(client), packet.topic));
    done(reason === undefined ? null : refuse(client, `publish ${packet.topic}`, reason));
  };
  aedes.authorizeSubscribe = (client, subscription, done) => {
    const reason = first((g) => g.subscribe?.(who(client), subscription.topic));
    if (reason === undefined) return done(null, subscription);
    refuse(client, `subscribe ${subscription.topic}`, reason);
    done(null, null);
  };
}

/** The single CN of a verified peer certificate, or undefined. */
function certificateThing(socket: TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cn: unknown = socket.getPeerCertificate().subject?.CN;
  return typeof cn === "string" && cn !== "" ? cn : undefined;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

const closeServer = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

/** Starts a broker on 127.0.0.1, on `port` if given (0 or absent: any free port). */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker();
  const refusals: string[] = [];
  if (options.guards?.length) guard(aedes, options.guards, refusals);
  const broker = reservedTopicBroker(aedes);
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  };
  const server = createServer((socket) => {
    track(socket);
    aedes.handle(socket);
  });
  const servers: Server[] = [server];
  let port: number;
  let tlsPort: number | undefined;
  try {
    port = await listen(server, options.port ?? 0);
    if (options.tls !== undefined) {
      const { ca, cert, key } = options.tls;
      const tlsServer = createTlsServer({ ca, cert, key, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" }, (socket) => {
        track(socket);
        if (certificateThing(socket) !== undefined) return aedes.handle(socket);
        refusals.push(`${socket.remoteAddress ?? "?"}:${socket.remotePort ?? "?"}: TLS: the client certificate has no single CN (no thing name)`);
        if (refusals.length > MAX_REFUSALS) refusals.shift();
        socket.destroy();
      });
      // The TCP socket too, so that close() and dropConnections() also cut handshakes under way.
      tlsServer.on("connection", track);
      // A failed handshake (no certificate, another CA) is the client's failure, not the broker's.
      tlsServer.on("tlsClientError", () => undefined);
      servers.push(tlsServer);
      tlsPort = await listen(tlsServer, options.tls.port ?? 0);
    }
  } catch (e) {
    for (const s of servers) if (s.listening) await closeServer(s);
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    throw e;
  }
  let closing: Promise<void> | undefined;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    ...(tlsPort !== undefined ? { mqttsUrl: `mqtts://127.0.0.1:${tlsPort}`, mqttsPort: tlsPort } : {}),
    aedes,
    broker,
    refusals,
    dropConnections() {
      for (const socket of sockets) socket.destroy();
    },
    close() {
      closing ??= (async () => {
        await new Promise<void>((resolve) => aedes.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await Promise.all(servers.map(closeServer));
      })();
      return closing;
    },
  };
}
