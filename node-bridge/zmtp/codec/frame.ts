// ZMTP 3.x frame encoding (RFC 23 §Framing): flags octet, 1- or 8-octet size, body.

/** Bits of a frame's flags octet (RFC 23 §Framing). Bits 3..7 are reserved. */
export const FrameFlag = { MORE: 0x01, LONG: 0x02, COMMAND: 0x04 } as const
export type FrameFlag = (typeof FrameFlag)[keyof typeof FrameFlag]

/** RFC 23: bits 7-3 are reserved and MUST be zero. */
export const FRAME_RESERVED_BITS = 0xf8
/** Largest body a short frame (1-octet size) can carry. */
export const SHORT_FRAME_MAX_BODY = 255
/** Header octets of a short frame (flags + 1-octet size). */
export const SHORT_HEADER_SIZE = 2
/** Header octets of a long frame (flags + 8-octet size). */
export const LONG_HEADER_SIZE = 9

/** Flags of a frame to encode. */
export interface FrameOptions {
  /** More frames of the same message follow (default false). */
  more?: boolean
  /** A command frame (default false); cannot be combined with `more`. */
  command?: boolean
}

const TWO_POW_32 = 2 ** 32

/**
 * Encoded size of a frame header for a body of n octets: 2 (short) or 9 (long).
 */
export function frameHeaderSize(bodyLength: number): number {
  return bodyLength <= SHORT_FRAME_MAX_BODY ? SHORT_HEADER_SIZE : LONG_HEADER_SIZE
}

/**
 * Writes a frame header (flags and size) into target at offset and returns the new offset.
 * Uses the short form when the body is at most 255 octets, else the long form.
 * @throws {RangeError} if `more` and `command` are both set, the length is not a safe
 *   non-negative integer, or the header does not fit
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  bodyLength: number,
  options?: FrameOptions,
): number {
  const more = options?.more === true
  const command = options?.command === true
  // RFC 23: MORE SHALL be zero on command frames.
  if (more && command) throw new RangeError('a command frame cannot have the MORE flag')
  if (!Number.isSafeInteger(bodyLength) || bodyLength < 0) {
    throw new RangeError(`invalid frame body length ${bodyLength}`)
  }
  const headerSize = frameHeaderSize(bodyLength)
  if (!Number.isSafeInteger(offset) || offset < 0 || offset + headerSize > target.length) {
    throw new RangeError('frame header does not fit in the target')
  }
  let flags = (more ? FrameFlag.MORE : 0) | (command ? FrameFlag.COMMAND : 0)
  if (headerSize === SHORT_HEADER_SIZE) {
    target[offset] = flags
    target[offset + 1] = bodyLength
    return offset + SHORT_HEADER_SIZE
  }
  flags |= FrameFlag.LONG
  target[offset] = flags
  // RFC 23: long size is a 64-bit unsigned integer in network byte order.
  const view = new DataView(target.buffer, target.byteOffset + offset + 1, 8)
  view.setUint32(0, Math.floor(bodyLength / TWO_POW_32))
  view.setUint32(4, bodyLength >>> 0)
  return offset + LONG_HEADER_SIZE
}

/**
 * Encodes just the header of a frame, for writers that send header and body separately (writev)
 * without copying a large body.
 * @throws {RangeError} as {@link writeFrameHeader}
 */
export function encodeFrameHeader(bodyLength: number, options?: FrameOptions): Uint8Array {
  const out = new Uint8Array(frameHeaderSize(bodyLength))
  writeFrameHeader(out, 0, bodyLength, options)
  return out
}

/**
 * Writes header+body into target at offset, returns new offset (for coalesced writes without
 * intermediate copies).
 * @throws {RangeError} if the frame does not fit in target, or on invalid options
 */
export function writeFrame(
  target: Uint8Array,
  offset: number,
  body: Uint8Array,
  options?: FrameOptions,
): number {
  if (offset + frameHeaderSize(body.length) + body.length > target.length) {
    throw new RangeError('frame does not fit in the target')
  }
  const bodyOffset = writeFrameHeader(target, offset, body.length, options)
  target.set(body, bodyOffset)
  return bodyOffset + body.length
}

/**
 * Encodes one frame: short form (1-octet size) when body <= 255 octets, else long form
 * (8-octet big-endian size). MORE must not be set with command.
 * @throws {RangeError} if `more` and `command` are both set
 */
export function encodeFrame(body: Uint8Array, options?: FrameOptions): Uint8Array {
  const out = new Uint8Array(frameHeaderSize(body.length) + body.length)
  writeFrame(out, 0, body, options)
  return out
}
