// The connection fuzz properties, shared by test/node/fuzz-connection.test.ts (a few hundred runs)
// and bench/fuzz.ts (a longer campaign with random seeds). Assertions use node:assert so they
// run outside vitest too.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { DEFAULT_MAX_FRAMES_PER_MESSAGE } from '../../node-bridge/bridge/pull-socket'
import { type Frame, FrameDecoder } from '../../node-bridge/zmtp/codec/frame-decoder'
import { ConnectionState, type ReadyPeer, ZmtpConnection } from '../../node-bridge/zmtp/connection'
import { ZmtpError, ZmtpErrorCode } from '../../node-bridge/zmtp/errors'
import type { Mechanism as ZmtpMechanism } from '../../node-bridge/zmtp/mechanisms/mechanism'
import { PULL } from '../../node-bridge/zmtp/sockets/socket-type'
import { concatBytes } from './curve-client'
import {
  type BuiltStream,
  buildCurveStream,
  buildNullStream,
  buildZmtp2Stream,
  chunksOf,
  commandBody,
  curveHandshake,
  curveStreamArbitrary,
  frameBytes,
  frameOpsArbitrary,
  greetingBytes,
  longHeader,
  makeCurveMechanism,
  makeNullMechanism,
  metadataBytes,
  mutate,
  mutationsArbitrary,
  nullStreamArbitrary,
  openServerMessage,
  rearrange,
  splitArbitrary,
  zmtp2StreamArbitrary,
} from './fuzz-streams'

/** The message limit in most properties: far above what the generated streams carry. */
export const FUZZ_MAX_MESSAGE_SIZE = 64 * 1024
/** The limit in the memory property: an allocation of this size could not go unnoticed. */
export const HUGE_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
/** Octets a mechanism wraps around one message frame (CURVE MESSAGE: name, nonce, flags, MAC). */
const FRAME_OVERHEAD = { NULL: 0, CURVE: 33 } as const

/** Where heartbeat PINGs from the server are slipped in between the chunks. */
const pingAfterArbitrary = fc.array(fc.nat(), { maxLength: 3 })

const KNOWN_CODES: ReadonlySet<string> = new Set(Object.values(ZmtpErrorCode))
const ascii = (text: string) => new TextEncoder().encode(text)

/** Everything one connection did with one input. */
export interface Outcome {
  messages: Uint8Array[][]
  /** The argument of every onClose call. */
  closes: Array<ZmtpError | undefined>
  transportCloses: number
  /** Writes after the connection closed its transport: always a bug. */
  writesAfterClose: number
  written: Uint8Array[]
  state: ConnectionState
  ready: ReadyPeer | undefined
  /** What receive() threw, if it did: it must never throw. */
  thrown: unknown
  /** Heartbeat PINGs the server sent (sendPing() while ready). */
  pingsSent: number
}

export interface RunOptions {
  mechanism: ZmtpMechanism
  maxMessageSize?: number
  /** Default: PullSocket's default. */
  maxFramesPerMessage?: number
  /** Accept ZMTP 2.0 peers (NULL only), as `--allow-zmtp2` does. */
  allowZmtp2?: boolean
  /** Call sendPing() after these chunks (indices modulo the chunk count), as heartbeats do. */
  pingAfter?: readonly number[]
}

