// A key record's name: who a CURVE key belongs to, as people read it ("sensor-17", "billing
// team"). The registry holds it; a bridge relays it with each message of that key, and the
// channel stores it beside the key (peer.keyName), as it was when the message was relayed.
// Shared by the Worker's schemas, the relay protocol and the segment codec.

/** Longest name, in characters (UTF-16 code units, as JSON Schema's maxLength counts). */
export const MAX_KEY_NAME_LENGTH = 100

/** Longest name in UTF-8 octets: 100 code units are at most 300 octets. */
export const MAX_KEY_NAME_BYTES = 3 * MAX_KEY_NAME_LENGTH

// A UTF-16 surrogate without its pair: not a character, and UTF-8 has no octets for it (an
// encoder writes U+FFFD instead, so the name would change on its way).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** True for 1 to 100 characters of well-formed Unicode (no lone surrogate). */
export function isKeyName(value: string): boolean {
  return value.length >= 1 && value.length <= MAX_KEY_NAME_LENGTH && !LONE_SURROGATE.test(value)
}
