// The channel's messages in SQLite: stores a relay batch in one transaction, deduplicated per
// bridge, and reads pages of messages back with their frames byte for byte, or, for a message
// over LARGE_MESSAGE_BYTES, only its sizes (its frames are then read a piece at a time). Only
// synchronous SQL, and every cursor is consumed before returning, so no await can split a read
// or a write.

import { batchLimits, checkBatch } from './batch-policy'
import { lastBatchSeq, recordBatch } from './bridge-sessions'
import { type ChannelConfig, parseChannelConfig } from './channel-config'
import { addCounter, Counter } from './counters'
import {
  bodyLength,
  decodeBody,
  encodeBody,
  frameOffset,
  frameSizesOf,
  joinChunks,
  splitChunks,
} from './message-body'
import type { Mechanism, RelayBatch, RelayMessage, RelaySession } from './relay-protocol'
import { expireByAge, makeRoom } from './retention'

/**
 * Largest piece of a message body kept in one SQLite value. A value holds about 2 MB at most
 * (2.1 MiB gives SQLITE_TOOBIG locally), so a body over this size continues in message_chunks.
 */
export const BODY_CHUNK_SIZE = 1024 * 1024

/**
 * Frame octets (all frames together) above which a message is large: reads list it by its
 * sizes, without its frames, and never load its body; its frames are fetched one at a time
 * (`GET /v1/channels/:channel/messages/:seq/frames/:index`). 8 MiB, the read page cap, so a
 * message whose frames a page carries always fits one.
 */
export const LARGE_MESSAGE_BYTES = 8 * 1024 * 1024

/**
 * What one frame of a large message weighs against a page's `maxBytes`: its entry in the
 * listing's frame sizes (at most 10 digits and a comma), with room to spare. A large message
 * weighs no frame octets, so without this a page of them would have no cap.
 */
export const LISTED_FRAME_BYTES = 16

/** What every stored message has, whatever its size. */
interface MessageHead {
  seq: number
  /** Milliseconds since the Unix epoch when the bridge received the message. */
  receivedAt: number
  mechanism: Mechanism
  peerAddress: string
  /** The CURVE client's long-term public key, 32 octets, when the bridge sent one. */
  publicKey?: Uint8Array
  /** The frames' octets, all together (without the stored length prefixes). */
  size: number
}

/** A message read with its frames. */
export interface InlineMessage extends MessageHead {
  frames: Uint8Array[]
}

/**
 * A message over {@link LARGE_MESSAGE_BYTES}, read without its frames: only their sizes.
 * {@link MessageStore.locateFrame} and {@link MessageStore.readFrameRange} read one frame.
 */
export interface LargeMessage extends MessageHead {
  frames: null
  /** Each frame's octets, in order (as many as the message has frames). */
  frameSizes: number[]
}

/** One stored message as the Durable Object returns it over RPC: raw bytes, no formatting. */
export type StoredMessage = InlineMessage | LargeMessage

/** Which messages to read: those after `after`, in seq order. */
export interface ReadOptions {
  /** Return messages with a seq greater than this. */
  after: number
  /** At most this many messages (≥ 1). */
  limit: number
  /**
   * Stop before a message would take the page over this many octets (see {@link listedBytes});
   * the first message is always returned, however large, so a reader can always make progress.
   */
  maxBytes: number
}

/** A stored row's size and frame count, as a page's cap counts them. */
export interface SizedRow extends Record<string, SqlStorageValue> {
  size: number
  frame_count: number
}

/**
 * What a message weighs against a page's `maxBytes`: its frame octets, or for a large message
 * (which is listed without them) {@link LISTED_FRAME_BYTES} per frame.
 */
export function listedBytes(row: SizedRow): number {
  return row.size > LARGE_MESSAGE_BYTES ? row.frame_count * LISTED_FRAME_BYTES : row.size
}

/**
 * The longest prefix of `rows` whose weights ({@link listedBytes}) add up to at most
 * `maxBytes`; the first row always, however large, so a reader can always make progress.
 */
export function fitPage<Row extends SizedRow>(rows: readonly Row[], maxBytes: number): Row[] {
  let total = 0
  let count = 0
  for (const row of rows) {
    const weight = listedBytes(row)
    if (count > 0 && total + weight > maxBytes) break
    total += weight
    count++
  }
  return rows.slice(0, count)
}

