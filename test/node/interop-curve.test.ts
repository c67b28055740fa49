// Interop over real TCP: libzmq 4.3.5 CURVE PUSH sockets (the `zeromq` package) into our PULL
// socket with the CURVE mechanism; clients it must refuse; raw-socket negative cases after
// libzmq's tests/test_security_curve.cpp.
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type InboundMessage, PullSocket } from '../../node-bridge/bridge/pull-socket'
import { type Frame, FrameDecoder } from '../../node-bridge/zmtp/codec/frame-decoder'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { formatKey, parseCurveKey } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { z85Decode } from '../../shared/z85'
import { CurveTestClient, concatBytes, curveClientGreeting } from '../support/curve-client'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'

// libzmq doc/zmq_curve.adoc §TEST KEY VALUES.
const SERVER_PUBLIC = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
const SERVER_SECRET = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'
const SERVER_SECRET_KEY = parseCurveKey(SERVER_SECRET, 'test')

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const toHex = (key: Uint8Array) => Buffer.from(key).toString('hex')

interface Listener {
  pull: PullSocket
  port: number
  endpoint: string
  received: InboundMessage[]
  logs: ReturnType<typeof createMemoryLogger>
  /** PONGs the mechanisms boxed (heartbeat answers). */
  pongs: { count: number }
  codes(code: string): number
}

const listeners: PullSocket[] = []
const zmqSockets: Array<{ close(): void }> = []
const rawSockets: Socket[] = []

afterEach(async () => {
  for (const socket of zmqSockets.splice(0)) socket.close()
  for (const socket of rawSockets.splice(0)) socket.destroy()
  await Promise.all(listeners.splice(0).map((pull) => pull.close()))
})

async function listen(
  options: { secretKey?: Uint8Array; authorize?: (key: Uint8Array) => boolean } = {},
): Promise<Listener> {
  const received: InboundMessage[] = []
  const logs = createMemoryLogger()
  const secretKey = options.secretKey ?? SERVER_SECRET_KEY
  // One crypto and one cookie keyring per listener, as the bridge does.
  const crypto = createCurveCrypto()
  const cookieKeys = new CookieKeyring({ crypto })
  const pongs = { count: 0 }
  const pull = new PullSocket({
    host: '127.0.0.1',
    port: 0,
    createMechanism: () => {
      const mechanism = new CurveServerMechanism({
        secretKey,
        socketType: 'PULL',
        crypto,
        cookieKeys,
        ...(options.authorize ? { authorize: options.authorize } : {}),
      })
      const write = mechanism.writeFrame.bind(mechanism)
      mechanism.writeFrame = (target, offset, body, frameOptions) => {
        pongs.count++
        return write(target, offset, body, frameOptions)
      }
      return mechanism
    },
    handshakeTimeoutMs: 5000,
    maxMessageSize: 16 * 1024 * 1024,
    logger: logs.logger,
    onMessage: (message) => received.push(message),
  })
  listeners.push(pull)
  const address = await pull.listen()
  return {
    pull,
    port: address.port,
    endpoint: `tcp://127.0.0.1:${address.port}`,
    received,
    logs,
    pongs,
    // Failed handshakes are counted by the socket (its log samples them); later closes are logged.
    codes: (code) =>
      (pull.failed.get(code) ?? 0) +
      logs.lines.filter(
        (line) => line.code === code && line.msg === 'connection closed by the bridge',
      ).length,
  }
}

