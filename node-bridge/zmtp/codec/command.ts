// ZMTP commands (RFC 23 §Commands, RFC 37): command bodies, READY, ERROR, PING and PONG.
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import { frameHeaderSize, writeFrameHeader } from './frame.ts'
import { encodeMetadata } from './metadata.ts'

/** A decoded command: its name and the octets after the name (a view of the frame body). */
export interface Command {
  name: string
  data: Uint8Array
}

/** Command names defined by RFC 23 (NULL mechanism) and RFC 37 (3.1 additions). */
export const CommandName = {
  READY: 'READY',
  ERROR: 'ERROR',
  PING: 'PING',
  PONG: 'PONG',
  SUBSCRIBE: 'SUBSCRIBE',
  CANCEL: 'CANCEL',
} as const
export type CommandName = (typeof CommandName)[keyof typeof CommandName]

/** RFC 23: an ERROR reason is 0..255 octets. */
export const ERROR_REASON_MAX = 255
/** RFC 37: a ping-context is 0..16 octets. */
export const PING_CONTEXT_MAX = 16
/** RFC 37: the ping-ttl is a 16-bit count of deciseconds. */
export const PING_TTL_MAX = 0xffff

const EMPTY = new Uint8Array(0)
const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()

// RFC 23: command-name-char = ALPHA
function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)
}

function malformed(message: string): ZmtpError {
  return new ZmtpError(ZmtpErrorCode.MALFORMED_COMMAND, message)
}

/**
 * RFC 23: a command body = name-length octet (1..255) + name + data; libzmq requires size > 1
 * and size > name length. Name chars must be ALPHA (A-Za-z).
 * @returns the name and a view of the data
 * @throws {ZmtpError} MALFORMED_COMMAND
 */
export function decodeCommand(body: Uint8Array): Command {
  // libzmq check_basic_command_structure: size > 1 && size > name length.
  if (body.length < 2) throw malformed(`command body of ${body.length} octets is too short`)
  const nameLength = body[0] ?? 0
  // RFC 23: command-name = OCTET 1*255command-name-char
  if (nameLength === 0) throw malformed('command name is empty')
  if (nameLength >= body.length) throw malformed('command name runs past the end of the frame')
  let name = ''
  for (let i = 1; i <= nameLength; i++) {
    const c = body[i] ?? 0
    if (!isAlpha(c)) {
      throw malformed(`invalid octet 0x${c.toString(16).padStart(2, '0')} in the command name`)
    }
    name += String.fromCharCode(c)
  }
  return { name, data: body.subarray(1 + nameLength) }
}

function checkName(name: string): void {
  if (name.length === 0 || name.length > 255) {
    throw new RangeError(`command name must be 1..255 characters, got ${name.length}`)
  }
  for (let i = 0; i < name.length; i++) {
    if (!isAlpha(name.charCodeAt(i))) {
      throw new RangeError(`invalid command name ${JSON.stringify(name)}`)
    }
  }
}

function writeName(target: Uint8Array, offset: number, name: string): number {
  let pos = offset
  target[pos++] = name.length
  for (let i = 0; i < name.length; i++) target[pos++] = name.charCodeAt(i)
  return pos
}

/**
 * Encodes a command body (no frame header): name-length octet, name, data.
 * @throws {RangeError} if the name is not 1..255 ALPHA characters
 */
export function encodeCommandBody(name: string, data: Uint8Array = EMPTY): Uint8Array {
  checkName(name)
  const out = new Uint8Array(1 + name.length + data.length)
  out.set(data, writeName(out, 0, name))
  return out
}

/**
 * Encodes a whole command frame: COMMAND flag, short size for bodies up to 255 octets, else long
 * (RFC 23 SHOULD), then the body. One allocation.
 * @throws {RangeError} if the name is not 1..255 ALPHA characters
 */
export function encodeCommand(name: string, data: Uint8Array = EMPTY): Uint8Array {
  checkName(name)
  const bodyLength = 1 + name.length + data.length
  const out = new Uint8Array(frameHeaderSize(bodyLength) + bodyLength)
  const pos = writeName(out, writeFrameHeader(out, 0, bodyLength, { command: true }), name)
  out.set(data, pos)
  return out
}

