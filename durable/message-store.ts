// The channel's log: stores a relay batch as segments in one transaction, deduplicated per
// bridge session, applies retention, and reads messages back byte for byte (a message over
// LARGE_MESSAGE_BYTES by its sizes only). Rows of the schema before segments are read in place
// until ./legacy-log.ts has moved them. Only synchronous SQL, so no await splits a read or a
// write.

import type {
  DuplicateMessage,
  RelayBatch,
  RelayMessage,
  RelaySession,
} from '../shared/relay-protocol'
import { batchLimits, checkBatch } from './batch-policy'
import { recordBatch } from './bridge-sessions'
import { type ChannelConfig, parseChannelConfig } from './channel-config'
import { ChannelState } from './channel-state'
import { EventCounter } from './counters'
import { IdempotencyWindow, keyOf, type StoredKey } from './idempotency-window'
import { type LegacyFrameLocation, LegacyLog } from './legacy-log'
import {
  type Dropped,
  expireByAge,
  type GroupFloor,
  type HeadRun,
  makeRoom,
  nextExpiryAt,
  type RetainedLog,
} from './retention'
import { RowMeter, type Sql } from './row-meter'
import {
  type FrameLocation,
  type LogEnd,
  type MessagePage,
  type ReadOptions,
  SegmentStore,
  type StoredMessage,
} from './segment-store'

export {
  fitPage,
  type InlineMessage,
  LARGE_MESSAGE_BYTES,
  type LargeMessage,
  LISTED_FRAME_BYTES,
  type LogEnd,
  listedBytes,
  type MessagePage,
  pageMessages,
  type ReadOptions,
  type StoredMessage,
} from './segment-store'

/**
 * What became of a batch: stored under these seqs; stored before by an earlier copy; rejected
 * for good (one message over the limits: nothing stored, its number used up); or refused and
 * to be sent again: not the batch expected next, the log full (retention, overflow policy
 * `block`), too large as one batch, or holding a field the object does not trust.
 */
export type StoreOutcome =
  /**
   * firstSeq to lastSeq hold the messages stored now (0 and 0 for none); `duplicates`, those a
   * message with their idempotency key was stored as before (./idempotency-window.ts).
   */
  | { status: 'stored'; firstSeq: number; lastSeq: number; duplicates: DuplicateMessage[] }
  /** Stored before; with its seqs when the object still finds them (#seqsOfResend). */
  | { status: 'duplicate'; seqs?: BatchSeqs }
  | { status: 'rejected'; reason: string }
  | { status: 'out_of_order'; reason: string }
  | { status: 'full'; reason: string }
  | { status: 'too_large'; reason: string }
  | { status: 'invalid'; reason: string }

/** Where a batch's messages are: as in an ACK (../shared/relay-protocol.ts seqsOfAck). */
export interface BatchSeqs {
  firstSeq: number
  lastSeq: number
  duplicates?: DuplicateMessage[]
}

/**
 * A resend found while storing a batch: of a message stored before (its seq), or of one earlier
 * in the batch (its position among the messages stored now).
 */
type PendingDuplicate = { index: number; seq: number } | { index: number; position: number }

function resolve(duplicates: PendingDuplicate[], firstSeq: number): DuplicateMessage[] {
  return duplicates.map((duplicate) => ({
    index: duplicate.index,
    seq: 'seq' in duplicate ? duplicate.seq : firstSeq + duplicate.position,
  }))
}

/** Where a frame lies: in a segment, or in a row of the old schema. */
export type AnyFrameLocation = FrameLocation | LegacyFrameLocation

/** Frame `index` of message `seq`: where it lies, or why there is none. */
export type FrameLookup =
  | ({ status: 'found' } & AnyFrameLocation)
  | { status: 'message_not_found' }
  | { status: 'frame_not_found'; frameCount: number }

/** Nothing protects messages from retention: a channel without consumer groups. */
const NO_GROUPS: GroupFloor = { protectedFrom: undefined, notDone: () => 0 }

