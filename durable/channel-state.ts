// A channel's running totals and its batch deduplication state, kept in memory and written
// lazily: Cloudflare bills every row written, so a batch writes its segment and nothing else.
// What a batch changes can be rebuilt from the segments stored since the last write (each
// carries its session and batch number), so a crash loses nothing that matters; the counters of
// other events (refusals, rows read) persist at most a minute late.

import type { RelaySession } from '../shared/relay-protocol'
import { ChannelHistory, type HistoryValues } from './channel-history'
import { type BatchCounter, BatchCounters, type EventCounter } from './counters'
import type { RowCounts, Sql } from './row-meter'

/** Longest time the persisted totals lag the ones in memory while the object runs. */
export const FLUSH_INTERVAL_MS = 60_000

/**
 * Segments stored after the last write beyond which the state is written anyway: they are what
 * an object waking up reads to rebuild it (small columns, no data), so this bounds that read.
 * At a minute's worth of batches, only a channel taking over 1,600 batches a second reaches it.
 */
export const MAX_UNFLUSHED_SEGMENTS = 100_000

/** What the `channel_state` row holds (JSON). */
interface PersistedState {
  /** Every segment with a first seq up to this one is counted in `counters` and `sessions`. */
  flushedThrough: number
  /** The highest seq ever given (seqs are never reused, even after the log is emptied). */
  lastSeq: number
  counters: Partial<Record<BatchCounter | EventCounter, number>>
  rows: RowCounts
  /** When it was written (ms): an object that wakes after it counts the minute from then. */
  flushedAt?: number
  /** The last hour's samples (./channel-history.ts), oldest first. */
  history?: unknown
}

interface SessionEntry {
  session: RelaySession
  last: number
  updatedAt: number
  /** The value in bridge_sessions, when there is a row. */
  persisted?: number
}

/** A segment as the state needs it: what it adds to the counters and to its session. */
export interface SegmentSummary {
  firstSeq: number
  lastSeq: number
  count: number
  storedAt: number
  /** On the last segment of a relay batch only. */
  session?: RelaySession
  batchSeq?: number
}

function key(bridgeId: string, epoch: number): string {
  return `${epoch}/${bridgeId}`
}

/** The channel's counters and sessions, in memory, written to SQLite lazily. */
export class ChannelState {
  readonly #sql: Sql
  readonly #rows: () => RowCounts
  #counters: Record<BatchCounter | EventCounter, number>
  readonly #sessions = new Map<string, SessionEntry>()
  #flushedThrough = 0
  #lastSeq = 0
  #unflushedSegments = 0
  #flushedAt = 0
  #dirty = false
  /** The billed rows as last recorded: in the state's row, or a newer segment's. */
  #recoveredRows: RowCounts = { rowsRead: 0, rowsWritten: 0 }
  /** The last hour, minute by minute, written with the rest. */
  readonly history: ChannelHistory
  /**
   * What the history samples, now (set by the channel object once its groups are built): a
   * sample goes with each write, so a restart counts from the last one.
   */
  historyValues: ((now: number) => HistoryValues) | undefined