/** Feeds the chunks to a fresh server connection over an in-memory transport. */
export function runConnection(chunks: readonly Uint8Array[], options: RunOptions): Outcome {
  const outcome: Outcome = {
    messages: [],
    closes: [],
    transportCloses: 0,
    writesAfterClose: 0,
    written: [],
    state: ConnectionState.GREETING,
    ready: undefined,
    thrown: undefined,
    pingsSent: 0,
  }
  const connection = new ZmtpConnection(
    {
      write: (bytes) => {
        if (outcome.transportCloses > 0) outcome.writesAfterClose++
        outcome.written.push(bytes.slice())
      },
      close: () => {
        outcome.transportCloses++
      },
    },
    {
      onReady: (peer) => {
        outcome.ready = peer
      },
      // Frames may be views of the chunks: copy them as a real consumer that keeps them would.
      onMessage: (frames) => outcome.messages.push(frames.map((frame) => frame.slice())),
      onClose: (error) => outcome.closes.push(error),
    },
    {
      mechanism: options.mechanism,
      socketType: PULL,
      maxMessageSize: options.maxMessageSize ?? FUZZ_MAX_MESSAGE_SIZE,
      maxFramesPerMessage: options.maxFramesPerMessage ?? DEFAULT_MAX_FRAMES_PER_MESSAGE,
      allowZmtp2: options.allowZmtp2 === true,
    },
  )
  connection.start()
  const pingAfter = (options.pingAfter ?? []).map((index) => index % Math.max(1, chunks.length))
  for (const [index, chunk] of chunks.entries()) {
    try {
      connection.receive(chunk)
      for (const after of pingAfter) {
        if (after !== index) continue
        if (connection.state === ConnectionState.READY) outcome.pingsSent++
        connection.sendPing(after % 3)
      }
    } catch (error) {
      outcome.thrown = error
      break
    }
  }
  outcome.state = connection.state
  return outcome
}

/**
 * What must hold whatever the input: receive() never throws; onClose is called at most once,
 * with a ZmtpError whose code is in the table and which wraps no internal exception (the
 * connection turns a TypeError or RangeError into a ZmtpError with it as the cause, which would
 * hide a crash); the transport is closed exactly when the connection is; nothing is written
 * after that. Returns the error, if the connection closed.
 */
export function assertWellBehaved(outcome: Outcome): ZmtpError | undefined {
  if (outcome.thrown !== undefined) {
    assert.fail(`receive() threw ${describe(outcome.thrown)}`)
  }
  assert.ok(outcome.closes.length <= 1, `onClose was called ${outcome.closes.length} times`)
  assert.equal(outcome.writesAfterClose, 0, 'the connection wrote after closing its transport')
  if (outcome.closes.length === 0) {
    assert.notEqual(outcome.state, ConnectionState.CLOSED, 'closed without calling onClose')
    assert.equal(outcome.transportCloses, 0, 'closed the transport without calling onClose')
    return undefined
  }
  const error = outcome.closes[0]
  assert.ok(error instanceof ZmtpError, `onClose got ${describe(error)}, not a ZmtpError`)
  assert.ok(KNOWN_CODES.has(error.code), `unknown error code ${error.code}`)
  assert.equal(
    error.cause,
    undefined,
    `an internal exception surfaced as ${error.code}: ${describe(error.cause)}`,
  )
  assert.equal(outcome.state, ConnectionState.CLOSED)
  assert.equal(outcome.transportCloses, 1, 'the transport was not closed exactly once')
  return error
}

