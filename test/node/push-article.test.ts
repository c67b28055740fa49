// The article's three experiments, asserted, with our PushSocket as the client and two real
// servers: libzmq's PULL (the `zeromq` package) and the bridge's own PullSocket; NULL and CURVE.
// 1. five messages with the server up arrive in order; 2. the client starts first, the server
// binds 2 s later, the queued messages arrive in one TCP write; 3. the server goes away
// mid-stream and comes back, the client reconnects and continues.
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { formatKey, parseCurveKey } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import {
  EndpointState,
  PushSocket,
  type PushSocketOptions,
} from '../../node-bridge/zmtp/sockets/push-socket'
import { freePort } from '../support/channel-reader'
import { listenPull } from '../support/pull-harness'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy'
import { waitFor } from '../support/wait'

// libzmq doc/zmq_curve.adoc §TEST KEY VALUES.
const SERVER_PUBLIC = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
const SERVER_SECRET = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'

const text = (frames: Uint8Array[]) => frames.map((frame) => new TextDecoder().decode(frame))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface PullServer {
  port: number
  received: string[][]
  close(): Promise<void>
}

type ServerKind = 'libzmq' | 'bridge'
type MechanismName = 'NULL' | 'CURVE'

async function startLibzmq(port: number, mechanism: MechanismName): Promise<PullServer> {
  const pull = new zmq.Pull({
    linger: 0,
    ...(mechanism === 'CURVE' ? { curveServer: true, curveSecretKey: SERVER_SECRET } : {}),
  })
  await pull.bind(`tcp://127.0.0.1:${port}`)
  const received: string[][] = []
  void (async () => {
    try {
      for await (const frames of pull) received.push(text(frames))
    } catch {
      // closed
    }
  })()
  return {
    port: Number(String(pull.lastEndpoint).split(':').pop()),
    received,
    close: async () => pull.close(),
  }
}

async function startBridge(port: number, mechanism: MechanismName): Promise<PullServer> {
  const crypto = createCurveCrypto()
  const cookieKeys = new CookieKeyring({ crypto })
  const secretKey = parseCurveKey(SERVER_SECRET, 'test')
  const harness = await listenPull({
    port,
    ...(mechanism === 'CURVE'
      ? {
          createMechanism: () =>
            new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys }),
        }
      : {}),
  })
  const received: string[][] = []
  const original = harness.received.push.bind(harness.received)
  harness.received.push = (...messages) => {
    for (const message of messages) received.push(text(message.frames))
    return original(...messages)
  }
  return { port: harness.port, received, close: () => harness.pull.close() }
}

const servers: PullServer[] = []
const sockets: PushSocket[] = []
const proxies: TcpProxy[] = []

afterEach(async () => {
  await Promise.all(sockets.splice(0).map((socket) => socket.close({ linger: 0 })))
  await Promise.all(proxies.splice(0).map((proxy) => proxy.close()))
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

async function server(kind: ServerKind, port: number, mechanism: MechanismName) {
  const started = await (kind === 'libzmq' ? startLibzmq : startBridge)(port, mechanism)
  servers.push(started)
  return started
}

function client(mechanism: MechanismName, keyForm: 'z85' | 'hex' | 'base64' = 'z85'): PushSocket {
  const serverKey =
    keyForm === 'z85' ? SERVER_PUBLIC : formatKey(parseCurveKey(SERVER_PUBLIC, 'test'))[keyForm]
  const options: PushSocketOptions = mechanism === 'CURVE' ? { curve: { serverKey } } : {}
  const socket = new PushSocket(options)
  sockets.push(socket)
  return socket
}

const numbered = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, index) => [`message ${from + index}`])

describe.each([
  ['libzmq', 'NULL', 'z85'],
  ['bridge', 'NULL', 'z85'],
  ['libzmq', 'CURVE', 'z85'],
  ['bridge', 'CURVE', 'hex'],
] as const)('our PUSH → %s PULL, %s', (kind, mechanism, keyForm) => {
  it('delivers five messages in order with the server up', async () => {
    const pull = await server(kind, 0, mechanism)
    const push = client(mechanism, keyForm)
    push.connect(`tcp://127.0.0.1:${pull.port}`)
    for (const [message] of numbered(1, 5)) await push.send(message as string)
    await waitFor(() => pull.received.length === 5, { what: 'five messages' })
    expect(pull.received).toEqual(numbered(1, 5))
    expect(push.endpoints()[0]).toMatchObject({ state: 'ready', connections: 1, handshakes: 1 })
  })

  it('queues while the server is down; when it binds 2 s later the queue arrives in one TCP write', async () => {
    const port = await freePort()
    const push = client(mechanism, keyForm)
    let retries = 0
    push.on('retry', () => retries++)
    push.connect(`tcp://127.0.0.1:${port}`)
    for (const [message] of numbered(1, 5)) await push.send(message as string)
    await sleep(2000)
    expect(push.stats.queued).toBe(5)
    expect(push.endpoints()[0]?.connections).toBe(0)
    // libzmq's policy: a try every 100–200 ms.
    expect(retries).toBeGreaterThanOrEqual(8)

    // The "server" appears: a PULL behind a proxy that records what the server's socket reads.
    const pull = await server(kind, 0, mechanism)
    const proxy = await startTcpProxy(port, pull.port)
    proxies.push(proxy)
    await waitFor(() => pull.received.length === 5, { what: 'the queued messages' })
    expect(pull.received).toEqual(numbered(1, 5))
    expect(push.stats).toMatchObject({ queued: 0, sent: 5, dropped: 0, messageWrites: 1 })
    // The server read the five messages as one chunk of exactly the bytes of that one write,
    // after the greeting and handshake chunks.
    const chunks = proxy.connections[0] ?? []
    expect(chunks.at(-1)?.length).toBe(push.stats.messageBytes)
    expect(chunks.length).toBeLessThanOrEqual(mechanism === 'NULL' ? 4 : 5)
  })

  it('reconnects when the server goes away mid-stream and comes back, and continues', async () => {
    const port = await freePort()
    const first = await server(kind, port, mechanism)
    const push = client(mechanism, keyForm)
    push.connect(`tcp://127.0.0.1:${port}`)
    for (const [message] of numbered(1, 5)) await push.send(message as string)
    await waitFor(() => first.received.length === 5, { what: 'the first five' })

    await first.close()
    await waitFor(() => push.endpoints()[0]?.state === EndpointState.WAITING, {
      what: 'the client to notice',
    })
    for (const [message] of numbered(6, 10)) await push.send(message as string)
    expect(push.stats.queued).toBe(5)

    const second = await server(kind, port, mechanism)
    await waitFor(() => second.received.length === 5, { what: 'the queued five' })
    await push.send('message 11')
    await waitFor(() => second.received.length === 6, { what: 'message 11' })
    expect(first.received).toEqual(numbered(1, 5))
    expect(second.received).toEqual(numbered(6, 11))
    expect(push.endpoints()[0]?.handshakes).toBe(2)
    expect(push.stats).toMatchObject({ sent: 11, dropped: 0, queued: 0 })
  })
})
