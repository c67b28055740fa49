// Inputs for the connection fuzz properties: valid ZMTP client streams (NULL and CURVE) that know
// the messages they carry and where each one ends, mutations of them, and ways to split them.
// Built byte by byte from the RFCs (CURVE through the test client), not with the codec under test.
import fc from 'fast-check'
import nacl from 'tweetnacl'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { type CurveCrypto, createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { CurveTestClient, concatBytes } from './curve-client'

const ascii = (text: string) => new TextEncoder().encode(text)
const hex = (value: string) => Uint8Array.from(Buffer.from(value, 'hex'))

// ---------------------------------------------------------------------------------------------
// Wire encoding (RFC 23), independent of node-bridge/zmtp.

export interface FrameBits {
  more?: boolean
  command?: boolean
  /** Use the 8-octet size even for a body of at most 255 octets (legal, RFC 23 only SHOULDs). */
  long?: boolean
}

/** One frame: flags, 1- or 8-octet size, body. */
export function frameBytes(body: Uint8Array, bits: FrameBits = {}): Uint8Array {
  const long = bits.long === true || body.length > 255
  const header = long ? 9 : 2
  const out = new Uint8Array(header + body.length)
  out[0] = (bits.more ? 0x01 : 0) | (long ? 0x02 : 0) | (bits.command ? 0x04 : 0)
  if (long) new DataView(out.buffer).setBigUint64(1, BigInt(body.length))
  else out[1] = body.length
  out.set(body, header)
  return out
}

/** A frame header alone announcing `size` octets (a bigint, so sizes past 2^53 can be sent). */
export function longHeader(size: bigint, bits: FrameBits = {}): Uint8Array {
  const out = new Uint8Array(9)
  out[0] = (bits.more ? 0x01 : 0) | 0x02 | (bits.command ? 0x04 : 0)
  new DataView(out.buffer).setBigUint64(1, size)
  return out
}

/** A command body: name-length octet, name, data. */
export function commandBody(name: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concatBytes(Uint8Array.of(name.length), ascii(name), data)
}

/** RFC 23 metadata: name-length, name, 4-octet value length, value; in the order given. */
export function metadataBytes(properties: ReadonlyArray<readonly [string, Uint8Array]>) {
  return concatBytes(
    ...properties.map(([name, value]) => {
      const length = new Uint8Array(4)
      new DataView(length.buffer).setUint32(0, value.length)
      return concatBytes(Uint8Array.of(name.length), ascii(name), length, value)
    }),
  )
}

export interface GreetingSpec {
  /** Version-minor: 0 (ZMTP 3.0), 1 (3.1) or a later one the server must accept. */
  minor: number
  /** Signature padding, octets 1..8: RFC 23 says it SHALL NOT be validated. */
  padding: Uint8Array
  /** The 31 filler octets, not validated either. */
  filler: Uint8Array
}

/** A client greeting: FF padding 7F, 3.minor, mechanism, as-server 0, filler. */
export function greetingBytes(spec: GreetingSpec, mechanism: string): Uint8Array {
  const out = new Uint8Array(64)
  out[0] = 0xff
  out.set(spec.padding.subarray(0, 8), 1)
  out[9] = 0x7f
  out[10] = 3
  out[11] = spec.minor
  out.set(ascii(mechanism), 12)
  out.set(spec.filler.subarray(0, 31), 33)
  return out
}

// ---------------------------------------------------------------------------------------------
// What a stream carries, and arbitraries for it.

export interface FrameSpec {
  body: Uint8Array
  long: boolean
}

/** A command slipped between frames after the handshake: a PING, or one a PULL ignores. */
export type ExtraSpec =
  | { kind: 'ping'; ttl: number; context: Uint8Array; long: boolean }
  | { kind: 'command'; name: string; data: Uint8Array; long: boolean }

export interface MessagesSpec {
  messages: FrameSpec[][]
  /** Commands and where they go: `at` modulo the number of frame boundaries (0 = first). */
  extras: Array<{ at: number; extra: ExtraSpec }>
}

export interface NullStreamSpec extends MessagesSpec {
  greeting: GreetingSpec
  /** The name of the Socket-Type property as spelled (names are case-insensitive). */
  socketTypeName: string
  /** Other READY properties, and the index Socket-Type is inserted at. */
  otherProperties: Array<[string, Uint8Array]>
  socketTypeIndex: number
  readyLong: boolean
}

/** A valid stream and what the server must make of it. */
export interface BuiltStream {
  bytes: Uint8Array
  messages: Uint8Array[][]
  /** For each message, the offset just past its last frame. */
  messageEnds: number[]
  /** Offsets where the greeting and each frame start: mutations aim at and near these. */
  boundaries: number[]
  /** The PING contexts, in order: each must come back in a PONG, cut to 16 octets. */
  pings: Uint8Array[]
  /** Where each frame after the handshake starts and ends, in order. */
  frameSpans: Array<[start: number, end: number]>
}

const longFlag = fc.oneof(
  { weight: 4, arbitrary: fc.constant(false) },
  { weight: 1, arbitrary: fc.constant(true) },
)

function bodyArbitrary(maxLong: number) {
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(new Uint8Array(0)) },
    { weight: 4, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 16 }) },
    // Around the short/long boundary (255 fits a 1-octet size, 256 needs 8 octets).
    {
      weight: 2,
      arbitrary: fc
        .integer({ min: 254, max: 257 })
        .chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 258, maxLength: maxLong }) },
  )
}

