// The relay protocol between a bridge and its channel's Durable Object: a WebSocket whose
// upgrade names the bridge's session, a WELCOME from the object, then binary BATCH, ACK and NACK
// frames, one per WebSocket message. Platform-neutral (Node and workerd): only Uint8Array,
// DataView, TextEncoder/TextDecoder and Web Crypto. Specified in docs/relay-protocol.md.

export const RELAY_PROTOCOL_VERSION = 2

/**
 * The WebSocket subprotocol (RFC 6455 §1.9) a bridge asks for and the object confirms: a bridge
 * of another version is refused at the upgrade, before it sends anything.
 */
export const RELAY_SUBPROTOCOL = 'zmq-edge.relay.v2'

/** Upgrade request headers that name the bridge's session (see {@link RelaySession}). */
export const BRIDGE_ID_HEADER = 'X-Zmq-Edge-Bridge-Id'
export const EPOCH_HEADER = 'X-Zmq-Edge-Epoch'

/**
 * WebSocket close code (the 4000–4999 private range of RFC 6455 §7.4.2) with which the object
 * closes a bridge's older socket when the same bridge id connects again: a half-open socket
 * never locks out a reconnecting bridge, and two sockets never write under one id at once.
 */
export const CLOSE_REPLACED = 4001

/** A bridge id: what `--bridge-id` takes and the object accepts. */
export const BRIDGE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/

/** First octet of every relay frame. */
export const RelayFrameKind = { BATCH: 0x01, ACK: 0x02, NACK: 0x03, WELCOME: 0x04 } as const
export type RelayFrameKind = (typeof RelayFrameKind)[keyof typeof RelayFrameKind]

/** The security mechanism a message arrived with, as one octet on the wire. */
export const MECHANISM_CODES = { NULL: 0, CURVE: 1 } as const
export type Mechanism = keyof typeof MECHANISM_CODES

/** Status octet of an ACK. */
export const AckStatus = {
  STORED: 0,
  /** Stored before, by an earlier copy of the batch (a resend after a lost ACK). */
  DUPLICATE: 1,
  /**
   * Never storable: a batch of one message over the channel's limits. Nothing is stored and the
   * batch number is used up, so the bridge drops the message (and says so) and goes on.
   */
  REJECTED: 2,
} as const
export type AckStatus = (typeof AckStatus)[keyof typeof AckStatus]

/** NACK codes: why a Durable Object refused a frame. Nothing of a NACKed batch is stored. */
export const NackCode = {
  MALFORMED_FRAME: 1,
  UNSUPPORTED_VERSION: 2,
  STORAGE_FAILED: 3,
  /** Not the batch expected next: an earlier one was refused, or the number jumps ahead. */
  OUT_OF_ORDER: 4,
  /** The channel's log is at its retention limits and the overflow policy is `block`. */
  CHANNEL_FULL: 5,
  /** More messages or octets than the channel takes in one batch: split it and send again. */
  BATCH_TOO_LARGE: 6,
  /** A message the object does not trust: a public key without CURVE, a time in the future. */
  INVALID_MESSAGE: 7,
} as const
export type NackCode = (typeof NackCode)[keyof typeof NackCode]

/** The name of a NACK code, for logs and metrics. */
export function nackCodeName(code: number): string {
  for (const [name, value] of Object.entries(NackCode)) if (value === code) return name
  return `UNKNOWN_${code}`
}

/**
 * Who sends the batches on a socket: the bridge's id, and the epoch of its batch numbering.
 * Batches are deduplicated per (bridgeId, epoch, batchSeq). A bridge draws a new epoch when it
 * starts a numbering from 1 (every start without a spool), so a restart can never collide with
 * the numbers of an earlier run; a spool keeps its epoch with its numbers. Epoch 0 is the
 * numbering of protocol version 1, kept by spools written before version 2.
 */
export interface RelaySession {
  bridgeId: string
  /** An integer from 0 to 2^53 - 1. */
  epoch: number
}

/** A random epoch from 1 to 2^53 - 1 (Web Crypto: Node and workerd). */
export function newEpoch(): number {
  const words = crypto.getRandomValues(new Uint32Array(2))
  const epoch = ((words[0] as number) & 0x1f_ffff) * UINT32_LIMIT + (words[1] as number)
  return epoch === 0 ? 1 : epoch
}

/**
 * Reads the session from an upgrade request's headers.
 * @returns the session, or why the headers do not name one.
 */
export function parseRelaySession(headers: {
  get(name: string): string | null
}): RelaySession | { error: string } {
  const bridgeId = headers.get(BRIDGE_ID_HEADER)
  if (bridgeId === null || !BRIDGE_ID_PATTERN.test(bridgeId)) {
    return { error: `${BRIDGE_ID_HEADER} must be 1-128 characters of A-Z a-z 0-9 . _ : -` }
  }
  const epochText = headers.get(EPOCH_HEADER)
  const epoch = epochText !== null && /^\d{1,16}$/.test(epochText) ? Number(epochText) : -1
  if (!Number.isSafeInteger(epoch) || epoch < 0) {
    return { error: `${EPOCH_HEADER} must be an integer from 0 to 2^53 - 1` }
  }
  return { bridgeId, epoch }
}

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
  /** The batch's number in its session, from 1, increasing by 1. */
  batchSeq: number
  messages: RelayMessage[]
}

