// Retention of a channel's log: a maximum age, and maximum messages and bytes enforced when a
// batch arrives. Synchronous SQL, run inside the caller's transaction.
//
// - Age: messages are deleted from the head of the log (lowest seq first) while the time they
//   were stored (stored_at, the Durable Object's clock, not the bridge's receive time) is older
//   than the limit, whether acked or not. Run on each batch and by the Durable Object's alarm.
// - Count and bytes, policy `block`: to make room, only acked messages (in neither the queue nor
//   dead letters) are deleted, oldest first; when that is not enough the batch is refused and
//   nothing changes, so nothing a leased consumer has not acked is ever lost.
// - Count and bytes, policy `drop-oldest`: the oldest messages are deleted whatever their state
//   (with their chunks, queue and dead-letter rows); those not acked are counted as dropped.
//
// Cursor readers read the log as it is: seqs are never reused, so a reader whose cursor falls
// before the oldest message kept simply gets the oldest one next, and sees the gap in seqs.

import type { RetentionLimits } from './channel-config'
import { addCounter, Counter } from './counters'

/** What making room for a batch did: room made (maybe by deleting), or refused with why. */
export type RoomOutcome = { ok: true } | { ok: false; reason: string }

/** Deletes these messages everywhere, updates the log counters; counts dropped and trimmed. */
function deleteMessages(sql: SqlStorage, seqs: number[], bytes: number, counter?: Counter): void {
  if (seqs.length === 0) return
  const list = JSON.stringify(seqs)
  const inList = 'seq IN (SELECT value FROM json_each(?))'
  if (counter === undefined) {
    // Split into acked (trimmed) and not acked (dropped).
    const unacked = sql
      .exec<{ count: number }>(
        `SELECT (SELECT COUNT(*) FROM queue WHERE ${inList})
              + (SELECT COUNT(*) FROM dead_letters WHERE ${inList}) AS count`,
        list,
        list,
      )
      .one().count
    addCounter(sql, Counter.DROPPED, unacked)
    addCounter(sql, Counter.TRIMMED, seqs.length - unacked)
  } else {
    addCounter(sql, counter, seqs.length)
  }
  sql.exec(`DELETE FROM messages WHERE ${inList}`, list)
  sql.exec(`DELETE FROM message_chunks WHERE ${inList}`, list)
  const deleted = (table: 'queue' | 'dead_letters') =>
    sql.exec(`DELETE FROM ${table} WHERE ${inList} RETURNING seq`, list).toArray().length
  addCounter(sql, Counter.QUEUE_MESSAGES, -deleted('queue'))
  addCounter(sql, Counter.DEAD_LETTER_MESSAGES, -deleted('dead_letters'))
  addCounter(sql, Counter.LOG_MESSAGES, -seqs.length)
  addCounter(sql, Counter.LOG_BYTES, -bytes)
}

/**
 * Deletes the messages at the head of the log stored at or before `now - maxAgeSeconds`.
 * @returns how many were deleted.
 */
export function expireByAge(sql: SqlStorage, limits: RetentionLimits, now: number): number {
  if (limits.maxAgeSeconds === 0) return 0
  const cutoff = now - limits.maxAgeSeconds * 1000
  const seqs: number[] = []
  let bytes = 0
  for (const row of sql.exec<{ seq: number; size: number; stored_at: number }>(
    'SELECT seq, size, stored_at FROM messages ORDER BY seq',
  )) {
    // At exactly its expiry time a message goes: the alarm set for that time must delete it.
    if (row.stored_at > cutoff) break
    seqs.push(row.seq)
    bytes += row.size
  }
  deleteMessages(sql, seqs, bytes, Counter.EXPIRED)
  return seqs.length
}

/** When the message at the head of the log expires, if there is an age limit and a message. */
export function nextExpiryAt(sql: SqlStorage, limits: RetentionLimits): number | undefined {
  if (limits.maxAgeSeconds === 0) return undefined
  const head = sql
    .exec<{ stored_at: number }>('SELECT stored_at FROM messages ORDER BY seq LIMIT 1')
    .toArray()[0]
  return head === undefined ? undefined : head.stored_at + limits.maxAgeSeconds * 1000
}

/**
 * Makes room for `count` more messages of `bytes` frame octets under the count and byte
 * limits, by the overflow policy; changes nothing when it refuses.
 */
export function makeRoom(
  sql: SqlStorage,
  limits: RetentionLimits,
  incoming: { count: number; bytes: number },
): RoomOutcome {
  const { maxMessages, maxBytes, overflowPolicy } = limits
  if (
    (maxMessages > 0 && incoming.count > maxMessages) ||
    (maxBytes > 0 && incoming.bytes > maxBytes)
  ) {
    addCounter(sql, Counter.BATCHES_REFUSED, 1)
    return {
      ok: false,
      reason: `a batch of ${incoming.count} messages, ${incoming.bytes} bytes exceeds the channel's limits`,
    }
  }
  const current = sql
    .exec<{ messages: number | null; bytes: number | null }>(
      `SELECT (SELECT value FROM counters WHERE name = 'log_messages') AS messages,
              (SELECT value FROM counters WHERE name = 'log_bytes') AS bytes`,
    )
    .one()
  let excessMessages = maxMessages > 0 ? (current.messages ?? 0) + incoming.count - maxMessages : 0
  let excessBytes = maxBytes > 0 ? (current.bytes ?? 0) + incoming.bytes - maxBytes : 0
  if (excessMessages <= 0 && excessBytes <= 0) return { ok: true }
  if (overflowPolicy === 'block') {
    // From the counters, before any scan: a full channel refuses every retry of a bridge, and
    // a scan of a log with nothing acked would read every row each time.
    const counters = sql
      .exec<{ queued: number | null; dead: number | null }>(
        `SELECT (SELECT value FROM counters WHERE name = 'queue_messages') AS queued,
                (SELECT value FROM counters WHERE name = 'dead_letter_messages') AS dead`,
      )
      .one()
    const acked = (current.messages ?? 0) - (counters.queued ?? 0) - (counters.dead ?? 0)
    if (acked < Math.max(1, excessMessages)) {
      addCounter(sql, Counter.BATCHES_REFUSED, 1)
      return {
        ok: false,
        reason: 'the channel is full of messages not acked yet (overflow policy block)',
      }
    }
  }

  const candidates =
    overflowPolicy === 'drop-oldest'
      ? 'SELECT seq, size FROM messages ORDER BY seq'
      : `SELECT seq, size FROM messages m
         WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.seq = m.seq)
           AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.seq = m.seq)
         ORDER BY seq`
  const seqs: number[] = []
  let bytes = 0
  for (const row of sql.exec<{ seq: number; size: number }>(candidates)) {
    if (excessMessages <= 0 && excessBytes <= 0) break
    seqs.push(row.seq)
    bytes += row.size
    excessMessages--
    excessBytes -= row.size
  }
  if (excessMessages > 0 || excessBytes > 0) {
    addCounter(sql, Counter.BATCHES_REFUSED, 1)
    return {
      ok: false,
      reason: 'the channel is full of messages not acked yet (overflow policy block)',
    }
  }
  deleteMessages(sql, seqs, bytes)
  return { ok: true }
}
