// The per-message rows of schema versions 1 to 6 (`messages`, `message_chunks`) while migration 7
// moves them into segments: a slice at a time, oldest first, from the Durable Object's alarm, so
// no request or alarm runs long. Until the last row has moved, this module reads them as the old
// store did, and retention deletes them from the head; then it drops their tables.
//
// Between the slices the log is: segments made of old rows (seqs below `minSeq`), the old rows
// left ([minSeq, maxSeq], maybe with gaps where the old retention deleted acked messages), and
// segments stored since the migration (above maxSeq).

import type { Mechanism, RelayMessage } from '../shared/relay-protocol'
import { type PieceQueries, readBodyPieces } from './body-pieces'
import { bodyLength, decodeBody, frameOffset, frameSizesOf, joinChunks } from './message-body'
import type { Sql } from './row-meter'
import {
  fitPage,
  LARGE_MESSAGE_BYTES,
  SEGMENT_TARGET_BYTES,
  type SegmentStore,
  type StoredMessage,
} from './segment-store'

/** Octets of one old body's first chunk (the rest continued in message_chunks). */
const LEGACY_CHUNK_SIZE = 1024 * 1024

/** Most messages and frame octets moved into segments by one slice (one alarm). */
export const SLICE_MESSAGES = 5000
export const SLICE_BYTES = 16 * 1024 * 1024

/** The key, in the object's key-value storage, of what the migration has moved or deleted. */
export const LEGACY_PROGRESS_KEY = 'legacy.progress'

/** The old rows' totals when the migration began, and what has left them since. */
export interface LegacyProgress {
  /** Messages and frame octets of the old rows when the migration began. */
  total: { messages: number; bytes: number }
  /** Of those, moved into segments or deleted by retention. */
  done: { messages: number; bytes: number }
}

interface LegacyRow extends Record<string, SqlStorageValue> {
  seq: number
  received_at: number
  stored_at: number
  mechanism: string
  peer_address: string
  public_key: ArrayBuffer | null
  frame_count: number
  size: number
  /** The first chunk of the body; null for a large message when not asked for. */
  body: ArrayBuffer | null
  chunk_size: number
}

/** Where a frame of an old row lies. */
export interface LegacyFrameLocation {
  legacySeq: number
  size: number
  offset: number
  chunkSize: number
}

/** Whether the object's database has a table of this name. */
export function tableExists(sql: Sql, name: string): boolean {
  return (
    sql
      .exec<{ n: number }>(
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
        name,
      )
      .one().n > 0
  )
}

/** The old rows not moved yet, or undefined when there are none (their tables then dropped). */
/** The old schema's bodies: chunk 0 in messages.body, chunks 1… in message_chunks. */
const LEGACY_BODY_PIECES: PieceQueries = {
  first: 'SELECT substr(body, ?, ?) AS data FROM messages WHERE seq = ?',
  rest: 'SELECT substr(data, ?, ?) AS data FROM message_chunks WHERE seq = ? AND idx = ?',
}

export class LegacyLog {
  readonly #sql: Sql
  readonly #kv: SyncKvStorage
  #minSeq: number
  readonly #maxSeq: number
  #progress: LegacyProgress

  private constructor(sql: Sql, kv: SyncKvStorage, min: number, max: number, p: LegacyProgress) {
    this.#sql = sql
    this.#kv = kv
    this.#minSeq = min
    this.#maxSeq = max
    this.#progress = p
  }

  /**
   * Opens the old rows: undefined (after dropping their tables, if they exist) when there are none
   * left to move. The first time, records their totals (one scan of the old rows).
   */
  static open(sql: Sql, kv: SyncKvStorage): LegacyLog | undefined {
    if (!tableExists(sql, 'messages')) return undefined
    const ends = sql
      .exec<{ min: number | null; max: number | null }>(
        'SELECT MIN(seq) AS min, MAX(seq) AS max FROM messages',
      )
      .one()
    if (ends.min === null || ends.max === null) {
      LegacyLog.#drop(sql, kv)
      return undefined
    }
    let progress = kv.get<LegacyProgress>(LEGACY_PROGRESS_KEY)
    if (!progress) {
      const total = sql
        .exec<{ messages: number; bytes: number }>(
          'SELECT COUNT(*) AS messages, COALESCE(SUM(size), 0) AS bytes FROM messages',
        )
        .one()
      progress = { total, done: { messages: 0, bytes: 0 } }
      kv.put(LEGACY_PROGRESS_KEY, progress)
    }
    return new LegacyLog(sql, kv, ends.min, ends.max, progress)
  }

