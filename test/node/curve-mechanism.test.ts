// The CURVE server mechanism (RFC 25/26) driven through a ZmtpConnection over an in-memory
// transport, against a test-side CurveZMQ client built from the RFC with tweetnacl alone.
import fc from 'fast-check'
import nacl from 'tweetnacl'
import { describe, expect, it } from 'vitest'
import { encodeFrame } from '../../node-bridge/zmtp/codec/frame'
import { type Frame, FrameDecoder } from '../../node-bridge/zmtp/codec/frame-decoder'
import { ConnectionState, type ReadyPeer, ZmtpConnection } from '../../node-bridge/zmtp/connection'
import type { ZmtpError } from '../../node-bridge/zmtp/errors'
import { CurveClientMechanism } from '../../node-bridge/zmtp/mechanisms/curve-client-mechanism'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { type CurveCrypto, createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { PULL, PUSH } from '../../node-bridge/zmtp/sockets/socket-type'
import {
  CurveTestClient,
  concatBytes,
  curveClientGreeting,
  type KeyPair,
} from '../support/curve-client'
import { codeOf } from '../support/zmtp-assert'

const ascii = (text: string) => new TextEncoder().encode(text)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const hex = (value: string) => Uint8Array.from(Buffer.from(value, 'hex'))

// libzmq doc/zmq_curve.adoc §TEST KEY VALUES.
const SERVER = nacl.box.keyPair.fromSecretKey(
  hex('8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7'),
)
const CLIENT = nacl.box.keyPair.fromSecretKey(
  hex('7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888'),
)
/** A point of order 8 on Curve25519 (cr.yp.to/ecdh.html), little-endian. */
const ORDER_8_POINT = hex('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800')
const PING_LOL = Uint8Array.of(4, ...ascii('PING'), 0, 0, ...ascii('LOL'))

const hybrid = createCurveCrypto()
const tweetnacl = createCurveCrypto({ backend: 'tweetnacl' })

interface HarnessOptions {
  crypto?: CurveCrypto
  cookieKeys?: CookieKeyring
  authorize?: (key: Uint8Array) => boolean
  client?: CurveTestClient
}

function harness(options: HarnessOptions = {}) {
  const written: Uint8Array[] = []
  const messages: Uint8Array[][] = []
  const state = {
    closed: false,
    error: undefined as ZmtpError | undefined,
    peer: undefined as ReadyPeer | undefined,
  }
  const mechanism = new CurveServerMechanism({
    secretKey: SERVER.secretKey,
    socketType: 'PULL',
    crypto: options.crypto ?? hybrid,
    cookieKeys: options.cookieKeys ?? new CookieKeyring(),
    ...(options.authorize ? { authorize: options.authorize } : {}),
  })
  const connection = new ZmtpConnection(
    { write: (bytes) => written.push(bytes.slice()), close: () => (state.closed = true) },
    {
      onReady: (peer) => (state.peer = peer),
      onMessage: (frames) => messages.push(frames.map((frame) => frame.slice())),
      onClose: (error) => (state.error = error),
    },
    { mechanism, socketType: PULL, maxMessageSize: 1 << 20 },
  )
  connection.start()
  const client =
    options.client ?? new CurveTestClient({ serverPublicKey: SERVER.publicKey, longTerm: CLIENT })

  // Frames the server wrote after its 64-octet greeting, each returned once.
  const decoder = new FrameDecoder()
  let seen = 64
  const replies = (): Frame[] => {
    const all = concatBytes(...written)
    if (all.length <= seen) return []
    const fresh = all.subarray(seen)
    seen = all.length
    return decoder.push(fresh).map((frame) => ({ ...frame, body: frame.body.slice() }))
  }
  const send = (...chunks: Uint8Array[]) => connection.receive(concatBytes(...chunks))

  /** Greeting and HELLO; reads WELCOME. */
  const hello = () => {
    send(curveClientGreeting(), client.hello())
    const [welcome] = replies()
    expect(welcome?.command).toBe(true)
    client.readWelcome(welcome?.body as Uint8Array)
    return welcome as Frame
  }
  /** The whole handshake; returns the READY metadata. */
  const handshake = () => {
    hello()
    send(client.initiate())
    const [ready] = replies()
    expect(ready?.command).toBe(true)
    return client.readReady(ready?.body as Uint8Array)
  }
  /** Expects a silent close (no ERROR, nothing written) with `code`. */
  const expectSilentClose = (code: string) => {
    expect(state.error?.code).toBe(code)
    expect(state.error?.action).toBe('close')
    expect(state.closed).toBe(true)
    expect(replies()).toEqual([])
    expect(connection.state).toBe(ConnectionState.CLOSED)
  }
  return {
    connection,
    client,
    mechanism,
    state,
    messages,
    replies,
    send,
    hello,
    handshake,
    expectSilentClose,
  }
}

/** A crypto whose transient key pair and random octets are fixed; counts public-key work. */
function pinnedCrypto(base: CurveCrypto, transient: KeyPair, random: Uint8Array[]) {
  const counts = { precompute: 0, generateKeyPair: 0 }
  const queue = [...random]
  const crypto: CurveCrypto = {
    backend: base.backend,
    randomBytes: (n) => {
      const next = queue.shift()
      if (next?.length !== n) throw new Error(`no pinned random bytes for ${n}`)
      return next.slice()
    },
    generateKeyPair: () => {
      counts.generateKeyPair++
      // Copies: the mechanism wipes its transient secret after the handshake.
      return { publicKey: transient.publicKey.slice(), secretKey: transient.secretKey.slice() }
    },
    derivePublicKey: (secret) => base.derivePublicKey(secret),
    precompute: (theirs, mine) => {
      counts.precompute++
      return base.precompute(theirs, mine)
    },
    seal: (message, nonce, key) => base.seal(message, nonce, key),
    sealInPlace: (buffer, nonce, key) => base.sealInPlace(buffer, nonce, key),
    openInPlace: (box, nonce, key) => base.openInPlace(box, nonce, key),
    open: (box, nonce, key) => base.open(box, nonce, key),
  }
  return { crypto, counts }
}

function countingCrypto(base: CurveCrypto) {
  const counts = { precompute: 0, generateKeyPair: 0 }
  const crypto: CurveCrypto = {
    backend: base.backend,
    randomBytes: (n) => base.randomBytes(n),
    generateKeyPair: () => {
      counts.generateKeyPair++
      return base.generateKeyPair()
    },
    derivePublicKey: (secret) => base.derivePublicKey(secret),
    precompute: (theirs, mine) => {
      counts.precompute++
      return base.precompute(theirs, mine)
    },
    seal: (message, nonce, key) => base.seal(message, nonce, key),
    sealInPlace: (buffer, nonce, key) => base.sealInPlace(buffer, nonce, key),
    openInPlace: (box, nonce, key) => base.openInPlace(box, nonce, key),
    open: (box, nonce, key) => base.open(box, nonce, key),
  }
  return { crypto, counts }
}

describe('CURVE handshake', () => {
  it.each([
    ['node:crypto + tweetnacl', hybrid],
    ['tweetnacl only', tweetnacl],
  ])('completes with a RFC 26 client (%s) and names the client key', (_name, crypto) => {
    const h = harness({ crypto })
    const welcome = h.hello()
    // RFC 26: WELCOME is 168 octets: \x07WELCOME, 16-octet nonce, 144-octet box.
    expect(welcome.body).toHaveLength(168)
    expect(text(welcome.body.subarray(0, 8))).toBe('\x07WELCOME')
    expect(h.client.cookie).toHaveLength(96)
    expect(h.state.peer).toBeUndefined()

    h.send(h.client.initiate())
    const [ready, ...rest] = h.replies()
    expect(rest).toEqual([])
    expect(ready?.command).toBe(true)
    expect(text(ready?.body.subarray(0, 6) as Uint8Array)).toBe('\x05READY')
    const metadata = h.client.readReady(ready?.body as Uint8Array)
    expect(text(metadata.get('socket-type') as Uint8Array)).toBe('PULL')
    // libzmq: the server's READY uses short nonce 1.
    expect(h.client.serverNonces).toEqual([1n])
    expect(h.state.peer).toMatchObject({ mechanism: 'CURVE', socketType: 'PUSH', minorVersion: 1 })
    expect(h.state.peer?.publicKey).toEqual(CLIENT.publicKey)
    expect(h.connection.state).toBe(ConnectionState.READY)
  })

  it('announces CURVE with as-server 1 in its greeting', () => {
    const written: Uint8Array[] = []
    const connection = new ZmtpConnection(
      { write: (bytes) => written.push(bytes.slice()), close: () => undefined },
      { onMessage: () => undefined },
      {
        mechanism: new CurveServerMechanism({
          secretKey: SERVER.secretKey,
          socketType: 'PULL',
          crypto: hybrid,
          cookieKeys: new CookieKeyring(),
        }),
        socketType: PULL,
        maxMessageSize: 1024,
      },
    )
    connection.start()
    connection.receive(curveClientGreeting())
    const greeting = concatBytes(...written)
    expect(greeting).toHaveLength(64) // nothing more: the client speaks first (HELLO)
    expect(text(greeting.subarray(12, 17))).toBe('CURVE')
    expect(greeting[32]).toBe(1)
  })

  it('builds WELCOME exactly as RFC 26 says, from pinned keys and nonces', () => {
    const transient = nacl.box.keyPair()
    const cookieNonce = new Uint8Array(16).fill(0xc0)
    const welcomeNonce = new Uint8Array(16).fill(0x77)
    const cookieKey = new Uint8Array(32).fill(0x42)
    const { crypto } = pinnedCrypto(hybrid, transient, [cookieNonce, welcomeNonce])
    const cookieKeys = new CookieKeyring({ crypto: { randomBytes: () => cookieKey.slice() } })
    const h = harness({ crypto, cookieKeys })
    const welcome = h.hello()

    const cookieBox = nacl.secretbox(
      concatBytes(h.client.transient.publicKey, transient.secretKey),
      concatBytes(ascii('COOKIE--'), cookieNonce),
      cookieKey,
    )
    const box = nacl.box(
      concatBytes(transient.publicKey, cookieNonce, cookieBox),
      concatBytes(ascii('WELCOME-'), welcomeNonce),
      h.client.transient.publicKey,
      SERVER.secretKey,
    )
    expect(welcome.body).toEqual(concatBytes(ascii('\x07WELCOME'), welcomeNonce, box))
  })

  it('delivers the same messages however the byte stream is split', () => {
    // Pinned server randomness makes WELCOME, and so the client's INITIATE, the same every run.
    const transient = nacl.box.keyPair()
    const random = () => [new Uint8Array(16).fill(1), new Uint8Array(16).fill(2)]
    const cookieKeys = new CookieKeyring({
      crypto: { randomBytes: (n) => new Uint8Array(n).fill(3) },
    })
    const clientTransient = nacl.box.keyPair()
    const newClient = () =>
      new CurveTestClient({
        serverPublicKey: SERVER.publicKey,
        longTerm: CLIENT,
        transient: clientTransient,
        randomBytes: (n) => new Uint8Array(n).fill(4),
      })
    const first = harness({
      crypto: pinnedCrypto(hybrid, transient, random()).crypto,
      cookieKeys,
      client: newClient(),
    })
    const hello = first.client.hello()
    first.send(curveClientGreeting(), hello)
    first.client.readWelcome(first.replies()[0]?.body as Uint8Array)
    const stream = concatBytes(
      curveClientGreeting(),
      hello,
      first.client.initiate(),
      first.client.message('one', { more: true }),
      first.client.message(new Uint8Array(300).fill(7)),
      first.client.message(PING_LOL, { command: true }),
      first.client.message('two', { commandFrame: true }),
    )
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 12 }),
        (cuts) => {
          const h = harness({
            crypto: pinnedCrypto(hybrid, transient, random()).crypto,
            cookieKeys,
            client: newClient(),
          })
          const points = [0, ...cuts.sort((a, b) => a - b), stream.length]
          // A copy per run: the connection owns what it is handed (boxes open in place).
          const copy = stream.slice()
          for (let index = 1; index < points.length; index++) {
            h.connection.receive(copy.subarray(points[index - 1], points[index]))
          }
          expect(h.state.error).toBeUndefined()
          expect(h.messages).toEqual([[ascii('one'), new Uint8Array(300).fill(7)], [ascii('two')]])
        },
      ),
      { numRuns: 40 },
    )
  })
})

