// The connection state machine over an in-memory transport: greeting, NULL handshake for ZMTP
// 3.0 and 3.1 peers, socket-type check, messages, commands after the handshake, failures.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { concatBytes } from '../../node-bridge/zmtp/codec/bytes'
import { encodeCommandBody, encodeError, encodeReady } from '../../node-bridge/zmtp/codec/command'
import { encodeFrame } from '../../node-bridge/zmtp/codec/frame'
import {
  ConnectionState,
  MAX_HANDSHAKE_FRAME_SIZE,
  type ReadyPeer,
  ZmtpConnection,
} from '../../node-bridge/zmtp/connection'
import { ZmtpError } from '../../node-bridge/zmtp/errors'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { ReconnectBackoff, reconnectsAfter } from '../../node-bridge/zmtp/reconnect'
import { PULL, PUSH, type SocketType } from '../../node-bridge/zmtp/sockets/socket-type'

const ascii = (text: string) => new TextEncoder().encode(text)
const concat = concatBytes

/** A client greeting: signature, version 3.minor, NULL, as-server 0, filler. */
function clientGreeting(minor: number, mechanism = 'NULL'): Uint8Array {
  const greeting = new Uint8Array(64)
  greeting.set([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, minor])
  greeting.set(ascii(mechanism), 12)
  return greeting
}

/** A READY command frame with one Socket-Type property. */
function ready(socketType: string): Uint8Array {
  const type = ascii(socketType)
  return encodeFrame(
    concat(
      Uint8Array.of(5),
      ascii('READY'),
      Uint8Array.of(11),
      ascii('Socket-Type'),
      Uint8Array.of(0, 0, 0, type.length),
      type,
    ),
    { command: true },
  )
}

const PULL_READY = ready('PULL')

function harness(options: { maxMessageSize?: number } = {}) {
  const written: Uint8Array[] = []
  const messages: Uint8Array[][] = []
  const state = {
    closed: false,
    error: undefined as ZmtpError | undefined,
    peer: undefined as ReadyPeer | undefined,
  }
  const connection = new ZmtpConnection(
    { write: (bytes) => written.push(bytes.slice()), close: () => (state.closed = true) },
    {
      onReady: (peer) => (state.peer = peer),
      onMessage: (frames) => messages.push(frames.map((frame) => frame.slice())),
      onClose: (error) => (state.error = error),
    },
    {
      mechanism: new NullMechanism('PULL'),
      socketType: PULL,
      maxMessageSize: options.maxMessageSize ?? 1024,
    },
  )
  connection.start()
  const output = () => concat(...written)
  return { connection, written, messages, state, output }
}

describe('ZmtpConnection greeting', () => {
  it('sends signature and major version first, the rest once the peer’s arrive', () => {
    const { connection, output } = harness()
    expect(output()).toEqual(Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3))
    connection.receive(clientGreeting(1).subarray(0, 10))
    expect(output()).toHaveLength(11) // still waiting for the major version
    connection.receive(clientGreeting(1).subarray(10, 11))
    const greeting = output()
    expect(greeting).toHaveLength(64)
    expect(greeting[11]).toBe(1) // minor 1: we answer as ZMTP 3.1
    expect(new TextDecoder().decode(greeting.subarray(12, 16))).toBe('NULL')
    expect(greeting.subarray(16, 32).every((octet) => octet === 0)).toBe(true)
    expect(greeting[32]).toBe(0) // as-server 0 for NULL (RFC 23)
  })

  it('closes a peer offering another mechanism with MECHANISM_MISMATCH', () => {
    const { connection, state } = harness()
    connection.receive(clientGreeting(1, 'CURVE'))
    expect(state.error?.code).toBe('MECHANISM_MISMATCH')
    expect(state.closed).toBe(true)
    expect(connection.state).toBe(ConnectionState.CLOSED)
  })

  it('closes a ZMTP 2.0 peer without a message', () => {
    const { connection, state, messages } = harness()
    // ZMTP 2.0 greeting: signature, revision 1, socket type PUSH (RFC 15), then a message
    connection.receive(Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8, 0, 0, 1, 0x41))
    expect(state.error?.code).toBe('UNSUPPORTED_VERSION')
    expect(messages).toHaveLength(0)
  })
})

