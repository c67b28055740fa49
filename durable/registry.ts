// The registry: one Durable Object (named {@link REGISTRY_NAME}) that holds the fleet's
// credentials in one place:
// - scoped API tokens: their names, scopes, channel patterns, optional bridge binding and
//   expiry, and a SHA-256 of each token's secret, never the token (worker/token-format.ts makes
//   and checks them). The Worker asks it for a token's record at most once per token and
//   5 seconds in each isolate (worker/auth.ts), so a deleted token stops working within 5 s;
// - CURVE client key records (./key-store.ts), and the key feeds: a hibernatable WebSocket per
//   bridge with --key-registry, sent the registry and then each change as it is made
//   (../shared/key-feed.ts).

import { DurableObject } from 'cloudflare:workers'
import type { Scope } from '../shared/api/scopes'
import {
  type FeedKey,
  type FeedMessage,
  MIN_REPORT_SPACING_MS,
  parseBridgeReport,
  patternsOverlap,
} from '../shared/key-feed'
import { z85Decode, z85Encode } from '../shared/z85'
import { KeyReports, type KeyStats, type RefusalRow } from './key-reports'
import {
  type KeyChanges,
  type KeyQuery,
  type KeyRecord,
  type KeyRefusal,
  KeyStore,
} from './key-store'

/** The name of the one registry object (`idFromName`). */
export const REGISTRY_NAME = 'registry'

/**
 * The header with which the Worker tells the registry which channels a feed's credential
 * reaches (JSON patterns; absent: every channel); any a client sends is removed.
 */
export const FEED_CHANNELS_HEADER = 'X-Zmq-Edge-Channels'

/**
 * Headers with which the Worker names a feed's credential (the scoped token's id; absent: a
 * root secret) and its expiry (ms); any a client sends are removed.
 */
export const FEED_CREDENTIAL_HEADER = 'X-Zmq-Edge-Credential'
export const FEED_EXPIRES_HEADER = 'X-Zmq-Edge-Credential-Expires'

/** The hibernation tag of key feed sockets. */
const FEED_TAG = 'key-feed'

/** Largest snapshot page, octets of JSON: well within a WebSocket message (1 MiB in workerd). */
export const FEED_PAGE_BYTES = 256 * 1024

/** Most feeds one scoped token holds open (a bridge holds one), and in all. */
export const FEED_SOCKETS_PER_CREDENTIAL = 64
export const MAX_FEED_SOCKETS = 10_000

/** Close code of a feed whose token was deleted or expired (as ingest sockets, 4003). */
const CLOSE_CREDENTIAL_GONE = 4003

interface FeedAttachment {
  channels: string[]
  expiresAt?: number
  /** When the registry last took a report on this socket. */
  reportedAt?: number
}

function closeFeed(socket: WebSocket, reason: string): void {
  try {
    socket.close(CLOSE_CREDENTIAL_GONE, reason)
  } catch {
    // Closed already.
  }
}

function feedKeyOf(record: KeyRecord): FeedKey {
  return {
    id: record.id,
    name: record.name,
    publicKeys: [record.publicKey, ...(record.secondPublicKey ? [record.secondPublicKey] : [])].map(
      (key) => z85Encode(key),
    ),
    channels: record.channels,
    ...(record.rateLimit ? { rateLimit: record.rateLimit } : {}),
    ...(record.expiresAt === undefined ? {} : { expiresAt: record.expiresAt }),
    revoked: record.revoked,
  }
}

/** The registry object's stub. */
export function registryStub(env: Env): DurableObjectStub<Registry> {
  return env.REGISTRY.get(env.REGISTRY.idFromName(REGISTRY_NAME))
}

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
  /**
   * Who made it: `ADMIN_TOKEN`, or the id of the scoped admin token that did (which sees and
   * deletes only its own, and whose deletion deletes them).
   */
  createdBy: string
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
  created_by: string
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
    createdBy: row.created_by,
  }
}

