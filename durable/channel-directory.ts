// The directory of channels: one Durable Object (named {@link DIRECTORY_NAME}) that each channel's
// object tells about itself (on its first bridge socket or batch, again at most daily), so the
// Worker can list the channels, which are otherwise separate objects nobody can enumerate
// (GET /v1/channels, the dashboard).

import { DurableObject } from 'cloudflare:workers'
import { isChannelName } from '../shared/channel-name'
import { isChannelPattern, MAX_CHANNEL_PATTERNS } from '../shared/channel-pattern'

/** The name of the one directory object (`idFromName`). */
export const DIRECTORY_NAME = 'channels'

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

/** A page of the directory, and how many channels match in all (before the cursor too). */
export interface DirectoryPage {
  channels: DirectoryEntry[]
  total: number
  /** The `after` of the next page, when more channels match after this one. */
  next?: string
}

/** What {@link ChannelDirectory.list} lists. */
export interface DirectoryQuery {
  limit: number
  /** Only names that start with this (all when empty or absent). */
  prefix?: string
  /** The cursor: only channels after this one (the `next` of the previous page). */
  after?: string
  /** `name` (the default), or `recent`: the last seen first, then by name. */
  order?: 'name' | 'recent'
  /**
   * Only names these channel patterns reach (../shared/channel-pattern.ts; a scoped token's),
   * at most MAX_CHANNEL_PATTERNS of them.
   */
  patterns?: string[]
}

/** Above every character of a channel name (they are all ASCII below DEL). */
const ABOVE_NAMES = String.fromCharCode(0x7f)

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
      // For order=recent: the newest first without sorting the table.
      ctx.storage.sql.exec(
        'CREATE INDEX IF NOT EXISTS channels_last_seen ON channels (last_seen_at DESC, name)',
      )
    })
  }

  /**
   * RPC: records that `name` exists (again). Idempotent.
   * @throws RangeError for anything but a channel name (../shared/channel-name.ts).
   */
  register(name: string): void {
    if (typeof name !== 'string' || !isChannelName(name)) {
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
   * RPC: the first `limit` channels whose name starts with `prefix` (all when empty), after
   * the cursor `after`, in name order or the most recently seen first; how many match `prefix`
   * in all; and `next`, the cursor of the following page, when more follow. The prefix is a
   * range of the primary key (names are ASCII below 0x7f), so it reads only the matching rows.
   * With order `recent` the cursor is the last channel of the previous page; a channel seen
   * again meanwhile moves to the front, so a walk may miss or repeat it.
   * @throws RangeError when `limit` is not an integer from 1 to {@link MAX_DIRECTORY_PAGE}.
   */
  list(options: DirectoryQuery): DirectoryPage {
    const { limit, prefix = '', after, order = 'name', patterns } = options
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_DIRECTORY_PAGE) {
      throw new RangeError(`bad limit: ${limit}`)
    }
    const { sql } = this.ctx.storage
    const matching: string[] = []
    const matchingArgs: string[] = []
    if (prefix !== '') {
      matching.push('name >= ? AND name < ?')
      matchingArgs.push(prefix, prefix + ABOVE_NAMES)
    }
    if (patterns !== undefined) {
      if (patterns.length > MAX_CHANNEL_PATTERNS || !patterns.every(isChannelPattern)) {
        throw new RangeError('bad channel patterns')
      }
      // Each a range of the primary key, as the prefix is; no pattern: no channel.
      const ranges = patterns.map((pattern) => {
        if (!pattern.endsWith('*')) {
          matchingArgs.push(pattern)
          return 'name = ?'
        }
        matchingArgs.push(pattern.slice(0, -1), pattern.slice(0, -1) + ABOVE_NAMES)
        return '(name >= ? AND name < ?)'
      })
      matching.push(ranges.length === 0 ? 'false' : `(${ranges.join(' OR ')})`)
    }
    const where = [...matching]
    const whereArgs: SqlStorageValue[] = [...matchingArgs]
    if (after !== undefined && order === 'name') {
      where.push('name > ?')
      whereArgs.push(after)
    } else if (after !== undefined) {
      // After the cursor's row in (last_seen_at DESC, name) order; none when it is unknown.
      where.push(
        `(last_seen_at < (SELECT last_seen_at FROM channels WHERE name = ?)
          OR (last_seen_at = (SELECT last_seen_at FROM channels WHERE name = ?) AND name > ?))`,
      )
      whereArgs.push(after, after, after)
    }
    const clause = (parts: string[]) => (parts.length === 0 ? '' : `WHERE ${parts.join(' AND ')}`)
    const sort = order === 'name' ? 'name' : 'last_seen_at DESC, name'
    // One row more than asked: whether another page follows.
    const rows = sql
      .exec<EntryRow>(
        `SELECT name, first_seen_at, last_seen_at FROM channels ${clause(where)}
         ORDER BY ${sort} LIMIT ?`,
        ...whereArgs,
        limit + 1,
      )
      .toArray()
    const channels = rows.slice(0, limit).map((row) => ({
      name: row.name,
      firstSeenAt: row.first_seen_at,
      lastSeenAt: row.last_seen_at,
    }))
    const { total } = sql
      .exec<{ total: number }>(
        `SELECT COUNT(*) AS total FROM channels ${clause(matching)}`,
        ...matchingArgs,
      )
      .one()
    const last = channels.at(-1)
    return rows.length > limit && last ? { channels, total, next: last.name } : { channels, total }
  }
}

/** The directory object's stub. */
export function directoryStub(env: Env): DurableObjectStub<ChannelDirectory> {
  return env.DIRECTORY.get(env.DIRECTORY.idFromName(DIRECTORY_NAME))
}
