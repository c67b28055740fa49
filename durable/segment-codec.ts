// A segment: a run of consecutive messages stored as one SQLite value (peers once, varint times
// as deltas, each message's frame lengths before its frame octets). Pure functions over
// Uint8Array, for Node and workerd.

import { isKeyName, MAX_KEY_NAME_BYTES } from '../shared/key-name'
import { MECHANISM_CODES, type Mechanism, type RelayMessage } from '../shared/relay-protocol'

/**
 * The segment formats this module reads: 1, and 2, whose peers may carry their key's name.
 * Layout:
 * ```
 * segment := format:u8 (1|2)  peerCount:uvarint  peer{peerCount}
 *            messageCount:uvarint  baseTime:svarint  message{messageCount}
 * peer    := mechanism:u8  addressLength:uvarint  address:UTF-8  keyLength:u8 (0|32)  key
 *            [format 2: nameLength:uvarint  name:UTF-8 (only with a key)]
 * message := timeDelta:svarint  peerIndex:uvarint  frameCount:uvarint
 *            frameLength:uvarint{frameCount}  frameOctets
 * ```
 * uvarint is unsigned LEB128, minimal, at most 8 octets, at most 2^53 - 1; svarint is zigzag
 * then uvarint. Times are integer ms; each message's time is the previous one's plus its delta
 * (the first's: baseTime plus its delta, 0 when written here). Format 1 is written when no
 * message has a key name, so such segments are what they were before names.
 */
export const SegmentFormat = { PLAIN: 1, NAMED: 2 } as const

/**
 * Octets {@link scanSegment} asks of its `read` at a time, at most: a window holds the frame
 * lengths of up to 64 Ki frames, so a 200,000-frame message's sizes take four windows.
 */
export const SCAN_WINDOW_BYTES = 64 * 1024

/** Longest peer address a segment holds, in UTF-8 octets (as the relay batch's u8 length). */
export const MAX_PEER_ADDRESS_BYTES = 255

/**
 * Earliest and latest time (integer ms) a segment holds, and the largest difference between
 * two consecutive ones: the svarint range, whose zigzag fills the uvarint's 0 to 2^53 - 1.
 */
export const MIN_SEGMENT_TIME = -(2 ** 52)
export const MAX_SEGMENT_TIME = 2 ** 52 - 1

/** One message read back from a segment. */
export interface SegmentMessage {
  /** Milliseconds since the Unix epoch, an integer (the stored time is floored). */
  receivedAt: number
  mechanism: Mechanism
  peerAddress: string
  /** 32 octets; a view into the segment, shared by the messages of the same peer. */
  publicKey?: Uint8Array
  /** The key's record name when relayed (format 2). */
  keyName?: string
  /** The frames' octets, all together. */
  size: number
  /** Views into the segment's bytes (no copy). */
  frames: Uint8Array[]
}

/** Where a message's parts lie in a segment, without its frames' octets. */
export interface SegmentMessageLayout {
  receivedAt: number
  mechanism: Mechanism
  peerAddress: string
  /** 32 octets; a copy, shared by the layouts of the same peer. */
  publicKey?: Uint8Array
  keyName?: string
  /** The frames' octets, all together. */
  size: number
  frameSizes: number[]
  /** Offset in the segment of the message's first frame octet (its frames follow in order). */
  framesOffset: number
}

/** A segment that is not a whole, valid segment: corrupt storage or a bug. */
export class SegmentFormatError extends RangeError {
  override readonly name = 'SegmentFormatError'
  readonly code = 'CORRUPT_SEGMENT'
}

const PUBLIC_KEY_SIZE = 32
const MAX_VARINT_OCTETS = 8
// Fewest octets a message takes (delta, peer index, frame count, one frame length), a peer
// (mechanism, address length, key length), and what follows the peers (message count, base time).
const MIN_MESSAGE_OCTETS = 4
const MIN_PEER_OCTETS = 3
const MIN_TAIL_OCTETS = 2 + MIN_MESSAGE_OCTETS
const INT32_LIMIT = 2 ** 31

