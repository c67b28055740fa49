// Annotated frame and command vectors (RFC 23/37): decode, encode, round trip, and the streaming
// FrameDecoder fed whole, byte by byte and in random splits.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { concatBytes } from '../../node-bridge/zmtp/codec/bytes'
import {
  decodeCommand,
  decodeErrorReason,
  decodePing,
  encodeCommand,
  encodeCommandBody,
  encodeError,
  encodePing,
  encodePong,
  encodeReady,
} from '../../node-bridge/zmtp/codec/command'
import {
  encodeFrame,
  encodeFrameHeader,
  FrameFlag,
  frameHeaderSize,
  writeFrame,
} from '../../node-bridge/zmtp/codec/frame'
import { type Frame, FrameDecoder } from '../../node-bridge/zmtp/codec/frame-decoder'
import {
  decodeMetadata,
  encodeMetadata,
  METADATA_TOTAL_LIMIT,
  METADATA_VALUE_LIMIT,
} from '../../node-bridge/zmtp/codec/metadata'
import { ZmtpError, ZmtpErrorCode } from '../../node-bridge/zmtp/errors'
import { codeOf } from '../support/zmtp-assert'

// ---------------------------------------------------------------------------------------------
// Helpers

type Part = number | string | Uint8Array | readonly number[]

/** Builds bytes from octets, ASCII strings and byte arrays, so vectors read field by field. */
function bytes(...parts: Part[]): Uint8Array {
  const out: number[] = []
  for (const part of parts) {
    if (typeof part === 'number') out.push(part)
    else if (typeof part === 'string') for (const c of part) out.push(c.charCodeAt(0))
    else for (const b of part) out.push(b)
  }
  return Uint8Array.from(out)
}

/** n octets of a recognisable, non-constant pattern. */
function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ')
const ascii = (b: Uint8Array) => String.fromCharCode(...b)

interface PlainFrame {
  more: boolean
  command: boolean
  body: string
}

const plain = (frames: readonly Frame[]): PlainFrame[] =>
  frames.map((f) => ({ more: f.more, command: f.command, body: hex(f.body) }))

/** Feeds `chunks` (copied into fresh buffers, like socket reads) to one decoder. */
function decodeChunks(chunks: readonly Uint8Array[], decoder = new FrameDecoder()): Frame[] {
  const frames: Frame[] = []
  for (const chunk of chunks) frames.push(...decoder.push(chunk.slice()))
  return frames
}

function byteByByte(wire: Uint8Array): Uint8Array[] {
  return Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1))
}

/** Splits `wire` at the given (unsorted, possibly repeated) offsets. */
function splitAt(wire: Uint8Array, points: readonly number[]): Uint8Array[] {
  const cuts = [...new Set(points)].filter((p) => p > 0 && p < wire.length).sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let start = 0
  for (const cut of [...cuts, wire.length]) {
    chunks.push(wire.subarray(start, cut))
    start = cut
  }
  return chunks
}

/** Split points anywhere inside a buffer of `length` octets. */
const splitPoints = (length: number) =>
  fc.array(fc.integer({ min: 0, max: Math.max(0, length) }), { maxLength: 24 })

// ---------------------------------------------------------------------------------------------
// Vectors: every one is decoded, encoded, round-tripped and streamed through FrameDecoder.

interface ExpectedFrame {
  more: boolean
  command: boolean
  body: Uint8Array
}

interface WireVector {
  title: string
  wire: Uint8Array
  frames: ExpectedFrame[]
  /** How our encoder produces `wire`; absent when the wire form is legal but not what we send. */
  encode?: () => Uint8Array
}

const msg = (body: Uint8Array, more = false): ExpectedFrame => ({ more, command: false, body })
const cmd = (body: Uint8Array): ExpectedFrame => ({ more: false, command: true, body })

const body255 = pattern(255, 1)
const body256 = pattern(256, 2)
const body70000 = pattern(70000, 3)
const body300 = pattern(300, 4)
const context61 = pattern(61, 5)

const READY_DEALER_BODY = bytes(
  0x05, // command name length 5
  'READY', // command name
  0x0b, // property name length 11
  'Socket-Type', // property name
  [0x00, 0x00, 0x00, 0x06], // value length 6 (4 octets, big-endian)
  'DEALER', // property value
  0x08, // property name length 8
  'Identity', // property name
  [0x00, 0x00, 0x00, 0x00], // value length 0: empty identity
)
const READY_ROUTER_BODY = bytes(
  0x05, // command name length 5
  'READY', // command name
  0x0b, // property name length 11
  'Socket-Type', // property name
  [0x00, 0x00, 0x00, 0x06], // value length 6
  'ROUTER', // property value
)
const READY_PUSH_BODY = bytes(
  0x05, // command name length 5
  'READY', // command name
  0x0b, // property name length 11
  'Socket-Type', // property name
  [0x00, 0x00, 0x00, 0x04], // value length 4
  'PUSH', // property value
)