describe('CURVE HELLO', () => {
  it.each([
    ['199 octets (padding 71)', { padding: 71 }],
    ['201 octets (padding 73)', { padding: 73 }],
    ['198 octets (padding 70, the RFC prose erratum)', { padding: 70 }],
  ])('closes silently on a HELLO of %s with MALFORMED_COMMAND_HELLO', (_name, options) => {
    const h = harness()
    h.send(curveClientGreeting(), h.client.hello(options))
    h.expectSilentClose('MALFORMED_COMMAND_HELLO')
  })

  it.each([[[2, 0]], [[1, 1]], [[0, 0]]] as Array<[[number, number]]>)(
    'closes silently on CurveZMQ version %j',
    (version) => {
      const h = harness()
      h.send(curveClientGreeting(), h.client.hello({ version }))
      h.expectSilentClose('MALFORMED_COMMAND_HELLO')
    },
  )

  it('closes on another command name with UNEXPECTED_COMMAND', () => {
    const h = harness()
    h.send(curveClientGreeting(), h.client.hello({ name: 'HELLX' }))
    h.expectSilentClose('UNEXPECTED_COMMAND')
  })

  it('closes on INITIATE before HELLO with UNEXPECTED_COMMAND', () => {
    const h = harness()
    const body = concatBytes(Uint8Array.of(8), ascii('INITIATE'), new Uint8Array(300))
    h.send(curveClientGreeting(), encodeFrame(body, { command: true }))
    h.expectSilentClose('UNEXPECTED_COMMAND')
  })

  it('does no public-key work for a HELLO of the wrong size, name or version', () => {
    for (const options of [
      { padding: 10 },
      { version: [9, 9] as [number, number] },
      { name: 'HI' },
    ]) {
      const { crypto, counts } = countingCrypto(hybrid)
      const h = harness({ crypto })
      h.send(curveClientGreeting(), h.client.hello(options))
      expect(h.state.closed).toBe(true)
      expect(counts).toEqual({ precompute: 0, generateKeyPair: 0 })
    }
  })

  it('closes silently with CRYPTOGRAPHIC when the signature box is tampered with', () => {
    const h = harness()
    h.send(curveClientGreeting(), h.client.hello({ tamperBox: true }))
    h.expectSilentClose('CRYPTOGRAPHIC')
  })

  it('refuses a signature box that opens but does not hold 64 zeros, with CRYPTOGRAPHIC', () => {
    const h = harness()
    h.send(curveClientGreeting(), h.client.hello({ signature: new Uint8Array(64).fill(1) }))
    h.expectSilentClose('CRYPTOGRAPHIC')
  })

  it('closes silently with CRYPTOGRAPHIC when the client has the wrong server key', () => {
    const h = harness()
    h.send(curveClientGreeting(), h.client.hello({ boxTo: nacl.box.keyPair().publicKey }))
    h.expectSilentClose('CRYPTOGRAPHIC')
  })

  it.each([
    ['all-zero', new Uint8Array(32)],
    ['order-8', ORDER_8_POINT],
    ['p + 1 (non-canonical 1)', hex(`ee${'ff'.repeat(30)}7f`)],
  ])('refuses a %s transient key C′ with KEY_EXCHANGE', (_name, key) => {
    for (const crypto of [hybrid, tweetnacl]) {
      const h = harness({ crypto })
      h.send(curveClientGreeting(), h.client.hello({ transientField: key }))
      h.expectSilentClose('KEY_EXCHANGE')
    }
  })

  it('refuses low-order keys itself, even with a crypto that would not (plain tweetnacl)', () => {
    // nacl.box.before yields a public (all-zero based) key for low-order points instead of failing.
    const naive: CurveCrypto = {
      ...countingCrypto(tweetnacl).crypto,
      precompute: (theirs, mine) => nacl.box.before(theirs, mine),
    }
    const h = harness({ crypto: naive })
    h.send(curveClientGreeting(), h.client.hello({ transientField: ORDER_8_POINT }))
    h.expectSilentClose('KEY_EXCHANGE')
    const c = harness({ crypto: naive })
    c.hello()
    c.send(c.client.initiate({ clientKeyField: new Uint8Array(32) }))
    c.expectSilentClose('KEY_EXCHANGE')
  })

  it('turns any garbage HELLO into a typed close, never a crash', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 260 }), (data) => {
        const h = harness()
        const body = concatBytes(Uint8Array.of(5), ascii('HELLO'), data)
        h.send(curveClientGreeting(), encodeFrame(body, { command: true }))
        expect(h.state.closed).toBe(true)
        expect(['MALFORMED_COMMAND_HELLO', 'CRYPTOGRAPHIC', 'KEY_EXCHANGE']).toContain(
          h.state.error?.code,
        )
        expect(h.replies()).toEqual([])
      }),
      { numRuns: 200 },
    )
  })
})