const extraArbitrary: fc.Arbitrary<ExtraSpec> = fc.oneof(
  fc.record({
    kind: fc.constant('ping' as const),
    ttl: fc.integer({ min: 0, max: 0xffff }),
    // RFC 37 says at most 16 octets; longer contexts are echoed cut to 16, as libzmq does.
    context: fc.uint8Array({ maxLength: 24 }),
    long: longFlag,
  }),
  fc.record({
    kind: fc.constant('command' as const),
    name: fc.oneof(
      fc.constantFrom('PONG', 'SUBSCRIBE', 'CANCEL', 'JOIN', 'LEAVE', 'READY', 'HELLO'),
      fc.stringMatching(/^[A-Za-z]{1,12}$/).filter((name) => name !== 'PING' && name !== 'ERROR'),
    ),
    data: fc.uint8Array({ maxLength: 40 }),
    long: longFlag,
  }),
)

function messagesArbitrary(limits: { messages: number; frames: number; maxLong: number }) {
  return fc.record({
    messages: fc.array(
      fc.array(fc.record({ body: bodyArbitrary(limits.maxLong), long: longFlag }), {
        minLength: 1,
        maxLength: limits.frames,
      }),
      { maxLength: limits.messages },
    ),
    extras: fc.array(fc.record({ at: fc.nat(), extra: extraArbitrary }), { maxLength: 4 }),
  })
}

export const greetingArbitrary: fc.Arbitrary<GreetingSpec> = fc.record({
  minor: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(0, 1) },
    { weight: 1, arbitrary: fc.integer({ min: 2, max: 255 }) },
  ),
  padding: fc.oneof(fc.constant(new Uint8Array(8)), fc.uint8Array({ minLength: 8, maxLength: 8 })),
  filler: fc.oneof(
    fc.constant(new Uint8Array(31)),
    fc.uint8Array({ minLength: 31, maxLength: 31 }),
  ),
})

export const nullStreamArbitrary: fc.Arbitrary<NullStreamSpec> = fc
  .tuple(
    greetingArbitrary,
    fc.constantFrom('Socket-Type', 'socket-type', 'SOCKET-TYPE', 'sOcKeT-tYpE'),
    fc.uniqueArray(
      fc.tuple(
        fc.constantFrom('Identity', 'X-Trace', 'Resource', 'x-app', 'User-Id'),
        fc.uint8Array({ maxLength: 40 }),
      ),
      { maxLength: 3, selector: ([name]) => name.toLowerCase() },
    ),
    fc.nat(),
    longFlag,
    messagesArbitrary({ messages: 6, frames: 4, maxLong: 1500 }),
  )
  .map(([greeting, socketTypeName, otherProperties, socketTypeIndex, readyLong, carried]) => ({
    greeting,
    socketTypeName,
    otherProperties,
    socketTypeIndex,
    readyLong,
    ...carried,
  }))

