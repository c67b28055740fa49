// Segments, the storage format of a channel's log: a vector, varint edges, message ranges, scans
// of large segments a window at a time, round trips, and typed errors for corrupt storage.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  decodeSegment,
  encodedSegmentSize,
  encodeSegment,
  MAX_SEGMENT_TIME,
  MIN_SEGMENT_TIME,
  SCAN_WINDOW_BYTES,
  SegmentFormat,
  SegmentFormatError,
  type SegmentMessage,
  type SegmentMessageLayout,
  scanSegment,
  segmentMessageCount,
} from '../../durable/segment-codec'
import type { RelayMessage } from '../../shared/relay-protocol'

const bytes = (...values: number[]) => new Uint8Array(values)
const ascii = (text: string) => new TextEncoder().encode(text)
const KEY = new Uint8Array(32).map((_, index) => index)

function codeOf(action: () => unknown): string | undefined {
  try {
    action()
  } catch (error) {
    if (error instanceof SegmentFormatError) return error.code
    throw error
  }
  return undefined
}

/** The error `action` throws; fails the test when it throws none. */
function errorOf(action: () => unknown): unknown {
  try {
    action()
  } catch (error) {
    return error
  }
  throw new Error('expected an error')
}

/** A read function over `segment` that records what it is asked for. */
function recordingReader(segment: Uint8Array) {
  const reads: [offset: number, length: number][] = []
  const read = (offset: number, length: number) => {
    reads.push([offset, length])
    return segment.slice(offset, offset + length)
  }
  return { read, reads }
}

const scanAll = (segment: Uint8Array, window?: number) =>
  scanSegment((offset, length) => segment.subarray(offset, offset + length), segment.length, window)

/** What decodeSegment gives back for `message`. */
function expected(message: RelayMessage): SegmentMessage {
  const result: SegmentMessage = {
    // + 0: a time of -0 comes back as 0.
    receivedAt: Math.floor(message.receivedAt) + 0,
    mechanism: message.mechanism,
    peerAddress: message.peerAddress,
    size: message.frames.reduce((sum, frame) => sum + frame.length, 0),
    frames: message.frames,
  }
  if (message.publicKey) result.publicKey = message.publicKey
  if (message.keyName !== undefined) result.keyName = message.keyName
  return result
}

/** The layouts scanSegment should give, derived from a full decode. */
function layoutsOf(segment: Uint8Array): SegmentMessageLayout[] {
  return decodeSegment(segment).map(({ frames, ...head }) => ({
    ...head,
    frameSizes: frames.map((frame) => frame.length),
    framesOffset: (frames[0] as Uint8Array).byteOffset - segment.byteOffset,
  }))
}

/** Every read asked for 1 to `window` octets and none reached a frame octet. */
function expectHeadReadsOnly(
  reads: readonly [number, number][],
  layouts: readonly SegmentMessageLayout[],
  window = SCAN_WINDOW_BYTES,
): void {
  for (const [offset, length] of reads) {
    expect(length).toBeGreaterThanOrEqual(1)
    expect(length).toBeLessThanOrEqual(window)
    for (const { framesOffset, size } of layouts) {
      const overlaps = offset < framesOffset + size && framesOffset < offset + length
      expect(overlaps, `read [${offset}, ${offset + length}) reaches frame octets`).toBe(false)
    }
  }
}

const message = (
  receivedAt: number,
  frames: Uint8Array[] = [bytes()],
  peerAddress = '',
): RelayMessage => ({ receivedAt, mechanism: 'NULL', peerAddress, frames })

// A segment of one peer (NULL, empty address, no key) and one message, from the base time on.
// biome-ignore format: one line per field
const tiny = (...tail: number[]) => bytes(
  0x01, //                                         format 1
  0x01, //                                         1 peer
  0x00, 0x00, 0x00, //                             NULL, empty address, no key
  0x01, //                                         1 message
  ...tail, //                                      base time, the message
)