describe('CURVE work before the HELLO box opens', () => {
  /** The crypto, counting each call by name. */
  function countingCrypto() {
    const calls = new Map<string, number>()
    const crypto = new Proxy(hybrid, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => {
          calls.set(String(name), (calls.get(String(name)) ?? 0) + 1)
          return value.apply(target, args)
        }
      },
    })
    return { crypto, calls }
  }

  it('makes no key pair, cookie or random octets for a HELLO under a wrong server key', () => {
    const { crypto, calls } = countingCrypto()
    // libzmq's curve_server.cpp made its short-term key pair in the constructor, for every
    // connection; here nothing is spent before the HELLO box opens but the one X25519 it takes.
    const cookieKeys = new CookieKeyring({ crypto })
    const wrongServer = nacl.box.keyPair()
    const h = harness({
      crypto,
      cookieKeys,
      client: new CurveTestClient({ serverPublicKey: wrongServer.publicKey, longTerm: CLIENT }),
    })
    expect(Object.fromEntries(calls)).toEqual({ derivePublicKey: 1 })
    h.send(curveClientGreeting(), h.client.hello())
    h.expectSilentClose('CRYPTOGRAPHIC')
    expect(Object.fromEntries(calls)).toEqual({ derivePublicKey: 1, precompute: 1, open: 1 })
  })
})

