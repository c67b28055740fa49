// The registry's CURVE client keys (a fleet's keys in one place): one row per key record, its
// public key (and a second one during a rotation), the channels it may send to, labels, a rate
// limit, an expiry, and whether it is revoked. Every change takes the next registry version,
// which the key feed carries (../shared/key-feed.ts). A caller may say which channel patterns
// it reaches (`within`): a record outside them is `not_found` to it, checked in the same
// transaction as the change.

import type { RateLimit } from '../shared/api/key-records'
import { patternWithin } from '../shared/channel-pattern'

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
/**
 * Why a change was not made. `revoked`: a revoked record's public keys stay its own (a change
 * of them would free a revoked key to be registered again), and only the root admin deletes it.
 */
export type KeyRefusal = 'not_found' | 'key_exists' | 'full' | 'revoked'

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
    // The registry's version.
    sql.exec(
      'CREATE TABLE IF NOT EXISTS registry_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)',
    )
    sql.exec('INSERT OR IGNORE INTO registry_version (id, version) VALUES (1, 0)')
  }

  /**
   * Records held, counted once per object and kept since: SQLite's COUNT(*) reads (and
   * Cloudflare bills) a row per record, which every create would otherwise pay.
   */
  #count: number | undefined

  #records(): number {
    this.#count ??= this.#storage.sql
      .exec<{ count: number }>('SELECT COUNT(*) AS count FROM curve_keys')
      .one().count
    return this.#count
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

  /** The record `id`, if there is one (and, with `within`, its channels are all within). */
  get(id: string, within?: readonly string[]): KeyRecord | undefined {
    const row = this.#storage.sql
      .exec<KeyRow>('SELECT * FROM curve_keys WHERE id = ?', id)
      .toArray()[0]
    const record = row ? recordOf(row) : undefined
    if (record && within && !record.channels.every((pattern) => patternWithin(pattern, within))) {
      return undefined
    }
    return record
  }

  create(
    record: Omit<KeyRecord, 'version' | 'revoked' | 'updatedAt' | 'revokedAt'>,
  ): KeyRecord | KeyRefusal {
    const held = this.#records()
    const created = this.#storage.transactionSync(() => {
      const { sql } = this.#storage
      if (held >= MAX_KEYS) return 'full'
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
    // Counted once the transaction committed (one that threw changed nothing).
    if (typeof created !== 'string') this.#count = held + 1
    return created
  }

  /** Changes `id`; a change that changes nothing is not written (nor sent to any feed). */
  update(
    id: string,
    changes: KeyChanges,
    now: number,
    within?: readonly string[],
  ): KeyRecord | KeyRefusal | { unchanged: KeyRecord } {
    return this.#storage.transactionSync(() => {
      const current = this.get(id, within)
      if (!current) return 'not_found'
      if (
        current.revoked &&
        (changes.publicKey !== undefined || changes.secondPublicKey !== undefined)
      ) {
        return 'revoked'
      }
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
      if (sameRecord(current, next)) return { unchanged: current }
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
  revoke(id: string, now: number, within?: readonly string[]): KeyRecord | 'not_found' {
    return this.#storage.transactionSync(() => {
      const current = this.get(id, within)
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

  /**
   * Deletes `id`: the record deleted, `not_found` when there is none (within reach), `revoked`
   * for a revoked record and a caller with a reach (a scoped admin: only the root admin frees a
   * revoked key to be registered again).
   */
  delete(id: string, within?: readonly string[]): KeyRecord | 'not_found' | 'revoked' {
    const held = this.#records()
    const deleted = this.#storage.transactionSync(() => {
      const record = this.get(id, within)
      if (!record) return 'not_found'
      if (record.revoked && within !== undefined) return 'revoked'
      this.#storage.sql.exec('DELETE FROM curve_keys WHERE id = ?', id)
      return { ...record, version: this.#nextVersion() }
    })
    if (typeof deleted !== 'string') this.#count = held - 1
    return deleted
  }

  /** The record holding `publicKey` (as its key or its second key). */
  byPublicKey(publicKey: Uint8Array): KeyRecord | undefined {
    const row = this.#storage.sql
      .exec<KeyRow>(
        'SELECT * FROM curve_keys WHERE public_key = ? OR second_public_key = ? LIMIT 1',
        publicKey,
        publicKey,
      )
      .toArray()[0]
    return row ? recordOf(row) : undefined
  }

  /** Every record, in id order. */
  *all(): Generator<KeyRecord> {
    for (const row of this.#storage.sql.exec<KeyRow>('SELECT * FROM curve_keys ORDER BY id')) {
      yield recordOf(row)
    }
  }

  /**
   * A page of records in id order; with `within`, only those whose channels are all within it
   * (scanned on until the page is full), and `next` is always a record of the page.
   */
  list(
    query: KeyQuery,
    now: number,
    within?: readonly string[],
  ): { keys: KeyRecord[]; next?: string } {
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
    const cursor = this.#storage.sql.exec<KeyRow>(
      `SELECT * FROM curve_keys ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`,
      ...args,
    )
    const keys: KeyRecord[] = []
    for (const row of cursor) {
      const record = recordOf(row)
      if (within && !record.channels.every((pattern) => patternWithin(pattern, within))) continue
      if (keys.length === query.limit) {
        // One more in reach: another page follows the last of this one.
        return { keys, next: (keys.at(-1) as KeyRecord).id }
      }
      keys.push(record)
    }
    return { keys }
  }
}

function sameRecord(a: KeyRecord, b: KeyRecord): boolean {
  const bytes = (x?: Uint8Array, y?: Uint8Array) =>
    x === y ||
    (x !== undefined && y !== undefined && x.length === y.length && x.every((o, i) => o === y[i]))
  return (
    a.name === b.name &&
    bytes(a.publicKey, b.publicKey) &&
    bytes(a.secondPublicKey, b.secondPublicKey) &&
    JSON.stringify(a.channels) === JSON.stringify(b.channels) &&
    JSON.stringify(a.labels) === JSON.stringify(b.labels) &&
    JSON.stringify(a.rateLimit) === JSON.stringify(b.rateLimit) &&
    a.expiresAt === b.expiresAt
  )
}