const frameVectors: WireVector[] = [
  {
    title: 'empty message frame',
    wire: bytes(
      0x00, // flags: last frame, short
      0x00, // size 0
    ),
    frames: [msg(new Uint8Array(0))],
    encode: () => encodeFrame(new Uint8Array(0)),
  },
  {
    title: '1-octet message frame',
    wire: bytes(
      0x00, // flags: last frame, short
      0x01, // size 1
      'A', // body
    ),
    frames: [msg(bytes('A'))],
    encode: () => encodeFrame(bytes('A')),
  },
  {
    title: '255-octet message frame (largest short frame)',
    wire: bytes(
      0x00, // flags: short
      0xff, // size 255
      body255, // body
    ),
    frames: [msg(body255)],
    encode: () => encodeFrame(body255),
  },
  {
    title: '256-octet message frame (smallest canonical long frame)',
    wire: bytes(
      0x02, // flags: LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00], // size 256, 64-bit big-endian
      body256, // body
    ),
    frames: [msg(body256)],
    encode: () => encodeFrame(body256),
  },
  {
    title: '70000-octet message frame (size above 16 bits)',
    wire: bytes(
      0x02, // flags: LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x11, 0x70], // size 70000 = 0x11170
      body70000, // body
    ),
    frames: [msg(body70000)],
    encode: () => encodeFrame(body70000),
  },
  {
    title: 'long frame with a 5-octet body (legal, though we send short)',
    wire: bytes(
      0x02, // flags: LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05], // size 5
      'hello', // body
    ),
    frames: [msg(bytes('hello'))],
  },
  {
    title: 'long frame with an empty body',
    wire: bytes(
      0x02, // flags: LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // size 0
    ),
    frames: [msg(new Uint8Array(0))],
  },
  {
    title: 'three-part message (MORE, MORE long, last empty)',
    wire: bytes(
      0x01, // flags: MORE
      0x03, // size 3
      'abc', // body
      0x03, // flags: MORE | LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c], // size 300
      body300, // body
      0x00, // flags: last
      0x00, // size 0
    ),
    frames: [msg(bytes('abc'), true), msg(body300, true), msg(new Uint8Array(0))],
    encode: () =>
      concatBytes(
        ...[
          encodeFrame(bytes('abc'), { more: true }),
          encodeFrame(body300, { more: true }),
          encodeFrame(new Uint8Array(0)),
        ],
      ),
  },
  {
    title: 'short command frame',
    wire: bytes(
      0x04, // flags: COMMAND
      0x05, // size 5
      0x04, // command name length 4
      'PONG', // command name, no data
    ),
    frames: [cmd(bytes(0x04, 'PONG'))],
    encode: () => encodeCommand('PONG'),
  },
  {
    title: 'long command frame (CURVE INITIATE-sized)',
    wire: bytes(
      0x06, // flags: COMMAND | LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x35], // size 309
      0x08, // command name length 8
      'INITIATE', // command name
      body300, // command data
    ),
    frames: [cmd(bytes(0x08, 'INITIATE', body300))],
    encode: () => encodeCommand('INITIATE', body300),
  },
  {
    title: 'RFC 23 worked example: READY from a DEALER',
    wire: bytes(
      0x04, // flags: COMMAND
      0x29, // size 41
      READY_DEALER_BODY, // 05 READY 0b Socket-Type 00000006 DEALER 08 Identity 00000000
    ),
    frames: [cmd(READY_DEALER_BODY)],
    encode: () =>
      encodeReady([
        ['Socket-Type', 'DEALER'],
        ['Identity', new Uint8Array(0)],
      ]),
  },
  {
    title: 'RFC 23 worked example: READY from the ROUTER',
    wire: bytes(
      0x04, // flags: COMMAND
      0x1c, // size 28
      READY_ROUTER_BODY, // 05 READY 0b Socket-Type 00000006 ROUTER
    ),
    frames: [cmd(READY_ROUTER_BODY)],
    encode: () => encodeReady([['Socket-Type', 'ROUTER']]),
  },
  {
    title: 'READY from a libzmq PUSH',
    wire: bytes(
      0x04, // flags: COMMAND
      0x1a, // size 26
      READY_PUSH_BODY, // 05 READY 0b Socket-Type 00000004 PUSH
    ),
    frames: [cmd(READY_PUSH_BODY)],
    encode: () => encodeReady([['Socket-Type', 'PUSH']]),
  },
  {
    title: 'ERROR "Invalid socket type"',
    wire: bytes(
      0x04, // flags: COMMAND
      0x1a, // size 26
      0x05, // command name length 5
      'ERROR', // command name
      0x13, // reason length 19
      'Invalid socket type', // reason
    ),
    frames: [cmd(bytes(0x05, 'ERROR', 0x13, 'Invalid socket type'))],
    encode: () => encodeError('Invalid socket type'),
  },
  {
    title: 'CURVE ERROR "400"',
    wire: bytes(
      0x04, // flags: COMMAND
      0x0a, // size 10
      0x05, // command name length 5
      'ERROR', // command name
      0x03, // reason length 3
      '400', // reason: ZAP status code
    ),
    frames: [cmd(bytes(0x05, 'ERROR', 0x03, '400'))],
    encode: () => encodeError('400'),
  },
  {
    title: 'PING with TTL 0 and context "LOL"',
    wire: bytes(
      0x04, // flags: COMMAND
      0x0a, // size 10
      0x04, // command name length 4
      'PING', // command name
      [0x00, 0x00], // ping-ttl 0 (no TTL)
      'LOL', // ping-context 4c 4f 4c
    ),
    frames: [cmd(bytes(0x04, 'PING', 0x00, 0x00, 'LOL'))],
    encode: () => encodePing(0, bytes('LOL')),
  },
  {
    title: 'PONG echoing "LOL"',
    wire: bytes(
      0x04, // flags: COMMAND
      0x08, // size 8
      0x04, // command name length 4
      'PONG', // command name
      'LOL', // ping-context echoed
    ),
    frames: [cmd(bytes(0x04, 'PONG', 'LOL'))],
    encode: () => encodePong(bytes('LOL')),
  },
  {
    title: 'libzmq heartbeat PING (TTL 2 s, no context)',
    wire: bytes(
      0x04, // flags: COMMAND
      0x07, // size 7
      0x04, // command name length 4
      'PING', // command name
      [0x00, 0x14], // ping-ttl 20 deciseconds
    ),
    frames: [cmd(bytes(0x04, 'PING', 0x00, 0x14))],
    encode: () => encodePing(20),
  },
  {
    title: 'PING with a 61-octet context (more than RFC 37 allows)',
    wire: bytes(
      0x04, // flags: COMMAND
      0x44, // size 68
      0x04, // command name length 4
      'PING', // command name
      [0x01, 0x00], // ping-ttl 256 deciseconds
      context61, // ping-context, 61 octets
    ),
    frames: [cmd(bytes(0x04, 'PING', 0x01, 0x00, context61))],
    // encodePing refuses contexts over 16 octets; the generic command encoder writes it.
    encode: () => encodeCommand('PING', bytes(0x01, 0x00, context61)),
  },
  {
    title: 'a libzmq PUSH segment: READY, then a two-part message and a PING',
    wire: bytes(
      [0x04, 0x1a], // flags COMMAND, size 26
      READY_PUSH_BODY, // READY Socket-Type PUSH
      [0x01, 0x05], // flags MORE, size 5
      'topic', // first message frame
      [0x00, 0x07], // flags last, size 7
      'payload', // last message frame
      [0x04, 0x07], // flags COMMAND, size 7
      [0x04, 0x50, 0x49, 0x4e, 0x47, 0x00, 0x14], // 04 PING, ttl 20
    ),
    frames: [
      cmd(READY_PUSH_BODY),
      msg(bytes('topic'), true),
      msg(bytes('payload')),
      cmd(bytes(0x04, 'PING', 0x00, 0x14)),
    ],
    encode: () =>
      concatBytes(
        ...[
          encodeReady([['Socket-Type', 'PUSH']]),
          encodeFrame(bytes('topic'), { more: true }),
          encodeFrame(bytes('payload')),
          encodePing(20),
        ],
      ),
  },
]

