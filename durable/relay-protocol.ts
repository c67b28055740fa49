// The relay protocol between a bridge and its channel's Durable Object: binary BATCH, ACK and
// NACK frames carried one per WebSocket message. Platform-neutral (Node and workerd): only
// Uint8Array, DataView and TextEncoder/TextDecoder. Specified in docs/relay-protocol.md.

export const RELAY_PROTOCOL_VERSION = 1

/** First octet of every relay frame. */
export const RelayFrameKind = { BATCH: 0x01, ACK: 0x02, NACK: 0x03 } as const
export type RelayFrameKind = (typeof RelayFrameKind)[keyof typeof RelayFrameKind]

/** The security mechanism a message arrived with, as one octet on the wire. */
export const MECHANISM_CODES = { NULL: 0, CURVE: 1 } as const
export type Mechanism = keyof typeof MECHANISM_CODES

/** Status octet of an ACK. */
export const AckStatus = { STORED: 0, DUPLICATE: 1 } as const
export type AckStatus = (typeof AckStatus)[keyof typeof AckStatus]

/** NACK codes: why a Durable Object refused a frame. The bridge logs them. */
export const NackCode = {
  MALFORMED_FRAME: 1,
  UNSUPPORTED_VERSION: 2,
  STORAGE_FAILED: 3,
  OUT_OF_ORDER: 4,
  /** The channel's log is at its retention limits and the overflow policy is `block`. */
  CHANNEL_FULL: 5,
} as const
export type NackCode = (typeof NackCode)[keyof typeof NackCode]

/** One ZeroMQ message as relayed: its frames byte for byte and where it came from. */
export interface RelayMessage {
  /** Milliseconds since the Unix epoch when the bridge read the message's last frame. */
  receivedAt: number
  mechanism: Mechanism
  /** The peer's TCP address, `host:port` (IPv6 hosts in brackets). */
  peerAddress: string
  /** The client's authenticated long-term public key (CURVE only), 32 octets. */
  publicKey?: Uint8Array
  frames: Uint8Array[]
}

export interface RelayBatch {
  /** Identifies the sending bridge process; with `batchSeq` it makes a batch idempotent. */
  bridgeId: string
  /** Per-bridge batch number, starting at 1 and increasing by 1. */
  batchSeq: number
  messages: RelayMessage[]
}

export interface RelayAck {
  kind: 'ack'
  batchSeq: number
  status: AckStatus
  /** First and last channel seq assigned to the batch's messages; 0 for a duplicate. */
  firstSeq: number
  lastSeq: number
}

export interface RelayNack {
  kind: 'nack'
  /** The refused batch's number, or 0 when it could not be read. */
  batchSeq: number
  code: NackCode
  reason: string
}

export type RelayFrame = ({ kind: 'batch' } & RelayBatch) | RelayAck | RelayNack

export const RelayProtocolErrorCode = {
  TRUNCATED: 'TRUNCATED',
  TRAILING_BYTES: 'TRAILING_BYTES',
  UNKNOWN_KIND: 'UNKNOWN_KIND',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  INVALID_FIELD: 'INVALID_FIELD',
} as const
export type RelayProtocolErrorCode =
  (typeof RelayProtocolErrorCode)[keyof typeof RelayProtocolErrorCode]

export class RelayProtocolError extends Error {
  override readonly name = 'RelayProtocolError'
  readonly code: RelayProtocolErrorCode
  constructor(code: RelayProtocolErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

const HEADER_SIZE = 4 // kind, version, 2 reserved octets
const MAX_SHORT_STRING = 255
const PUBLIC_KEY_SIZE = 32
const UINT32_LIMIT = 0x1_0000_0000

const utf8Encoder = new TextEncoder()
// ignoreBOM: keep a leading U+FEFF, so every string round-trips byte for byte (the default
// would drop it). workerd's types also require the option to be spelled out.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function shortString(value: string, field: string): Uint8Array {
  const bytes = utf8Encoder.encode(value)
  if (bytes.length > MAX_SHORT_STRING) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.INVALID_FIELD,
      `${field} is ${bytes.length} octets; at most ${MAX_SHORT_STRING}`,
    )
  }
  return bytes
}

function checkSeq(value: number, field: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.INVALID_FIELD,
      `${field} must be an integer >= ${min}, got ${value}`,
    )
  }
}

// u64 values are carried as two big-endian u32 halves and limited to 2^53 - 1.
function setUint64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, Math.floor(value / UINT32_LIMIT))
  view.setUint32(offset + 4, value % UINT32_LIMIT)
}

function writeHeader(view: DataView, kind: RelayFrameKind): void {
  view.setUint8(0, kind)
  view.setUint8(1, RELAY_PROTOCOL_VERSION)
  view.setUint16(2, 0)
}

/** Encoded size of one message inside a batch, for callers that cap batch sizes. */
export function encodedMessageSize(message: RelayMessage): number {
  let size = 8 + 1 + 1 + utf8Encoder.encode(message.peerAddress).length + 1 + 4
  if (message.publicKey) size += message.publicKey.length
  for (const frame of message.frames) size += 4 + frame.length
  return size
}

