// SegmentStore on its own, on a channel object's real SQLite (the schema its migrations made):
// how batches are cut into segments and pieces, what each costs in rows, reads from any seq,
// the log's running totals, dropping the head, and a store reopened on the same tables.
import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { RowMeter } from '../../durable/row-meter'
import {
  LARGE_MESSAGE_BYTES,
  SEGMENT_PIECE_BYTES,
  SEGMENT_TARGET_BYTES,
  SegmentStore,
} from '../../durable/segment-store'
import type { RelayMessage } from '../../shared/relay-protocol'
import { uniqueChannel } from './helpers'

/** Runs `body` with a fresh channel's SQL (schema migrated, nothing stored). */
function withSql<T>(body: (sql: SqlStorage) => T): Promise<T> {
  const stub = env.CHANNEL.get(env.CHANNEL.idFromName(uniqueChannel('segments')))
  return runInDurableObject(stub, (_instance, state) => body(state.storage.sql))
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

/** `count` messages `prefix-0`, `prefix-1`…, each of `pad` more octets. */
function messages(count: number, prefix = 'm', pad = 0): RelayMessage[] {
  return Array.from({ length: count }, (_, index) => ({
    receivedAt: 1_700_000_000_000 + index,
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:5555',
    frames: [
      new TextEncoder().encode(`${prefix}-${index}`),
      new Uint8Array(pad).fill(index & 0xff),
    ],
  }))
}

describe('SegmentStore', () => {
  it('stores a batch as one row, seqs from the first given, and reads it back', async () => {
    await withSql((sql) => {
      const meter = new RowMeter(sql)
      const store = new SegmentStore(meter.sql)
      const written = meter.totals().rowsWritten
      const segments = store.append(messages(100), 1, 42)
      expect(segments).toHaveLength(1)
      expect(segments[0]).toMatchObject({ firstSeq: 1, lastSeq: 100, count: 100, storedAt: 42 })
      expect(meter.totals().rowsWritten - written).toBe(1)
      const read = store.read({ after: 0, limit: 1000, maxBytes: Number.POSITIVE_INFINITY })
      expect(read.map((message) => message.seq)).toEqual(
        Array.from({ length: 100 }, (_, i) => i + 1),
      )
      expect(read.map((message) => text(message.frames?.[0] as Uint8Array))).toEqual(
        Array.from({ length: 100 }, (_, i) => `m-${i}`),
      )
      expect(store.messageCount).toBe(100)
    })
  })

  it('cuts a batch over the target size into segments with running totals', async () => {
    await withSql((sql) => {
      const store = new SegmentStore(sql)
      const batch = messages(40, 'b', 64 * 1024)
      const segments = store.append(batch, 11, 1)
      expect(segments.length).toBeGreaterThan(1)
      for (const segment of segments)
        expect(segment.length).toBeLessThanOrEqual(SEGMENT_TARGET_BYTES + 1024)
      // Contiguous seqs and totals that add up.
      segments.reduce((next, segment) => {
        expect(segment.firstSeq).toBe(next)
        return segment.lastSeq + 1
      }, 11)
      const bytes = batch.reduce((sum, m) => sum + m.frames.reduce((s, f) => s + f.length, 0), 0)
      expect(segments.at(-1)).toMatchObject({ logMessages: 40, logBytes: bytes, lastSeq: 50 })
      expect(store.byteCount).toBe(bytes)
    })
  })

  it('reads from the middle of a segment within limit and bytes, always at least one', async () => {
    await withSql((sql) => {
      const store = new SegmentStore(sql)
      store.append(messages(50, 'r', 100), 1, 1)
      const seqs = (options: { after: number; limit: number; maxBytes: number }) =>
        store.read(options).map((message) => message.seq)
      expect(seqs({ after: 20, limit: 5, maxBytes: Number.POSITIVE_INFINITY })).toEqual([
        21, 22, 23, 24, 25,
      ])
      // Each message weighs its frame octets and one per frame: 104 + 2.
      expect(seqs({ after: 20, limit: 100, maxBytes: 3 * 106 })).toEqual([21, 22, 23])
      expect(seqs({ after: 20, limit: 100, maxBytes: 1 })).toEqual([21])
      expect(seqs({ after: 50, limit: 100, maxBytes: 1000 })).toEqual([])
      expect(store.readSeqs([49, 3, 3, 77]).map((message) => message.seq)).toEqual([3, 49])
      // "r-0" is one octet shorter than "r-20".
      expect([...store.weights([1, 2, 99]).entries()]).toEqual([
        [1, 105],
        [2, 105],
      ])
    })
  })

  it('stores a segment longer than a value in pieces, and reads frames of a large message by range', async () => {
    await withSql((sql) => {
      const meter = new RowMeter(sql)
      const store = new SegmentStore(meter.sql)
      const big = new Uint8Array(LARGE_MESSAGE_BYTES + 1).map((_, i) => (i * 7) & 0xff)
      const large: RelayMessage = {
        receivedAt: 1,
        mechanism: 'CURVE',
        peerAddress: '[::1]:1',
        publicKey: new Uint8Array(32).fill(9),
        frames: [new TextEncoder().encode('head'), big],
      }
      const before = meter.totals().rowsWritten
      const [segment] = store.append([large], 1, 1)
      const pieces = Math.ceil((segment?.length ?? 0) / SEGMENT_PIECE_BYTES)
      expect(pieces).toBeGreaterThan(8)
      // The segment's row holds the first piece; segment_pieces the rest.
      expect(meter.totals().rowsWritten - before).toBe(pieces)
      const [listed] = store.read({ after: 0, limit: 10, maxBytes: Number.POSITIVE_INFINITY })
      expect(listed).toMatchObject({ seq: 1, frames: null, frameSizes: [4, big.length] })
      const found = store.locateFrame(1, 1)
      if (found.status !== 'found') throw new Error(`frame not found: ${found.status}`)
      expect(found.size).toBe(big.length)
      const from = SEGMENT_PIECE_BYTES - 10 // across a piece boundary
      expect(store.readFrameRange(found, from, 20)).toEqual(big.subarray(from, from + 20))
      expect(store.locateFrame(1, 2)).toEqual({ status: 'frame_not_found', frameCount: 2 })
      expect(store.locateFrame(2, 0)).toEqual({ status: 'message_not_found' })
    })
  })

  it('drops the oldest segment, its pieces too, and frees what it held', async () => {
    await withSql((sql) => {
      const store = new SegmentStore(sql)
      store.append(messages(10, 'a'), 1, 1)
      store.append(
        [{ ...messages(1)[0], frames: [new Uint8Array(3 * SEGMENT_PIECE_BYTES)] } as RelayMessage],
        11,
        2,
      )
      store.append(messages(5, 'c'), 12, 3)
      expect(store.freedBefore(12)).toEqual({ messages: 11, bytes: store.byteCount - 5 * 3 })
      expect(store.atOrBefore(11)?.firstSeq).toBe(11)
      expect(store.atOrBefore(1000)?.firstSeq).toBe(12)
      expect(store.dropOldest()?.firstSeq).toBe(1)
      expect(store.dropOldest()?.firstSeq).toBe(11)
      const pieces = sql.exec('SELECT COUNT(*) AS n FROM segment_pieces').one().n
      expect(pieces).toBe(0)
      expect(store.messageCount).toBe(5)
      expect(store.read({ after: 0, limit: 100, maxBytes: 1e9 }).map((m) => m.seq)).toEqual([
        12, 13, 14, 15, 16,
      ])
    })
  })

  it('finds its ends and totals again when reopened on the same tables', async () => {
    await withSql((sql) => {
      const first = new SegmentStore(sql)
      first.append(messages(7, 'x'), 100, 1)
      first.append(messages(3, 'y'), 107, 2)
      first.dropOldest()
      const reopened = new SegmentStore(sql)
      expect(reopened.head?.firstSeq).toBe(107)
      expect(reopened.tail?.lastSeq).toBe(109)
      expect(reopened.messageCount).toBe(3)
      expect(reopened.bounds()).toEqual({
        oldest: { seq: 107, receivedAt: 1_700_000_000_000 },
        newest: { seq: 109, receivedAt: 1_700_000_000_002 },
      })
    })
  })
})