function push(
  endpoint: string,
  keys: { publicKey: string; secretKey: string } = zmq.curveKeyPair(),
  options: Record<string, unknown> = {},
): zmq.Push {
  const socket = new zmq.Push({
    linger: 0,
    curveServerKey: SERVER_PUBLIC,
    curvePublicKey: keys.publicKey,
    curveSecretKey: keys.secretKey,
    ...options,
  } as zmq.SocketOptions<zmq.Push>)
  zmqSockets.push(socket)
  socket.connect(endpoint)
  return socket
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('libzmq CURVE PUSH clients into the bridge', () => {
  it.each([
    ['Z85', SERVER_SECRET],
    ['base64', formatKey(SERVER_SECRET_KEY).base64],
    ['hex', formatKey(SERVER_SECRET_KEY).hex],
  ])(
    'handshakes with a server secret key given as %s and delivers multipart messages with empty frames',
    async (_form, keyText) => {
      const listener = await listen({ secretKey: parseCurveKey(keyText, 'test') })
      const keys = zmq.curveKeyPair()
      const socket = push(listener.endpoint, keys)
      await socket.send(['a', '', 'b', ''])
      await socket.send([''])
      await waitFor(() => listener.received.length === 2)
      expect(listener.received[0]?.frames.map(text)).toEqual(['a', '', 'b', ''])
      expect(listener.received[1]?.frames).toEqual([new Uint8Array(0)])
      for (const message of listener.received) {
        expect(message.mechanism).toBe('CURVE')
        expect(message.publicKey).toEqual(z85Decode(keys.publicKey))
      }
    },
  )

  it('delivers a 1 MiB frame byte for byte', async () => {
    const listener = await listen()
    const big = new Uint8Array(1024 * 1024)
    for (let index = 0; index < big.length; index++) big[index] = (index * 31 + 7) & 0xff
    const socket = push(listener.endpoint)
    await socket.send(['head', big])
    await waitFor(() => listener.received.length === 1)
    expect(text(listener.received[0]?.frames[0] as Uint8Array)).toBe('head')
    expect(Buffer.compare(listener.received[0]?.frames[1] as Uint8Array, big)).toBe(0)
  })

  it('delivers 10,000 messages in order, each with the client’s public key', async () => {
    const listener = await listen()
    const keys = zmq.curveKeyPair()
    const socket = push(listener.endpoint, keys, { sendHighWaterMark: 100_000 })
    for (let index = 0; index < 10_000; index++) await socket.send(`message ${index}`)
    await waitFor(() => listener.received.length === 10_000, { timeoutMs: 30_000 })
    expect(listener.received.map((message) => text(message.frames[0] as Uint8Array))).toEqual(
      Array.from({ length: 10_000 }, (_, index) => `message ${index}`),
    )
    const key = toHex(z85Decode(keys.publicKey))
    expect(
      listener.received.every((message) => toHex(message.publicKey as Uint8Array) === key),
    ).toBe(true)
  })

  it('tells clients apart by key', async () => {
    const listener = await listen()
    const [one, two] = [zmq.curveKeyPair(), zmq.curveKeyPair()]
    await push(listener.endpoint, one).send('from one')
    await push(listener.endpoint, two).send('from two')
    await waitFor(() => listener.received.length === 2)
    const byText = new Map(
      listener.received.map((message) => [text(message.frames[0] as Uint8Array), message]),
    )
    expect(byText.get('from one')?.publicKey).toEqual(z85Decode(one.publicKey))
    expect(byText.get('from two')?.publicKey).toEqual(z85Decode(two.publicKey))
  })

  it('answers heartbeat PINGs inside MESSAGE boxes, so the link stays up', async () => {
    const listener = await listen()
    const socket = push(listener.endpoint, zmq.curveKeyPair(), {
      heartbeatInterval: 50,
      heartbeatTimeout: 400,
      heartbeatTimeToLive: 2000,
    })
    await socket.send('before')
    // libzmq drops the link when a PING gets no valid PONG within the timeout; five answered
    // PINGs on one connection show that it accepted our boxed PONGs.
    await waitFor(() => listener.pongs.count >= 5, { what: 'five PONGs' })
    await socket.send('after')
    await waitFor(() => listener.received.length === 2)
    expect(listener.logs.lines.filter((line) => line.msg === 'handshake succeeded')).toHaveLength(1)
    expect(listener.logs.lines.filter((line) => line.code !== undefined)).toEqual([])
  })
})

describe('CURVE clients the bridge must refuse', () => {
  it('admits an allowed client and refuses another with ERROR 400, side by side', async () => {
    const allowedKeys = zmq.curveKeyPair()
    const allowed = new Set([toHex(z85Decode(allowedKeys.publicKey))])
    const listener = await listen({ authorize: (key) => allowed.has(toHex(key)) })
    const refused = push(listener.endpoint)
    void refused.send('from a stranger').catch(() => undefined)
    await push(listener.endpoint, allowedKeys).send('from a friend')
    await waitFor(() => listener.received.length === 1 && listener.codes('AUTHENTICATION_FAILED'))
    expect(text(listener.received[0]?.frames[0] as Uint8Array)).toBe('from a friend')
    expect(listener.received[0]?.publicKey).toEqual(z85Decode(allowedKeys.publicKey))
    // An ERROR is a hard failure: libzmq does not come back with the same credentials (it would
    // retry every 100-200 ms after a plain close).
    await sleep(600)
    expect(listener.codes('AUTHENTICATION_FAILED')).toBe(1)
    expect(listener.received).toHaveLength(1)
  })

  it('closes silently on a client with the wrong server public key, which keeps retrying', async () => {
    const listener = await listen()
    const socket = push(listener.endpoint, zmq.curveKeyPair(), {
      curveServerKey: zmq.curveKeyPair().publicKey,
    })
    void socket.send('never').catch(() => undefined)
    // A silent close is a soft failure: libzmq reconnects with a fresh HELLO.
    await waitFor(() => listener.codes('CRYPTOGRAPHIC') >= 2, { what: 'two failed handshakes' })
    expect(listener.received).toHaveLength(0)
  })

  it('closes a NULL client with MECHANISM_MISMATCH', async () => {
    const listener = await listen()
    const socket = new zmq.Push({ linger: 0 })
    zmqSockets.push(socket)
    socket.connect(listener.endpoint)
    void socket.send('plain text').catch(() => undefined)
    await waitFor(() => listener.codes('MECHANISM_MISMATCH'))
    expect(listener.received).toHaveLength(0)
  })

  it('closes a PLAIN client with MECHANISM_MISMATCH', async () => {
    const listener = await listen()
    const socket = new zmq.Push({ linger: 0, plainUsername: 'user', plainPassword: 'pass' })
    zmqSockets.push(socket)
    socket.connect(listener.endpoint)
    void socket.send('plain text').catch(() => undefined)
    await waitFor(() => listener.codes('MECHANISM_MISMATCH'))
    expect(listener.received).toHaveLength(0)
  })

  it('refuses a CURVE DEALER with ERROR after the handshake', async () => {
    const listener = await listen()
    const keys = zmq.curveKeyPair()
    const dealer = new zmq.Dealer({
      linger: 0,
      curveServerKey: SERVER_PUBLIC,
      curvePublicKey: keys.publicKey,
      curveSecretKey: keys.secretKey,
    })
    zmqSockets.push(dealer)
    dealer.connect(listener.endpoint)
    void dealer.send('nope').catch(() => undefined)
    await waitFor(() => listener.codes('INVALID_SOCKET_TYPE'))
    expect(listener.received).toHaveLength(0)
  })

  it('closes an HTTP request without delivering anything', async () => {
    const listener = await listen()
    const raw = await RawClient.connect(listener.port)
    raw.write(new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await raw.closed
    await waitFor(() => listener.codes('UNSUPPORTED_VERSION'))
    expect(listener.received).toHaveLength(0)
  })

  it('closes a ZMTP 2.0 peer (a downgrade to no security) without delivering anything', async () => {
    const listener = await listen()
    const raw = await RawClient.connect(listener.port)
    // RFC 15: signature, revision 1, socket type PUSH, then an identity and a message.
    raw.write(Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8, 0, 0, 0, 1, 0x41))
    await raw.closed
    await waitFor(() => listener.codes('UNSUPPORTED_VERSION'))
    expect(listener.received).toHaveLength(0)
  })
})

/** A raw TCP client for hand-made CURVE commands. */
class RawClient {
  readonly #socket: Socket
  #buffer: Uint8Array = new Uint8Array(0)
  #waiters: Array<() => void> = []
  readonly closed: Promise<void>
  #isClosed = false

  private constructor(socket: Socket) {
    this.#socket = socket
    socket.on('data', (data: Buffer) => {
      this.#buffer = concatBytes(this.#buffer, data)
      this.#wake()
    })
    socket.on('error', () => undefined)
    this.closed = new Promise((resolve) =>
      socket.on('close', () => {
        this.#isClosed = true
        this.#wake()
        resolve()
      }),
    )
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new RawClient(socket)))
      rawSockets.push(socket)
      socket.once('error', reject)
    })
  }

  #wake(): void {
    for (const waiter of this.#waiters.splice(0)) waiter()
  }

  write(bytes: Uint8Array): void {
    this.#socket.write(bytes)
  }

  /** The next `n` octets, or what is left when the server closes first. */
  async read(n: number): Promise<Uint8Array> {
    while (this.#buffer.length < n && !this.#isClosed) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
    const out = this.#buffer.subarray(0, n)
    this.#buffer = this.#buffer.subarray(out.length)
    return out
  }

  /** Everything the server sent until it closed. */
  async rest(): Promise<Uint8Array> {
    await this.closed
    return this.read(this.#buffer.length)
  }

  /** Reads one ZMTP frame. */
  async readFrame(): Promise<Frame> {
    const decoder = new FrameDecoder()
    for (;;) {
      const [frame] = decoder.push(await this.read(1))
      if (frame) return { ...frame, body: frame.body.slice() }
      if (this.#isClosed && this.#buffer.length === 0) throw new Error('closed before a frame')
    }
  }
}

describe('hand-made CURVE commands over TCP (libzmq test_security_curve.cpp)', () => {
  async function greeted(listener: Listener) {
    const raw = await RawClient.connect(listener.port)
    const client = new CurveTestClient({ serverPublicKey: z85Decode(SERVER_PUBLIC) })
    raw.write(curveClientGreeting())
    const greeting = await raw.read(64)
    expect(text(greeting.subarray(12, 17))).toBe('CURVE')
    return { raw, client }
  }

  async function welcomed(listener: Listener) {
    const { raw, client } = await greeted(listener)
    raw.write(client.hello())
    client.readWelcome((await raw.readFrame()).body)
    return { raw, client }
  }

  it('completes a handshake with the test client and delivers its message', async () => {
    const listener = await listen()
    const { raw, client } = await welcomed(listener)
    raw.write(client.initiate())
    const metadata = client.readReady((await raw.readFrame()).body)
    expect(text(metadata.get('socket-type') as Uint8Array)).toBe('PULL')
    raw.write(concatBytes(client.message('raw', { more: true }), client.message('client')))
    await waitFor(() => listener.received.length === 1)
    expect(listener.received[0]?.frames.map(text)).toEqual(['raw', 'client'])
    expect(listener.received[0]?.publicKey).toEqual(client.longTerm.publicKey)
  })

  it.each([
    ['a HELLO of the wrong length', { padding: 71 }, 'MALFORMED_COMMAND_HELLO'],
    ['a HELLO with the wrong command name', { name: 'HELLX' }, 'UNEXPECTED_COMMAND'],
    [
      'a HELLO with the wrong version',
      { version: [2, 0] as [number, number] },
      'MALFORMED_COMMAND_HELLO',
    ],
    [
      'a HELLO boxed to another server key',
      { boxTo: zmq.curveKeyPair().publicKey },
      'CRYPTOGRAPHIC',
    ],
  ])('closes silently on %s', async (_name, options, code) => {
    const listener = await listen()
    const { raw, client } = await greeted(listener)
    const { boxTo, ...rest } = options as { boxTo?: string }
    raw.write(client.hello({ ...rest, ...(boxTo ? { boxTo: z85Decode(boxTo) } : {}) }))
    expect(await raw.rest()).toEqual(new Uint8Array(0))
    await waitFor(() => listener.codes(code))
  })

  it.each([
    ['an INITIATE of the wrong length', { truncateTo: 256 }, 'MALFORMED_COMMAND_INITIATE'],
    ['an INITIATE with the wrong command name', { name: 'INITIATX' }, 'UNEXPECTED_COMMAND'],
    ['an INITIATE with a wrongly encrypted cookie', { tamperCookie: true }, 'CRYPTOGRAPHIC'],
    ['an INITIATE with wrongly encrypted content', { tamperBox: true }, 'CRYPTOGRAPHIC'],
  ])('closes silently on %s', async (_name, options, code) => {
    const listener = await listen()
    const { raw, client } = await welcomed(listener)
    raw.write(client.initiate(options))
    expect(await raw.rest()).toEqual(new Uint8Array(0))
    await waitFor(() => listener.codes(code))
    expect(listener.received).toHaveLength(0)
  })

  it('closes silently on an unboxed message after the handshake (unauthenticated message)', async () => {
    const listener = await listen()
    const { raw, client } = await welcomed(listener)
    raw.write(client.initiate())
    await raw.readFrame()
    raw.write(Uint8Array.of(0x00, 0x05, ...new TextEncoder().encode('plain')))
    expect(await raw.rest()).toEqual(new Uint8Array(0))
    await waitFor(() => listener.codes('MALFORMED_COMMAND_MESSAGE'))
    expect(listener.received).toHaveLength(0)
  })
})
