// The registry's CURVE client keys (issue: a fleet's keys in one place): one row per key record,
// its public key (and a second one during a rotation), the channels it may send to, labels, a
// rate limit, an expiry, and whether it is revoked. Every change takes the next registry
// version, and a deleted record leaves a tombstone with its version, so a bridge that holds a
// snapshot at version N can be sent what changed after N (the change feed).

import type { RateLimit } from '../shared/api/key-records'

/** Most key records the registry holds. */
export const MAX_KEYS = 100_000

/** A key record as the registry keeps it. */
export interface KeyRecord {
  id: string
  name: string
  publicKey: Uint8Array
  /** A second key admitted as this record, while a client rotates to it. */
  secondPublicKey?: Uint8Array
  channels: string[]
  labels: Record<string, string>
  rateLimit?: RateLimit
  revoked: boolean
  /** Milliseconds since the epoch. */
  createdAt: number
  updatedAt: number
  revokedAt?: number
  expiresAt?: number
  /** The registry version of its last change. */
  version: number
}

/** What may change in a record (PATCH); `null` removes an optional field. */
export interface KeyChanges {
  name?: string
  publicKey?: Uint8Array
  secondPublicKey?: Uint8Array | null
  channels?: string[]
  labels?: Record<string, string>
  rateLimit?: RateLimit | null
  expiresAt?: number | null
}

/** Which records a listing returns, in id order after `after`. */
export interface KeyQuery {
  limit: number
  after?: string
  status?: 'active' | 'revoked' | 'expired'
  /** `name=value`: records with this label. */
  label?: [string, string]
}

interface KeyRow extends Record<string, SqlStorageValue> {
  id: string
  name: string
  public_key: ArrayBuffer
  second_public_key: ArrayBuffer | null
  channels: string
  labels: string
  rate_limit: string | null
  revoked_at: number | null
  created_at: number
  updated_at: number
  expires_at: number | null
  version: number
}

function recordOf(row: KeyRow): KeyRecord {
  return {
    id: row.id,
    name: row.name,
    publicKey: new Uint8Array(row.public_key),
    ...(row.second_public_key === null
      ? {}
      : { secondPublicKey: new Uint8Array(row.second_public_key) }),
    channels: JSON.parse(row.channels) as string[],
    labels: JSON.parse(row.labels) as Record<string, string>,
    ...(row.rate_limit === null ? {} : { rateLimit: JSON.parse(row.rate_limit) as RateLimit }),
    revoked: row.revoked_at !== null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    ...(row.revoked_at === null ? {} : { revokedAt: row.revoked_at }),
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
    version: row.version,
  }
}

/** Why a change was refused. */
export type KeyRefusal = 'not_found' | 'key_exists' | 'full'