export class Registry extends DurableObject<Env> {
  #keys: KeyStore | undefined

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    void ctx.blockConcurrencyWhile(async () => {
      this.#keys = new KeyStore(ctx.storage)
      ctx.storage.sql.exec(
        `CREATE TABLE IF NOT EXISTS tokens (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          scopes TEXT NOT NULL,
          channels TEXT NOT NULL,
          bridge_id TEXT,
          created_at INTEGER NOT NULL,
          expires_at INTEGER,
          created_by TEXT NOT NULL,
          secret_hash BLOB NOT NULL
        )`,
      )
      ctx.storage.sql.exec('CREATE INDEX IF NOT EXISTS tokens_by_creator ON tokens (created_by)')
      ctx.storage.sql.exec(
        'CREATE INDEX IF NOT EXISTS tokens_by_bridge ON tokens (bridge_id) WHERE bridge_id IS NOT NULL',
      )
    })
  }

  /**
   * Tokens held, counted once per object and kept since: COUNT(*) reads (and Cloudflare bills) a
   * row per token, which every create would otherwise pay.
   */
  #tokenCount: number | undefined

  #tokens(): number {
    this.#tokenCount ??= this.ctx.storage.sql
      .exec<{ count: number }>('SELECT COUNT(*) AS count FROM tokens')
      .one().count
    return this.#tokenCount
  }

  /** RPC: stores a new token; `full` when the registry holds {@link MAX_TOKENS} already. */
  createToken(token: StoredToken): { ok: true } | { ok: false; reason: 'full' } {
    const { sql } = this.ctx.storage
    const held = this.#tokens()
    if (held >= MAX_TOKENS) return { ok: false, reason: 'full' }
    sql.exec(
      `INSERT INTO tokens
         (id, name, scopes, channels, bridge_id, created_at, expires_at, created_by, secret_hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      token.id,
      token.name,
      JSON.stringify(token.scopes),
      JSON.stringify(token.channels),
      token.bridgeId ?? null,
      token.createdAt,
      token.expiresAt ?? null,
      token.createdBy,
      token.secretHash,
    )
    this.#tokenCount = held + 1
    return { ok: true }
  }

  /** RPC: every token (or those `createdBy` made), oldest first, without secrets. */
  listTokens(createdBy?: string): TokenRecord[] {
    const { sql } = this.ctx.storage
    const rows =
      createdBy === undefined
        ? sql.exec<TokenRow>('SELECT * FROM tokens ORDER BY created_at, id')
        : sql.exec<TokenRow>(
            'SELECT * FROM tokens WHERE created_by = ? ORDER BY created_at, id',
            createdBy,
          )
    return rows.toArray().map(recordOf)
  }

  /** RPC: the token `id` with its secret's hash, for the Worker's check. */
  token(id: string): StoredToken | undefined {
    const row = this.ctx.storage.sql
      .exec<TokenRow>('SELECT * FROM tokens WHERE id = ?', id)
      .toArray()[0]
    return row ? { ...recordOf(row), secretHash: new Uint8Array(row.secret_hash) } : undefined
  }

  /**
   * RPC: whether a token not yet expired is bound to `bridgeId` (then only such a token may use
   * it).
   */
  isBridgeBound(bridgeId: string): boolean {
    return (
      this.ctx.storage.sql
        .exec(
          'SELECT 1 FROM tokens WHERE bridge_id = ? AND (expires_at IS NULL OR expires_at > ?) LIMIT 1',
          bridgeId,
          Date.now(),
        )
        .toArray().length > 0
    )
  }

  get #store(): KeyStore {
    this.#keys ??= new KeyStore(this.ctx.storage)
    return this.#keys
  }

  #reportStore: KeyReports | undefined
  get #reports(): KeyReports {
    this.#reportStore ??= new KeyReports(this.ctx.storage)
    return this.#reportStore
  }

  /** RPC: the refused handshakes bridges reported, the latest first, with their key's record. */
  refusals(limit: number): Array<RefusalRow & { keyId?: string; keyName?: string }> {
    return this.#reports.refusals(limit).map((row) => {
      const record = row.publicKey ? this.#store.byPublicKey(z85Decode(row.publicKey)) : undefined
      return record ? { ...row, keyId: record.id, keyName: record.name } : row
    })
  }

  /** RPC: what bridges reported of these public keys (Z85): connections, traffic, refusals. */
  keyStats(publicKeys: string[]): KeyStats {
    return this.#reports.stats(publicKeys, Date.now())
  }

  /**
   * A bridge's key feed (../shared/key-feed.ts): the Worker has checked its credential and says
   * which one it is (FEED_CREDENTIAL_HEADER, with its expiry) and which channels it reaches. The
   * socket is hibernatable; the snapshot goes at once, in pages of at most FEED_PAGE_BYTES, and
   * each change to a record those channels overlap as it is made. At most FEED_SOCKETS_PER_CREDENTIAL
   * feeds per credential and MAX_FEED_SOCKETS in all (a snapshot reads every record: feeds are
   * not free). A scoped token's feeds close when it is deleted, and once it expired.
   */
  override fetch(request: Request): Response {
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return Response.json(
        { error: { code: 'upgrade_required', message: 'expected a WebSocket upgrade' } },
        { status: 426, headers: { Upgrade: 'websocket' } },
      )
    }
    const header = request.headers.get(FEED_CHANNELS_HEADER)
    const channels = header === null ? ['*'] : (JSON.parse(header) as string[])
    const credential = request.headers.get(FEED_CREDENTIAL_HEADER) ?? 'root'
    const expires = Number(request.headers.get(FEED_EXPIRES_HEADER) ?? Number.NaN)
    const credentialTag = `credential:${credential}`
    // A scoped token holds a few feeds; the root secret a fleet's (bounded in all only).
    if (
      (credential !== 'root' &&
        this.ctx.getWebSockets(credentialTag).length >= FEED_SOCKETS_PER_CREDENTIAL) ||
      this.ctx.getWebSockets(FEED_TAG).length >= MAX_FEED_SOCKETS
    ) {
      return Response.json(
        { error: { code: 'too_many_feeds', message: 'too many key feeds are open; retry later' } },
        { status: 429, headers: { 'Retry-After': '30' } },
      )
    }
    const { 0: client, 1: server } = new WebSocketPair()
    this.ctx.acceptWebSocket(server, [FEED_TAG, credentialTag])
    server.serializeAttachment({
      channels,
      ...(Number.isFinite(expires) ? { expiresAt: expires } : {}),
    } satisfies FeedAttachment)
    const version = this.#store.version
    let page: string[] = []
    let octets = 0
    const flush = (last: boolean) => {
      server.send(
        `{"type":"snapshot","version":${version},"last":${last},"keys":[${page.join(',')}]}`,
      )
      page = []
      octets = 0
    }
    for (const record of this.#store.all()) {
      if (!patternsOverlap(record.channels, channels)) continue
      const text = JSON.stringify(feedKeyOf(record))
      if (octets + text.length > FEED_PAGE_BYTES && page.length > 0) flush(false)
      page.push(text)
      octets += text.length + 1
    }
    flush(true)
    return new Response(null, { status: 101, webSocket: client })
  }

  /**
   * A bridge's report over its feed (../shared/key-feed.ts BridgeReport): its keys' connections
   * and traffic, and the handshakes it refused. At most one a socket per MIN_REPORT_SPACING_MS
   * is taken (a row per key and per refusal reason is written: reports are not free either).
   */
  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    if (typeof message !== 'string' || message.length > 4 * 1024 * 1024) return
    const attachment = ws.deserializeAttachment() as FeedAttachment | null
    const now = Date.now()
    if (!attachment || now - (attachment.reportedAt ?? 0) < MIN_REPORT_SPACING_MS) return
    const report = parseBridgeReport(message)
    if (!report) return
    ws.serializeAttachment({ ...attachment, reportedAt: now })
    this.#reports.record(report, now)
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason)
    } catch {
      // Closed already.
    }
  }

  /**
   * Sends what became of `record` to every feed it concerns: a `change` where its channels
   * reach the feed's, a `delete` where only its channels before did (it left the feed's reach).
   * Feeds of an expired token are closed instead.
   */
  #broadcast(
    version: number,
    record: KeyRecord,
    deleted: boolean,
    before: readonly string[] = record.channels,
  ): void {
    const change = JSON.stringify({
      type: 'change',
      version,
      key: feedKeyOf(record),
    } satisfies FeedMessage)
    const removal = JSON.stringify({ type: 'delete', version, id: record.id } satisfies FeedMessage)
    const now = Date.now()
    for (const socket of this.ctx.getWebSockets(FEED_TAG)) {
      const attachment = socket.deserializeAttachment() as FeedAttachment | null
      if (attachment?.expiresAt !== undefined && attachment.expiresAt <= now) {
        closeFeed(socket, 'its token expired')
        continue
      }
      const reach = attachment?.channels ?? ['*']
      const reaches = !deleted && patternsOverlap(record.channels, reach)
      const reached = patternsOverlap(before, reach)
      if (!reaches && !reached) continue
      try {
        socket.send(reaches ? change : removal)
      } catch {
        // A socket closing: its bridge gets a new snapshot when it reconnects.
      }
    }
  }

  /** RPC: a new key record (its id given); refused when its public key is taken or full. */
  createKey(
    record: Omit<KeyRecord, 'version' | 'revoked' | 'updatedAt' | 'revokedAt'>,
  ): KeyRecord | KeyRefusal {
    const created = this.#store.create(record)
    if (typeof created !== 'string') this.#broadcast(created.version, created, false)
    return created
  }

  /** RPC: the key record `id` (within the caller's channel patterns, when given). */
  key(id: string, within?: string[]): KeyRecord | undefined {
    return this.#store.get(id, within)
  }

  /** RPC: a page of key records (within the caller's channel patterns, when given). */
  listKeys(query: KeyQuery, within?: string[]): { keys: KeyRecord[]; next?: string } {
    return this.#store.list(query, Date.now(), within)
  }

  /**
   * RPC: changes a key record. The caller's reach (`within`) is checked here, in the change's
   * transaction: a record moved out of it meanwhile is not_found, never changed.
   */
  updateKey(id: string, changes: KeyChanges, within?: string[]): KeyRecord | KeyRefusal {
    const before = this.#store.get(id)?.channels
    const updated = this.#store.update(id, changes, Date.now(), within)
    if (typeof updated === 'string') return updated
    if ('unchanged' in updated) return updated.unchanged
    this.#broadcast(updated.version, updated, false, before)
    return updated
  }

  /** RPC: revokes a key record (it stays, listed as revoked, until deleted). */
  revokeKey(id: string, within?: string[]): KeyRecord | 'not_found' {
    const before = this.#store.get(id)
    const revoked = this.#store.revoke(id, Date.now(), within)
    if (typeof revoked !== 'string' && !before?.revoked) {
      this.#broadcast(revoked.version, revoked, false)
    }
    return revoked
  }

  /** RPC: deletes a key record; why not, when it was not (see KeyStore.delete). */
  deleteKey(id: string, within?: string[]): true | 'not_found' | 'revoked' {
    const deleted = this.#store.delete(id, within)
    if (typeof deleted === 'string') return deleted
    this.#broadcast(deleted.version, deleted, true)
    return true
  }

  /**
   * RPC: deletes the token `id` and every token it made, theirs too (when `createdBy` is given,
   * only if that one made it).
   * @returns the tokens deleted; none when there is no such token.
   */
  deleteToken(id: string, createdBy?: string): TokenRecord[] {
    const { sql } = this.ctx.storage
    const first = sql.exec<TokenRow>('SELECT * FROM tokens WHERE id = ?', id).toArray()[0]
    if (!first || (createdBy !== undefined && first.created_by !== createdBy)) return []
    const deleted: TokenRecord[] = []
    this.ctx.storage.transactionSync(() => {
      const pending = [first]
      while (pending.length > 0) {
        const row = pending.pop() as TokenRow
        deleted.push(recordOf(row))
        sql.exec('DELETE FROM tokens WHERE id = ?', row.id)
        pending.push(...sql.exec<TokenRow>('SELECT * FROM tokens WHERE created_by = ?', row.id))
      }
    })
    if (this.#tokenCount !== undefined) this.#tokenCount -= deleted.length
    for (const token of deleted) {
      for (const socket of this.ctx.getWebSockets(`credential:${token.id}`)) {
        closeFeed(socket, 'its token was deleted')
      }
    }
    return deleted
  }
}
