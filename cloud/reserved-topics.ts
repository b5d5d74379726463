/**
 * AWS IoT Core's answers on reserved topics, for the embedded broker (Node only).
 *
 * On AWS, a device that publishes a Jobs request (`$aws/things/T/jobs/$next/get`, `.../<jobId>/get`,
 * `.../<jobId>/update`, `.../jobs/get`, `.../jobs/start-next`) gets the answer on the request's
 * `/accepted` or `/rejected` topic "whether or not your client has subscribed to the response
 * message topics"; those answers "don't pass through the message broker and can't be subscribed to
 * by other clients or rules" (AWS IoT Developer Guide, "Jobs device MQTT API operations").
 * AWS's own C OTA agent relies on it: it subscribes to notify-next only. Notifications
 * (notify, notify-next) are ordinary messages: they need a subscription.
 *
 * `reservedTopicBroker(aedes)` is the StreamBroker the cloud's services use on the embedded aedes.
 * A request a client publishes reaches a service's subscription tagged with that client (aedes puts
 * the publisher's id on the packet); the tag follows the service's asynchronous handling (an
 * AsyncLocalStorage), and when the service publishes on one of that request's answer topics
 * (`answerTopics`), the message is written to the requesting client alone (aedes'
 * `client.publish`), whatever it subscribed to: one copy, never a second through a subscription,
 * and no other client gets it. Everything else (notify-next, EnOS, answers to requests that no
 * client made) is published through the broker as before.
 *
 * MQTT file streams are treated the same way: GetStream's blocks on `.../streams/S/data/<fmt>` and
 * its errors on `.../rejected/<fmt>`, DescribeStream's `.../description/<fmt>`. AWS's guide tells
 * devices to subscribe to these; whether AWS also delivers them unasked, or to other subscribers,
 * it does not say. Here they go to the requester only, as Jobs answers do.
 *
 * QoS: the service's, lowered to the best QoS of the requester's subscriptions that match the
 * topic, if it has any (a broker may not send above a subscription's QoS). A requester that is not
 * connected when the answer is ready does not get it.
 *
 * An external broker (`--broker`, Mosquitto...) cannot do this: there the services are one more
 * client, and answers reach only the clients subscribed to them.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import type { Aedes, AedesPublishPacket, Client } from "aedes";
import type { BrokerPacket, BrokerPublish, StreamBroker } from "./aws-streams.ts";

type Deliver = (packet: BrokerPacket, done: () => void) => void;

/** The request a service is answering: who asked, on which topic. */
interface Request {
  clientId: string;
  topic: string;
}

/** The topics AWS answers a request published on `topic` with; [] when it is no such request. */
export function answerTopics(topic: string): string[] {
  const levels = topic.split("/");
  if (levels[0] !== "$aws" || levels[1] !== "things" || !levels[2]) return [];
  if (levels[3] === "jobs") {
    const request =
      (levels.length === 5 && (levels[4] === "get" || levels[4] === "start-next")) ||
      (levels.length === 6 && levels[4] !== "" && (levels[5] === "get" || levels[5] === "update"));
    return request ? [`${topic}/accepted`, `${topic}/rejected`] : [];
  }
  if (levels[3] === "streams" && levels.length === 7 && levels[4] && (levels[6] === "cbor" || levels[6] === "json")) {
    const base = levels.slice(0, 5).join("/");
    const format = levels[6];
    if (levels[5] === "get") return [`${base}/data/${format}`, `${base}/rejected/${format}`];
    if (levels[5] === "describe") return [`${base}/description/${format}`, `${base}/rejected/${format}`];
  }
  return [];
}

/** MQTT 3.1.1 topic matching: `+` one level, `#` the rest; a leading wildcard never matches `$...`. */
export function topicMatches(filter: string, topic: string): boolean {
  if ((filter.startsWith("+") || filter.startsWith("#")) && topic.startsWith("$")) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return i === f.length - 1;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * The QoS of `client`'s best subscription matching `topic`, or undefined without one. aedes keeps
 * a client's subscriptions in `client.subscriptions` (filter -> {qos}), which its typings leave out.
 */
function subscribedQos(client: Client, topic: string): number | undefined {
  const subscriptions = (client as Client & { subscriptions?: Record<string, { qos?: number } | undefined> }).subscriptions;
  if (subscriptions === undefined || subscriptions === null) return undefined;
  let best: number | undefined;
  for (const [filter, sub] of Object.entries(subscriptions)) {
    const qos = sub?.qos ?? 0;
    if (qos <= 2 && topicMatches(filter, topic)) best = Math.max(best ?? 0, qos);
  }
  return best;
}

/** The StreamBroker for the cloud's services on an embedded aedes; see the file's comment. */
export function reservedTopicBroker(aedes: Aedes): StreamBroker {
  const asking = new AsyncLocalStorage<Request>();
  const clients = new Map<string, Client>();
  aedes.on("client", (client) => clients.set(client.id, client));
  aedes.on("clientDisconnect", (client) => {
    if (clients.get(client.id) === client) clients.delete(client.id);
  });
  // The wrapped deliver of each (deliver, filter), so that unsubscribe finds what aedes holds.
  const wrapped = new Map<Deliver, Map<string, (packet: AedesPublishPacket, done: () => void) => void>>();

  const answer = (request: Request, packet: BrokerPublish, done: (error?: Error) => void): void => {
    const client = clients.get(request.clientId);
    if (client === undefined || client.closed) return done();
    const granted = subscribedQos(client, packet.topic);
    const qos = granted === undefined ? packet.qos : (Math.min(packet.qos, granted) as 0 | 1);
    // The service's answer has left it; a requester that went away is not its failure.
    client.publish({ cmd: "publish", topic: packet.topic, payload: packet.payload, qos, retain: false, dup: false }, () => done());
  };

  return {
    subscribe(filter, deliver, ready) {
      const inner = (packet: AedesPublishPacket, done: () => void): void => {
        const clientId = (packet as AedesPublishPacket & { clientId?: unknown }).clientId;
        if (typeof clientId === "string" && answerTopics(packet.topic).length > 0) asking.run({ clientId, topic: packet.topic }, () => deliver(packet, done));
        else deliver(packet, done);
      };
      let byFilter = wrapped.get(deliver);
      if (byFilter === undefined) wrapped.set(deliver, (byFilter = new Map()));
      byFilter.set(filter, inner);
      aedes.subscribe(filter, inner, ready);
    },
    unsubscribe(filter, deliver, done) {
      const byFilter = wrapped.get(deliver);
      const inner = byFilter?.get(filter);
      if (byFilter === undefined || inner === undefined) return done();
      byFilter.delete(filter);
      if (byFilter.size === 0) wrapped.delete(deliver);
      aedes.unsubscribe(filter, inner, done);
    },
    publish(packet, done) {
      const request = asking.getStore();
      if (request !== undefined && answerTopics(request.topic).includes(packet.topic)) return answer(request, packet, done);
      aedes.publish(packet, done);
    },
  };
}
