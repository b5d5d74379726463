/**
 * AWS IoT's usual device policy as a guard of the embedded broker (cloud/embedded-broker.ts): a
 * client that connected with a thing certificate (its `thingName`, from the certificate's CN)
 * may publish and subscribe under `$aws/things/<its thing>/...` only, as a policy written with
 * `iot:Connection.Thing.ThingName` allows. Everything outside `$aws/things/` is let through, and
 * so are clients of the plain listener (no thing name: local use). The client id is not checked:
 * AWS lets it differ from the thing name unless a policy says otherwise.
 *
 * A subscription is refused when its filter could match another thing's topic, not only when it
 * names one: `$aws/things/+/...`, `$aws/things/#`, `$aws/#` and `$aws/+/<other>/...` are refused
 * too. (A filter that starts with a wildcard never matches a `$` topic, so `#` and `+/...` pass.)
 */
import type { BrokerGuard, GuardedClient } from "./embedded-broker.ts";

/** Why `thing` may not use `topic` (a topic name or a filter), or undefined when it may. */
export function foreignThingTopic(thing: string, topic: string): string | undefined {
  const levels = topic.split("/");
  if (levels[0] !== "$aws") return undefined;
  const second = levels[1];
  if (second === "#") return `${topic} would reach other things' topics`;
  if (second !== "things" && second !== "+") return undefined;
  const third = levels[2];
  if (third === undefined || third === thing) return undefined;
  if (third === "+" || third === "#") return `${topic} would reach other things' topics (a wildcard at the thing level)`;
  return `${topic} belongs to thing ${JSON.stringify(third)}`;
}

function check(client: GuardedClient, topic: string): string | undefined {
  if (client.thingName === undefined) return undefined;
  const problem = foreignThingTopic(client.thingName, topic);
  return problem === undefined ? undefined : `thing ${client.thingName}'s certificate does not allow it: ${problem}`;
}

/** The guard: publish and subscribe limited to the certificate's own thing. */
export function thingPolicy(): BrokerGuard {
  return { publish: check, subscribe: check };
}
