// The relay protocol between a bridge and its channel's Durable Object: a WebSocket whose
// upgrade names the bridge's session, a WELCOME from the object, then binary BATCH, ACK and NACK
// frames, one per WebSocket message. Platform-neutral (Node and workerd): only Uint8Array,
// DataView, TextEncoder/TextDecoder and Web Crypto. Specified in docs/relay-protocol.md.

import { isIdempotencyKey, MAX_IDEMPOTENCY_KEY_LENGTH } from './idempotency-key.ts'
import { isKeyName, MAX_KEY_NAME_BYTES } from './key-name.ts'

/**
 * The version this end speaks: 3 added idempotency keys to messages and their seqs to ACKs, 4
 * the sender's key name (its record's name in the key registry) to messages.
 */
export const RELAY_PROTOCOL_VERSION = 4

/**
 * Every version the Durable Object takes, so a fleet's bridges can be upgraded after its Worker:
 * a socket keeps the version agreed at its upgrade, and every frame on it is of that version.
 */
export const RELAY_PROTOCOL_VERSIONS = [4, 3, 2] as const
export type RelayProtocolVersion = (typeof RELAY_PROTOCOL_VERSIONS)[number]

/** The WebSocket subprotocol (RFC 6455 §1.9) that names `version` at the upgrade. */
export function relaySubprotocol(version: RelayProtocolVersion): string {
  return `zmq-edge.relay.v${version}`
}

/**
 * The subprotocol a bridge asks for: a bridge of a version the Worker does not take is refused
 * at the upgrade, before it sends anything.
 */
export const RELAY_SUBPROTOCOL = relaySubprotocol(RELAY_PROTOCOL_VERSION)

/**
 * The newest version among the subprotocols a bridge offered (a `Sec-WebSocket-Protocol`
 * header's value) that this end takes; undefined when it takes none of them.
 */
export function negotiateRelayVersion(offered: string | null): RelayProtocolVersion | undefined {
  const names = new Set((offered ?? '').split(',').map((name) => name.trim()))
  return RELAY_PROTOCOL_VERSIONS.find((version) => names.has(relaySubprotocol(version)))
}

/** Upgrade request headers that name the bridge's session (see {@link RelaySession}). */
export const BRIDGE_ID_HEADER = 'X-Zmq-Edge-Bridge-Id'
export const EPOCH_HEADER = 'X-Zmq-Edge-Epoch'

/**
 * WebSocket close code (the 4000–4999 private range of RFC 6455 §7.4.2) with which the object
 * closes a bridge's older socket when the same bridge id connects again: a half-open socket
 * never locks out a reconnecting bridge, and two sockets never write under one id at once.
 */
export const CLOSE_REPLACED = 4001

/**
 * Close code with which the object closes a bridge's socket whose scoped token was deleted or
 * expired: the bridge reconnects, and its credential is checked again at the upgrade.
 */
export const CLOSE_CREDENTIAL_REVOKED = 4003

/**
 * Headers the Worker sets (never the bridge: any it sends are removed) on an upgrade it hands to
 * the channel's object when a scoped token authenticated it: the token's id and expiry (ms), so
 * the object can close the socket once the token is gone.
 */
export const TOKEN_ID_HEADER = 'X-Zmq-Edge-Token-Id'
export const TOKEN_EXPIRES_HEADER = 'X-Zmq-Edge-Token-Expires'

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
  /**
   * The sender's idempotency key (./idempotency-key.ts), from a request's envelope: a message
   * whose sender and key the channel stored recently is not stored again (version 3).
   */
  idempotencyKey?: string
  /**
   * The name of `publicKey`'s record in the key registry (../shared/key-name.ts), when the
   * bridge admits keys by the registry (version 4; only with a public key).
   */
  keyName?: string
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
  /**
   * Messages of the batch stored before, by another message with their idempotency key: their
   * index in the batch and that message's seq. The batch's other messages hold firstSeq to
   * lastSeq, in order (a batch of duplicates only: 0 and 0). Version 3; empty when none.
   */
  duplicates?: DuplicateMessage[]
}