const utf8Encoder = new TextEncoder()
const NO_NAME = new Uint8Array(0)
// ignoreBOM: keep a leading U+FEFF so every address round-trips byte for byte.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function corrupt(message: string, cause?: unknown): SegmentFormatError {
  return new SegmentFormatError(message, cause === undefined ? undefined : { cause })
}

function uvarintSize(value: number): number {
  if (value < 0x80) return 1
  if (value < 0x4000) return 2
  if (value < 0x20_0000) return 3
  if (value < 0x1000_0000) return 4
  if (value < 2 ** 35) return 5
  if (value < 2 ** 42) return 6
  if (value < 2 ** 49) return 7
  return 8
}

function zigzag(value: number): number {
  return value >= 0 ? value * 2 : -value * 2 - 1
}

function writeUvarint(out: Uint8Array, offset: number, value: number): number {
  let rest = value
  // Bitwise operators truncate to 32 bits: plain arithmetic until the value fits them.
  while (rest >= INT32_LIMIT) {
    out[offset++] = (rest % 0x80) | 0x80
    rest = Math.floor(rest / 0x80)
  }
  while (rest >= 0x80) {
    out[offset++] = (rest & 0x7f) | 0x80
    rest >>>= 7
  }
  out[offset++] = rest
  return offset
}

// Where the varint read last ended: the readers return a value and a position without
// allocating a pair.
let varintEnd = 0

function readUvarintSlow(bytes: Uint8Array, offset: number, end: number): number {
  let value = 0
  let scale = 1
  for (let index = 0; index < MAX_VARINT_OCTETS; index++) {
    const at = offset + index
    if (at >= end) throw corrupt(`segment ends inside a varint at octet ${offset}`)
    const octet = bytes[at] as number
    if (octet < 0x80) {
      if (octet === 0 && index > 0) throw corrupt(`non-minimal varint at octet ${offset}`)
      // The 8th octet carries bits 49-55: above 2^53 - 1 past its low 4 bits.
      if (index === MAX_VARINT_OCTETS - 1 && octet > 0x0f) {
        throw corrupt(`varint over 2^53 - 1 at octet ${offset}`)
      }
      varintEnd = at + 1
      return value + octet * scale
    }
    value += (octet & 0x7f) * scale
    scale *= 0x80
  }
  throw corrupt(`varint longer than ${MAX_VARINT_OCTETS} octets at octet ${offset}`)
}

function readUvarint(bytes: Uint8Array, offset: number, end: number): number {
  if (offset < end) {
    const octet = bytes[offset] as number
    if (octet < 0x80) {
      varintEnd = offset + 1
      return octet
    }
  }
  return readUvarintSlow(bytes, offset, end)
}

function unzigzag(value: number): number {
  return value % 2 === 0 ? value / 2 : -(value + 1) / 2
}

function mechanismOf(code: number, offset: number): Mechanism {
  if (code === MECHANISM_CODES.NULL) return 'NULL'
  if (code === MECHANISM_CODES.CURVE) return 'CURVE'
  throw corrupt(`unknown mechanism code ${code} at octet ${offset}`)
}

function decodeAddress(bytes: Uint8Array, offset: number): string {
  try {
    return utf8Decoder.decode(bytes)
  } catch (cause) {
    throw corrupt(`peer address at octet ${offset} is not UTF-8`, cause)
  }
}

function checkFormat(format: number | undefined): void {
  if (format !== SegmentFormat.PLAIN && format !== SegmentFormat.NAMED) {
    throw corrupt(`segment format ${format}; this end reads 1 and 2`)
  }
}

// A format-2 peer's name: none (length 0, or no key to name), else 1 to 300 octets of UTF-8.
function checkNameLength(length: number, hasKey: boolean, peer: number): void {
  if (length > MAX_KEY_NAME_BYTES || (length > 0 && !hasKey)) {
    throw corrupt(`peer ${peer} name of ${length} octets${hasKey ? '' : ' without a key'}`)
  }
}