describe('CURVE INITIATE', () => {
  it('closes silently on an INITIATE of 256 octets with MALFORMED_COMMAND_INITIATE', () => {
    const h = harness()
    h.hello()
    h.send(encodeFrame(h.client.initiateBody({ metadata: [] }).subarray(0, 256), { command: true }))
    h.expectSilentClose('MALFORMED_COMMAND_INITIATE')
  })

  it('accepts the shortest INITIATE, 257 octets with no metadata', () => {
    const h = harness()
    h.hello()
    const body = h.client.initiateBody({ metadata: [] })
    expect(body).toHaveLength(257)
    h.send(encodeFrame(body, { command: true }))
    // The connection then refuses the missing Socket-Type with ERROR, which proves INITIATE passed.
    expect(h.state.error?.code).toBe('INVALID_SOCKET_TYPE')
  })

  it('closes on another command name with UNEXPECTED_COMMAND', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ name: 'INITIATX' }))
    h.expectSilentClose('UNEXPECTED_COMMAND')
  })

  it('closes on a second HELLO with UNEXPECTED_COMMAND', () => {
    const h = harness()
    h.hello()
    h.send(h.client.hello())
    h.expectSilentClose('UNEXPECTED_COMMAND')
  })

  it('closes silently with CRYPTOGRAPHIC on a tampered cookie', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ tamperCookie: true }))
    h.expectSilentClose('CRYPTOGRAPHIC')
  })

  it('closes silently with CRYPTOGRAPHIC on a tampered INITIATE box', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ tamperBox: true }))
    h.expectSilentClose('CRYPTOGRAPHIC')
  })

  it('refuses a cookie that another connection of the same listener received', () => {
    const cookieKeys = new CookieKeyring()
    const a = harness({ cookieKeys })
    const b = harness({ cookieKeys })
    a.hello()
    b.hello()
    // b's cookie opens under the shared key, but holds b's C′ and s′, not a's.
    a.send(a.client.initiate({ cookie: b.client.cookie as Uint8Array }))
    a.expectSilentClose('CRYPTOGRAPHIC')
    b.send(b.client.initiate())
    expect(b.state.peer?.publicKey).toEqual(CLIENT.publicKey)
  })

  describe('cookie key rotation', () => {
    const ROTATION = 30_000
    function rotatingPair() {
      let now = 0
      const cookieKeys = new CookieKeyring({ rotationMs: ROTATION, now: () => now })
      return { cookieKeys, at: (ms: number) => (now = ms) }
    }

    it('accepts a cookie whose key was rotated once (mid-handshake)', () => {
      const { cookieKeys, at } = rotatingPair()
      const h = harness({ cookieKeys })
      h.hello()
      at(ROTATION * 1.99)
      harness({ cookieKeys }).hello() // another connection makes the keyring rotate
      h.send(h.client.initiate())
      expect(h.state.error).toBeUndefined()
      expect(h.connection.state).toBe(ConnectionState.READY)
    })

    it('refuses a cookie whose key was rotated twice, with CRYPTOGRAPHIC', () => {
      const { cookieKeys, at } = rotatingPair()
      const h = harness({ cookieKeys })
      h.hello()
      at(ROTATION)
      harness({ cookieKeys }).hello() // first rotation
      at(2 * ROTATION)
      harness({ cookieKeys }).hello() // second rotation: the first key is gone
      h.send(h.client.initiate())
      h.expectSilentClose('CRYPTOGRAPHIC')
    })

    it('refuses a cookie older than two intervals even without traffic in between', () => {
      const { cookieKeys, at } = rotatingPair()
      const h = harness({ cookieKeys })
      h.hello()
      at(2 * ROTATION)
      h.send(h.client.initiate())
      h.expectSilentClose('CRYPTOGRAPHIC')
    })
  })

  it.each([0n, 1n])(
    'refuses an INITIATE short nonce of %s (HELLO used 1) with INVALID_SEQUENCE',
    (nonce) => {
      const h = harness()
      h.hello()
      h.send(h.client.initiate({ nonce }))
      h.expectSilentClose('INVALID_SEQUENCE')
    },
  )

  it('accepts an INITIATE short nonce that skips ahead', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ nonce: 1000n }))
    expect(h.connection.state).toBe(ConnectionState.READY)
  })

  it.each([
    ['all-zero', new Uint8Array(32)],
    ['order-8', ORDER_8_POINT],
  ])('refuses a %s long-term key C with KEY_EXCHANGE', (_name, key) => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ clientKeyField: key }))
    h.expectSilentClose('KEY_EXCHANGE')
  })

  it('refuses a vouch that names another server key S with KEY_EXCHANGE', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ vouchServerKey: nacl.box.keyPair().publicKey }))
    h.expectSilentClose('KEY_EXCHANGE')
  })

  it('refuses a vouch that names another transient key C′ with KEY_EXCHANGE', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ vouchTransient: nacl.box.keyPair().publicKey }))
    h.expectSilentClose('KEY_EXCHANGE')
  })

  it('refuses a vouch not made by the holder of C (key theft) with CRYPTOGRAPHIC', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ vouchSecretKey: nacl.box.keyPair().secretKey }))
    h.expectSilentClose('CRYPTOGRAPHIC')
  })

  it('closes silently on malformed metadata with INVALID_METADATA', () => {
    const h = harness()
    h.hello()
    // Socket-Type whose value length runs past the end of the box.
    const metadata = concatBytes(
      Uint8Array.of(11),
      ascii('Socket-Type'),
      Uint8Array.of(0, 0, 0, 9),
      ascii('PUSH'),
    )
    h.send(h.client.initiate({ rawMetadata: metadata }))
    h.expectSilentClose('INVALID_METADATA')
  })

  it('sends ERROR "Invalid socket type" instead of READY to a CURVE DEALER', () => {
    const h = harness()
    h.hello()
    h.send(h.client.initiate({ metadata: [['Socket-Type', 'DEALER']] }))
    const replies = h.replies()
    expect(replies).toHaveLength(1)
    expect(replies[0]?.command).toBe(true)
    expect(text(replies[0]?.body as Uint8Array)).toBe('\x05ERROR\x13Invalid socket type')
    expect(h.state.error?.code).toBe('INVALID_SOCKET_TYPE')
  })
})

