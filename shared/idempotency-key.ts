// Idempotency keys: a sender that resends a message after its reply timed out (a DEALER, RFC 28)
// names both copies with one key, and the channel stores the message once and answers both with
// its seq. The key travels in the request's envelope as one frame, `idempotency-key=<key>`, so a
// plain libzmq DEALER can send it; like HTTP's Idempotency-Key header (IETF
// draft-ietf-httpapi-idempotency-key-header), it is an opaque string chosen by the sender,
// a UUID typically. Shared by the bridge (which reads the frame) and the Durable Object (which
// checks the relayed key).

/** What starts an envelope frame that carries an idempotency key. */
export const IDEMPOTENCY_FRAME_PREFIX = 'idempotency-key='

/** Longest key, octets: a UUID is 36, a ULID 26; 128 leaves room for a sender's own prefix. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 128

// Visible ASCII only: keys are logged and shown, and compared octet for octet.
const KEY_PATTERN = /^[\x21-\x7e]{1,128}$/

const PREFIX_BYTES = new TextEncoder().encode(IDEMPOTENCY_FRAME_PREFIX)
const ascii = new TextDecoder('ascii')

/** True for 1 to 128 characters of visible ASCII (0x21-0x7E). */
export function isIdempotencyKey(value: string): boolean {
  return KEY_PATTERN.test(value)
}

/**
 * The key an envelope frame carries: undefined for a frame that is not an idempotency frame
 * (a routing id, a request id), `{ invalid }` for one whose key breaks the rule.
 */
export function idempotencyKeyOfFrame(
  frame: Uint8Array,
): { key: string } | { invalid: string } | undefined {
  if (frame.length < PREFIX_BYTES.length) return undefined
  for (let index = 0; index < PREFIX_BYTES.length; index++) {
    if (frame[index] !== PREFIX_BYTES[index]) return undefined
  }
  const value = frame.subarray(PREFIX_BYTES.length)
  for (const octet of value) {
    if (octet < 0x21 || octet > 0x7e) {
      return { invalid: 'an idempotency key is visible ASCII (0x21-0x7E) only' }
    }
  }
  if (value.length === 0 || value.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    return { invalid: `an idempotency key is 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters` }
  }
  return { key: ascii.decode(value) }
}

/** The envelope frame that carries `key`. @throws TypeError for a key that breaks the rule. */
export function idempotencyFrame(key: string): Uint8Array {
  if (!isIdempotencyKey(key)) {
    throw new TypeError(
      `an idempotency key is 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters of visible ASCII`,
    )
  }
  return new TextEncoder().encode(IDEMPOTENCY_FRAME_PREFIX + key)
}
