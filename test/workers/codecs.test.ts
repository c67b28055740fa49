// The pure pieces the Worker and the Durable Object rely on: Z85, base64 without Buffer, the
// stored body format (and reading its frame sizes from the length prefixes alone), a page's cap,
// and the schema migrations.

import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import {
  decodeBody,
  encodeBody,
  frameOffset,
  frameSizesOf,
  joinChunks,
  splitChunks,
} from '../../durable/message-body'
import {
  fitPage,
  LARGE_MESSAGE_BYTES,
  LISTED_FRAME_BYTES,
  type StoredMessage,
} from '../../durable/message-store'
import { MIGRATIONS, migrate, SCHEMA_VERSION } from '../../durable/schema'
import { decodeRelayFrame, encodeBatch, encodeNack, NackCode } from '../../shared/relay-protocol'
import { z85Encode } from '../../shared/z85'
import { toBase64 } from '../../worker/base64'
import { expectBytes, fromBase64, pattern } from './helpers'

const hex = (text: string) =>
  Uint8Array.from(text.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16))

describe('z85Encode', () => {
  it.each([
    ['864FD26FB559F75B', 'HelloWorld'], // RFC 32 test case
    ['', ''],
    ['00000000', '00000'],
    ['FFFFFFFF', '%nSc0'],
    // libzmq's CURVE test keys (zmq_curve(7)): client public, server public.
    [
      'BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518',
      'Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID',
    ],
    [
      '54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652',
      'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7',
    ],
  ])('encodes %s as %s', (bytes, text) => {
    expect(z85Encode(hex(bytes))).toBe(text)
  })

  it('reads a view at its offset, not its whole buffer', () => {
    const buffer = hex('00864FD26FB559F75B00')
    expect(z85Encode(buffer.subarray(1, 9))).toBe('HelloWorld')
  })

  it('refuses a length that is not a multiple of 4', () => {
    expect(() => z85Encode(new Uint8Array(5))).toThrow(RangeError)
  })
})

describe('toBase64', () => {
  it.each([
    ['', ''],
    ['f', 'Zg=='],
    ['fo', 'Zm8='],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg=='],
    ['fooba', 'Zm9vYmE='],
    ['foobar', 'Zm9vYmFy'], // RFC 4648 §10
  ])('encodes %j as %j', (text, base64) => {
    expect(toBase64(new TextEncoder().encode(text))).toBe(base64)
  })

  it('encodes every octet value and large inputs across its pieces', () => {
    const all = Uint8Array.from({ length: 256 }, (_, index) => index)
    expectBytes(fromBase64(toBase64(all)), all)
    for (const length of [24_575, 24_576, 24_577, 1024 * 1024 + 1]) {
      const bytes = pattern(length, length)
      expectBytes(fromBase64(toBase64(bytes)), bytes)
    }
  })
})

describe('stored message bodies', () => {
  it('round-trip frames, empty ones included, as views', () => {
    const frames = [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(0)]
    const body = encodeBody(frames)
    // u32 BE length + octets each
    expect([...body]).toEqual([0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0])
    expect(decodeBody(body, 3)).toEqual(frames)
  })

  it('refuse a body that does not hold exactly its frame count', () => {
    const body = encodeBody([Uint8Array.of(1, 2, 3)])
    expect(() => decodeBody(body, 2)).toThrow(RangeError)
    expect(() => decodeBody(body.subarray(0, 6), 1)).toThrow(RangeError)
    expect(() => decodeBody(body, 0)).toThrow(RangeError)
  })

  it('split into chunks of at most the given size and join again', () => {
    const bytes = pattern(10, 0)
    expect(splitChunks(bytes, 4).map((chunk) => chunk.length)).toEqual([4, 4, 2])
    expect(splitChunks(bytes, 10)).toHaveLength(1)
    expect(splitChunks(new Uint8Array(0), 4)).toHaveLength(1)
    expectBytes(joinChunks(splitChunks(bytes, 3)), bytes)
  })
})

describe('frameSizesOf', () => {
  /** A reader over `body` that records each range asked of it. */
  function reader(body: Uint8Array) {
    const reads: [number, number][] = []
    const readAt = (offset: number, length: number) => {
      reads.push([offset, length])
      return body.slice(offset, offset + length)
    }
    return { reads, readAt }
  }

  it('reads the sizes from the length prefixes, skipping the frames between them', () => {
    const frames = [pattern(100, 1), new Uint8Array(0), pattern(3, 2), pattern(50, 3)]
    const body = encodeBody(frames)
    const { reads, readAt } = reader(body)
    expect(frameSizesOf(readAt, body.length, 4, 8)).toEqual([100, 0, 3, 50])
    // A window of 8 at each prefix that is not in the window before: 0, then 104 (holds the
    // empty frame's prefix at 104 and the next at 108), then 115.
    expect(reads).toEqual([
      [0, 8],
      [104, 8],
      [115, 8],
    ])
  })

  it('gives the same sizes whatever the window, down to a prefix at a time', () => {
    const frames = Array.from({ length: 20 }, (_, index) => pattern(index * 7, index))
    const body = encodeBody(frames)
    const sizes = frames.map((frame) => frame.length)
    for (const window of [1, 4, 5, 13, 64, body.length, body.length * 2]) {
      expect(frameSizesOf(reader(body).readAt, body.length, 20, window)).toEqual(sizes)
    }
  })

  it('refuses prefixes that do not fill the body with exactly that many frames', () => {
    const body = encodeBody([Uint8Array.of(1, 2, 3)])
    const { readAt } = reader(body)
    expect(() => frameSizesOf(readAt, body.length, 2)).toThrow(RangeError)
    expect(() => frameSizesOf(readAt, body.length, 0)).toThrow(RangeError)
    expect(() => frameSizesOf(readAt, 6, 1)).toThrow(RangeError)
    expect(frameSizesOf(readAt, body.length, 1)).toEqual([3])
  })

  it('places each frame after the frames and length prefixes before it', () => {
    expect([0, 1, 2, 3].map((index) => frameOffset([100, 0, 3, 50], index))).toEqual([
      4, 108, 112, 119,
    ])
  })
})