describe('frame vectors', () => {
  for (const v of frameVectors) {
    describe(v.title, () => {
      const expected = plain(v.frames)

      it('decodes in one push', () => {
        const decoder = new FrameDecoder()
        expect(plain(decoder.push(v.wire))).toEqual(expected)
        expect(decoder.bufferedBytes).toBe(0)
      })

      it('decodes byte by byte', () => {
        const decoder = new FrameDecoder()
        expect(plain(decodeChunks(byteByByte(v.wire), decoder))).toEqual(expected)
        expect(decoder.bufferedBytes).toBe(0)
      })

      it('decodes whatever the split', () => {
        fc.assert(
          fc.property(splitPoints(v.wire.length), (points) => {
            expect(plain(decodeChunks(splitAt(v.wire, points)))).toEqual(expected)
          }),
          { numRuns: v.wire.length > 10_000 ? 20 : 100 },
        )
      })

      const { encode } = v
      if (encode) {
        it('encodes to the same bytes', () => {
          expect(hex(encode())).toBe(hex(v.wire))
        })
      }

      it('round-trips through encodeFrame', () => {
        const frames = new FrameDecoder().push(v.wire)
        const reencoded = concatBytes(
          ...frames.map((f) => encodeFrame(f.body, { more: f.more, command: f.command })),
        )
        if (encode) expect(hex(reencoded)).toBe(hex(v.wire))
        else expect(reencoded.length).toBeLessThan(v.wire.length) // we chose the short form
        expect(plain(new FrameDecoder().push(reencoded))).toEqual(expected)
      })
    })
  }
})

// ---------------------------------------------------------------------------------------------

describe('encodeFrame / writeFrame', () => {
  it('uses the short form up to 255 octets and the long form from 256', () => {
    expect(frameHeaderSize(0)).toBe(2)
    expect(frameHeaderSize(255)).toBe(2)
    expect(frameHeaderSize(256)).toBe(9)
    expect(hex(encodeFrameHeader(255))).toBe('00 ff')
    expect(hex(encodeFrameHeader(256, { more: true }))).toBe('03 00 00 00 00 00 00 01 00')
  })

  it('writes sizes above 2^32 with both 32-bit halves', () => {
    // 2^40 + 5: only the header is encoded, no body is allocated.
    expect(hex(encodeFrameHeader(2 ** 40 + 5, { command: true }))).toBe(
      '06 00 00 01 00 00 00 00 05',
    )
    expect(hex(encodeFrameHeader(Number.MAX_SAFE_INTEGER))).toBe('02 00 1f ff ff ff ff ff ff')
  })

  it('sets the flag bits as RFC 23 numbers them', () => {
    expect(FrameFlag).toEqual({ MORE: 1, LONG: 2, COMMAND: 4 })
    expect(encodeFrame(bytes('x'), { more: true })[0]).toBe(0x01)
    expect(encodeFrame(bytes('x'), { command: true })[0]).toBe(0x04)
    expect(encodeFrame(pattern(256), { command: true })[0]).toBe(0x06)
  })

  it('refuses MORE on a command frame', () => {
    expect(() => encodeFrame(bytes('x'), { more: true, command: true })).toThrow(RangeError)
  })

  it('coalesces frames into one buffer at the right offsets', () => {
    const parts = [bytes('abc'), body300, new Uint8Array(0)]
    const size = parts.reduce((n, p) => n + frameHeaderSize(p.length) + p.length, 0)
    const target = new Uint8Array(size + 4).fill(0xee)
    let offset = 2
    parts.forEach((p, i) => {
      offset = writeFrame(target, offset, p, { more: i < parts.length - 1 })
    })
    expect(offset).toBe(size + 2)
    expect(hex(target.subarray(0, 2))).toBe('ee ee')
    expect(hex(target.subarray(size + 2))).toBe('ee ee')
    const frames = new FrameDecoder().push(target.subarray(2, offset))
    expect(frames.map((f) => hex(f.body))).toEqual(parts.map(hex))
    expect(frames.map((f) => f.more)).toEqual([true, true, false])
  })

  it('refuses to write past the end of the target, leaving it untouched', () => {
    const target = new Uint8Array(5)
    expect(() => writeFrame(target, 1, bytes('abc'))).toThrow(RangeError)
    expect(hex(target)).toBe('00 00 00 00 00')
  })
})

// ---------------------------------------------------------------------------------------------

