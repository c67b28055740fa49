// The channel's log in SQLite as segments: a row holds a run of consecutive messages (a relay
// batch, or a part of one), encoded by ./segment-codec.ts. Seqs stay per message and the log is
// always one contiguous range of them (retention drops whole segments from its head), so the
// log's size and ends come from its first and last rows. Synchronous SQL only; every cursor is
// consumed (or left) before the method returns.

import type { Mechanism, RelayMessage, RelaySession } from '../shared/relay-protocol'
import { type PieceQueries, readBodyPieces } from './body-pieces'
import { splitChunks } from './message-body'
import type { Sql } from './row-meter'
import {
  decodeSegment,
  encodeSegment,
  type SegmentMessage,
  type SegmentMessageLayout,
  scanSegment,
} from './segment-codec'

/**
 * Largest value written to one SQLite column: a value holds about 2 MB at most (2.1 MiB gives
 * SQLITE_TOOBIG locally). A segment longer than this continues in segment_pieces.
 */
export const SEGMENT_PIECE_BYTES = 1024 * 1024

/**
 * Frame octets beyond which a segment takes no more messages: segments of small messages stay
 * within one value, and a message alone over it gets a segment (in pieces) of its own.
 */
export const SEGMENT_TARGET_BYTES = 512 * 1024

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
  /** The name of the key's registry record when the message was relayed. */
  keyName?: string
  /** The frames' octets, all together. */
  size: number
}

/** A message read with its frames. */
export interface InlineMessage extends MessageHead {
  frames: Uint8Array[]
}

/** A message over {@link LARGE_MESSAGE_BYTES}, read without its frames: only their sizes. */
export interface LargeMessage extends MessageHead {
  frames: null
  /** Each frame's octets, in order (as many as the message has frames). */
  frameSizes: number[]
}

/** One stored message as the Durable Object returns it over RPC: raw bytes, no formatting. */
export type StoredMessage = InlineMessage | LargeMessage

/** Some of a segment's messages, as its encoded octets (./segment-codec.ts). */
export interface SegmentPart {
  segment: Uint8Array
  /** The seq of the segment's first message. */
  firstSeq: number
  /** Its messages `from` to `from + count - 1` are in the page. */
  from: number
  count: number
}

/** A page of messages in seq order, in parts: runs of a segment, or messages. */
export interface MessagePage {
  parts: (SegmentPart | { messages: StoredMessage[] })[]
  /** Messages in all the parts. */
  count: number
}

/**
 * The messages of a page, in order. Runs in the Worker as well as the object: segments are
 * decoded where they are formatted.
 * @throws RangeError when a segment is corrupt.
 */
export function pageMessages(page: MessagePage): StoredMessage[] {
  const out: StoredMessage[] = []
  for (const part of page.parts) {
    if ('messages' in part) {
      for (const message of part.messages) out.push(message)
      continue
    }
    const decoded = decodeSegment(part.segment, { from: part.from, count: part.count })
    const first = part.firstSeq + part.from
    decoded.forEach((message, index) => {
      out.push(inline(first + index, message))
    })
  }
  return out
}

/** A message whose frames own their octets (not views of a segment sent whole with it). */
function detached(message: StoredMessage): StoredMessage {
  const copy: StoredMessage =
    message.frames === null
      ? { ...message }
      : { ...message, frames: message.frames.map((f) => f.slice()) }
  if (message.publicKey) copy.publicKey = message.publicKey.slice()
  return copy
}

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

/**
 * What a message weighs against a page's `maxBytes`: its frame octets and one per frame (so
 * thousands of empty frames weigh something too: each is at least `""` in the JSON), or for a
 * large message (listed without them) {@link LISTED_FRAME_BYTES} per frame. A segment's
 * encoded length is at least the weight of its messages (each frame has a length octet).
 */
export function listedBytes(message: StoredMessage): number {
  return message.frames === null
    ? message.frameSizes.length * LISTED_FRAME_BYTES
    : message.size + message.frames.length
}

/**
 * The longest prefix of `messages` whose weights ({@link listedBytes}) add up to at most
 * `maxBytes`; the first always, however large, so a reader can always make progress.
 */