function decodeName(bytes: Uint8Array, offset: number): string {
  let name: string
  try {
    name = utf8Decoder.decode(bytes)
  } catch (cause) {
    throw corrupt(`key name at octet ${offset} is not UTF-8`, cause)
  }
  if (!isKeyName(name)) throw corrupt(`key name at octet ${offset} breaks the name rule`)
  return name
}

interface Plan {
  format: number
  size: number
  peerBytes: Uint8Array[]
  peerCodes: number[]
  peerKeys: (Uint8Array | undefined)[]
  /** Format 2: each peer's name as UTF-8, empty for none. */
  peerNames: Uint8Array[]
  times: number[]
  peerIndexes: number[]
}

function checkEncodableTime(value: number, what: string): void {
  if (!(value >= MIN_SEGMENT_TIME && value <= MAX_SEGMENT_TIME)) {
    throw new RangeError(`${what} ${value} is outside ${MIN_SEGMENT_TIME} to ${MAX_SEGMENT_TIME}`)
  }
}

// Everything encodeSegment needs before it writes: the peers, each message's time and peer
// index, and the exact size, so the output is allocated once.
function plan(messages: readonly RelayMessage[]): Plan {
  if (messages.length === 0) throw new RangeError('a segment needs a message')
  let format: number = SegmentFormat.PLAIN
  for (const message of messages) {
    if (message.keyName !== undefined) {
      format = SegmentFormat.NAMED
      break
    }
  }
  const peerIndex = new Map<string, number>()
  const peerBytes: Uint8Array[] = []
  const peerCodes: number[] = []
  const peerKeys: (Uint8Array | undefined)[] = []
  const peerNames: Uint8Array[] = []
  const times: number[] = []
  const peerIndexes: number[] = []
  let size = 1
  let previousTime = 0
  // The previous message's peer, compared by reference first: batches come in runs per peer.
  let lastMechanism = ''
  let lastAddress = ''
  let lastKey: Uint8Array | undefined
  let lastName: string | undefined
  let lastIndex = -1
  for (let index = 0; index < messages.length; index++) {
    const message = messages[index] as RelayMessage
    const frames = message.frames
    if (frames.length === 0) throw new RangeError(`message ${index} has no frame`)
    if (!Number.isFinite(message.receivedAt)) {
      throw new RangeError(`message ${index} receivedAt ${message.receivedAt} is not finite`)
    }
    // + 0 turns -0 into 0.
    const time = Math.floor(message.receivedAt) + 0
    checkEncodableTime(time, `message ${index} time`)
    const delta = index === 0 ? 0 : time - previousTime
    checkEncodableTime(delta, `message ${index} time difference`)
    previousTime = time
    times.push(time)

    const key = message.publicKey
    const keyName = message.keyName
    let peer: number
    if (
      lastIndex >= 0 &&
      message.peerAddress === lastAddress &&
      message.mechanism === lastMechanism &&
      key === lastKey &&
      keyName === lastName
    ) {
      peer = lastIndex
    } else {
      if (key !== undefined && key.length !== PUBLIC_KEY_SIZE) {
        throw new RangeError(
          `message ${index} publicKey is ${key.length} octets; expected ${PUBLIC_KEY_SIZE}`,
        )
      }
      const code = MECHANISM_CODES[message.mechanism]
      if (code === undefined) {
        throw new RangeError(`message ${index} has unknown mechanism ${message.mechanism}`)
      }
      let nameBytes: Uint8Array = NO_NAME
      if (keyName !== undefined) {
        if (key === undefined || !isKeyName(keyName)) {
          throw new RangeError(
            `message ${index} keyName ${key === undefined ? 'without a publicKey' : 'breaks the name rule'}`,
          )
        }
        nameBytes = utf8Encoder.encode(keyName)
        if (nameBytes.length > MAX_KEY_NAME_BYTES) {
          throw new RangeError(
            `message ${index} keyName is ${nameBytes.length} octets; at most ${MAX_KEY_NAME_BYTES}`,
          )
        }
      }
      // Unambiguous: one mechanism digit, then '-' or 'k' and 32 key characters, then the name's
      // length and the name, then the address.
      const name =
        key === undefined
          ? `${code}-${message.peerAddress}`
          : `${code}k${String.fromCharCode(...key)}${keyName === undefined ? '-' : `${keyName.length}:${keyName}`}${message.peerAddress}`
      const known = peerIndex.get(name)
      if (known !== undefined) {
        peer = known
      } else {
        const address = utf8Encoder.encode(message.peerAddress)
        if (address.length > MAX_PEER_ADDRESS_BYTES) {
          throw new RangeError(
            `message ${index} peerAddress is ${address.length} octets; at most ${MAX_PEER_ADDRESS_BYTES}`,
          )
        }
        peer = peerBytes.length
        peerIndex.set(name, peer)
        peerBytes.push(address)
        peerCodes.push(code)
        peerKeys.push(key)
        peerNames.push(nameBytes)
        size += 1 + uvarintSize(address.length) + address.length + 1 + (key?.length ?? 0)
        if (format === SegmentFormat.NAMED) size += uvarintSize(nameBytes.length) + nameBytes.length
      }
      lastMechanism = message.mechanism
      lastAddress = message.peerAddress
      lastKey = key
      lastName = keyName
      lastIndex = peer
    }
    peerIndexes.push(peer)

    size += uvarintSize(zigzag(delta)) + uvarintSize(peer) + uvarintSize(frames.length)
    for (const frame of frames) size += uvarintSize(frame.length) + frame.length
  }
  size += uvarintSize(peerBytes.length) + uvarintSize(messages.length)
  size += uvarintSize(zigzag(times[0] as number))
  return { format, size, peerBytes, peerCodes, peerKeys, peerNames, times, peerIndexes }
}

