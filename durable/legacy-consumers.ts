// Takes over the leased-consumer tables of schema versions 2 to 6 (`queue`, `dead_letters`,
// `counters`: a row per message not acked) in one pass when an object first runs migration 7:
// the queue becomes consumer group `default`, the counters the channel's. A scan of the queue
// (a row per message not acked) is cheap beside the messages themselves, which move in slices.
//
// Only a channel that was pulled from (or has dead letters) gets a `default` group: in the old
// schema every message queued whether anyone pulled or not, and a group protects messages from
// retention, which a channel read only by cursors must not get by surprise.

import type { ChannelState } from './channel-state'
import type { ConsumerGroups } from './consumer-groups'
import { EventCounter } from './counters'
import { tableExists } from './legacy-log'
import type { Sql } from './row-meter'

/**
 * Moves the old queue, dead letters and counters over, then drops their tables; nothing when
 * they are gone already. Run inside a transaction, before the groups are used.
 * @returns whether there was anything to take over.
 */
export function importLegacyConsumers(
  sql: Sql,
  groups: ConsumerGroups,
  state: ChannelState,
  now: number,
): boolean {
  if (!tableExists(sql, 'queue')) return false
  const counters = new Map(
    sql
      .exec<{ name: string; value: number }>('SELECT name, value FROM counters')
      .toArray()
      .map((row) => [row.name, row.value]),
  )
  const counter = (name: string) => counters.get(name) ?? 0
  const dead = sql
    .exec<{ seq: number; attempts: number; dead_at: number; reason: string }>(
      'SELECT seq, attempts, dead_at, reason FROM dead_letters ORDER BY seq',
    )
    .toArray()
  if (counter('leased') > 0 || dead.length > 0) {
    const rows = sql
      .exec<{ seq: number; attempts: number; visible_at: number }>(
        'SELECT seq, attempts, visible_at FROM queue ORDER BY seq',
      )
      .toArray()
      .map((row) => ({ seq: row.seq, attempts: row.attempts, visibleAt: row.visible_at }))
    groups.importLegacy(
      rows,
      dead.map((row) => ({
        seq: row.seq,
        attempts: row.attempts,
        deadAt: row.dead_at,
        reason: row.reason,
      })),
      {
        leased: counter('leased'),
        redelivered: counter('redelivered'),
        acked: counter('acked'),
        retried: counter('retried'),
        deadLettered: counter('dead_lettered'),
        redriven: counter('redriven'),
        dropped: 0,
      },
      now,
    )
  }
  state.importCounters({
    messages_stored: counter('messages_stored'),
    batches_stored: counter('batches_stored'),
    [EventCounter.BATCHES_DUPLICATE]: counter('batches_duplicate'),
    [EventCounter.DROPPED]: counter('dropped'),
    [EventCounter.TRIMMED]: counter('trimmed'),
    [EventCounter.EXPIRED]: counter('expired'),
    [EventCounter.BATCHES_REFUSED]: counter('batches_refused'),
    [EventCounter.MESSAGES_REJECTED]: counter('messages_rejected'),
    [EventCounter.BATCHES_INVALID]: counter('batches_invalid'),
    [EventCounter.MESSAGES_DUPLICATE]: 0,
  })
  sql.exec('DROP TABLE queue')
  sql.exec('DROP TABLE dead_letters')
  sql.exec('DROP TABLE counters')
  return true
}