/**
 * READY command frame with metadata properties (RFC 23: ready = command-size %d5 "READY" metadata).
 * @throws {RangeError} on an invalid property (see encodeMetadata)
 */
export function encodeReady(
  properties: ReadonlyArray<readonly [string, Uint8Array | string]>,
): Uint8Array {
  return encodeCommand(CommandName.READY, encodeMetadata(properties))
}

/** Truncates UTF-8 to at most `max` octets without splitting a character. */
function truncateUtf8(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes
  let cut = max
  // Step back over continuation octets (10xxxxxx) so the cut falls on a character boundary.
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--
  return bytes.subarray(0, cut)
}

/**
 * ERROR command frame: reason is 0..255 octets (RFC 23 error-reason = OCTET 0*255VCHAR); a longer
 * reason is truncated on a UTF-8 character boundary.
 */
export function encodeError(reason: string): Uint8Array {
  const text = truncateUtf8(textEncoder.encode(reason), ERROR_REASON_MAX)
  const data = new Uint8Array(1 + text.length)
  data[0] = text.length
  data.set(text, 1)
  return encodeCommand(CommandName.ERROR, data)
}

/**
 * Parses an ERROR command's data into its reason string (decoded as UTF-8, lenient).
 * @throws {ZmtpError} MALFORMED_COMMAND if the length octet disagrees with the data length
 */
export function decodeErrorReason(data: Uint8Array): string {
  if (data.length === 0) throw malformed('ERROR command has no reason length')
  if (data[0] !== data.length - 1) {
    throw malformed(`ERROR reason length ${data[0]} does not match ${data.length - 1} octets`)
  }
  return textDecoder.decode(data.subarray(1))
}

/**
 * PING data: ttl (u16 deciseconds, RFC 37) + context. RFC 37 limits the context to 16 octets,
 * but real peers may send more: the whole context is returned (a view) and {@link encodePong}
 * keeps only the first 16 when echoing, as libzmq does.
 * @throws {ZmtpError} MALFORMED_COMMAND if the 2-octet TTL is missing
 */
export function decodePing(data: Uint8Array): { ttlDeciseconds: number; context: Uint8Array } {
  if (data.length < 2) throw malformed(`PING data of ${data.length} octets has no TTL`)
  return {
    ttlDeciseconds: ((data[0] ?? 0) << 8) | (data[1] ?? 0),
    context: data.subarray(2),
  }
}

/**
 * PING command frame (RFC 37: ping = command-size %d4 "PING" ping-ttl ping-context).
 * @param ttlDeciseconds 0..65535 tenths of a second (0 = no TTL)
 * @param context 0..16 octets echoed by the PONG
 * @throws {RangeError} on a TTL out of range or a context longer than 16 octets
 */
export function encodePing(ttlDeciseconds: number, context: Uint8Array = EMPTY): Uint8Array {
  if (!Number.isInteger(ttlDeciseconds) || ttlDeciseconds < 0 || ttlDeciseconds > PING_TTL_MAX) {
    throw new RangeError(`PING TTL must be 0..${PING_TTL_MAX} deciseconds, got ${ttlDeciseconds}`)
  }
  if (context.length > PING_CONTEXT_MAX) {
    throw new RangeError(`PING context must be at most ${PING_CONTEXT_MAX} octets`)
  }
  const data = new Uint8Array(2 + context.length)
  data[0] = ttlDeciseconds >>> 8
  data[1] = ttlDeciseconds & 0xff
  data.set(context, 2)
  return encodeCommand(CommandName.PING, data)
}

/**
 * PONG command frame echoing a PING's context (RFC 37: pong = command-size %d4 "PONG"
 * ping-context); the context is truncated to 16 octets.
 */
export function encodePong(context: Uint8Array): Uint8Array {
  // RFC 37: the echoed ping-context MUST NOT exceed 16 octets.
  return encodeCommand(CommandName.PONG, context.subarray(0, PING_CONTEXT_MAX))
}

/** The PONG command body alone (no frame header), for mechanisms that box commands (CURVE). */
export function encodePongBody(context: Uint8Array): Uint8Array {
  return encodeCommandBody(CommandName.PONG, context.subarray(0, PING_CONTEXT_MAX))
}
