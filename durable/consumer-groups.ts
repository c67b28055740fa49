// A channel's consumer groups in SQLite: each group's whole state (./group-state.ts) in one row
// of `consumer_groups`, rewritten once per pull, ack or extend that changes it, and a row per
// dead letter (the rare path). Several groups each get every message (fan-out), each with its
// own leases and dead letters. Pull semantics as Cloudflare Queues pull consumers and SQS.
// Synchronous SQL only: the Durable Object runs one of these at a time, so two pulls can never
// lease the same message.

import type { ChannelConfig } from './channel-config'
import {
  buryExpired,
  candidates,
  createGroupState,
  type DeadEntry,
  type DeadReason,
  decodeGroupState,
  dropBelow,
  encodeGroupState,
  extend,
  type GroupCounters,
  type GroupStart,
  type GroupState,
  groupLag,
  importQueue,
  type LeaseRef,
  type LogRange,
  lease,
  nextChangeAt,
  nextDeadAt,
  parseLeaseId,
  redrive,
  settle,
} from './group-state'
import type { MessageStore, StoredMessage } from './message-store'
import type { GroupFloor } from './retention'
import type { Sql } from './row-meter'

/** The group today's `/pull`, `/ack`, `/leases/extend` and `/dead-letters` routes use. */
export const DEFAULT_GROUP = 'default'

/** Most consumer groups one channel holds (each is a row, and stats read them all). */
export const MAX_GROUPS = 100

/**
 * How long an unchanged group's activity time may lag in its row: an empty long poll marks the
 * group active without rewriting it each time.
 */
export const ACTIVE_WRITE_INTERVAL_MS = 60_000

/** A message handed to a leased consumer (a large one without its frames, as reads give it). */
export type LeasedMessage = StoredMessage & {
  /** Acks, retries and extends this delivery; valid until the message is leased again. */
  leaseId: string
  /** Deliveries so far, this one included (1 on the first). */
  attempts: number
  /** Milliseconds since the epoch when the lease expires. */
  leaseExpiresAt: number
}

/** A message whose last attempt failed (a large one without its frames, as reads give it). */
export type DeadLetter = StoredMessage & {
  attempts: number
  /** Milliseconds since the epoch when it became a dead letter. */
  deadAt: number
  /** `expired`: the last lease ran out without an ack; `retried`: the last attempt was retried. */
  reason: DeadReason
}

export interface PullOptions {
  batchSize: number
  visibilityTimeoutMs: number
  /** Octets the batch may hold (see `listedBytes`); the first message is leased however large. */
  maxBytes: number
  now: number
}

/** What an ack request did; `unknown` lists the lease ids that are not current leases. */
export interface SettleOutcome {
  acked: number
  retried: number
  deadLettered: number
  unknown: string[]
}

export interface ExtendOutcome {
  extended: number
  /** Lease ids that are not current, unexpired leases. */
  unknown: string[]
}

/** A group's numbers, as stats and the groups list give them. */
export interface GroupInfo {
  name: string
  createdAt: number
  /** Last pull, ack, retry or extend (ms). */
  activeAt: number
  /** Idle past the channel's GROUP_INACTIVE_SECONDS: it no longer holds retention back. */
  inactive: boolean
  /** Every seq at or below it is acked or a dead letter. */
  committedOffset: number
  /** Messages not done yet: pending, leased, and new ones up to the newest. */
  lag: number
  /** Frame octets of the log from the segment holding the oldest message not done. */
  lagBytes: number
  /** The oldest message not done, and when it was stored (ms). */
  oldestUnacked?: { seq: number; storedAt: number }
  available: number
  inFlight: number
  delayed: number
  deadLetters: number
  counters: GroupCounters
}

/** A group's state as loaded, with what its row holds. */
interface Entry {
  state: GroupState
  /** The row's JSON as written last, and the activity time in it. */
  written: string
  writtenActiveAt: number
  /** Dead letters of the group: counted once, then kept up to date. */
  deadLetters: number
  /** The lowest dead letter's seq, if any. */
  lowestDead: number | undefined
}

