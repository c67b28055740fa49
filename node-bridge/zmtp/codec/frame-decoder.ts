// Streaming ZMTP frame decoder (RFC 23 §Framing): a state machine fed with chunks of any size.
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import { FRAME_RESERVED_BITS, FrameFlag, LONG_HEADER_SIZE, SHORT_HEADER_SIZE } from './frame.ts'

/** One decoded frame. `body` is a view into a pushed chunk when it arrived in one piece. */
export interface Frame {
  more: boolean
  command: boolean
  body: Uint8Array
}

/** Options of a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /**
   * Largest body accepted, in octets; default `Number.MAX_SAFE_INTEGER`. Enforced from the
   * header, before the body is allocated or buffered.
   */
  maxFrameSize?: number
}

const State = { FLAGS: 0, SHORT_SIZE: 1, LONG_SIZE: 2, BODY: 3 } as const
type State = (typeof State)[keyof typeof State]

const TWO_POW_32 = 2 ** 32
/** A body that spans reads starts in a buffer this large (or its size, if smaller): one read. */
const INITIAL_BODY_CAPACITY = 64 * 1024
/** High 32 bits of Number.MAX_SAFE_INTEGER (2^53 - 1). */
const MAX_SAFE_HIGH_WORD = 0x1fffff

function checkedMaxFrameSize(max: number): number {
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new RangeError(`maxFrameSize must be a non-negative safe integer, got ${max}`)
  }
  return max
}

/**
 * Decodes a ZMTP byte stream (after the greeting) into frames. It knows how many octets it needs
 * in each state (flags → size → body) and never concatenates its input: a body inside one chunk
 * is returned as a view of that chunk; a body spanning chunks is copied into a buffer that grows
 * with what has arrived (doubling, up to the announced size), after the size check.
 */
export class FrameDecoder {
  #maxFrameSize: number
  #state: State = State.FLAGS
  #flags = 0
  // A long size as it arrives, octet by octet, as two 32-bit halves (no buffer per connection).
  #sizeHigh = 0
  #sizeLow = 0
  #sizeHave = 0
  #headerSize = 0
  #bodyLength = 0
  #body: Uint8Array | null = null
  #bodyHave = 0
  #error: ZmtpError | null = null
  #consumed = 0

  /**
   * @param options.maxFrameSize largest body in octets (default `Number.MAX_SAFE_INTEGER`)
   * @throws {RangeError} if maxFrameSize is not a non-negative safe integer
   */
  constructor(options?: FrameDecoderOptions) {
    const max = options?.maxFrameSize ?? Number.MAX_SAFE_INTEGER
    this.#maxFrameSize = checkedMaxFrameSize(max)
  }

  /** Largest body accepted, in octets; checked at each frame's header. */
  get maxFrameSize(): number {
    return this.#maxFrameSize
  }

  /**
   * Changes the limit from the next frame header on: a connection uses a small limit until its
   * handshake is done and the message limit after it.
   * @throws {RangeError} if the value is not a non-negative safe integer
   */
  set maxFrameSize(max: number) {
    this.#maxFrameSize = checkedMaxFrameSize(max)
  }