/**
 * The size {@link encodeSegment} gives these messages, in octets.
 * @throws RangeError as {@link encodeSegment}.
 */
export function encodedSegmentSize(messages: readonly RelayMessage[]): number {
  return plan(messages).size
}

/**
 * Encodes consecutive messages into one segment. Times are stored as whole ms (floored); each
 * distinct peer (mechanism, address, key octets) is stored once.
 * @throws RangeError (not a {@link SegmentFormatError}) for no messages, a message without
 * frames, a time that is not finite or is outside {@link MIN_SEGMENT_TIME} to
 * {@link MAX_SEGMENT_TIME} or differs from the previous one by more than that range, a public
 * key that is not 32 octets, or a peer address over {@link MAX_PEER_ADDRESS_BYTES} UTF-8 octets.
 */
export function encodeSegment(messages: readonly RelayMessage[]): Uint8Array {
  const { format, size, peerBytes, peerCodes, peerKeys, peerNames, times, peerIndexes } =
    plan(messages)
  const out = new Uint8Array(size)
  out[0] = format
  let offset = writeUvarint(out, 1, peerBytes.length)
  for (let peer = 0; peer < peerBytes.length; peer++) {
    const address = peerBytes[peer] as Uint8Array
    const key = peerKeys[peer]
    out[offset++] = peerCodes[peer] as number
    offset = writeUvarint(out, offset, address.length)
    out.set(address, offset)
    offset += address.length
    if (key === undefined) {
      out[offset++] = 0
    } else {
      out[offset++] = PUBLIC_KEY_SIZE
      out.set(key, offset)
      offset += PUBLIC_KEY_SIZE
    }
    if (format === SegmentFormat.NAMED) {
      const name = peerNames[peer] as Uint8Array
      offset = writeUvarint(out, offset, name.length)
      out.set(name, offset)
      offset += name.length
    }
  }
  offset = writeUvarint(out, offset, messages.length)
  let previousTime = times[0] as number
  offset = writeUvarint(out, offset, zigzag(previousTime))
  for (let index = 0; index < messages.length; index++) {
    const frames = (messages[index] as RelayMessage).frames
    const time = times[index] as number
    offset = writeUvarint(out, offset, zigzag(time - previousTime))
    previousTime = time
    offset = writeUvarint(out, offset, peerIndexes[index] as number)
    offset = writeUvarint(out, offset, frames.length)
    for (const frame of frames) offset = writeUvarint(out, offset, frame.length)
    for (const frame of frames) {
      out.set(frame, offset)
      offset += frame.length
    }
  }
  return out
}

