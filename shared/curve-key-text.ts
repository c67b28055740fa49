// CURVE keys as people write them: Z85 (libzmq, zmq_curve_keypair), base64 (NetMQ) or hex,
// parsed into 32 octets, and written back in the three forms; and the low-order point check.
// Platform-neutral (Node and workerd: no Buffer), so the bridge's settings, the command line and
// the Worker's key registry take one rule.
import { z85Decode, z85Encode } from './z85.ts'

/** RFC 26: CURVE keys are 32 octets. */
export const CURVE_KEY_SIZE = 32

const ACCEPTED_FORMS =
  'a 32-octet CURVE key as Z85 (40 characters), base64 (44 characters with "=" padding) or hex (64 characters)'

/** A key in a setting or file that is none of the accepted forms. The message never contains the key. */
export class KeyFormatError extends Error {
  override readonly name = 'KeyFormatError'
  /** The setting (flag, variable, file or field) that held the key. */
  readonly setting: string
  constructor(setting: string, message: string, options?: ErrorOptions) {
    super(`${setting}: ${message}`, options)
    this.setting = setting
  }
}

const HEX = /^[0-9a-fA-F]{64}$/
// Standard alphabet with padding (NetMQ's `Convert.ToBase64String`), or the url-safe alphabet
// with or without padding (JWK, `base64url`).
const BASE64 = /^[A-Za-z0-9+/]{43}=$/
const BASE64URL = /^[A-Za-z0-9_-]{43}=?$/

function fromHex(text: string): Uint8Array {
  return Uint8Array.from({ length: text.length / 2 }, (_, index) =>
    Number.parseInt(text.slice(index * 2, index * 2 + 2), 16),
  )
}

function toHex(bytes: Uint8Array): string {
  let text = ''
  for (const octet of bytes) text += octet.toString(16).padStart(2, '0')
  return text
}

function toBase64(bytes: Uint8Array): string {
  let binary = ''
  for (const octet of bytes) binary += String.fromCharCode(octet)
  return btoa(binary)
}

/**
 * Parses a CURVE key written as Z85 (40 characters), base64 (44 with `=` padding, standard or
 * url-safe; 43 unpadded url-safe) or hex (64, either case). Surrounding whitespace is ignored.
 * @param text the key as written
 * @param setting where it came from (a flag, variable, file or field), named in errors
 * @returns a fresh 32-octet key
 * @throws {KeyFormatError} naming `setting` and the accepted forms; the key is never echoed
 */
export function parseCurveKey(text: string, setting: string): Uint8Array {
  const key = text.trim()
  const bad = (form: string, cause?: unknown) =>
    new KeyFormatError(
      setting,
      `expected ${ACCEPTED_FORMS}; got ${key.length} characters that are not valid ${form}`,
      cause === undefined ? undefined : { cause },
    )
  if (key.length === 40) {
    try {
      return z85Decode(key)
    } catch (cause) {
      throw bad('Z85', cause)
    }
  }
  if (key.length === 64) {
    if (!HEX.test(key)) throw bad('hex')
    return fromHex(key)
  }
  if (key.length === 44 || key.length === 43) {
    const standard = BASE64.test(key)
    if (!standard && !BASE64URL.test(key)) throw bad('base64')
    const unpadded = key.replace(/=$/, '')
    const binary = atob(`${unpadded.replaceAll('-', '+').replaceAll('_', '/')}=`)
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0))
    // Refuse non-canonical text (stray low bits in the last character): no tool writes it, so it
    // is more likely a damaged key than a deliberate one.
    const again = toBase64(bytes).replace(/=$/, '')
    const canonical = standard ? again : again.replaceAll('+', '-').replaceAll('/', '_')
    if (bytes.length !== CURVE_KEY_SIZE || canonical !== unpadded) throw bad('base64')
    return bytes
  }
  throw new KeyFormatError(setting, `expected ${ACCEPTED_FORMS}; got ${key.length} characters`)
}

function checkKey(key: Uint8Array, what: string): void {
  if (key.length !== CURVE_KEY_SIZE) {
    throw new RangeError(`${what} must be ${CURVE_KEY_SIZE} octets, got ${key.length}`)
  }
}

/**
 * The three ways to write a key, e.g. to print the server's public key for clients.
 * @throws {RangeError} if the key is not 32 octets
 */
export function formatKey(key: Uint8Array): { z85: string; base64: string; hex: string } {
  checkKey(key, 'a CURVE key')
  return { z85: z85Encode(key), base64: toBase64(key), hex: toHex(key) }
}

/** 2^255 - 19, the Curve25519 field prime. */
const P = 2n ** 255n - 19n
/**
 * u-coordinates (mod p) of the points of order 1, 2, 4 and 8 on Curve25519 and its twist
 * (cr.yp.to/ecdh.html, "Which public keys should be rejected?"): X25519 with any clamped scalar
 * maps them to 0, so a shared secret computed with one is public.
 */
const LOW_ORDER = new Set<bigint>([
  0n,
  1n,
  325606250916557431795983626356110631294008115727848805560023387167927233504n,
  39382357235489614581723060781553021112529911719440698176882885853963445705823n,
  P - 1n,
])

/**
 * Whether an X25519 public key is a low-order point (all-zero key included), including its
 * non-canonical encodings (u + p) and with bit 255 ignored, as X25519 ignores it.
 * libsodium and OpenSSL refuse such keys; tweetnacl silently yields an all-zero secret.
 * @throws {RangeError} if the key is not 32 octets
 */
export function isLowOrderPoint(publicKey: Uint8Array): boolean {
  checkKey(publicKey, 'a CURVE public key')
  // Little-endian, bit 255 masked (RFC 7748 §5).
  let u = BigInt((publicKey[31] ?? 0) & 0x7f)
  for (let index = 30; index >= 0; index--) u = (u << 8n) | BigInt(publicKey[index] ?? 0)
  return LOW_ORDER.has(u % P)
}

/**
 * Whether an X25519 public key is written canonically: bit 255 clear and the u-coordinate below
 * p (RFC 7748 §5). X25519 reads K and K with bit 255 set (or u + p) as one key, so a registry
 * that compared octets would hold two records for one client; keys made by any keypair function
 * are canonical.
 * @throws {RangeError} if the key is not 32 octets
 */
export function isCanonicalPublicKey(publicKey: Uint8Array): boolean {
  checkKey(publicKey, 'a CURVE public key')
  if (((publicKey[31] ?? 0) & 0x80) !== 0) return false
  let u = 0n
  for (let index = 31; index >= 0; index--) u = (u << 8n) | BigInt(publicKey[index] ?? 0)
  return u < P
}