describe('segment vector', () => {
  // Two messages from two peers: "hi" and an empty frame over NULL, then "abc" over CURVE.
  // biome-ignore format: one line per field
  const vector = bytes(
    0x01, //                                       format 1
    0x02, //                                       2 peers
    0x00, //                                       peer 0: mechanism NULL
    0x0e, ...ascii('127.0.0.1:5555'), //           its address, 14 octets
    0x00, //                                       no key
    0x01, //                                       peer 1: mechanism CURVE
    0x07, ...ascii('[::1]:9'), //                  its address, 7 octets
    0x20, ...KEY, //                               its key, 32 octets
    0x02, //                                       2 messages
    0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62, //         base time 1.7e12 ms (zigzag 3.4e12)
    0x00, //                                       message 0: time delta 0
    0x00, //                                       from peer 0
    0x02, //                                       2 frames
    0x02, 0x00, //                                 frame lengths 2 and 0
    ...ascii('hi'), //                             frame octets
    0xd8, 0x04, //                                 message 1: time delta +300 ms (zigzag 600)
    0x01, //                                       from peer 1
    0x01, //                                       1 frame
    0x03, //                                       frame length 3
    ...ascii('abc'), //                            frame octets
  )
  const messages: RelayMessage[] = [
    {
      receivedAt: 1.7e12 + 0.75,
      mechanism: 'NULL',
      peerAddress: '127.0.0.1:5555',
      frames: [ascii('hi'), bytes()],
    },
    {
      receivedAt: 1.7e12 + 300.2,
      mechanism: 'CURVE',
      peerAddress: '[::1]:9',
      publicKey: KEY,
      frames: [ascii('abc')],
    },
  ]
  const decoded: SegmentMessage[] = [
    {
      receivedAt: 1.7e12,
      mechanism: 'NULL',
      peerAddress: '127.0.0.1:5555',
      size: 2,
      frames: [ascii('hi'), bytes()],
    },
    {
      receivedAt: 1.7e12 + 300,
      mechanism: 'CURVE',
      peerAddress: '[::1]:9',
      publicKey: KEY,
      size: 3,
      frames: [ascii('abc')],
    },
  ]
  // Offsets of fields in the vector.
  const PEER_COUNT_AT = 1
  const KEY_LENGTH_0_AT = 18
  const ADDRESS_1_AT = 21
  const MESSAGE_COUNT_AT = 61
  const FRAME_COUNT_0_AT = 70
  const HI_AT = 73
  const PEER_INDEX_1_AT = 77
  const FRAME_LENGTH_1_AT = 79
  const ABC_AT = 80

  it('encodes to the documented bytes', () => {
    expect(SegmentFormat.PLAIN).toBe(1)
    expect(encodeSegment(messages)).toEqual(vector)
    expect(encodedSegmentSize(messages)).toBe(vector.length)
  })

  it('decodes the documented bytes, frames as views into them', () => {
    const result = decodeSegment(vector)
    expect(result).toEqual(decoded)
    const hi = result[0]?.frames[0] as Uint8Array
    expect(hi.buffer).toBe(vector.buffer)
    expect(hi.byteOffset).toBe(HI_AT)
    expect(segmentMessageCount(vector)).toBe(2)
  })

  it('round-trips, also from a view that does not start its buffer', () => {
    const padded = new Uint8Array(vector.length + 10)
    padded.set(vector, 7)
    const view = padded.subarray(7, 7 + vector.length)
    expect(decodeSegment(view)).toEqual(decoded)
    expect(scanAll(view)).toEqual(layoutsOf(view))
    expect(encodeSegment(decodeSegment(view))).toEqual(vector)
  })

  it('scans to the frame sizes and where the frames start', () => {
    const [first, second] = decoded.map(({ frames: _, ...head }) => head)
    expect(scanAll(vector)).toEqual([
      { ...first, frameSizes: [2, 0], framesOffset: HI_AT },
      { ...second, frameSizes: [3], framesOffset: ABC_AT },
    ])
  })

  it('rejects every truncation with CORRUPT_SEGMENT', () => {
    for (let length = 0; length < vector.length; length++) {
      const prefix = vector.subarray(0, length)
      expect(
        codeOf(() => decodeSegment(prefix)),
        `prefix of ${length}`,
      ).toBe('CORRUPT_SEGMENT')
      expect(
        codeOf(() => scanAll(prefix)),
        `prefix of ${length}`,
      ).toBe('CORRUPT_SEGMENT')
    }
    expect(codeOf(() => segmentMessageCount(vector.subarray(0, MESSAGE_COUNT_AT)))).toBe(
      'CORRUPT_SEGMENT',
    )
  })

  it.each([
    ['an unknown format', 0, 2],
    ['format 0', 0, 0],
    ['an unknown mechanism', 2, 2],
    ['a key length that is not 0 or 32', KEY_LENGTH_0_AT, 31],
    ['an address that is not UTF-8', ADDRESS_1_AT, 0xff],
    ['no peer', PEER_COUNT_AT, 0],
    ['more peers than the header holds', PEER_COUNT_AT, 3],
    ['no message', MESSAGE_COUNT_AT, 0],
    ['more messages than the segment holds', MESSAGE_COUNT_AT, 3],
    ['a message without frames', FRAME_COUNT_0_AT, 0],
    ['a peer index past the peers', PEER_INDEX_1_AT, 2],
    ['a frame running past the end', FRAME_LENGTH_1_AT, 4],
  ])('rejects %s', (_, offset, value) => {
    const corrupt = vector.slice()
    corrupt[offset] = value
    expect(codeOf(() => decodeSegment(corrupt))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => scanAll(corrupt))).toBe('CORRUPT_SEGMENT')
  })

  it('rejects octets after the last message, when the range reaches it', () => {
    const trailing = bytes(...vector, 0)
    expect(codeOf(() => decodeSegment(trailing))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => decodeSegment(trailing, { from: 1 }))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => decodeSegment(trailing, { count: 2 }))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => scanAll(trailing))).toBe('CORRUPT_SEGMENT')
    expect(decodeSegment(trailing, { count: 1 })).toEqual(decoded.slice(0, 1))
  })

  it('is a RangeError with a stable code', () => {
    const error = errorOf(() => decodeSegment(bytes(2)))
    expect(error).toBeInstanceOf(SegmentFormatError)
    expect(error).toBeInstanceOf(RangeError)
    expect(error).toMatchObject({ name: 'SegmentFormatError', code: 'CORRUPT_SEGMENT' })
  })
})