/** Fails a call on a group that does not exist. */
export class GroupNotFoundError extends Error {
  override readonly name = 'GroupNotFoundError'
  readonly code = 'group_not_found'
}

/**
 * Octets of a group's JSON state past which a call that could grow it (a pull, a retry, an
 * extend, a redrive) is refused: half of what one SQLite value holds (about 2 MB). Runs keep a
 * group's state small (a few runs per pull); only many different retry delays or partial
 * extends over many messages make it this large.
 */
export const MAX_GROUP_STATE_BYTES = 1024 * 1024

/**
 * Rounds of gaps (seqs the schema before segments deleted) one pull passes over before it
 * answers empty, so it never runs long; the next pull goes on from there.
 */
export const MAX_GAP_ROUNDS = 100

/** The cap for a pull: below SQLite's value limit with room to spare. */
const PULL_STATE_BYTES = 1.5 * 1024 * 1024

/** Refuses a call that would grow a group's state past {@link MAX_GROUP_STATE_BYTES}. */
export class GroupStateFullError extends Error {
  override readonly name = 'GroupStateFullError'
  readonly code = 'group_full'
}

/** Refuses a group beyond {@link MAX_GROUPS}. */
export class TooManyGroupsError extends Error {
  override readonly name = 'TooManyGroupsError'
  readonly code = 'too_many_groups'
}

/**
 * The lease ids that parse, with their text and their index in `ids` (entry for entry); the
 * others go to `unknown`, in order.
 */
function parseRefs(
  ids: readonly string[],
  unknown: string[],
): { refs: LeaseRef[]; ids: string[]; at: number[] } {
  const parsed: { refs: LeaseRef[]; ids: string[]; at: number[] } = { refs: [], ids: [], at: [] }
  ids.forEach((id, index) => {
    const ref = parseLeaseId(id)
    if (ref) {
      parsed.refs.push(ref)
      parsed.ids.push(id)
      parsed.at.push(index)
    } else unknown.push(id)
  })
  return parsed
}

/** A random lease number base (below 2^48, so ids stay short). */
function randomLeaseBase(): number {
  const words = crypto.getRandomValues(new Uint32Array(2))
  return ((words[0] as number) % 0x10000) * 0x1_0000_0000 + (words[1] as number)
}

/** SQL access to one channel's consumer groups. Migrate the schema first. */
export class ConsumerGroups {
  readonly #sql: Sql
  readonly #store: MessageStore
  readonly #config: () => ChannelConfig
  readonly #groups = new Map<string, Entry>()

  constructor(sql: Sql, store: MessageStore, config: () => ChannelConfig) {
    this.#sql = sql
    this.#store = store
    this.#config = config
    for (const row of sql.exec<{ name: string; state: string }>(
      'SELECT name, state FROM consumer_groups',
    )) {
      this.#groups.set(row.name, this.#entry(row.name, decodeGroupState(row.state), row.state))
    }
  }