  /**
   * Feeds bytes; returns the complete frames now available, in order. The decoder keeps views
   * of `chunk`, so the caller must not reuse its memory.
   *
   * With `maxFrames`, decoding stops once that many frames are complete, and {@link consumed}
   * says where: a caller that must act on one frame before the next is sized (a handshake, whose
   * end raises the frame limit) feeds the rest of the chunk afterwards.
   *
   * When the chunk holds good frames followed by a bad one, the good frames are returned and
   * the error is kept in {@link error} (and thrown by the next push), so a message that arrived
   * whole before the violation is not lost.
   * @throws {ZmtpError} MALFORMED_FRAME (reserved bits 3..7 set, MORE with COMMAND, long size
   *   > 2^53-1 or with the top bit set), FRAME_TOO_LARGE (size > maxFrameSize, or a body that
   *   cannot be allocated). After a failure the decoder is unusable: every later push rethrows.
   */
  push(chunk: Uint8Array, maxFrames = Number.POSITIVE_INFINITY): Frame[] {
    if (this.#error !== null) throw this.#error
    const frames: Frame[] = []
    this.#consumed = 0
    try {
      this.#consumed = this.#consume(chunk, frames, maxFrames)
    } catch (error) {
      // Any failure leaves the state machine mid-frame: refuse all later input.
      this.#error =
        error instanceof ZmtpError
          ? error
          : new ZmtpError(ZmtpErrorCode.MALFORMED_FRAME, 'frame decoding failed', { cause: error })
      if (frames.length === 0) throw this.#error
    }
    return frames
  }

  /** Octets of the last pushed chunk that were used (all of them unless maxFrames stopped it). */
  get consumed(): number {
    return this.#consumed
  }

  /** The violation that stopped the decoder, or null while the stream is well-formed. */
  get error(): ZmtpError | null {
    return this.#error
  }

  /** Octets of the current, incomplete frame (header and body) consumed but not yet returned. */
  get bufferedBytes(): number {
    switch (this.#state) {
      case State.FLAGS:
        return 0
      case State.SHORT_SIZE:
        return 1
      case State.LONG_SIZE:
        return 1 + this.#sizeHave
      default:
        return this.#headerSize + this.#bodyHave
    }
  }

  /**
   * Memory the decoder holds for the current, incomplete frame: the header octets read and the
   * body buffer as allocated (which may be more than the octets received so far).
   */
  get retainedBytes(): number {
    if (this.#state !== State.BODY) return this.bufferedBytes
    return this.#headerSize + (this.#body?.length ?? 0)
  }

  /** Decodes from `chunk` until it ends or `maxFrames` frames are out; returns the octets used. */
  #consume(chunk: Uint8Array, frames: Frame[], maxFrames: number): number {
    const end = chunk.length
    let pos = 0
    while (pos < end && frames.length < maxFrames) {
      switch (this.#state) {
        case State.FLAGS: {
          const flags = chunk[pos++] ?? 0
          // RFC 23: bits 7-3 are reserved and MUST be zero.
          if ((flags & FRAME_RESERVED_BITS) !== 0) {
            throw new ZmtpError(
              ZmtpErrorCode.MALFORMED_FRAME,
              `reserved frame flag bits set (flags 0x${flags.toString(16).padStart(2, '0')})`,
            )
          }
          // RFC 23: MORE SHALL be zero on command frames.
          if ((flags & FrameFlag.MORE) !== 0 && (flags & FrameFlag.COMMAND) !== 0) {
            throw new ZmtpError(ZmtpErrorCode.MALFORMED_FRAME, 'command frame with the MORE flag')
          }
          this.#flags = flags
          if ((flags & FrameFlag.LONG) !== 0) {
            this.#sizeHave = 0
            this.#state = State.LONG_SIZE
          } else {
            this.#state = State.SHORT_SIZE
          }
          break
        }
        case State.SHORT_SIZE: {
          this.#headerSize = SHORT_HEADER_SIZE
          pos = this.#startBody(chunk[pos] ?? 0, chunk, pos + 1, frames)
          break
        }
        case State.LONG_SIZE: {
          while (this.#sizeHave < 8 && pos < end) {
            const octet = chunk[pos++] ?? 0
            if (this.#sizeHave < 4) this.#sizeHigh = this.#sizeHigh * 256 + octet
            else this.#sizeLow = this.#sizeLow * 256 + octet
            this.#sizeHave++
          }
          if (this.#sizeHave === 8) {
            this.#headerSize = LONG_HEADER_SIZE
            pos = this.#startBody(this.#readLongSize(), chunk, pos, frames)
          }
          break
        }
        case State.BODY: {
          const need = this.#bodyLength - this.#bodyHave
          const available = end - pos
          let body = this.#body
          if (body === null) {
            if (available >= need) {
              // The whole body is in this chunk: hand out a view, no copy.
              this.#emit(chunk.subarray(pos, pos + need), frames)
              pos += need
              break
            }
            // Sized by what arrived, not by what the header announced: a peer that announces
            // a large frame and sends little holds little (grown below, at most 2× received).
            body = this.#allocate(Math.min(need, Math.max(INITIAL_BODY_CAPACITY, available)))
            this.#body = body
          }
          const take = Math.min(need, available)
          if (this.#bodyHave + take > body.length) {
            const grown = this.#allocate(
              Math.min(this.#bodyLength, Math.max(body.length * 2, this.#bodyHave + take)),
            )
            grown.set(body.subarray(0, this.#bodyHave))
            body = grown
            this.#body = grown
          }
          body.set(chunk.subarray(pos, pos + take), this.#bodyHave)
          this.#bodyHave += take
          pos += take
          if (this.#bodyHave === this.#bodyLength) this.#emit(body, frames)
        }
      }
    }
    return pos
  }

  /** The size is known: check it, then emit an empty frame or wait for the body. */
  #startBody(size: number, chunk: Uint8Array, pos: number, frames: Frame[]): number {
    if (size > this.#maxFrameSize) {
      throw new ZmtpError(
        ZmtpErrorCode.FRAME_TOO_LARGE,
        `frame of ${size} octets exceeds the limit of ${this.#maxFrameSize}`,
      )
    }
    this.#bodyLength = size
    this.#bodyHave = 0
    this.#body = null
    this.#state = State.BODY
    if (size === 0) this.#emit(chunk.subarray(pos, pos), frames)
    return pos
  }

  /** Drops a partial frame's buffer: the connection is closed and will not push again. */
  release(): void {
    this.#body = null
  }

  #readLongSize(): number {
    const high = this.#sizeHigh
    const low = this.#sizeLow
    this.#sizeHigh = 0
    this.#sizeLow = 0
    // RFC 23 allows 2^63-1 octets; a JavaScript length cannot exceed 2^53-1 (this also rejects
    // the top bit, which no 63-bit size may set).
    if (high > MAX_SAFE_HIGH_WORD) {
      throw new ZmtpError(
        ZmtpErrorCode.MALFORMED_FRAME,
        `long frame size 0x${high.toString(16).padStart(8, '0')}${low.toString(16).padStart(8, '0')} is out of range`,
      )
    }
    return high * TWO_POW_32 + low
  }

  #allocate(size: number): Uint8Array {
    try {
      return new Uint8Array(size)
    } catch (error) {
      throw new ZmtpError(
        ZmtpErrorCode.FRAME_TOO_LARGE,
        `cannot allocate a frame body of ${size} octets`,
        { cause: error },
      )
    }
  }

  #emit(body: Uint8Array, frames: Frame[]): void {
    const flags = this.#flags
    frames.push({
      more: (flags & FrameFlag.MORE) !== 0,
      command: (flags & FrameFlag.COMMAND) !== 0,
      body,
    })
    this.#state = State.FLAGS
    this.#body = null
    this.#bodyHave = 0
    this.#bodyLength = 0
  }
}
