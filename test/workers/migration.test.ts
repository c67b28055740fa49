// Migration 7: a channel of 200,000 messages written by the schema before segments (a row per
// message, a queue row per message not acked) moves into segments a slice per alarm, while
// cursor reads, pulls, acks and new batches go on, and nothing is lost or delivered twice.
import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { ChannelObject } from '../../durable/channel-object'
import { migrate } from '../../durable/schema'
import {
  expectQueueCountersExact,
  get,
  ingestBatch,
  ORIGIN,
  READ_TOKEN,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const OLD_MESSAGES = 200_000
/** Acked in the old queue: 1 to 1000, but for the dead letter 500. */
const ACKED_THROUGH = 1000
const DEAD_SEQ = 500
/** Leased in the old queue, its lease still running. */
const LEASED_SEQ = 1001
/** Deleted by the old retention, acked (the old `block` trimmed acked rows anywhere). */
const GAP_SEQ = 150_000

const oldText = (seq: number) => `m${String(seq).padStart(6, '0')}`

function post(path: string, body: unknown) {
  return exports.default.fetch(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
}

async function stats(channel: string) {
  const response = await get(`/v1/channels/${channel}`, READ_TOKEN)
  expect(response.status).toBe(200)
  // biome-ignore lint/suspicious/noExplicitAny: the test reads arbitrary fields
  return (await response.json()) as any
}

const texts = (messages: { frames: string[] }[]) =>
  messages.map((message) => atob(message.frames[0] ?? ''))

/** Rewrites the object's storage as schema version 6 left it, with the old rows above. */
function writeOldSchema(state: DurableObjectState, now: number): void {
  const { sql } = state.storage
  for (const { name } of sql
    .exec<{ name: string }>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'",
    )
    .toArray()) {
    sql.exec(`DROP TABLE ${name}`)
  }
  state.storage.kv.delete('legacy.progress')
  migrate(state.storage, 6)
  // Frames "m000001" … as the old store wrote them: a u32 length, then the octets.
  sql.exec(
    `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
     INSERT INTO messages
       (seq, received_at, stored_at, mechanism, peer_address, public_key, frame_count, size, body)
     SELECT i, 1700000000000 + i, ?, 'NULL', '127.0.0.1:5555', NULL, 1, 7,
            unhex('00000007' || hex(printf('m%06d', i)))
     FROM n WHERE i != ?`,
    OLD_MESSAGES,
    now,
    GAP_SEQ,
  )
  sql.exec(
    'INSERT INTO queue (seq) SELECT seq FROM messages WHERE seq > ? AND seq != ?',
    ACKED_THROUGH,
    LEASED_SEQ,
  )
  sql.exec(
    "INSERT INTO queue (seq, visible_at, attempts, lease_id) VALUES (?, ?, 1, 'old-lease')",
    LEASED_SEQ,
    now + 60_000,
  )
  sql.exec(
    "INSERT INTO dead_letters (seq, attempts, dead_at, reason) VALUES (?, 5, ?, 'retried')",
    DEAD_SEQ,
    now,
  )
  sql.exec(
    `INSERT INTO counters (name, value) VALUES
       ('log_messages', ?), ('log_bytes', ?), ('queue_messages', ?), ('dead_letter_messages', 1),
       ('messages_stored', ?), ('batches_stored', 2000), ('leased', 1006), ('acked', 999),
       ('dead_lettered', 1)
     ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
    OLD_MESSAGES - 1,
    (OLD_MESSAGES - 1) * 7,
    OLD_MESSAGES - ACKED_THROUGH - 1,
    OLD_MESSAGES,
  )
  sql.exec(
    "INSERT INTO bridge_sessions (bridge_id, epoch, last_batch_seq, updated_at) VALUES ('old-bridge', 7, 2000, ?)",
    now,
  )
}

describe('migration 7: rows of the schema before segments', () => {
  it('moves 200,000 old rows into segments by alarm while reads, pulls and ingest go on', async () => {
    const channel = uniqueChannel('migrate')
    // The object exists (its name told to the directory) before its storage is rewritten.
    expect(await ingestBatch(channel, [relayMessage([utf8('x')])])).toMatchObject({ kind: 'ack' })
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    const started = await runInDurableObject(stub, async (instance: ChannelObject, state) => {
      writeOldSchema(state, Date.now())
      await instance.restartForTests()
      return instance.stats()
    })
    expect(started.migrating).toBe(true)
    expect(started.log.messages).toBe(OLD_MESSAGES - 1)
    expect(started.counters).toMatchObject({ messages_stored: OLD_MESSAGES, acked: 999 })

    // While the slices run: reads from the start, the middle and the end of the old rows.
    const first = await readPage(channel, '?after=0&limit=1000')
    expect(first.messages.map((message) => message.seq)).toEqual(
      Array.from({ length: 1000 }, (_, index) => index + 1),
    )
    expect(texts(first.messages).slice(0, 2)).toEqual([oldText(1), oldText(2)])
    const aroundGap = await readPage(channel, `?after=${GAP_SEQ - 2}&limit=3`)
    expect(aroundGap.messages.map((message) => message.seq)).toEqual([
      GAP_SEQ - 1,
      GAP_SEQ + 1,
      GAP_SEQ + 2,
    ])

    // Group default took over the old queue: 1 to 1000 acked, 500 a dead letter, 1001 still
    // leased by an id that cannot be carried over (delivered again when that lease would end).
    const pulled = (await (
      await post(`/v1/channels/${channel}/pull`, { batchSize: 100 })
    ).json()) as { messages: { seq: number; leaseId: string; attempts: number }[] }
    expect(pulled.messages.map((message) => message.seq)).toEqual(
      Array.from({ length: 100 }, (_, index) => LEASED_SEQ + 1 + index),
    )
    expect(pulled.messages[0]?.attempts).toBe(1)
    const acked = await post(`/v1/channels/${channel}/ack`, {
      acks: pulled.messages.map((message) => message.leaseId),
    })
    expect(await acked.json()).toMatchObject({ acked: 100, unknown: [] })
    const dead = (await (await get(`/v1/channels/${channel}/dead-letters`, READ_TOKEN)).json()) as {
      messages: { seq: number; attempts: number; reason: string }[]
    }
    expect(dead.messages).toMatchObject([{ seq: DEAD_SEQ, attempts: 5, reason: 'retried' }])

    // New batches take the seqs after the old ones (the old session is still known).
    expect(
      await ingestBatch(channel, [relayMessage([utf8('new-1')]), relayMessage([utf8('new-2')])], {
        bridgeId: 'old-bridge',
        epoch: 7,
        batchSeq: 2001,
      }),
    ).toMatchObject({ kind: 'ack', firstSeq: OLD_MESSAGES + 1, lastSeq: OLD_MESSAGES + 2 })
    expect(
      await ingestBatch(channel, [relayMessage([utf8('resent')])], {
        bridgeId: 'old-bridge',
        epoch: 7,
        batchSeq: 1999,
      }),
    ).toMatchObject({ kind: 'ack', status: 1 })

    // Reads and pulls while the alarm moves slices, until none are left.
    let seen = 0
    for (let round = 0; ; round++) {
      const report = await stats(channel)
      const after = (round * 7919) % OLD_MESSAGES
      const page = await readPage(channel, `?after=${after}&limit=5`)
      for (const message of page.messages) {
        const seq = message.seq
        expect(atob(message.frames[0] ?? '')).toBe(
          seq > OLD_MESSAGES ? `new-${seq - OLD_MESSAGES}` : oldText(seq),
        )
      }
      seen++
      if (!report.migrating) break
      expect(round).toBeLessThan(500)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(seen).toBeGreaterThan(1)

    const done = await runInDurableObject(stub, (_instance, state) => {
      const { sql } = state.storage
      const count = (query: string) => Number(sql.exec(query).one().n)
      const tables = () =>
        sql
          .exec<{ name: string }>(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('messages', 'message_chunks', 'queue', 'dead_letters', 'counters') ORDER BY name",
          )
          .toArray()
          .map((row) => row.name)
      return {
        // Emptied; dropped at once unless a read's cursor is still open (then at the next start).
        old: tables().includes('messages') ? count('SELECT COUNT(*) AS n FROM messages') : 0,
        tables: tables().filter((name) => name !== 'messages' && name !== 'message_chunks'),
        segments: count('SELECT COUNT(*) AS n FROM segments'),
      }
    })
    expect(done).toMatchObject({ old: 0, tables: [] })
    // 5,000 old rows a slice, two segments each (cut at 512 KiB as they would take at most),
    // split where the gap is: about 80 segments, not 200,000 rows.
    expect(done.segments).toBeLessThan(100)

    // Every message, read from the start in pages: exactly the old ones (but the gap) and the
    // new ones, in order.
    let after = 0
    let count = 0
    for (;;) {
      const page = await readPage(channel, `?after=${after}&limit=1000`)
      if (page.messages.length === 0) break
      for (const message of page.messages) {
        expect(message.seq).not.toBe(GAP_SEQ)
        expect(message.seq).toBeGreaterThan(after)
        after = message.seq
        count++
      }
    }
    expect(count).toBe(OLD_MESSAGES - 1 + 2)
    expect(after).toBe(OLD_MESSAGES + 2)

    const report = await stats(channel)
    expect(report.log).toMatchObject({
      messages: OLD_MESSAGES + 1,
      bytes: (OLD_MESSAGES - 1) * 7 + 10,
    })
    // The group goes on where it was: the next pull is after what was pulled before.
    const next = (await (await post(`/v1/channels/${channel}/pull`, { batchSize: 1 })).json()) as {
      messages: { seq: number }[]
    }
    expect(next.messages.map((message) => message.seq)).toEqual([LEASED_SEQ + 101])
    await expectQueueCountersExact(channel)
  })

  it('gives new messages seqs after every one the old schema gave, even when its log was emptied', async () => {
    const channel = uniqueChannel('migrate-empty')
    expect(await ingestBatch(channel, [relayMessage([utf8('x')])])).toMatchObject({ kind: 'ack' })
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    await runInDurableObject(stub, async (instance: ChannelObject, state) => {
      writeOldSchema(state, Date.now())
      // Retention had deleted every row; AUTOINCREMENT still remembers the seqs it gave.
      state.storage.sql.exec('DELETE FROM messages')
      state.storage.sql.exec('DELETE FROM queue')
      state.storage.sql.exec('DELETE FROM dead_letters')
      await instance.restartForTests()
    })
    expect(
      await ingestBatch(channel, [relayMessage([utf8('after')])], { bridgeId: 'new', epoch: 5 }),
    ).toMatchObject({ kind: 'ack', firstSeq: OLD_MESSAGES + 1 })
    // And after another restart, with the old tables gone.
    await runInDurableObject(stub, (instance: ChannelObject) => instance.restartForTests())
    expect(
      await ingestBatch(channel, [relayMessage([utf8('later')])], {
        bridgeId: 'new',
        epoch: 5,
        batchSeq: 2,
      }),
    ).toMatchObject({ kind: 'ack', firstSeq: OLD_MESSAGES + 2 })
  })

  it('passes over a long run of gaps the old retention left, a few pulls at a time', async () => {
    const channel = uniqueChannel('migrate-gaps')
    expect(await ingestBatch(channel, [relayMessage([utf8('x')])])).toMatchObject({ kind: 'ack' })
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    await runInDurableObject(stub, async (instance: ChannelObject, state) => {
      writeOldSchema(state, Date.now())
      // The old `block` trimmed acked rows anywhere: 1 to 150,000 are gone but for 1 and 2.
      state.storage.sql.exec('DELETE FROM messages WHERE seq > 2 AND seq < ?', GAP_SEQ)
      state.storage.sql.exec('DELETE FROM queue')
      state.storage.sql.exec('DELETE FROM dead_letters')
      await instance.restartForTests()
    })
    // A new group from the earliest: seqs 3 to 149,999 are gaps, passed over 100 rounds a pull.
    const put = await exports.default.fetch(`${ORIGIN}/v1/channels/${channel}/groups/late`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
      body: '{}',
    })
    expect(put.status).toBe(201)
    const seqs: number[] = []
    let pulls = 0
    while (seqs.length < 3 && pulls < 50) {
      pulls++
      const response = await post(`/v1/channels/${channel}/groups/late/pull`, { batchSize: 1000 })
      expect(response.status).toBe(200)
      const body = (await response.json()) as { messages: { seq: number }[] }
      seqs.push(...body.messages.map((message) => message.seq))
    }
    expect(seqs.slice(0, 3)).toEqual([1, 2, GAP_SEQ + 1])
    expect(seqs.slice(2)).toEqual(
      Array.from({ length: seqs.length - 2 }, (_, i) => GAP_SEQ + 1 + i),
    )
    // 149,997 gap seqs at 1,000 a round and 100 rounds a pull: two pulls came back empty-handed.
    expect(pulls).toBeGreaterThan(2)
  })
})