function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}\n${value.stack ?? ''}`
  return String(value)
}

/** The frames the server wrote after its 64-octet greeting. */
export function serverFrames(outcome: Outcome): Frame[] {
  const all = concatBytes(...outcome.written)
  assert.ok(all.length >= 64, 'the server did not send its whole greeting')
  return new FrameDecoder().push(all.subarray(64))
}

function commandName(frame: Frame | undefined): string {
  assert.ok(frame?.command, 'expected a command frame')
  return nameOf(frame.body)
}

/** The name of a command body (name-length octet, name, data). */
function nameOf(body: Uint8Array): string {
  return new TextDecoder().decode(body.subarray(1, 1 + (body[0] ?? 0)))
}

/** RFC 37: a PONG echoes the PING's context, at most 16 octets of it. */
function expectedPongs(stream: BuiltStream): Uint8Array[] {
  return stream.pings.map((context) => commandBody('PONG', context.subarray(0, 16)))
}

/** The messages that ended before the first changed octet arrive intact and first. */
function assertIntactPrefix(outcome: Outcome, stream: BuiltStream, firstChange: number): void {
  const intact = stream.messageEnds.filter((end) => end <= firstChange).length
  assert.ok(
    outcome.messages.length >= intact,
    `${outcome.messages.length} messages arrived, ${intact} ended before the first change`,
  )
  assert.deepEqual(outcome.messages.slice(0, intact), stream.messages.slice(0, intact))
}

// ---------------------------------------------------------------------------------------------
// NULL

/** (a) A valid stream, split anywhere, delivers exactly its messages and answers every PING. */
export function nullSplitProperty() {
  return fc.property(
    nullStreamArbitrary,
    splitArbitrary,
    pingAfterArbitrary,
    fc.boolean(),
    (spec, split, pingAfter, dialled) => {
      const stream = buildNullStream(spec)
      const outcome = runConnection(chunksOf(stream.bytes, split), {
        mechanism: makeNullMechanism(dialled),
        pingAfter,
      })
      const error = assertWellBehaved(outcome)
      assert.equal(error, undefined, `a valid stream was closed with ${error?.code}`)
      assert.equal(outcome.state, ConnectionState.READY)
      assert.equal(outcome.ready?.socketType, 'PUSH')
      assert.equal(outcome.ready?.minorVersion, spec.greeting.minor)
      assert.deepEqual(outcome.messages, stream.messages)
      const [ready, ...replies] = serverFrames(outcome)
      assert.equal(commandName(ready), 'READY')
      const pings = replies.filter((frame) => commandName(frame) === 'PING')
      assert.equal(pings.length, outcome.pingsSent)
      assert.deepEqual(
        replies.filter((frame) => commandName(frame) !== 'PING').map((frame) => frame.body),
        expectedPongs(stream),
      )
    },
  )
}

/** (b) A mutated valid stream: a typed close or success, and the messages before the change. */
export function nullMutationProperty() {
  return fc.property(
    nullStreamArbitrary,
    mutationsArbitrary,
    splitArbitrary,
    pingAfterArbitrary,
    (spec, mutations, split, pingAfter) => {
      const stream = buildNullStream(spec)
      const { bytes, firstChange } = mutate(stream, mutations)
      const outcome = runConnection(chunksOf(bytes, split), {
        mechanism: makeNullMechanism(),
        pingAfter,
      })
      assertWellBehaved(outcome)
      assertIntactPrefix(outcome, stream, firstChange)
    },
  )
}

const nullGreeting = greetingBytes(
  { minor: 1, padding: new Uint8Array(8), filler: new Uint8Array(31) },
  'NULL',
)
const curveGreeting = greetingBytes(
  { minor: 1, padding: new Uint8Array(8), filler: new Uint8Array(31) },
  'CURVE',
)
const pushReady = frameBytes(
  commandBody('READY', metadataBytes([['Socket-Type', ascii('PUSH')]])),
  {
    command: true,
  },
)

/** Valid prefixes random bytes are appended to, so they reach every state of both mechanisms. */
const PREFIXES = {
  nothing: () => ({ bytes: new Uint8Array(0), mechanism: makeNullMechanism() }),
  signature: () => ({
    bytes: Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3),
    mechanism: makeNullMechanism(),
  }),
  'null greeting': () => ({ bytes: nullGreeting, mechanism: makeNullMechanism() }),
  'null ready': () => ({
    bytes: concatBytes(nullGreeting, pushReady),
    mechanism: makeNullMechanism(),
  }),
  'curve greeting': () => ({ bytes: curveGreeting, mechanism: makeCurveMechanism() }),
  'curve hello': () => ({
    bytes: concatBytes(curveGreeting, curveHandshake().hello),
    mechanism: makeCurveMechanism(),
  }),
  'curve ready': () => ({
    bytes: concatBytes(curveGreeting, curveHandshake().hello, curveHandshake().initiate),
    mechanism: makeCurveMechanism(),
  }),
} as const
type PrefixName = keyof typeof PREFIXES

/** Random octets that look like frames more often than uniform noise would. */
const noiseArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc
    .array(
      fc.oneof(
        fc.uint8Array({ maxLength: 40 }),
        fc
          .tuple(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 40 }))
          .map(([flags, body]) =>
            frameBytes(body, {
              more: (flags & 1) !== 0 && (flags & 4) === 0,
              command: (flags & 4) !== 0,
              long: (flags & 2) !== 0,
            }),
          ),
      ),
      { maxLength: 12 },
    )
    .map((parts) => concatBytes(...parts)),
)

/** (b) Random octets, alone or after a valid prefix: a typed close or success, never a crash. */
export function garbageProperty() {
  return fc.property(
    fc.constantFrom(...(Object.keys(PREFIXES) as PrefixName[])),
    noiseArbitrary,
    splitArbitrary,
    (prefixName, noise, split) => {
      const prefix = PREFIXES[prefixName]()
      const outcome = runConnection(chunksOf(concatBytes(prefix.bytes, noise), split), {
        mechanism: prefix.mechanism,
      })
      assertWellBehaved(outcome)
      // CURVE authenticates every message: noise never turns into one.
      if (prefix.mechanism.name === 'CURVE') assert.deepEqual(outcome.messages, [])
    },
  )
}

/** (a) ZMTP 2.0 (`--allow-zmtp2`): a valid PUSH stream, split anywhere, delivers its messages. */
export function zmtp2SplitProperty() {
  return fc.property(zmtp2StreamArbitrary, splitArbitrary, (spec, split) => {
    const stream = buildZmtp2Stream(spec)
    const chunks = chunksOf(stream.bytes, split)
    const outcome = runConnection(chunks, { mechanism: makeNullMechanism(), allowZmtp2: true })
    const error = assertWellBehaved(outcome)
    assert.equal(error, undefined, `a valid ZMTP 2.0 stream was closed with ${error?.code}`)
    assert.equal(outcome.state, ConnectionState.READY)
    assert.equal(outcome.ready?.majorVersion, 2)
    assert.deepEqual(outcome.messages, stream.messages)
    // Without the option, the same bytes are refused before anything is delivered.
    const refused = runConnection(chunks, { mechanism: makeNullMechanism() })
    assert.equal(assertWellBehaved(refused)?.code, ZmtpErrorCode.UNSUPPORTED_VERSION)
    assert.deepEqual(refused.messages, [])
  })
}

/** Inputs for the split-invariance property: mutated valid streams of each kind, and noise. */
const anyInputArbitrary = fc.oneof(
  fc
    .tuple(nullStreamArbitrary, mutationsArbitrary)
    .map(([spec, mutations]) => mutate(buildNullStream(spec), mutations).bytes),
  fc
    .tuple(zmtp2StreamArbitrary, mutationsArbitrary)
    .map(([spec, mutations]) => mutate(buildZmtp2Stream(spec), mutations).bytes),
  fc
    .tuple(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.constantFrom(0, 1), noiseArbitrary)
    .map(([start, signature, rest]) => {
      // A start that is sometimes a ZMTP signature and revision, sometimes not quite.
      const head = start.slice()
      if (signature === 1) {
        head[0] = 0xff
        head[9] = (head[9] ?? 0) | 1
      }
      head[10] = (head[10] ?? 0) % 4
      return concatBytes(head, rest)
    }),
)

/**
 * (b) The outcome of any input (messages, close code, state) does not depend on how it was
 * split into reads: the protocol decides, not the TCP segmentation.
 */
export function splitInvarianceProperty() {
  return fc.property(
    anyInputArbitrary,
    fc.boolean(),
    splitArbitrary,
    (bytes, allowZmtp2, split) => {
      const run = (chunks: Uint8Array[]) =>
        runConnection(chunks, { mechanism: makeNullMechanism(), allowZmtp2 })
      const whole = run([bytes])
      const parts = run(chunksOf(bytes, split))
      const wholeError = assertWellBehaved(whole)
      const partsError = assertWellBehaved(parts)
      assert.equal(partsError?.code, wholeError?.code, 'the close code depends on the split')
      assert.equal(parts.state, whole.state, 'the state depends on the split')
      assert.deepEqual(parts.messages, whole.messages, 'the messages depend on the split')
    },
  )
}

// ---------------------------------------------------------------------------------------------
// Memory

/**
 * (c) A frame announcing more than the limit (just over it, near 2^53, up to 2^64-1) closes the
 * connection from its header alone, before a body octet is sent, and allocates nothing for it.
 */
export function hugeFrameProperty() {
  const phases = ['null handshake', 'null ready', 'curve handshake', 'curve ready'] as const
  return fc.property(
    fc.constantFrom(...phases),
    fc.oneof(
      fc.bigInt({ min: 1n, max: 4096n }).map((over) => ({ over })),
      fc.bigInt({ min: 2n ** 53n - 4096n, max: 2n ** 53n + 4096n }).map((size) => ({ size })),
      fc.bigInt({ min: 2n ** 32n, max: 2n ** 64n - 1n }).map((size) => ({ size })),
    ),
    fc.constantFrom(0, 1, 4),
    splitArbitrary,
    (phase, announced, flags, split) => {
      const curve = phase.startsWith('curve')
      const limit = BigInt(
        HUGE_MAX_MESSAGE_SIZE + (curve ? FRAME_OVERHEAD.CURVE : FRAME_OVERHEAD.NULL),
      )
      const size = 'over' in announced ? limit + announced.over : announced.size
      const prefix = curve
        ? phase === 'curve ready'
          ? concatBytes(curveGreeting, curveHandshake().hello, curveHandshake().initiate)
          : concatBytes(curveGreeting, curveHandshake().hello)
        : phase === 'null ready'
          ? concatBytes(nullGreeting, pushReady)
          : nullGreeting
      const header = longHeader(size, { more: flags === 1, command: flags === 4 })
      const chunks = chunksOf(concatBytes(prefix, header), split)
      const mechanism = curve ? makeCurveMechanism() : makeNullMechanism()
      const before = process.memoryUsage().arrayBuffers
      const outcome = runConnection(chunks, { mechanism, maxMessageSize: HUGE_MAX_MESSAGE_SIZE })
      const grown = process.memoryUsage().arrayBuffers - before
      const error = assertWellBehaved(outcome)
      assert.ok(
        error?.code === ZmtpErrorCode.FRAME_TOO_LARGE ||
          error?.code === ZmtpErrorCode.MALFORMED_FRAME,
        `a header announcing ${size} octets (limit ${limit}) left the connection ${outcome.state} (${error?.code})`,
      )
      assert.deepEqual(outcome.messages, [])
      assert.ok(
        grown < 1024 * 1024,
        `${grown} octets of ArrayBuffers allocated for a refused frame`,
      )
    },
  )
}

/**
 * (c) The frame decoder alone: whatever size a header announces and however much of the body
 * follows, it holds only the octets it was given, and refuses an oversized frame from its header.
 */
export function decoderBufferProperty() {
  return fc.property(
    fc.integer({ min: 0, max: 2 ** 20 }),
    fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 21n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
    fc.integer({ min: 0, max: 512 }),
    (maxFrameSize, size, sent) => {
      const decoder = new FrameDecoder({ maxFrameSize })
      const header = longHeader(size)
      const tooBig = size > BigInt(maxFrameSize)
      let frames: Frame[]
      try {
        frames = decoder.push(header)
      } catch (error) {
        assert.ok(error instanceof ZmtpError && tooBig, `header refused: ${describe(error)}`)
        const expected =
          size >= 2n ** 53n ? ZmtpErrorCode.MALFORMED_FRAME : ZmtpErrorCode.FRAME_TOO_LARGE
        assert.equal(error.code, expected)
        return
      }
      assert.ok(!tooBig, `a header announcing ${size} > ${maxFrameSize} octets was accepted`)
      const body = Math.min(Number(size), sent)
      if (size === 0n) {
        assert.equal(frames.length, 1)
        return
      }
      assert.equal(decoder.bufferedBytes, 9)
      const more = decoder.push(new Uint8Array(body))
      assert.equal(more.length, body === Number(size) ? 1 : 0)
      assert.equal(decoder.bufferedBytes, body === Number(size) ? 0 : 9 + body)
    },
  )
}

/** A message of `count` empty frames (MORE on all but the last) after a NULL handshake. */
export function emptyFramesStream(count: number): Uint8Array {
  const frames = new Uint8Array(2 * count)
  for (let index = 0; index < count - 1; index++) frames[2 * index] = 0x01
  return concatBytes(nullGreeting, pushReady, frames)
}

/** A cap on frames per message: a message of n frames arrives iff n <= the cap. */
export function frameCountProperty() {
  return fc.property(
    fc.integer({ min: 1, max: 64 }),
    fc.integer({ min: 1, max: 80 }),
    splitArbitrary,
    (cap, count, split) => {
      const outcome = runConnection(chunksOf(emptyFramesStream(count), split), {
        mechanism: makeNullMechanism(),
        maxFramesPerMessage: cap,
      })
      const error = assertWellBehaved(outcome)
      if (count <= cap) {
        assert.equal(error, undefined)
        assert.equal(outcome.messages.length, 1)
        assert.equal(outcome.messages[0]?.length, count)
      } else {
        assert.equal(error?.code, ZmtpErrorCode.TOO_MANY_FRAMES)
        assert.deepEqual(outcome.messages, [])
      }
    },
  )
}

// ---------------------------------------------------------------------------------------------
// CURVE

/** (d) A valid CURVE stream, split anywhere, delivers exactly what the client boxed. */
export function curveSplitProperty() {
  return fc.property(
    curveStreamArbitrary,
    splitArbitrary,
    pingAfterArbitrary,
    (spec, split, pingAfter) => {
      const stream = buildCurveStream(spec)
      const outcome = runConnection(chunksOf(stream.bytes, split), {
        mechanism: makeCurveMechanism(),
        pingAfter,
      })
      const error = assertWellBehaved(outcome)
      assert.equal(error, undefined, `a valid stream was closed with ${error?.code}`)
      assert.equal(outcome.state, ConnectionState.READY)
      assert.equal(outcome.ready?.socketType, 'PUSH')
      assert.deepEqual(outcome.messages, stream.messages)
      const [welcome, ready, ...replies] = serverFrames(outcome)
      assert.equal(commandName(welcome), 'WELCOME')
      assert.equal(commandName(ready), 'READY')
      // PONGs and heartbeat PINGs come boxed in MESSAGEs in ordinary frames, COMMAND in the boxed
      // flags, with the server's short nonces going up by one from READY's 1.
      const commands = replies.map((frame, index) => {
        assert.equal(frame.command, false)
        const nonce = new DataView(frame.body.buffer, frame.body.byteOffset + 8, 8).getBigUint64(0)
        assert.equal(nonce, BigInt(index + 2))
        const { flags, payload } = openServerMessage(frame.body)
        assert.equal(flags, 0x02)
        return payload
      })
      const pings = commands.filter((body) => nameOf(body) === 'PING')
      assert.equal(pings.length, outcome.pingsSent)
      assert.deepEqual(
        commands.filter((body) => nameOf(body) !== 'PING'),
        expectedPongs(stream),
      )
    },
  )
}

/**
 * (d) A mutated CURVE stream: a typed close (or a stream cut short), and the messages delivered
 * are exactly the first ones the client boxed, in order; those before the change all arrive.
 */
export function curveMutationProperty() {
  return fc.property(
    curveStreamArbitrary,
    mutationsArbitrary,
    splitArbitrary,
    pingAfterArbitrary,
    (spec, mutations, split, pingAfter) => {
      const stream = buildCurveStream(spec)
      const { bytes, firstChange } = mutate(stream, mutations)
      const outcome = runConnection(chunksOf(bytes, split), {
        mechanism: makeCurveMechanism(),
        pingAfter,
      })
      assertWellBehaved(outcome)
      assertIntactPrefix(outcome, stream, firstChange)
      assert.deepEqual(outcome.messages, stream.messages.slice(0, outcome.messages.length))
    },
  )
}

/** Whether `part` is `whole` with some items left out (greedy match, order kept). */
function isSubsequence(part: Uint8Array[], whole: Uint8Array[]): boolean {
  let next = 0
  for (const item of part) {
    while (next < whole.length && !sameBytes(whole[next] as Uint8Array, item)) next++
    if (next === whole.length) return false
    next++
  }
  return true
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((octet, index) => octet === b[index])
}

/**
 * (d) Whole MESSAGE frames dropped, replayed or swapped (an attacker on the path): never a frame
 * twice or out of order; a replay or a swap closes with INVALID_SEQUENCE when it arrives.
 */
export function curveFrameOpsProperty() {
  return fc.property(
    curveStreamArbitrary,
    frameOpsArbitrary,
    splitArbitrary,
    (spec, ops, split) => {
      const stream = buildCurveStream(spec)
      const { bytes, firstChange, changed } = rearrange(stream, ops)
      const outcome = runConnection(chunksOf(bytes, split), { mechanism: makeCurveMechanism() })
      const error = assertWellBehaved(outcome)
      assertIntactPrefix(outcome, stream, firstChange)
      assert.ok(
        isSubsequence(outcome.messages.flat(), stream.messages.flat()),
        'a MESSAGE frame arrived twice or out of order',
      )
      const [op] = ops
      if (changed && ops.length === 1 && op?.op !== 'drop') {
        assert.equal(error?.code, ZmtpErrorCode.INVALID_SEQUENCE)
      }
    },
  )
}

/** Octets of a CURVE stream that nothing authenticates, and values they may take. */
const unauthenticatedArbitrary = fc.array(
  fc.record({
    field: fc.constantFrom('padding', 'major', 'minor', 'filler', 'hello padding'),
    index: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  { minLength: 1, maxLength: 8 },
)

/**
 * (d) Changing what CURVE does not authenticate (greeting padding, filler, a later version; the
 * HELLO padding) changes nothing: same messages, no close.
 */
export function curveUnauthenticatedProperty() {
  return fc.property(
    curveStreamArbitrary,
    unauthenticatedArbitrary,
    splitArbitrary,
    (spec, changes, split) => {
      const stream = buildCurveStream(spec)
      const bytes = stream.bytes.slice()
      const [paddingStart] = stream.helloPadding
      for (const { field, index, value } of changes) {
        if (field === 'padding') bytes[1 + (index % 8)] = value
        // RFC 23: a peer MUST accept any version >= 3.0.
        else if (field === 'major') bytes[10] = 3 + (value % 253)
        else if (field === 'minor') bytes[11] = value
        else if (field === 'filler') bytes[33 + (index % 31)] = value
        else bytes[paddingStart + (index % 72)] = value
      }
      const outcome = runConnection(chunksOf(bytes, split), { mechanism: makeCurveMechanism() })
      const error = assertWellBehaved(outcome)
      assert.equal(error, undefined, `closed with ${error?.code}`)
      assert.equal(outcome.state, ConnectionState.READY)
      assert.deepEqual(outcome.messages, stream.messages)
    },
  )
}

// ---------------------------------------------------------------------------------------------

/** Every property, with the number of runs the test suite gives it. */
export const FUZZ_PROPERTIES: ReadonlyArray<{
  name: string
  property: () => fc.IProperty<unknown>
  numRuns: number
}> = [
  { name: 'null: any split delivers the same messages', property: nullSplitProperty, numRuns: 500 },
  {
    name: 'null: mutations end typed, messages before them intact',
    property: nullMutationProperty,
    numRuns: 1000,
  },
  {
    name: 'zmtp 2.0: any split delivers the same messages',
    property: zmtp2SplitProperty,
    numRuns: 300,
  },
  {
    name: 'any input: the outcome does not depend on the split',
    property: splitInvarianceProperty,
    numRuns: 1000,
  },
  { name: 'garbage after any prefix ends typed', property: garbageProperty, numRuns: 1000 },
  { name: 'huge frames refused from the header', property: hugeFrameProperty, numRuns: 200 },
  { name: 'decoder holds only what it was given', property: decoderBufferProperty, numRuns: 500 },
  { name: 'frames per message are capped', property: frameCountProperty, numRuns: 200 },
  { name: 'curve: any split delivers what was boxed', property: curveSplitProperty, numRuns: 100 },
  {
    name: 'curve: mutations never deliver other bytes',
    property: curveMutationProperty,
    numRuns: 250,
  },
  {
    name: 'curve: frames dropped, replayed or swapped',
    property: curveFrameOpsProperty,
    numRuns: 150,
  },
  {
    name: 'curve: unauthenticated octets change nothing',
    property: curveUnauthenticatedProperty,
    numRuns: 60,
  },
]
