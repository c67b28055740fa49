// The spool's record format: pure encode and decode over Uint8Array, no files. A segment is a
// sequence of records, each `u32 length | u32 crc32(body) | body`, body = `u8 kind | payload`,
// big-endian like the relay protocol. A MESSAGE payload is laid out as a relay BATCH frame
// holding that one message (its batchSeq field carries the message id): the message in the wire
// codec, behind a prefix that names the layout. Version 1's prefix (the message laid out as in
// relay versions 1 and 2) is written for every message without an idempotency key or a key
// name, so spools written by earlier bridges still read; a message with a key is laid out as in
// relay version 3 behind a prefix that says 3, one with a key name as in version 4 behind a
// prefix that says 4. An older bridge reads a record of a newer layout as corrupt (and sets the
// rest of the spool aside): downgrade only with an empty spool.
import {
  decodeBatchBody,
  encodeBatch,
  type RelayMessage,
  type RelayProtocolVersion,
} from '../../../shared/relay-protocol.ts'
import { crc32 } from './crc32.ts'

/**
 * The HEADER record's format. 1: no epoch (read as epoch 0, the number the Durable Object gives
 * a bridge's rows from before epochs); 2: the epoch follows `ackedBelow`. Other records are the
 * same in both. Written: the latest; read: any of them.
 */
export const SpoolFormat = { BEFORE_EPOCH: 1, EPOCH: 2 } as const
export const SPOOL_FORMAT_VERSION = SpoolFormat.EPOCH

/** First octet of a record body. */
export const SpoolRecordKind = { HEADER: 0x01, MESSAGE: 0x02, SEAL: 0x03, ACK: 0x04 } as const
export type SpoolRecordKind = (typeof SpoolRecordKind)[keyof typeof SpoolRecordKind]

/** `length` and `crc32` before each body. */
export const RECORD_PREFIX_SIZE = 8
/** Larger lengths are garbage, not records (a message is at most the 32 MiB batch limit). */
export const MAX_RECORD_BODY = 64 * 1024 * 1024
const HEADER_MAGIC = 0x5a455350 // "ZESP"
const UINT32_LIMIT = 0x1_0000_0000
/**
 * What starts every MESSAGE payload: a version 1 BATCH header (kind 1, version 1, reserved) and
 * its bridge id field, "spool" (not the real one). The batch number, count and message follow.
 */
const MESSAGE_PREFIX = Uint8Array.of(0x01, 0x01, 0x00, 0x00, 0x05, 0x73, 0x70, 0x6f, 0x6f, 0x6c)
/** Octet of the prefix that names the layout. */
const PREFIX_VERSION_OFFSET = 1
/** The same with 3 or 4: a message laid out as in that relay version. */
function prefixOfLayout(version: 3 | 4): Uint8Array {
  const prefix = MESSAGE_PREFIX.slice()
  prefix[PREFIX_VERSION_OFFSET] = version
  return prefix
}
/** Each layout a record may have: its prefix, and the relay version its message is laid out in. */
const LAYOUTS: ReadonlyMap<number, { prefix: Uint8Array; version: RelayProtocolVersion }> = new Map(
  [
    [1, { prefix: MESSAGE_PREFIX, version: 2 }],
    [3, { prefix: prefixOfLayout(3), version: 3 }],
    [4, { prefix: prefixOfLayout(4), version: 4 }],
  ],
)

// The oldest layout that holds all of `message`, so older bridges read what they can.
function layoutOf(message: RelayMessage): { prefix: Uint8Array; version: RelayProtocolVersion } {
  const layout =
    message.keyName !== undefined
      ? LAYOUTS.get(4)
      : message.idempotencyKey !== undefined
        ? LAYOUTS.get(3)
        : LAYOUTS.get(1)
  return layout as { prefix: Uint8Array; version: RelayProtocolVersion }
}
/** The relay BATCH frame header that the message prefix stands in for. */
const BATCH_FRAME_HEADER_SIZE = 4

/** A sealed batch: its number and the consecutive message ids it holds. */
export interface SealRange {
  batchSeq: number
  firstId: number
  count: number
}

/** Starts each segment: who wrote it, and the state before its first record (a snapshot). */
export interface HeaderRecord {
  type: 'header'
  bridgeId: string
  /**
   * The relay dedup epoch of the batch numbers, drawn once per spool (1..2^53-1); 0 for a spool
   * written before epochs existed.
   */
  epoch: number
  /** The segment's own number, also its file name. */
  segment: number
  /** The id the segment's first MESSAGE gets. */
  nextMessageId: number
  nextBatchSeq: number
  /** Every message id below this one is acknowledged. */
  ackedBelow: number
  /** The sealed, unacknowledged batches, in order. */
  seals: SealRange[]
}