describe('ZmtpConnection NULL handshake', () => {
  it('answers a ZMTP 3.1 client READY with READY, then delivers messages', () => {
    const { connection, written, messages, state } = harness()
    connection.receive(clientGreeting(1))
    const afterGreeting = written.length
    connection.receive(concat(ready('PUSH'), encodeFrame(ascii('hello'))))
    expect(written.slice(afterGreeting)).toEqual([PULL_READY])
    expect(state.peer).toMatchObject({ socketType: 'PUSH', mechanism: 'NULL', minorVersion: 1 })
    expect(messages).toEqual([[ascii('hello')]])
  })

  it('keeps the peer’s socket type, not its metadata or views of the read it came in', () => {
    const { connection, state } = harness()
    const identity = new Uint8Array(200).fill(0x41)
    const readyWithIdentity = encodeFrame(
      concat(
        Uint8Array.of(5),
        ascii('READY'),
        Uint8Array.of(11),
        ascii('Socket-Type'),
        Uint8Array.of(0, 0, 0, 4),
        ascii('PUSH'),
        Uint8Array.of(8),
        ascii('Identity'),
        Uint8Array.of(0, 0, 0, identity.length),
        identity,
      ),
      { command: true },
    )
    const read = concat(clientGreeting(1), readyWithIdentity)
    connection.receive(read)
    expect(state.peer?.socketType).toBe('PUSH')
    expect(state.peer).not.toHaveProperty('metadata')
    // Nothing the connection keeps for its lifetime pins the received read.
    for (const value of Object.values(state.peer ?? {})) {
      if (value instanceof Uint8Array) expect(value.buffer).not.toBe(read.buffer)
    }
  })

  it('closes a READY with a 16 MB metadata value with INVALID_METADATA, from its length', () => {
    const { connection, state } = harness({ maxMessageSize: 16 * 1024 * 1024 })
    const body = concat(
      Uint8Array.of(5),
      ascii('READY'),
      Uint8Array.of(11),
      ascii('Socket-Type'),
      Uint8Array.of(0, 0, 0, 4),
      ascii('PUSH'),
      Uint8Array.of(7),
      ascii('X-Large'),
      Uint8Array.of(0x01, 0, 0, 0), // 16,777,216 octets announced
      ascii('only these'),
    )
    connection.receive(concat(clientGreeting(1), encodeFrame(body, { command: true })))
    expect(state.error?.code).toBe('INVALID_METADATA')
  })

  it('sends READY at once to a ZMTP 3.0 peer (symmetric handshake)', () => {
    const { connection, written } = harness()
    connection.receive(clientGreeting(0))
    expect(written.at(-1)).toEqual(PULL_READY)
    const count = written.length
    connection.receive(ready('PUSH'))
    expect(written.length).toBe(count) // no second READY
    expect(connection.state).toBe(ConnectionState.READY)
  })

  it('answers a DEALER with ERROR instead of READY', () => {
    const { connection, written, state } = harness()
    connection.receive(clientGreeting(1))
    const afterGreeting = written.length
    connection.receive(ready('DEALER'))
    const reply = concat(...written.slice(afterGreeting))
    expect(reply).toEqual(
      concat(
        Uint8Array.of(0x04, 26, 5),
        ascii('ERROR'),
        Uint8Array.of(19),
        ascii('Invalid socket type'),
      ),
    )
    expect(state.error?.code).toBe('INVALID_SOCKET_TYPE')
    expect(state.error?.action).toBe('error')
  })

  it('closes on a message frame before the handshake ends', () => {
    const { connection, state, messages } = harness()
    connection.receive(concat(clientGreeting(1), encodeFrame(ascii('early'))))
    expect(state.error?.code).toBe('UNEXPECTED_COMMAND')
    expect(messages).toHaveLength(0)
  })

  it('closes when the peer sends ERROR during the handshake', () => {
    const { connection, state } = harness()
    const error = encodeFrame(
      concat(Uint8Array.of(5), ascii('ERROR'), Uint8Array.of(3), ascii('bye')),
      { command: true },
    )
    connection.receive(concat(clientGreeting(1), error))
    expect(state.error?.code).toBe('PEER_ERROR')
  })
})

