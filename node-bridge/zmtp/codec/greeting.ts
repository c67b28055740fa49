// ZMTP 3.x greeting (RFC 23/37 §Formal Grammar): signature, version, mechanism, as-server, filler.
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'

/** The greeting is always 64 octets. */
export const GREETING_SIZE = 64
/** Signature: 0xFF, 8 padding octets, 0x7F. */
export const SIGNATURE_SIZE = 10
/** Signature plus major version: the partial greeting used for version detection (RFC 23). */
export const GREETING_START_SIZE = 11
/** Octets 11..63: minor version, mechanism, as-server, filler. */
export const GREETING_REST_SIZE = GREETING_SIZE - GREETING_START_SIZE
/** Width of the NUL-padded mechanism field. */
export const MECHANISM_SIZE = 20
/** The major version this codec speaks. */
export const ZMTP_MAJOR = 3
/** The minor version this codec announces by default (ZMTP 3.1, RFC 37). */
export const ZMTP_MINOR = 1

const MAJOR_OFFSET = 10
const MINOR_OFFSET = 11
const MECHANISM_OFFSET = 12
const AS_SERVER_OFFSET = 32

/** The parsed fields of a peer's greeting. */
export interface Greeting {
  major: number
  minor: number
  /** Mechanism name without its NUL padding, e.g. `NULL` or `CURVE`. */
  mechanism: string
  asServer: boolean
}

// RFC 23: mechanism-char = "A"-"Z" | DIGIT | "-" | "_" | "." | "+"
function isMechanismChar(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x2e ||
    c === 0x2b
  )
}

function checkOctet(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 255) {
    throw new RangeError(`${what} must be an integer 0..255, got ${value}`)
  }
}

/**
 * Bytes 0..10: signature + major version; sent first because libzmq waits for them before
 * sending the rest (libzmq src/zmtp_engine.cpp, `receive_greeting`).
 * @param major version-major, default 3
 * @returns 11 octets: `FF 00*8 7F <major>`
 * @throws {RangeError} if `major` is not an octet
 */
export function encodeGreetingStart(major: number = ZMTP_MAJOR): Uint8Array {
  checkOctet(major, 'major version')
  const out = new Uint8Array(GREETING_START_SIZE)
  out[0] = 0xff
  // RFC 23: padding SHOULD be zero when sending a full greeting.
  out[SIGNATURE_SIZE - 1] = 0x7f
  out[MAJOR_OFFSET] = major
  return out
}

/**
 * Bytes 11..63: minor version, 20-octet NUL-padded mechanism, as-server, 31 zero filler.
 * @param options.minor version-minor, default 1 (ZMTP 3.1)
 * @param options.mechanism 1..20 characters of `A-Z 0-9 - _ . +`
 * @param options.asServer the as-server flag (RFC 23: MUST be false for NULL)
 * @returns 53 octets
 * @throws {RangeError} on an invalid minor version or mechanism name
 */
export function encodeGreetingRest(options: {
  minor?: number
  mechanism: string
  asServer: boolean
}): Uint8Array {
  const minor = options.minor ?? ZMTP_MINOR
  checkOctet(minor, 'minor version')
  const { mechanism } = options
  if (mechanism.length === 0 || mechanism.length > MECHANISM_SIZE) {
    throw new RangeError(
      `mechanism must be 1..${MECHANISM_SIZE} characters, got ${mechanism.length}`,
    )
  }
  const out = new Uint8Array(GREETING_REST_SIZE)
  out[0] = minor
  for (let i = 0; i < mechanism.length; i++) {
    const c = mechanism.charCodeAt(i)
    if (!isMechanismChar(c)) {
      throw new RangeError(`invalid mechanism name ${JSON.stringify(mechanism)}`)
    }
    out[1 + i] = c
  }
  out[1 + MECHANISM_SIZE] = options.asServer ? 1 : 0
  return out
}

/**
 * The whole 64-octet greeting: {@link encodeGreetingStart} followed by {@link encodeGreetingRest}.
 * @throws {RangeError} on invalid versions or mechanism name
 */
export function encodeGreeting(options: {
  major?: number
  minor?: number
  mechanism: string
  asServer: boolean
}): Uint8Array {
  const out = new Uint8Array(GREETING_SIZE)
  out.set(encodeGreetingStart(options.major))
  out.set(encodeGreetingRest(options), GREETING_START_SIZE)
  return out
}