describe('CURVE authorization', () => {
  it('asks the authorizer about the client’s long-term key and admits it', () => {
    const asked: Uint8Array[] = []
    const h = harness({ authorize: (key) => asked.push(key) > 0 })
    h.handshake()
    expect(asked).toEqual([CLIENT.publicKey])
    expect(h.connection.state).toBe(ConnectionState.READY)
  })

  it('answers a refused key with ERROR "400" and no READY (the client gives up)', () => {
    const h = harness({ authorize: () => false })
    h.hello()
    h.send(h.client.initiate())
    const replies = h.replies()
    expect(replies).toHaveLength(1)
    // libzmq: ERROR with the ZAP status code as reason.
    expect(replies[0]?.command).toBe(true)
    expect(replies[0]?.body).toEqual(Uint8Array.of(5, ...ascii('ERROR'), 3, ...ascii('400')))
    expect(h.state.error?.code).toBe('AUTHENTICATION_FAILED')
    expect(h.state.error?.action).toBe('error')
    expect(h.state.peer).toBeUndefined()
  })

  it('closes without ERROR when the authorizer throws (the client retries)', () => {
    const h = harness({
      authorize: () => {
        throw new Error('allow-list unavailable')
      },
    })
    h.hello()
    h.send(h.client.initiate())
    // Our fault, not the client's: INTERNAL_ERROR (no backoff for the client), no ERROR sent.
    h.expectSilentClose('INTERNAL_ERROR')
  })
})

