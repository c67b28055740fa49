// Leased consumption of a channel, like Cloudflare Queues pull consumers and SQS: the queue
// table holds every message not yet acked; a pull leases available ones for a visibility
// timeout; an ack removes a message from the queue (never from the log); a retry or an expired
// lease makes it available again, and after the last attempt it moves to dead letters.
// Synchronous SQL only: the Durable Object runs one of these at a time, so two pulls can never
// lease the same message.

import { addCounter, Counter, readCounters } from './counters'
import { fitPage, type MessageStore, type StoredMessage } from './message-store'

/** A message handed to a leased consumer (a large one without its frames, as reads give it). */
export type LeasedMessage = StoredMessage & {
  /** Acks, retries and extends this delivery; valid until the message is leased again. */
  leaseId: string
  /** Deliveries so far, this one included (1 on the first). */
  attempts: number
  /** Milliseconds since the epoch when the lease expires. */
  leaseExpiresAt: number
}

/** Why a message became a dead letter. */
export type DeadLetterReason = 'expired' | 'retried'

/** A message whose last attempt failed (a large one without its frames, as reads give it). */
export type DeadLetter = StoredMessage & {
  attempts: number
  /** Milliseconds since the epoch when it became a dead letter. */
  deadAt: number
  /** `expired`: the last lease ran out without an ack; `retried`: the last attempt was retried. */
  reason: DeadLetterReason
}

export interface PullOptions {
  batchSize: number
  visibilityTimeoutMs: number
  /** Octets the batch may hold (see `listedBytes`); the first message is leased however large. */
  maxBytes: number
  /** Deliveries before a message becomes a dead letter. */
  maxAttempts: number
  now: number
}

export interface SettleOptions {
  acks: readonly string[]
  retries: readonly { leaseId: string; delayMs: number }[]
  maxAttempts: number
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

export interface QueueStats {
  /** Messages not acked yet (dead letters excluded). */
  depth: number
  /** Messages a pull could lease now. */
  available: number
  /** Messages leased, the lease not expired. */
  inFlight: number
  /** Messages retried with a delay that has not passed. */
  delayed: number
  deadLetters: number
}

interface CandidateRow extends Record<string, SqlStorageValue> {
  seq: number
  attempts: number
  lease_id: string | null
  size: number
  frame_count: number
}

/** SQL access to one channel's leased-consumer state. Migrate the schema first. */
export class LeaseQueue {
  readonly #storage: DurableObjectStorage
  readonly #store: MessageStore
  readonly #newLeaseId: () => string

  constructor(
    storage: DurableObjectStorage,
    store: MessageStore,
    newLeaseId: () => string = () => crypto.randomUUID(),
  ) {
    this.#storage = storage
    this.#store = store
    this.#newLeaseId = newLeaseId
  }