  /**
   * Reads the persisted state and the segments stored after it.
   * @param rows the rows metered so far (persisted with the rest).
   */
  constructor(sql: Sql, rows: () => RowCounts) {
    this.#sql = sql
    this.#rows = rows
    this.#counters = BatchCounters.zero()
    const row = sql
      .exec<{ data: string }>('SELECT data FROM channel_state WHERE id = 1')
      .toArray()[0]
    const persisted = row ? (JSON.parse(row.data) as PersistedState) : undefined
    if (persisted) {
      for (const [name, value] of Object.entries(persisted.counters)) {
        if (name in this.#counters) this.#counters[name as BatchCounter] = value ?? 0
      }
      this.#flushedThrough = persisted.flushedThrough
      this.#lastSeq = persisted.lastSeq
    }
    this.history = new ChannelHistory(persisted?.history)
    // From the last write, not from this start: an object evicted within a minute of each start
    // (hibernation) would otherwise never find the state due.
    this.#flushedAt = persisted?.flushedAt ?? 0
    // Batches stored since: their segments say what they added.
    for (const segment of sql.exec<{
      first_seq: number
      last_seq: number
      stored_at: number
      bridge_id: string | null
      epoch: number | null
      batch_seq: number | null
      rows_read: number | null
      rows_written: number | null
    }>(
      `SELECT first_seq, last_seq, stored_at, bridge_id, epoch, batch_seq, rows_read, rows_written
       FROM segments WHERE first_seq > ? ORDER BY first_seq`,
      this.#flushedThrough,
    )) {
      const summary: SegmentSummary = {
        firstSeq: segment.first_seq,
        lastSeq: segment.last_seq,
        count: segment.last_seq - segment.first_seq + 1,
        storedAt: segment.stored_at,
      }
      if (segment.bridge_id !== null && segment.epoch !== null && segment.batch_seq !== null) {
        summary.session = { bridgeId: segment.bridge_id, epoch: segment.epoch }
        summary.batchSeq = segment.batch_seq
      }
      this.#countSegment(summary)
      if (segment.rows_read !== null && segment.rows_written !== null) {
        this.#recoveredRows = { rowsRead: segment.rows_read, rowsWritten: segment.rows_written }
      }
    }
    if (persisted && persisted.rows.rowsWritten > this.#recoveredRows.rowsWritten) {
      this.#recoveredRows = persisted.rows
    }
    this.#dirty = this.#unflushedSegments > 0
    return
  }

  /** The rows metered before this object started, to start the meter from. */
  get recoveredRows(): RowCounts {
    return this.#recoveredRows
  }

  /** The highest seq ever given; the next message gets the one after. */
  get lastSeq(): number {
    return this.#lastSeq
  }

  /** Raises the highest seq given (a log of another origin, e.g. rows of an older schema). */
  reserveThrough(seq: number): void {
    if (seq <= this.#lastSeq) return
    this.#lastSeq = seq
    this.#dirty = true
  }

  get counters(): Readonly<Record<BatchCounter | EventCounter, number>> {
    return this.#counters
  }

  count(name: EventCounter, delta: number): void {
    if (delta === 0) return
    this.#counters[name] += delta
    this.#dirty = true
  }

  /** Adds counts carried over from another store of them (the schema before segments). */
  importCounters(values: Partial<Record<BatchCounter | EventCounter, number>>): void {
    for (const [name, value] of Object.entries(values)) {
      if (name in this.#counters) this.#counters[name as BatchCounter] += value ?? 0
    }
    this.#dirty = true
  }

  /** The highest batch stored in `session`, or undefined when the channel does not know it. */
  lastBatchSeq(session: RelaySession): number | undefined {
    return this.#session(session)?.last
  }

  #session(session: RelaySession): SessionEntry | undefined {
    const id = key(session.bridgeId, session.epoch)
    const known = this.#sessions.get(id)
    if (known) return known
    const row = this.#sql
      .exec<{ last_batch_seq: number; updated_at: number }>(
        'SELECT last_batch_seq, updated_at FROM bridge_sessions WHERE bridge_id = ? AND epoch = ?',
        session.bridgeId,
        session.epoch,
      )
      .toArray()[0]
    if (!row) return undefined
    const entry: SessionEntry = {
      session,
      last: row.last_batch_seq,
      updatedAt: row.updated_at,
      persisted: row.last_batch_seq,
    }
    this.#sessions.set(id, entry)
    return entry
  }

  /**
   * Records a stored segment (call in the transaction that stores it). A session's first batch
   * is written to bridge_sessions at once (once per bridge start): epoch checks read that table.
   * @param writeSession writes a session row (./bridge-sessions.ts `recordBatch`).
   */
  segmentStored(
    segment: SegmentSummary,
    writeSession: (session: RelaySession, batchSeq: number, isNew: boolean) => void,
  ): void {
    const known = segment.session ? this.#session(segment.session) : undefined
    this.#countSegment(segment)
    this.#dirty = true
    if (segment.session && segment.batchSeq !== undefined && known === undefined) {
      writeSession(segment.session, segment.batchSeq, true)
      const entry = this.#sessions.get(key(segment.session.bridgeId, segment.session.epoch))
      if (entry) entry.persisted = segment.batchSeq
    }
  }

  /** A batch used up without a segment (rejected): its session moves on all the same. */
  batchUsedUp(
    session: RelaySession,
    batchSeq: number,
    now: number,
    writeSession: (session: RelaySession, batchSeq: number, isNew: boolean) => void,
  ): void {
    const known = this.#session(session)
    // Written at once: no segment carries it, so nothing else would rebuild it.
    writeSession(session, batchSeq, known === undefined)
    this.#sessions.set(key(session.bridgeId, session.epoch), {
      session,
      last: batchSeq,
      updatedAt: now,
      persisted: batchSeq,
    })
  }