/** Appends message frames and commands to `parts`, recording offsets in `built`. */
function appendCarried(
  carried: MessagesSpec,
  built: BuiltStream,
  parts: Uint8Array[],
  offset: number,
  encode: (
    item: { kind: 'frame'; frame: FrameSpec; more: boolean } | { kind: 'extra'; extra: ExtraSpec },
  ) => Uint8Array,
): number {
  type Item =
    | { kind: 'frame'; frame: FrameSpec; more: boolean; last: boolean }
    | { kind: 'extra'; extra: ExtraSpec }
  const items: Item[] = []
  for (const message of carried.messages) {
    message.forEach((frame, index) => {
      const last = index === message.length - 1
      items.push({ kind: 'frame', frame, more: !last, last })
    })
  }
  const slots = items.length + 1
  // Insert from the highest slot down so earlier positions stay valid.
  const extras = carried.extras
    .map(({ at, extra }) => ({ slot: at % slots, extra }))
    .sort((a, b) => b.slot - a.slot)
  for (const { slot, extra } of extras) items.splice(slot, 0, { kind: 'extra', extra })

  let pos = offset
  let current: Uint8Array[] = []
  for (const item of items) {
    const bytes = encode(item)
    built.boundaries.push(pos)
    built.frameSpans.push([pos, pos + bytes.length])
    parts.push(bytes)
    pos += bytes.length
    if (item.kind === 'frame') {
      current.push(item.frame.body)
      if (item.last) {
        built.messages.push(current)
        built.messageEnds.push(pos)
        current = []
      }
    } else if (item.extra.kind === 'ping') {
      built.pings.push(item.extra.context)
    }
  }
  return pos
}

function extraBody(extra: ExtraSpec): Uint8Array {
  if (extra.kind === 'command') return commandBody(extra.name, extra.data)
  const data = new Uint8Array(2 + extra.context.length)
  data[0] = extra.ttl >>> 8
  data[1] = extra.ttl & 0xff
  data.set(extra.context, 2)
  return commandBody('PING', data)
}

/** The bytes a ZMTP 3.x PUSH client sends over NULL, with what they must deliver. */
export function buildNullStream(spec: NullStreamSpec): BuiltStream {
  const built: BuiltStream = {
    bytes: new Uint8Array(0),
    messages: [],
    messageEnds: [],
    boundaries: [0],
    pings: [],
    frameSpans: [],
  }
  const properties: Array<[string, Uint8Array]> = [...spec.otherProperties]
  properties.splice(spec.socketTypeIndex % (properties.length + 1), 0, [
    spec.socketTypeName,
    ascii('PUSH'),
  ])
  const greeting = greetingBytes(spec.greeting, 'NULL')
  const ready = frameBytes(commandBody('READY', metadataBytes(properties)), {
    command: true,
    long: spec.readyLong,
  })
  built.boundaries.push(greeting.length)
  const parts = [greeting, ready]
  appendCarried(spec, built, parts, greeting.length + ready.length, (item) =>
    item.kind === 'frame'
      ? frameBytes(item.frame.body, { more: item.more, long: item.frame.long })
      : frameBytes(extraBody(item.extra), { command: true, long: item.extra.long }),
  )
  built.bytes = concatBytes(...parts)
  return built
}

/** A ZMTP 2.0 PUSH (RFC 15): signature, revision, socket type, identity frame, then frames. */
export interface Zmtp2StreamSpec {
  /** Signature padding (libzmq puts the identity length + 1 there; not validated). */
  padding: Uint8Array
  /** RFC 23 §Backwards Interoperability: revision 1 or 2 is ZMTP 2.0. */
  revision: number
  identity: Uint8Array
  identityLong: boolean
  messages: FrameSpec[][]
}

export const zmtp2StreamArbitrary: fc.Arbitrary<Zmtp2StreamSpec> = fc.record({
  padding: fc.oneof(fc.constant(new Uint8Array(8)), fc.uint8Array({ minLength: 8, maxLength: 8 })),
  revision: fc.constantFrom(1, 2),
  identity: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 255 })),
  identityLong: longFlag,
  messages: messagesArbitrary({ messages: 6, frames: 4, maxLong: 1500 }).map(
    (carried) => carried.messages,
  ),
})

/** The bytes a ZMTP 2.0 PUSH sends (no commands exist in 2.0), with what they must deliver. */
export function buildZmtp2Stream(spec: Zmtp2StreamSpec): BuiltStream {
  const built: BuiltStream = {
    bytes: new Uint8Array(0),
    messages: [],
    messageEnds: [],
    boundaries: [0],
    pings: [],
    frameSpans: [],
  }
  const greeting = new Uint8Array(12)
  greeting[0] = 0xff
  greeting.set(spec.padding.subarray(0, 8), 1)
  greeting[9] = 0x7f
  greeting[10] = spec.revision
  greeting[11] = 0x08 // RFC 15: PUSH
  const identity = frameBytes(spec.identity, { long: spec.identityLong })
  built.boundaries.push(greeting.length)
  const parts = [greeting, identity]
  appendCarried(
    { messages: spec.messages, extras: [] },
    built,
    parts,
    greeting.length + identity.length,
    (item) =>
      item.kind === 'frame'
        ? frameBytes(item.frame.body, { more: item.more, long: item.frame.long })
        : new Uint8Array(0),
  )
  built.bytes = concatBytes(...parts)
  return built
}