  /**
   * Leases up to `batchSize` available messages, oldest first, within `maxBytes`. Messages
   * whose expired lease was their last attempt become dead letters first.
   */
  pull(options: PullOptions): LeasedMessage[] {
    const { sql } = this.#storage
    const { now, maxAttempts } = options
    return this.#storage.transactionSync(() => {
      this.#sweep(now, maxAttempts)
      const candidates = sql
        .exec<CandidateRow>(
          `SELECT q.seq, q.attempts, q.lease_id, m.size, m.frame_count
           FROM queue q JOIN messages m ON m.seq = q.seq
           WHERE q.visible_at <= ? ORDER BY q.seq LIMIT ?`,
          now,
          options.batchSize,
        )
        .toArray()
      const chosen = fitPage(candidates, options.maxBytes)
      if (chosen.length === 0) return []
      const expiresAt = now + options.visibilityTimeoutMs
      const leases = new Map<number, { leaseId: string; attempts: number }>()
      let redelivered = 0
      for (const row of chosen) {
        const leaseId = this.#newLeaseId()
        if (row.lease_id !== null) redelivered++
        sql.exec(
          'UPDATE queue SET lease_id = ?, visible_at = ?, attempts = attempts + 1 WHERE seq = ?',
          leaseId,
          expiresAt,
          row.seq,
        )
        leases.set(row.seq, { leaseId, attempts: row.attempts + 1 })
      }
      addCounter(sql, Counter.LEASED, chosen.length)
      addCounter(sql, Counter.REDELIVERED, redelivered)
      return this.#store.readSeqs([...leases.keys()]).map((message) => {
        const lease = leases.get(message.seq) as { leaseId: string; attempts: number }
        return { ...message, ...lease, leaseExpiresAt: expiresAt }
      })
    })
  }

  /**
   * Acks (removes from the queue) and retries (available again after `delayMs`, or a dead
   * letter when that was the last attempt). A lease id counts while it is the message's
   * current lease, expired or not: nobody else holds the message until it is leased again.
   * Acks are applied before retries.
   */
  settle(options: SettleOptions): SettleOutcome {
    const { sql } = this.#storage
    const { now, maxAttempts } = options
    return this.#storage.transactionSync(() => {
      const outcome: SettleOutcome = { acked: 0, retried: 0, deadLettered: 0, unknown: [] }
      for (const leaseId of options.acks) {
        const removed = sql
          .exec('DELETE FROM queue WHERE lease_id = ? RETURNING seq', leaseId)
          .toArray()
        if (removed.length > 0) outcome.acked++
        else outcome.unknown.push(leaseId)
      }
      addCounter(sql, Counter.QUEUE_MESSAGES, -outcome.acked)
      for (const { leaseId, delayMs } of options.retries) {
        const row = sql
          .exec<{ seq: number; attempts: number }>(
            'SELECT seq, attempts FROM queue WHERE lease_id = ?',
            leaseId,
          )
          .toArray()[0]
        if (!row) {
          outcome.unknown.push(leaseId)
        } else if (row.attempts >= maxAttempts) {
          this.#bury(row.seq, row.attempts, now, 'retried')
          outcome.deadLettered++
        } else {
          sql.exec(
            'UPDATE queue SET lease_id = NULL, visible_at = ? WHERE seq = ?',
            now + delayMs,
            row.seq,
          )
          outcome.retried++
        }
      }
      addCounter(sql, Counter.ACKED, outcome.acked)
      addCounter(sql, Counter.RETRIED, outcome.retried)
      return outcome
    })
  }

  /** Moves the expiry of unexpired leases to `now + visibilityTimeoutMs`. */
  extend(leaseIds: readonly string[], visibilityTimeoutMs: number, now: number): ExtendOutcome {
    const { sql } = this.#storage
    return this.#storage.transactionSync(() => {
      const outcome: ExtendOutcome = { extended: 0, unknown: [] }
      for (const leaseId of leaseIds) {
        const updated = sql
          .exec(
            'UPDATE queue SET visible_at = ? WHERE lease_id = ? AND visible_at > ? RETURNING seq',
            now + visibilityTimeoutMs,
            leaseId,
            now,
          )
          .toArray()
        if (updated.length > 0) outcome.extended++
        else outcome.unknown.push(leaseId)
      }
      return outcome
    })
  }

  /**
   * Turns every message whose last attempt's lease has expired into a dead letter.
   * @returns how many.
   */
  sweep(now: number, maxAttempts: number): number {
    return this.#storage.transactionSync(() => this.#sweep(now, maxAttempts))
  }

  #sweep(now: number, maxAttempts: number): number {
    const { sql } = this.#storage
    const dead = sql
      .exec<{ seq: number }>(
        `INSERT INTO dead_letters (seq, attempts, dead_at, reason)
         SELECT seq, attempts, ?, 'expired' FROM queue
         WHERE lease_id IS NOT NULL AND visible_at <= ? AND attempts >= ?
         RETURNING seq`,
        now,
        now,
        maxAttempts,
      )
      .toArray()
      .map((row) => row.seq)
    if (dead.length === 0) return 0
    sql.exec(
      'DELETE FROM queue WHERE seq IN (SELECT value FROM json_each(?))',
      JSON.stringify(dead),
    )
    addCounter(sql, Counter.DEAD_LETTERED, dead.length)
    addCounter(sql, Counter.QUEUE_MESSAGES, -dead.length)
    addCounter(sql, Counter.DEAD_LETTER_MESSAGES, dead.length)
    return dead.length
  }

  #bury(seq: number, attempts: number, now: number, reason: DeadLetterReason): void {
    const { sql } = this.#storage
    sql.exec('DELETE FROM queue WHERE seq = ?', seq)
    sql.exec(
      'INSERT INTO dead_letters (seq, attempts, dead_at, reason) VALUES (?, ?, ?, ?)',
      seq,
      attempts,
      now,
      reason,
    )
    addCounter(sql, Counter.DEAD_LETTERED, 1)
    addCounter(sql, Counter.QUEUE_MESSAGES, -1)
    addCounter(sql, Counter.DEAD_LETTER_MESSAGES, 1)
  }

  /** The earliest time after `now` at which a message becomes available, if any. */
  nextAvailableAt(now: number): number | undefined {
    const row = this.#storage.sql
      .exec<{ at: number | null }>(
        'SELECT MIN(visible_at) AS at FROM queue WHERE visible_at > 0 AND visible_at > ?',
        now,
      )
      .one()
    return row.at ?? undefined
  }

  /** The earliest expiry of a lease that is its message's last attempt (for the alarm). */
  nextDeadLetterAt(maxAttempts: number): number | undefined {
    const row = this.#storage.sql
      .exec<{ at: number | null }>(
        'SELECT MIN(visible_at) AS at FROM queue WHERE lease_id IS NOT NULL AND attempts >= ?',
        maxAttempts,
      )
      .one()
    return row.at ?? undefined
  }

  /** Dead letters after seq `after`, in seq order, within `limit` and `maxBytes`. */
  deadLetters(options: { after: number; limit: number; maxBytes: number }): DeadLetter[] {
    const rows = this.#storage.sql
      .exec<{
        seq: number
        attempts: number
        dead_at: number
        reason: string
        size: number
        frame_count: number
      }>(
        `SELECT d.seq, d.attempts, d.dead_at, d.reason, m.size, m.frame_count
         FROM dead_letters d JOIN messages m ON m.seq = d.seq
         WHERE d.seq > ? ORDER BY d.seq LIMIT ?`,
        options.after,
        options.limit,
      )
      .toArray()
    const page = new Map(fitPage(rows, options.maxBytes).map((row) => [row.seq, row]))
    return this.#store.readSeqs([...page.keys()]).map((message) => {
      const row = page.get(message.seq) as (typeof rows)[number]
      return {
        ...message,
        attempts: row.attempts,
        deadAt: row.dead_at,
        reason: row.reason as DeadLetterReason,
      }
    })
  }

  /**
   * Sends dead letters back to the queue with their attempts reset: those in `seqs`, or all.
   * @returns the seqs redriven, in order.
   */
  redrive(seqs?: readonly number[]): number[] {
    const { sql } = this.#storage
    return this.#storage.transactionSync(() => {
      const chosen =
        seqs === undefined
          ? 'SELECT seq FROM dead_letters WHERE true'
          : 'SELECT seq FROM dead_letters WHERE seq IN (SELECT value FROM json_each(?))'
      const bindings = seqs === undefined ? [] : [JSON.stringify(seqs)]
      const moved = sql
        .exec<{ seq: number }>(`INSERT INTO queue (seq) ${chosen} RETURNING seq`, ...bindings)
        .toArray()
        .map((row) => row.seq)
        .sort((a, b) => a - b)
      if (moved.length > 0) {
        sql.exec(
          'DELETE FROM dead_letters WHERE seq IN (SELECT value FROM json_each(?))',
          JSON.stringify(moved),
        )
      }
      addCounter(sql, Counter.REDRIVEN, moved.length)
      addCounter(sql, Counter.QUEUE_MESSAGES, moved.length)
      addCounter(sql, Counter.DEAD_LETTER_MESSAGES, -moved.length)
      return moved
    })
  }

  stats(now: number): QueueStats {
    const { sql } = this.#storage
    // Depth and dead letters are running counters (COUNT(*) would read, and bill, every row);
    // the rest reads only rows not yet visible, through queue_by_visible_at (the
    // `visible_at > 0` term lets SQLite use that partial index).
    const counters = readCounters(sql)
    const depth = counters[Counter.QUEUE_MESSAGES]
    const pending = sql
      .exec<{ in_flight: number; delayed: number }>(
        `SELECT COALESCE(SUM(lease_id IS NOT NULL), 0) AS in_flight,
           COALESCE(SUM(lease_id IS NULL), 0) AS delayed
         FROM queue WHERE visible_at > 0 AND visible_at > ?`,
        now,
      )
      .one()
    const queue = { depth, in_flight: pending.in_flight, delayed: pending.delayed }
    const deadLetters = counters[Counter.DEAD_LETTER_MESSAGES]
    return {
      depth: queue.depth,
      available: queue.depth - queue.in_flight - queue.delayed,
      inFlight: queue.in_flight,
      delayed: queue.delayed,
      deadLetters,
    }
  }
}
