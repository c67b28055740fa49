// The relay batch format shared by the bridge and the Durable Object: vectors, round trips,
// and typed errors for anything that is not a whole, valid frame.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  AckStatus,
  BATCH_HEADER_SIZE,
  BRIDGE_ID_HEADER,
  decodeBatchBody,
  decodeRelayFrame,
  EPOCH_HEADER,
  encodeAck,
  encodeBatch,
  encodedMessageSize,
  encodeNack,
  encodeWelcome,
  NackCode,
  nackCodeName,
  negotiateRelayVersion,
  newEpoch,
  parseRelaySession,
  type RelayBatch,
  RelayProtocolError,
  seqsOfAck,
} from '../../shared/relay-protocol'

const bytes = (...values: number[]) => new Uint8Array(values)
const ascii = (text: string) => new TextEncoder().encode(text)

function codeOf(action: () => unknown): string | undefined {
  try {
    action()
  } catch (error) {
    if (error instanceof RelayProtocolError) return error.code
    throw error
  }
  return undefined
}

describe('relay batch frame', () => {
  // Batch 7, one NULL message of two frames ("hi", empty), with idempotency key "k-1".
  // biome-ignore format: one line per field
  const vector = bytes(
    0x01, 0x04, 0x00, 0x00, //                       kind BATCH, version 4, reserved
    0, 0, 0, 0, 0, 0, 0, 7, //                       batchSeq 7 (u64)
    0, 0, 0, 1, //                                   1 message
    0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00, // receivedAt 1.7e12 ms (float64)
    0x00, //                                         mechanism NULL
    0x0e, ...ascii('127.0.0.1:5555'), //             peer address
    0x00, //                                         no public key
    0x03, ...ascii('k-1'), //                        idempotency key
    0x00, 0x00, //                                   no key name
    0, 0, 0, 2, //                                   2 frames
    0, 0, 0, 2, ...ascii('hi'), //                   frame "hi"
    0, 0, 0, 0, //                                   empty frame
  )
  const batch: RelayBatch = {
    batchSeq: 7,
    messages: [
      {
        receivedAt: 1.7e12,
        mechanism: 'NULL',
        peerAddress: '127.0.0.1:5555',
        idempotencyKey: 'k-1',
        frames: [ascii('hi'), bytes()],
      },
    ],
  }
  // The same in version 3 (no key name field), and without its key in version 2 (no key
  // field): what bridges of those versions send, which the object still takes.
  const version3 = bytes(0x01, 0x03, ...vector.slice(2, 45), ...vector.slice(47))
  const unkeyed: RelayBatch = {
    batchSeq: 7,
    messages: batch.messages.map(({ idempotencyKey: _, ...message }) => message),
  }
  const version2 = bytes(0x01, 0x02, ...version3.slice(2, 41), ...version3.slice(45))

  it('encodes to the documented bytes', () => {
    expect(encodeBatch(batch)).toEqual(vector)
    expect(encodeBatch(batch, 3)).toEqual(version3)
    expect(encodeBatch(unkeyed, 2)).toEqual(version2)
  })

  it('decodes the documented bytes', () => {
    expect(decodeRelayFrame(vector)).toEqual({ kind: 'batch', ...batch })
    expect(decodeRelayFrame(version3, 3)).toEqual({ kind: 'batch', ...batch })
    expect(decodeRelayFrame(version2, 2)).toEqual({ kind: 'batch', ...unkeyed })
  })

  it('carries the name of a CURVE key in version 4, and only there', () => {
    const publicKey = new Uint8Array(32).fill(9)
    const named: RelayBatch = {
      batchSeq: 1,
      messages: [
        {
          receivedAt: 1,
          mechanism: 'CURVE',
          peerAddress: 'a',
          publicKey,
          keyName: 'sensor 17 · hall',
          frames: [bytes(1)],
        },
      ],
    }
    const encoded = encodeBatch(named)
    expect(decodeRelayFrame(encoded)).toEqual({ kind: 'batch', ...named })
    const message = named.messages[0] as RelayBatch['messages'][number]
    expect(encoded.length).toBe(BATCH_HEADER_SIZE + encodedMessageSize(message))
    // The longest name: 100 characters of 3 octets each.
    const longest = { ...named, messages: [{ ...message, keyName: '€'.repeat(100) }] }
    expect(decodeRelayFrame(encodeBatch(longest))).toEqual({ kind: 'batch', ...longest })
    // Refused: in version 3, without a public key, empty, over 100 characters.
    expect(codeOf(() => encodeBatch(named, 3))).toBe('INVALID_FIELD')
    const { publicKey: _, ...keyless } = message
    for (const bad of [
      { ...keyless, mechanism: 'NULL' as const },
      { ...message, keyName: '' },
      { ...message, keyName: 'x'.repeat(101) },
    ]) {
      expect(codeOf(() => encodeBatch({ batchSeq: 1, messages: [bad] }))).toBe('INVALID_FIELD')
    }
    // Decoding refuses the same: a name on a message without a key, one of 301 octets, one
    // that is not UTF-8, one over 100 characters.
    const nameAt = 4 + 8 + 4 + 8 + 1 + 2 + 1 + 32 + 1
    const withName = (name: Uint8Array, keyless = false) => {
      const head = encoded.slice(0, nameAt)
      if (keyless) {
        head[24] = 0 // NULL
        const noKey = bytes(...head.slice(0, 27), 0, ...head.slice(60))
        return bytes(
          ...noKey,
          name.length >> 8,
          name.length & 0xff,
          ...name,
          0,
          0,
          0,
          1,
          0,
          0,
          0,
          1,
          1,
        )
      }
      return bytes(
        ...head,
        name.length >> 8,
        name.length & 0xff,
        ...name,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        1,
        1,
      )
    }
    expect(decodeRelayFrame(withName(ascii('ok')))).toMatchObject({
      messages: [{ keyName: 'ok' }],
    })
    for (const bad of [
      withName(ascii('ok'), true),
      withName(new Uint8Array(301).fill(0x78)),
      withName(bytes(0xc3, 0x28)),
      withName(new Uint8Array(101).fill(0x78)),
    ]) {
      expect(codeOf(() => decodeRelayFrame(bad))).toBe('INVALID_FIELD')
    }
  })

  it('holds each socket to its version: a frame of the other is refused', () => {
    expect(codeOf(() => decodeRelayFrame(version2))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeRelayFrame(version3))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeRelayFrame(vector, 2))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeRelayFrame(vector, 3))).toBe('UNSUPPORTED_VERSION')
    // A key cannot be sent in version 2, nor one that breaks the rule in version 3.
    expect(codeOf(() => encodeBatch(batch, 2))).toBe('INVALID_FIELD')
    for (const idempotencyKey of ['', 'with space', 'x'.repeat(129), 'é']) {
      const bad = { ...batch, messages: [{ ...unkeyed.messages[0], idempotencyKey }] }
      expect(
        codeOf(() => encodeBatch(bad as RelayBatch)),
        idempotencyKey,
      ).toBe('INVALID_FIELD')
    }
    const spaced = vector.slice()
    spaced[43] = 0x20 // "k 1"
    expect(codeOf(() => decodeRelayFrame(spaced))).toBe('INVALID_FIELD')
  })

  it('negotiates the newest version both ends speak', () => {
    expect(negotiateRelayVersion('zmq-edge.relay.v2, zmq-edge.relay.v3')).toBe(3)
    expect(negotiateRelayVersion('zmq-edge.relay.v4, zmq-edge.relay.v3')).toBe(4)
    expect(negotiateRelayVersion('zmq-edge.relay.v2')).toBe(2)
    expect(negotiateRelayVersion('zmq-edge.relay.v1')).toBeUndefined()
    expect(negotiateRelayVersion(null)).toBeUndefined()
  })

  it('carries a CURVE public key of 32 octets', () => {
    const publicKey = new Uint8Array(32).map((_, index) => index)
    const curve: RelayBatch = {
      batchSeq: 2 ** 40,
      messages: [
        {
          receivedAt: 1,
          mechanism: 'CURVE',
          peerAddress: '[::1]:1',
          publicKey,
          frames: [bytes(0)],
        },
      ],
    }
    const decoded = decodeRelayFrame(encodeBatch(curve))
    expect(decoded).toEqual({ kind: 'batch', ...curve })
  })

  it('sizes each message as it is encoded', () => {
    const message = batch.messages[0] as RelayBatch['messages'][number]
    expect(encodeBatch(batch).length).toBe(BATCH_HEADER_SIZE + encodedMessageSize(message))
    expect(BATCH_HEADER_SIZE).toBe(4 + 8 + 4)
  })

  it('round-trips any batch', () => {
    const message = fc.record(
      {
        receivedAt: fc.integer({ min: 0, max: 2 ** 50 }),
        mechanism: fc.constantFrom('NULL' as const, 'CURVE' as const),
        peerAddress: fc.string({ maxLength: 60 }),
        idempotencyKey: fc.stringMatching(/^[\x21-\x7e]{1,128}$/),
        keyName: fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }),
        frames: fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 5 }),
      },
      { requiredKeys: ['receivedAt', 'mechanism', 'peerAddress', 'frames'] },
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        fc.array(message, { minLength: 1, maxLength: 20 }),
        (batchSeq, messages) => {
          // A name only with a key: a CURVE message has one.
          const input = {
            batchSeq,
            messages: messages.map(({ keyName, ...message }) =>
              message.mechanism === 'CURVE' && keyName !== undefined
                ? { ...message, publicKey: new Uint8Array(32).fill(1), keyName }
                : message,
            ),
          }
          const encoded = encodeBatch(input)
          expect(decodeRelayFrame(encoded)).toEqual({ kind: 'batch', ...input })
          expect(decodeBatchBody(encoded, 4, 4)).toEqual(input)
          expect(encoded.length).toBe(
            BATCH_HEADER_SIZE + input.messages.reduce((sum, m) => sum + encodedMessageSize(m), 0),
          )
        },
      ),
    )
  })

  it('refuses to encode what it could not decode', () => {
    expect(codeOf(() => encodeBatch({ ...batch, messages: [] }))).toBe('INVALID_FIELD')
    expect(codeOf(() => encodeBatch({ ...batch, batchSeq: 0 }))).toBe('INVALID_FIELD')
    expect(codeOf(() => encodeBatch({ ...batch, batchSeq: 2 ** 53 }))).toBe('INVALID_FIELD')
    const noFrames = {
      ...batch,
      messages: [{ ...(batch.messages[0] as RelayBatch['messages'][number]), frames: [] }],
    }
    expect(codeOf(() => encodeBatch(noFrames))).toBe('INVALID_FIELD')
  })

  it('rejects every truncation of a valid frame with TRUNCATED', () => {
    for (let length = 0; length < vector.length; length++) {
      const code = codeOf(() => decodeRelayFrame(vector.subarray(0, length)))
      expect(code, `prefix of ${length} octets`).toBeDefined()
      expect(['TRUNCATED', 'INVALID_FIELD']).toContain(code)
    }
  })

  it('rejects trailing bytes, unknown kinds, versions and mechanisms', () => {
    expect(codeOf(() => decodeRelayFrame(bytes(...vector, 0)))).toBe('TRAILING_BYTES')
    expect(codeOf(() => decodeRelayFrame(bytes(0x09, 0x01, 0, 0)))).toBe('UNKNOWN_KIND')
    expect(codeOf(() => decodeRelayFrame(bytes(0x01, 0x01, 0, 0)))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeRelayFrame(bytes(0x01, 0x05, 0, 0)))).toBe('UNSUPPORTED_VERSION')
    const badMechanism = vector.slice()
    badMechanism[24] = 7
    expect(codeOf(() => decodeRelayFrame(badMechanism))).toBe('INVALID_FIELD')
  })

  it('rejects a message count larger than the frame could hold without allocating for it', () => {
    const lying = vector.slice()
    lying.set([0xff, 0xff, 0xff, 0xff], 12)
    expect(codeOf(() => decodeRelayFrame(lying))).toBe('TRUNCATED')
  })

  it('gives a typed error or a frame for any input, never another exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
        try {
          decodeRelayFrame(input)
        } catch (error) {
          expect(error).toBeInstanceOf(RelayProtocolError)
        }
      }),
    )
  })
})