describe('CURVE MESSAGE', () => {
  function ready(options: HarnessOptions = {}) {
    const h = harness(options)
    h.handshake()
    return h
  }

  it('opens messages in ordinary frames (flags 0x00, as libzmq sends them) and in command frames', () => {
    const h = ready()
    h.send(
      h.client.message('plain frame'),
      h.client.message('command frame', { commandFrame: true }),
    )
    expect(h.messages).toEqual([[ascii('plain frame')], [ascii('command frame')]])
  })

  it('reassembles multipart messages from the boxed MORE flag, empty frames included', () => {
    const h = ready()
    h.send(
      h.client.message('a', { more: true }),
      h.client.message(new Uint8Array(0), { more: true }),
      h.client.message('b', { more: true }),
    )
    expect(h.messages).toEqual([])
    h.send(h.client.message(new Uint8Array(0)))
    expect(h.messages).toEqual([[ascii('a'), new Uint8Array(0), ascii('b'), new Uint8Array(0)]])
  })

  it('carries every byte value and a large frame', () => {
    const h = ready()
    const all = Uint8Array.from({ length: 256 }, (_, index) => index)
    const big = new Uint8Array(200_000).map((_, index) => (index * 31) & 0xff)
    h.send(h.client.message(all), h.client.message(big))
    expect(h.messages).toEqual([[all], [big]])
  })

  it('answers a boxed PING (inner COMMAND flag 0x02) with a boxed PONG', () => {
    const h = ready()
    h.send(h.client.message(PING_LOL, { command: true }))
    const [pong] = h.replies()
    // libzmq sends MESSAGE in an ordinary frame; so do we.
    expect(pong?.command).toBe(false)
    expect(pong?.more).toBe(false)
    const opened = h.client.openMessage(pong?.body as Uint8Array)
    expect(opened.flags).toBe(0x02)
    expect(opened.payload).toEqual(Uint8Array.of(4, ...ascii('PONG'), ...ascii('LOL')))
    h.send(h.client.message(PING_LOL, { command: true }))
    h.client.openMessage(h.replies()[0]?.body as Uint8Array)
    // READY was 1; our MESSAGEs continue 2, 3.
    expect(h.client.serverNonces).toEqual([1n, 2n, 3n])
    expect(h.messages).toEqual([])
  })

  it('ignores boxed commands a PULL does not use (SUBSCRIBE, unknown)', () => {
    const h = ready()
    h.send(
      h.client.message(Uint8Array.of(9, ...ascii('SUBSCRIBE'), 1), { command: true }),
      h.client.message(Uint8Array.of(6, ...ascii('FUTURE')), { command: true }),
      h.client.message('after'),
    )
    expect(h.replies()).toEqual([])
    expect(h.messages).toEqual([[ascii('after')]])
  })

  it('closes on a short nonce that skips ahead: a dropped MESSAGE is noticed', () => {
    const h = ready()
    h.send(h.client.message('3'), h.client.message('10', { nonce: 10n }), h.client.message('11'))
    expect(h.messages.map((m) => text(m[0] as Uint8Array))).toEqual(['3'])
    h.expectSilentClose('INVALID_SEQUENCE')
  })

  it('closes silently on a reused short nonce with INVALID_SEQUENCE', () => {
    const h = ready()
    h.send(h.client.message('first', { nonce: 3n }), h.client.message('replay', { nonce: 3n }))
    expect(h.messages).toEqual([[ascii('first')]])
    h.expectSilentClose('INVALID_SEQUENCE')
  })

  it('closes silently on a decreasing short nonce with INVALID_SEQUENCE', () => {
    const h = ready()
    h.send(h.client.message('three', { nonce: 3n }), h.client.message('four', { nonce: 4n }))
    h.send(h.client.message('two', { nonce: 2n }))
    expect(h.messages).toEqual([[ascii('three')], [ascii('four')]])
    h.expectSilentClose('INVALID_SEQUENCE')
  })

  it('refuses a MESSAGE reusing the INITIATE short nonce', () => {
    const h = ready()
    h.send(h.client.message('x', { nonce: 2n }))
    h.expectSilentClose('INVALID_SEQUENCE')
  })

  it('closes silently on a tampered MESSAGE box with CRYPTOGRAPHIC (no ERROR, RFC 26)', () => {
    const h = ready()
    h.send(h.client.message('x', { tamperBox: true }))
    h.expectSilentClose('CRYPTOGRAPHIC')
    expect(h.messages).toEqual([])
  })

  it.each([
    ['reserved bit 2', 0x04],
    ['reserved bit 7', 0x80],
    ['MORE with COMMAND', 0x03],
  ])('closes silently on boxed flags with %s (MALFORMED_COMMAND_MESSAGE)', (_name, flags) => {
    const h = ready()
    h.send(h.client.message('x', { flags }))
    h.expectSilentClose('MALFORMED_COMMAND_MESSAGE')
  })

  it('closes silently on frames that are not MESSAGE commands', () => {
    for (const frame of [
      encodeFrame(ascii('plain unboxed data that is long enough to be a message')),
      encodeFrame(h32(ascii('\x07MESSAGE'))), // 32 octets: one short of the minimum
      encodeFrame(concatBytes(Uint8Array.of(5), ascii('HELLO'), new Uint8Array(194)), {
        command: true,
      }),
    ]) {
      const h = ready()
      h.send(frame)
      h.expectSilentClose('MALFORMED_COMMAND_MESSAGE')
    }
  })
})