describe('segment peers', () => {
  it('stores 3 peers once for 1000 messages', () => {
    const peers = [
      { mechanism: 'NULL' as const, peerAddress: '10.0.0.1:1' },
      { mechanism: 'NULL' as const, peerAddress: '10.0.0.2:2' },
      { mechanism: 'CURVE' as const, peerAddress: '10.0.0.3:3' },
    ]
    const messages: RelayMessage[] = Array.from({ length: 1000 }, (_, index) => {
      const peer = peers[(index * 7) % 3] as (typeof peers)[number]
      // A new key array each time: peers are told apart by their octets, not their arrays.
      return peer.mechanism === 'CURVE'
        ? { ...peer, publicKey: KEY.slice(), receivedAt: 5, frames: [new Uint8Array(10)] }
        : { ...peer, receivedAt: 5, frames: [new Uint8Array(10)] }
    })
    const segment = encodeSegment(messages)
    expect(segment[1]).toBe(3)
    const peerOctets = 3 * (1 + 1 + 10 + 1) + 32
    // format, peer count, peers, message count (2 octets), base time 5 (zigzag 10, 1 octet),
    // then per message: delta, peer index, frame count, frame length, 10 frame octets.
    expect(segment.length).toBe(1 + 1 + peerOctets + 2 + 1 + 1000 * (4 + 10))
    expect(decodeSegment(segment)).toEqual(messages.map(expected))
  })

  it('tells apart peers of one address by mechanism and key', () => {
    const otherKey = KEY.map((octet) => octet ^ 1)
    const messages: RelayMessage[] = [
      { receivedAt: 0, mechanism: 'NULL', peerAddress: 'a', frames: [bytes(1)] },
      { receivedAt: 0, mechanism: 'CURVE', peerAddress: 'a', frames: [bytes(2)] },
      { receivedAt: 0, mechanism: 'CURVE', peerAddress: 'a', publicKey: KEY, frames: [bytes(3)] },
      {
        receivedAt: 0,
        mechanism: 'CURVE',
        peerAddress: 'a',
        publicKey: otherKey,
        frames: [bytes(4)],
      },
      { receivedAt: 0, mechanism: 'NULL', peerAddress: 'a', frames: [bytes(5)] },
    ]
    const segment = encodeSegment(messages)
    expect(segment[1]).toBe(4)
    expect(decodeSegment(segment)).toEqual(messages.map(expected))
  })

  it('refers to the 129th peer with a two-octet index', () => {
    const one = (count: number) =>
      Array.from({ length: count }, (_, index) => message(0, [bytes()], `p${index}`))
    const segment = encodeSegment(one(129))
    expect(segment[1]).toBe(0x81)
    expect(segment[2]).toBe(0x01)
    // The last message: delta 0, peer index 128 (0x80 0x01), 1 frame, length 0.
    expect(segment.subarray(-5)).toEqual(bytes(0x00, 0x80, 0x01, 0x01, 0x00))
    expect(decodeSegment(segment).map((item) => item.peerAddress)).toEqual(
      one(129).map((item) => item.peerAddress),
    )
  })

  it("writes format 2 with each named peer's name after its key, and reads it back", () => {
    const named: RelayMessage = {
      receivedAt: 0,
      mechanism: 'CURVE',
      peerAddress: 'a',
      publicKey: KEY,
      keyName: 'é',
      frames: [bytes(7)],
    }
    const plain = message(0, [bytes(8)], 'b')
    const segment = encodeSegment([named, plain])
    // biome-ignore format: one line per field
    expect(segment).toEqual(bytes(
      0x02, //                                  format 2
      0x02, //                                  2 peers
      0x01, 0x01, 0x61, 0x20, ...KEY, //        CURVE, "a", a key
      0x02, 0xc3, 0xa9, //                      its name "é", 2 octets
      0x00, 0x01, 0x62, 0x00, 0x00, //         NULL, "b", no key, no name
      0x02, 0x00, //                            2 messages, base time 0
      0x00, 0x00, 0x01, 0x01, 0x07, //         delta 0, peer 0, 1 frame of 1 octet
      0x00, 0x01, 0x01, 0x01, 0x08, //         delta 0, peer 1, 1 frame of 1 octet
    ))
    expect(encodedSegmentSize([named, plain])).toBe(segment.length)
    expect(decodeSegment(segment)).toEqual([named, plain].map(expected))
    expect(scanAll(segment)).toEqual(layoutsOf(segment))
    // Without a name in the segment, format 1 as before names.
    expect(encodeSegment([{ ...named, keyName: undefined }, plain])[0]).toBe(SegmentFormat.PLAIN)
  })

  it('tells apart peers of one key by name, and keeps one peer per name', () => {
    const of = (keyName?: string): RelayMessage => ({
      receivedAt: 0,
      mechanism: 'CURVE',
      peerAddress: 'a',
      publicKey: KEY.slice(),
      ...(keyName === undefined ? {} : { keyName }),
      frames: [bytes(1)],
    })
    // A record renamed while its key sends, and names that share a prefix with the address.
    const messages = [of('x'), of('x'), of('y'), of(), of('x'), of('1:x'), of('x1')]
    const segment = encodeSegment(messages)
    expect(segment[1]).toBe(5)
    expect(decodeSegment(segment)).toEqual(messages.map(expected))
  })

  it('refuses names it cannot store, and segments whose names break the rule', () => {
    const named = (keyName: string, publicKey: Uint8Array | null = KEY): RelayMessage => ({
      receivedAt: 0,
      mechanism: 'CURVE',
      peerAddress: '',
      ...(publicKey ? { publicKey } : {}),
      keyName,
      frames: [bytes()],
    })
    expect(() => encodeSegment([named('x', null)])).toThrow(/without a publicKey/)
    expect(() => encodeSegment([named('')])).toThrow(/name rule/)
    expect(() => encodeSegment([named('x'.repeat(101))])).toThrow(/name rule/)
    expect(encodeSegment([named('€'.repeat(100))]).length).toBeGreaterThan(300)
    // One peer: CURVE, empty address, then its key and name as given; one empty message.
    const segment = (key: number[], name: number[]) =>
      bytes(0x02, 0x01, 0x01, 0x00, ...key, ...name, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00)
    const key = [0x20, ...KEY]
    expect(decodeSegment(segment(key, [0x01, 0x78]))[0]?.keyName).toBe('x')
    expect(decodeSegment(segment(key, [0x00]))[0]?.keyName).toBeUndefined()
    for (const bad of [
      segment([0x00], [0x01, 0x78]), // a name without a key
      segment(key, [0x02, 0xc3, 0x28]), // not UTF-8
      segment(key, [0xad, 0x02, ...new Array(301).fill(0x78)]), // 301 octets
      segment(key, [0x65, ...new Array(101).fill(0x78)]), // 101 characters
      segment(key, [0x05, 0x78]), // runs past the end
    ]) {
      expect(codeOf(() => decodeSegment(bad))).toBe('CORRUPT_SEGMENT')
      expect(codeOf(() => scanAll(bad))).toBe('CORRUPT_SEGMENT')
    }
    expect(
      codeOf(() => decodeSegment(bytes(0x03, ...tiny().subarray(1), 0x00, 0x00, 0x01, 0x00))),
    ).toBe('CORRUPT_SEGMENT')
  })

  it('round-trips non-ASCII addresses and a leading byte order mark', () => {
    const messages = ['ünïcødé:1', '\u{feff}[::1]:2', '𝄞'.repeat(63)].map((address) =>
      message(1, [bytes(1)], address),
    )
    expect(decodeSegment(encodeSegment(messages))).toEqual(messages.map(expected))
  })
})

