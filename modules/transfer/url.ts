/**
 * The part of URL handling a downloader needs, for engines without a URL class (XS): absolute
 * http(s) URLs split into parts, and redirect Locations resolved against the URL they came from
 * (RFC 3986 section 5.2, for the reference forms servers send: absolute, scheme-relative,
 * absolute-path and relative-path).
 */
import { OtaError } from "../errors.ts";
import { escapeOther, hasOtherCharacter } from "../codec/unicode.ts";

/** The longest URL taken (S3 presigned URLs run to about 1,500 characters). */
export const MAX_URL_LENGTH = 2048;

export interface HttpUrl {
  scheme: "http" | "https";
  /** Host name or bracketed IPv6 literal, lower case. */
  host: string;
  port: number;
  /** Path and query, at least "/". */
  path: string;
}

// RegExps are made per call, never kept at module level: in flash (preload) a RegExp has no
// match data, and Moddable's XS (8.2.3) crashes in exec's temporary copy once a collection runs.
const ABSOLUTE = () => /^(https?):\/\/([^/?#@]*@)?(\[[0-9a-fA-F:.]+\]|[^/?#:\[\]]+)(?::(\d{1,5}))?([/?][^#]*)?(#.*)?$/i;

/** Four decimal numbers 0..255 without leading zeros, as a resolver reads an IPv4 address. */
function isDottedQuad(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 && parts.every((n) => /^(0|[1-9][0-9]{0,2})$/.test(n) && Number(n) <= 255);
}

/** RFC 4291 2.2: eight groups of 1 to 4 hex digits, one "::" for a run of zeros, a dotted IPv4 tail. */
function checkIpv6(text: string): void {
  const refuse = () => {
    throw new OtaError("bad-argument", `host [${escapeOther(text.slice(0, 60))}] is not an IPv6 address`);
  };
  const halves = text.split("::");
  if (halves.length > 2) refuse();
  const groups = halves.map((h) => (h === "" ? [] : h.split(":")));
  const all = groups.flat();
  let count = all.length;
  const last = all[all.length - 1];
  if (last !== undefined && last.includes(".")) {
    if (!isDottedQuad(last)) refuse();
    count++;
    all.pop();
  }
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) refuse();
  if (halves.length === 2 ? count > 7 : count !== 8) refuse();
}

/** A host name of LDH labels (and "_", which some private names carry), or a dotted IPv4 address. */
function checkHost(host: string): void {
  if (host.startsWith("[")) return checkIpv6(host.slice(1, -1));
  if (host.length > 253) throw new OtaError("bad-argument", `host name is ${host.length} characters; at most 253`);
  const labels = (host.endsWith(".") ? host.slice(0, -1) : host).split(".");
  // A name whose last label is a number is an IPv4 address (WHATWG's rule, and no top-level
  // domain is numeric): it must be the dotted quad a resolver takes, not 1.2.3.256 or 0x7f.1.
  if (/^(0x[0-9a-f]*|[0-9]+)$/i.test(labels[labels.length - 1])) {
    if (!isDottedQuad(host)) {
      throw new OtaError("bad-argument", `host "${escapeOther(host.slice(0, 100))}" is neither a host name nor a dotted IPv4 address (four numbers 0..255)`);
    }
    return;
  }
  for (const label of labels) {
    if (!/^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label)) {
      throw new OtaError("bad-argument", `host "${escapeOther(host.slice(0, 100))}" is not a host name (letters, digits, "-" and "." only; an international name in its xn-- form)`);
    }
  }
}

/**
 * The one URL rule of every document format and of redirects: http or https, a host name or IP
 * address, a port in 1..65535, at most MAX_URL_LENGTH characters, and nowhere a space, a control,
 * a format character or a lone surrogate.
 */
export function parseHttpUrl(text: string): HttpUrl {
  if (text.length > MAX_URL_LENGTH) throw new OtaError("bad-argument", `URL is ${text.length} characters; at most ${MAX_URL_LENGTH}`);
  if (/\s/.test(text) || hasOtherCharacter(text)) {
    throw new OtaError("bad-argument", `URL "${escapeOther(text.slice(0, 200))}" has spaces, control or format characters`);
  }
  const m = ABSOLUTE().exec(text);
  if (!m) throw new OtaError("bad-argument", `"${escapeOther(text.slice(0, 200))}" is not an absolute http or https URL`);
  if (m[2]) throw new OtaError("bad-argument", "URLs with user:password@ are not supported");
  const scheme = m[1].toLowerCase() as HttpUrl["scheme"];
  checkHost(m[3]);
  const port = m[4] === undefined ? (scheme === "https" ? 443 : 80) : Number(m[4]);
  if (port < 1 || port > 65535) throw new OtaError("bad-argument", `port ${m[4]} is out of range`);
  let path = m[5] ?? "/";
  if (path[0] === "?") path = "/" + path;
  return { scheme, host: m[3].toLowerCase(), port, path };
}

export function formatHttpUrl(u: HttpUrl): string {
  const defaultPort = u.scheme === "https" ? 443 : 80;
  return `${u.scheme}://${u.host}${u.port === defaultPort ? "" : `:${u.port}`}${u.path}`;
}

/** Removes "." and ".." segments (RFC 3986 5.2.4). */
function removeDots(path: string): string {
  const out: string[] = [];
  const segments = path.split("/");
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    if (s === "..") {
      if (out.length > 1) out.pop();
      if (i === segments.length - 1) out.push("");
    } else if (s === ".") {
      if (i === segments.length - 1) out.push("");
    } else out.push(s);
  }
  const joined = out.join("/");
  return joined.startsWith("/") ? joined : "/" + joined;
}

/** Resolves a Location header against the URL of the response that carried it. */
export function resolveLocation(base: HttpUrl, location: string): HttpUrl {
  const loc = location.trim();
  if (/^[a-z][a-z0-9+.-]*:/i.test(loc)) return parseHttpUrl(loc);
  if (loc.startsWith("//")) return parseHttpUrl(`${base.scheme}:${loc}`);
  const noFragment = loc.split("#")[0];
  if (noFragment === "") return base;
  const q = noFragment.indexOf("?");
  const [relPath, query] = q < 0 ? [noFragment, ""] : [noFragment.slice(0, q), noFragment.slice(q)];
  const basePath = base.path.split("?")[0];
  let path: string;
  if (relPath === "") path = basePath;
  else if (relPath.startsWith("/")) path = removeDots(relPath);
  else path = removeDots(basePath.slice(0, basePath.lastIndexOf("/") + 1) + relPath);
  const result = { ...base, path: path + (query || (relPath === "" ? base.path.slice(basePath.length) : "")) };
  return parseHttpUrl(formatHttpUrl(result));
}
