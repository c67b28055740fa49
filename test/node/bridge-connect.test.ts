// The bridge's PULL dialling PUSH peers that bind (`--connect`): NULL and CURVE, reconnecting
// after the peer goes away, and giving up when the peer is not a PUSH.

import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type RunningBridge, startBridge } from '../../node-bridge/bridge/bridge'
import { PreauthBudget } from '../../node-bridge/bridge/preauth-budget'
import type { PullSocket, PullSocketOptions } from '../../node-bridge/bridge/pull-socket'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { freePort } from '../support/channel-reader'
import { createMemoryLogger } from '../support/memory-logger'
import { listenPull } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const closers: Array<() => unknown> = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

function bindPush(port: number, options: Partial<zmq.Push> = {}): Promise<zmq.Push> {
  const push = new zmq.Push({ linger: 0, ...options } as zmq.SocketOptions<zmq.Push>)
  closers.push(() => push.close())
  return push.bind(`tcp://127.0.0.1:${port}`).then(() => push)
}

const text = (frames: Uint8Array[]) => frames.map((frame) => new TextDecoder().decode(frame))

describe('PullSocket.connect', () => {
  it('dials a binding libzmq PUSH, and dials again when it comes back', async () => {
    const port = await freePort()
    // The PULL side binds nothing: port 0 is never listened on.
    const { pull, received } = await dialler()
    pull.connect('127.0.0.1', port)
    let push = await bindPush(port)
    await push.send(['first', ''])
    await waitFor(() => received.length === 1, { what: 'first message' })
    expect(text(received[0]?.frames ?? [])).toEqual(['first', ''])

    push.close()
    await new Promise((resolve) => setTimeout(resolve, 300))
    push = await bindPush(port)
    await push.send('second')
    await waitFor(() => received.length === 2, { what: 'message after the peer returned' })
    expect(text(received[1]?.frames ?? [])).toEqual(['second'])
  })

  it('dials again after a message over its limit, which the channel may have lowered', async () => {
    const port = await freePort()
    const { pull, received, logs } = await dialler({ maxMessageSize: 1000 })
    pull.connect('127.0.0.1', port)
    const push = await bindPush(port)
    await push.send(new Uint8Array(2000))
    await waitFor(() => logs.lines.some((line) => line.code === 'FRAME_TOO_LARGE'), {
      what: 'the large message refused',
    })
    await push.send('small')
    await waitFor(() => received.length === 1, { what: 'the next message, after a redial' })
    expect(text(received[0]?.frames ?? [])).toEqual(['small'])
    expect(logs.lines.filter((line) => line.msg === 'connected').length).toBeGreaterThanOrEqual(2)
  })

  it('dials again while the pre-handshake budget is full, and gets through once it is not', async () => {
    const port = await freePort()
    const budget = new PreauthBudget(1000)
    // Handshakes of others (a flood on a public listener) hold all of it.
    budget.tryReserve(1000)
    const { pull, received, logs } = await dialler({ preauthBudget: budget })
    pull.connect('127.0.0.1', port)
    const push = await bindPush(port)
    // A libzmq PUSH's send waits for a peer: it resolves once the bridge gets through.
    const sent = push.send('through')
    await waitFor(() => logs.lines.filter((line) => line.msg === 'connected').length >= 2, {
      what: 'a second attempt while the budget is full',
    })
    expect(received).toHaveLength(0)
    budget.release(1000)
    await sent
    await waitFor(() => received.length === 1, { what: 'the message once the budget has room' })
    expect(text(received[0]?.frames ?? [])).toEqual(['through'])
  })

  it('stops dialling a peer that is not a PUSH, as libzmq would', async () => {
    const port = await freePort()
    const dealer = new zmq.Dealer({ linger: 0 })
    closers.push(() => dealer.close())
    await dealer.bind(`tcp://127.0.0.1:${port}`)
    const { pull, logs } = await dialler()
    pull.connect('127.0.0.1', port)
    await waitFor(() =>
      logs.lines.find((line) => String(line.msg).startsWith('the peer refused us')),
    )
    // libzmq may close before its READY says DEALER (it reads ours first, when load delays its
    // own): a plain close, which is redialled, as libzmq redials it. The refusal ends the dialling.
    const connected = () => logs.lines.filter((line) => line.msg === 'connected').length
    const before = connected()
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(connected()).toBe(before)
  })
})

async function dialler(options: Partial<PullSocketOptions> = {}) {
  const harness = await listenPull({
    createMechanism: () => new NullMechanism('PULL', { dialled: true }),
    ...options,
  })
  closers.push(() => (harness.pull as PullSocket).close())
  return harness
}

describe('zmq-edge bridge --connect', () => {
  let bridge: RunningBridge | undefined
  afterEach(async () => {
    await bridge?.stop(50)
    bridge = undefined
  })

  it('relays from a binding CURVE PUSH, with the bridge as the CURVE server', async () => {
    const server = zmq.curveKeyPair()
    const client = zmq.curveKeyPair()
    const port = await freePort()
    const config = parseConfig(
      {
        connect: [`tcp://127.0.0.1:${port},mechanism=CURVE,channel=dialled`],
        curveSecretKey: server.secretKey,
        workerUrl: 'ws://127.0.0.1:9', // absent: messages wait in the relay, counted
        ingestToken: 't',
      },
      {},
    )
    expect(config.listeners).toEqual([])
    const logs = createMemoryLogger()
    bridge = await startBridge(config, logs.logger)
    const push = await bindPush(port, {
      curveServerKey: server.publicKey,
      curvePublicKey: client.publicKey,
      curveSecretKey: client.secretKey,
    })
    for (let index = 0; index < 10; index++) await push.send(String(index))
    await waitFor(() => bridge?.relays.get('dialled')?.counters.received === 10)
    const handshake = logs.lines.find((line) => line.msg === 'handshake succeeded')
    expect(handshake).toMatchObject({ mechanism: 'CURVE', publicKey: client.publicKey })
  })

  it('dials a binding libzmq PUB as a SUB, subscribed to the prefix given', async () => {
    const port = await freePort()
    const config = parseConfig(
      {
        connect: [`tcp://127.0.0.1:${port},socket=sub,subscribe=keep.,channel=dialled`],
        workerUrl: 'ws://127.0.0.1:9', // absent: messages wait in the relay, counted
        ingestToken: 't',
      },
      {},
    )
    bridge = await startBridge(config, createMemoryLogger().logger)
    const publisher = new zmq.Publisher({ linger: 0 })
    closers.push(() => publisher.close())
    await publisher.bind(`tcp://127.0.0.1:${port}`)
    const relay = () => bridge?.relays.get('dialled')
    // A PUB drops all before the subscription arrives (RFC 29): publish until one is kept.
    await waitFor(
      () => {
        if ((relay()?.counters.received ?? 0) > 0) return true
        void publisher.send('keep.warm-up').catch(() => {})
        return false
      },
      { timeoutMs: 15_000, intervalMs: 50, what: 'a first message through the subscription' },
    )
    const before = relay()?.counters.received ?? 0
    for (const topic of ['drop.1', 'keep.2', 'drop.3', 'keep.4']) await publisher.send(topic)
    await waitFor(() => relay()?.counters.received === before + 2, { what: 'the two kept' })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(relay()?.counters.received).toBe(before + 2)
  })
})