  /**
   * Drops the old tables, once empty. SQLite refuses DROP TABLE while any statement is still
   * active on the connection (SQLITE_LOCKED), and a read that stopped early leaves its cursor
   * active until it is collected: then the empty tables stay until the object next starts.
   */
  /**
   * The highest seq the old schema ever gave: `AUTOINCREMENT` kept it in sqlite_sequence, and it
   * outlives the rows (an old log emptied by retention still gave those seqs to readers).
   */
  static highestSeq(sql: Sql): number {
    if (!tableExists(sql, 'sqlite_sequence')) return 0
    return (
      sql
        .exec<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'messages'")
        .toArray()[0]?.seq ?? 0
    )
  }

  static #drop(sql: Sql, kv: SyncKvStorage): void {
    kv.delete(LEGACY_PROGRESS_KEY)
    try {
      sql.exec('DROP TABLE IF EXISTS message_chunks')
      sql.exec('DROP TABLE IF EXISTS messages')
    } catch (error) {
      if (!String(error).includes('SQLITE_LOCKED')) throw error
    }
  }

  get minSeq(): number {
    return this.#minSeq
  }

  get maxSeq(): number {
    return this.#maxSeq
  }

  /** The old rows' running totals: all of them, and those gone so far. */
  get progress(): LegacyProgress {
    return this.#progress
  }

  /** Messages left in the old rows. */
  get messageCount(): number {
    return this.#progress.total.messages - this.#progress.done.messages
  }

  /** Frame octets left in the old rows. */
  get byteCount(): number {
    return this.#progress.total.bytes - this.#progress.done.bytes
  }

  #gone(messages: number, bytes: number): void {
    this.#progress = {
      total: this.#progress.total,
      done: {
        messages: this.#progress.done.messages + messages,
        bytes: this.#progress.done.bytes + bytes,
      },
    }
    this.#kv.put(LEGACY_PROGRESS_KEY, this.#progress)
  }

  /** When old row `seq` was stored (ms), if it is there. */
  storedAtOf(seq: number): number | undefined {
    return this.#sql
      .exec<{ stored_at: number }>('SELECT stored_at FROM messages WHERE seq = ?', seq)
      .toArray()[0]?.stored_at
  }

  /** The oldest old row as retention sees it. */
  head(): { firstSeq: number; lastSeq: number; bytes: number; storedAt: number } | undefined {
    const row = this.#sql
      .exec<{ seq: number; size: number; stored_at: number }>(
        'SELECT seq, size, stored_at FROM messages ORDER BY seq LIMIT 1',
      )
      .toArray()[0]
    return row
      ? { firstSeq: row.seq, lastSeq: row.seq, bytes: row.size, storedAt: row.stored_at }
      : undefined
  }

  /**
   * Deletes the oldest old row (retention).
   * @returns false when it was the last one: the tables are gone, and so is this log.
   */
  dropHead(): boolean {
    const head = this.head()
    if (!head) return false
    this.#sql.exec('DELETE FROM messages WHERE seq = ?', head.firstSeq)
    this.#sql.exec('DELETE FROM message_chunks WHERE seq = ?', head.firstSeq)
    this.#gone(1, head.bytes)
    return this.#advance()
  }

  /** Moves the minimum past what left; drops the tables when nothing is left. */
  #advance(): boolean {
    const next = this.#sql
      .exec<{ seq: number }>('SELECT seq FROM messages ORDER BY seq LIMIT 1')
      .toArray()[0]
    if (!next) {
      LegacyLog.#drop(this.#sql, this.#kv)
      return false
    }
    this.#minSeq = next.seq
    return true
  }

  /**
   * Moves the oldest old rows (at most {@link SLICE_MESSAGES} and about {@link SLICE_BYTES})
   * into segments, one per run of consecutive seqs stored at the same time, up to
   * SEGMENT_TARGET_BYTES. Run inside a transaction.
   * @returns false when the last row has moved: the tables are gone, and so is this log.
   */
  moveSlice(segments: SegmentStore): boolean {
    const rows = this.#rows('seq >= ? ORDER BY seq LIMIT ?', true, this.#minSeq, SLICE_MESSAGES)
    let bytes = 0
    let taken = 0
    for (const row of rows) {
      if (taken > 0 && bytes + row.size > SLICE_BYTES) break
      bytes += row.size
      taken++
    }
    const slice = rows.slice(0, taken)
    const messages = this.#withBodies(slice)
    let start = 0
    let done = { ...this.#progress.done }
    while (start < slice.length) {
      const first = slice[start] as LegacyRow
      let end = start + 1
      let runBytes = first.size
      while (end < slice.length) {
        const row = slice[end] as LegacyRow
        const previous = slice[end - 1] as LegacyRow
        if (row.seq !== previous.seq + 1 || row.stored_at !== first.stored_at) break
        if (runBytes + row.size > SEGMENT_TARGET_BYTES) break
        runBytes += row.size
        end++
      }
      segments.append(messages.slice(start, end), first.seq, first.stored_at, undefined, done)
      done = { messages: done.messages + end - start, bytes: done.bytes + runBytes }
      start = end
    }
    this.#sql.exec(
      'DELETE FROM messages WHERE seq >= ? AND seq <= ?',
      this.#minSeq,
      (slice.at(-1) as LegacyRow).seq,
    )
    this.#sql.exec(
      'DELETE FROM message_chunks WHERE seq >= ? AND seq <= ?',
      this.#minSeq,
      (slice.at(-1) as LegacyRow).seq,
    )
    this.#gone(slice.length, bytes)
    return this.#advance()
  }

  /** Old rows, their first chunk only for messages up to LARGE_MESSAGE_BYTES unless `all`. */
  #rows(where: string, all: boolean, ...bindings: SqlStorageValue[]): LegacyRow[] {
    return this.#sql
      .exec<LegacyRow>(
        `SELECT seq, received_at, stored_at, mechanism, peer_address, public_key, frame_count,
           size, CASE WHEN ? OR size <= ? THEN body END AS body, length(body) AS chunk_size
         FROM messages WHERE ${where}`,
        all ? 1 : 0,
        LARGE_MESSAGE_BYTES,
        ...bindings,
      )
      .toArray()
  }

  /** Relay messages of rows read with their first chunk, their other chunks joined. */
  #withBodies(rows: readonly LegacyRow[]): RelayMessage[] {
    const overflow = this.#overflow(rows)
    return rows.map((row) => {
      const body = joinChunks([
        new Uint8Array(row.body as ArrayBuffer),
        ...(overflow.get(row.seq) ?? []),
      ])
      const message: RelayMessage = {
        receivedAt: row.received_at,
        mechanism: row.mechanism as Mechanism,
        peerAddress: row.peer_address,
        frames: decodeBody(body, row.frame_count),
      }
      if (row.public_key) message.publicKey = new Uint8Array(row.public_key)
      return message
    })
  }

  /** The chunks after the first of the bodies read that have some, in one query. */
  #overflow(rows: readonly LegacyRow[]): Map<number, Uint8Array[]> {
    const overflowing = rows.flatMap((row) =>
      row.body !== null && row.chunk_size < bodyLength(row.size, row.frame_count) ? [row.seq] : [],
    )
    const overflow = new Map<number, Uint8Array[]>()
    if (overflowing.length === 0) return overflow
    for (const chunk of this.#sql.exec<{ seq: number; data: ArrayBuffer }>(
      `SELECT seq, data FROM message_chunks
       WHERE seq IN (SELECT value FROM json_each(?)) ORDER BY seq, idx`,
      JSON.stringify(overflowing),
    )) {
      const list = overflow.get(chunk.seq) ?? []
      list.push(new Uint8Array(chunk.data))
      overflow.set(chunk.seq, list)
    }
    return overflow
  }

  /** Old rows after `after` (through maxSeq), as reads give them. */
  read(after: number, limit: number, maxBytes: number): StoredMessage[] {
    const rows = this.#rows('seq > ? ORDER BY seq LIMIT ?', false, after, limit)
    return fitPage(this.#stored(rows), maxBytes)
  }

  /** What each old row of these seqs weighs against a page's cap, its body not read. */
  weights(seqs: readonly number[]): Map<number, number> {
    const out = new Map<number, number>()
    if (seqs.length === 0) return out
    for (const row of this.#sql.exec<{ seq: number; size: number; frame_count: number }>(
      'SELECT seq, size, frame_count FROM messages WHERE seq IN (SELECT value FROM json_each(?))',
      JSON.stringify(seqs),
    )) {
      out.set(
        row.seq,
        row.size > LARGE_MESSAGE_BYTES ? row.frame_count * 16 : row.size + row.frame_count,
      )
    }
    return out
  }

  /** Old rows with these seqs, in seq order. */
  readSeqs(seqs: readonly number[]): StoredMessage[] {
    if (seqs.length === 0) return []
    return this.#stored(
      this.#rows(
        'seq IN (SELECT value FROM json_each(?)) ORDER BY seq',
        false,
        JSON.stringify(seqs),
      ),
    )
  }

  #stored(rows: readonly LegacyRow[]): StoredMessage[] {
    const overflow = this.#overflow(rows)
    return rows.map((row): StoredMessage => {
      const head = {
        seq: row.seq,
        receivedAt: row.received_at,
        mechanism: row.mechanism as Mechanism,
        peerAddress: row.peer_address,
        size: row.size,
        ...(row.public_key ? { publicKey: new Uint8Array(row.public_key) } : {}),
      }
      if (row.body === null) {
        const frameSizes = this.#frameSizes(row)
        return { ...head, frames: null, frameSizes }
      }
      const body = joinChunks([new Uint8Array(row.body), ...(overflow.get(row.seq) ?? [])])
      return { ...head, frames: decodeBody(body, row.frame_count) }
    })
  }

  #frameSizes(row: { seq: number; size: number; frame_count: number; chunk_size: number }) {
    const chunkSize = Math.max(1, row.chunk_size)
    return frameSizesOf(
      (offset, length) => this.#readBody(row.seq, chunkSize, offset, length),
      bodyLength(row.size, row.frame_count),
      row.frame_count,
    )
  }

  /** Where frame `index` of old row `seq` lies, or undefined when there is no such row. */
  locateFrame(
    seq: number,
    index: number,
  ): LegacyFrameLocation | { frameCount: number } | undefined {
    const row = this.#sql
      .exec<{ seq: number; size: number; frame_count: number; chunk_size: number }>(
        'SELECT seq, size, frame_count, length(body) AS chunk_size FROM messages WHERE seq = ?',
        seq,
      )
      .toArray()[0]
    if (!row) return undefined
    if (index >= row.frame_count) return { frameCount: row.frame_count }
    const sizes = this.#frameSizes(row)
    return {
      legacySeq: seq,
      size: sizes[index] as number,
      offset: frameOffset(sizes, index),
      chunkSize: Math.max(1, row.chunk_size),
    }
  }

  /** Octets `[from, from + length)` of a frame {@link locateFrame} found. */
  readFrameRange(frame: LegacyFrameLocation, from: number, length: number): Uint8Array {
    return this.#readBody(frame.legacySeq, frame.chunkSize, frame.offset + from, length)
  }

  #readBody(seq: number, chunkSize: number, offset: number, length: number): Uint8Array {
    const range = { pieceBytes: chunkSize, offset, length }
    return readBodyPieces(this.#sql, LEGACY_BODY_PIECES, seq, range, `message ${seq}`)
  }
}

/** Octets of an old body's first chunk, for tests that write rows of the old schema. */
export const LEGACY_BODY_CHUNK_SIZE = LEGACY_CHUNK_SIZE
