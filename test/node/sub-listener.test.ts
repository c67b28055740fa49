// A SUB listener (RFC 29): publishers connect to the bridge, which subscribes on every
// connection, to everything or to the prefixes given, in the form the peer speaks. libzmq peers
// (pyzmq from Debian, npm `zeromq`), a raw ZMTP 3.0 publisher, CURVE, and the whole path to the
// Worker under `wrangler dev`.
import { type ChildProcess, spawn } from 'node:child_process'
import { connect } from 'node:net'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { decodeCommand, encodeReady } from '../../node-bridge/zmtp/codec/command'
import { FrameDecoder } from '../../node-bridge/zmtp/codec/frame-decoder'
import { encodeGreeting, GREETING_SIZE } from '../../node-bridge/zmtp/codec/greeting'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { createSub } from '../../node-bridge/zmtp/sockets/sub'
import { z85Decode } from '../../shared/z85'
import { type BridgeProcess, startBridgeProcess } from '../support/bridge-process'
import { freePort, readChannel } from '../support/channel-reader'
import { pullPerTest } from '../support/pull-harness'
import { waitFor } from '../support/wait'
import { startWranglerDev, TEST_INGEST_TOKEN, type WranglerDev } from '../support/wrangler-dev'

const root = new URL('../..', import.meta.url).pathname
const bytes = (text: string) => new TextEncoder().encode(text)
const text = (frame: Uint8Array) => new TextDecoder().decode(frame)
const hex = (value: string) => Buffer.from(value).toString('hex')

const { listen, closers } = pullPerTest()
const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill()
})

interface PythonPublisher {
  version: string
  /** Publishes one multipart message. */
  publish(frames: string[]): void
  /** What an XPUB was sent, as text: `\x01` and the prefix for each subscription. */
  subscriptions: string[]
  close(): Promise<number | null>
}

/** A pyzmq PUB (or XPUB) that connects to `endpoint` and publishes what it is told to. */
async function pythonPublisher(
  endpoint: string,
  options: { xpub?: boolean; curveServerKey?: string } = {},
): Promise<PythonPublisher> {
  const args = ['test/peers/pyzmq_pub.py', endpoint]
  if (options.xpub) args.push('--xpub')
  if (options.curveServerKey) args.push(`--curve-server-key=${options.curveServerKey}`)
  const child = spawn('/usr/bin/python3', args, { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  children.push(child)
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  const subscriptions: string[] = []
  const version = await new Promise<string>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`pyzmq publisher exited with ${code}`)))
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const entry = JSON.parse(line) as { zmq?: string; subscription?: string }
      if (entry.zmq) resolve(entry.zmq)
      if (entry.subscription) {
        subscriptions.push(Buffer.from(entry.subscription, 'hex').toString('latin1'))
      }
    })
  })
  return {
    version,
    subscriptions,
    publish: (frames) => child.stdin?.write(`${JSON.stringify(frames.map(hex))}\n`),
    close: async () => {
      child.stdin?.end('exit\n')
      return exited
    },
  }
}

/**
 * Publishes `warm-up` until the SUB has one (a PUB drops everything before a subscription
 * arrives, RFC 29), then returns what came after it.
 */
async function warmUp(publish: () => void, received: () => string[][]): Promise<number> {
  await waitFor(
    () => {
      if (received().some((frames) => frames[0] === 'warm-up')) return true
      publish()
      return false
    },
    { timeoutMs: 15_000, intervalMs: 50, what: 'a first message through the subscription' },
  )
  return received().length
}