export class KeyStore {
  readonly #storage: DurableObjectStorage

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage
    const { sql } = storage
    sql.exec(
      `CREATE TABLE IF NOT EXISTS curve_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        public_key BLOB NOT NULL,
        second_public_key BLOB,
        channels TEXT NOT NULL,
        labels TEXT NOT NULL,
        rate_limit TEXT,
        revoked_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        version INTEGER NOT NULL
      )`,
    )
    sql.exec('CREATE UNIQUE INDEX IF NOT EXISTS curve_keys_public ON curve_keys (public_key)')
    sql.exec(
      'CREATE UNIQUE INDEX IF NOT EXISTS curve_keys_second ON curve_keys (second_public_key) WHERE second_public_key IS NOT NULL',
    )
    sql.exec('CREATE INDEX IF NOT EXISTS curve_keys_version ON curve_keys (version)')
    // Deleted records, so a change feed can say so; and the registry's version.
    sql.exec(
      'CREATE TABLE IF NOT EXISTS deleted_curve_keys (id TEXT PRIMARY KEY, version INTEGER NOT NULL)',
    )
    sql.exec(
      'CREATE TABLE IF NOT EXISTS registry_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)',
    )
    sql.exec('INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0)')
  }

  /** The version of the last change (0 before any). */
  get version(): number {
    return this.#storage.sql
      .exec<{ version: number }>('SELECT version FROM registry_version WHERE id = 1')
      .one().version
  }

  #nextVersion(): number {
    return this.#storage.sql
      .exec<{ version: number }>(
        'UPDATE registry_version SET version = version + 1 WHERE id = 1 RETURNING version',
      )
      .one().version
  }

  /** True when `key` is a public key of any record but `exceptId`. */
  #taken(key: Uint8Array, exceptId?: string): boolean {
    return (
      this.#storage.sql
        .exec(
          'SELECT 1 FROM curve_keys WHERE (public_key = ? OR second_public_key = ?) AND id IS NOT ? LIMIT 1',
          key,
          key,
          exceptId ?? null,
        )
        .toArray().length > 0
    )
  }

  get(id: string): KeyRecord | undefined {
    const row = this.#storage.sql
      .exec<KeyRow>('SELECT * FROM curve_keys WHERE id = ?', id)
      .toArray()[0]
    return row ? recordOf(row) : undefined
  }

  create(
    record: Omit<KeyRecord, 'version' | 'revoked' | 'updatedAt' | 'revokedAt'>,
  ): KeyRecord | KeyRefusal {
    return this.#storage.transactionSync(() => {
      const { sql } = this.#storage
      const { count } = sql
        .exec<{ count: number }>('SELECT COUNT(*) AS count FROM curve_keys')
        .one()
      if (count >= MAX_KEYS) return 'full'
      for (const key of [record.publicKey, record.secondPublicKey]) {
        if (key && this.#taken(key)) return 'key_exists'
      }
      const version = this.#nextVersion()
      sql.exec(
        `INSERT INTO curve_keys (id, name, public_key, second_public_key, channels, labels,
           rate_limit, revoked_at, created_at, updated_at, expires_at, version)
         VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?)`,
        record.id,
        record.name,
        record.publicKey,
        record.secondPublicKey ?? null,
        JSON.stringify(record.channels),
        JSON.stringify(record.labels),
        record.rateLimit ? JSON.stringify(record.rateLimit) : null,
        record.createdAt,
        record.createdAt,
        record.expiresAt ?? null,
        version,
      )
      return this.get(record.id) as KeyRecord
    })
  }

  update(id: string, changes: KeyChanges, now: number): KeyRecord | KeyRefusal {
    return this.#storage.transactionSync(() => {
      const current = this.get(id)
      if (!current) return 'not_found'
      for (const key of [changes.publicKey, changes.secondPublicKey]) {
        if (key && this.#taken(key, id)) return 'key_exists'
      }
      const next: KeyRecord = { ...current }
      if (changes.name !== undefined) next.name = changes.name
      if (changes.publicKey !== undefined) next.publicKey = changes.publicKey
      if (changes.secondPublicKey === null) delete next.secondPublicKey
      else if (changes.secondPublicKey !== undefined) next.secondPublicKey = changes.secondPublicKey
      if (changes.channels !== undefined) next.channels = changes.channels
      if (changes.labels !== undefined) next.labels = changes.labels
      if (changes.rateLimit === null) delete next.rateLimit
      else if (changes.rateLimit !== undefined) next.rateLimit = changes.rateLimit
      if (changes.expiresAt === null) delete next.expiresAt
      else if (changes.expiresAt !== undefined) next.expiresAt = changes.expiresAt
      if (next.secondPublicKey?.every((octet, index) => octet === next.publicKey[index])) {
        delete next.secondPublicKey
      }
      this.#storage.sql.exec(
        `UPDATE curve_keys SET name = ?, public_key = ?, second_public_key = ?, channels = ?,
           labels = ?, rate_limit = ?, expires_at = ?, updated_at = ?, version = ?
         WHERE id = ?`,
        next.name,
        next.publicKey,
        next.secondPublicKey ?? null,
        JSON.stringify(next.channels),
        JSON.stringify(next.labels),
        next.rateLimit ? JSON.stringify(next.rateLimit) : null,
        next.expiresAt ?? null,
        now,
        this.#nextVersion(),
        id,
      )
      return this.get(id) as KeyRecord
    })
  }

  /** Revokes `id` (again: nothing changes). */
  revoke(id: string, now: number): KeyRecord | 'not_found' {
    return this.#storage.transactionSync(() => {
      const current = this.get(id)
      if (!current) return 'not_found'
      if (current.revoked) return current
      this.#storage.sql.exec(
        'UPDATE curve_keys SET revoked_at = ?, updated_at = ?, version = ? WHERE id = ?',
        now,
        now,
        this.#nextVersion(),
        id,
      )
      return this.get(id) as KeyRecord
    })
  }

  delete(id: string): boolean {
    return this.#storage.transactionSync(() => {
      const { sql } = this.#storage
      if (sql.exec('DELETE FROM curve_keys WHERE id = ?', id).rowsWritten === 0) return false
      sql.exec(
        'INSERT OR REPLACE INTO deleted_curve_keys (id, version) VALUES (?, ?)',
        id,
        this.#nextVersion(),
      )
      return true
    })
  }

  /** Every record, in id order. */
  *all(): Generator<KeyRecord> {
    for (const row of this.#storage.sql.exec<KeyRow>('SELECT * FROM curve_keys ORDER BY id')) {
      yield recordOf(row)
    }
  }

  list(query: KeyQuery, now: number): { keys: KeyRecord[]; next?: string } {
    const where: string[] = []
    const args: SqlStorageValue[] = []
    if (query.after !== undefined) {
      where.push('id > ?')
      args.push(query.after)
    }
    if (query.status === 'revoked') where.push('revoked_at IS NOT NULL')
    else if (query.status === 'expired') {
      where.push('revoked_at IS NULL AND expires_at IS NOT NULL AND expires_at <= ?')
      args.push(now)
    } else if (query.status === 'active') {
      where.push('revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)')
      args.push(now)
    }
    if (query.label) {
      where.push("json_extract(labels, '$.' || json_quote(?)) = ?")
      args.push(query.label[0], query.label[1])
    }
    const rows = this.#storage.sql
      .exec<KeyRow>(
        `SELECT * FROM curve_keys ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ORDER BY id LIMIT ?`,
        ...args,
        query.limit + 1,
      )
      .toArray()
    const keys = rows.slice(0, query.limit).map(recordOf)
    const last = keys.at(-1)
    return rows.length > query.limit && last ? { keys, next: last.id } : { keys }
  }
}
