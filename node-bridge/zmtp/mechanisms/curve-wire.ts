// CurveZMQ wire constants and helpers shared by the client and server mechanisms (RFC 26).

import type { Command } from '../codec/command.ts'
import { frameHeaderSize, writeFrameHeader } from '../codec/frame.ts'
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import { CURVE_BOX_OVERHEAD, CURVE_NONCE_SIZE, type CurveCrypto } from './curve-crypto.ts'

const ascii = (text: string) => new TextEncoder().encode(text)

// Nonce prefixes: 16 octets before a short (8-octet) nonce, 8 before a long (16-octet) one.
export const HELLO_NONCE = ascii('CurveZMQHELLO---')
export const WELCOME_NONCE = ascii('WELCOME-')
export const COOKIE_NONCE = ascii('COOKIE--')
export const INITIATE_NONCE = ascii('CurveZMQINITIATE')
export const VOUCH_NONCE = ascii('VOUCH---')
export const READY_NONCE = ascii('CurveZMQREADY---')
export const CLIENT_MESSAGE_NONCE = ascii('CurveZMQMESSAGEC')
export const SERVER_MESSAGE_NONCE = ascii('CurveZMQMESSAGES')
/** A MESSAGE command body starts with its name: `\x07MESSAGE`. */
export const MESSAGE_PREFIX = ascii('\x07MESSAGE')

export const SHORT_NONCE_SIZE = 8
export const LONG_NONCE_SIZE = 16
/**
 * The flags octet inside a MESSAGE box: MORE, and COMMAND as libzmq, JeroMQ and NetMQ set it
 * (0x02: `msg_t::command` in libzmq src/msg.hpp), though RFC 26 calls bits 1–7 reserved.
 */
export const PAYLOAD_MORE = 0x01
export const PAYLOAD_COMMAND = 0x02

/** Where a MESSAGE body's box starts: after `\x07MESSAGE` and the short nonce (16). */
export const MESSAGE_BOX = MESSAGE_PREFIX.length + SHORT_NONCE_SIZE
/** A MESSAGE body is the payload plus 33 octets: `\x07MESSAGE`, short nonce, flags, MAC. */
export const MESSAGE_OVERHEAD = MESSAGE_BOX + 1 + CURVE_BOX_OVERHEAD

const TWO_POW_32 = 2 ** 32

/** Wire octets of a MESSAGE frame carrying `bodyLength` octets (header included). */
export function messageFrameSize(bodyLength: number): number {
  const wire = MESSAGE_OVERHEAD + bodyLength
  return frameHeaderSize(wire) + wire
}

/**
 * Boxes a frame into a MESSAGE in an ordinary frame (flags 0x00, as libzmq sends it) at
 * `target[offset]`, sealed where it goes; MORE and COMMAND travel in the boxed flags octet.
 * `messageNonce` is the whole 24-octet nonce, ending in `shortNonce`. Returns the offset after it.
 */
export function writeMessageFrame(
  target: Uint8Array,
  offset: number,
  body: Uint8Array,
  options: { more?: boolean; command?: boolean },
  seal: { shortNonce: Uint8Array; messageNonce: Uint8Array; key: Uint8Array; crypto: CurveCrypto },
): number {
  const boxLength = CURVE_BOX_OVERHEAD + 1 + body.length
  let pos = writeFrameHeader(target, offset, MESSAGE_BOX + boxLength)
  target.set(MESSAGE_PREFIX, pos)
  pos += MESSAGE_PREFIX.length
  target.set(seal.shortNonce, pos)
  pos += SHORT_NONCE_SIZE
  // Tag space, flags octet, body; then sealed in place.
  target[pos + CURVE_BOX_OVERHEAD] =
    (options.more ? PAYLOAD_MORE : 0) | (options.command ? PAYLOAD_COMMAND : 0)
  target.set(body, pos + CURVE_BOX_OVERHEAD + 1)
  seal.crypto.sealInPlace(target.subarray(pos, pos + boxLength), seal.messageNonce, seal.key)
  return pos + boxLength
}

/** A 24-octet nonce: a prefix and its short or long tail. */
export function nonce(prefix: Uint8Array, tail: Uint8Array): Uint8Array {
  const out = new Uint8Array(CURVE_NONCE_SIZE)
  out.set(prefix)
  out.set(tail, prefix.length)
  return out
}

/** Constant-time comparison of two byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let index = 0; index < a.length; index++) diff |= (a[index] ?? 0) ^ (b[index] ?? 0)
  return diff === 0
}

/** The 8-octet big-endian short nonce at `offset`, as [high, low] 32-bit halves. */
export function readShortNonce(bytes: Uint8Array, offset: number): [number, number] {
  return [readUint32(bytes, offset), readUint32(bytes, offset + 4)]
}

// Per message: plain arithmetic, no DataView allocated.
function readUint32(bytes: Uint8Array, offset: number): number {
  return (
    (bytes[offset] ?? 0) * 0x1000000 +
    (((bytes[offset + 1] ?? 0) << 16) | ((bytes[offset + 2] ?? 0) << 8) | (bytes[offset + 3] ?? 0))
  )
}

/** A short nonce counter as 8 big-endian octets (a counter is below 2^53: it counts frames). */
export function shortNonceBytes(counter: number): Uint8Array {
  const out = new Uint8Array(SHORT_NONCE_SIZE)
  const view = new DataView(out.buffer)
  view.setUint32(0, Math.floor(counter / TWO_POW_32))
  view.setUint32(4, counter >>> 0)
  return out
}

/**
 * The data of a handshake command, which must be `name` with `size` octets of data; checked
 * before any public-key operation, so a garbage command costs no crypto. The sizes said are the
 * whole command's, as RFC 26 gives them (HELLO 200, WELCOME 168, INITIATE 257+, READY 30+).
 * @throws {ZmtpError} UNEXPECTED_COMMAND for another command, `malformed` for another size
 */
export function commandData(
  command: Command,
  name: string,
  size: { exactly: number } | { atLeast: number },
  malformed: ZmtpErrorCode = ZmtpErrorCode.MALFORMED_COMMAND,
): Uint8Array {
  if (command.name !== name) {
    fail(ZmtpErrorCode.UNEXPECTED_COMMAND, `expected ${name}, got ${command.name}`)
  }
  const data = command.data
  // The body: the name's length octet, the name, the data.
  const header = 1 + name.length
  if ('exactly' in size && data.length !== size.exactly) {
    fail(malformed, `${name} is ${data.length + header} octets, not ${size.exactly + header}`)
  }
  if ('atLeast' in size && data.length < size.atLeast) {
    fail(malformed, `${name} is ${data.length + header} octets, less than ${size.atLeast + header}`)
  }
  return data
}

/** Ends a handshake or message with a plain close (RFC 26: no ERROR for a bad box). */
export function fail(code: ZmtpErrorCode, message: string): never {
  throw new ZmtpError(code, message)
}