// ---------------------------------------------------------------------------------------------
// CURVE: pinned keys and randomness, so a recorded client stream replays against a fresh server.

// libzmq doc/zmq_curve.adoc §TEST KEY VALUES (server and client long-term keys).
export const CURVE_SERVER = nacl.box.keyPair.fromSecretKey(
  hex('8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7'),
)
export const CURVE_CLIENT = nacl.box.keyPair.fromSecretKey(
  hex('7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888'),
)
const CLIENT_TRANSIENT = nacl.box.keyPair.fromSecretKey(new Uint8Array(32).fill(0x11))
const SERVER_TRANSIENT = nacl.box.keyPair.fromSecretKey(new Uint8Array(32).fill(0x22))

const sharedCrypto = createCurveCrypto()

/** node:crypto-backed primitives whose transient key pair and random octets are fixed. */
function pinnedCrypto(): CurveCrypto {
  let call = 0
  return {
    backend: sharedCrypto.backend,
    randomBytes: (n) => {
      call++
      return Uint8Array.from({ length: n }, (_, index) => (call * 37 + index * 11) & 0xff)
    },
    // Copies: the mechanism wipes its transient secret when the handshake ends.
    generateKeyPair: () => ({
      publicKey: SERVER_TRANSIENT.publicKey.slice(),
      secretKey: SERVER_TRANSIENT.secretKey.slice(),
    }),
    derivePublicKey: (secret) => sharedCrypto.derivePublicKey(secret),
    precompute: (theirs, mine) => sharedCrypto.precompute(theirs, mine),
    seal: (message, nonce, key) => sharedCrypto.seal(message, nonce, key),
    sealInPlace: (buffer, nonce, key) => sharedCrypto.sealInPlace(buffer, nonce, key),
    openInPlace: (box, nonce, key) => sharedCrypto.openInPlace(box, nonce, key),
    open: (box, nonce, key) => sharedCrypto.open(box, nonce, key),
  }
}

/** A fresh CURVE server for one connection, deterministic: same input, same output. */
export function makeCurveMechanism(): CurveServerMechanism {
  const crypto = pinnedCrypto()
  return new CurveServerMechanism({
    secretKey: CURVE_SERVER.secretKey,
    publicKey: CURVE_SERVER.publicKey,
    socketType: 'PULL',
    crypto,
    cookieKeys: new CookieKeyring({ crypto, now: () => 0 }),
  })
}

/** A NULL server; `dialled`: the bridge opened the connection (`--connect`), so it speaks first. */
export function makeNullMechanism(dialled = false): NullMechanism {
  return new NullMechanism('PULL', { dialled })
}

interface CurveHandshake {
  /** The HELLO and INITIATE frames (nonces 1 and 2). */
  hello: Uint8Array
  initiate: Uint8Array
  /** The client, past WELCOME: its next short nonce is reset to 3 for each stream. */
  client: CurveTestClient
  /** Offset of the 72 HELLO padding octets within the HELLO frame. */
  helloPaddingOffset: number
}

let handshake: CurveHandshake | undefined

/** HELLO and INITIATE for the pinned keys, made once (the server side replays identically). */
export function curveHandshake(): CurveHandshake {
  if (handshake) return handshake
  const client = new CurveTestClient({
    serverPublicKey: CURVE_SERVER.publicKey,
    longTerm: CURVE_CLIENT,
    transient: CLIENT_TRANSIENT,
    randomBytes: (n) => new Uint8Array(n).fill(0x5a),
  })
  const hello = client.hello()
  // HELLO is a 200-octet command: a short frame, so its body starts at 2; its data after 6.
  const step = makeCurveMechanism().onCommand({ name: 'HELLO', data: hello.subarray(2 + 6) })
  const welcome = step.output[0]
  if (!welcome) throw new Error('the pinned CURVE server sent no WELCOME')
  client.readWelcome(welcome.subarray(2))
  const initiate = client.initiate()
  // Frame header 2, `\x05HELLO` 6, version 2.
  handshake = { hello, initiate, client, helloPaddingOffset: 2 + 6 + 2 }
  return handshake
}

