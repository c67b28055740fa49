// The channel's messages in SQLite: stores a relay batch in one transaction, deduplicated per
// bridge, and reads pages of messages back with their frames byte for byte. Only synchronous
// SQL, and every cursor is consumed before returning, so no await can split a read or a write.

import { decodeBody, encodeBody, joinChunks, splitChunks } from './message-body'
import type { Mechanism, RelayBatch, RelayMessage } from './relay-protocol'

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

/** What became of a batch: stored under these seqs, or stored before by an earlier copy. */
export type StoreOutcome =
  | { status: 'stored'; firstSeq: number; lastSeq: number }
  | { status: 'duplicate' }

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

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage
  }

  /**
   * Stores every message of `batch` in one transaction, together with the bridge's new last
   * batchSeq; a batch at or below the last one stored for its bridge is a resend and is not
   * stored again. Gaps are accepted: batches of one bridge arrive in order.
   * @throws the SQLite error when storage fails; nothing of the batch is then stored.
   */
  storeBatch(batch: RelayBatch): StoreOutcome {
    const { sql } = this.#storage
    return this.#storage.transactionSync((): StoreOutcome => {
      const previous = sql
        .exec<{ last_batch_seq: number }>(
          'SELECT last_batch_seq FROM bridges WHERE bridge_id = ?',
          batch.bridgeId,
        )
        .toArray()[0]
      if (previous && batch.batchSeq <= previous.last_batch_seq) return { status: 'duplicate' }
      let firstSeq = 0
      let lastSeq = 0
      for (const message of batch.messages) {
        lastSeq = this.#insert(message)
        if (firstSeq === 0) firstSeq = lastSeq
      }
      sql.exec(
        `INSERT INTO bridges (bridge_id, last_batch_seq) VALUES (?, ?)
         ON CONFLICT (bridge_id) DO UPDATE SET last_batch_seq = excluded.last_batch_seq`,
        batch.bridgeId,
        batch.batchSeq,
      )
      return { status: 'stored', firstSeq, lastSeq }
    })
  }

  #insert(message: RelayMessage): number {
    const { sql } = this.#storage
    let size = 0
    for (const frame of message.frames) size += frame.length
    const [head, ...rest] = splitChunks(encodeBody(message.frames), BODY_CHUNK_SIZE)
    const { seq } = sql
      .exec<{ seq: number }>(
        `INSERT INTO messages
           (received_at, mechanism, peer_address, public_key, frame_count, size, body)
         VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
        Math.floor(message.receivedAt),
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
    return seq
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
    let through = after
    let total = 0
    for (const [index, row] of sizes.entries()) {
      if (index > 0 && total + row.size > maxBytes) break
      total += row.size
      through = row.seq
    }
    if (through === after) return []

    const rows = sql
      .exec<MessageRow>(
        `SELECT seq, received_at, mechanism, peer_address, public_key, frame_count, body
         FROM messages WHERE seq > ? AND seq <= ? ORDER BY seq`,
        after,
        through,
      )
      .toArray()
    const overflow = new Map<number, Uint8Array[]>()
    const chunks = sql
      .exec<ChunkRow>(
        'SELECT seq, data FROM message_chunks WHERE seq > ? AND seq <= ? ORDER BY seq, idx',
        after,
        through,
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
