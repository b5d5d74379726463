/**
 * The app's ECMA-419 network providers (`{ io, dns, socket }`), as Moddable's io examples make
 * them: the HTTP and MQTT clients over lwIP TCP, through Moddable's TLS socket for https and
 * mqtts, names resolved over UDP DNS. The xs-ota host builds each connection from these.
 */
import TCP from "embedded:io/socket/tcp";
import UDP from "embedded:io/socket/udp";
import TLSSocket from "embedded:io/socket/tcp/tls";
import Resolver from "embedded:network/dns/resolver/udp";
import HTTPClient from "embedded:network/http/client";
import MQTTClient from "embedded:network/mqtt/client";
import type { NetworkProviders } from "xs-ota/esp32/host";

export function networkProviders(dnsServer: string): NetworkProviders {
  const dns = { io: Resolver, servers: [dnsServer], socket: { io: UDP } };
  const tls = { io: TLSSocket, TCP: { io: TCP } };
  return {
    http: { io: HTTPClient, dns, socket: { io: TCP } },
    https: { io: HTTPClient, dns, socket: tls },
    mqtt: { io: MQTTClient, dns, socket: { io: TCP } },
    mqtts: { io: MQTTClient, dns, socket: tls },
  };
}