describe('ZmtpConnection before READY: memory before authentication', () => {
  const MIB16 = 16 * 1024 * 1024

  /** A long command frame header announcing `size` octets (flags 0x06). */
  function longCommandHeader(size: number): Uint8Array {
    const header = new Uint8Array(9)
    header[0] = 0x06
    new DataView(header.buffer).setBigUint64(1, BigInt(size))
    return header
  }

  it('refuses a 16 MiB command from its header, though messages may be 16 MiB', () => {
    const { connection, state } = harness({ maxMessageSize: MIB16 })
    connection.receive(concat(clientGreeting(1), longCommandHeader(MIB16)))
    expect(state.error?.code).toBe('FRAME_TOO_LARGE')
    expect(state.closed).toBe(true)
  })

  it('keeps the handshake limit when the message limit changes during the greeting', () => {
    // The relay's WELCOME lowers (or restores) every connection's message limit at any moment.
    const { connection, state } = harness({ maxMessageSize: MIB16 })
    const greeting = clientGreeting(1)
    connection.receive(greeting.subarray(0, 10))
    connection.setMaxMessageSize(MIB16)
    connection.receive(concat(greeting.subarray(10), longCommandHeader(MIB16)))
    expect(state.error?.code).toBe('FRAME_TOO_LARGE')
  })

  it('keeps an 8 KiB handshake limit under a smaller message limit (a READY is no message)', () => {
    const { connection, state } = harness({ maxMessageSize: 100 })
    const metadata: [string, string][] = [
      ['Socket-Type', 'PUSH'],
      ['X-Label', 'x'.repeat(900)],
    ]
    connection.receive(concat(clientGreeting(1), encodeReady(metadata)))
    expect(state.error).toBeUndefined()
    expect(connection.state).toBe(ConnectionState.READY)
  })

  it('takes a handshake frame of exactly MAX_HANDSHAKE_FRAME_SIZE octets, not one more', () => {
    const command = (size: number) =>
      encodeFrame(concat(Uint8Array.of(5), ascii('HELLO'), new Uint8Array(size - 6)), {
        command: true,
      })
    const fits = harness({ maxMessageSize: MIB16 })
    fits.connection.receive(concat(clientGreeting(1), command(MAX_HANDSHAKE_FRAME_SIZE)))
    // Read whole, then refused for what it is (not a READY), not for its size.
    expect(fits.state.error?.code).toBe('UNEXPECTED_COMMAND')
    const over = harness({ maxMessageSize: MIB16 })
    over.connection.receive(concat(clientGreeting(1), command(MAX_HANDSHAKE_FRAME_SIZE + 1)))
    expect(over.state.error?.code).toBe('FRAME_TOO_LARGE')
  })

  it('allows messages up to the message limit once READY, even in the read that carried READY', () => {
    const { connection, messages, state } = harness({ maxMessageSize: 64 * 1024 })
    const large = new Uint8Array(40 * 1024).fill(9)
    connection.receive(concat(clientGreeting(1), ready('PUSH'), encodeFrame(large)))
    expect(state.error).toBeUndefined()
    expect(messages).toEqual([[large]])
  })

  it('keeps the handshake limit for the ZMTP 2.0 identity frame, then the message limit', () => {
    const written: Uint8Array[] = []
    const closed: Array<ZmtpError | undefined> = []
    const make = () =>
      new ZmtpConnection(
        { write: (bytes) => written.push(bytes), close: () => undefined },
        { onMessage: () => undefined, onClose: (error) => closed.push(error) },
        {
          mechanism: new NullMechanism('PULL'),
          socketType: PULL,
          maxMessageSize: MIB16,
          allowZmtp2: true,
        },
      )
    const zmtp2Greeting = Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8)
    const identity = make()
    // RFC 15: a long identity frame of 16 MiB announced right after the greeting.
    identity.receive(concat(zmtp2Greeting, Uint8Array.of(0x02), longCommandHeader(MIB16).slice(1)))
    expect(closed.at(-1)?.code).toBe('FRAME_TOO_LARGE')
    // An empty identity, then a 20 KiB message: past the identity, the message limit applies.
    const after = make()
    after.receive(
      concat(zmtp2Greeting, Uint8Array.of(0x00, 0x00), encodeFrame(new Uint8Array(20_000))),
    )
    expect(after.state).toBe(ConnectionState.READY)
  })
})