/**
 * Encodes a batch into one relay frame.
 * @throws RelayProtocolError INVALID_FIELD for an empty batch, a message without frames, a bad
 * bridge id, a sequence number out of range, or a public key that is not 32 octets.
 */
export function encodeBatch(batch: RelayBatch): Uint8Array {
  const bridgeId = shortString(batch.bridgeId, 'bridgeId')
  if (bridgeId.length === 0) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'bridgeId is empty')
  }
  checkSeq(batch.batchSeq, 'batchSeq', 1)
  if (batch.messages.length === 0) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'a batch needs a message')
  }
  const addresses: Uint8Array[] = []
  let size = HEADER_SIZE + 1 + bridgeId.length + 8 + 4
  for (const message of batch.messages) {
    if (message.frames.length === 0) {
      throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'a message needs a frame')
    }
    if (message.publicKey && message.publicKey.length !== PUBLIC_KEY_SIZE) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.INVALID_FIELD,
        `publicKey is ${message.publicKey.length} octets; expected ${PUBLIC_KEY_SIZE}`,
      )
    }
    const address = shortString(message.peerAddress, 'peerAddress')
    addresses.push(address)
    size += 8 + 1 + 1 + address.length + 1 + (message.publicKey?.length ?? 0) + 4
    for (const frame of message.frames) size += 4 + frame.length
  }

  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.BATCH)
  let offset = HEADER_SIZE
  out[offset++] = bridgeId.length
  out.set(bridgeId, offset)
  offset += bridgeId.length
  setUint64(view, offset, batch.batchSeq)
  offset += 8
  view.setUint32(offset, batch.messages.length)
  offset += 4
  batch.messages.forEach((message, index) => {
    view.setFloat64(offset, message.receivedAt)
    offset += 8
    out[offset++] = MECHANISM_CODES[message.mechanism]
    const address = addresses[index] as Uint8Array
    out[offset++] = address.length
    out.set(address, offset)
    offset += address.length
    const key = message.publicKey
    out[offset++] = key ? key.length : 0
    if (key) {
      out.set(key, offset)
      offset += key.length
    }
    view.setUint32(offset, message.frames.length)
    offset += 4
    for (const frame of message.frames) {
      view.setUint32(offset, frame.length)
      offset += 4
      out.set(frame, offset)
      offset += frame.length
    }
  })
  return out
}

/** Encodes the ACK a Durable Object sends once a batch is stored (or was stored before). */
export function encodeAck(ack: Omit<RelayAck, 'kind'>): Uint8Array {
  checkSeq(ack.batchSeq, 'batchSeq', 1)
  checkSeq(ack.firstSeq, 'firstSeq', 0)
  checkSeq(ack.lastSeq, 'lastSeq', 0)
  const out = new Uint8Array(HEADER_SIZE + 8 + 1 + 8 + 8)
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.ACK)
  setUint64(view, 4, ack.batchSeq)
  view.setUint8(12, ack.status)
  setUint64(view, 13, ack.firstSeq)
  setUint64(view, 21, ack.lastSeq)
  return out
}

// Cuts UTF-8 at most `max` octets long without splitting a character, so the result still
// decodes with the fatal decoder.
function truncateUtf8(bytes: Uint8Array, max: number): Uint8Array {
  if (bytes.length <= max) return bytes
  let end = max
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}

/** Encodes a NACK: the frame was refused and nothing of it was stored. */
export function encodeNack(nack: Omit<RelayNack, 'kind'>): Uint8Array {
  checkSeq(nack.batchSeq, 'batchSeq', 0)
  const reason = truncateUtf8(utf8Encoder.encode(nack.reason), MAX_SHORT_STRING)
  const out = new Uint8Array(HEADER_SIZE + 8 + 2 + 1 + reason.length)
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.NACK)
  setUint64(view, 4, nack.batchSeq)
  view.setUint16(12, nack.code)
  out[14] = reason.length
  out.set(reason, 15)
  return out
}

/** A bounds-checked reader over one relay frame. */
class Reader {
  readonly #bytes: Uint8Array
  readonly #view: DataView
  offset = 0

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  #need(count: number, field: string): void {
    if (this.offset + count > this.#bytes.length) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.TRUNCATED,
        `frame ends inside ${field} at octet ${this.offset}`,
      )
    }
  }

  u8(field: string): number {
    this.#need(1, field)
    return this.#view.getUint8(this.offset++)
  }

  u16(field: string): number {
    this.#need(2, field)
    const value = this.#view.getUint16(this.offset)
    this.offset += 2
    return value
  }

  u32(field: string): number {
    this.#need(4, field)
    const value = this.#view.getUint32(this.offset)
    this.offset += 4
    return value
  }

  u64(field: string): number {
    this.#need(8, field)
    const high = this.#view.getUint32(this.offset)
    const low = this.#view.getUint32(this.offset + 4)
    this.offset += 8
    const value = high * UINT32_LIMIT + low
    if (!Number.isSafeInteger(value)) {
      throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, `${field} exceeds 2^53-1`)
    }
    return value
  }

  f64(field: string): number {
    this.#need(8, field)
    const value = this.#view.getFloat64(this.offset)
    this.offset += 8
    return value
  }

  /** A view of the next `count` octets (no copy). */
  bytes(count: number, field: string): Uint8Array {
    this.#need(count, field)
    const value = this.#bytes.subarray(this.offset, this.offset + count)
    this.offset += count
    return value
  }

  string(count: number, field: string): string {
    const bytes = this.bytes(count, field)
    try {
      return utf8Decoder.decode(bytes)
    } catch (cause) {
      throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, `${field} is not UTF-8`, {
        cause,
      })
    }
  }

  remaining(): number {
    return this.#bytes.length - this.offset
  }
}

