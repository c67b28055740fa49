// The directory of channels: one Durable Object (named {@link DIRECTORY_NAME}) that each channel's
// object tells about itself (on its first bridge socket or batch, again at most daily), so the
// Worker can list the channels, which are otherwise separate objects nobody can enumerate
// (GET /v1/channels, the dashboard).

import { DurableObject } from 'cloudflare:workers'

/** The name of the one directory object (`idFromName`). */
export const DIRECTORY_NAME = 'channels'

/** Longest channel name the directory accepts (the Worker allows 64). */
const MAX_NAME_LENGTH = 64

/** Most channels one {@link ChannelDirectory.list} call returns. */
export const MAX_DIRECTORY_PAGE = 1000

/** One channel the directory knows. */
export interface DirectoryEntry {
  name: string
  /** Milliseconds since the epoch when the channel first told the directory about itself. */
  firstSeenAt: number
  /** When it last did (at most once a day, when the channel has a bridge or a batch). */
  lastSeenAt: number
}

/** A page of the directory, in name order, and how many channels match in all. */
export interface DirectoryPage {
  channels: DirectoryEntry[]
  total: number
}

interface EntryRow extends Record<string, SqlStorageValue> {
  name: string
  first_seen_at: number
  last_seen_at: number
}

/**
 * Every channel that has had a bridge connect or a batch stored since the directory exists.
 * Its only table is created here; a later change would add numbered migrations as
 * ./schema.ts does for the channels.
 */
export class ChannelDirectory extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    void ctx.blockConcurrencyWhile(async () => {
      ctx.storage.sql.exec(
        `CREATE TABLE IF NOT EXISTS channels (
          name TEXT PRIMARY KEY,
          first_seen_at INTEGER NOT NULL,
          last_seen_at INTEGER NOT NULL
        )`,
      )
    })
  }

  /**
   * RPC: records that `name` exists (again). Idempotent.
   * @throws RangeError for an empty name or one longer than 64 characters.
   */
  register(name: string): void {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_NAME_LENGTH) {
      throw new RangeError(`bad channel name: ${JSON.stringify(name)}`)
    }
    const now = Date.now()
    this.ctx.storage.sql.exec(
      `INSERT INTO channels (name, first_seen_at, last_seen_at) VALUES (?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at`,
      name,
      now,
      now,
    )
  }

  /**
   * RPC: the first `limit` channels in name order whose name starts with `prefix` (all when
   * empty), and how many match.
   * @throws RangeError when `limit` is not an integer from 1 to {@link MAX_DIRECTORY_PAGE}.
   */
  list(options: { limit: number; prefix?: string }): DirectoryPage {
    const { limit, prefix = '' } = options
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_DIRECTORY_PAGE) {
      throw new RangeError(`bad limit: ${limit}`)
    }
    const { sql } = this.ctx.storage
    const where = 'substr(name, 1, length(?1)) = ?1'
    const channels = sql
      .exec<EntryRow>(
        `SELECT name, first_seen_at, last_seen_at FROM channels WHERE ${where}
         ORDER BY name LIMIT ?2`,
        prefix,
        limit,
      )
      .toArray()
      .map((row) => ({
        name: row.name,
        firstSeenAt: row.first_seen_at,
        lastSeenAt: row.last_seen_at,
      }))
    const { total } = sql
      .exec<{ total: number }>(`SELECT COUNT(*) AS total FROM channels WHERE ${where}`, prefix)
      .one()
    return { channels, total }
  }
}

/** The directory object's stub. */
export function directoryStub(env: Env): DurableObjectStub<ChannelDirectory> {
  return env.DIRECTORY.get(env.DIRECTORY.idFromName(DIRECTORY_NAME))
}