describe('ZmtpConnection after the handshake', () => {
  function readyHarness(options: { maxMessageSize?: number } = {}) {
    const h = harness(options)
    h.connection.receive(concat(clientGreeting(1), ready('PUSH')))
    h.written.length = 0
    return h
  }

  it('reassembles multipart messages and delivers them whole', () => {
    const { connection, messages } = readyHarness()
    connection.receive(
      concat(
        encodeFrame(ascii('a'), { more: true }),
        encodeFrame(new Uint8Array(0), { more: true }),
      ),
    )
    expect(messages).toHaveLength(0)
    connection.receive(encodeFrame(ascii('c')))
    expect(messages).toEqual([[ascii('a'), new Uint8Array(0), ascii('c')]])
  })

  it('answers PING with PONG echoing the context', () => {
    const { connection, written } = readyHarness()
    // libzmq tests/test_heartbeats.cpp: PING ttl 0 context "LOL" → PONG "LOL"
    connection.receive(Uint8Array.of(0x04, 0x0a, 0x04, ...ascii('PING'), 0, 0, ...ascii('LOL')))
    expect(concat(...written)).toEqual(
      Uint8Array.of(0x04, 0x08, 0x04, ...ascii('PONG'), ...ascii('LOL')),
    )
  })

  it('ignores SUBSCRIBE, CANCEL, PONG and unknown commands', () => {
    const { connection, written, messages, state } = readyHarness()
    for (const name of ['SUBSCRIBE', 'CANCEL', 'PONG', 'FUTURE']) {
      connection.receive(
        encodeFrame(concat(Uint8Array.of(name.length), ascii(name), ascii('x')), { command: true }),
      )
    }
    connection.receive(encodeFrame(ascii('after')))
    expect(written).toHaveLength(0)
    expect(state.error).toBeUndefined()
    expect(messages).toEqual([[ascii('after')]])
  })

  it('closes with FRAME_TOO_LARGE when a message grows past the limit', () => {
    const { connection, state, messages } = readyHarness({ maxMessageSize: 100 })
    connection.receive(encodeFrame(new Uint8Array(60), { more: true }))
    connection.receive(encodeFrame(new Uint8Array(60)))
    expect(state.error?.code).toBe('FRAME_TOO_LARGE')
    expect(messages).toHaveLength(0)
  })

  it('applies a lowered message limit to the next message of an open connection', () => {
    const { connection, state, messages } = readyHarness({ maxMessageSize: 1000 })
    connection.receive(encodeFrame(new Uint8Array(600)))
    connection.setMaxMessageSize(500)
    connection.receive(encodeFrame(new Uint8Array(500)))
    expect(messages.map((message) => message[0]?.length)).toEqual([600, 500])
    connection.receive(encodeFrame(new Uint8Array(501)))
    expect(state.error?.code).toBe('FRAME_TOO_LARGE')
    expect(messages).toHaveLength(2)
  })

  it('delivers a whole message that arrived just before a malformed frame, then closes', () => {
    const { connection, messages, state } = readyHarness()
    connection.receive(concat(encodeFrame(ascii('good')), Uint8Array.of(0x08, 0x00)))
    expect(messages).toEqual([[ascii('good')]])
    expect(state.error?.code).toBe('MALFORMED_FRAME')
    expect(state.closed).toBe(true)
  })

  it('delivers the same messages however the stream is split', () => {
    const stream = concat(
      clientGreeting(1),
      ready('PUSH'),
      encodeFrame(ascii('one'), { more: true }),
      encodeFrame(new Uint8Array(300).fill(7)),
      Uint8Array.of(0x04, 0x0a, 0x04, ...ascii('PING'), 0, 0, ...ascii('LOL')),
      encodeFrame(ascii('two')),
    )
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 20 }),
        (cuts) => {
          const { connection, messages, state } = harness()
          const points = [0, ...cuts.sort((a, b) => a - b), stream.length]
          for (let index = 1; index < points.length; index++) {
            connection.receive(stream.subarray(points[index - 1], points[index]))
          }
          expect(state.error).toBeUndefined()
          expect(messages).toEqual([[ascii('one'), new Uint8Array(300).fill(7)], [ascii('two')]])
        },
      ),
    )
  })
})