describe('segment varints', () => {
  it.each([
    [0, [0x00]],
    [-1, [0x01]],
    [1, [0x02]],
    [-64, [0x7f]], //                              uvarint 127
    [64, [0x80, 0x01]], //                         uvarint 128
    [2 ** 30, [0x80, 0x80, 0x80, 0x80, 0x08]], //  uvarint 2^31
    [2 ** 31, [0x80, 0x80, 0x80, 0x80, 0x10]], //  uvarint 2^32
    [1.7e12, [0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62]],
    [MAX_SEGMENT_TIME, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]], // uvarint 2^53 - 2
    [MIN_SEGMENT_TIME, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]], // uvarint 2^53 - 1
  ])('stores time %d as the zigzag varint %j', (time, varint) => {
    const segment = encodeSegment([message(time)])
    // The message after the base time: delta 0, peer 0, 1 frame, length 0.
    expect(segment).toEqual(tiny(...varint, 0x00, 0x00, 0x01, 0x00))
    expect(decodeSegment(segment)).toEqual([expected(message(time))])
    expect(scanAll(segment)).toEqual(layoutsOf(segment))
  })

  it('round-trips negative, large and extreme time differences', () => {
    const times = [
      1000,
      999,
      0,
      -5000,
      2 ** 40,
      -(2 ** 40),
      0,
      MAX_SEGMENT_TIME,
      0,
      MIN_SEGMENT_TIME,
      -1,
      MAX_SEGMENT_TIME - 1,
    ]
    const messages = times.map((time) => message(time))
    const segment = encodeSegment(messages)
    expect(decodeSegment(segment).map((item) => item.receivedAt)).toEqual(times)
    expect(scanAll(segment).map((item) => item.receivedAt)).toEqual(times)
  })

  it('stores whole milliseconds, floored', () => {
    const times = [1.9, -0.5, -0, 1.7e12 + 0.999]
    const decoded = decodeSegment(encodeSegment(times.map((time) => message(time))))
    expect(decoded.map((item) => item.receivedAt)).toEqual([1, -1, 0, 1.7e12])
    expect(Object.is(decoded[2]?.receivedAt, 0)).toBe(true)
  })

  it('sizes frame lengths as varints', () => {
    const sizeWith = (length: number) => encodedSegmentSize([message(0, [new Uint8Array(length)])])
    expect(sizeWith(127) - sizeWith(0)).toBe(127)
    expect(sizeWith(128) - sizeWith(0)).toBe(128 + 1)
    expect(sizeWith(16_383) - sizeWith(0)).toBe(16_383 + 1)
    expect(sizeWith(16_384) - sizeWith(0)).toBe(16_384 + 2)
    const frames = [0, 127, 128, 16_383, 16_384, 70_000].map((length) => new Uint8Array(length))
    const segment = encodeSegment([message(0, frames)])
    expect(decodeSegment(segment)).toEqual([expected(message(0, frames))])
  })

  it.each([
    ['a non-minimal varint', tiny(0x80, 0x00, 0x00, 0x00, 0x01, 0x00)],
    ['a non-minimal varint of 3 octets', tiny(0x81, 0x80, 0x00, 0x00, 0x00, 0x01, 0x00)],
    ['a non-minimal frame length', tiny(0x00, 0x00, 0x00, 0x01, 0x80, 0x00)],
    [
      'a varint of 9 octets',
      tiny(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 1, 0),
    ],
    [
      'a varint of 2^53',
      tiny(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00, 0x00, 0x01, 0x00),
    ],
    ['a varint cut short', tiny(0x80)],
    ['a time past the latest', tiny(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x02, 0, 1, 0)],
    [
      'a time before the earliest',
      tiny(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0, 1, 0),
    ],
  ])('rejects %s', (_, segment) => {
    expect(codeOf(() => decodeSegment(segment))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => scanAll(segment))).toBe('CORRUPT_SEGMENT')
  })

  it('reads the extreme varints it rejects one past', () => {
    const earliest = tiny(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x01, 0x00)
    expect(decodeSegment(earliest)[0]?.receivedAt).toBe(MIN_SEGMENT_TIME)
    const latest = tiny(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x01, 0x00)
    expect(scanAll(latest)[0]?.receivedAt).toBe(MAX_SEGMENT_TIME)
  })
})