describe('CurveServerMechanism on its own', () => {
  const mechanism = () =>
    new CurveServerMechanism({
      secretKey: SERVER.secretKey,
      socketType: 'PULL',
      crypto: hybrid,
      cookieKeys: new CookieKeyring(),
    })

  it('is CURVE, as-server, and waits for the client to speak first', () => {
    const m = mechanism()
    expect(m.name).toBe('CURVE')
    expect(m.asServer).toBe(true)
    expect(m.start(1)).toEqual({ output: [] })
  })

  it('neither opens nor boxes frames before the handshake ends', () => {
    const m = mechanism()
    const frame = { more: false, command: false, body: new Uint8Array(40) }
    expect(codeOf(() => m.decodeFrame(frame))).toBe('UNEXPECTED_COMMAND')
    expect(
      codeOf(() => m.writeFrame(new Uint8Array(m.encodedSize(1)), 0, new Uint8Array(1), {})),
    ).toBe('UNEXPECTED_COMMAND')
  })

  it('stays failed after a failure', () => {
    const m = mechanism()
    const client = new CurveTestClient({ serverPublicKey: SERVER.publicKey })
    const hello = (body: Uint8Array) => ({ name: 'HELLO', data: body.subarray(6) })
    expect(codeOf(() => m.onCommand(hello(client.helloBody({ version: [2, 0] }))))).toBe(
      'MALFORMED_COMMAND_HELLO',
    )
    expect(codeOf(() => m.onCommand(hello(client.helloBody())))).toBe('UNEXPECTED_COMMAND')
  })

  it('refuses keys that are not 32 octets', () => {
    expect(
      () =>
        new CurveServerMechanism({
          secretKey: new Uint8Array(31),
          socketType: 'PULL',
          crypto: hybrid,
          cookieKeys: new CookieKeyring(),
        }),
    ).toThrow(RangeError)
  })
})

