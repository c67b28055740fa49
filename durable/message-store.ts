// The channel's messages in SQLite: stores a relay batch in one transaction, deduplicated per
// bridge, and reads pages of messages back with their frames byte for byte. Only synchronous
// SQL, and every cursor is consumed before returning, so no await can split a read or a write.

import { batchLimits, checkBatch } from './batch-policy'
import { lastBatchSeq, recordBatch } from './bridge-sessions'
import { type ChannelConfig, parseChannelConfig } from './channel-config'
import { addCounter, Counter } from './counters'
import { decodeBody, encodeBody, joinChunks, splitChunks } from './message-body'
import type { Mechanism, RelayBatch, RelayMessage, RelaySession } from './relay-protocol'
import { expireByAge, makeRoom } from './retention'

/**
 * Largest piece of a message body kept in one SQLite value. A value holds about 2 MB at most
 * (2.1 MiB gives SQLITE_TOOBIG locally), so a body over this size continues in message_chunks.
 */
export const BODY_CHUNK_SIZE = 1024 * 1024

/** One stored message as the Durable Object returns it over RPC: raw bytes, no formatting. */
export interface StoredMessage {
  seq: number
  /** Milliseconds since the Unix epoch when the bridge received the message. */
  receivedAt: number
  mechanism: Mechanism
  peerAddress: string
  /** The CURVE client's long-term public key, 32 octets, when the bridge sent one. */
  publicKey?: Uint8Array
  frames: Uint8Array[]
}

/** Which messages to read: those after `after`, in seq order. */
export interface ReadOptions {
  /** Return messages with a seq greater than this. */
  after: number
  /** At most this many messages (≥ 1). */
  limit: number
  /**
   * Stop before a message would take the page's frame octets over this total; the first
   * message is always returned, however large, so a reader can always make progress.
   */
  maxBytes: number
}

/**
 * The longest prefix of `rows` whose sizes add up to at most `maxBytes`; the first row always,
 * however large, so a reader can always make progress.
 */
export function fitPage<Row extends { size: number }>(
  rows: readonly Row[],
  maxBytes: number,
): Row[] {
  let total = 0
  let count = 0
  for (const row of rows) {
    if (count > 0 && total + row.size > maxBytes) break
    total += row.size
    count++
  }
  return rows.slice(0, count)
}

/** One end of the log. */
export interface LogEnd {
  seq: number
  /** Milliseconds since the epoch when the bridge received it. */
  receivedAt: number
}

/**
 * What became of a batch: stored under these seqs; stored before by an earlier copy; rejected
 * for good (one message over the limits: nothing stored, its number used up); or refused and
 * to be sent again: not the batch expected next, the log full (retention, overflow policy
 * `block`), too large as one batch, or holding a field the object does not trust.
 */
export type StoreOutcome =
  | { status: 'stored'; firstSeq: number; lastSeq: number }
  | { status: 'duplicate' }
  | { status: 'rejected'; reason: string }
  | { status: 'out_of_order'; reason: string }
  | { status: 'full'; reason: string }
  | { status: 'too_large'; reason: string }
  | { status: 'invalid'; reason: string }

interface MessageRow extends Record<string, SqlStorageValue> {
  seq: number
  received_at: number
  mechanism: string
  peer_address: string
  public_key: ArrayBuffer | null
  frame_count: number
  body: ArrayBuffer
}

interface ChunkRow extends Record<string, SqlStorageValue> {
  seq: number
  data: ArrayBuffer
}

/** SQL access to one channel's messages. The schema is `./schema.ts`; migrate first. */
export class MessageStore {
  readonly #storage: DurableObjectStorage
  readonly #config: () => ChannelConfig

  /** @param config the channel's current configuration (limits, retention), read at each batch. */
  constructor(
    storage: DurableObjectStorage,
    config: () => ChannelConfig = () => parseChannelConfig({}),
  ) {
    this.#storage = storage
    this.#config = config
  }