/** A peer descriptor as parsed from the header; its address is decoded when first used. */
interface PeerEntry {
  mechanism: Mechanism
  addressOffset: number
  addressLength: number
  /** Offset of the key's 32 octets, or -1 for none. */
  keyOffset: number
  nameOffset: number
  /** 0 for none. */
  nameLength: number
}

interface Header {
  peers: PeerEntry[]
  messageCount: number
  baseTime: number
  /** Offset of the first message. */
  offset: number
}

function readHeader(bytes: Uint8Array): Header {
  const end = bytes.length
  if (end === 0) throw corrupt('segment is empty')
  const format = bytes[0]
  checkFormat(format)
  const peerCount = readUvarint(bytes, 1, end)
  let offset = varintEnd
  if (peerCount === 0) throw corrupt('segment has no peer')
  if (peerCount > (end - offset) / MIN_PEER_OCTETS) {
    throw corrupt(`peer count ${peerCount} does not fit the segment`)
  }
  const peers: PeerEntry[] = []
  for (let peer = 0; peer < peerCount; peer++) {
    if (offset >= end) throw corrupt(`segment ends inside peer ${peer}`)
    const mechanism = mechanismOf(bytes[offset] as number, offset)
    const addressLength = readUvarint(bytes, offset + 1, end)
    offset = varintEnd
    if (addressLength > MAX_PEER_ADDRESS_BYTES) {
      throw corrupt(`peer ${peer} address is ${addressLength} octets`)
    }
    const addressOffset = offset
    offset += addressLength
    if (offset >= end) throw corrupt(`segment ends inside peer ${peer}`)
    const keyLength = bytes[offset++] as number
    let keyOffset = -1
    if (keyLength === PUBLIC_KEY_SIZE) {
      keyOffset = offset
      offset += PUBLIC_KEY_SIZE
      if (offset > end) throw corrupt(`segment ends inside peer ${peer}'s key`)
    } else if (keyLength !== 0) {
      throw corrupt(`peer ${peer} key length ${keyLength}; expected 0 or ${PUBLIC_KEY_SIZE}`)
    }
    let nameLength = 0
    let nameOffset = offset
    if (format === SegmentFormat.NAMED) {
      nameLength = readUvarint(bytes, offset, end)
      checkNameLength(nameLength, keyOffset >= 0, peer)
      nameOffset = varintEnd
      offset = nameOffset + nameLength
      if (offset > end) throw corrupt(`segment ends inside peer ${peer}'s name`)
    }
    peers.push({ mechanism, addressOffset, addressLength, keyOffset, nameOffset, nameLength })
  }
  const messageCount = readUvarint(bytes, offset, end)
  offset = varintEnd
  if (messageCount === 0) throw corrupt('segment has no message')
  const baseTime = unzigzag(readUvarint(bytes, offset, end))
  offset = varintEnd
  if (messageCount > (end - offset) / MIN_MESSAGE_OCTETS) {
    throw corrupt(`message count ${messageCount} does not fit the segment`)
  }
  return { peers, messageCount, baseTime, offset }
}

/**
 * How many messages a segment holds, from its header alone.
 * @throws SegmentFormatError when the header is not a valid header.
 */
export function segmentMessageCount(bytes: Uint8Array): number {
  return readHeader(bytes).messageCount
}

interface Peer {
  mechanism: Mechanism
  peerAddress: string
  publicKey: Uint8Array | undefined
  keyName: string | undefined
}