/** A message of a batch that was not stored, being a resend: its index and the first copy's seq. */
export interface DuplicateMessage {
  index: number
  seq: number
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
 * UTF-8 of the last string it was given: a batch's messages mostly come from one peer after
 * another (with one key name), and a TextEncoder call per message was a tenth of the bridge's
 * CPU.
 */
class LastUtf8 {
  #text = ''
  #bytes: Uint8Array = new Uint8Array(0)

  of(text: string): Uint8Array {
    if (text !== this.#text) {
      this.#bytes = utf8Encoder.encode(text)
      this.#text = text
    }
    return this.#bytes
  }
}

const addressUtf8 = new LastUtf8()
const keyNameUtf8 = new LastUtf8()

function shortString(value: string, field: string): Uint8Array {
  const bytes = addressUtf8.of(value)
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

function writeHeader(view: DataView, kind: RelayFrameKind, version: RelayProtocolVersion): void {
  view.setUint8(0, kind)
  view.setUint8(1, version)
  view.setUint16(2, 0)
}

/** Encoded size of a batch's header (frame header, batchSeq, message count). */
export const BATCH_HEADER_SIZE = HEADER_SIZE + 8 + 4

/** Encoded size of one message inside a batch, for callers that cap batch sizes. */
export function encodedMessageSize(
  message: RelayMessage,
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): number {
  let size = 8 + 1 + 1 + addressUtf8.of(message.peerAddress).length + 1 + 4
  if (message.publicKey) size += message.publicKey.length
  if (version >= 3) size += 1 + (message.idempotencyKey?.length ?? 0)
  if (version >= 4) size += 2 + (message.keyName ? keyNameUtf8.of(message.keyName).length : 0)
  for (const frame of message.frames) size += 4 + frame.length
  return size
}

/**
 * Encodes a batch into one relay frame of `version`.
 * @throws RelayProtocolError INVALID_FIELD for an empty batch, a message without frames, a
 * sequence number out of range, a public key that is not 32 octets, an idempotency key that
 * breaks its rule (or in a version without keys), or a key name that breaks its rule, lacks a
 * public key, or is in a version without names.
 */
export function encodeBatch(
  batch: RelayBatch,
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): Uint8Array {
  checkSeq(batch.batchSeq, 'batchSeq', 1)
  if (batch.messages.length === 0) {
    throw new RelayProtocolError(RelayProtocolErrorCode.INVALID_FIELD, 'a batch needs a message')
  }
  const addresses: Uint8Array[] = []
  const names: (Uint8Array | undefined)[] = []
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
    const key = message.idempotencyKey
    if (key !== undefined && (version < 3 || !isIdempotencyKey(key))) {
      throw new RelayProtocolError(
        RelayProtocolErrorCode.INVALID_FIELD,
        version < 3
          ? `version ${version} carries no idempotency key`
          : `an idempotency key is 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters of visible ASCII`,
      )
    }
    const address = shortString(message.peerAddress, 'peerAddress')
    addresses.push(address)
    const name = message.keyName === undefined ? undefined : keyNameBytes(message, version)
    names.push(name)
    size += 8 + 1 + 1 + address.length + 1 + (message.publicKey?.length ?? 0) + 4
    if (version >= 3) size += 1 + (key?.length ?? 0)
    if (version >= 4) size += 2 + (name?.length ?? 0)
    for (const frame of message.frames) size += 4 + frame.length
  }

  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.BATCH, version)
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
    if (version >= 3) {
      const idempotencyKey = message.idempotencyKey ?? ''
      out[offset++] = idempotencyKey.length
      // Visible ASCII: one octet per character.
      for (let index = 0; index < idempotencyKey.length; index++) {
        out[offset++] = idempotencyKey.charCodeAt(index)
      }
    }
    if (version >= 4) {
      const name = names[index]
      view.setUint16(offset, name?.length ?? 0)
      offset += 2
      if (name) {
        out.set(name, offset)
        offset += name.length
      }
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

// A message's key name as UTF-8, checked against its rule and the version.
function keyNameBytes(message: RelayMessage, version: RelayProtocolVersion): Uint8Array {
  const name = message.keyName as string
  if (version < 4 || !message.publicKey || !isKeyName(name)) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.INVALID_FIELD,
      version < 4
        ? `version ${version} carries no key name`
        : !message.publicKey
          ? 'a key name needs a public key'
          : 'a key name is 1 to 100 characters',
    )
  }
  const bytes = keyNameUtf8.of(name)
  if (bytes.length > MAX_KEY_NAME_BYTES) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.INVALID_FIELD,
      `a key name is at most ${MAX_KEY_NAME_BYTES} octets of UTF-8`,
    )
  }
  return bytes
}