/** Where one frame of a stored message lies, for {@link MessageStore.readFrameRange}. */
export interface FrameLocation {
  seq: number
  /** The frame's octets. */
  size: number
  /** Where its octets start in the message's body. */
  offset: number
  /** The octets of each of the body's chunks (the last may be shorter). */
  chunkSize: number
}

/** Frame `index` of message `seq`: where it lies, or why there is none. */
export type FrameLookup =
  | ({ status: 'found' } & FrameLocation)
  | { status: 'message_not_found' }
  | { status: 'frame_not_found'; frameCount: number }

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
  size: number
  /** The first chunk of the body; null for a large message, whose body is not read. */
  body: ArrayBuffer | null
  /** The first chunk's octets, which every chunk but the last has. */
  chunk_size: number
}

interface ChunkRow extends Record<string, SqlStorageValue> {
  seq: number
  data: ArrayBuffer
}

/**
 * Frame sizes of large messages kept in memory, counted in sizes (a number each): enough for
 * hundreds of messages of a few frames, and at most about 0.5 MB. A body never changes and seqs
 * are never reused, so what is kept never goes stale.
 */
const CACHED_FRAME_SIZES = 65_536

/** SQL access to one channel's messages. The schema is `./schema.ts`; migrate first. */
export class MessageStore {
  readonly #storage: DurableObjectStorage
  readonly #config: () => ChannelConfig
  /** Frame sizes of the large messages read lately, by seq, least recently used first. */
  readonly #frameSizes = new Map<number, number[]>()
  /** How many sizes {@link #frameSizes} holds in all. */
  #cachedSizes = 0

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
        recordBatch(sql, session, batch.batchSeq, now, last === undefined)
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
      recordBatch(sql, session, batch.batchSeq, now, last === undefined)
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
   * Large messages (over {@link LARGE_MESSAGE_BYTES}) come without their frames.
   * @throws RangeError when a stored body is corrupt.
   */
  read(options: ReadOptions): StoredMessage[] {
    const { sql } = this.#storage
    const { after, limit, maxBytes } = options
    // Sizes first, so the bodies read are only those the page can hold.
    const sizes = sql
      .exec<{ seq: number } & SizedRow>(
        'SELECT seq, size, frame_count FROM messages WHERE seq > ? ORDER BY seq LIMIT ?',
        after,
        limit,
      )
      .toArray()
    const page = fitPage(sizes, maxBytes)
    const through = page.at(-1)?.seq
    if (through === undefined) return []
    return this.#messages('seq > ? AND seq <= ?', after, through)
  }

  /**
   * Reads the messages with these seqs, in seq order; seqs not stored are left out. Large
   * messages come without their frames.
   * @throws RangeError when a stored body is corrupt.
   */
  readSeqs(seqs: readonly number[]): StoredMessage[] {
    if (seqs.length === 0) return []
    // One bound JSON array instead of one parameter per seq (a statement takes at most 100).
    return this.#messages('seq IN (SELECT value FROM json_each(?))', JSON.stringify(seqs))
  }

  /**
   * Where frame `index` of message `seq` lies, reading only the length prefixes before it.
   * @throws RangeError when the stored body is corrupt.
   */
  locateFrame(seq: number, index: number): FrameLookup {
    const row = this.#storage.sql
      .exec<{ size: number; frame_count: number; chunk_size: number }>(
        'SELECT size, frame_count, length(body) AS chunk_size FROM messages WHERE seq = ?',
        seq,
      )
      .toArray()[0]
    if (!row) return { status: 'message_not_found' }
    if (index >= row.frame_count) return { status: 'frame_not_found', frameCount: row.frame_count }
    const chunkSize = Math.max(1, row.chunk_size)
    const frameSizes = this.#frameSizesOf(seq, chunkSize, row.size, row.frame_count)
    return {
      status: 'found',
      seq,
      size: frameSizes[index] as number,
      offset: frameOffset(frameSizes, index),
      chunkSize,
    }
  }

  /**
   * Octets `[from, from + length)` of a frame {@link locateFrame} found, read from the chunks
   * they lie in and nothing else.
   * @throws RangeError when the message is gone (retention removed it) or the range is out of
   * the frame.
   */
  readFrameRange(frame: FrameLocation, from: number, length: number): Uint8Array {
    if (from < 0 || length < 0 || from + length > frame.size) {
      throw new RangeError(`octets ${from}+${length} are not in a frame of ${frame.size}`)
    }
    return this.#readBody(frame.seq, frame.chunkSize, frame.offset + from, length)
  }