describe('fitPage', () => {
  /** A stored message of `size` frame octets in `frameCount` frames, as reads list it. */
  const row = (size: number, frameCount = 1): StoredMessage => {
    const head = { seq: 1, receivedAt: 0, mechanism: 'NULL' as const, peerAddress: 'p', size }
    if (size > LARGE_MESSAGE_BYTES) {
      return { ...head, frames: null, frameSizes: Array.from({ length: frameCount }, () => 1) }
    }
    return { ...head, frames: Array.from({ length: frameCount }, () => new Uint8Array(0)) }
  }

  it('counts frame octets and one a frame, and a large message as LISTED_FRAME_BYTES per frame', () => {
    const large = row(LARGE_MESSAGE_BYTES + 1, 3)
    const listed = 3 * LISTED_FRAME_BYTES
    expect(fitPage([row(10), large, row(5)], 11 + listed + 6)).toHaveLength(3)
    expect(fitPage([row(10), large, row(5)], 11 + listed + 5)).toHaveLength(2)
    expect(fitPage([row(10), large], 11 + listed - 1)).toHaveLength(1)
    // Exactly LARGE_MESSAGE_BYTES is not large: its frames count.
    expect(fitPage([row(1), row(LARGE_MESSAGE_BYTES)], LARGE_MESSAGE_BYTES)).toHaveLength(1)
    // Empty frames weigh too: 1,000 messages of 10,000 empty frames are not one page of 8 MiB.
    const frames = Array.from({ length: 10_000 }, () => new Uint8Array(0))
    const empty = Array.from({ length: 1000 }, () => ({ ...row(0), frames }))
    expect(fitPage(empty, 8 * 1024 * 1024)).toHaveLength(838)
  })

  it('always returns the first row, however heavy', () => {
    expect(fitPage([row(100)], 1)).toHaveLength(1)
    expect(fitPage([row(LARGE_MESSAGE_BYTES + 1, 1_000_000)], 1)).toHaveLength(1)
    expect(fitPage([], 1)).toEqual([])
  })
})

describe('relay-protocol fixes', () => {
  it('cuts a long NACK reason at a character boundary, so it still decodes', () => {
    const reason = 'é'.repeat(200) // 400 octets of UTF-8; the field holds 255
    const frame = decodeRelayFrame(
      encodeNack({ batchSeq: 1, code: NackCode.STORAGE_FAILED, reason }),
    )
    expect(frame).toEqual({
      kind: 'nack',
      batchSeq: 1,
      code: NackCode.STORAGE_FAILED,
      reason: 'é'.repeat(127),
    })
  })

  it('keeps a leading U+FEFF in strings', () => {
    const frame = decodeRelayFrame(
      encodeBatch({
        batchSeq: 1,
        messages: [
          {
            receivedAt: 0,
            mechanism: 'NULL',
            peerAddress: '\uFEFFpeer',
            frames: [new Uint8Array(0)],
          },
        ],
      }),
    )
    expect(frame).toMatchObject({ messages: [{ peerAddress: '\uFEFFpeer' }] })
  })
})

describe('schema migrations', () => {
  it('are numbered 1, 2, … in order', () => {
    expect(MIGRATIONS.map((migration) => migration.version)).toEqual(
      MIGRATIONS.map((_, index) => index + 1),
    )
  })

  it('run once, in the constructor, and are recorded', async () => {
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName('migrations'))
    const result = await runInDurableObject(stub, (_instance, state) => ({
      again: migrate(state.storage),
      versions: state.storage.sql
        .exec('SELECT version FROM schema_migrations ORDER BY version')
        .toArray(),
      tables: state.storage.sql
        .exec(
          "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' ORDER BY name",
        )
        .toArray()
        .map((row) => row.name),
    }))
    expect(result.again).toEqual([])
    expect(result.versions).toEqual(MIGRATIONS.map(({ version }) => ({ version })))
    expect(result.versions.at(-1)).toEqual({ version: SCHEMA_VERSION })
    // The per-message tables of versions 1 to 6 are dropped once migration 7 emptied them.
    expect(result.tables).toEqual([
      'bridge_sessions',
      'channel_state',
      'consumer_groups',
      'group_dead_letters',
      'idempotency_keys',
      'schema_migrations',
      'segment_pieces',
      'segments',
    ])
  })

  it('find the segment holding a seq by the primary key, not a scan', async () => {
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName('query-plans'))
    const plan = await runInDurableObject(stub, (_instance, state) =>
      state.storage.sql
        .exec(
          `EXPLAIN QUERY PLAN SELECT first_seq FROM segments
           WHERE first_seq = (SELECT MAX(first_seq) FROM segments WHERE first_seq <= ?)`,
          5,
        )
        .toArray()
        .map((row) => String(row.detail)),
    )
    expect(plan.join('\n')).not.toMatch(/SCAN segments/)
    expect(plan.join('\n')).toMatch(/SEARCH segments USING INTEGER PRIMARY KEY/)
  })
})
