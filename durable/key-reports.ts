// What bridges report of the registry's keys (../shared/key-feed.ts BridgeReport), kept by the
// registry: per key and bridge, its connections at the last report, when it last sent and how
// much; per key, bridge and reason, the handshakes refused. Counts add up, a row per
// (key, bridge) and per (key, bridge, reason): a flood of refusals from one key is one row.

import type { BridgeReport, RefusalReason } from '../shared/key-feed'

/**
 * A bridge's connections count while it has reported this recently, ms: a bridge that stopped
 * reporting (gone, or its feed down) is not taken to hold them. Bridges report every minute.
 */
export const CONNECTIONS_FRESH_MS = 3 * 60_000

export interface RefusalRow {
  publicKey: string
  bridgeId: string
  reason: RefusalReason
  count: number
  /** Milliseconds since the epoch. */
  lastAt: number
}

export interface KeyStats {
  connections: number
  lastSeenAt?: number
  messages: number
  bytes: number
  refusals: Partial<Record<RefusalReason, number>>
}

export class KeyReports {
  readonly #storage: DurableObjectStorage

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage
    storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS key_traffic (
        public_key TEXT NOT NULL,
        bridge_id TEXT NOT NULL,
        connections INTEGER NOT NULL,
        messages INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        last_seen_at INTEGER,
        reported_at INTEGER NOT NULL,
        PRIMARY KEY (public_key, bridge_id)
      ) WITHOUT ROWID`,
    )
    storage.sql.exec(
      `CREATE TABLE IF NOT EXISTS key_refusals (
        public_key TEXT NOT NULL,
        bridge_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        count INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        PRIMARY KEY (public_key, bridge_id, reason)
      ) WITHOUT ROWID`,
    )
    storage.sql.exec('CREATE INDEX IF NOT EXISTS key_refusals_recent ON key_refusals (last_at)')
    // When each bridge last reported: its keys' connections count while it is recent.
    storage.sql.exec(
      'CREATE TABLE IF NOT EXISTS bridge_reports (bridge_id TEXT PRIMARY KEY, reported_at INTEGER NOT NULL) WITHOUT ROWID',
    )
  }

  record(report: BridgeReport, now: number): void {
    const { sql } = this.#storage
    this.#storage.transactionSync(() => {
      sql.exec(
        `INSERT INTO bridge_reports (bridge_id, reported_at) VALUES (?, ?)
         ON CONFLICT (bridge_id) DO UPDATE SET reported_at = excluded.reported_at`,
        report.bridgeId,
        now,
      )
      for (const key of report.keys) {
        sql.exec(
          `INSERT INTO key_traffic
             (public_key, bridge_id, connections, messages, bytes, last_seen_at, reported_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (public_key, bridge_id) DO UPDATE SET
             connections = excluded.connections,
             messages = messages + excluded.messages,
             bytes = bytes + excluded.bytes,
             last_seen_at = CASE WHEN excluded.messages > 0 THEN excluded.last_seen_at ELSE last_seen_at END,
             reported_at = excluded.reported_at`,
          key.publicKey,
          report.bridgeId,
          key.connections,
          key.messages,
          key.bytes,
          key.messages > 0 ? key.lastSeenAt : null,
          now,
        )
      }
      for (const refusal of report.refusals) {
        sql.exec(
          `INSERT INTO key_refusals (public_key, bridge_id, reason, count, last_at)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (public_key, bridge_id, reason) DO UPDATE SET
             count = count + excluded.count, last_at = excluded.last_at`,
          refusal.publicKey,
          report.bridgeId,
          refusal.reason,
          refusal.count,
          now,
        )
      }
    })
  }

  refusals(limit: number): RefusalRow[] {
    return this.#storage.sql
      .exec<{
        public_key: string
        bridge_id: string
        reason: RefusalReason
        count: number
        last_at: number
      }>('SELECT * FROM key_refusals ORDER BY last_at DESC LIMIT ?', limit)
      .toArray()
      .map((row) => ({
        publicKey: row.public_key,
        bridgeId: row.bridge_id,
        reason: row.reason,
        count: row.count,
        lastAt: row.last_at,
      }))
  }

  stats(publicKeys: readonly string[], now: number): KeyStats {
    const stats: KeyStats = { connections: 0, messages: 0, bytes: 0, refusals: {} }
    const { sql } = this.#storage
    for (const key of publicKeys) {
      for (const row of sql.exec<{
        connections: number
        messages: number
        bytes: number
        last_seen_at: number | null
        bridge_reported_at: number | null
      }>(
        `SELECT t.connections, t.messages, t.bytes, t.last_seen_at, b.reported_at AS bridge_reported_at
         FROM key_traffic t LEFT JOIN bridge_reports b ON b.bridge_id = t.bridge_id
         WHERE t.public_key = ?`,
        key,
      )) {
        const fresh =
          row.bridge_reported_at !== null && now - row.bridge_reported_at < CONNECTIONS_FRESH_MS
        if (fresh) stats.connections += row.connections
        stats.messages += row.messages
        stats.bytes += row.bytes
        if (row.last_seen_at !== null && row.last_seen_at > (stats.lastSeenAt ?? 0)) {
          stats.lastSeenAt = row.last_seen_at
        }
      }
      for (const row of sql.exec<{ reason: RefusalReason; count: number }>(
        'SELECT reason, count FROM key_refusals WHERE public_key = ?',
        key,
      )) {
        stats.refusals[row.reason] = (stats.refusals[row.reason] ?? 0) + row.count
      }
    }
    return stats
  }
}