describe('relay ack and nack frames', () => {
  it('encodes an ACK as documented and decodes it back', () => {
    const encoded = encodeAck({
      batchSeq: 7,
      status: AckStatus.STORED,
      firstSeq: 100,
      lastSeq: 101,
    })
    // biome-ignore format: one line per field
    const head = [
      0x02, 0x04, 0x00, 0x00, //   kind ACK, version 4, reserved
      0, 0, 0, 0, 0, 0, 0, 7, //   batchSeq 7
      0x00, //                     status STORED
      0, 0, 0, 0, 0, 0, 0, 100, // firstSeq
      0, 0, 0, 0, 0, 0, 0, 101, // lastSeq
    ]
    expect(encoded).toEqual(bytes(...head, 0, 0, 0, 0)) // no duplicates
    expect(decodeRelayFrame(encoded)).toEqual({
      kind: 'ack',
      batchSeq: 7,
      status: AckStatus.STORED,
      firstSeq: 100,
      lastSeq: 101,
      duplicates: [],
    })
    // Version 2: the same without the duplicates' count.
    const version2 = encodeAck(
      { batchSeq: 7, status: AckStatus.STORED, firstSeq: 100, lastSeq: 101 },
      2,
    )
    expect(version2).toEqual(bytes(0x02, 0x02, ...head.slice(2)))
    expect(decodeRelayFrame(version2, 2)).toEqual({
      kind: 'ack',
      batchSeq: 7,
      status: AckStatus.STORED,
      firstSeq: 100,
      lastSeq: 101,
    })
  })

  it('carries the duplicates of a batch: the index and seq of each', () => {
    const ack = {
      batchSeq: 9,
      status: AckStatus.STORED,
      firstSeq: 50,
      lastSeq: 51,
      duplicates: [
        { index: 0, seq: 12 },
        { index: 3, seq: 50 },
      ],
    }
    const encoded = encodeAck(ack)
    // biome-ignore format: one line per field
    expect(encoded.subarray(29)).toEqual(bytes(
      0, 0, 0, 2, //                            2 duplicates
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, //   message 0: seq 12
      0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 50, //   message 3: seq 50
    ))
    expect(decodeRelayFrame(encoded)).toEqual({ kind: 'ack', ...ack })
    expect(codeOf(() => encodeAck(ack, 2))).toBe('INVALID_FIELD')
    for (let length = 29; length < encoded.length; length++) {
      expect(codeOf(() => decodeRelayFrame(encoded.subarray(0, length)))).toBe('TRUNCATED')
    }
    const lying = encoded.slice()
    lying.set([0xff, 0xff, 0xff, 0xff], 29)
    expect(codeOf(() => decodeRelayFrame(lying))).toBe('TRUNCATED')
    const seqZero = encoded.slice()
    seqZero[44] = 0 // message 0's seq, 12 → 0
    expect(codeOf(() => decodeRelayFrame(seqZero))).toBe('INVALID_FIELD')
  })

  it('places each message of a batch by its ACK, or none', () => {
    // Messages 0 and 3 were resends; 1, 2 and 4 were stored as 50, 51, 52.
    const duplicates = [
      { index: 0, seq: 12 },
      { index: 3, seq: 50 },
    ]
    expect(seqsOfAck({ firstSeq: 50, lastSeq: 52, duplicates }, 5)).toEqual([12, 50, 51, 50, 52])
    expect(seqsOfAck({ firstSeq: 7, lastSeq: 9 }, 3)).toEqual([7, 8, 9])
    // Resends only: nothing stored now.
    expect(
      seqsOfAck(
        {
          firstSeq: 0,
          lastSeq: 0,
          duplicates: [
            { index: 1, seq: 4 },
            { index: 0, seq: 3 },
          ],
        },
        2,
      ),
    ).toEqual([3, 4])
    // Not as many as the batch, an index twice or past the batch, no seqs: unplaced.
    expect(seqsOfAck({ firstSeq: 50, lastSeq: 52, duplicates }, 6)).toBeUndefined()
    expect(seqsOfAck({ firstSeq: 0, lastSeq: 0 }, 1)).toBeUndefined()
    expect(
      seqsOfAck(
        {
          firstSeq: 5,
          lastSeq: 5,
          duplicates: [
            { index: 0, seq: 1 },
            { index: 0, seq: 2 },
          ],
        },
        3,
      ),
    ).toBeUndefined()
    expect(
      seqsOfAck({ firstSeq: 5, lastSeq: 5, duplicates: [{ index: 9, seq: 1 }] }, 2),
    ).toBeUndefined()
    expect(
      seqsOfAck({ firstSeq: 10, lastSeq: 11, duplicates: [{ index: 0, seq: 0 }] }, 3),
    ).toBeUndefined()
  })

  it('round-trips a NACK with its reason', () => {
    const encoded = encodeNack({ batchSeq: 3, code: NackCode.STORAGE_FAILED, reason: 'disk full' })
    expect(decodeRelayFrame(encoded)).toEqual({
      kind: 'nack',
      batchSeq: 3,
      code: NackCode.STORAGE_FAILED,
      reason: 'disk full',
    })
  })

  it('keeps 64-bit sequence numbers exact up to 2^53 - 1', () => {
    const batchSeq = Number.MAX_SAFE_INTEGER
    const decoded = decodeRelayFrame(
      encodeAck({ batchSeq, status: AckStatus.DUPLICATE, firstSeq: 0, lastSeq: 0 }),
    )
    expect(decoded).toMatchObject({ batchSeq, status: AckStatus.DUPLICATE })
    const tooLarge = encodeAck({ batchSeq: 1, status: 0, firstSeq: 0, lastSeq: 0 })
    tooLarge.set([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 4)
    expect(codeOf(() => decodeRelayFrame(tooLarge))).toBe('INVALID_FIELD')
  })
})

describe('relay welcome frame', () => {
  // biome-ignore format: one line per field
  const vector = bytes(
    0x04, 0x04, 0x00, 0x00, //                       kind WELCOME, version 4, reserved
    0, 0, 0, 0, 0, 0, 0, 41, //                      lastBatchSeq 41
    0x01, 0x00, 0x00, 0x00, //                       maxMessageBytes 16 MiB
    0x02, 0x00, 0x00, 0x00, //                       maxBatchBytes 32 MiB
    0x00, 0x0f, 0x42, 0x40, //                       maxBatchMessages 1,000,000
    0x42, 0x78, 0xbc, 0xfe, 0x56, 0x80, 0x00, 0x00, // now 1.7e12 ms (float64)
    0x00, 0x04, 0x93, 0xe0, //                       maxClockSkewMs 300,000
  )
  const welcome = {
    lastBatchSeq: 41,
    maxMessageBytes: 16 * 1024 * 1024,
    maxBatchBytes: 32 * 1024 * 1024,
    maxBatchMessages: 1_000_000,
    now: 1.7e12,
    maxClockSkewMs: 300_000,
  }

  it('encodes to the documented bytes and decodes back', () => {
    expect(encodeWelcome(welcome)).toEqual(vector)
    expect(decodeRelayFrame(vector)).toEqual({ kind: 'welcome', ...welcome })
  })

  it('refuses limits that are not u32 and every truncation', () => {
    expect(codeOf(() => encodeWelcome({ ...welcome, maxBatchBytes: 2 ** 32 }))).toBe(
      'INVALID_FIELD',
    )
    expect(codeOf(() => encodeWelcome({ ...welcome, maxMessageBytes: -1 }))).toBe('INVALID_FIELD')
    for (let length = 4; length < vector.length; length++) {
      expect(codeOf(() => decodeRelayFrame(vector.subarray(0, length)))).toBe('TRUNCATED')
    }
  })
})

describe('relay sessions', () => {
  const headers = (values: Record<string, string>) => ({
    get: (name: string) => values[name] ?? null,
  })

  it('reads the bridge id and epoch from the upgrade headers', () => {
    expect(
      parseRelaySession(headers({ [BRIDGE_ID_HEADER]: 'edge-vm-1', [EPOCH_HEADER]: '0' })),
    ).toEqual({ bridgeId: 'edge-vm-1', epoch: 0 })
    expect(
      parseRelaySession(
        headers({ [BRIDGE_ID_HEADER]: 'a.b:c_d-1', [EPOCH_HEADER]: String(2 ** 53 - 1) }),
      ),
    ).toEqual({ bridgeId: 'a.b:c_d-1', epoch: 2 ** 53 - 1 })
  })

  it.each([
    [{ [EPOCH_HEADER]: '1' }],
    [{ [BRIDGE_ID_HEADER]: 'é', [EPOCH_HEADER]: '1' }],
    [{ [BRIDGE_ID_HEADER]: 'b' }],
    [{ [BRIDGE_ID_HEADER]: 'b', [EPOCH_HEADER]: `2${'0'.repeat(16)}` }],
    [{ [BRIDGE_ID_HEADER]: 'b', [EPOCH_HEADER]: '0x10' }],
    [{ [BRIDGE_ID_HEADER]: 'b', [EPOCH_HEADER]: ' 1' }],
  ])('refuses %j, saying why', (values) => {
    expect(parseRelaySession(headers(values))).toEqual({ error: expect.any(String) })
  })

  it('draws epochs from 1 to 2^53 - 1, different each time', () => {
    const epochs = Array.from({ length: 1000 }, () => newEpoch())
    for (const epoch of epochs) {
      expect(Number.isSafeInteger(epoch) && epoch >= 1).toBe(true)
    }
    expect(new Set(epochs).size).toBe(1000)
    // The top bits are used too: a 53-bit draw, not a 32-bit one.
    expect(epochs.some((epoch) => epoch > 2 ** 40)).toBe(true)
  })

  it('names NACK codes for logs', () => {
    expect(nackCodeName(NackCode.CHANNEL_FULL)).toBe('CHANNEL_FULL')
    expect(nackCodeName(NackCode.BATCH_TOO_LARGE)).toBe('BATCH_TOO_LARGE')
    expect(nackCodeName(99)).toBe('UNKNOWN_99')
  })
})