export interface MessageRecord {
  type: 'message'
  id: number
  message: RelayMessage
}

/** A batch was sealed; it replaces every earlier SEAL numbered `batchSeq` or higher (1009 split). */
export interface SealRecord extends SealRange {
  type: 'seal'
}

/** The Durable Object stored every batch up to `batchSeq`. */
export interface AckRecord {
  type: 'ack'
  batchSeq: number
}

export type SpoolRecord = HeaderRecord | MessageRecord | SealRecord | AckRecord

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function setUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / UINT32_LIMIT))
  view.setUint32(offset + 4, value % UINT32_LIMIT)
}

function getUint64(view: DataView, offset: number): number {
  return view.getUint32(offset) * UINT32_LIMIT + view.getUint32(offset + 4)
}

/** Frames a body: length, checksum, body. */
function frame(body: Uint8Array): Uint8Array {
  const out = new Uint8Array(RECORD_PREFIX_SIZE + body.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, body.length)
  view.setUint32(4, crc32(body))
  out.set(body, RECORD_PREFIX_SIZE)
  return out
}

/**
 * HEADER body, format 2: kind, magic "ZESP" (u32), version (u8), bridge id length (u8), bridge
 * id, then u64 segment, nextMessageId, nextBatchSeq, ackedBelow and epoch, u32 seal count and
 * the seals (u64 batchSeq, u64 firstId, u32 count). Format 1 is the same without the epoch.
 */
export function encodeHeaderRecord(header: Omit<HeaderRecord, 'type'>): Uint8Array {
  const id = encoder.encode(header.bridgeId)
  const body = new Uint8Array(1 + 4 + 1 + 1 + id.length + 8 * 5 + 4 + header.seals.length * 20)
  const view = new DataView(body.buffer)
  let offset = 0
  body[offset++] = SpoolRecordKind.HEADER
  view.setUint32(offset, HEADER_MAGIC)
  offset += 4
  body[offset++] = SPOOL_FORMAT_VERSION
  body[offset++] = id.length
  body.set(id, offset)
  offset += id.length
  for (const value of [
    header.segment,
    header.nextMessageId,
    header.nextBatchSeq,
    header.ackedBelow,
    header.epoch,
  ]) {
    setUint64(view, offset, value)
    offset += 8
  }
  view.setUint32(offset, header.seals.length)
  offset += 4
  for (const seal of header.seals) {
    setUint64(view, offset, seal.batchSeq)
    setUint64(view, offset + 8, seal.firstId)
    view.setUint32(offset + 16, seal.count)
    offset += 20
  }
  return frame(body)
}

/**
 * A MESSAGE record as three pieces (prefix and kind, the message prefix, then the batch body),
 * to write with one writev and no copy.
 */
export function encodeMessageRecord(
  id: number,
  message: RelayMessage,
): [Uint8Array, Uint8Array, Uint8Array] {
  const { prefix, version } = layoutOf(message)
  const batch = encodeBatch({ batchSeq: id, messages: [message] }, version).subarray(
    BATCH_FRAME_HEADER_SIZE,
  )
  const head = new Uint8Array(RECORD_PREFIX_SIZE + 1)
  head[RECORD_PREFIX_SIZE] = SpoolRecordKind.MESSAGE
  const view = new DataView(head.buffer)
  view.setUint32(0, 1 + prefix.length + batch.length)
  const crc = crc32(batch, crc32(prefix, crc32(head.subarray(RECORD_PREFIX_SIZE))))
  view.setUint32(4, crc)
  return [head, prefix, batch]
}

export function encodeSealRecord(seal: SealRange): Uint8Array {
  const body = new Uint8Array(1 + 8 + 8 + 4)
  const view = new DataView(body.buffer)
  body[0] = SpoolRecordKind.SEAL
  setUint64(view, 1, seal.batchSeq)
  setUint64(view, 9, seal.firstId)
  view.setUint32(17, seal.count)
  return frame(body)
}

export function encodeAckRecord(batchSeq: number): Uint8Array {
  const body = new Uint8Array(1 + 8)
  body[0] = SpoolRecordKind.ACK
  setUint64(new DataView(body.buffer), 1, batchSeq)
  return frame(body)
}

/** Why reading stopped before the end of a segment. */
export type ScanProblem =
  /** The last record runs past the end of the file: a write cut short by a crash. */
  | 'torn'
  /** A whole record whose checksum does not match its body. */
  | 'checksum'
  /** A record whose checksum matches but whose body makes no sense. */
  | 'malformed'

export interface ScanResult {
  records: SpoolRecord[]
  /** Octets of whole, valid records from the start: where a good segment ends. */
  validBytes: number
  problem?: { kind: ScanProblem; offset: number; reason: string }
}