const WELCOME_SIZE = HEADER_SIZE + 8 + 4 + 4 + 4 + 8 + 4

/** Encodes the WELCOME an object sends first on every bridge socket. */
export function encodeWelcome(
  welcome: Omit<RelayWelcome, 'kind'>,
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): Uint8Array {
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
  writeHeader(view, RelayFrameKind.WELCOME, version)
  setUint64(view, 4, welcome.lastBatchSeq)
  view.setUint32(12, welcome.maxMessageBytes)
  view.setUint32(16, welcome.maxBatchBytes)
  view.setUint32(20, welcome.maxBatchMessages)
  view.setFloat64(24, welcome.now)
  view.setUint32(32, welcome.maxClockSkewMs)
  return out
}

/**
 * Encodes the ACK a Durable Object sends once a batch is stored (or was stored before); from
 * version 3 with its duplicates (u32 count, then u32 index and u64 seq each).
 */
export function encodeAck(
  ack: Omit<RelayAck, 'kind'>,
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): Uint8Array {
  checkSeq(ack.batchSeq, 'batchSeq', 1)
  checkSeq(ack.firstSeq, 'firstSeq', 0)
  checkSeq(ack.lastSeq, 'lastSeq', 0)
  const duplicates = ack.duplicates ?? []
  if (version < 3 && duplicates.length > 0) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.INVALID_FIELD,
      `version ${version} carries no duplicates`,
    )
  }
  const out = new Uint8Array(
    HEADER_SIZE + 8 + 1 + 8 + 8 + (version >= 3 ? 4 + 12 * duplicates.length : 0),
  )
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.ACK, version)
  setUint64(view, 4, ack.batchSeq)
  view.setUint8(12, ack.status)
  setUint64(view, 13, ack.firstSeq)
  setUint64(view, 21, ack.lastSeq)
  if (version >= 3) {
    view.setUint32(29, duplicates.length)
    let offset = 33
    for (const duplicate of duplicates) {
      checkSeq(duplicate.index, 'duplicate index', 0)
      checkSeq(duplicate.seq, 'duplicate seq', 1)
      view.setUint32(offset, duplicate.index)
      setUint64(view, offset + 4, duplicate.seq)
      offset += 12
    }
  }
  return out
}

/**
 * The seq of each of an ACK's `count` messages, in batch order: its duplicates' seqs, and
 * firstSeq to lastSeq for the others. Undefined when the ACK does not place every message (no
 * seqs, or not as many as the batch holds): no seqs rather than wrong ones.
 */