  /**
   * Stores every message of `batch` in one transaction, together with its session's new last
   * batch number. In order:
   * - a batch at or below the session's last one is a resend: `duplicate`, not stored again;
   * - in a session the object knows, only the next number is taken (`out_of_order` otherwise:
   *   numbers never jump, so a forged or confused number cannot make later batches look stored);
   *   a session it does not know may start anywhere (a spool that resumes);
   * - the batch must pass the channel's limits and checks (./batch-policy.ts): one message over
   *   them on its own is `rejected`, its number used up; a larger batch is `too_large`;
   * - messages past the age limit leave the log, then room is made under the count and byte
   *   limits (./retention.ts); a batch there is no room for is refused whole (`full`).
   * @throws the SQLite error when storage fails; nothing of the batch is then stored.
   */
  storeBatch(session: RelaySession, batch: RelayBatch): StoreOutcome {
    const { sql } = this.#storage
    return this.#storage.transactionSync((): StoreOutcome => {
      const last = lastBatchSeq(sql, session)
      if (last !== undefined && batch.batchSeq <= last) {
        addCounter(sql, Counter.BATCHES_DUPLICATE, 1)
        return { status: 'duplicate' }
      }
      if (last !== undefined && batch.batchSeq !== last + 1) {
        return {
          status: 'out_of_order',
          reason: `batch ${batch.batchSeq} after batch ${last}; expected ${last + 1}`,
        }
      }
      const config = this.#config()
      const now = Date.now()
      const verdict = checkBatch(batch, batchLimits(config), now)
      if (verdict?.verdict === 'rejected') {
        addCounter(sql, Counter.MESSAGES_REJECTED, batch.messages.length)
        recordBatch(sql, session, batch.batchSeq, now)
        return { status: 'rejected', reason: verdict.reason }
      }
      if (verdict?.verdict === 'invalid') {
        addCounter(sql, Counter.BATCHES_INVALID, 1)
        return { status: 'invalid', reason: verdict.reason }
      }
      if (verdict?.verdict === 'too_large') return { status: 'too_large', reason: verdict.reason }
      const limits = config.retention
      expireByAge(sql, limits, now)
      let batchBytes = 0
      for (const message of batch.messages) {
        for (const frame of message.frames) batchBytes += frame.length
      }
      const room = makeRoom(sql, limits, { count: batch.messages.length, bytes: batchBytes })
      if (!room.ok) return { status: 'full', reason: room.reason }
      let firstSeq = 0
      let lastSeq = 0
      let bytes = 0
      for (const message of batch.messages) {
        const stored = this.#insert(message, now)
        lastSeq = stored.seq
        bytes += stored.size
        if (firstSeq === 0) firstSeq = lastSeq
      }
      // Every new message is also waiting for a leased consumer.
      sql.exec('INSERT INTO queue (seq) SELECT seq FROM messages WHERE seq >= ?', firstSeq)
      const count = batch.messages.length
      addCounter(sql, Counter.QUEUE_MESSAGES, count)
      addCounter(sql, Counter.LOG_MESSAGES, count)
      addCounter(sql, Counter.LOG_BYTES, bytes)
      addCounter(sql, Counter.MESSAGES_STORED, count)
      addCounter(sql, Counter.BATCHES_STORED, 1)
      recordBatch(sql, session, batch.batchSeq, now)
      return { status: 'stored', firstSeq, lastSeq }
    })
  }

  #insert(message: RelayMessage, now: number): { seq: number; size: number } {
    const { sql } = this.#storage
    let size = 0
    for (const frame of message.frames) size += frame.length
    const [head, ...rest] = splitChunks(encodeBody(message.frames), BODY_CHUNK_SIZE)
    const { seq } = sql
      .exec<{ seq: number }>(
        `INSERT INTO messages
           (received_at, stored_at, mechanism, peer_address, public_key, frame_count, size, body)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
        Math.floor(message.receivedAt),
        now,
        message.mechanism,
        message.peerAddress,
        message.publicKey ?? null,
        message.frames.length,
        size,
        head,
      )
      .one()
    // Chunk 0 is messages.body; the overflow is numbered from 1.
    rest.forEach((chunk, index) => {
      sql.exec(
        'INSERT INTO message_chunks (seq, idx, data) VALUES (?, ?, ?)',
        seq,
        index + 1,
        chunk,
      )
    })
    return { seq, size }
  }

  /** The oldest and newest message in the log (seq and receive time), when there is one. */
  bounds(): { oldest?: LogEnd; newest?: LogEnd } {
    const { sql } = this.#storage
    const end = (order: 'ASC' | 'DESC') =>
      sql
        .exec<{ seq: number; received_at: number }>(
          `SELECT seq, received_at FROM messages ORDER BY seq ${order} LIMIT 1`,
        )
        .toArray()
        .map((row) => ({ seq: row.seq, receivedAt: row.received_at }))[0]
    const oldest = end('ASC')
    const newest = end('DESC')
    return oldest && newest ? { oldest, newest } : {}
  }

  /**
   * Reads the messages after `options.after`, in seq order, within `limit` and `maxBytes`.
   * @throws RangeError when a stored body is corrupt.
   */
  read(options: ReadOptions): StoredMessage[] {
    const { sql } = this.#storage
    const { after, limit, maxBytes } = options
    // Sizes first, so the bodies read are only those the page can hold.
    const sizes = sql
      .exec<{ seq: number; size: number }>(
        'SELECT seq, size FROM messages WHERE seq > ? ORDER BY seq LIMIT ?',
        after,
        limit,
      )
      .toArray()
    const page = fitPage(sizes, maxBytes)
    const through = page.at(-1)?.seq
    if (through === undefined) return []
    return this.#bodies('seq > ? AND seq <= ?', after, through)
  }

  /**
   * Reads the messages with these seqs, in seq order; seqs not stored are left out.
   * @throws RangeError when a stored body is corrupt.
   */
  readSeqs(seqs: readonly number[]): StoredMessage[] {
    if (seqs.length === 0) return []
    // One bound JSON array instead of one parameter per seq (a statement takes at most 100).
    return this.#bodies('seq IN (SELECT value FROM json_each(?))', JSON.stringify(seqs))
  }

  #bodies(where: string, ...bindings: SqlStorageValue[]): StoredMessage[] {
    const { sql } = this.#storage
    const rows = sql
      .exec<MessageRow>(
        `SELECT seq, received_at, mechanism, peer_address, public_key, frame_count, body
         FROM messages WHERE ${where} ORDER BY seq`,
        ...bindings,
      )
      .toArray()
    const overflow = new Map<number, Uint8Array[]>()
    const chunks = sql
      .exec<ChunkRow>(
        `SELECT seq, data FROM message_chunks WHERE ${where} ORDER BY seq, idx`,
        ...bindings,
      )
      .toArray()
    for (const chunk of chunks) {
      const list = overflow.get(chunk.seq) ?? []
      list.push(new Uint8Array(chunk.data))
      overflow.set(chunk.seq, list)
    }

    return rows.map((row) => {
      const body = joinChunks([new Uint8Array(row.body), ...(overflow.get(row.seq) ?? [])])
      const message: StoredMessage = {
        seq: row.seq,
        receivedAt: row.received_at,
        mechanism: row.mechanism as Mechanism,
        peerAddress: row.peer_address,
        frames: decodeBody(body, row.frame_count),
      }
      if (row.public_key) message.publicKey = new Uint8Array(row.public_key)
      return message
    })
  }
}