export function fitPage<Message extends StoredMessage>(
  messages: readonly Message[],
  maxBytes: number,
): Message[] {
  let total = 0
  let count = 0
  for (const message of messages) {
    const weight = listedBytes(message)
    if (count > 0 && total + weight > maxBytes) break
    total += weight
    count++
  }
  return count === messages.length ? (messages as Message[]) : messages.slice(0, count)
}

/** Where one frame of a stored message lies, for {@link SegmentStore.readFrameRange}. */
export interface FrameLocation {
  /** The segment holding it. */
  firstSeq: number
  /** The frame's octets. */
  size: number
  /** Where its octets start in the encoded segment. */
  offset: number
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

/** A segment's row, without its data. */
export interface SegmentInfo {
  firstSeq: number
  lastSeq: number
  storedAt: number
  /** Its messages (seqs `firstSeq` to `lastSeq`, all of them but in segments of older rows). */
  count: number
  /** Frame octets of its messages. */
  bytes: number
  /** Messages of the log through this segment, counted from the first segment ever. */
  logMessages: number
  /** Frame octets of the log through this segment, counted from the first segment ever. */
  logBytes: number
  /** Octets of the encoded segment. */
  length: number
  /** The batch that stored it, on a batch's last segment. */
  origin?: SegmentOrigin
}

/** What a batch's last segment records: the session and number that stored it. */
export interface SegmentOrigin {
  bridgeId: string
  epoch: number
  batchSeq: number
  /** The channel's billed rows so far (see ./row-meter.ts). */
  rows?: { rowsRead: number; rowsWritten: number }
}

interface SegmentRow extends Record<string, SqlStorageValue> {
  first_seq: number
  last_seq: number
  stored_at: number
  count: number
  bytes: number
  log_messages: number
  log_bytes: number
  length: number
  bridge_id: string | null
  epoch: number | null
  batch_seq: number | null
}

interface SegmentDataRow extends SegmentRow {
  /** The whole encoded segment when it fits one piece; null otherwise (read by piece). */
  data: ArrayBuffer | null
}

const INFO_COLUMNS =
  'first_seq, last_seq, stored_at, count, bytes, log_messages, log_bytes, length, bridge_id, epoch, batch_seq'
/** The data only of a segment that is one piece: the others are read a piece at a time. */
const DATA_COLUMNS = `${INFO_COLUMNS}, CASE WHEN length <= ${SEGMENT_PIECE_BYTES} THEN data END AS data`

function infoOf(row: SegmentRow): SegmentInfo {
  const info = infoColumns(row)
  if (typeof row.bridge_id === 'string' && row.epoch != null && row.batch_seq != null) {
    info.origin = { bridgeId: row.bridge_id, epoch: row.epoch, batchSeq: row.batch_seq }
  }
  return info
}

function infoColumns(row: SegmentRow): SegmentInfo {
  return {
    firstSeq: row.first_seq,
    lastSeq: row.last_seq,
    storedAt: row.stored_at,
    count: row.count,
    bytes: row.bytes,
    logMessages: row.log_messages,
    logBytes: row.log_bytes,
    length: row.length,
  }
}

function frameBytes(message: RelayMessage): number {
  let size = 0
  for (const frame of message.frames) size += frame.length
  return size
}

/**
 * At least what a message takes in a segment: its frames and their lengths, its time and
 * peer index, and its peer's entry (if new), so segments are cut by what they hold, not by
 * frame octets alone (thousands of empty frames are octets too).
 */
function encodedBound(message: RelayMessage): number {
  const name = message.keyName === undefined ? 0 : 2 + message.keyName.length * 3
  return (
    frameBytes(message) +
    5 * message.frames.length +
    24 +
    message.peerAddress.length * 3 +
    34 +
    name
  )
}

/**
 * Frame sizes of large messages kept in memory, counted in sizes (a number each): enough for
 * hundreds of messages of a few frames, and at most about 0.5 MB. A segment never changes and
 * seqs are never reused, so what is kept never goes stale.
 */
const CACHED_FRAME_SIZES = 65_536

/**
 * Segments searched, newest first, for a resent batch's seqs: a bridge has at most its window of
 * batches in flight (16 by default), each one segment or a few, and other bridges' batches come
 * between, so this covers the resends of lost ACKs. Rows read are the segments stepped back
 * from the newest, at most this many, and only for a resend.
 */
export const DUPLICATE_SEARCH_SEGMENTS = 4096

/** A segment's octets: piece 0 in segments.data, pieces 1… in segment_pieces. */
const SEGMENT_PIECES: PieceQueries = {
  first: 'SELECT substr(data, ?, ?) AS data FROM segments WHERE first_seq = ?',
  rest: 'SELECT substr(data, ?, ?) AS data FROM segment_pieces WHERE first_seq = ? AND idx = ?',
}

/** SQL access to one channel's segments. The schema is `./schema.ts`; migrate first. */
export class SegmentStore {
  readonly #sql: Sql
  /** The oldest and newest segments, when there are any: the log's ends, without a query. */
  #head: SegmentInfo | undefined
  #tail: SegmentInfo | undefined
  /** Receive times of the log's ends, read when first asked. */
  #ends: { oldest?: LogEnd; newest?: LogEnd } | undefined
  /** Layouts of the large messages read lately, by seq, least recently used first. */
  readonly #layouts = new Map<number, SegmentMessageLayout>()
  #cachedSizes = 0