/** Pads `prefix` with zeros to 32 octets. */
function h32(prefix: Uint8Array): Uint8Array {
  const out = new Uint8Array(32)
  out.set(prefix)
  return out
}

describe('a CURVE client and server connection back to back', () => {
  /** A PUSH (CURVE client, dialled) and a PULL (CURVE server) exchanging bytes in memory. */
  function curvePair() {
    const toServer: Uint8Array[] = []
    const toClient: Uint8Array[] = []
    const received: string[][] = []
    const closed: { client?: ZmtpError | 'clean'; server?: ZmtpError | 'clean' } = {}
    const server = new ZmtpConnection(
      { write: (bytes) => toClient.push(bytes.slice()), close: () => undefined },
      {
        onMessage: (frames) => received.push(frames.map(text)),
        onClose: (error) => (closed.server = error ?? 'clean'),
      },
      {
        mechanism: new CurveServerMechanism({
          secretKey: SERVER.secretKey,
          socketType: 'PULL',
          crypto: hybrid,
          cookieKeys: new CookieKeyring(),
        }),
        socketType: PULL,
        maxMessageSize: 1 << 20,
      },
    )
    const client = new ZmtpConnection(
      { write: (bytes) => toServer.push(bytes.slice()), close: () => undefined },
      { onClose: (error) => (closed.client = error ?? 'clean') },
      {
        mechanism: new CurveClientMechanism({
          serverPublicKey: SERVER.publicKey,
          keyPair: { publicKey: CLIENT.publicKey, secretKey: CLIENT.secretKey },
          socketType: 'PUSH',
          crypto: hybrid,
        }),
        socketType: PUSH,
        maxMessageSize: 64 * 1024,
      },
    )
    /** Delivers what each side wrote until neither has more to say. */
    const pump = () => {
      while (toServer.length > 0 || toClient.length > 0) {
        for (const bytes of toServer.splice(0)) server.receive(bytes)
        for (const bytes of toClient.splice(0)) client.receive(bytes)
      }
    }
    server.start()
    client.start()
    pump()
    return { server, client, received, closed, pump, toClient }
  }

  it('hands messages over in MESSAGE boxes, and answers PING with PONG both ways', () => {
    const { server, client, received, closed, pump } = curvePair()
    expect(client.state).toBe(ConnectionState.READY)
    expect(server.state).toBe(ConnectionState.READY)
    server.receive(client.encodeMessages([[ascii('a'), ascii('b')], [ascii('c')]]))
    client.sendPing(0, ascii('ctx'))
    server.sendPing(0)
    pump()
    expect(received).toEqual([['a', 'b'], ['c']])
    expect(closed).toEqual({})
  })

  it('takes an unboxed ERROR from the server after the handshake, and nothing else unboxed', () => {
    const error = curvePair()
    error.client.receive(
      encodeFrame(Uint8Array.of(5, ...ascii('ERROR'), 3, ...ascii('bye')), { command: true }),
    )
    expect((error.closed.client as ZmtpError).code).toBe('PEER_ERROR')
    const ping = curvePair()
    ping.client.receive(encodeFrame(PING_LOL, { command: true }))
    expect((ping.closed.client as ZmtpError).code).toBe('MALFORMED_COMMAND_MESSAGE')
    // Same length and name length as ERROR, another name.
    const other = curvePair()
    other.client.receive(
      encodeFrame(Uint8Array.of(5, ...ascii('ERRAR'), 3, ...ascii('bye')), { command: true }),
    )
    expect((other.closed.client as ZmtpError).code).toBe('MALFORMED_COMMAND_MESSAGE')
  })

  it('holds the server’s MESSAGEs to the rule the server holds ours: nonces count up by one', () => {
    /** Two PINGs the server boxed with its next two short nonces, not yet delivered. */
    const twoPings = () => {
      const pair = curvePair()
      pair.server.sendPing(0)
      pair.server.sendPing(0)
      const [first, second] = pair.toClient.splice(0)
      return { ...pair, first: first as Uint8Array, second: second as Uint8Array }
    }
    const skipped = twoPings()
    skipped.client.receive(skipped.second)
    expect((skipped.closed.client as ZmtpError).code).toBe('INVALID_SEQUENCE')
    const replayed = twoPings()
    replayed.client.receive(replayed.first)
    expect(replayed.closed.client).toBeUndefined()
    replayed.client.receive(replayed.first)
    expect((replayed.closed.client as ZmtpError).code).toBe('INVALID_SEQUENCE')
    const inOrder = twoPings()
    inOrder.client.receive(inOrder.first)
    inOrder.client.receive(inOrder.second)
    expect(inOrder.closed.client).toBeUndefined()
  })
})
