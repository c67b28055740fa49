// The PushSocket's socket semantics against raw TCP servers and our PullSocket: a behaviour
// oracle taken from libzmq (which server behaviours make it give up and which make it retry),
// heartbeats, the high-water mark, the reconnect policy, round-robin, linger.
import { createServer, type Server, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeError, encodePing, encodeReady } from '../../node-bridge/zmtp/codec/command'
import { encodeGreeting } from '../../node-bridge/zmtp/codec/greeting'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { parseCurveKey } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import {
  EndpointState,
  PushSocket,
  type PushSocketOptions,
} from '../../node-bridge/zmtp/sockets/push-socket'
import { freePort } from '../support/channel-reader'
import { listenPull } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const SERVER_PUBLIC = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
const SERVER_SECRET = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const ascii = (value: string) => new TextEncoder().encode(value)

const cleanups: Array<() => Promise<unknown> | unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function push(options: PushSocketOptions = {}): PushSocket {
  const socket = new PushSocket({ reconnectIvl: 20, ...options })
  cleanups.push(() => socket.close({ linger: 0 }))
  return socket
}

interface RawServer {
  port: number
  /** Connections accepted so far. */
  accepted: number
  /** Everything each connection sent us. */
  received: Buffer[]
}

/** A raw TCP server: `script` runs per connection with what the client has sent so far. */
async function rawServer(
  script: (socket: Socket, received: () => Buffer, index: number) => void,
): Promise<RawServer> {
  const state: RawServer = { port: 0, accepted: 0, received: [] }
  const sockets = new Set<Socket>()
  const server: Server = createServer((socket) => {
    const index = state.accepted++
    state.received[index] = Buffer.alloc(0)
    sockets.add(socket)
    socket.on('error', () => undefined)
    socket.on('close', () => sockets.delete(socket))
    socket.on('data', (chunk: Buffer) => {
      state.received[index] = Buffer.concat([state.received[index] as Buffer, chunk])
    })
    script(socket, () => state.received[index] as Buffer, index)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.port = (server.address() as { port: number }).port
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return state
}

/** Sends a full greeting, then `after` once the client's greeting (64 octets) has arrived. */
function greetThen(
  mechanism: string,
  after: (socket: Socket, received: () => Buffer) => void,
  minor = 1,
) {
  return (socket: Socket, received: () => Buffer) => {
    socket.write(encodeGreeting({ mechanism, asServer: mechanism === 'CURVE', minor }))
    let done = false
    socket.on('data', () => {
      if (done || received().length < 64) return
      done = true
      after(socket, received)
    })
  }
}

const readyPull = encodeReady([['Socket-Type', 'PULL']])

describe('the behaviour oracle: when a PUSH client gives up and when it retries, as libzmq', () => {
  it.each([
    [
      'READY with Socket-Type PUB',
      'NULL',
      greetThen('NULL', (s) => s.write(encodeReady([['Socket-Type', 'PUB']]))),
      'INVALID_SOCKET_TYPE',
    ],
    [
      'a greeting with mechanism CURVE to a NULL client',
      'NULL',
      greetThen('CURVE', () => {}),
      'MECHANISM_MISMATCH',
    ],
    [
      'a NULL ERROR command',
      'NULL',
      greetThen('NULL', (s) => s.write(encodeError('go away'))),
      'PEER_ERROR',
    ],
    [
      'a CURVE ERROR "400" after HELLO',
      'CURVE',
      greetThen('CURVE', (s) => s.write(encodeError('400'))),
      'AUTHENTICATION_FAILED',
    ],
    [
      'a ZMTP 2.0 greeting',
      'NULL',
      (s: Socket) => s.write(Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 7)),
      'UNSUPPORTED_VERSION',
    ],
  ] as const)('gives up for good after %s', async (_what, mechanism, script, code) => {
    const server = await rawServer(script)
    const socket = push(mechanism === 'CURVE' ? { curve: { serverKey: SERVER_PUBLIC } } : {})
    const failures: string[] = []
    socket.on('failed', (_endpoint, error) => failures.push(error.code))
    socket.connect(`tcp://127.0.0.1:${server.port}`)
    await waitFor(() => socket.endpoints()[0]?.state === EndpointState.FAILED, { what: 'failed' })
    expect(failures).toEqual([code])
    expect(socket.endpoints()[0]?.lastError?.code).toBe(code)
    // Ten reconnect intervals later, still one connection.
    await sleep(300)
    expect(server.accepted).toBe(1)
    expect(socket.endpoints()[0]?.state).toBe(EndpointState.FAILED)
  })

  it('retries after a plain close following the greeting', async () => {
    const server = await rawServer(greetThen('NULL', (s) => s.destroy()))
    const socket = push()
    socket.connect(`tcp://127.0.0.1:${server.port}`)
    await waitFor(() => server.accepted >= 3, { what: 'three connections' })
    expect(socket.endpoints()[0]?.state).not.toBe(EndpointState.FAILED)
  })

  it('sends the greeting in two parts: signature and major first, the rest after the server’s', async () => {
    const server = await rawServer(() => {})
    const socket = push()
    socket.connect(`tcp://127.0.0.1:${server.port}`)
    await waitFor(() => (server.received[0]?.length ?? 0) >= 11, { what: 'the greeting start' })
    await sleep(100)
    expect([...(server.received[0] ?? [])]).toEqual([0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3])
  })

  it('delivers to a ZMTP 3.0 server that sends READY without waiting', async () => {
    const server = await rawServer(greetThen('NULL', (s) => s.write(readyPull), 0))
    const socket = push()
    socket.connect(`tcp://127.0.0.1:${server.port}`)
    await socket.send('hello')
    // greeting 64 + READY (28 octets: 04 1a 05 READY 0b Socket-Type 00000004 PUSH) + 00 05 hello.
    await waitFor(() => (server.received[0]?.length ?? 0) >= 64 + 28 + 7, { what: 'the message' })
    const wire = server.received[0] as Buffer
    expect(wire.subarray(12, 16).toString()).toBe('NULL')
    expect(wire[32]).toBe(0) // as-server
    expect(wire.subarray(64, 92)).toEqual(Buffer.from(encodeReady([['Socket-Type', 'PUSH']])))
    expect([...wire.subarray(92)]).toEqual([0x00, 0x05, ...ascii('hello')])
  })

  it('answers PING with PONG echoing the context (libzmq test_heartbeats)', async () => {
    const server = await rawServer(
      greetThen('NULL', (s) => s.write(Buffer.concat([readyPull, encodePing(0, ascii('LOL'))]))),
    )
    const socket = push()
    socket.connect(`tcp://127.0.0.1:${server.port}`)
    const pong = Buffer.from([0x04, 0x08, 0x04, ...ascii('PONG'), ...ascii('LOL')])
    await waitFor(() => server.received[0]?.includes(pong), { what: 'PONG' })
  })

  it('sends PINGs with its TTL and reconnects when they go unanswered', async () => {
    // A server that completes the handshake and then never answers.
    const server = await rawServer(greetThen('NULL', (s) => s.write(readyPull)))
    const socket = push({ heartbeatIvl: 50, heartbeatTimeout: 200, heartbeatTtl: 1000 })
    const disconnects: Array<string | undefined> = []
    socket.on('disconnect', (_endpoint, error) => disconnects.push(error?.code))
    socket.connect(`tcp://127.0.0.1:${server.port}`)
    await waitFor(() => server.accepted >= 2, { what: 'a reconnect' })
    expect(disconnects[0]).toBe('HEARTBEAT_TIMEOUT')
    // PING with TTL 10 deciseconds and an empty context: 04 04 04 PING 00 0a... (RFC 37).
    const ping = Buffer.from([0x04, 0x07, 0x04, ...ascii('PING'), 0x00, 0x0a])
    expect(server.received[0]?.includes(ping)).toBe(true)
  })
})

describe('CURVE clients and the bridge’s allow-list', () => {
  async function curveBridge(authorize?: (key: Uint8Array) => boolean) {
    const crypto = createCurveCrypto()
    const cookieKeys = new CookieKeyring({ crypto })
    const secretKey = parseCurveKey(SERVER_SECRET, 'test')
    const harness = await listenPull({
      createMechanism: () =>
        new CurveServerMechanism({
          secretKey,
          socketType: 'PULL',
          crypto,
          cookieKeys,
          ...(authorize ? { authorize } : {}),
        }),
    })
    cleanups.push(() => harness.pull.close())
    return harness
  }

  it('gives up after the bridge refuses its key with ERROR 400, and close() does not wait', async () => {
    const harness = await curveBridge(() => false)
    const socket = push({ curve: { serverKey: SERVER_PUBLIC }, linger: 60_000 })
    socket.connect(`tcp://127.0.0.1:${harness.port}`)
    await socket.send('refused')
    await waitFor(() => socket.endpoints()[0]?.state === EndpointState.FAILED, { what: 'failed' })
    expect(socket.endpoints()[0]?.lastError?.code).toBe('AUTHENTICATION_FAILED')
    await sleep(300)
    expect(harness.count('connection accepted')).toBe(1)
    expect(harness.received).toEqual([])
    const started = Date.now()
    expect(await socket.close()).toEqual({ unsent: 1 })
    expect(Date.now() - started).toBeLessThan(5000)
  })

  it('admits a client whose key is on the allow-list; the server sees our public key', async () => {
    const keys = createCurveCrypto().generateKeyPair()
    const allowed = Buffer.from(keys.publicKey).toString('hex')
    const harness = await curveBridge((key) => Buffer.from(key).toString('hex') === allowed)
    const socket = push({ curve: { serverKey: SERVER_PUBLIC, secretKey: keys.secretKey } })
    expect(socket.curvePublicKey).toEqual(keys.publicKey)
    socket.connect(`tcp://127.0.0.1:${harness.port}`)
    await socket.send(['a', '', 'b'])
    await waitFor(() => harness.received.length === 1)
    expect(harness.received[0]?.frames.map((frame) => Buffer.from(frame).toString())).toEqual([
      'a',
      '',
      'b',
    ])
    expect(harness.received[0]?.publicKey).toEqual(keys.publicKey)
  })

  it('keeps retrying with a wrong server key (the server closes without ERROR)', async () => {
    const harness = await curveBridge()
    const wrong = createCurveCrypto().generateKeyPair().publicKey
    const socket = push({ curve: { serverKey: wrong } })
    socket.connect(`tcp://127.0.0.1:${harness.port}`)
    await waitFor(() => harness.count('connection accepted') >= 3, { what: 'three tries' })
    expect(socket.endpoints()[0]?.state).not.toBe(EndpointState.FAILED)
  })

  it('keeps a bridge heartbeat happy: PINGs inside MESSAGE boxes get boxed PONGs', async () => {
    const crypto = createCurveCrypto()
    const cookieKeys = new CookieKeyring({ crypto })
    const secretKey = parseCurveKey(SERVER_SECRET, 'test')
    const harness = await listenPull({
      heartbeatIvlMs: 30,
      heartbeatTimeoutMs: 150,
      createMechanism: () =>
        new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys }),
    })
    cleanups.push(() => harness.pull.close())
    const socket = push({ curve: { serverKey: SERVER_PUBLIC } })
    socket.connect(`tcp://127.0.0.1:${harness.port}`)
    await socket.send('before')
    await waitFor(() => harness.received.length === 1)
    await sleep(600) // 20 heartbeat intervals, 4 timeouts
    await socket.send('after')
    await waitFor(() => harness.received.length === 2)
    expect(harness.count('connection accepted')).toBe(1)
    expect(socket.endpoints()[0]?.handshakes).toBe(1)
  })
})