describe('segment encoding refuses', () => {
  it.each([
    ['no messages', []],
    ['a message without frames', [message(0, [])]],
    ['a time that is not finite', [message(Number.NaN)]],
    ['an infinite time', [message(Number.POSITIVE_INFINITY)]],
    ['a time past the latest', [message(MAX_SEGMENT_TIME + 1)]],
    ['a time before the earliest', [message(MIN_SEGMENT_TIME - 1)]],
    ['a time difference out of range', [message(MIN_SEGMENT_TIME), message(MAX_SEGMENT_TIME)]],
    ['a public key of 31 octets', [{ ...message(0), publicKey: new Uint8Array(31) }]],
    ['an address over 255 octets', [message(0, [bytes()], 'é'.repeat(128))]],
  ] as [string, RelayMessage[]][])('%s with a RangeError', (_, messages) => {
    const error = errorOf(() => encodeSegment(messages))
    expect(error).toBeInstanceOf(RangeError)
    expect(error).not.toBeInstanceOf(SegmentFormatError)
  })

  it('takes an address of 255 octets', () => {
    const messages = [message(0, [bytes()], `${'é'.repeat(127)}x`)]
    expect(decodeSegment(encodeSegment(messages))).toEqual(messages.map(expected))
  })
})

describe('segment ranges', () => {
  const messages = Array.from({ length: 40 }, (_, index) =>
    message(
      1.7e12 + index * 3 - (index % 4) * 5,
      Array.from({ length: (index % 3) + 1 }, (_, frame) => new Uint8Array(index * frame)),
      `peer-${index % 5}`,
    ),
  )
  const segment = encodeSegment(messages)
  const full = decodeSegment(segment)

  it('decodes any range as the slice of the whole', () => {
    expect(full).toEqual(messages.map(expected))
    for (let from = 0; from <= 42; from++) {
      for (const count of [undefined, 0, 1, 2, 7, 39, 40, 100]) {
        const range = count === undefined ? { from } : { from, count }
        const slice = full.slice(from, count === undefined ? undefined : from + count)
        expect(decodeSegment(segment, range), `from ${from} count ${count}`).toEqual(slice)
      }
    }
    expect(decodeSegment(segment, { from: 2 ** 53 - 1, count: 2 ** 53 - 1 })).toEqual([])
  })

  it('reads no message after the range', () => {
    // Message 30's peer index points past the peers: a range that stops before it decodes.
    const corrupt = segment.slice()
    const layout = scanAll(segment)[30] as SegmentMessageLayout
    // Its one frame is empty: peer index, frame count 1, frame length 0, then the frame.
    expect(layout.frameSizes).toEqual([0])
    corrupt[layout.framesOffset - 3] = 99
    expect(codeOf(() => decodeSegment(corrupt))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => decodeSegment(corrupt, { from: 30, count: 1 }))).toBe('CORRUPT_SEGMENT')
    expect(decodeSegment(corrupt, { from: 10, count: 20 })).toEqual(full.slice(10, 30))
  })

  it('refuses a range that is not whole numbers with a plain RangeError', () => {
    for (const range of [{ from: -1 }, { from: 0.5 }, { count: -1 }, { count: Number.NaN }]) {
      const error = errorOf(() => decodeSegment(segment, range))
      expect(error).toBeInstanceOf(RangeError)
      expect(error).not.toBeInstanceOf(SegmentFormatError)
    }
  })

  it('counts the messages from the header', () => {
    expect(segmentMessageCount(segment)).toBe(40)
    expect(segmentMessageCount(tiny(0x00, 0x00, 0x00, 0x01, 0x00))).toBe(1)
  })

  it('refuses counts the segment cannot hold before allocating for them', () => {
    // biome-ignore format: one line per field
    const manyPeers = bytes(
      0x01, //                                     format 1
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, // 2^53 - 1 peers
      0x00, 0x00, 0x00, //                         one of them
    )
    // biome-ignore format: one line per field
    const manyMessages = bytes(
      0x01, //                                     format 1
      0x01, 0x00, 0x00, 0x00, //                   1 peer: NULL, empty address, no key
      0xff, 0xff, 0xff, 0x7f, //                   2^28 - 1 messages
      0x00, //                                     base time 0
      0x00, 0x00, 0x01, 0x00, //                   one of them
    )
    // biome-ignore format: one line per field
    const manyFrames = tiny(
      0x00, //                                     base time 0
      0x00, 0x00, //                               delta 0, peer 0
      0xff, 0xff, 0xff, 0x7f, //                   2^28 - 1 frames
      0x00, 0x00, 0x00, 0x00, //                   four lengths
    )
    for (const segment of [manyPeers, manyMessages, manyFrames]) {
      expect(codeOf(() => decodeSegment(segment))).toBe('CORRUPT_SEGMENT')
      expect(codeOf(() => scanAll(segment))).toBe('CORRUPT_SEGMENT')
    }
    expect(codeOf(() => segmentMessageCount(manyPeers))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => segmentMessageCount(manyMessages))).toBe('CORRUPT_SEGMENT')
  })
})