describe('FrameDecoder errors', () => {
  for (const flags of [0x08, 0x10, 0x20, 0x40, 0x80, 0xf8, 0xff]) {
    it(`rejects reserved flag bits (0x${flags.toString(16)}) on the first octet`, () => {
      expect(codeOf(() => new FrameDecoder().push(bytes(flags)))).toBe(
        ZmtpErrorCode.MALFORMED_FRAME,
      )
    })
  }

  for (const flags of [0x05, 0x07]) {
    it(`rejects MORE with COMMAND (0x0${flags.toString(16)})`, () => {
      expect(codeOf(() => new FrameDecoder().push(bytes(flags, 0x01, 0x00)))).toBe(
        ZmtpErrorCode.MALFORMED_FRAME,
      )
    })
  }

  it('returns the good frames before a bad one in the same chunk, then fails', () => {
    const decoder = new FrameDecoder()
    const frames = decoder.push(bytes(0x00, 0x01, 'A', 0x08))
    expect(frames.map((frame) => ascii(frame.body))).toEqual(['A'])
    expect(decoder.error?.code).toBe(ZmtpErrorCode.MALFORMED_FRAME)
    expect(codeOf(() => decoder.push(bytes(0x00, 0x00)))).toBe(ZmtpErrorCode.MALFORMED_FRAME)
  })

  it('throws FRAME_TOO_LARGE from a long header alone, before any body octet', () => {
    const header = bytes(
      0x02, // flags: LONG
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe9], // size 1001
    )
    const decoder = new FrameDecoder({ maxFrameSize: 1000 })
    // Every octet but the last of the size is accepted quietly...
    for (let i = 0; i < header.length - 1; i++) {
      expect(decoder.push(header.subarray(i, i + 1))).toEqual([])
      expect(decoder.bufferedBytes).toBe(i + 1)
    }
    // ... and the last one, which completes the size, throws.
    expect(codeOf(() => decoder.push(header.subarray(8)))).toBe(ZmtpErrorCode.FRAME_TOO_LARGE)
  })

  it('throws FRAME_TOO_LARGE from a short header alone', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 10 })
    expect(decoder.push(bytes(0x00))).toEqual([])
    expect(codeOf(() => decoder.push(bytes(0x0b)))).toBe(ZmtpErrorCode.FRAME_TOO_LARGE)
  })

  it('accepts a frame of exactly maxFrameSize octets', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 10 })
    expect(plain(decoder.push(encodeFrame(pattern(10))))).toEqual(plain([msg(pattern(10))]))
  })

  it('applies maxFrameSize to command frames too', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 4 })
    expect(codeOf(() => decoder.push(encodeCommand('PONG')))).toBe(ZmtpErrorCode.FRAME_TOO_LARGE)
  })

  const hugeSizes: Array<{ title: string; size: number[]; code: ZmtpErrorCode }> = [
    {
      title: 'the top bit set (beyond RFC 23’s 2^63-1)',
      size: [0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
      code: ZmtpErrorCode.MALFORMED_FRAME,
    },
    {
      title: 'all ones',
      size: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      code: ZmtpErrorCode.MALFORMED_FRAME,
    },
    {
      title: '2^53 (one past Number.MAX_SAFE_INTEGER)',
      size: [0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
      code: ZmtpErrorCode.MALFORMED_FRAME,
    },
    {
      title: '2^63-1 (legal in RFC 23, not representable here)',
      size: [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
      code: ZmtpErrorCode.MALFORMED_FRAME,
    },
  ]
  for (const v of hugeSizes) {
    it(`rejects a long size with ${v.title} as ${v.code}`, () => {
      expect(codeOf(() => new FrameDecoder().push(bytes(0x02, v.size)))).toBe(v.code)
    })
  }

  it('with the default limit, holds only what arrived of a body announced as 2^53-1 octets', () => {
    const decoder = new FrameDecoder()
    expect(decoder.push(bytes(0x02, 0x00, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))).toEqual([])
    expect(decoder.bufferedBytes).toBe(9)
    // Allocating the announced size would throw; the buffer follows the octets received instead.
    expect(decoder.push(new Uint8Array(100_000))).toEqual([])
    expect(decoder.bufferedBytes).toBe(9 + 100_000)
  })

  it('rejects a 2^32 size against a 4 GiB - 1 limit from the header', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 2 ** 32 - 1 })
    expect(codeOf(() => decoder.push(bytes(0x02, 0, 0, 0, 1, 0, 0, 0, 0)))).toBe(
      ZmtpErrorCode.FRAME_TOO_LARGE,
    )
  })

  it('is unusable after a throw: later pushes throw the same code, even valid input', () => {
    const decoder = new FrameDecoder()
    expect(codeOf(() => decoder.push(bytes(0x10)))).toBe(ZmtpErrorCode.MALFORMED_FRAME)
    expect(codeOf(() => decoder.push(encodeFrame(bytes('ok'))))).toBe(ZmtpErrorCode.MALFORMED_FRAME)
  })

  it('refuses an invalid maxFrameSize option', () => {
    expect(() => new FrameDecoder({ maxFrameSize: -1 })).toThrow(RangeError)
    expect(() => new FrameDecoder({ maxFrameSize: 1.5 })).toThrow(RangeError)
    expect(() => new FrameDecoder({ maxFrameSize: 2 ** 53 })).toThrow(RangeError)
  })
})

// ---------------------------------------------------------------------------------------------