describe('ZmtpConnection and the handlers it calls', () => {
  function withHandlers(events: { onReady?: () => void; onMessage?: () => void }) {
    const state = { error: undefined as ZmtpError | undefined, closed: false }
    const connection = new ZmtpConnection(
      { write: () => undefined, close: () => (state.closed = true) },
      {
        onReady: events.onReady ?? (() => undefined),
        onMessage: events.onMessage ?? (() => undefined),
        onClose: (error) => (state.error = error),
      },
      {
        mechanism: new NullMechanism('PULL'),
        socketType: PULL,
        maxMessageSize: 1024,
      },
    )
    connection.start()
    return { connection, state }
  }

  it('reports an onMessage handler that throws as INTERNAL_ERROR, with the exception as cause', () => {
    const bug = new TypeError('relay exploded')
    const { connection, state } = withHandlers({
      onMessage: () => {
        throw bug
      },
    })
    connection.receive(concat(clientGreeting(1), ready('PUSH'), encodeFrame(ascii('m'))))
    expect(state.error?.code).toBe('INTERNAL_ERROR')
    expect(state.error?.cause).toBe(bug)
    expect(state.closed).toBe(true)
  })

  it('reports an onReady handler that throws as INTERNAL_ERROR', () => {
    const { connection, state } = withHandlers({
      onReady: () => {
        throw new Error('metrics exploded')
      },
    })
    connection.receive(concat(clientGreeting(1), ready('PUSH')))
    expect(state.error?.code).toBe('INTERNAL_ERROR')
  })

  it('still reports malformed input from the peer as the peer’s fault', () => {
    const { connection, state } = withHandlers({})
    connection.receive(concat(clientGreeting(1), ready('PUSH'), Uint8Array.of(0x08, 0x00)))
    expect(state.error?.code).toBe('MALFORMED_FRAME')
  })
})

