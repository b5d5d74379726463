/**
 * Unicode general category C ("other": control, format, surrogate, private use, unassigned), as
 * AWS IoT's `[^\p{C}]+` rule for statusDetails values needs it, without RegExp property escapes
 * (a Moddable device's XS has none: its xsc refuses `\p{...}`).
 *
 * Cc, Cs and Co are whole ranges, and Cf is a short list (Unicode 16.0's UnicodeData.txt).
 * Cn, unassigned, would need the whole character database on the device: only its permanent
 * part, the 66 noncharacters, is refused here; the cloud checks the rest when it gets the value.
 */

// [first, last] pairs of Cc, Cf, Cs and Co, in order.
const OTHER: readonly number[] = Object.freeze([
  0x0000, 0x001f, 0x007f, 0x009f, 0x00ad, 0x00ad, 0x0600, 0x0605, 0x061c, 0x061c, 0x06dd, 0x06dd,
  0x070f, 0x070f, 0x0890, 0x0891, 0x08e2, 0x08e2, 0x180e, 0x180e, 0x200b, 0x200f, 0x202a, 0x202e,
  0x2060, 0x2064, 0x2066, 0x206f, 0xd800, 0xf8ff, 0xfeff, 0xfeff, 0xfff9, 0xfffb, 0x110bd, 0x110bd,
  0x110cd, 0x110cd, 0x13430, 0x1343f, 0x1bca0, 0x1bca3, 0x1d173, 0x1d17a, 0xe0001, 0xe0001,
  0xe0020, 0xe007f, 0xf0000, 0xffffd, 0x100000, 0x10fffd,
]);

/** True for a code point of category C that a device can tell (see above). */
export function isOtherCharacter(cp: number): boolean {
  if ((cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return true; // noncharacters
  for (let i = 0; i < OTHER.length && OTHER[i] <= cp; i += 2) if (cp <= OTHER[i + 1]) return true;
  return false;
}

/**
 * `s` with every category C character (controls, format characters such as U+200B or the bidi
 * overrides, lone surrogates) written as \u{XXXX}: what a reason quotes from its input can then
 * neither hide text nor move it on a terminal.
 */
export function escapeOther(s: string): string {
  let out = "";
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i) as number;
    const wide = cp > 0xffff && s.charCodeAt(i) !== cp;
    if (isOtherCharacter(cp)) {
      out += s.slice(from, i) + "\\u{" + cp.toString(16).toUpperCase() + "}";
      from = i + (wide ? 2 : 1);
    }
    if (wide) i++;
  }
  return from === 0 ? s : out + s.slice(from);
}

/** True when `s` holds a character of category C, a lone surrogate included. */
export function hasOtherCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const cp = s.codePointAt(i) as number;
    if (isOtherCharacter(cp)) return true;
    // On a UTF-16 engine a character above U+FFFF took two indices; on a device it takes one.
    if (cp > 0xffff && s.charCodeAt(i) !== cp) i++;
  }
  return false;
}