describe('FrameDecoder buffering', () => {
  it('returns bodies inside one chunk as views of that chunk (zero copy)', () => {
    // The chunk is itself a view at a non-zero offset of a larger buffer.
    const backing = new Uint8Array(64)
    const wire = bytes(0x01, 0x03, 'abc', 0x02, 0, 0, 0, 0, 0, 0, 0, 0x02, 'de', 0x00, 0x00)
    backing.set(wire, 7)
    const chunk = backing.subarray(7, 7 + wire.length)
    const frames = new FrameDecoder().push(chunk)
    expect(frames.map((f) => ascii(f.body))).toEqual(['abc', 'de', ''])
    for (const f of frames) expect(f.body.buffer).toBe(backing.buffer)
    expect(frames.map((f) => f.body.byteOffset)).toEqual([7 + 2, 7 + 14, 7 + 18])
  })

  it('returns a view when the header ends one chunk and the whole body is in the next', () => {
    const decoder = new FrameDecoder()
    expect(decoder.push(bytes(0x02, 0, 0, 0, 0, 0, 0, 0x01, 0x2c))).toEqual([])
    expect(decoder.bufferedBytes).toBe(9)
    const next = body300.slice()
    const [frame] = decoder.push(next)
    expect(frame?.body.buffer).toBe(next.buffer)
    expect(hex(frame?.body ?? new Uint8Array(0))).toBe(hex(body300))
  })

  it('allocates exactly the body size once when a body spans chunks', () => {
    const wire = encodeFrame(body300)
    const decoder = new FrameDecoder()
    const first = wire.slice(0, 100)
    const second = wire.slice(100, 200)
    const third = wire.slice(200)
    expect(decoder.push(first)).toEqual([])
    expect(decoder.bufferedBytes).toBe(100)
    expect(decoder.push(second)).toEqual([])
    expect(decoder.bufferedBytes).toBe(200)
    const [frame] = decoder.push(third)
    expect(decoder.bufferedBytes).toBe(0)
    expect(frame).toBeDefined()
    const body = frame?.body ?? new Uint8Array(0)
    expect(hex(body)).toBe(hex(body300))
    expect(body.buffer).not.toBe(first.buffer)
    expect(body.buffer).not.toBe(third.buffer)
    expect(body.byteOffset).toBe(0)
    expect(body.buffer.byteLength).toBe(300)
  })

  it('grows the buffer of a large body as its octets arrive, and returns it exactly', () => {
    const body = new Uint8Array(1_000_003).map((_, index) => (index * 7) & 0xff)
    const wire = encodeFrame(body)
    const decoder = new FrameDecoder()
    const frames = []
    for (let offset = 0; offset < wire.length; offset += 4093) {
      frames.push(...decoder.push(wire.slice(offset, offset + 4093)))
    }
    expect(frames).toHaveLength(1)
    const received = frames[0]?.body ?? new Uint8Array(0)
    expect(received.byteLength).toBe(body.byteLength)
    expect(received.buffer.byteLength).toBe(body.byteLength)
    expect(Buffer.compare(Buffer.from(received), Buffer.from(body))).toBe(0)
  })

  it('reports the buffered octets of a partial long header', () => {
    const decoder = new FrameDecoder()
    decoder.push(bytes(0x03, 0x00, 0x00, 0x00))
    expect(decoder.bufferedBytes).toBe(4)
    decoder.push(bytes(0x00, 0x00, 0x00, 0x00, 0x01))
    expect(decoder.bufferedBytes).toBe(9)
    decoder.push(pattern(0))
    expect(decoder.bufferedBytes).toBe(9)
  })

  it('stops after maxFrames frames and says how much of the chunk it consumed', () => {
    const chunk = concatBytes(...[encodeFrame(bytes('a')), encodeFrame(bytes('bc')), bytes(0x00)])
    const decoder = new FrameDecoder()
    expect(decoder.push(chunk, 1).map((f) => ascii(f.body))).toEqual(['a'])
    expect(decoder.consumed).toBe(3)
    expect(decoder.push(chunk.subarray(3), 1).map((f) => ascii(f.body))).toEqual(['bc'])
    expect(decoder.consumed).toBe(4)
    expect(decoder.push(chunk.subarray(7))).toEqual([])
    expect(decoder.consumed).toBe(1)
  })

  it('applies a lowered maxFrameSize to the next header', () => {
    const decoder = new FrameDecoder({ maxFrameSize: 100 })
    expect(decoder.push(encodeFrame(pattern(50)))).toHaveLength(1)
    decoder.maxFrameSize = 10
    expect(decoder.maxFrameSize).toBe(10)
    expect(codeOf(() => decoder.push(encodeFrame(pattern(11))))).toBe(ZmtpErrorCode.FRAME_TOO_LARGE)
  })

  it('counts the allocated body buffer, not only the octets received, as retained', () => {
    const decoder = new FrameDecoder()
    decoder.push(bytes(0x02, 0, 0, 0, 0, 0, 0, 0x10, 0x00)) // a 4096-octet body announced
    expect(decoder.retainedBytes).toBe(9)
    decoder.push(pattern(10)) // ten octets arrive: a buffer of the whole (small) body is made
    expect(decoder.bufferedBytes).toBe(19)
    expect(decoder.retainedBytes).toBe(9 + 4096)
    decoder.push(pattern(4086))
    expect(decoder.retainedBytes).toBe(0)
  })

  it('returns nothing for an empty chunk', () => {
    const decoder = new FrameDecoder()
    expect(decoder.push(new Uint8Array(0))).toEqual([])
    decoder.push(bytes(0x00))
    expect(decoder.push(new Uint8Array(0))).toEqual([])
    expect(decoder.bufferedBytes).toBe(1)
  })
})

// ---------------------------------------------------------------------------------------------

describe('FrameDecoder properties', () => {
  const arbitraryFrame = fc
    .record({
      more: fc.boolean(),
      command: fc.boolean(),
      body: fc.oneof(
        { weight: 4, arbitrary: fc.uint8Array({ maxLength: 300 }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 5000 }).map((n) => pattern(n, n)) },
      ),
    })
    .map((f) => ({ ...f, more: f.more && !f.command }))

  it('any frames, encoded, concatenated and split anywhere, decode to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(arbitraryFrame, { maxLength: 20 }).chain((frames) => {
          const wire = concatBytes(...frames.map((f) => encodeFrame(f.body, f)))
          return fc.tuple(fc.constant(frames), fc.constant(wire), splitPoints(wire.length))
        }),
        ([frames, wire, points]) => {
          expect(plain(decodeChunks(splitAt(wire, points)))).toEqual(plain(frames))
        },
      ),
    )
  })

  it('bufferedBytes is always the octets since the last complete frame', () => {
    fc.assert(
      fc.property(fc.array(arbitraryFrame, { minLength: 1, maxLength: 8 }), (frames) => {
        const encoded = frames.map((f) => encodeFrame(f.body, f))
        const wire = concatBytes(...encoded)
        const ends: number[] = []
        let end = 0
        for (const e of encoded) {
          end += e.length
          ends.push(end)
        }
        const decoder = new FrameDecoder()
        let count = 0
        for (let i = 0; i < wire.length; i++) {
          count += decoder.push(wire.subarray(i, i + 1)).length
          const completed = ends.filter((e) => e <= i + 1)
          expect(count).toBe(completed.length)
          expect(decoder.bufferedBytes).toBe(i + 1 - (completed.at(-1) ?? 0))
        }
      }),
    )
  })

  // Garbage biased towards valid flags so that headers and sizes are exercised, not only the
  // reserved-bit check on the first octet.
  const garbage = fc.array(
    fc.oneof(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 255 }), fc.constant(0)),
    { maxLength: 400 },
  )

  it('random garbage gives frames or a ZmtpError, never another exception, whatever the split', () => {
    fc.assert(
      fc.property(garbage, splitPoints(400), (octets, points) => {
        const wire = Uint8Array.from(octets)
        const outcome = (chunks: Uint8Array[]) => {
          const decoder = new FrameDecoder({ maxFrameSize: 1 << 20 })
          const frames: Frame[] = []
          try {
            for (const chunk of chunks) frames.push(...decoder.push(chunk.slice()))
          } catch (error) {
            expect(error).toBeInstanceOf(ZmtpError)
          }
          return { frames: plain(frames), code: decoder.error?.code }
        }
        const whole = outcome([wire])
        // Split-invariance holds for errors too: the same frames come out before the same error.
        expect(outcome(splitAt(wire, points))).toEqual(whole)
      }),
      { numRuns: 500 },
    )
  })
})