export interface RelayAck {
  kind: 'ack'
  batchSeq: number
  status: AckStatus
  /**
   * First and last channel seq of the batch's messages: for STORED, and for a DUPLICATE while
   * the object still finds its first copy; 0 otherwise (REJECTED, a DUPLICATE it cannot place).
   */
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

/**
 * The object's first frame on every socket: where the session stands and what the channel
 * accepts, so the bridge sizes its batches and refuses too large messages before batching.
 */
export interface RelayWelcome {
  kind: 'welcome'
  /** The highest batch stored in this session; 0 when none is. */
  lastBatchSeq: number
  /** Largest message (its frames' octets) the channel stores. */
  maxMessageBytes: number
  /** Largest batch, encoded, the channel takes at once. */
  maxBatchBytes: number
  /** Most messages in one batch; 0 for no limit. */
  maxBatchMessages: number
  /** The object's clock, ms since the epoch, when it accepted the socket. */
  now: number
  /** How far in the future of that clock a receive time may be. */
  maxClockSkewMs: number
}

export type RelayFrame = ({ kind: 'batch' } & RelayBatch) | RelayAck | RelayNack | RelayWelcome

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

/**
 * The last address encoded: a batch's messages mostly come from one peer after another, and a
 * TextEncoder call per message was a tenth of the bridge's CPU.
 */
let lastString = ''
let lastBytes: Uint8Array = new Uint8Array(0)

function utf8Bytes(value: string): Uint8Array {
  if (value !== lastString) {
    lastBytes = utf8Encoder.encode(value)
    lastString = value
  }
  return lastBytes
}

function shortString(value: string, field: string): Uint8Array {
  const bytes = utf8Bytes(value)
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

/** Encoded size of a batch's header (frame header, batchSeq, message count). */
export const BATCH_HEADER_SIZE = HEADER_SIZE + 8 + 4

/** Encoded size of one message inside a batch, for callers that cap batch sizes. */
export function encodedMessageSize(message: RelayMessage): number {
  let size = 8 + 1 + 1 + utf8Bytes(message.peerAddress).length + 1 + 4
  if (message.publicKey) size += message.publicKey.length
  for (const frame of message.frames) size += 4 + frame.length
  return size
}

/**
 * Encodes a batch into one relay frame.
 * @throws RelayProtocolError INVALID_FIELD for an empty batch, a message without frames, a
 * sequence number out of range, or a public key that is not 32 octets.
 */
export function encodeBatch(batch: RelayBatch): Uint8Array {
  checkSeq(batch.batchSeq, 'batchSeq', 1)
  if (batch.messages.length === 0) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'a batch needs a message')
  }
  const addresses: Uint8Array[] = []
  let size = BATCH_HEADER_SIZE
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

const WELCOME_SIZE = HEADER_SIZE + 8 + 4 + 4 + 4 + 8 + 4

/** Encodes the WELCOME an object sends first on every bridge socket. */
export function encodeWelcome(welcome: Omit<RelayWelcome, 'kind'>): Uint8Array {
  checkSeq(welcome.lastBatchSeq, 'lastBatchSeq', 0)
  for (const field of [
    'maxMessageBytes',
    'maxBatchBytes',
    'maxBatchMessages',
    'maxClockSkewMs',
  ] as const) {
    const value = welcome[field]
    if (!Number.isInteger(value) || value < 0 || value >= UINT32_LIMIT) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.INVALID_FIELD,
        `${field} must be a u32, got ${value}`,
      )
    }
  }
  const out = new Uint8Array(WELCOME_SIZE)
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.WELCOME)
  setUint64(view, 4, welcome.lastBatchSeq)
  view.setUint32(12, welcome.maxMessageBytes)
  view.setUint32(16, welcome.maxBatchBytes)
  view.setUint32(20, welcome.maxBatchMessages)
  view.setFloat64(24, welcome.now)
  view.setUint32(32, welcome.maxClockSkewMs)
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
  return { kind: 'batch', batchSeq, messages }
}

/**
 * Decodes a BATCH's body: what follows its 4-octet frame header, from `offset` to the end of
 * `bytes` (the bridge's spool keeps messages in this layout behind a header of its own).
 * @throws RelayProtocolError as {@link decodeRelayFrame}.
 */
export function decodeBatchBody(bytes: Uint8Array, offset: number): RelayBatch {
  const reader = new Reader(bytes)
  reader.offset = offset
  const { batchSeq, messages } = readBatch(reader)
  if (reader.remaining() !== 0) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.TRAILING_BYTES,
      `${reader.remaining()} octets after the end of the batch`,
    )
  }
  return { batchSeq, messages }
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
    kind !== RelayFrameKind.NACK &&
    kind !== RelayFrameKind.WELCOME
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
    if (
      status !== AckStatus.STORED &&
      status !== AckStatus.DUPLICATE &&
      status !== AckStatus.REJECTED
    ) {
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
  } else if (kind === RelayFrameKind.WELCOME) {
    frame = {
      kind: 'welcome',
      lastBatchSeq: reader.u64('lastBatchSeq'),
      maxMessageBytes: reader.u32('maxMessageBytes'),
      maxBatchBytes: reader.u32('maxBatchBytes'),
      maxBatchMessages: reader.u32('maxBatchMessages'),
      now: reader.f64('now'),
      maxClockSkewMs: reader.u32('maxClockSkewMs'),
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