describe('scanning a segment in pieces', () => {
  it('finds the frames of a 5 MiB message from its head, reading none of them', () => {
    const frames = [
      new Uint8Array(1024 * 1024 + 1).fill(0x11),
      bytes(),
      new Uint8Array(4 * 1024 * 1024 - 1).fill(0x33),
    ]
    const messages: RelayMessage[] = [
      message(1.7e12, [ascii('before')], '10.0.0.1:1'),
      {
        receivedAt: 1.7e12 + 20,
        mechanism: 'CURVE',
        peerAddress: '10.0.0.2:2',
        publicKey: KEY,
        frames,
      },
      message(1.7e12 + 40, [ascii('after'), ascii('!')], '10.0.0.1:1'),
    ]
    const segment = encodeSegment(messages)
    const { read, reads } = recordingReader(segment)
    const layouts = scanSegment(read, segment.length)
    expect(layouts).toEqual(layoutsOf(segment))
    const huge = layouts[1] as SegmentMessageLayout
    expect(huge).toMatchObject({
      receivedAt: 1.7e12 + 20,
      mechanism: 'CURVE',
      publicKey: KEY,
      size: 5 * 1024 * 1024,
      frameSizes: [1024 * 1024 + 1, 0, 4 * 1024 * 1024 - 1],
    })
    expect(segment[huge.framesOffset]).toBe(0x11)
    expect(segment[huge.framesOffset + 1024 * 1024]).toBe(0x11)
    expect(segment[huge.framesOffset + 1024 * 1024 + 1]).toBe(0x33)
    // The last message: delta, peer index, frame count, 2 lengths, 6 frame octets.
    expect(huge.framesOffset + huge.size).toBe(segment.length - (1 + 1 + 1 + 2 + 6))
    expectHeadReadsOnly(reads, layouts)
    expect(reads.reduce((sum, [, length]) => sum + length, 0)).toBeLessThan(200)
  })

  it('reads the lengths of 200,000 empty frames in windows of 64 KiB', () => {
    const frames = new Array<Uint8Array>(200_000).fill(bytes())
    const segment = encodeSegment([message(0, frames), message(1, [new Uint8Array(100_000)])])
    const { read, reads } = recordingReader(segment)
    const layouts = scanSegment(read, segment.length)
    const [empty, next] = layouts as [SegmentMessageLayout, SegmentMessageLayout]
    expect(empty.frameSizes).toHaveLength(200_000)
    expect(empty.frameSizes.every((size) => size === 0)).toBe(true)
    // format, peer count, peer, message count, base time, delta, peer index, frame count.
    expect(empty.framesOffset).toBe(1 + 1 + 3 + 1 + 1 + 1 + 1 + 3 + 200_000)
    expect(next).toMatchObject({ size: 100_000, frameSizes: [100_000] })
    expect(SCAN_WINDOW_BYTES).toBe(64 * 1024)
    expectHeadReadsOnly(reads, layouts)
    expect(reads.filter(([, length]) => length === SCAN_WINDOW_BYTES)).toHaveLength(3)
    expect(reads.length).toBeLessThan(10)
  })

  it('reads multi-octet frame lengths without passing them', () => {
    const frames = Array.from({ length: 1000 }, (_, index) => new Uint8Array(200 + index * 50))
    const segment = encodeSegment([message(0, frames), message(0, [bytes(1)])])
    for (const window of [SCAN_WINDOW_BYTES, 1000, 7, 1]) {
      const { read, reads } = recordingReader(segment)
      const layouts = scanSegment(read, segment.length, window)
      expect(layouts).toEqual(layoutsOf(segment))
      expectHeadReadsOnly(reads, layouts, window)
    }
  })

  it('treats a read of another length as corrupt storage', () => {
    const segment = encodeSegment([message(0, [bytes(1, 2, 3)])])
    const short = (offset: number, length: number) =>
      segment.subarray(offset, offset + Math.max(0, length - 1))
    expect(codeOf(() => scanSegment(short, segment.length))).toBe('CORRUPT_SEGMENT')
    expect(codeOf(() => scanSegment((offset) => segment.subarray(offset), 3))).toBe(
      'CORRUPT_SEGMENT',
    )
  })
})