// ---------------------------------------------------------------------------------------------

describe('commands', () => {
  it('decodes the DEALER READY of the RFC 23 worked example', () => {
    const [frame] = new FrameDecoder().push(bytes(0x04, 0x29, READY_DEALER_BODY))
    const command = decodeCommand(frame?.body ?? new Uint8Array(0))
    expect(command.name).toBe('READY')
    const metadata = decodeMetadata(command.data)
    expect([...metadata.keys()]).toEqual(['socket-type', 'identity'])
    expect(ascii(metadata.get('socket-type') ?? new Uint8Array(0))).toBe('DEALER')
    expect(metadata.get('identity')?.length).toBe(0)
  })

  it('decodes the PUSH READY', () => {
    const command = decodeCommand(READY_PUSH_BODY)
    expect(command.name).toBe('READY')
    expect(hex(command.data)).toBe(hex(READY_PUSH_BODY.subarray(6)))
    expect(command.data.buffer).toBe(READY_PUSH_BODY.buffer) // a view, not a copy
    const metadata = decodeMetadata(command.data)
    expect(metadata.size).toBe(1)
    expect(ascii(metadata.get('socket-type') ?? new Uint8Array(0))).toBe('PUSH')
  })

  it('encodes command bodies without a frame header', () => {
    expect(hex(encodeCommandBody('READY', READY_PUSH_BODY.subarray(6)))).toBe(hex(READY_PUSH_BODY))
    expect(hex(encodeCommandBody('PONG'))).toBe(hex(bytes(0x04, 'PONG')))
  })

  it('round-trips a command name and data', () => {
    const data = pattern(1000)
    const frame = encodeCommand('MESSAGE', data)
    expect(frame[0]).toBe(0x06) // RFC 23: SHOULD use a long size for bodies of 256 or more
    const [decoded] = new FrameDecoder().push(frame)
    expect(decoded?.command).toBe(true)
    const command = decodeCommand(decoded?.body ?? new Uint8Array(0))
    expect(command.name).toBe('MESSAGE')
    expect(hex(command.data)).toBe(hex(data))
  })

  it('accepts a command with a name and no data (size = name length + 1)', () => {
    expect(decodeCommand(bytes(0x05, 'READY'))).toEqual({ name: 'READY', data: new Uint8Array(0) })
  })

  it('accepts lower-case names (ALPHA) and keeps their case', () => {
    expect(decodeCommand(bytes(0x04, 'ping', 0x00, 0x00)).name).toBe('ping')
  })

  const malformedCommands: Array<{ title: string; body: Uint8Array }> = [
    { title: 'an empty body', body: new Uint8Array(0) },
    { title: 'a lone name-length octet', body: bytes(0x05) },
    { title: 'a zero name length', body: bytes(0x00, 'READY') },
    { title: 'a name running past the end', body: bytes(0x05, 'REA') },
    { title: 'a name one octet short', body: bytes(0x05, 'READ') },
    { title: 'a digit in the name', body: bytes(0x05, 'READ1') },
    { title: 'a NUL in the name', body: bytes(0x05, 'REA', 0x00, 'Y') },
    { title: 'a space in the name', body: bytes(0x05, 'RE DY') },
  ]
  for (const v of malformedCommands) {
    it(`rejects ${v.title} as MALFORMED_COMMAND`, () => {
      expect(codeOf(() => decodeCommand(v.body))).toBe(ZmtpErrorCode.MALFORMED_COMMAND)
    })
  }

  it('refuses to encode invalid names', () => {
    expect(() => encodeCommand('')).toThrow(RangeError)
    expect(() => encodeCommand('A'.repeat(256))).toThrow(RangeError)
    expect(() => encodeCommand('CURVE-1')).toThrow(RangeError)
    expect(() => encodeCommandBody('PING!')).toThrow(RangeError)
    expect(encodeCommand('A'.repeat(255)).length).toBe(2 + 256 + 7) // long frame: 9 + 256
  })
})