function checkIndex(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be an integer >= 0, got ${value}`)
  }
}

/**
 * Decodes the messages of a segment with indexes `from` to `from + count - 1`. Earlier messages
 * are skipped by their lengths, later ones are not read. Frames and keys are views into `bytes`.
 * @param options.from first message (default 0); past the last message gives `[]`.
 * @param options.count most messages to decode (default: all to the end). Octets after the last
 * message are refused only when the range reaches it.
 * @throws SegmentFormatError for a segment that is not valid format 1 up to the range's end
 * (peer addresses are checked as UTF-8 when a message in the range refers to them).
 * @throws RangeError (not a SegmentFormatError) when `from` or `count` is not an integer >= 0.
 */
export function decodeSegment(
  bytes: Uint8Array,
  options: { from?: number; count?: number } = {},
): SegmentMessage[] {
  const from = options.from ?? 0
  checkIndex(from, 'from')
  if (options.count !== undefined) checkIndex(options.count, 'count')
  const { peers: entries, messageCount, baseTime, offset: start } = readHeader(bytes)
  const stop = Math.min(messageCount, from + (options.count ?? messageCount))
  const result: SegmentMessage[] = []
  if (from >= stop) return result
  const end = bytes.length
  const peerCount = entries.length
  const peers: (Peer | undefined)[] = []
  let p = start
  let time = baseTime
  for (let index = 0; index < stop; index++) {
    const at = p
    time += unzigzag(readUvarint(bytes, p, end))
    if (time < MIN_SEGMENT_TIME || time > MAX_SEGMENT_TIME) {
      throw corrupt(`time ${time} out of range at octet ${at}`)
    }
    const peerIndex = readUvarint(bytes, varintEnd, end)
    if (peerIndex >= peerCount) throw corrupt(`peer index ${peerIndex} at octet ${at}`)
    const frameCount = readUvarint(bytes, varintEnd, end)
    p = varintEnd
    if (frameCount === 0 || frameCount > end - p) {
      throw corrupt(`frame count ${frameCount} at octet ${at}`)
    }
    const lengthsOffset = p
    let size = 0
    for (let frame = 0; frame < frameCount; frame++) {
      size += readUvarint(bytes, p, end)
      p = varintEnd
    }
    // A sum of lengths that passes `end` stays past it in floating point, rounded or not.
    if (size > end - p) throw corrupt(`frames of the message at octet ${at} run past the end`)
    const framesOffset = p
    p += size
    if (index < from) continue

    let peer = peers[peerIndex]
    if (peer === undefined) {
      const entry = entries[peerIndex] as PeerEntry
      peer = {
        mechanism: entry.mechanism,
        peerAddress: decodeAddress(
          bytes.subarray(entry.addressOffset, entry.addressOffset + entry.addressLength),
          entry.addressOffset,
        ),
        publicKey:
          entry.keyOffset < 0
            ? undefined
            : bytes.subarray(entry.keyOffset, entry.keyOffset + PUBLIC_KEY_SIZE),
        keyName:
          entry.nameLength === 0
            ? undefined
            : decodeName(
                bytes.subarray(entry.nameOffset, entry.nameOffset + entry.nameLength),
                entry.nameOffset,
              ),
      }
      peers[peerIndex] = peer
    }
    const frames: Uint8Array[] = []
    if (frameCount === 1) {
      frames.push(bytes.subarray(framesOffset, p))
    } else {
      let q = lengthsOffset
      let o = framesOffset
      for (let frame = 0; frame < frameCount; frame++) {
        const length = readUvarint(bytes, q, end)
        q = varintEnd
        frames.push(bytes.subarray(o, o + length))
        o += length
      }
    }
    result.push(
      peer.publicKey === undefined
        ? {
            receivedAt: time,
            mechanism: peer.mechanism,
            peerAddress: peer.peerAddress,
            size,
            frames,
          }
        : peer.keyName === undefined
          ? {
              receivedAt: time,
              mechanism: peer.mechanism,
              peerAddress: peer.peerAddress,
              publicKey: peer.publicKey,
              size,
              frames,
            }
          : {
              receivedAt: time,
              mechanism: peer.mechanism,
              peerAddress: peer.peerAddress,
              publicKey: peer.publicKey,
              keyName: peer.keyName,
              size,
              frames,
            },
    )
  }
  if (stop === messageCount && p !== end) {
    throw corrupt(`${end - p} octets after the segment's last message`)
  }
  return result
}