/** Reads a segment's records up to its end or to the first record that is torn or corrupt. */
export function scanSegment(bytes: Uint8Array): ScanResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const records: SpoolRecord[] = []
  let offset = 0
  while (offset < bytes.length) {
    if (offset + RECORD_PREFIX_SIZE > bytes.length) {
      return { records, validBytes: offset, problem: torn(offset, 'record prefix') }
    }
    const length = view.getUint32(offset)
    if (length === 0 || length > MAX_RECORD_BODY) {
      // Zeros where a record should start: a tail the file system extended but never wrote.
      const kind = length === 0 && isZero(bytes, offset) ? 'torn' : 'malformed'
      return {
        records,
        validBytes: offset,
        problem: { kind, offset, reason: `record length ${length}` },
      }
    }
    const end = offset + RECORD_PREFIX_SIZE + length
    if (end > bytes.length) {
      return { records, validBytes: offset, problem: torn(offset, `a ${length}-octet record`) }
    }
    const body = bytes.subarray(offset + RECORD_PREFIX_SIZE, end)
    if (crc32(body) !== view.getUint32(offset + 4)) {
      return {
        records,
        validBytes: offset,
        problem: { kind: 'checksum', offset, reason: 'checksum mismatch' },
      }
    }
    try {
      records.push(decodeBody(body))
    } catch (error) {
      return {
        records,
        validBytes: offset,
        problem: { kind: 'malformed', offset, reason: (error as Error).message },
      }
    }
    offset = end
  }
  return { records, validBytes: offset }
}

function torn(offset: number, what: string) {
  return { kind: 'torn' as const, offset, reason: `file ends inside ${what}` }
}

function isZero(bytes: Uint8Array, from: number): boolean {
  for (let index = from; index < bytes.length; index++) if (bytes[index] !== 0) return false
  return true
}

function decodeBody(body: Uint8Array): SpoolRecord {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const need = (count: number) => {
    if (body.length < count) throw new Error(`record of ${body.length} octets is too short`)
  }
  switch (body[0]) {
    case SpoolRecordKind.MESSAGE: {
      need(1 + MESSAGE_PREFIX.length)
      const layout = LAYOUTS.get(body[1 + PREFIX_VERSION_OFFSET] as number)
      if (!layout?.prefix.every((octet, index) => body[1 + index] === octet)) {
        throw new Error('MESSAGE record without its prefix')
      }
      const batch = decodeBatchBody(body, 1 + layout.prefix.length, layout.version)
      const message = batch.messages[0]
      if (!message || batch.messages.length !== 1) {
        throw new Error('MESSAGE record does not hold one message')
      }
      return { type: 'message', id: batch.batchSeq, message }
    }
    case SpoolRecordKind.SEAL:
      need(21)
      return {
        type: 'seal',
        batchSeq: getUint64(view, 1),
        firstId: getUint64(view, 9),
        count: view.getUint32(17),
      }
    case SpoolRecordKind.ACK:
      need(9)
      return { type: 'ack', batchSeq: getUint64(view, 1) }
    case SpoolRecordKind.HEADER: {
      need(7)
      if (view.getUint32(1) !== HEADER_MAGIC) throw new Error('HEADER without the spool magic')
      const version = body[5]
      if (version !== SpoolFormat.BEFORE_EPOCH && version !== SpoolFormat.EPOCH) {
        throw new Error(
          `spool format version ${version}; this bridge reads ${SpoolFormat.BEFORE_EPOCH} to ${SPOOL_FORMAT_VERSION}`,
        )
      }
      const counters = version === SpoolFormat.EPOCH ? 5 : 4
      const idLength = body[6] as number
      let offset = 7 + idLength
      need(offset + counters * 8 + 4)
      const bridgeId = decoder.decode(body.subarray(7, offset))
      const [segment, nextMessageId, nextBatchSeq, ackedBelow, epoch = 0] = Array.from(
        { length: counters },
        (_, index) => getUint64(view, offset + index * 8),
      ) as [number, number, number, number, number?]
      offset += counters * 8
      const count = view.getUint32(offset)
      offset += 4
      need(offset + count * 20)
      const seals: SealRange[] = []
      for (let index = 0; index < count; index++, offset += 20) {
        seals.push({
          batchSeq: getUint64(view, offset),
          firstId: getUint64(view, offset + 8),
          count: view.getUint32(offset + 16),
        })
      }
      return {
        type: 'header',
        bridgeId,
        epoch,
        segment,
        nextMessageId,
        nextBatchSeq,
        ackedBelow,
        seals,
      }
    }
    default:
      throw new Error(`unknown record kind ${body[0]}`)
  }
}