describe('ERROR', () => {
  it('decodes the reason', () => {
    const { name, data } = decodeCommand(bytes(0x05, 'ERROR', 0x13, 'Invalid socket type'))
    expect(name).toBe('ERROR')
    expect(decodeErrorReason(data)).toBe('Invalid socket type')
  })

  it('encodes and decodes an empty reason', () => {
    const frame = encodeError('')
    expect(hex(frame)).toBe(hex(bytes(0x04, 0x07, 0x05, 'ERROR', 0x00)))
    expect(decodeErrorReason(decodeCommand(frame.subarray(2)).data)).toBe('')
  })

  it('truncates a reason longer than 255 octets, switching to a long frame', () => {
    const frame = encodeError('x'.repeat(300))
    expect(hex(frame.subarray(0, 9))).toBe('06 00 00 00 00 00 00 01 06') // size 262 = 6 + 1 + 255
    const [decoded] = new FrameDecoder().push(frame)
    const reason = decodeErrorReason(decodeCommand(decoded?.body ?? new Uint8Array(0)).data)
    expect(reason).toBe('x'.repeat(255))
  })

  it('truncates UTF-8 on a character boundary', () => {
    const frame = encodeError('é'.repeat(200)) // 400 octets of UTF-8
    const [decoded] = new FrameDecoder().push(frame)
    const { data } = decodeCommand(decoded?.body ?? new Uint8Array(0))
    expect(data[0]).toBe(254) // 255 would split the 128th 'é'
    expect(decodeErrorReason(data)).toBe('é'.repeat(127))
  })

  const badReasons: Array<{ title: string; data: Uint8Array }> = [
    { title: 'no length octet', data: new Uint8Array(0) },
    { title: 'a length longer than the data', data: bytes(0x05, 'abc') },
    { title: 'a length shorter than the data', data: bytes(0x02, 'abc') },
  ]
  for (const v of badReasons) {
    it(`rejects ${v.title} as MALFORMED_COMMAND`, () => {
      expect(codeOf(() => decodeErrorReason(v.data))).toBe(ZmtpErrorCode.MALFORMED_COMMAND)
    })
  }
})

describe('PING and PONG (RFC 37)', () => {
  it('answers PING 00 00 "LOL" with PONG "LOL"', () => {
    const [frame] = new FrameDecoder().push(
      bytes(0x04, 0x0a, 0x04, 'PING', 0x00, 0x00, 0x4c, 0x4f, 0x4c),
    )
    const command = decodeCommand(frame?.body ?? new Uint8Array(0))
    expect(command.name).toBe('PING')
    const ping = decodePing(command.data)
    expect(ping.ttlDeciseconds).toBe(0)
    expect(ascii(ping.context)).toBe('LOL')
    expect(hex(encodePong(ping.context))).toBe(
      hex(bytes(0x04, 0x08, 0x04, 'PONG', 0x4c, 0x4f, 0x4c)),
    )
  })

  it('reads the TTL as a big-endian u16', () => {
    expect(decodePing(bytes(0x00, 0x14)).ttlDeciseconds).toBe(20)
    expect(decodePing(bytes(0xff, 0xfe)).ttlDeciseconds).toBe(65534)
    expect(decodePing(bytes(0x00, 0x14)).context.length).toBe(0)
  })

  it('answers a PING with a 61-octet context with a PONG echoing the first 16', () => {
    const ping = decodePing(decodeCommand(bytes(0x04, 'PING', 0x01, 0x00, context61)).data)
    expect(ping.ttlDeciseconds).toBe(256)
    expect(ping.context.length).toBe(61)
    const pong = encodePong(ping.context)
    expect(hex(pong)).toBe(
      hex(
        bytes(
          0x04, // flags: COMMAND
          0x15, // size 21
          0x04, // command name length 4
          'PONG', // command name
          context61.subarray(0, 16), // first 16 octets of the context
        ),
      ),
    )
  })

  it('rejects a PING without its 2-octet TTL', () => {
    expect(codeOf(() => decodePing(new Uint8Array(0)))).toBe(ZmtpErrorCode.MALFORMED_COMMAND)
    expect(codeOf(() => decodePing(bytes(0x00)))).toBe(ZmtpErrorCode.MALFORMED_COMMAND)
  })

  it('refuses to encode a PING outside RFC 37 limits', () => {
    expect(() => encodePing(65536)).toThrow(RangeError)
    expect(() => encodePing(-1)).toThrow(RangeError)
    expect(() => encodePing(0, pattern(17))).toThrow(RangeError)
    expect(hex(encodePing(65535, pattern(16)).subarray(0, 10))).toBe(
      hex(bytes(0x04, 0x17, 0x04, 'PING', 0xff, 0xff, pattern(1))),
    )
  })
})

// ---------------------------------------------------------------------------------------------