/**
 * Lists where each message of a segment lies, reading only its header, message heads and frame
 * lengths, a window of at most `window` octets at a time, and never its frames' octets: for a
 * segment stored in pieces, such as one huge message.
 * @param read returns exactly the segment's octets `[offset, offset + length)`; called with
 * `length` >= 1.
 * @param totalLength the segment's length in octets.
 * @param window most octets asked of `read` at once (default {@link SCAN_WINDOW_BYTES}).
 * @throws SegmentFormatError for a segment that is not valid format 1, or a `read` that returns
 * another number of octets than asked; `read`'s own errors pass through.
 * @throws RangeError (not a SegmentFormatError) when `totalLength` or `window` is invalid.
 */
export function scanSegment(
  read: (offset: number, length: number) => Uint8Array,
  totalLength: number,
  window = SCAN_WINDOW_BYTES,
): SegmentMessageLayout[] {
  checkIndex(totalLength, 'totalLength')
  if (!Number.isSafeInteger(window) || window < 1) {
    throw new RangeError(`window must be an integer >= 1, got ${window}`)
  }
  let pos = 0
  let buffer: Uint8Array = new Uint8Array(0)
  let bufferStart = 0

  // Each read starts at `pos` and asks for the octets known to be header, message head or
  // frame lengths (`ahead`, at least the one needed), so it never reaches into frame octets.
  function fill(ahead: number): void {
    if (pos >= totalLength) throw corrupt(`segment ends at octet ${totalLength}`)
    const length = Math.min(window, totalLength - pos, Math.max(ahead, 1))
    buffer = read(pos, length)
    if (buffer.length !== length) {
      throw corrupt(`read returned ${buffer.length} octets for ${length} at octet ${pos}`)
    }
    bufferStart = pos
  }

  // One octet, followed by at least `follow` octets of header, head or lengths.
  function octet(follow: number): number {
    let index = pos - bufferStart
    if (index >= buffer.length) {
      fill(1 + follow)
      index = 0
    }
    pos++
    return buffer[index] as number
  }

  function uvarint(follow: number): number {
    const start = pos
    let value = 0
    let scale = 1
    for (let index = 0; index < MAX_VARINT_OCTETS; index++) {
      const next = octet(follow)
      if (next < 0x80) {
        if (next === 0 && index > 0) throw corrupt(`non-minimal varint at octet ${start}`)
        if (index === MAX_VARINT_OCTETS - 1 && next > 0x0f) {
          throw corrupt(`varint over 2^53 - 1 at octet ${start}`)
        }
        return value + next * scale
      }
      value += (next & 0x7f) * scale
      scale *= 0x80
    }
    throw corrupt(`varint longer than ${MAX_VARINT_OCTETS} octets at octet ${start}`)
  }

  // `length` octets (an address or a key), followed by at least `follow` octets of header.
  function take(length: number, follow: number): Uint8Array {
    if (pos + length > totalLength) throw corrupt(`segment ends inside the field at octet ${pos}`)
    const bufferEnd = bufferStart + buffer.length
    if (pos + length > bufferEnd && length <= window) fill(length + follow)
    if (pos + length <= bufferStart + buffer.length) {
      const bytes = buffer.subarray(pos - bufferStart, pos - bufferStart + length)
      pos += length
      return bytes
    }
    // Longer than a window (only with windows under 255 octets): gathered one at a time.
    const bytes = new Uint8Array(length)
    for (let done = 0; done < length; ) {
      if (pos >= bufferStart + buffer.length) fill(length - done + follow)
      const index = pos - bufferStart
      const part = buffer.subarray(index, index + Math.min(length - done, buffer.length - index))
      bytes.set(part, done)
      done += part.length
      pos += part.length
    }
    return bytes
  }

  const format = octet(1 + MIN_PEER_OCTETS + MIN_TAIL_OCTETS)
  checkFormat(format)
  const peerCount = uvarint(MIN_PEER_OCTETS + MIN_TAIL_OCTETS)
  if (peerCount === 0) throw corrupt('segment has no peer')
  if (peerCount > (totalLength - pos) / MIN_PEER_OCTETS) {
    throw corrupt(`peer count ${peerCount} does not fit the segment`)
  }
  const peers: Peer[] = []
  for (let peer = 0; peer < peerCount; peer++) {
    // What the peers after this one and the rest of the header take at least.
    const after = (peerCount - peer - 1) * MIN_PEER_OCTETS + MIN_TAIL_OCTETS
    const mechanismOffset = pos
    const mechanism = mechanismOf(octet(MIN_PEER_OCTETS - 1 + after), mechanismOffset)
    const addressLength = uvarint(1 + after)
    if (addressLength > MAX_PEER_ADDRESS_BYTES) {
      throw corrupt(`peer ${peer} address is ${addressLength} octets`)
    }
    const addressOffset = pos
    const peerAddress = decodeAddress(take(addressLength, 1 + after), addressOffset)
    const keyLength = octet(after)
    let publicKey: Uint8Array | undefined
    if (keyLength === PUBLIC_KEY_SIZE) {
      // A copy: the window it lies in is `read`'s, and may be reused.
      publicKey = take(PUBLIC_KEY_SIZE, after).slice()
    } else if (keyLength !== 0) {
      throw corrupt(`peer ${peer} key length ${keyLength}; expected 0 or ${PUBLIC_KEY_SIZE}`)
    }
    let keyName: string | undefined
    if (format === SegmentFormat.NAMED) {
      const nameLength = uvarint(after)
      checkNameLength(nameLength, publicKey !== undefined, peer)
      if (nameLength > 0) {
        const nameOffset = pos
        keyName = decodeName(take(nameLength, after), nameOffset)
      }
    }
    peers.push({ mechanism, peerAddress, publicKey, keyName })
  }
  const messageCount = uvarint(MIN_TAIL_OCTETS - 1)
  if (messageCount === 0) throw corrupt('segment has no message')
  let time = unzigzag(uvarint(MIN_MESSAGE_OCTETS))
  if (messageCount > (totalLength - pos) / MIN_MESSAGE_OCTETS) {
    throw corrupt(`message count ${messageCount} does not fit the segment`)
  }

  const layouts: SegmentMessageLayout[] = []
  for (let index = 0; index < messageCount; index++) {
    const at = pos
    time += unzigzag(uvarint(MIN_MESSAGE_OCTETS - 1))
    if (time < MIN_SEGMENT_TIME || time > MAX_SEGMENT_TIME) {
      throw corrupt(`time ${time} out of range at octet ${at}`)
    }
    const peerIndex = uvarint(MIN_MESSAGE_OCTETS - 2)
    const peer = peers[peerIndex]
    if (peer === undefined) throw corrupt(`peer index ${peerIndex} at octet ${at}`)
    const frameCount = uvarint(MIN_MESSAGE_OCTETS - 3)
    if (frameCount === 0 || frameCount > totalLength - pos) {
      throw corrupt(`frame count ${frameCount} at octet ${at}`)
    }
    const frameSizes: number[] = []
    let size = 0
    for (let frame = 0; frame < frameCount; frame++) {
      // Each length after this one takes an octet at least.
      const length = uvarint(frameCount - frame - 1)
      frameSizes.push(length)
      size += length
    }
    if (size > totalLength - pos) {
      throw corrupt(`frames of the message at octet ${at} run past the end`)
    }
    const layout: SegmentMessageLayout = {
      receivedAt: time,
      mechanism: peer.mechanism,
      peerAddress: peer.peerAddress,
      size,
      frameSizes,
      framesOffset: pos,
    }
    if (peer.publicKey !== undefined) layout.publicKey = peer.publicKey
    if (peer.keyName !== undefined) layout.keyName = peer.keyName
    layouts.push(layout)
    // The frames' octets are skipped, never read.
    pos += size
  }
  if (pos !== totalLength) {
    throw corrupt(`${totalLength - pos} octets after the segment's last message`)
  }
  return layouts
}