export interface CurveStreamSpec extends MessagesSpec {
  greeting: GreetingSpec
  /** Per MESSAGE frame, by index (cycled): put it in a command frame (0x04), and/or set the
   * outer MORE bit; libzmq uses neither, both are accepted (the boxed flags count). */
  outer: Array<{ commandFrame: boolean; outerMore: boolean }>
}

export interface BuiltCurveStream extends BuiltStream {
  /** Where the HELLO padding is: octets no one authenticates. */
  helloPadding: [start: number, end: number]
}

export const curveStreamArbitrary: fc.Arbitrary<CurveStreamSpec> = fc
  .tuple(
    greetingArbitrary,
    messagesArbitrary({ messages: 4, frames: 3, maxLong: 600 }),
    fc.array(fc.record({ commandFrame: fc.boolean(), outerMore: fc.boolean() }), {
      minLength: 1,
      maxLength: 4,
    }),
  )
  .map(([greeting, carried, outer]) => ({ greeting, outer, ...carried }))

/** The bytes a CURVE PUSH client sends (greeting, HELLO, INITIATE, MESSAGEs), pinned keys. */
export function buildCurveStream(spec: CurveStreamSpec): BuiltCurveStream {
  const { hello, initiate, client, helloPaddingOffset } = curveHandshake()
  client.nextNonce = 3n
  const greeting = greetingBytes(spec.greeting, 'CURVE')
  const built: BuiltCurveStream = {
    bytes: new Uint8Array(0),
    messages: [],
    messageEnds: [],
    boundaries: [0, greeting.length, greeting.length + hello.length],
    pings: [],
    frameSpans: [],
    helloPadding: [greeting.length + helloPaddingOffset, greeting.length + helloPaddingOffset + 72],
  }
  const parts = [greeting, hello, initiate]
  let index = 0
  appendCarried(spec, built, parts, greeting.length + hello.length + initiate.length, (item) => {
    const outer = spec.outer[index++ % spec.outer.length] ?? {
      commandFrame: false,
      outerMore: false,
    }
    const body =
      item.kind === 'frame'
        ? client.messageBody(item.frame.body, { more: item.more })
        : client.messageBody(extraBody(item.extra), { command: true })
    // RFC 23: a command frame cannot have MORE, so the outer MORE only goes on ordinary frames.
    return frameBytes(body, {
      command: outer.commandFrame,
      more: outer.outerMore && !outer.commandFrame,
    })
  })
  built.bytes = concatBytes(...parts)
  return built
}

/** Opens a server MESSAGE with the pinned client's keys: the boxed flags and payload. */
export function openServerMessage(body: Uint8Array): { flags: number; payload: Uint8Array } {
  return curveHandshake().client.openMessage(body)
}

// ---------------------------------------------------------------------------------------------
// Mutations and splits.

/** Where a mutation hits: anywhere, or near a frame boundary (flags and size octets). */
export interface Position {
  near: 'any' | 'boundary'
  index: number
  delta: number
}

export type Mutation =
  | { op: 'flip'; at: Position; mask: number }
  | { op: 'set'; at: Position; value: number }
  | { op: 'insert'; at: Position; bytes: Uint8Array }
  | { op: 'delete'; at: Position; count: number }
  | { op: 'truncate'; at: Position }

const positionArbitrary: fc.Arbitrary<Position> = fc.record({
  near: fc.constantFrom('any' as const, 'boundary' as const),
  index: fc.nat(),
  delta: fc.integer({ min: 0, max: 9 }),
})

export const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constant('flip' as const),
    at: positionArbitrary,
    mask: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    op: fc.constant('set' as const),
    at: positionArbitrary,
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({
    op: fc.constant('insert' as const),
    at: positionArbitrary,
    bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    at: positionArbitrary,
    count: fc.integer({ min: 1, max: 12 }),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: positionArbitrary }),
)

export const mutationsArbitrary = fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 })

function resolve(at: Position, boundaries: number[], limit: number): number {
  if (limit <= 0) return 0
  if (at.near === 'any') return at.index % limit
  const base = boundaries[at.index % Math.max(1, boundaries.length)] ?? 0
  return Math.min(base + at.delta, limit - 1)
}

/**
 * Applies the mutations in turn. `firstChange` is the lowest offset any of them touched: every
 * octet before it is the original's, so every message that ended before it must still arrive.
 */