describe('segment properties', () => {
  const peer = fc.record(
    {
      mechanism: fc.constantFrom('NULL' as const, 'CURVE' as const),
      peerAddress: fc.string({ unit: 'binary', maxLength: 40 }),
      publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
      // At most 50 code points: 100 UTF-16 units.
      keyName: fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }),
    },
    { requiredKeys: ['mechanism', 'peerAddress'] },
  )
  // Within ±2^50 ms any difference fits; around now, as real times are.
  const time = fc.oneof(
    fc.integer({ min: 1.6e12, max: 1.8e12 }),
    fc.double({ min: -(2 ** 50), max: 2 ** 50, noNaN: true }),
    fc.integer({ min: -(2 ** 50), max: 2 ** 50 }),
  )
  const frameLists = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 5 }),
    },
    {
      weight: 1,
      arbitrary: fc.array(fc.uint8Array({ maxLength: 2 }), { minLength: 100, maxLength: 300 }),
    },
  )
  const messages = fc
    .tuple(
      fc.array(peer, { minLength: 1, maxLength: 4 }),
      fc.array(fc.record({ peer: fc.nat(), receivedAt: time, frames: frameLists }), {
        minLength: 1,
        maxLength: 25,
      }),
    )
    .map(([peers, specs]) =>
      specs.map(({ peer: index, receivedAt, frames }): RelayMessage => {
        const { publicKey, keyName, ...from } = peers[
          index % peers.length
        ] as (typeof peers)[number]
        // A copy per message: peers are matched by their key's octets. A name only with a key.
        if (!publicKey) return { ...from, receivedAt, frames }
        const named = { ...from, publicKey: publicKey.slice(), receivedAt, frames }
        return keyName === undefined ? named : { ...named, keyName }
      }),
    )
  const segments = messages.map(encodeSegment)

  it('round-trips any messages, and scans and ranges agree with the whole decode', () => {
    fc.assert(
      fc.property(messages, fc.nat(30), fc.nat(30), (input, from, count) => {
        const segment = encodeSegment(input)
        expect(segment.length).toBe(encodedSegmentSize(input))
        expect(segmentMessageCount(segment)).toBe(input.length)
        const whole = decodeSegment(segment)
        expect(whole).toEqual(input.map(expected))
        expect(decodeSegment(segment, { from, count })).toEqual(whole.slice(from, from + count))
        expect(scanAll(segment)).toEqual(layoutsOf(segment))
      }),
    )
  })

  it('scans in windows of any size without reading frame octets', () => {
    fc.assert(
      fc.property(segments, fc.integer({ min: 1, max: 40 }), (segment, window) => {
        const { read, reads } = recordingReader(segment)
        const layouts = scanSegment(read, segment.length, window)
        expect(layouts).toEqual(layoutsOf(segment))
        expectHeadReadsOnly(reads, layouts, window)
      }),
    )
  })

  /** Decodes and scans `input` every way: each gives a result or a SegmentFormatError. */
  function expectResultOrFormatError(input: Uint8Array, window: number, from: number): void {
    const attempts = [
      () => decodeSegment(input),
      () => decodeSegment(input, { from, count: 2 }),
      () => segmentMessageCount(input),
      () => scanAll(input, window),
    ]
    for (const attempt of attempts) {
      try {
        attempt()
      } catch (error) {
        expect(error).toBeInstanceOf(SegmentFormatError)
      }
    }
  }

  it('gives a result or a SegmentFormatError for any octets', () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 120 }),
      fc.uint8Array({ maxLength: 120 }).map((tail) => bytes(SegmentFormat.PLAIN, ...tail)),
      fc.uint8Array({ maxLength: 120 }).map((tail) => bytes(SegmentFormat.NAMED, ...tail)),
      fc.uint8Array({ maxLength: 120 }).map((tail) => tiny(...tail)),
    )
    fc.assert(
      fc.property(garbage, fc.integer({ min: 1, max: 20 }), fc.nat(5), expectResultOrFormatError),
      { numRuns: 500 },
    )
  })

  it('gives a result or a SegmentFormatError for any one octet changed', () => {
    fc.assert(
      fc.property(
        segments,
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 1, max: 20 }),
        fc.nat(5),
        (segment, at, value, window, from) => {
          const mutated = segment.slice()
          mutated[at % mutated.length] = value
          expectResultOrFormatError(mutated, window, from)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('refuses every truncation with a SegmentFormatError', () => {
    fc.assert(
      fc.property(segments, fc.nat(), (segment, cut) => {
        const truncated = segment.subarray(0, cut % segment.length)
        expect(codeOf(() => decodeSegment(truncated))).toBe('CORRUPT_SEGMENT')
        expect(codeOf(() => scanAll(truncated, 16))).toBe('CORRUPT_SEGMENT')
      }),
    )
  })
})