function readBatch(reader: Reader): { kind: 'batch' } & RelayBatch {
  const bridgeIdLength = reader.u8('bridgeId length')
  if (bridgeIdLength === 0) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'bridgeId is empty')
  }
  const bridgeId = reader.string(bridgeIdLength, 'bridgeId')
  const batchSeq = reader.u64('batchSeq')
  if (batchSeq < 1) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'batchSeq must be >= 1')
  }
  const count = reader.u32('message count')
  if (count === 0) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'a batch needs a message')
  }
  // Each message takes at least 18 octets: a count larger than that bound is a lie.
  if (count > reader.remaining() / 18) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.TRUNCATED,
      `message count ${count} is too large`,
    )
  }
  const messages: RelayMessage[] = []
  for (let index = 0; index < count; index++) {
    const receivedAt = reader.f64('receivedAt')
    if (!Number.isFinite(receivedAt)) {
      throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'receivedAt is not finite')
    }
    const mechanismCode = reader.u8('mechanism')
    let mechanism: Mechanism
    if (mechanismCode === MECHANISM_CODES.NULL) mechanism = 'NULL'
    else if (mechanismCode === MECHANISM_CODES.CURVE) mechanism = 'CURVE'
    else {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.INVALID_FIELD,
        `unknown mechanism code ${mechanismCode}`,
      )
    }
    const peerAddress = reader.string(reader.u8('peerAddress length'), 'peerAddress')
    const keyLength = reader.u8('publicKey length')
    if (keyLength !== 0 && keyLength !== PUBLIC_KEY_SIZE) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.INVALID_FIELD,
        `publicKey length ${keyLength}; expected 0 or ${PUBLIC_KEY_SIZE}`,
      )
    }
    const publicKey = keyLength ? reader.bytes(keyLength, 'publicKey') : undefined
    const frameCount = reader.u32('frame count')
    if (frameCount === 0) {
      throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'a message needs a frame')
    }
    if (frameCount > reader.remaining() / 4) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.TRUNCATED,
        `frame count ${frameCount} is too large`,
      )
    }
    const frames: Uint8Array[] = []
    for (let frame = 0; frame < frameCount; frame++) {
      frames.push(reader.bytes(reader.u32('frame length'), 'frame body'))
    }
    const message: RelayMessage = { receivedAt, mechanism, peerAddress, frames }
    if (publicKey) message.publicKey = publicKey
    messages.push(message)
  }
  return { kind: 'batch', bridgeId, batchSeq, messages }
}

/**
 * Decodes one relay frame. Frame and key bytes in the result are views into `bytes`.
 * @throws RelayProtocolError with a stable `code` for anything that is not a whole, valid frame.
 */
export function decodeRelayFrame(bytes: Uint8Array): RelayFrame {
  const reader = new Reader(bytes)
  const kind = reader.u8('kind')
  const version = reader.u8('version')
  reader.u16('reserved')
  if (
    kind !== RelayFrameKind.BATCH &&
    kind !== RelayFrameKind.ACK &&
    kind !== RelayFrameKind.NACK
  ) {
    throw new RelayProtocolError(RelayProtocolErrorCode.UNKNOWN_KIND, `unknown frame kind ${kind}`)
  }
  if (version !== RELAY_PROTOCOL_VERSION) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.UNSUPPORTED_VERSION,
      `relay protocol version ${version}; this end speaks ${RELAY_PROTOCOL_VERSION}`,
    )
  }
  let frame: RelayFrame
  if (kind === RelayFrameKind.BATCH) {
    frame = readBatch(reader)
  } else if (kind === RelayFrameKind.ACK) {
    const batchSeq = reader.u64('batchSeq')
    const status = reader.u8('status')
    if (status !== AckStatus.STORED && status !== AckStatus.DUPLICATE) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.INVALID_FIELD,
        `unknown ack status ${status}`,
      )
    }
    frame = {
      kind: 'ack',
      batchSeq,
      status,
      firstSeq: reader.u64('firstSeq'),
      lastSeq: reader.u64('lastSeq'),
    }
  } else {
    const batchSeq = reader.u64('batchSeq')
    const code = reader.u16('code') as NackCode
    const reason = reader.string(reader.u8('reason length'), 'reason')
    frame = { kind: 'nack', batchSeq, code, reason }
  }
  if (reader.remaining() !== 0) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.TRAILING_BYTES,
      `${reader.remaining()} octets after the end of the frame`,
    )
  }
  return frame
}
