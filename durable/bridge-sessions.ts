// The relay's deduplication state: per bridge session (bridge id and epoch, see RelaySession in
// ./relay-protocol.ts), the highest batch stored, written in the transaction that stores it.
// Synchronous SQL, run inside the caller's transaction.

import type { RelaySession } from '../shared/relay-protocol'
import type { Sql } from './row-meter'

/**
 * Sessions with no batch for this long are forgotten. Each bridge start without a spool is a new
 * session; a spool that comes back after longer resends its unacknowledged batches, and those
 * the object had stored (their ACK lost) are stored again: a duplicate, never a loss.
 */
export const SESSION_IDLE_MS = 30 * 24 * 60 * 60 * 1000

/**
 * Sessions kept per bridge id (each start without a spool is one): the oldest beyond go when a
 * new one stores its first batch. Older ones are runs long gone.
 */
export const MAX_SESSIONS_PER_BRIDGE = 16

/** Sessions kept in all: past this, the least recently used go (each row is bounded storage). */
export const MAX_SESSIONS = 10_000

/**
 * Why a socket may not use epoch 0, or undefined when it may. Epoch 0 is the numbering of relay
 * protocol version 1, kept only for what migration 6 carried over: a session that exists, of a
 * bridge id that has not moved on to an epoch of its own (a spool moves as soon as nothing it
 * holds was numbered in epoch 0). Anyone else could guess it, unlike a random epoch.
 */
export function epochZeroRefusal(sql: Sql, session: RelaySession): string | undefined {
  if (session.epoch !== 0) return undefined
  const rows = sql
    .exec<{ epoch: number }>(
      'SELECT epoch FROM bridge_sessions WHERE bridge_id = ? ORDER BY epoch DESC LIMIT 1',
      session.bridgeId,
    )
    .toArray()
  const newest = rows[0]?.epoch
  if (newest === 0) return undefined
  return newest === undefined
    ? 'epoch 0 is only for a numbering that relay protocol version 1 left; draw a random epoch'
    : 'this bridge id numbers its batches in an epoch of its own now; epoch 0 is closed'
}

/** The highest batch stored in `session`, or undefined when the object does not know it. */
export function lastBatchSeq(sql: Sql, session: RelaySession): number | undefined {
  return sql
    .exec<{ last_batch_seq: number }>(
      'SELECT last_batch_seq FROM bridge_sessions WHERE bridge_id = ? AND epoch = ?',
      session.bridgeId,
      session.epoch,
    )
    .toArray()[0]?.last_batch_seq
}

/**
 * Records that `session` has stored (or used up) every batch up to `batchSeq`. A session's first
 * batch also makes room: at most {@link MAX_SESSIONS_PER_BRIDGE} per bridge id and
 * {@link MAX_SESSIONS} in all, the least recently used going first.
 */
export function recordBatch(
  sql: Sql,
  session: RelaySession,
  batchSeq: number,
  now: number,
  isNew = false,
): void {
  if (isNew) makeRoomForSession(sql, session)
  sql.exec(
    `INSERT INTO bridge_sessions (bridge_id, epoch, last_batch_seq, updated_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (bridge_id, epoch)
     DO UPDATE SET last_batch_seq = excluded.last_batch_seq, updated_at = excluded.updated_at`,
    session.bridgeId,
    session.epoch,
    batchSeq,
    now,
  )
}

/** The highest batch stored per session, for these sessions (those unknown are left out). */
export function lastBatchSeqs(sql: Sql, sessions: readonly RelaySession[]): Map<string, number> {
  const found = new Map<string, number>()
  if (sessions.length === 0) return found
  const rows = sql.exec<{ bridge_id: string; epoch: number; last_batch_seq: number }>(
    `SELECT s.bridge_id, s.epoch, s.last_batch_seq FROM bridge_sessions s
     JOIN json_each(?) j
       ON s.bridge_id = json_extract(j.value, '$[0]') AND s.epoch = json_extract(j.value, '$[1]')`,
    JSON.stringify(sessions.map((session) => [session.bridgeId, session.epoch])),
  )
  for (const row of rows) found.set(sessionKey(row.bridge_id, row.epoch), row.last_batch_seq)
  return found
}

export function sessionKey(bridgeId: string, epoch: number): string {
  return `${epoch}/${bridgeId}`
}

/** How many distinct bridge ids have stored a batch here (within {@link SESSION_IDLE_MS}). */
export function knownBridges(sql: Sql): number {
  return sql
    .exec<{ count: number }>('SELECT COUNT(DISTINCT bridge_id) AS count FROM bridge_sessions')
    .one().count
}

/** Forgets sessions idle past {@link SESSION_IDLE_MS}. @returns how many. */
export function pruneSessions(sql: Sql, now: number): number {
  return sql
    .exec('DELETE FROM bridge_sessions WHERE updated_at < ? RETURNING epoch', now - SESSION_IDLE_MS)
    .toArray().length
}

/** Deletes the oldest sessions beyond the caps, before `session` is added. */
function makeRoomForSession(sql: Sql, session: RelaySession): void {
  // A range of the primary key: cheap, whatever the table's size.
  sql.exec(
    `DELETE FROM bridge_sessions WHERE bridge_id = ? AND epoch IN (
       SELECT epoch FROM bridge_sessions WHERE bridge_id = ?
       ORDER BY updated_at DESC LIMIT -1 OFFSET ?)`,
    session.bridgeId,
    session.bridgeId,
    MAX_SESSIONS_PER_BRIDGE - 1,
  )
  // Once per new session (a bridge start), a scan of at most MAX_SESSIONS rows.
  const { count } = sql
    .exec<{ count: number }>('SELECT COUNT(*) AS count FROM bridge_sessions')
    .one()
  if (count < MAX_SESSIONS) return
  sql.exec(
    `DELETE FROM bridge_sessions WHERE (bridge_id, epoch) IN (
       SELECT bridge_id, epoch FROM bridge_sessions ORDER BY updated_at LIMIT ?)`,
    count - MAX_SESSIONS + 1,
  )
}