  #entry(name: string, state: GroupState, written: string): Entry {
    const dead = this.#sql
      .exec<{ count: number; lowest: number | null }>(
        'SELECT COUNT(*) AS count, MIN(seq) AS lowest FROM group_dead_letters WHERE group_name = ?',
        name,
      )
      .one()
    return {
      state,
      written,
      writtenActiveAt: state.activeAt,
      deadLetters: dead.count,
      lowestDead: dead.lowest ?? undefined,
    }
  }

  #log(): LogRange {
    return { oldest: this.#store.oldestSeq, newest: this.#store.newestSeq }
  }

  /** Whether any group exists. */
  get size(): number {
    return this.#groups.size
  }

  /**
   * The group `name`; `default` is created (from the earliest message) when `create` is set.
   * @throws GroupNotFoundError for another group that does not exist.
   */
  #get(name: string, now: number, create = false): Entry {
    const found = this.#groups.get(name)
    if (found) return found
    if (!(create && name === DEFAULT_GROUP)) {
      throw new GroupNotFoundError(`no consumer group ${name}`)
    }
    return this.create(name, 'earliest', now).entry
  }

  /**
   * Whether `name` is group `default` before its first pull: it holds no lease nor dead letter
   * yet, and an ack or a read of its dead letters does not create it (only a pull does).
   */
  #absentDefault(name: string): boolean {
    return name === DEFAULT_GROUP && !this.#groups.has(name)
  }

  /**
   * Creates group `name` at `start`, or leaves an existing one as it is.
   * @throws TooManyGroupsError past {@link MAX_GROUPS}.
   */
  create(name: string, start: GroupStart, now: number): { created: boolean; entry: Entry } {
    const found = this.#groups.get(name)
    if (found) return { created: false, entry: found }
    if (this.#groups.size >= MAX_GROUPS) {
      throw new TooManyGroupsError(`a channel holds at most ${MAX_GROUPS} consumer groups`)
    }
    const state = createGroupState({ start, log: this.#log(), now, leaseIdBase: randomLeaseBase() })
    const written = encodeGroupState(state)
    this.#sql.exec('INSERT INTO consumer_groups (name, state) VALUES (?, ?)', name, written)
    // A group of the same name deleted earlier left no dead letters (delete removes them).
    const entry: Entry = {
      state,
      written,
      writtenActiveAt: now,
      deadLetters: 0,
      lowestDead: undefined,
    }
    this.#groups.set(name, entry)
    return { created: true, entry }
  }

  /**
   * Takes over the leased-consumer rows of the schema before segments as group `default`
   * (see `importQueue`), with its dead letters and counters. Run once, in the migration.
   */
  importLegacy(
    rows: readonly { seq: number; attempts: number; visibleAt: number }[],
    dead: readonly { seq: number; attempts: number; deadAt: number; reason: string }[],
    counters: GroupCounters,
    now: number,
  ): void {
    const imported = importQueue({ rows, log: this.#log(), now, leaseIdBase: randomLeaseBase() })
    const state: GroupState = { ...imported, counters }
    const written = encodeGroupState(state)
    this.#sql.exec(
      `INSERT INTO consumer_groups (name, state) VALUES (?, ?)
       ON CONFLICT (name) DO UPDATE SET state = excluded.state`,
      DEFAULT_GROUP,
      written,
    )
    // A letter already there stays as it is: importing twice changes nothing.
    for (const letter of dead) this.#writeDeadLetter(DEFAULT_GROUP, letter, letter.deadAt, 'IGNORE')
    this.#groups.set(DEFAULT_GROUP, this.#entry(DEFAULT_GROUP, state, written))
  }

  /** Deletes group `name` with its dead letters. @returns whether it existed. */
  delete(name: string): boolean {
    if (!this.#groups.has(name)) return false
    this.#sql.exec('DELETE FROM consumer_groups WHERE name = ?', name)
    this.#sql.exec('DELETE FROM group_dead_letters WHERE group_name = ?', name)
    this.#groups.delete(name)
    return true
  }

  /**
   * Writes the group's row if its state changed: not for a change of its activity time alone,
   * unless the row's is {@link ACTIVE_WRITE_INTERVAL_MS} old.
   */
  #save(name: string, entry: Entry, state: GroupState, cap = MAX_GROUP_STATE_BYTES): void {
    entry.state = state
    const recent = state.activeAt - entry.writtenActiveAt < ACTIVE_WRITE_INTERVAL_MS
    // Compared with the activity time of the row, so that alone is no change while recent.
    const compared = encodeGroupState(
      recent ? { ...state, activeAt: entry.writtenActiveAt } : state,
    )
    if (compared === entry.written) return
    const text = recent ? encodeGroupState(state) : compared
    // Past the cap, a call that grew the state is refused: a row over SQLite's value limit could
    // never be written again, and the group would be stuck.
    if (text.length > cap && text.length > entry.written.length) {
      throw new GroupStateFullError(
        `group ${name} tracks too many runs of messages (${text.length} octets of state): ack some, or let leases expire`,
      )
    }
    this.#sql.exec('UPDATE consumer_groups SET state = ? WHERE name = ?', text, name)
    entry.written = text
    entry.writtenActiveAt = state.activeAt
  }

  /** A dead-letter row of group `name`; `onConflict` decides about one already there. */
  #writeDeadLetter(
    name: string,
    letter: { seq: number; attempts: number; reason: string },
    deadAt: number,
    onConflict: 'IGNORE' | 'REPLACE',
  ): void {
    this.#sql.exec(
      `INSERT OR ${onConflict} INTO group_dead_letters (group_name, seq, attempts, dead_at, reason)
       VALUES (?, ?, ?, ?, ?)`,
      name,
      letter.seq,
      letter.attempts,
      deadAt,
      letter.reason,
    )
  }

  #bury(name: string, entry: Entry, dead: readonly DeadEntry[], now: number): void {
    for (const letter of dead) {
      this.#writeDeadLetter(name, letter, now, 'REPLACE')
      entry.deadLetters++
      if (entry.lowestDead === undefined || letter.seq < entry.lowestDead) {
        entry.lowestDead = letter.seq
      }
    }
  }

  /** Retention and expired last attempts, applied to a loaded state before it is used. */
  #settled(name: string, entry: Entry, now: number): GroupState {
    const log = this.#log()
    const dropped = dropBelow(entry.state, log.oldest).state
    const buried = buryExpired(dropped, now, this.#config().maxAttempts)
    this.#bury(name, entry, buried.dead, now)
    return buried.state
  }

  /**
   * Leases up to `batchSize` available messages of group `name` (`default` is created at its
   * first pull), oldest first, within `maxBytes`. Messages whose expired lease was their last
   * attempt become dead letters first.
   * @throws GroupNotFoundError for a group that does not exist.
   */
  pull(name: string, options: PullOptions): LeasedMessage[] {
    const { now } = options
    const entry = this.#get(name, now, true)
    const { maxAttempts } = this.#config()
    let state = this.#settled(name, entry, now)
    for (let round = 0; ; round++) {
      // A long run of gaps is passed over in several pulls: this one keeps what it passed.
      if (round >= MAX_GAP_ROUNDS) {
        this.#save(name, entry, state, PULL_STATE_BYTES)
        return []
      }
      const log = this.#log()
      const offered = candidates(state, { now, maxAttempts, log, max: options.batchSize }).available
      // Fitted by size first: only the bodies the batch carries are read.
      const seqs = this.#store.fitSeqs(
        offered.map((candidate) => candidate.seq),
        options.maxBytes,
      )
      const found = new Map(this.#store.readSeqs(seqs).map((m) => [m.seq, m]))
      // A seq in the range but not stored is a gap the schema before segments left (its
      // retention deleted acked messages anywhere): leased with the rest, then acked at once.
      const leased = lease(state, {
        seqs,
        now,
        visibilityTimeoutMs: options.visibilityTimeoutMs,
        maxAttempts,
        log,
      })
      state = leased.state
      const gaps = leased.leased.filter((delivery) => !found.has(delivery.seq))
      const { leaseNumber } = leased
      if (gaps.length > 0 && leaseNumber !== undefined) {
        state = settle(state, {
          acks: gaps.map((gap) => ({ leaseNumber, seq: gap.seq })),
          retries: [],
          now,
          maxAttempts,
        }).state
      }
      const messages = leased.leased.flatMap((delivery): LeasedMessage[] => {
        const message = found.get(delivery.seq)
        if (!message) return []
        const leaseExpiresAt = leased.expiresAt
        return [
          { ...message, leaseId: delivery.leaseId, attempts: delivery.attempts, leaseExpiresAt },
        ]
      })
      // Only gaps: the messages after them are next.
      if (messages.length > 0 || gaps.length === 0) {
        // Up to a higher cap: a pull of messages already tracked (retried, expired) is how a
        // full group gets them acked and shrinks.
        this.#save(name, entry, state, PULL_STATE_BYTES)
        return messages
      }
    }
  }

  /**
   * Acks and retries (see `settle` in ./group-state.ts) of group `name`, in one row write.
   * Lease ids that are malformed, or of another group, are unknown.
   * @throws GroupNotFoundError for a group that does not exist.
   */
  settle(
    name: string,
    options: { acks: readonly string[]; retries: readonly { leaseId: string; delayMs: number }[] },
    now: number,
  ): SettleOutcome {
    if (this.#absentDefault(name)) {
      const unknown = [...options.acks, ...options.retries.map((retry) => retry.leaseId)]
      return { acked: 0, retried: 0, deadLettered: 0, unknown }
    }
    const entry = this.#get(name, now)
    const { maxAttempts } = this.#config()
    const state = this.#settled(name, entry, now)
    const unknown: string[] = []
    const acks = parseRefs(options.acks, unknown)
    const retried = parseRefs(
      options.retries.map((retry) => retry.leaseId),
      unknown,
    )
    const retries = retried.refs.map((ref, index) => ({
      ...ref,
      delayMs: (options.retries[retried.at[index] as number] as { delayMs: number }).delayMs,
    }))
    const result = settle(state, { acks: acks.refs, retries, now, maxAttempts })
    for (const index of result.unknownAcks) unknown.push(acks.ids[index] as string)
    for (const index of result.unknownRetries) unknown.push(retried.ids[index] as string)
    this.#bury(name, entry, result.deadLettered, now)
    // Acks only shrink what the group tracks; retries may add runs (one per delay).
    this.#save(name, entry, result.state, retries.length === 0 ? Infinity : MAX_GROUP_STATE_BYTES)
    return {
      acked: result.acked,
      retried: result.retried,
      deadLettered: result.deadLettered.length,
      unknown,
    }
  }

  /**
   * Moves the expiry of unexpired leases of group `name` to `now + visibilityTimeoutMs`.
   * @throws GroupNotFoundError for a group that does not exist.
   */
  extend(
    name: string,
    leaseIds: readonly string[],
    visibilityTimeoutMs: number,
    now: number,
  ): ExtendOutcome {
    if (this.#absentDefault(name)) return { extended: 0, unknown: [...leaseIds] }
    const entry = this.#get(name, now)
    const state = this.#settled(name, entry, now)
    const unknown: string[] = []
    const items = parseRefs(leaseIds, unknown)
    const result = extend(state, { items: items.refs, visibilityTimeoutMs, now })
    for (const index of result.unknown) unknown.push(items.ids[index] as string)
    this.#save(name, entry, result.state)
    return { extended: result.extended, unknown }
  }

  /**
   * Buries group `name`'s expired last attempts and forgets what retention deleted, without
   * counting as the group's activity (housekeeping, not a consumer's call), and never refused
   * for the state's size.
   */
  #tidy(name: string, entry: Entry, now: number): void {
    this.#save(
      name,
      entry,
      { ...this.#settled(name, entry, now), activeAt: entry.state.activeAt },
      Infinity,
    )
    this.#forgetGone(name, entry)
  }

  /**
   * Turns every expired lease member at its last attempt, in every group, into a dead letter,
   * and forgets what retention deleted (the alarm's work).
   */
  sweep(now: number): void {
    for (const [name, entry] of this.#groups) {
      this.#tidy(name, entry, now)
    }
  }

  /**
   * Dead letters of group `name` after seq `after`, in seq order, within `limit` and
   * `maxBytes`. Those whose message retention deleted are forgotten.
   * @throws GroupNotFoundError for a group that does not exist.
   */
  deadLetters(
    name: string,
    options: { after: number; limit: number; maxBytes: number },
    now: number,
  ): DeadLetter[] {
    if (this.#absentDefault(name)) return []
    const entry = this.#get(name, now)
    this.#tidy(name, entry, now)
    const rows = this.#sql
      .exec<{ seq: number; attempts: number; dead_at: number; reason: string }>(
        `SELECT seq, attempts, dead_at, reason FROM group_dead_letters
         WHERE group_name = ? AND seq > ? ORDER BY seq LIMIT ?`,
        name,
        options.after,
        options.limit,
      )
      .toArray()
    const byseq = new Map(rows.map((row) => [row.seq, row]))
    const seqs = this.#store.fitSeqs(
      rows.map((row) => row.seq),
      options.maxBytes,
    )
    const messages = this.#store.readSeqs(seqs)
    return messages.map((message) => {
      const row = byseq.get(message.seq) as (typeof rows)[number]
      return {
        ...message,
        attempts: row.attempts,
        deadAt: row.dead_at,
        reason: row.reason as DeadReason,
      }
    })
  }

  /** Deletes the dead-letter rows of messages retention has deleted. */
  #forgetGone(name: string, entry: Entry): void {
    const oldest = this.#store.oldestSeq
    if (entry.lowestDead === undefined || entry.lowestDead >= oldest) return
    const gone = this.#sql
      .exec(
        'DELETE FROM group_dead_letters WHERE group_name = ? AND seq < ? RETURNING seq',
        name,
        oldest,
      )
      .toArray().length
    entry.deadLetters -= gone
    entry.lowestDead = this.#lowestDead(name)
  }

  #lowestDead(name: string): number | undefined {
    return (
      this.#sql
        .exec<{ lowest: number | null }>(
          'SELECT MIN(seq) AS lowest FROM group_dead_letters WHERE group_name = ?',
          name,
        )
        .one().lowest ?? undefined
    )
  }

  /**
   * Sends dead letters of group `name` back (those in `seqs`, or all), attempts reset.
   * @returns the seqs redriven, in order.
   * @throws GroupNotFoundError for a group that does not exist.
   */
  redrive(name: string, seqs: readonly number[] | undefined, now: number): number[] {
    if (this.#absentDefault(name)) return []
    const entry = this.#get(name, now)
    const state = this.#settled(name, entry, now)
    const chosen = (
      seqs === undefined
        ? this.#sql.exec<{ seq: number }>(
            'SELECT seq FROM group_dead_letters WHERE group_name = ? ORDER BY seq',
            name,
          )
        : this.#sql.exec<{ seq: number }>(
            `SELECT seq FROM group_dead_letters
             WHERE group_name = ? AND seq IN (SELECT value FROM json_each(?)) ORDER BY seq`,
            name,
            JSON.stringify(seqs),
          )
    )
      .toArray()
      .map((row) => row.seq)
    const result = redrive(state, chosen, this.#log())
    if (result.redriven.length > 0) {
      this.#sql.exec(
        `DELETE FROM group_dead_letters
         WHERE group_name = ? AND seq IN (SELECT value FROM json_each(?))`,
        name,
        JSON.stringify(result.redriven),
      )
      entry.deadLetters -= result.redriven.length
      entry.lowestDead = this.#lowestDead(name)
    }
    this.#save(name, entry, result.state)
    return result.redriven
  }

  /** Whether group `name` went idle past the channel's inactive threshold at `now`. */
  #inactive(entry: Entry, now: number): boolean {
    const threshold = this.#config().groupInactiveMs
    return threshold > 0 && now - entry.state.activeAt > threshold
  }

  /**
   * What the groups protect from retention: the lowest seq an active group is not done with,
   * or holds as a dead letter. Computed only when retention asks (a full channel).
   */
  floor(now: number): GroupFloor {
    const groups = [...this.#groups.values()].filter((entry) => !this.#inactive(entry, now))
    const log = this.#log()
    return {
      get protectedFrom() {
        let lowest: number | undefined
        for (const entry of groups) {
          const lag = groupLag(entry.state, log, now)
          // A dead letter whose message retention deleted (by age) protects nothing.
          const dead =
            entry.lowestDead !== undefined && entry.lowestDead >= log.oldest
              ? entry.lowestDead
              : undefined
          for (const seq of [lag.committedOffset + 1, dead]) {
            if (seq !== undefined && (lowest === undefined || seq < lowest)) lowest = seq
          }
        }
        return lowest
      },
      notDone: (from: number, through: number) => {
        let most = 0
        for (const entry of this.#groups.values()) {
          const lag = groupLag(entry.state, { oldest: from, newest: through }, now)
          most = Math.max(most, lag.messages)
        }
        return Math.min(most, through - from + 1)
      },
    }
  }

  /** When something in group `name` next becomes available or dies, for a long poll's wait. */
  nextChangeAt(name: string, now: number): number | undefined {
    const entry = this.#groups.get(name)
    return entry ? nextChangeAt(entry.state, now) : undefined
  }

  /** The earliest expiry of a lease member at its last attempt, in any group (for the alarm). */
  nextDeadAt(): number | undefined {
    let earliest: number | undefined
    for (const entry of this.#groups.values()) {
      const at = nextDeadAt(entry.state, this.#config().maxAttempts)
      if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at
    }
    return earliest
  }

  /** Whether group `name` exists. */
  has(name: string): boolean {
    return this.#groups.has(name)
  }

  /** Every group's numbers, by name. */
  list(now: number): GroupInfo[] {
    return [...this.#groups.keys()].sort().map((name) => this.info(name, now) as GroupInfo)
  }

  /** Messages group `name` has not acked (available, leased, delayed); undefined: no group. */
  backlog(name: string, now: number): number | undefined {
    const entry = this.#groups.get(name)
    if (!entry) return undefined
    return groupLag(entry.state, this.#log(), now, this.#config().maxAttempts).messages
  }

  /** Acks counted by the groups there are, summed (for the channel's history). */
  ackedTotal(): number {
    let total = 0
    for (const entry of this.#groups.values()) total += entry.state.counters.acked
    return total
  }

  /** The lag (`lag.messages`) of the first `most` groups by name. */
  lags(now: number, most: number): Record<string, number> {
    const { maxAttempts } = this.#config()
    const log = this.#log()
    // Entries, not assignments: a group may be called `__proto__`.
    return Object.fromEntries(
      [...this.#groups.keys()]
        .sort()
        .slice(0, most)
        .map((name) => {
          const entry = this.#groups.get(name) as Entry
          return [name, groupLag(entry.state, log, now, maxAttempts).messages]
        }),
    )
  }

  /** Group `name`'s numbers, or undefined when it does not exist. */
  info(name: string, now: number): GroupInfo | undefined {
    const entry = this.#groups.get(name)
    if (!entry) return undefined
    const { maxAttempts } = this.#config()
    const log = this.#log()
    const lag = groupLag(entry.state, log, now, maxAttempts)
    const info: GroupInfo = {
      name,
      createdAt: entry.state.createdAt,
      activeAt: entry.state.activeAt,
      inactive: this.#inactive(entry, now),
      committedOffset: lag.committedOffset,
      lag: lag.messages,
      lagBytes: this.#store.bytesFrom(lag.oldestUnacked ?? log.newest + 1),
      available: lag.available,
      inFlight: lag.inFlight,
      delayed: lag.delayed,
      deadLetters: entry.deadLetters,
      counters: entry.state.counters,
    }
    if (lag.oldestUnacked !== undefined) {
      const storedAt = this.#store.storedAtOf(lag.oldestUnacked)
      if (storedAt !== undefined) info.oldestUnacked = { seq: lag.oldestUnacked, storedAt }
    }
    return info
  }
}