  constructor(sql: Sql) {
    this.#sql = sql
    this.#head = this.#end('ASC')
    this.#tail = this.#end('DESC')
  }

  #end(order: 'ASC' | 'DESC'): SegmentInfo | undefined {
    const row = this.#sql
      .exec<SegmentRow>(`SELECT ${INFO_COLUMNS} FROM segments ORDER BY first_seq ${order} LIMIT 1`)
      .toArray()[0]
    return row ? infoOf(row) : undefined
  }

  /** The oldest segment, if any. */
  get head(): SegmentInfo | undefined {
    return this.#head
  }

  /** The newest segment, if any. */
  get tail(): SegmentInfo | undefined {
    return this.#tail
  }

  /** Messages in the segments. */
  get messageCount(): number {
    return this.#head && this.#tail
      ? this.#tail.logMessages - this.#head.logMessages + this.#head.count
      : 0
  }

  /** Frame octets in the segments. */
  get byteCount(): number {
    return this.#head && this.#tail
      ? this.#tail.logBytes - this.#head.logBytes + this.#head.bytes
      : 0
  }

  /**
   * Stores `messages` as the seqs from `firstSeq` on, in as few segments as fit (one, unless
   * the batch holds more than {@link SEGMENT_TARGET_BYTES} of frames). The last segment records
   * `origin`. Run inside the caller's transaction.
   * @param before the log's running totals before these (the previous segment's `logMessages`
   * and `logBytes`); by default the newest segment's.
   * @returns the segments written, oldest first.
   */
  append(
    messages: readonly RelayMessage[],
    firstSeq: number,
    storedAt: number,
    origin?: SegmentOrigin,
    before = { messages: this.#tail?.logMessages ?? 0, bytes: this.#tail?.logBytes ?? 0 },
  ): SegmentInfo[] {
    const written: SegmentInfo[] = []
    let start = 0
    let seq = firstSeq
    let logMessages = before.messages
    let logBytes = before.bytes
    while (start < messages.length) {
      let end = start
      let bytes = 0
      let bound = 0
      do {
        bytes += frameBytes(messages[end] as RelayMessage)
        bound += encodedBound(messages[end] as RelayMessage)
        end++
      } while (
        end < messages.length &&
        bound + encodedBound(messages[end] as RelayMessage) <= SEGMENT_TARGET_BYTES
      )
      const part = start === 0 && end === messages.length ? messages : messages.slice(start, end)
      const encoded = encodeSegment(part)
      const last = end === messages.length
      logBytes += bytes
      logMessages += part.length
      const info: SegmentInfo = {
        firstSeq: seq,
        lastSeq: seq + part.length - 1,
        storedAt,
        count: part.length,
        bytes,
        logMessages,
        logBytes,
        length: encoded.length,
      }
      if (last && origin) info.origin = origin
      this.#write(info, encoded, info.origin)
      written.push(info)
      seq += part.length
      start = end
    }
    return written
  }

  #write(info: SegmentInfo, encoded: Uint8Array, origin: SegmentOrigin | undefined): void {
    const pieces =
      encoded.length <= SEGMENT_PIECE_BYTES ? [encoded] : splitChunks(encoded, SEGMENT_PIECE_BYTES)
    this.#sql.exec(
      `INSERT INTO segments
         (first_seq, last_seq, stored_at, count, bytes, log_messages, log_bytes, length,
          bridge_id, epoch, batch_seq, rows_read, rows_written, data)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      info.firstSeq,
      info.lastSeq,
      info.storedAt,
      info.count,
      info.bytes,
      info.logMessages,
      info.logBytes,
      info.length,
      origin?.bridgeId ?? null,
      origin?.epoch ?? null,
      origin?.batchSeq ?? null,
      origin?.rows?.rowsRead ?? null,
      origin?.rows?.rowsWritten ?? null,
      pieces[0] as Uint8Array,
    )
    for (let idx = 1; idx < pieces.length; idx++) {
      this.#sql.exec(
        'INSERT INTO segment_pieces (first_seq, idx, data) VALUES (?, ?, ?)',
        info.firstSeq,
        idx,
        pieces[idx] as Uint8Array,
      )
    }
    if (!this.#tail || info.firstSeq > this.#tail.firstSeq) this.#tail = info
    if (!this.#head || info.firstSeq < this.#head.firstSeq) this.#head = info
    this.#ends = undefined
  }

  /**
   * Deletes the oldest segment (and its pieces). Run inside the caller's transaction.
   * @returns what it held, or undefined when there is none.
   */
  dropOldest(): SegmentInfo | undefined {
    const head = this.#head
    if (!head) return undefined
    this.#sql.exec('DELETE FROM segments WHERE first_seq = ?', head.firstSeq)
    if (head.length > SEGMENT_PIECE_BYTES) {
      this.#sql.exec('DELETE FROM segment_pieces WHERE first_seq = ?', head.firstSeq)
    }
    this.#head = this.#end('ASC')
    if (!this.#head) this.#tail = undefined
    this.#ends = undefined
    return head
  }

  /**
   * The seqs a session's batch was stored under, for the ACK of its resend: found by the segment
   * that records the batch (its last: ./message-store.ts writes the origin there), among the
   * newest {@link DUPLICATE_SEARCH_SEGMENTS} segments, which hold any batch a bridge can still
   * have in flight; then back over the batch's earlier segments (they record no origin) to the
   * segment that ends another batch, checking they hold `count` messages, the resend's (a walk
   * that passes `count` stops there).
   * Undefined when the segment is not among them (retention dropped it, the batch was used up)
   * or the stored batch is not `count` long: no seqs rather than wrong ones. `count` may depend
   * on where the batch starts (a batch that stored some of its messages only: its keyed ones
   * stored before are not in it); it must not fall as the start moves back.
   */
  seqsOfBatch(
    session: RelaySession,
    batchSeq: number,
    count: number | ((firstSeq: number) => number),
  ): { firstSeq: number; lastSeq: number } | undefined {
    const countFrom = typeof count === 'number' ? () => count : count
    // One cursor, newest first, stepped only as far as needed: rows read are the segments
    // stepped (a resend of the newest batch: its segment and the one before).
    const segments = this.#sql.exec<{
      first_seq: number
      last_seq: number
      count: number
      bridge_id: string | null
      epoch: number | null
      batch_seq: number | null
    }>(
      `SELECT first_seq, last_seq, count, bridge_id, epoch, batch_seq FROM segments
       ORDER BY first_seq DESC`,
    )
    let stepped = 0
    let lastSeq: number | undefined
    let firstSeq = 0
    let held = 0
    for (const segment of segments) {
      if (lastSeq === undefined) {
        if (++stepped > DUPLICATE_SEARCH_SEGMENTS) return undefined
        const names =
          segment.bridge_id === session.bridgeId &&
          segment.epoch === session.epoch &&
          segment.batch_seq === batchSeq
        if (!names) continue
        lastSeq = segment.last_seq
      } else if (segment.bridge_id !== null) {
        // The segment before the batch ends another batch: the batch is all stepped over.
        return held === countFrom(firstSeq) ? { firstSeq, lastSeq } : undefined
      }
      firstSeq = segment.first_seq
      held += segment.count
      if (held > countFrom(firstSeq)) return undefined
    }
    // The log's first segments: the batch is all there only if they add up.
    return lastSeq !== undefined && held === countFrom(firstSeq) ? { firstSeq, lastSeq } : undefined
  }

  /** The segment holding `seq`, or else the last one before it, if any (one indexed read). */
  atOrBefore(seq: number): SegmentInfo | undefined {
    const row = this.#rowAtOrBefore<SegmentRow>(INFO_COLUMNS, seq)
    return row ? infoOf(row) : undefined
  }

  /** `columns` of the segment holding `seq`, or else of the last one before it. */
  #rowAtOrBefore<Row extends Record<string, SqlStorageValue>>(
    columns: string,
    seq: number,
  ): Row | undefined {
    return this.#sql
      .exec<Row>(
        `SELECT ${columns} FROM segments
         WHERE first_seq = (SELECT MAX(first_seq) FROM segments WHERE first_seq <= ?)`,
        seq,
      )
      .toArray()[0]
  }

  /**
   * Messages and frame octets of the whole segments before the one holding `seq` (or before
   * `seq`, when no segment holds it): what dropping the head up to it frees.
   */
  freedBefore(seq: number): { messages: number; bytes: number } {
    const head = this.#head
    if (!head || seq <= head.firstSeq) return { messages: 0, bytes: 0 }
    const segment = this.atOrBefore(seq)
    if (!segment) return { messages: 0, bytes: 0 }
    const holds = segment.lastSeq >= seq
    const messages = holds ? segment.logMessages - segment.count : segment.logMessages
    const bytes = holds ? segment.logBytes - segment.bytes : segment.logBytes
    return {
      messages: messages - (head.logMessages - head.count),
      bytes: bytes - (head.logBytes - head.bytes),
    }
  }

  /** The oldest and newest message (seq and receive time), when there is one. */
  bounds(): { oldest?: LogEnd; newest?: LogEnd } {
    if (!this.#head || !this.#tail) return {}
    if (this.#ends) return this.#ends
    const end = (seq: number) => pageMessages(this.#readRange(seq, seq, 1, Infinity))[0]
    const oldest = end(this.#head.firstSeq)
    const newest = end(this.#tail.lastSeq)
    this.#ends =
      oldest && newest
        ? {
            oldest: { seq: oldest.seq, receivedAt: oldest.receivedAt },
            newest: { seq: newest.seq, receivedAt: newest.receivedAt },
          }
        : {}
    return this.#ends
  }

  /**
   * Reads the messages after `options.after` (through `through`, when given), in seq order,
   * within `limit` and `maxBytes`. Large messages come without their frames.
   * @throws RangeError when a stored segment is corrupt.
   */
  read(options: ReadOptions & { through?: number }): StoredMessage[] {
    return pageMessages(this.readPage(options))
  }

  /**
   * {@link read} as stored: runs of a segment's messages as the segment's own octets (what a page
   * of small messages mostly is: a few buffers to pass on, not thousands of objects), the rest
   * as messages.
   */
  readPage(options: ReadOptions & { through?: number }): MessagePage {
    const { after, limit, maxBytes, through = Number.MAX_SAFE_INTEGER } = options
    return this.#readRange(after + 1, through, limit, maxBytes)
  }

  /** Messages from seq `from` to `through`, at most `limit`, within `maxBytes`. */
  #readRange(from: number, through: number, limit: number, maxBytes: number): MessagePage {
    const page: MessagePage = { parts: [], count: 0 }
    if (from > through) return page
    let total = 0
    // The segment holding `from`, then the ones after it, stepped only as far as the page goes.
    const cursor = this.#sql.exec<SegmentDataRow>(
      `SELECT ${DATA_COLUMNS} FROM segments
       WHERE first_seq >= COALESCE((SELECT MAX(first_seq) FROM segments WHERE first_seq <= ?), 0)
         AND first_seq <= ?
       ORDER BY first_seq`,
      from,
      through,
    )
    for (const row of cursor) {
      if (row.last_seq < from) continue
      const skip = Math.max(0, from - row.first_seq)
      const count = Math.min(row.last_seq, through) - row.first_seq + 1 - skip
      const wanted = Math.min(count, limit - page.count)
      // A segment in one value holds messages that are not large, each weighing its frame
      // octets: when all of them fit (and are most of it), the page takes them undecoded.
      const most = wanted * 4 >= row.last_seq - row.first_seq + 1 || row.length <= 64 * 1024
      if (row.data !== null && most && total + row.length <= maxBytes) {
        total += row.length
        page.parts.push({
          segment: new Uint8Array(row.data),
          firstSeq: row.first_seq,
          from: skip,
          count: wanted,
        })
        page.count += wanted
        if (page.count >= limit || row.last_seq >= through) break
        continue
      }
      const messages = this.#messagesOf(row, skip, wanted)
      let taken = 0
      let full = false
      let takenBytes = 0
      for (const message of messages) {
        const weight = listedBytes(message)
        if (page.count + taken > 0 && total + weight > maxBytes) {
          full = true
          break
        }
        total += weight
        takenBytes += message.size
        taken++
      }
      if (taken > 0) {
        // A segment's octets go whole: passed on when most of them are wanted, else the copies
        // of the few messages wanted, so a page never carries much it does not show.
        if (row.data !== null && takenBytes * 4 >= row.length) {
          page.parts.push({
            segment: new Uint8Array(row.data),
            firstSeq: row.first_seq,
            from: skip,
            count: taken,
          })
        } else {
          page.parts.push({ messages: messages.slice(0, taken).map(detached) })
        }
        page.count += taken
      }
      if (full || page.count >= limit || row.last_seq >= through) break
    }
    return page
  }

  /**
   * Reads the messages with these seqs, in seq order; seqs not stored are left out. Large
   * messages come without their frames.
   * @throws RangeError when a stored segment is corrupt.
   */
  readSeqs(seqs: readonly number[]): StoredMessage[] {
    const out: StoredMessage[] = []
    for (const { row, wanted } of this.#segmentsHolding(seqs)) {
      // Decoded from the first to the last wanted seq, the ones between left out.
      const first = wanted[0] as number
      const keep = new Set(wanted)
      const messages = this.#messagesOf(
        row,
        first - row.first_seq,
        (wanted.at(-1) as number) - first + 1,
      )
      for (const message of messages) if (keep.has(message.seq)) out.push(message)
    }
    return out
  }

  /**
   * What each of these seqs weighs against a page's cap (see {@link listedBytes}), without
   * reading a message in pieces: so a pull fits its batch before it reads any large body.
   * Seqs not stored are left out.
   */
  weights(seqs: readonly number[]): Map<number, number> {
    const out = new Map<number, number>()
    for (const { row, wanted } of this.#segmentsHolding(seqs)) {
      if (row.data === null) {
        // In pieces: one message, weighed by the row (and its layout, when large).
        // (Not large: its encoded length bounds its frames and their count.)
        out.set(
          row.first_seq,
          row.bytes > LARGE_MESSAGE_BYTES
            ? this.#layoutOf(row).frameSizes.length * LISTED_FRAME_BYTES
            : row.length,
        )
        continue
      }
      const first = wanted[0] as number
      const decoded = decodeSegment(new Uint8Array(row.data), {
        from: first - row.first_seq,
        count: (wanted.at(-1) as number) - first + 1,
      })
      const keep = new Set(wanted)
      decoded.forEach((message, offset) => {
        if (keep.has(first + offset)) out.set(first + offset, message.size + message.frames.length)
      })
    }
    return out
  }

  /**
   * The segments holding any of `seqs`, oldest first, each with the seqs (sorted, distinct) it
   * holds; seqs no segment holds are left out. One indexed read a segment.
   */
  *#segmentsHolding(seqs: readonly number[]): Generator<{ row: SegmentDataRow; wanted: number[] }> {
    const sorted = [...new Set(seqs)].sort((a, b) => a - b)
    let index = 0
    while (index < sorted.length) {
      const row = this.#segmentOf(sorted[index] as number)
      if (!row) {
        index++
        continue
      }
      let end = index
      while (end < sorted.length && (sorted[end] as number) <= row.last_seq) end++
      yield { row, wanted: sorted.slice(index, end) }
      index = end
    }
  }

  /** The row of the segment holding `seq`, or undefined when no segment does. */
  #segmentOf(seq: number): SegmentDataRow | undefined {
    const row = this.#rowAtOrBefore<SegmentDataRow>(DATA_COLUMNS, seq)
    return row && row.last_seq >= seq ? row : undefined
  }

  /** The messages `skip` to `skip + count - 1` of a segment's row. */
  #messagesOf(row: SegmentDataRow, skip: number, count: number): StoredMessage[] {
    if (count <= 0) return []
    if (row.data !== null) {
      const decoded = decodeSegment(new Uint8Array(row.data), { from: skip, count })
      return decoded.map((message, index) => inline(row.first_seq + skip + index, message))
    }
    // A segment in pieces holds one message (over SEGMENT_TARGET_BYTES on its own).
    if (row.bytes > LARGE_MESSAGE_BYTES) {
      const layout = this.#layoutOf(row)
      const { framesOffset: _, ...head } = layout
      return [{ ...head, seq: row.first_seq, frames: null }]
    }
    const whole = this.#readSegment(row.first_seq, 0, row.length)
    const decoded = decodeSegment(whole, { from: skip, count })
    return decoded.map((message, index) => inline(row.first_seq + skip + index, message))
  }

  /** The layout of the one message of a segment in pieces (remembered for the next read). */
  #layoutOf(row: SegmentRow): SegmentMessageLayout {
    const cached = this.#layouts.get(row.first_seq)
    if (cached) {
      // Most recently used last.
      this.#layouts.delete(row.first_seq)
      this.#layouts.set(row.first_seq, cached)
      return cached
    }
    const layouts = scanSegment(
      (offset, length) => this.#readSegment(row.first_seq, offset, length),
      row.length,
    )
    const layout = layouts[0]
    if (layouts.length !== 1 || !layout) {
      throw new RangeError(`segment ${row.first_seq} in pieces holds ${layouts.length} messages`)
    }
    this.#layouts.set(row.first_seq, layout)
    this.#cachedSizes += layout.frameSizes.length
    for (const [oldest, evicted] of this.#layouts) {
      if (this.#cachedSizes <= CACHED_FRAME_SIZES) break
      this.#layouts.delete(oldest)
      this.#cachedSizes -= evicted.frameSizes.length
    }
    return layout
  }

  /**
   * Octets `[offset, offset + length)` of segment `firstSeq`, each part cut out of its piece by
   * SQLite (`substr` on a BLOB counts octets), so only the range reaches JavaScript.
   * @throws RangeError when the segment is gone (retention) or shorter than asked.
   */
  #readSegment(firstSeq: number, offset: number, length: number): Uint8Array {
    const range = { pieceBytes: SEGMENT_PIECE_BYTES, offset, length }
    return readBodyPieces(this.#sql, SEGMENT_PIECES, firstSeq, range, `segment ${firstSeq}`)
  }

  /**
   * Where frame `index` of message `seq` lies, reading the segment's head, not its frames'
   * octets (for a segment in pieces).
   * @throws RangeError when the stored segment is corrupt.
   */
  locateFrame(seq: number, index: number): FrameLookup {
    const row = this.#segmentOf(seq)
    if (!row) return { status: 'message_not_found' }
    const layout =
      row.data === null
        ? this.#layoutOf(row)
        : scanSegment(
            (offset, length) =>
              new Uint8Array(row.data as ArrayBuffer, offset, Math.max(0, length)),
            row.length,
          )[seq - row.first_seq]
    if (!layout) return { status: 'message_not_found' }
    const { frameSizes } = layout
    if (index >= frameSizes.length) {
      return { status: 'frame_not_found', frameCount: frameSizes.length }
    }
    let offset = layout.framesOffset
    for (let before = 0; before < index; before++) offset += frameSizes[before] as number
    return { status: 'found', firstSeq: row.first_seq, size: frameSizes[index] as number, offset }
  }

  /**
   * Octets `[from, from + length)` of a frame {@link locateFrame} found, read from the pieces
   * they lie in and nothing else.
   * @throws RangeError when the segment is gone (retention removed it) or the range is out of
   * the frame.
   */
  readFrameRange(frame: FrameLocation, from: number, length: number): Uint8Array {
    if (from < 0 || length < 0 || from + length > frame.size) {
      throw new RangeError(`octets ${from}+${length} are not in a frame of ${frame.size}`)
    }
    if (length === 0) return new Uint8Array(0)
    return this.#readSegment(frame.firstSeq, frame.offset + from, length)
  }
}

function inline(seq: number, message: SegmentMessage): InlineMessage {
  const stored: InlineMessage = {
    seq,
    receivedAt: message.receivedAt,
    mechanism: message.mechanism,
    peerAddress: message.peerAddress,
    size: message.size,
    frames: message.frames,
  }
  if (message.publicKey) stored.publicKey = message.publicKey
  if (message.keyName !== undefined) stored.keyName = message.keyName
  return stored
}