describe('metadata', () => {
  it('encodes properties in order with 4-octet big-endian value lengths', () => {
    expect(hex(encodeMetadata([['X-Big', pattern(300)]]).subarray(0, 10))).toBe(
      hex(
        bytes(
          0x05, // property name length 5
          'X-Big', // property name
          [0x00, 0x00, 0x01, 0x2c], // value length 300
        ),
      ),
    )
    expect(encodeMetadata([]).length).toBe(0)
  })

  it('lower-cases names, keeps insertion order and returns values as views', () => {
    const data = bytes(
      0x0b, // property name length 11
      'SOCKET-TYPE', // property name, upper case
      [0x00, 0x00, 0x00, 0x04], // value length 4
      'PUSH', // value
      0x0a, // property name length 10
      'X-Trace.id', // application property name
      [0x00, 0x00, 0x00, 0x02], // value length 2
      [0xca, 0xfe], // binary value
    )
    const metadata = decodeMetadata(data)
    expect([...metadata.keys()]).toEqual(['socket-type', 'x-trace.id'])
    const value = metadata.get('x-trace.id')
    expect(hex(value ?? new Uint8Array(0))).toBe('ca fe')
    expect(value?.buffer).toBe(data.buffer)
  })

  it('decodes empty metadata to an empty map', () => {
    expect(decodeMetadata(new Uint8Array(0)).size).toBe(0)
  })

  const invalid: Array<{ title: string; data: Uint8Array }> = [
    {
      title: 'a trailing byte',
      data: bytes(0x0b, 'Socket-Type', 0x00, 0x00, 0x00, 0x04, 'PUSH', 0x41),
    },
    {
      title: 'a truncated value',
      data: bytes(0x0b, 'Socket-Type', 0x00, 0x00, 0x00, 0x06, 'DEA'),
    },
    {
      title: 'a value one octet short',
      data: bytes(0x0b, 'Socket-Type', 0x00, 0x00, 0x00, 0x06, 'DEALE'),
    },
    {
      title: 'a truncated value length',
      data: bytes(0x0b, 'Socket-Type', 0x00, 0x00),
    },
    {
      title: 'a name running past the end',
      data: bytes(0x0b, 'Sock'),
    },
    {
      title: 'a zero-length name',
      data: bytes(0x00, 0x00, 0x00, 0x00, 0x00),
    },
    {
      title: 'a space in a name',
      data: bytes(0x04, 'Na e', 0x00, 0x00, 0x00, 0x00),
    },
    {
      title: 'a non-ASCII octet in a name',
      data: bytes(0x04, 'N', 0xe4, 'me', 0x00, 0x00, 0x00, 0x00),
    },
    {
      title: 'a colon in a name',
      data: bytes(0x04, 'Name', 0x00, 0x00, 0x00, 0x00, 0x05, 'Name:', 0x00, 0x00, 0x00, 0x00),
    },
    {
      title: 'a value length above 2^31-1',
      data: bytes(0x01, 'A', 0x80, 0x00, 0x00, 0x00),
    },
    {
      title: 'a duplicate name differing only in case',
      data: bytes(0x01, 'A', 0x00, 0x00, 0x00, 0x00, 0x01, 'a', 0x00, 0x00, 0x00, 0x00),
    },
  ]
  for (const v of invalid) {
    it(`rejects ${v.title} as INVALID_METADATA`, () => {
      expect(codeOf(() => decodeMetadata(v.data))).toBe(ZmtpErrorCode.INVALID_METADATA)
    })
  }

  it('refuses a value over METADATA_VALUE_LIMIT (1 KiB), though RFC 23 allows 2^31-1', () => {
    const property = (size: number) => encodeMetadata([['X-Big', pattern(size)]])
    expect(decodeMetadata(property(METADATA_VALUE_LIMIT)).get('x-big')?.length).toBe(
      METADATA_VALUE_LIMIT,
    )
    expect(codeOf(() => decodeMetadata(property(METADATA_VALUE_LIMIT + 1)))).toBe(
      ZmtpErrorCode.INVALID_METADATA,
    )
    // A 16 MB value is refused from its length field, whatever follows.
    expect(codeOf(() => decodeMetadata(bytes(0x01, 'A', 0x01, 0x00, 0x00, 0x00, 'x')))).toBe(
      ZmtpErrorCode.INVALID_METADATA,
    )
  })

  it('refuses metadata over METADATA_TOTAL_LIMIT (4 KiB) in all', () => {
    const properties = (count: number, size: number) =>
      encodeMetadata(Array.from({ length: count }, (_, i) => [`X-${i}`, pattern(size)] as const))
    const fits = properties(4, METADATA_TOTAL_LIMIT / 4 - 8) // 1 + 3 + 4 + value, four times
    expect(fits.length).toBe(METADATA_TOTAL_LIMIT)
    expect(decodeMetadata(fits).size).toBe(4)
    expect(codeOf(() => decodeMetadata(properties(5, 900)))).toBe(ZmtpErrorCode.INVALID_METADATA)
  })

  it('refuses to encode invalid properties', () => {
    expect(() => encodeMetadata([['', 'x']])).toThrow(RangeError)
    expect(() => encodeMetadata([['A'.repeat(256), 'x']])).toThrow(RangeError)
    expect(() => encodeMetadata([['Socket Type', 'PUSH']])).toThrow(RangeError)
    expect(() =>
      encodeMetadata([
        ['Identity', ''],
        ['identity', ''],
      ]),
    ).toThrow(RangeError)
    expect(() => encodeReady([['Sökt', 'x']])).toThrow(RangeError)
  })

  it('round-trips any valid properties', () => {
    const nameChar = fc.constantFrom(
      ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+',
    )
    const name = fc.string({ unit: nameChar, minLength: 1, maxLength: 255 })
    const value = fc.oneof(fc.uint8Array({ maxLength: 600 }), fc.string({ maxLength: 40 }))
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(name, value), {
          maxLength: 8,
          selector: ([n]) => n.toLowerCase(),
        }),
        (properties) => {
          const data = encodeMetadata(properties)
          // Past the caps a server applies: the format itself is what is checked here.
          const decoded = decodeMetadata(data, { maxValueSize: 600, maxTotalSize: data.length })
          expect([...decoded.keys()]).toEqual(properties.map(([n]) => n.toLowerCase()))
          for (const [n, v] of properties) {
            const expected = typeof v === 'string' ? new TextEncoder().encode(v) : v
            expect(hex(decoded.get(n.toLowerCase()) ?? new Uint8Array(1))).toBe(hex(expected))
          }
          // And as a READY command through the frame decoder.
          const [frame] = new FrameDecoder().push(encodeReady(properties))
          const command = decodeCommand(frame?.body ?? new Uint8Array(0))
          expect(command.name).toBe('READY')
          expect(hex(command.data)).toBe(hex(data))
        },
      ),
    )
  })

  it('decodes random garbage to a map or INVALID_METADATA, never another exception', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 8 }), fc.integer({ min: 0, max: 255 })), {
          maxLength: 80,
        }),
        (octets) => {
          try {
            decodeMetadata(Uint8Array.from(octets))
          } catch (error) {
            expect(error).toBeInstanceOf(ZmtpError)
            expect((error as ZmtpError).code).toBe(ZmtpErrorCode.INVALID_METADATA)
          }
        },
      ),
    )
  })
})

describe('ZmtpError', () => {
  it('defaults to a plain close and carries code, reason and cause', () => {
    const plainClose = new ZmtpError(ZmtpErrorCode.MALFORMED_FRAME, 'bad')
    expect(plainClose).toBeInstanceOf(Error)
    expect(plainClose.name).toBe('ZmtpError')
    expect(plainClose.action).toBe('close')
    expect(plainClose.reason).toBeUndefined()
    const cause = new Error('inner')
    const withError = new ZmtpError(ZmtpErrorCode.INVALID_SOCKET_TYPE, 'wrong type', {
      action: 'error',
      reason: 'Invalid socket type',
      cause,
    })
    expect(withError.action).toBe('error')
    expect(withError.reason).toBe('Invalid socket type')
    expect(withError.cause).toBe(cause)
  })
})