describe('queueing, reconnect policy, round-robin and linger', () => {
  it('trySend() returns false at the high-water mark; send() waits for room', async () => {
    const port = await freePort()
    const socket = push({ sendHighWaterMark: 3 })
    socket.connect(`tcp://127.0.0.1:${port}`)
    expect([1, 2, 3, 4].map((n) => socket.trySend(`m${n}`))).toEqual([true, true, true, false])
    let queued = false
    const waiting = socket.send('m4').then(() => {
      queued = true
    })
    await sleep(100)
    expect(queued).toBe(false)
    expect(socket.stats.queued).toBe(3)
    const harness = await listenPull({ port })
    cleanups.push(() => harness.pull.close())
    await waiting
    await waitFor(() => harness.received.length === 4)
    expect(harness.received.map((m) => Buffer.from(m.frames[0] as Uint8Array).toString())).toEqual([
      'm1',
      'm2',
      'm3',
      'm4',
    ])
  })

  it('waits reconnect_ivl plus jitter, doubling up to reconnect_ivl_max (libzmq)', async () => {
    const port = await freePort()
    const delays: number[] = []
    const socket = push({ reconnectIvl: 40, reconnectIvlMax: 150, random: () => 0.5 })
    socket.on('retry', (_endpoint, delay) => delays.push(delay))
    socket.connect(`tcp://127.0.0.1:${port}`)
    await waitFor(() => delays.length >= 4, { what: 'four retries' })
    // current + floor(0.5 × 40): 40+20, 80+20, 150+20 (capped), 150+20.
    expect(delays.slice(0, 4)).toEqual([60, 100, 170, 170])
  })

  it('without reconnect_ivl_max the interval stays reconnect_ivl plus jitter', async () => {
    const port = await freePort()
    const delays: number[] = []
    const socket = push({ reconnectIvl: 30, random: () => 0.9 })
    socket.on('retry', (_endpoint, delay) => delays.push(delay))
    socket.connect(`tcp://127.0.0.1:${port}`)
    await waitFor(() => delays.length >= 3)
    expect(delays.slice(0, 3)).toEqual([57, 57, 57])
  })

  it('round-robins messages over ready peers', async () => {
    const [one, two] = [await listenPull(), await listenPull()]
    cleanups.push(
      () => one.pull.close(),
      () => two.pull.close(),
    )
    const socket = push()
    socket.connect(`tcp://127.0.0.1:${one.port}`)
    socket.connect(`tcp://127.0.0.1:${two.port}`)
    await waitFor(() => socket.readyPeers === 2)
    for (let n = 0; n < 10; n++) await socket.send(`${n}`)
    await waitFor(() => one.received.length + two.received.length === 10)
    const texts = (h: typeof one) =>
      h.received.map((m) => Number(Buffer.from(m.frames[0] as Uint8Array).toString()))
    expect(texts(one)).toHaveLength(5)
    expect(texts(two)).toHaveLength(5)
    expect([...texts(one), ...texts(two)].sort((a, b) => a - b)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ])
    // Each peer got every other message, in order.
    expect(texts(one).every((n, i, all) => i === 0 || n === (all[i - 1] as number) + 2)).toBe(true)
  })

  it('close() lingers for a late server, and reports what it could not hand over', async () => {
    const port = await freePort()
    const socket = push()
    socket.connect(`tcp://127.0.0.1:${port}`)
    await socket.send('one')
    await socket.send('two')
    const closing = socket.close({ linger: 5000 })
    expect(() => socket.trySend('three')).toThrow(
      expect.objectContaining({ code: 'SOCKET_CLOSED' }),
    )
    const harness = await listenPull({ port })
    cleanups.push(() => harness.pull.close())
    expect(await closing).toEqual({ unsent: 0 })
    await waitFor(() => harness.received.length === 2)

    const other = push()
    other.connect(`tcp://127.0.0.1:${await freePort()}`)
    await other.send('lost')
    const started = Date.now()
    expect(await other.close({ linger: 200 })).toEqual({ unsent: 1 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(190)
  })
})