describe('a SUB listener with libzmq publishers', () => {
  it('takes a pyzmq PUB, subscribed to everything, and keeps its multipart messages whole', async () => {
    const harness = await listen({
      socketType: createSub(),
      createMechanism: () => new NullMechanism('SUB'),
    })
    const frames = () => harness.received.map((message) => message.frames.map(text))
    const pub = await pythonPublisher(`tcp://127.0.0.1:${harness.port}`)
    expect(pub.version).toMatch(/^4\./)
    const start = await warmUp(() => pub.publish(['warm-up']), frames)
    for (const n of [1, 2, 3]) pub.publish(['telemetry', `${n}`, ''])
    await waitFor(() => frames().length >= start + 3, { what: 'three messages' })
    expect(frames().slice(start)).toEqual([
      ['telemetry', '1', ''],
      ['telemetry', '2', ''],
      ['telemetry', '3', ''],
    ])
    expect(await pub.close()).toBe(0)
  })

  it('subscribes a pyzmq XPUB to the prefixes given, which filters by them', async () => {
    const prefixes = ['warm-up', 'sensors.', 'a|b']
    const harness = await listen({
      socketType: createSub(prefixes.map(bytes)),
      createMechanism: () => new NullMechanism('SUB'),
    })
    const frames = () => harness.received.map((message) => message.frames.map(text))
    const xpub = await pythonPublisher(`tcp://127.0.0.1:${harness.port}`, { xpub: true })
    // libzmq 4.3 speaks ZMTP 3.1: the subscriptions came as SUBSCRIBE commands, which its XPUB
    // hands on as \x01 and the prefix.
    await waitFor(() => xpub.subscriptions.length === 3, { what: 'three subscriptions' })
    expect(xpub.subscriptions.sort()).toEqual(prefixes.map((prefix) => `\x01${prefix}`).sort())
    const start = await warmUp(() => xpub.publish(['warm-up']), frames)
    for (const topic of ['sensors.1', 'other.2', 'a|b3', 'a4', 'sensors.5']) xpub.publish([topic])
    await waitFor(() => frames().length >= start + 3, { what: 'the matching messages' })
    // Give a wrongly sent message the time to arrive.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(frames().slice(start)).toEqual([['sensors.1'], ['a|b3'], ['sensors.5']])
  })

  it('takes a CURVE publisher, tagging its messages with its key', async () => {
    const crypto = createCurveCrypto()
    const server = zmq.curveKeyPair()
    const harness = await listen({
      socketType: createSub(),
      createMechanism: () =>
        new CurveServerMechanism({
          secretKey: z85Decode(server.secretKey),
          socketType: 'SUB',
          crypto,
          cookieKeys: new CookieKeyring({ crypto }),
        }),
    })
    const frames = () => harness.received.map((message) => message.frames.map(text))
    const pub = await pythonPublisher(`tcp://127.0.0.1:${harness.port}`, {
      curveServerKey: server.publicKey,
    })
    const start = await warmUp(() => pub.publish(['warm-up']), frames)
    pub.publish(['boxed'])
    await waitFor(() => frames().length > start, { what: 'the boxed message' })
    expect(frames()[start]).toEqual(['boxed'])
    expect(harness.received[start]?.mechanism).toBe('CURVE')
    expect(harness.received[start]?.publicKey?.length).toBe(32)
  })

  it('takes an npm zeromq Publisher, and refuses a PUSH with ERROR "Invalid socket type"', async () => {
    const harness = await listen({
      socketType: createSub(),
      createMechanism: () => new NullMechanism('SUB'),
    })
    const frames = () => harness.received.map((message) => message.frames.map(text))
    const publisher = new zmq.Publisher({ linger: 0 })
    closers.push(() => publisher.close())
    publisher.connect(`tcp://127.0.0.1:${harness.port}`)
    const start = await warmUp(() => void publisher.send(['warm-up']).catch(() => {}), frames)
    await publisher.send(['from', 'zeromq'])
    await waitFor(() => frames().length > start, { what: 'the published message' })
    expect(frames()[start]).toEqual(['from', 'zeromq'])

    const push = new zmq.Push({ linger: 0 })
    closers.push(() => push.close())
    push.connect(`tcp://127.0.0.1:${harness.port}`)
    await waitFor(() => (harness.pull.failed.get('INVALID_SOCKET_TYPE') ?? 0) > 0, {
      what: 'the PUSH refused',
    })
    const refusal = harness.logs.lines.find((line) => line.code === 'INVALID_SOCKET_TYPE')
    expect(JSON.stringify(refusal)).toContain('PUSH cannot talk to SUB')
  })
})

describe('a SUB listener with a ZMTP 3.0 publisher', () => {
  it('sends each subscription as a message, 0x01 and the prefix, after its READY', async () => {
    const harness = await listen({
      socketType: createSub([bytes('x'), new Uint8Array(0)]),
      createMechanism: () => new NullMechanism('SUB'),
    })
    const socket = connect(harness.port, '127.0.0.1')
    closers.push(() => socket.destroy())
    const decoder = new FrameDecoder({ maxFrameSize: 1 << 16 })
    const frames: Array<{ command: boolean; more: boolean; body: Uint8Array }> = []
    let greeting = new Uint8Array(0)
    socket.on('data', (chunk: Buffer) => {
      let rest = new Uint8Array(chunk)
      if (greeting.length < GREETING_SIZE) {
        const take = Math.min(GREETING_SIZE - greeting.length, rest.length)
        greeting = new Uint8Array([...greeting, ...rest.subarray(0, take)])
        rest = rest.subarray(take)
      }
      for (const frame of decoder.push(rest)) frames.push({ ...frame, body: frame.body.slice() })
    })
    socket.write(encodeGreeting({ major: 3, minor: 0, mechanism: 'NULL', asServer: false }))
    socket.write(encodeReady([['Socket-Type', 'PUB']]))
    await waitFor(() => frames.length >= 3, { what: 'READY and two subscriptions' })
    expect(greeting[10]).toBe(3)
    expect(frames[0]?.command).toBe(true)
    expect(decodeCommand(frames[0]?.body as Uint8Array).name).toBe('READY')
    expect(frames.slice(1)).toEqual([
      { command: false, more: false, body: Uint8Array.of(0x01, ...bytes('x')) },
      { command: false, more: false, body: Uint8Array.of(0x01) },
    ])
    // And it publishes: a message frame from the PUB is stored as the PULL side stores one.
    socket.write(Uint8Array.of(0x00, 5, ...bytes('hello')))
    await waitFor(() => harness.received.length === 1, { what: 'the raw message' })
    expect(harness.received[0]?.frames.map(text)).toEqual(['hello'])
  })

  it('drops what a publisher sends beyond its subscriptions, as libzmq’s SUB does', async () => {
    const harness = await listen({
      socketType: createSub([bytes('keep.')]),
      createMechanism: () => new NullMechanism('SUB'),
    })
    const socket = connect(harness.port, '127.0.0.1')
    closers.push(() => socket.destroy())
    let heard = 0
    socket.on('data', (chunk: Buffer) => {
      heard += chunk.length
    })
    socket.write(encodeGreeting({ major: 3, minor: 0, mechanism: 'NULL', asServer: false }))
    socket.write(encodeReady([['Socket-Type', 'PUB']]))
    // Its greeting, READY and subscription: the handshake is done.
    await waitFor(() => heard > GREETING_SIZE, { what: 'the SUB’s READY' })
    // A publisher that ignores the subscription: only the matching messages are delivered.
    for (const topic of ['drop.1', 'keep.2', 'kee', 'keep.3']) {
      socket.write(Uint8Array.of(0x00, topic.length, ...bytes(topic)))
    }
    await waitFor(() => harness.received.length === 2, { what: 'the two kept' })
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(harness.received.map((message) => message.frames.map(text))).toEqual([
      ['keep.2'],
      ['keep.3'],
    ])
  })
})