  #countSegment(segment: SegmentSummary): void {
    this.#counters.messages_stored += segment.count
    this.#lastSeq = Math.max(this.#lastSeq, segment.lastSeq)
    this.#unflushedSegments++
    if (!segment.session || segment.batchSeq === undefined) return
    this.#counters.batches_stored++
    const id = key(segment.session.bridgeId, segment.session.epoch)
    const entry = this.#sessions.get(id)
    if (entry) {
      entry.last = Math.max(entry.last, segment.batchSeq)
      entry.updatedAt = Math.max(entry.updatedAt, segment.storedAt)
    } else {
      this.#sessions.set(id, {
        session: segment.session,
        last: segment.batchSeq,
        updatedAt: segment.storedAt,
      })
    }
  }

  /** The highest batch per session for these sessions (those unknown are left out). */
  lastBatchSeqs(sessions: readonly RelaySession[]): Map<string, number> {
    const found = new Map<string, number>()
    for (const session of sessions) {
      const last = this.lastBatchSeq(session)
      if (last !== undefined) found.set(key(session.bridgeId, session.epoch), last)
    }
    return found
  }

  /** Whether the state should be written now (run at the end of a write, in its transaction). */
  due(now: number): boolean {
    return (
      this.#unflushedSegments >= MAX_UNFLUSHED_SEGMENTS ||
      (this.#dirty && now - this.#flushedAt >= FLUSH_INTERVAL_MS)
    )
  }

  /** When the state will be due to be written if nothing else happens, for the alarm. */
  dueAt(): number | undefined {
    return this.#dirty ? this.#flushedAt + FLUSH_INTERVAL_MS : undefined
  }

  /**
   * Call before a change to the channel's messages or groups: the first of a minute samples the
   * history (./channel-history.ts), to be written with the rest.
   * @param values read only when a sample is taken (at most once a minute).
   */
  beforeChange(now: number, values: () => HistoryValues): void {
    if (this.history.beforeChange(now, values)) this.#dirty = true
  }

  /** Marks the metered rows as a change to persist (a read changes no counter but those). */
  touched(): void {
    this.#dirty = true
  }

  /**
   * Writes the counters, the highest seq and the sessions changed since the last write. Run
   * before a segment stored since then is deleted: its summary would be lost with it.
   * @param writeSession as for {@link segmentStored}.
   */
  flush(
    now: number,
    writeSession: (session: RelaySession, batchSeq: number, isNew: boolean) => void,
  ): void {
    for (const entry of this.#sessions.values()) {
      if (entry.persisted === entry.last) continue
      writeSession(entry.session, entry.last, entry.persisted === undefined)
      entry.persisted = entry.last
    }
    this.#flushedThrough = this.#lastSeq
    if (this.historyValues) this.history.written(now, this.historyValues(now))
    const state: PersistedState = {
      flushedThrough: this.#flushedThrough,
      lastSeq: this.#lastSeq,
      counters: this.#counters,
      rows: this.#rows(),
      flushedAt: now,
      history: this.history.samples,
    }
    this.#sql.exec(
      `INSERT INTO channel_state (id, data) VALUES (1, ?)
       ON CONFLICT (id) DO UPDATE SET data = excluded.data`,
      JSON.stringify(state),
    )
    this.#unflushedSegments = 0
    this.#flushedAt = now
    this.#dirty = false
  }

  /**
   * Before retention deletes a segment the state has not been written since: what only that
   * segment records must be written first. That is its session's number when it holds the
   * session's last batch (later batches are in later segments, which stay), or everything when
   * it is the last segment of all (the highest seq given). Its counts are in memory; a crash
   * before the next write would lose them, not any message.
   */
  beforeDrop(
    segment: { firstSeq: number; lastSeq: number; origin?: RelaySession & { batchSeq: number } },
    now: number,
    writeSession: (session: RelaySession, batchSeq: number, isNew: boolean) => void,
  ): void {
    if (segment.firstSeq <= this.#flushedThrough) return
    if (segment.lastSeq >= this.#lastSeq) {
      this.flush(now, writeSession)
      return
    }
    const origin = segment.origin
    if (!origin) return
    const entry = this.#sessions.get(key(origin.bridgeId, origin.epoch))
    if (!entry || entry.last !== origin.batchSeq || entry.persisted === entry.last) return
    writeSession(entry.session, entry.last, entry.persisted === undefined)
    entry.persisted = entry.last
  }
}
