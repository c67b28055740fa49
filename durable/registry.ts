// The registry: one Durable Object (named {@link REGISTRY_NAME}) that holds the fleet's scoped
// API tokens: their names, scopes, channel patterns, optional bridge binding and expiry, and a
// SHA-256 of each token's secret, never the token (worker/token-format.ts makes and checks
// them). The Worker asks it for a token's record at most once per token and 5 seconds in each
// isolate (worker/auth.ts), so a deleted token stops working within 5 seconds everywhere.

import { DurableObject } from 'cloudflare:workers'
import type { Scope } from '../shared/api/scopes'

/** The name of the one registry object (`idFromName`). */
export const REGISTRY_NAME = 'registry'

/** Most tokens the registry holds: a listing is one answer. */
export const MAX_TOKENS = 1000

/** A token as listed: everything but its secret. */
export interface TokenRecord {
  id: string
  name: string
  scopes: Scope[]
  channels: string[]
  /** The one bridge id an ingest token may connect as. */
  bridgeId?: string
  /** Milliseconds since the epoch. */
  createdAt: number
  expiresAt?: number
}

/** A token as the Worker checks it: with its secret's SHA-256. */
export interface StoredToken extends TokenRecord {
  secretHash: Uint8Array
}

interface TokenRow extends Record<string, SqlStorageValue> {
  id: string
  name: string
  scopes: string
  channels: string
  bridge_id: string | null
  created_at: number
  expires_at: number | null
  secret_hash: ArrayBuffer
}

function recordOf(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    name: row.name,
    scopes: JSON.parse(row.scopes) as Scope[],
    channels: JSON.parse(row.channels) as string[],
    ...(row.bridge_id === null ? {} : { bridgeId: row.bridge_id }),
    createdAt: row.created_at,
    ...(row.expires_at === null ? {} : { expiresAt: row.expires_at }),
  }
}

export class Registry extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    void ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        `CREATE TABLE IF NOT EXISTS tokens (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          scopes TEXT NOT NULL,
          channels TEXT NOT NULL,
          bridge_id TEXT,
          created_at INTEGER NOT NULL,
          expires_at INTEGER,
          secret_hash BLOB NOT NULL
        )`,
      )
      ctx.storage.sql.exec(
        'CREATE INDEX IF NOT EXISTS tokens_by_bridge ON tokens (bridge_id) WHERE bridge_id IS NOT NULL',
      )
    })
  }

  /** RPC: stores a new token; `full` when the registry holds {@link MAX_TOKENS} already. */
  createToken(token: StoredToken): { ok: true } | { ok: false; reason: 'full' } {
    const { sql } = this.ctx.storage
    const { count } = sql.exec<{ count: number }>('SELECT COUNT(*) AS count FROM tokens').one()
    if (count >= MAX_TOKENS) return { ok: false, reason: 'full' }
    sql.exec(
      `INSERT INTO tokens (id, name, scopes, channels, bridge_id, created_at, expires_at, secret_hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      token.id,
      token.name,
      JSON.stringify(token.scopes),
      JSON.stringify(token.channels),
      token.bridgeId ?? null,
      token.createdAt,
      token.expiresAt ?? null,
      token.secretHash,
    )
    return { ok: true }
  }

  /** RPC: every token, oldest first, without secrets. */
  listTokens(): TokenRecord[] {
    return this.ctx.storage.sql
      .exec<TokenRow>('SELECT * FROM tokens ORDER BY created_at, id')
      .toArray()
      .map(recordOf)
  }

  /** RPC: the token `id` with its secret's hash, for the Worker's check. */
  token(id: string): StoredToken | undefined {
    const row = this.ctx.storage.sql
      .exec<TokenRow>('SELECT * FROM tokens WHERE id = ?', id)
      .toArray()[0]
    return row ? { ...recordOf(row), secretHash: new Uint8Array(row.secret_hash) } : undefined
  }

  /** RPC: whether any token is bound to `bridgeId` (then only such a token may use it). */
  isBridgeBound(bridgeId: string): boolean {
    return (
      this.ctx.storage.sql
        .exec('SELECT 1 FROM tokens WHERE bridge_id = ? LIMIT 1', bridgeId)
        .toArray().length > 0
    )
  }

  /** RPC: deletes the token `id`; false when there is none. */
  deleteToken(id: string): boolean {
    const cursor = this.ctx.storage.sql.exec('DELETE FROM tokens WHERE id = ?', id)
    return cursor.rowsWritten > 0
  }
}
