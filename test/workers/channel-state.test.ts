// ChannelState on its own, with SegmentStore on a channel object's real SQLite: counters,
// the highest seq and each bridge session's last batch live in memory, are rebuilt from the
// segments stored after the last write, and are written at most once a minute, or before
// retention deletes the only record of them.
import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { recordBatch } from '../../durable/bridge-sessions'
import { ChannelState, FLUSH_INTERVAL_MS } from '../../durable/channel-state'
import { SegmentStore } from '../../durable/segment-store'
import type { RelayMessage, RelaySession } from '../../shared/relay-protocol'
import { uniqueChannel } from './helpers'

function withSql<T>(body: (sql: SqlStorage) => T): Promise<T> {
  const stub = env.CHANNEL.get(env.CHANNEL.idFromName(uniqueChannel('state')))
  return runInDurableObject(stub, (_instance, state) => body(state.storage.sql))
}

const NO_ROWS = () => ({ rowsRead: 0, rowsWritten: 0 })
const message: RelayMessage = {
  receivedAt: 1,
  mechanism: 'NULL',
  peerAddress: '127.0.0.1:1',
  frames: [new Uint8Array([1])],
}
const A: RelaySession = { bridgeId: 'bridge-a', epoch: 7 }
const B: RelaySession = { bridgeId: 'bridge-b', epoch: 9 }

/** Stores batches of `count` messages as the object does: a segment, then the state's record. */
function storer(sql: SqlStorage, state: ChannelState, written: Array<[string, number, boolean]>) {
  const segments = new SegmentStore(sql)
  // What the object passes: ../../durable/bridge-sessions.ts writes the row; noted here.
  const writeSession = (session: RelaySession, batchSeq: number, isNew: boolean) => {
    written.push([session.bridgeId, batchSeq, isNew])
    recordBatch(sql, session, batchSeq, 0, isNew)
  }
  return {
    segments,
    writeSession,
    store(session: RelaySession, batchSeq: number, count: number, storedAt = 1) {
      const firstSeq = state.lastSeq + 1
      const [info] = segments.append(Array(count).fill(message), firstSeq, storedAt, {
        ...session,
        batchSeq,
      })
      state.segmentStored(
        { firstSeq, lastSeq: info?.lastSeq ?? firstSeq, count, storedAt, session, batchSeq },
        writeSession,
      )
    },
  }
}

describe('ChannelState', () => {
  it('writes a session row only for its first batch, and rebuilds the rest from segments', async () => {
    await withSql((sql) => {
      const written: Array<[string, number, boolean]> = []
      const state = new ChannelState(sql, NO_ROWS)
      const { store } = storer(sql, state, written)
      store(A, 1, 3)
      store(A, 2, 2)
      store(B, 1, 4)
      store(A, 3, 1)
      expect(written).toEqual([
        ['bridge-a', 1, true],
        ['bridge-b', 1, true],
      ])
      // Evicted before any write: a new object finds it all in the segments.
      const woken = new ChannelState(sql, NO_ROWS)
      expect(woken.lastSeq).toBe(10)
      expect(woken.counters.messages_stored).toBe(10)
      expect(woken.counters.batches_stored).toBe(4)
      expect(woken.lastBatchSeq(A)).toBe(3)
      expect(woken.lastBatchSeq(B)).toBe(1)
      expect(woken.lastBatchSeq({ bridgeId: 'bridge-a', epoch: 8 })).toBeUndefined()
    })
  })

  it('is due a minute after a change, and then reads only the segments after its write', async () => {
    await withSql((sql) => {
      const written: Array<[string, number, boolean]> = []
      const state = new ChannelState(sql, NO_ROWS)
      const { store, writeSession } = storer(sql, state, written)
      // After the object's own writes, whenever they were.
      const t0 = Date.now() + FLUSH_INTERVAL_MS
      state.flush(t0, writeSession)
      expect(state.due(t0 + 10 * FLUSH_INTERVAL_MS)).toBe(false)
      store(A, 1, 5)
      store(A, 2, 5)
      expect(state.due(t0 + FLUSH_INTERVAL_MS - 1)).toBe(false)
      expect(state.due(t0 + FLUSH_INTERVAL_MS)).toBe(true)
      state.flush(t0 + FLUSH_INTERVAL_MS, writeSession)
      // The session's number moved past the row written at its first batch.
      expect(written).toEqual([
        ['bridge-a', 1, true],
        ['bridge-a', 2, false],
      ])
      store(A, 3, 1)
      const woken = new ChannelState(sql, NO_ROWS)
      expect(woken.counters.messages_stored).toBe(11)
      expect(woken.lastBatchSeq(A)).toBe(3)
      expect(woken.dueAt()).toBe(t0 + 2 * FLUSH_INTERVAL_MS)
    })
  })

  it('writes, before a segment is dropped unwritten, only what that segment alone records', async () => {
    await withSql((sql) => {
      const written: Array<[string, number, boolean]> = []
      const state = new ChannelState(sql, NO_ROWS)
      const { store, segments, writeSession } = storer(sql, state, written)
      store(A, 1, 2)
      store(B, 1, 2)
      store(B, 2, 2)
      store(A, 2, 2)
      written.length = 0
      const drop = () => {
        const head = segments.head
        if (!head) throw new Error('empty log')
        state.beforeDrop(head, 0, writeSession)
        segments.dropOldest()
      }
      drop() // A's batch 1: a later batch of A is kept, nothing to write
      drop() // B's batch 1: the same
      expect(written).toEqual([])
      drop() // B's batch 2, its last, not written yet: its number must outlive the segment
      expect(written).toEqual([['bridge-b', 2, false]])
      drop() // the last segment of all: everything is written (the highest seq with it)
      expect(written).toEqual([
        ['bridge-b', 2, false],
        ['bridge-a', 2, false],
      ])
      const woken = new ChannelState(sql, NO_ROWS)
      expect(woken.lastSeq).toBe(8)
      expect(woken.lastBatchSeq(A)).toBe(2)
      expect(woken.lastBatchSeq(B)).toBe(2)
      expect(woken.counters.messages_stored).toBe(8)
    })
  })
})