export function seqsOfAck(
  ack: Pick<RelayAck, 'firstSeq' | 'lastSeq' | 'duplicates'>,
  count: number,
): number[] | undefined {
  const duplicates = ack.duplicates ?? []
  const stored = count - duplicates.length
  const span = ack.firstSeq === 0 ? 0 : ack.lastSeq - ack.firstSeq + 1
  if (stored < 0 || span !== stored) return undefined
  // 0: not placed yet (every seq is at least 1).
  const seqs = new Array<number>(count).fill(0)
  for (const { index, seq } of duplicates) {
    if (index >= count || seqs[index] !== 0 || seq < 1) return undefined
    seqs[index] = seq
  }
  let next = ack.firstSeq
  for (let index = 0; index < count; index++) if (seqs[index] === 0) seqs[index] = next++
  return seqs
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
export function encodeNack(
  nack: Omit<RelayNack, 'kind'>,
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): Uint8Array {
  checkSeq(nack.batchSeq, 'batchSeq', 0)
  const reason = truncateUtf8(utf8Encoder.encode(nack.reason), MAX_SHORT_STRING)
  const out = new Uint8Array(HEADER_SIZE + 8 + 2 + 1 + reason.length)
  const view = new DataView(out.buffer)
  writeHeader(view, RelayFrameKind.NACK, version)
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

function readBatch(reader: Reader, version: RelayProtocolVersion): { kind: 'batch' } & RelayBatch {
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
    let idempotencyKey: string | undefined
    if (version >= 3) {
      const length = reader.u8('idempotencyKey length')
      if (length > 0) {
        idempotencyKey = reader.string(length, 'idempotencyKey')
        if (!isIdempotencyKey(idempotencyKey)) {
          throw new RelayProtocolError(
            RelayProtocolErrorCode.INVALID_FIELD,
            'an idempotency key is visible ASCII (0x21-0x7E) only',
          )
        }
      }
    }
    let keyName: string | undefined
    if (version >= 4) {
      const length = reader.u16('keyName length')
      if (length > 0) {
        if (length > MAX_KEY_NAME_BYTES || !publicKey) {
          throw new RelayProtocolError(
            RelayProtocolErrorCode.INVALID_FIELD,
            publicKey
              ? `keyName is ${length} octets; at most ${MAX_KEY_NAME_BYTES}`
              : 'a key name needs a public key',
          )
        }
        keyName = reader.string(length, 'keyName')
        if (!isKeyName(keyName)) {
          throw new RelayProtocolError(
            RelayProtocolErrorCode.INVALID_FIELD,
            'a key name is 1 to 100 characters',
          )
        }
      }
    }
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
    if (idempotencyKey !== undefined) message.idempotencyKey = idempotencyKey
    if (keyName !== undefined) message.keyName = keyName
    messages.push(message)
  }
  return { kind: 'batch', batchSeq, messages }
}

/**
 * Decodes a BATCH's body of `version`: what follows its 4-octet frame header, from `offset` to
 * the end of `bytes` (the bridge's spool keeps messages in this layout behind a header of its
 * own).
 * @throws RelayProtocolError as {@link decodeRelayFrame}.
 */
export function decodeBatchBody(
  bytes: Uint8Array,
  offset: number,
  version: RelayProtocolVersion,
): RelayBatch {
  const reader = new Reader(bytes)
  reader.offset = offset
  const { batchSeq, messages } = readBatch(reader, version)
  if (reader.remaining() !== 0) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.TRAILING_BYTES,
      `${reader.remaining()} octets after the end of the batch`,
    )
  }
  return { batchSeq, messages }
}

/**
 * Decodes one relay frame of `version` (the socket's). Frame and key bytes in the result are
 * views into `bytes`.
 * @throws RelayProtocolError with a stable `code` for anything that is not a whole, valid frame.
 */
export function decodeRelayFrame(
  bytes: Uint8Array,
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): RelayFrame {
  const reader = new Reader(bytes)
  const kind = reader.u8('kind')
  const frameVersion = reader.u8('version')
  reader.u16('reserved')
  if (
    kind !== RelayFrameKind.BATCH &&
    kind !== RelayFrameKind.ACK &&
    kind !== RelayFrameKind.NACK &&
    kind !== RelayFrameKind.WELCOME
  ) {
    throw new RelayProtocolError(RelayProtocolErrorCode.UNKNOWN_KIND, `unknown frame kind ${kind}`)
  }
  if (frameVersion !== version) {
    throw new RelayProtocolError(
      RelayProtocolErrorCode.UNSUPPORTED_VERSION,
      `relay protocol version ${frameVersion}; this socket speaks ${version}`,
    )
  }
  let frame: RelayFrame
  if (kind === RelayFrameKind.BATCH) {
    frame = readBatch(reader, version)
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
    const firstSeq = reader.u64('firstSeq')
    const lastSeq = reader.u64('lastSeq')
    const ack: RelayAck = { kind: 'ack', batchSeq, status, firstSeq, lastSeq }
    if (version >= 3) {
      const count = reader.u32('duplicate count')
      if (count > reader.remaining() / 12) {
        throw new RelayProtocolError(
          RelayProtocolErrorCode.TRUNCATED,
          `duplicate count ${count} is too large`,
        )
      }
      const duplicates: DuplicateMessage[] = []
      for (let index = 0; index < count; index++) {
        const duplicate = { index: reader.u32('duplicate index'), seq: reader.u64('duplicate seq') }
        if (duplicate.seq < 1) {
          throw new RelayProtocolError(
            RelayProtocolErrorCode.INVALID_FIELD,
            'a duplicate seq must be >= 1',
          )
        }
        duplicates.push(duplicate)
      }
      ack.duplicates = duplicates
    }
    frame = ack
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
