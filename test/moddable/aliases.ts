/**
 * The Moddable module specifiers the esp32 host and the test firmware import, resolved to the
 * stand-ins in ./fakes when the firmware is bundled for the XS test engine (bundleForXs's
 * `aliases`), so the host's own source runs unchanged.
 */
import { fileURLToPath } from "node:url";

const fake = (name: string) => fileURLToPath(new URL(`./fakes/${name}.ts`, import.meta.url));

export const MODDABLE_FAKES: Record<string, string> = {
  "embedded:storage/flash": fake("flash"),
  "embedded:network/http/client": fake("http-client"),
  "embedded:network/mqtt/client": fake("mqtt-client"),
  "embedded:io/socket/tcp": fake("tcp"),
  "embedded:io/socket/tcp/tls": fake("tls"),
  "xs-ota/esp32/native": fake("native"),
  preference: fake("preference"),
  crypt: fake("crypt"),
  timer: fake("timer"),
  time: fake("time"),
  "mc/config": fake("config"),
};

/** The first module of every test firmware: the globals Moddable provides (trace, System). */
export const MODDABLE_GLOBALS = fake("globals");

/** Preference inside XS with erase-then-write sets and power cuts (for the StateStore sweep). */
export const PREFERENCE_WITH_CUTS = fake("preference-nvs");