export function mutate(
  stream: BuiltStream,
  mutations: readonly Mutation[],
): { bytes: Uint8Array; firstChange: number } {
  let bytes = stream.bytes
  let firstChange = bytes.length
  for (const mutation of mutations) {
    if (mutation.op === 'insert') {
      const at = resolve(mutation.at, stream.boundaries, bytes.length + 1)
      bytes = concatBytes(bytes.subarray(0, at), mutation.bytes, bytes.subarray(at))
      firstChange = Math.min(firstChange, at)
      continue
    }
    if (bytes.length === 0) continue
    const at = resolve(mutation.at, stream.boundaries, bytes.length)
    firstChange = Math.min(firstChange, at)
    switch (mutation.op) {
      case 'flip':
        bytes = bytes.slice()
        bytes[at] = (bytes[at] ?? 0) ^ mutation.mask
        break
      case 'set':
        bytes = bytes.slice()
        bytes[at] = mutation.value
        break
      case 'delete':
        bytes = concatBytes(bytes.subarray(0, at), bytes.subarray(at + mutation.count))
        break
      case 'truncate':
        bytes = bytes.subarray(0, at)
        break
    }
  }
  return { bytes, firstChange }
}

/** A change of whole frames after the handshake: what an attacker on the path could do. */
export type FrameOp =
  | { op: 'drop'; index: number }
  | { op: 'replay'; index: number; to: number }
  | { op: 'swap'; a: number; b: number }

export const frameOpsArbitrary: fc.Arbitrary<FrameOp[]> = fc.array(
  fc.oneof(
    fc.record({ op: fc.constant('drop' as const), index: fc.nat() }),
    fc.record({ op: fc.constant('replay' as const), index: fc.nat(), to: fc.nat() }),
    fc.record({ op: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
  ),
  { minLength: 1, maxLength: 2 },
)

/**
 * Rearranges the frames after the handshake. `firstChange` is the offset of the first frame
 * that is no longer the original's; `changed` is false when the ops were no-ops (no frames, or
 * a frame swapped with itself).
 */
export function rearrange(
  stream: BuiltStream,
  ops: readonly FrameOp[],
): { bytes: Uint8Array; firstChange: number; changed: boolean } {
  const spans = stream.frameSpans
  const start = spans[0]?.[0] ?? stream.bytes.length
  let order = spans.map((_, index) => index)
  for (const op of ops) {
    if (order.length === 0) break
    const n = order.length
    if (op.op === 'drop') order.splice(op.index % n, 1)
    else if (op.op === 'replay') {
      const frame = order[op.index % n] as number
      // A replay comes after the original, anywhere later.
      const after = (op.index % n) + 1
      order.splice(after + (op.to % (n - after + 1)), 0, frame)
    } else {
      const a = op.a % n
      const b = op.b % n
      ;[order[a], order[b]] = [order[b] as number, order[a] as number]
    }
  }
  order = order.filter((index) => index !== undefined)
  const firstDiff = order.findIndex((frame, position) => frame !== position)
  const changed = firstDiff !== -1 || order.length !== spans.length
  const divergence = firstDiff === -1 ? order.length : firstDiff
  const firstChange =
    divergence < spans.length ? (spans[divergence]?.[0] ?? start) : stream.bytes.length
  const bytes = concatBytes(
    stream.bytes.subarray(0, start),
    ...order.map((index) => {
      const [from, to] = spans[index] as [number, number]
      return stream.bytes.subarray(from, to)
    }),
  )
  return { bytes, firstChange, changed }
}

/** How a stream is cut into the chunks `receive()` gets: at given points, or byte by byte. */
export type Split = { kind: 'cuts'; cuts: number[] } | { kind: 'bytes' }

export const splitArbitrary: fc.Arbitrary<Split> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc
      .array(fc.nat(), { maxLength: 24 })
      .map((cuts) => ({ kind: 'cuts' as const, cuts })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'bytes' as const }) },
)

/** The chunks of `bytes` for a split (views, no copies); an empty stream gives no chunk. */
export function chunksOf(bytes: Uint8Array, split: Split): Uint8Array[] {
  if (bytes.length === 0) return []
  if (split.kind === 'bytes') {
    return Array.from({ length: bytes.length }, (_, index) => bytes.subarray(index, index + 1))
  }
  const points = [
    ...new Set([0, ...split.cuts.map((cut) => cut % bytes.length), bytes.length]),
  ].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  for (let index = 1; index < points.length; index++) {
    chunks.push(bytes.subarray(points[index - 1], points[index]))
  }
  return chunks
}