describe('listener options', () => {
  const parse = (raw: string) => {
    const config = parseConfig(
      { listener: [raw], workerUrl: 'ws://127.0.0.1:9', ingestToken: 'unused' },
      {},
    )
    return config.listeners[0]
  }

  it('reads socket= and subscribe=, percent-decoding each prefix', () => {
    expect(parse('tcp://127.0.0.1:7777')).toMatchObject({ socket: 'pull', subscribe: [] })
    const sub = parse('tcp://127.0.0.1:7777,socket=SUB,subscribe=a%7Cb|%00%FF|sensors.|')
    expect(sub?.socket).toBe('sub')
    expect(sub?.subscribe).toEqual([
      bytes('a|b'),
      Uint8Array.of(0x00, 0xff),
      bytes('sensors.'),
      new Uint8Array(0),
    ])
  })

  it('refuses another socket, a prefix without a SUB, and a broken percent escape', () => {
    expect(() => parse('tcp://127.0.0.1:7777,socket=dealer')).toThrow(
      /expected socket=pull or socket=sub or socket=router, got "dealer"/,
    )
    expect(() => parse('tcp://127.0.0.1:7777,subscribe=a')).toThrow(/socket=sub listeners only/)
    expect(parse('tcp://127.0.0.1:7777,socket=router')).toMatchObject({ socket: 'router' })
    expect(parse('tcp://127.0.0.1:7777,socket=router,routingId=a%7Cb')?.routingId).toEqual(
      bytes('a|b'),
    )
    expect(() => parse('tcp://127.0.0.1:7777,routingId=a')).toThrow(/socket=router listeners only/)
    for (const bad of ['', '%00x', 'x'.repeat(256)]) {
      expect(() => parse(`tcp://127.0.0.1:7777,socket=router,routingId=${bad}`)).toThrow(
        /1 to 255 octets, the first not zero/,
      )
    }
    expect(() => parse('tcp://127.0.0.1:7777,socket=router,subscribe=a')).toThrow(
      /socket=sub listeners only/,
    )
    expect(() => parse('tcp://127.0.0.1:7777,socket=sub,subscribe=%G1')).toThrow(
      /"%G1" is not % and two hex digits/,
    )
  })
})

describe('a pyzmq PUB through the bridge to the Worker', () => {
  let worker: WranglerDev | undefined
  let bridge: BridgeProcess | undefined
  afterEach(async () => {
    await bridge?.stop()
    await worker?.stop()
    bridge = undefined
    worker = undefined
  })

  it('stores what it publishes, read back over HTTP', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `sub-${Date.now()}`
    bridge = await startBridgeProcess([
      '--listener',
      `tcp://127.0.0.1:0,socket=sub,channel=${channel}`,
      '--worker-url',
      `ws://127.0.0.1:${port}`,
      '--ingest-token',
      TEST_INGEST_TOKEN,
      '--batch-delay',
      '5',
    ])
    const pub = await pythonPublisher(`tcp://127.0.0.1:${bridge.port}`)
    const httpUrl = worker.httpUrl
    // A PUB drops what it publishes before the subscription arrives (RFC 29): warm up first.
    await waitFor(
      async () => {
        const stored = await readChannel(httpUrl, channel)
        if (stored.some((frames) => frames[0] === 'warm-up')) return true
        pub.publish(['warm-up'])
        return false
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'a first published message stored' },
    )
    for (const n of [1, 2, 3]) pub.publish(['reading', `${n}`])
    const readings = await waitFor(
      async () => {
        const all = await readChannel(httpUrl, channel)
        const found = all.filter((frames) => frames[0] === 'reading')
        return found.length === 3 ? found : undefined
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the three readings stored' },
    )
    expect(readings).toEqual([
      ['reading', '1'],
      ['reading', '2'],
      ['reading', '3'],
    ])
    expect(bridge.lines.find((line) => line.msg === 'listening')).toMatchObject({ socket: 'sub' })
  }, 120_000)
})