  /**
   * The body octets `[offset, offset + length)` of message `seq`, each piece cut out of its
   * chunk by SQLite (`substr` on a BLOB counts octets), so only the range reaches JavaScript.
   */
  #readBody(seq: number, chunkSize: number, offset: number, length: number): Uint8Array {
    const { sql } = this.#storage
    const pieces: Uint8Array[] = []
    for (let done = 0; done < length; ) {
      const at = offset + done
      const idx = Math.floor(at / chunkSize)
      const start = at - idx * chunkSize
      const count = Math.min(length - done, chunkSize - start)
      // Chunk 0 is messages.body; the overflow is numbered from 1. substr counts from 1.
      const row = (
        idx === 0
          ? sql.exec<{ data: ArrayBuffer | null }>(
              'SELECT substr(body, ?, ?) AS data FROM messages WHERE seq = ?',
              start + 1,
              count,
              seq,
            )
          : sql.exec<{ data: ArrayBuffer | null }>(
              'SELECT substr(data, ?, ?) AS data FROM message_chunks WHERE seq = ? AND idx = ?',
              start + 1,
              count,
              seq,
              idx,
            )
      ).toArray()[0]
      if (!row?.data || row.data.byteLength !== count) {
        throw new RangeError(`message ${seq} has no body octets ${at} to ${at + count}`)
      }
      pieces.push(new Uint8Array(row.data))
      done += count
    }
    return pieces.length === 0 ? new Uint8Array(0) : joinChunks(pieces)
  }

  /** The frame sizes of message `seq`, from its length prefixes (remembered for the next read). */
  #frameSizesOf(seq: number, chunkSize: number, size: number, frameCount: number): number[] {
    const cached = this.#frameSizes.get(seq)
    if (cached) {
      // Most recently used last.
      this.#frameSizes.delete(seq)
      this.#frameSizes.set(seq, cached)
      return cached
    }
    const sizes = frameSizesOf(
      (offset, length) => this.#readBody(seq, chunkSize, offset, length),
      bodyLength(size, frameCount),
      frameCount,
    )
    this.#frameSizes.set(seq, sizes)
    this.#cachedSizes += sizes.length
    for (const [oldest, evicted] of this.#frameSizes) {
      if (this.#cachedSizes <= CACHED_FRAME_SIZES) break
      this.#frameSizes.delete(oldest)
      this.#cachedSizes -= evicted.length
    }
    return sizes
  }

  #messages(where: string, ...bindings: SqlStorageValue[]): StoredMessage[] {
    const { sql } = this.#storage
    // CASE: SQLite reads the body column only for the messages that are not large.
    const rows = sql
      .exec<MessageRow>(
        `SELECT seq, received_at, mechanism, peer_address, public_key, frame_count, size,
           CASE WHEN size <= ? THEN body END AS body, length(body) AS chunk_size
         FROM messages WHERE ${where} ORDER BY seq`,
        LARGE_MESSAGE_BYTES,
        ...bindings,
      )
      .toArray()
    // The overflow chunks of the bodies read, in one query.
    const overflowing = rows.flatMap((row) =>
      row.body !== null && row.chunk_size < bodyLength(row.size, row.frame_count) ? [row.seq] : [],
    )
    const overflow = new Map<number, Uint8Array[]>()
    if (overflowing.length > 0) {
      const chunks = sql
        .exec<ChunkRow>(
          `SELECT seq, data FROM message_chunks
           WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq, idx`,
          JSON.stringify(overflowing),
        )
        .toArray()
      for (const chunk of chunks) {
        const list = overflow.get(chunk.seq) ?? []
        list.push(new Uint8Array(chunk.data))
        overflow.set(chunk.seq, list)
      }
    }

    return rows.map((row): StoredMessage => {
      const head: MessageHead = {
        seq: row.seq,
        receivedAt: row.received_at,
        mechanism: row.mechanism as Mechanism,
        peerAddress: row.peer_address,
        size: row.size,
      }
      if (row.public_key) head.publicKey = new Uint8Array(row.public_key)
      if (row.body === null) {
        const chunkSize = Math.max(1, row.chunk_size)
        const frameSizes = this.#frameSizesOf(row.seq, chunkSize, row.size, row.frame_count)
        return { ...head, frames: null, frameSizes }
      }
      const body = joinChunks([new Uint8Array(row.body), ...(overflow.get(row.seq) ?? [])])
      return { ...head, frames: decodeBody(body, row.frame_count) }
    })
  }
}