/** One channel's log. The schema is `./schema.ts`; migrate first. */
export class MessageStore {
  readonly #storage: DurableObjectStorage
  readonly #config: () => ChannelConfig
  readonly #meter: RowMeter
  readonly #sql: Sql
  readonly #segments: SegmentStore
  readonly #idempotency: IdempotencyWindow
  readonly #state: ChannelState
  #legacy: LegacyLog | undefined
  /** What the consumer groups protect (set by the channel once its groups are loaded). */
  groups: () => GroupFloor = () => NO_GROUPS

  /**
   * @param config the channel's current configuration (limits, retention), read at each batch.
   * @param meter counts the rows of every statement (one per object; a new one by default).
   */
  constructor(
    storage: DurableObjectStorage,
    config: () => ChannelConfig = () => parseChannelConfig({}),
    meter = new RowMeter(storage.sql),
  ) {
    this.#storage = storage
    this.#config = config
    this.#meter = meter
    this.#sql = meter.sql
    const now = Date.now()
    this.#state = new ChannelState(this.#sql, () => this.#meter.totals())
    this.#meter.restore(this.#state.recoveredRows)
    this.#segments = new SegmentStore(this.#sql)
    this.#idempotency = new IdempotencyWindow(this.#sql)
    // Seqs go on after every one the old schema gave, even where its rows are gone already.
    const oldHighest = Math.max(LegacyLog.highestSeq(this.#sql), 0)
    this.#legacy = LegacyLog.open(this.#sql, storage.kv)
    const reserved = Math.max(oldHighest, this.#legacy?.maxSeq ?? 0)
    if (reserved > this.#state.lastSeq) {
      this.#state.reserveThrough(reserved)
      storage.transactionSync(() => this.#state.flush(now, this.#writeSession(now)))
    }
  }

  /** The row meter every statement of the channel runs through. */
  get meter(): RowMeter {
    return this.#meter
  }

  get state(): ChannelState {
    return this.#state
  }

  /** Whether rows of the old schema are left to move into segments. */
  get migrating(): boolean {
    return this.#legacy !== undefined
  }

  #writeSession = (now: number) => (session: RelaySession, batchSeq: number, isNew: boolean) =>
    recordBatch(this.#sql, session, batchSeq, now, isNew)

  /**
   * Stores every message of `batch` in one transaction. In order:
   * - a batch at or below the session's last one is a resend: `duplicate`, not stored again;
   * - in a session the object knows, only the next number is taken (`out_of_order` otherwise:
   *   numbers never jump, so a forged or confused number cannot make later batches look stored);
   *   a session it does not know may start anywhere (a spool that resumes);
   * - the batch must pass the channel's limits and checks (./batch-policy.ts): one message over
   *   them on its own is `rejected`, its number used up; a larger batch is `too_large`;
   * - segments past the age limit leave the log, then room is made under the count and byte
   *   limits (./retention.ts); a batch there is no room for is refused whole (`full`).
   * A stored batch writes its segment (two or more for a batch over SEGMENT_TARGET_BYTES) and,
   * once per session and at most once a minute, the channel's state: nothing per message.
   * @throws the SQLite error when storage fails; nothing of the batch is then stored.
   */
  storeBatch(session: RelaySession, batch: RelayBatch): StoreOutcome {
    const state = this.#state
    const now = Date.now()
    return this.#transaction(now, (): StoreOutcome => {
      const last = state.lastBatchSeq(session)
      if (last !== undefined && batch.batchSeq <= last) {
        state.count(EventCounter.BATCHES_DUPLICATE, 1)
        const seqs = this.#seqsOfResend(session, batch, now)
        return seqs ? { status: 'duplicate', seqs } : { status: 'duplicate' }
      }
      if (last !== undefined && batch.batchSeq !== last + 1) {
        return {
          status: 'out_of_order',
          reason: `batch ${batch.batchSeq} after batch ${last}; expected ${last + 1}`,
        }
      }
      const config = this.#config()
      const verdict = checkBatch(batch, batchLimits(config), now)
      if (verdict?.verdict === 'rejected') {
        state.count(EventCounter.MESSAGES_REJECTED, batch.messages.length)
        state.batchUsedUp(session, batch.batchSeq, now, this.#writeSession(now))
        return { status: 'rejected', reason: verdict.reason }
      }
      if (verdict?.verdict === 'invalid') {
        state.count(EventCounter.BATCHES_INVALID, 1)
        return { status: 'invalid', reason: verdict.reason }
      }
      if (verdict?.verdict === 'too_large') return { status: 'too_large', reason: verdict.reason }
      this.#expire(now)
      const { fresh, keyed, duplicates } = this.#withoutResends(batch.messages, now)
      if (fresh.length === 0) {
        // Every message is a resend of one stored before: nothing to store, the number used.
        state.count(EventCounter.MESSAGES_DUPLICATE, duplicates.length)
        state.batchUsedUp(session, batch.batchSeq, now, this.#writeSession(now))
        return { status: 'stored', firstSeq: 0, lastSeq: 0, duplicates: resolve(duplicates, 0) }
      }
      let bytes = 0
      for (const message of fresh) {
        for (const frame of message.frames) bytes += frame.length
      }
      const room = makeRoom(
        this.#retained(now),
        config.retention,
        { count: fresh.length, bytes },
        this.groups(),
      )
      if (!room.ok) {
        state.count(EventCounter.BATCHES_REFUSED, 1)
        return { status: 'full', reason: room.reason }
      }
      this.#countDropped(room)
      state.count(EventCounter.MESSAGES_DUPLICATE, duplicates.length)
      const firstSeq = state.lastSeq + 1
      this.#idempotency.remember(
        keyed.map(
          ({ sender, key, position }): StoredKey => ({ sender, key, seq: firstSeq + position }),
        ),
        now,
      )
      const written = this.#segments.append(
        fresh,
        firstSeq,
        now,
        { ...session, batchSeq: batch.batchSeq, rows: this.#meter.totals() },
        this.#totalsBefore(),
      )
      written.forEach((segment, index) => {
        const summary = {
          firstSeq: segment.firstSeq,
          lastSeq: segment.lastSeq,
          count: segment.count,
          storedAt: now,
        }
        const isLast = index === written.length - 1
        state.segmentStored(
          isLast ? { ...summary, session, batchSeq: batch.batchSeq } : summary,
          this.#writeSession(now),
        )
      })
      return {
        status: 'stored',
        firstSeq,
        lastSeq: firstSeq + fresh.length - 1,
        duplicates: resolve(duplicates, firstSeq),
      }
    })
  }

  /**
   * Splits a batch's messages into those to store and the resends of one stored before, or
   * earlier in the batch, under their sender and idempotency key. `keyed`: the stored messages
   * with a key, by position among those stored; a resend of one of them names that position.
   */
  #withoutResends(
    messages: readonly RelayMessage[],
    now: number,
  ): {
    fresh: readonly RelayMessage[]
    keyed: Array<{ sender: string; key: string; position: number }>
    duplicates: PendingDuplicate[]
  } {
    if (!messages.some((message) => message.idempotencyKey !== undefined)) {
      return { fresh: messages, keyed: [], duplicates: [] }
    }
    const fresh: RelayMessage[] = []
    const keyed: Array<{ sender: string; key: string; position: number }> = []
    // By sender, then key (a space never occurs in either).
    const inBatch = new Map<string, number>()
    const duplicates: PendingDuplicate[] = []
    messages.forEach((message, index) => {
      const owned = keyOf(message)
      if (owned) {
        const seq = this.#idempotency.lookup(owned.sender, owned.key, now)
        if (seq !== undefined) {
          duplicates.push({ index, seq })
          return
        }
        const name = `${owned.sender} ${owned.key}`
        const position = inBatch.get(name)
        if (position !== undefined) {
          duplicates.push({ index, position })
          return
        }
        inBatch.set(name, fresh.length)
        keyed.push({ ...owned, position: fresh.length })
      }
      fresh.push(message)
    })
    return { fresh, keyed, duplicates }
  }

  /**
   * The seqs of a resent batch's messages, for its ACK DUPLICATE; undefined when the object
   * cannot place each one (no seqs rather than wrong ones). Keyed messages are placed by their
   * keys; the others by the segments that record the batch (SegmentStore.seqsOfBatch), which
   * hold its unkeyed messages and the keyed ones it stored, those whose seq is within them and
   * first in the batch with their key.
   */
  #seqsOfResend(session: RelaySession, batch: RelayBatch, now: number): BatchSeqs | undefined {
    const { messages } = batch
    const keyedSeqs: Array<{ index: number; name: string; seq: number }> = []
    for (const [index, message] of messages.entries()) {
      const owned = keyOf(message)
      if (!owned) continue
      const seq = this.#idempotency.lookup(owned.sender, owned.key, now)
      if (seq === undefined) return undefined
      keyedSeqs.push({ index, name: `${owned.sender} ${owned.key}`, seq })
    }
    if (keyedSeqs.length === 0) {
      return this.#segments.seqsOfBatch(session, batch.batchSeq, messages.length)
    }
    const unkeyed = messages.length - keyedSeqs.length
    if (unkeyed === 0) {
      // Each message's seq is its key's, wherever the batch stored it: no segment to look for.
      return {
        firstSeq: 0,
        lastSeq: 0,
        duplicates: keyedSeqs.map(({ index, seq }) => ({ index, seq })),
      }
    }
    // The batch stored the first message of each key whose seq is at or after its first seq.
    const storedFrom = (firstSeq: number): Set<number> => {
      const names = new Set<string>()
      const indexes = new Set<number>()
      for (const { index, name, seq } of keyedSeqs) {
        if (seq >= firstSeq && !names.has(name)) {
          names.add(name)
          indexes.add(index)
        }
      }
      return indexes
    }
    const range = this.#segments.seqsOfBatch(
      session,
      batch.batchSeq,
      (firstSeq) => unkeyed + storedFrom(firstSeq).size,
    )
    if (!range) return undefined
    const stored = storedFrom(range.firstSeq)
    const duplicates = keyedSeqs
      .filter(({ index }) => !stored.has(index))
      .map(({ index, seq }) => ({ index, seq }))
    return { ...range, duplicates }
  }

  /**
   * Runs `write` in one transaction, then writes the channel's state in it too if it is due
   * (./channel-state.ts).
   */
  #transaction<T>(now: number, write: () => T): T {
    return this.#storage.transactionSync(() => {
      const result = write()
      if (this.#state.due(now)) this.#state.flush(now, this.#writeSession(now))
      return result
    })
  }

  /** The running totals a new segment continues from. */
  #totalsBefore(): { messages: number; bytes: number } {
    const tail = this.#segments.tail
    const legacy = this.#legacy
    // Segments made of old rows sit below the old rows left; new ones continue after them all.
    if (legacy && (!tail || tail.lastSeq < legacy.maxSeq)) return legacy.progress.total
    return { messages: tail?.logMessages ?? 0, bytes: tail?.logBytes ?? 0 }
  }

  #countDropped(dropped: Dropped): void {
    this.#state.count(EventCounter.EXPIRED, dropped.expired)
    this.#state.count(EventCounter.TRIMMED, dropped.trimmed)
    this.#state.count(EventCounter.DROPPED, dropped.dropped)
  }

  /** Deletes what is past the retention age; run in a transaction. @returns how many. */
  #expire(now: number): number {
    const expired = expireByAge(this.#retained(now), this.#config().retention, now)
    this.#state.count(EventCounter.EXPIRED, expired)
    return expired
  }

  /**
   * Deletes messages past the retention age (the alarm's work).
   * @returns how many.
   */
  expire(now: number): number {
    return this.#transaction(now, () => this.#expire(now))
  }

  /** When the oldest segment passes the retention age, if ever. */
  nextExpiryAt(): number | undefined {
    return nextExpiryAt(this.#retained(Date.now()), this.#config().retention)
  }

  /** The log as retention sees it: old rows and segments, oldest first. */
  #retained(now: number): RetainedLog {
    const segments = this.#segments
    const legacyIsHead = () => {
      const legacy = this.#legacy
      return legacy !== undefined && (!segments.head || legacy.minSeq < segments.head.firstSeq)
    }
    return {
      messageCount: this.messageCount,
      byteCount: this.byteCount,
      head: (): HeadRun | undefined => {
        if (legacyIsHead()) return this.#legacy?.head()
        return segments.head
      },
      dropHead: () => {
        if (legacyIsHead()) {
          if (this.#legacy && !this.#legacy.dropHead()) this.#legacy = undefined
          return
        }
        const head = segments.head
        if (head) this.#state.beforeDrop(head, now, this.#writeSession(now))
        segments.dropOldest()
      },
      before: (seq: number) => {
        const legacy = this.#legacy
        if (!legacy) return segments.freedBefore(seq)
        // While old rows are left, only what lies below them (old rows moved into segments)
        // is counted: enough to decide, and no scan of the old rows.
        if (legacyIsHead()) return { messages: 0, bytes: 0 }
        return segments.freedBefore(Math.min(seq, legacy.minSeq))
      },
    }
  }

  /** Messages in the log. */
  get messageCount(): number {
    const legacy = this.#legacy
    if (!legacy) return this.#segments.messageCount
    const head = this.#segments.head
    // Segments below the old rows count them in their running totals.
    if (head && head.firstSeq < legacy.minSeq) return this.#segments.messageCount
    return legacy.messageCount + this.#segments.messageCount
  }

  /** Frame octets in the log. */
  get byteCount(): number {
    const legacy = this.#legacy
    if (!legacy) return this.#segments.byteCount
    const head = this.#segments.head
    if (head && head.firstSeq < legacy.minSeq) return this.#segments.byteCount
    return legacy.byteCount + this.#segments.byteCount
  }

  /** The lowest seq in the log, or the next seq to be given when it is empty. */
  get oldestSeq(): number {
    const head = this.#segments.head?.firstSeq ?? Number.POSITIVE_INFINITY
    const legacy = this.#legacy?.minSeq ?? Number.POSITIVE_INFINITY
    const oldest = Math.min(head, legacy)
    return Number.isFinite(oldest) ? oldest : this.#state.lastSeq + 1
  }

  /** The highest seq given (the newest message, unless retention has emptied the log). */
  get newestSeq(): number {
    return this.#state.lastSeq
  }

  /**
   * Frame octets of the log from the segment holding `seq` on (the whole log while rows of the
   * old schema are left).
   */
  bytesFrom(seq: number): number {
    if (this.#legacy) return this.byteCount
    return this.#segments.byteCount - this.#segments.freedBefore(seq).bytes
  }

  /** When message `seq` was stored (ms), if it is in the log. */
  storedAtOf(seq: number): number | undefined {
    const legacy = this.#legacy
    if (legacy && seq >= legacy.minSeq && seq <= legacy.maxSeq) return legacy.storedAtOf(seq)
    const segment = this.#segments.atOrBefore(seq)
    return segment && segment.lastSeq >= seq ? segment.storedAt : undefined
  }

  /** The oldest and newest message in the log (seq and receive time), when there is one. */
  bounds(): { oldest?: LogEnd; newest?: LogEnd } {
    if (this.messageCount === 0) return {}
    const oldest = this.read({ after: this.oldestSeq - 1, limit: 1, maxBytes: 0 })[0]
    const newest =
      this.#segments.tail && this.#segments.tail.lastSeq === this.#state.lastSeq
        ? this.#segments.bounds().newest
        : this.readSeqs([this.#state.lastSeq])[0]
    if (!oldest || !newest) return {}
    return {
      oldest: { seq: oldest.seq, receivedAt: oldest.receivedAt },
      newest: { seq: newest.seq, receivedAt: newest.receivedAt },
    }
  }

  /**
   * Reads the messages after `options.after`, in seq order, within `limit` and `maxBytes`.
   * Large messages (over LARGE_MESSAGE_BYTES) come without their frames. While old rows are
   * left, a page holds messages of one kind of storage only (it may be shorter than `limit`).
   * @throws RangeError when stored data is corrupt.
   */
  read(options: ReadOptions): StoredMessage[] {
    const legacy = this.#legacy
    if (!legacy || options.after >= legacy.maxSeq) return this.#segments.read(options)
    if (options.after + 1 < legacy.minSeq) {
      const below = this.#segments.read({ ...options, through: legacy.minSeq - 1 })
      if (below.length > 0) return below
    }
    const old = legacy.read(
      Math.max(options.after, legacy.minSeq - 1),
      options.limit,
      options.maxBytes,
    )
    if (old.length > 0) return old
    return this.#segments.read({ ...options, after: Math.max(options.after, legacy.maxSeq) })
  }

  /**
   * {@link read} as a page of parts (see `MessagePage` in ./segment-store.ts), for the Worker to
   * decode: a few segment buffers cross RPC faster than thousands of message objects.
   * @throws RangeError when stored data is corrupt.
   */
  readPage(options: ReadOptions): MessagePage {
    if (!this.#legacy) return this.#segments.readPage(options)
    const messages = this.read(options)
    return { parts: [{ messages }], count: messages.length }
  }

  /**
   * Reads the messages with these seqs, in seq order; seqs not stored are left out. Large
   * messages come without their frames.
   * @throws RangeError when stored data is corrupt.
   */
  readSeqs(seqs: readonly number[]): StoredMessage[] {
    const legacy = this.#legacy
    if (!legacy) return this.#segments.readSeqs(seqs)
    const old = seqs.filter((seq) => seq >= legacy.minSeq && seq <= legacy.maxSeq)
    const rest = seqs.filter((seq) => seq < legacy.minSeq || seq > legacy.maxSeq)
    return [...legacy.readSeqs(old), ...this.#segments.readSeqs(rest)].sort((a, b) => a.seq - b.seq)
  }

  /**
   * What each of these seqs weighs against a page's cap (`listedBytes`), reading no large body;
   * seqs not stored are left out.
   */
  weights(seqs: readonly number[]): Map<number, number> {
    const legacy = this.#legacy
    if (!legacy) return this.#segments.weights(seqs)
    const old = seqs.filter((seq) => seq >= legacy.minSeq && seq <= legacy.maxSeq)
    const rest = seqs.filter((seq) => seq < legacy.minSeq || seq > legacy.maxSeq)
    return new Map([...legacy.weights(old), ...this.#segments.weights(rest)])
  }

  /**
   * The longest prefix of `seqs` (in order) whose stored messages fit `maxBytes` (the first
   * always), with the seqs not stored among them: what a pull or a dead-letter page may read.
   */
  fitSeqs(seqs: readonly number[], maxBytes: number): number[] {
    const weights = this.weights(seqs)
    let total = 0
    let taken = 0
    let fitted = 0
    for (const seq of seqs) {
      const weight = weights.get(seq)
      if (weight !== undefined) {
        if (fitted > 0 && total + weight > maxBytes) break
        total += weight
        fitted++
      }
      taken++
    }
    return seqs.slice(0, taken)
  }

  /**
   * Where frame `index` of message `seq` lies, reading only what precedes it.
   * @throws RangeError when stored data is corrupt.
   */
  locateFrame(seq: number, index: number): FrameLookup {
    const legacy = this.#legacy
    if (legacy && seq >= legacy.minSeq && seq <= legacy.maxSeq) {
      const found = legacy.locateFrame(seq, index)
      if (found === undefined) return { status: 'message_not_found' }
      if ('frameCount' in found) return { status: 'frame_not_found', ...found }
      return { status: 'found', ...found }
    }
    return this.#segments.locateFrame(seq, index)
  }

  /**
   * Octets `[from, from + length)` of a frame {@link locateFrame} found.
   * @throws RangeError when the message is gone (retention removed it) or the range is out of
   * the frame.
   */
  readFrameRange(frame: AnyFrameLocation, from: number, length: number): Uint8Array {
    if ('legacySeq' in frame) {
      if (!this.#legacy) throw new RangeError(`message ${frame.legacySeq} has moved`)
      return this.#legacy.readFrameRange(frame, from, length)
    }
    return this.#segments.readFrameRange(frame, from, length)
  }

  /**
   * Moves one slice of old rows into segments (the alarm's work while {@link migrating}).
   * @returns whether rows are left to move.
   */
  migrateSlice(now: number): boolean {
    const legacy = this.#legacy
    if (!legacy) return false
    return this.#transaction(now, () => {
      const left = legacy.moveSlice(this.#segments)
      if (!left) this.#legacy = undefined
      return left
    })
  }

  /** Writes the channel's state now (run inside a transaction). */
  flushNow(now: number): void {
    this.#state.flush(now, this.#writeSession(now))
  }

  /** Writes the channel's state now if it is due (the alarm's work). */
  flushIfDue(now: number): void {
    if (!this.#state.due(now)) return
    this.#storage.transactionSync(() => this.#state.flush(now, this.#writeSession(now)))
  }

  /** SQL for the channel's other modules, counted by the same meter. */
  get sql(): Sql {
    return this.#sql
  }
}