describe('ZmtpConnection with socket types as data', () => {
  /** A connection of `socketType`, dialled or not, ready after a NULL 3.1 handshake with `peer`. */
  function readyConnection(
    socketType: SocketType,
    peer: string,
    options: { dialled?: boolean } = {},
  ) {
    const written: Uint8Array[] = []
    const messages: Uint8Array[][] = []
    const state = { closed: false, error: undefined as ZmtpError | undefined }
    const connection = new ZmtpConnection(
      { write: (bytes) => written.push(bytes.slice()), close: () => (state.closed = true) },
      {
        onMessage: (frames) => messages.push(frames.map((frame) => frame.slice())),
        onClose: (error) => (state.error = error),
      },
      {
        mechanism: new NullMechanism(socketType.name, options),
        socketType,
        maxMessageSize: 1024,
      },
    )
    connection.start()
    connection.receive(clientGreeting(1))
    connection.receive(ready(peer))
    return { connection, written, messages, state }
  }

  it('sends as a PUSH: its READY first when dialled, then messages in one buffer', () => {
    const { connection, written, state } = readyConnection(PUSH, 'PULL', { dialled: true })
    expect(state.error).toBeUndefined()
    expect(connection.state).toBe(ConnectionState.READY)
    // Greeting start, greeting rest, then READY before the peer's (RFC 37: the client speaks first).
    expect(written[2]).toEqual(ready('PUSH'))
    const bytes = connection.encodeMessages([[ascii('a'), ascii('bc')], [ascii('')]])
    expect(bytes).toEqual(
      concat(
        encodeFrame(ascii('a'), { more: true }),
        encodeFrame(ascii('bc')),
        encodeFrame(ascii('')),
      ),
    )
  })

  it('drops and counts what a PULL peer sends a PUSH, keeping nothing of it', () => {
    const { connection, messages } = readyConnection(PUSH, 'PULL', { dialled: true })
    connection.receive(concat(encodeFrame(ascii('x'), { more: true }), encodeFrame(ascii('y'))))
    connection.receive(encodeFrame(ascii('z')))
    expect(messages).toEqual([])
    expect(connection.droppedMessages).toBe(2)
    expect(connection.partialMessageBytes).toBe(0)
  })

  it('refuses to encode messages for a socket type that does not send', () => {
    const { connection } = readyConnection(PULL, 'PUSH')
    expect(() => connection.encodeMessages([[ascii('no')]])).toThrow(
      expect.objectContaining({ code: 'UNEXPECTED_COMMAND' }),
    )
  })

  it('sends ERROR and closes when the dialled end meets a peer of the wrong type (RFC 23)', () => {
    const { written, state } = readyConnection(PUSH, 'PUB', { dialled: true })
    expect(state.error?.code).toBe('INVALID_SOCKET_TYPE')
    expect(state.closed).toBe(true)
    expect(written.at(-1)).toEqual(encodeError('Invalid socket type'))
  })

  it('hands the socket type the commands it handles, and fails on what its hook throws', () => {
    const subscriptions: string[] = []
    const publisher: SocketType = {
      name: 'PUB',
      peers: ['SUB'],
      receives: false,
      sends: true,
      onCommand: (command) => {
        if (command.name === 'SUBSCRIBE') subscriptions.push(new TextDecoder().decode(command.data))
        if (command.name === 'CANCEL') throw new Error('a bug in the hook')
      },
    }
    const { connection, state } = readyConnection(publisher, 'SUB')
    connection.receive(
      encodeFrame(encodeCommandBody('SUBSCRIBE', ascii('topic')), { command: true }),
    )
    connection.receive(encodeFrame(encodeCommandBody('UNKNOWN', ascii('')), { command: true }))
    expect(subscriptions).toEqual(['topic'])
    expect(state.error).toBeUndefined()
    connection.receive(encodeFrame(encodeCommandBody('CANCEL', ascii('topic')), { command: true }))
    expect(state.error?.code).toBe('INTERNAL_ERROR')
  })
})

describe('the reconnect policy (libzmq session_base_t::engine_error)', () => {
  it('dials again after a close, a timeout, a failure of ours or our limits, never after the peer broke the protocol', () => {
    expect(reconnectsAfter(undefined)).toBe(true)
    for (const code of [
      'HANDSHAKE_TIMEOUT',
      'HEARTBEAT_TIMEOUT',
      'IDLE_TIMEOUT',
      'INTERNAL_ERROR',
      'PREAUTH_BUDGET_EXCEEDED',
      'MESSAGE_BUDGET_EXCEEDED',
      'FRAME_TOO_LARGE',
      'TOO_MANY_FRAMES',
    ] as const) {
      expect(reconnectsAfter(new ZmtpError(code, 'ours'))).toBe(true)
    }
    for (const code of [
      'PEER_ERROR',
      'AUTHENTICATION_FAILED',
      'INVALID_SOCKET_TYPE',
      'MECHANISM_MISMATCH',
      'UNSUPPORTED_VERSION',
      'MALFORMED_FRAME',
      'CRYPTOGRAPHIC',
    ] as const) {
      expect(reconnectsAfter(new ZmtpError(code, 'refused'))).toBe(false)
    }
  })

  it('waits the interval plus jitter, doubling up to the maximum, and starts over after a reset', () => {
    const backoff = new ReconnectBackoff({
      reconnectIvl: 100,
      reconnectIvlMax: 350,
      random: () => 0.5,
    })
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([
      150, 250, 400, 400,
    ])
    backoff.reset()
    expect(backoff.next()).toBe(150)
    const flat = new ReconnectBackoff({ random: () => 0.999 })
    expect([flat.next(), flat.next()]).toEqual([199, 199])
  })
})