/**
 * Parses a peer's greeting from the first 64 octets of `bytes`.
 *
 * Checks only what the spec lets a peer check: byte 0 is 0xFF and bit 0 of byte 9 is set (the
 * padding is not validated, libzmq sends non-zero padding), major >= 3, and the mechanism is
 * `A-Z 0-9 - _ . +` followed only by NUL padding. as-server is true for any non-zero octet; the
 * filler is not validated (RFC 23: higher versions MUST be accepted, they may use it).
 * @throws {ZmtpError} MALFORMED_GREETING (short input, bad signature or mechanism),
 *   UNSUPPORTED_VERSION (major < 3)
 */
export function decodeGreeting(bytes: Uint8Array): Greeting {
  if (bytes.length < GREETING_SIZE) {
    throw new ZmtpError(
      ZmtpErrorCode.MALFORMED_GREETING,
      `greeting needs ${GREETING_SIZE} octets, got ${bytes.length}`,
    )
  }
  // RFC 23: signature = %xFF padding %x7F; padding is not checked: libzmq sends a non-zero one
  // and tests only bit 0 of byte 9 (src/zmtp_engine.cpp, `receive_greeting`).
  if (bytes[0] !== 0xff || ((bytes[SIGNATURE_SIZE - 1] ?? 0) & 1) === 0) {
    throw new ZmtpError(ZmtpErrorCode.MALFORMED_GREETING, 'greeting signature is not FF … 7F')
  }
  const major = bytes[MAJOR_OFFSET] ?? 0
  // RFC 23: a peer MUST accept protocol versions greater or equal to 3.0.
  if (major < ZMTP_MAJOR) {
    throw new ZmtpError(
      ZmtpErrorCode.UNSUPPORTED_VERSION,
      `peer speaks ZMTP major version ${major}`,
    )
  }
  let mechanism = ''
  let i = 0
  for (; i < MECHANISM_SIZE; i++) {
    const c = bytes[MECHANISM_OFFSET + i] ?? 0
    if (c === 0) break
    if (!isMechanismChar(c)) {
      throw new ZmtpError(
        ZmtpErrorCode.MALFORMED_GREETING,
        `invalid octet 0x${c.toString(16).padStart(2, '0')} in the mechanism name`,
      )
    }
    mechanism += String.fromCharCode(c)
  }
  // RFC 23: the mechanism is a NUL-padded string, so nothing but NULs may follow the first NUL.
  for (; i < MECHANISM_SIZE; i++) {
    if (bytes[MECHANISM_OFFSET + i] !== 0) {
      throw new ZmtpError(ZmtpErrorCode.MALFORMED_GREETING, 'mechanism padding is not all NUL')
    }
  }
  return {
    major,
    minor: bytes[MINOR_OFFSET] ?? 0,
    mechanism,
    asServer: bytes[AS_SERVER_OFFSET] !== 0,
  }
}

/**
 * Classifies the first octets received (fewer than 11 is fine) as early as possible, following
 * RFC 23 §Backwards Interoperability and libzmq: `'legacy'` (ZMTP 1.0/2.0, or not ZMTP at all)
 * if byte 0 is not 0xFF, bit 0 of byte 9 is clear, or the major version is below 3; `'zmtp3'`
 * once the major version (byte 10) is known to be >= 3; `'need-more'` otherwise.
 */
export function classifyGreetingPrefix(bytes: Uint8Array): 'need-more' | 'zmtp3' | 'legacy' {
  if (bytes.length === 0) return 'need-more'
  // RFC 23: a first octet other than 0xFF is a ZMTP 1.0 short identity length.
  if (bytes[0] !== 0xff) return 'legacy'
  if (bytes.length < SIGNATURE_SIZE) return 'need-more'
  // RFC 23: bit 0 of the 10th octet clear means a ZMTP 1.0 long identity length.
  if (((bytes[SIGNATURE_SIZE - 1] ?? 0) & 1) === 0) return 'legacy'
  if (bytes.length <= MAJOR_OFFSET) return 'need-more'
  // RFC 23: revision 1 or 2 is ZMTP 2.0 (revision 0 is libzmq's ZMTP 1.0 with signature).
  return (bytes[MAJOR_OFFSET] ?? 0) >= ZMTP_MAJOR ? 'zmtp3' : 'legacy'
}
