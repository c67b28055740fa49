import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type BridgeProcess, startBridgeProcess } from '../support/bridge-process'
import { freePort, readChannel } from '../support/channel-reader'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

let worker: WranglerDev | undefined
let bridge: BridgeProcess | undefined
const pushes: zmq.Push[] = []

afterEach(async () => {
  for (const push of pushes.splice(0)) push.close()
  await bridge?.stop('SIGKILL')
  bridge = undefined
  await worker?.stop()
  worker = undefined
})

function bridgeArgs(port: number, channel: string, extra: string[] = []): string[] {
  return [
    '--bind',
    'tcp://127.0.0.1:0',
    '--channel',
    channel,
    '--worker-url',
    `ws://127.0.0.1:${port}`,
    '--ingest-token',
    TEST_INGEST_TOKEN,
    '--reconnect-initial',
    '50',
    '--reconnect-max',
    '500',
    ...extra,
  ]
}

function connectPush(port: number, options: Partial<zmq.Push> = {}): zmq.Push {
  const push = new zmq.Push({
    linger: 0,
    sendHighWaterMark: 100_000,
    ...options,
  } as zmq.SocketOptions<zmq.Push>)
  pushes.push(push)
  push.connect(`tcp://127.0.0.1:${port}`)
  return push
}

/** Asserts the channel holds exactly `count` messages `[client, 0..count-1]`, once each, in order. */
async function expectExactlyOnce(httpUrl: string, channel: string, client: string, count: number) {
  const stored = await waitFor(
    async () => {
      const messages = await readChannel(httpUrl, channel)
      return messages.length >= count ? messages : undefined
    },
    { timeoutMs: 60_000, intervalMs: 250, what: `${count} messages stored` },
  )
  // A little longer: a duplicate would show up as extra rows.
  await new Promise((resolve) => setTimeout(resolve, 500))
  const final = await readChannel(httpUrl, channel)
  expect(final.length).toBe(stored.length)
  expect(final).toEqual(Array.from({ length: count }, (_, index) => [client, String(index)]))
}

describe('the relay loses nothing', () => {
  it('stores a 20,000-message stream exactly once when the Worker dies mid-stream and returns 5 s later', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `restart-${Date.now()}`
    bridge = await startBridgeProcess(bridgeArgs(port, channel))
    const push = connectPush(bridge.port)

    // A steady stream (about 2,000 msg/s) that runs across the outage.
    const total = 20_000
    let sent = 0
    const sending = (async () => {
      for (let index = 0; index < total; index++) {
        await push.send(['c', String(index)])
        sent = index + 1
        if (index % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 10))
      }
    })()
    await waitFor(async () => (await readChannel(worker?.httpUrl ?? '', channel)).length > 3000, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: 'the stream to reach the Worker',
    })
    const persistDir = worker.persistDir
    // SIGKILL: batches in flight may be stored without their ack reaching the bridge.
    await worker.stop({ keepState: true, signal: 'SIGKILL' })
    worker = undefined
    const sentAtStop = sent
    await new Promise((resolve) => setTimeout(resolve, 5000))
    expect(sent).toBeGreaterThan(sentAtStop) // the bridge kept reading while the Worker was away
    worker = await startWranglerDev({ port, persistDir })
    await sending

    await expectExactlyOnce(worker.httpUrl, channel, 'c', total)
    expect(bridge.lines.some((line) => line.msg === 'relay disconnected')).toBe(true)
    expect(await bridge.stop('SIGTERM')).toBe(0)
    const stats = bridge.lines.filter((line) => line.msg === 'relay stats').at(-1)
    expect(stats).toMatchObject({ received: total, acked: total })
  }, 120_000)

  it('delivers what arrived while the Worker was not up yet', async () => {
    const port = await freePort()
    const channel = `late-${Date.now()}`
    bridge = await startBridgeProcess(bridgeArgs(port, channel))
    const push = connectPush(bridge.port)
    for (let index = 0; index < 2000; index++) await push.send(['early', String(index)])
    await waitFor(() => bridge?.lines.find((line) => line.msg === 'relay socket error'), {
      what: 'the bridge to try the absent Worker',
    })
    worker = await startWranglerDev({ port })
    await expectExactlyOnce(worker.httpUrl, channel, 'early', 2000)
  }, 90_000)

  it('pushes back over TCP when full, and delivers everything once the Worker is back', async () => {
    const port = await freePort()
    const channel = `pushback-${Date.now()}`
    bridge = await startBridgeProcess(bridgeArgs(port, channel, ['--hwm-messages', '500']))
    // A small client high-water mark: once the bridge stops reading and TCP's buffers fill,
    // the client's queue fills and its sends wait.
    const push = connectPush(bridge.port, { sendHighWaterMark: 200 })
    const total = 3000
    const payload = 'x'.repeat(8192)
    let sent = 0
    const sending = (async () => {
      for (let index = 0; index < total; index++) {
        await push.send(['p', String(index), payload])
        sent = index + 1
      }
    })()
    await waitFor(() => bridge?.lines.find((line) => String(line.msg).startsWith('relay full')), {
      timeoutMs: 20_000,
      what: 'the relay to fill',
    })
    // Sends stall: the count stops moving well short of the total.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const stalledAt = sent
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect(sent).toBe(stalledAt)
    expect(sent).toBeLessThan(total)

    worker = await startWranglerDev({ port })
    await sending
    const stored = await waitFor(
      async () => {
        const messages = await readChannel(worker?.httpUrl ?? '', channel)
        return messages.length >= total ? messages : undefined
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'all messages stored' },
    )
    expect(stored.map((frames) => frames[1])).toEqual(
      Array.from({ length: total }, (_, index) => String(index)),
    )
    expect(bridge.lines.find((line) => String(line.msg).startsWith('relay drained'))).toBeDefined()
  }, 120_000)

  it('drains on SIGTERM: stores everything it read, then exits 0', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `drain-${Date.now()}`
    bridge = await startBridgeProcess(bridgeArgs(port, channel))
    const push = connectPush(bridge.port)
    for (let index = 0; index < 5000; index++) await push.send(['d', String(index)])
    // Queued by libzmq is not read by the bridge: stop it once traffic is flowing through.
    const workerUrl = worker.httpUrl
    await waitFor(async () => (await readChannel(workerUrl, channel)).length > 0, {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: 'the first messages stored',
    })
    const code = await bridge.stop('SIGTERM')
    expect(code).toBe(0)
    const stats = bridge.lines.filter((line) => line.msg === 'relay stats').at(-1)
    expect(stats).toBeDefined()
    const received = Number(stats?.received)
    expect(received).toBeGreaterThan(0)
    expect(stats?.acked).toBe(received)
    expect(
      bridge.lines.find((line) => line.msg === 'stopped; every message was acknowledged'),
    ).toBeDefined()
    const stored = await readChannel(worker.httpUrl, channel)
    expect(stored).toEqual(Array.from({ length: received }, (_, index) => ['d', String(index)]))
  }, 90_000)

  it('stores every batch of a restart with a fixed --bridge-id and no spool', async () => {
    // Run 1 stores 3 messages and stops; run 2, the same id, sends 2. With deduplication by
    // bridge id alone, run 2's batches 1 and 2 were answered DUPLICATE and lost.
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `fixed-id-${Date.now()}`
    const args = bridgeArgs(port, channel, ['--bridge-id', 'edge-vm-1'])
    for (const [run, count] of [
      ['run1', 3],
      ['run2', 2],
    ] as const) {
      bridge = await startBridgeProcess(args)
      const push = connectPush(bridge.port)
      for (let index = 0; index < count; index++) {
        await push.send([run, String(index)])
        // One batch each: the numbers 1, 2, 3 of run 1 are the ones run 2 uses again.
        await waitFor(() => bridge?.lines.some((line) => line.msg === 'relay connected') === true, {
          what: 'connected',
        })
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      push.close()
      expect(await bridge.stop('SIGTERM')).toBe(0)
      const stats = bridge.lines.filter((line) => line.msg === 'relay stats').at(-1)
      expect(stats).toMatchObject({ received: count, acked: count, duplicates: 0 })
      expect(bridge.lines.filter((line) => line.level === 50)).toEqual([])
    }
    expect(await readChannel(worker.httpUrl, channel)).toEqual([
      ['run1', '0'],
      ['run1', '1'],
      ['run1', '2'],
      ['run2', '0'],
      ['run2', '1'],
    ])
  }, 90_000)
})

describe('a channel that refuses batches', () => {
  it('keeps the socket, backs off, says so once and in /readyz, and delivers once there is room', async () => {
    const port = await freePort()
    worker = await startWranglerDev({
      port,
      vars: { RETENTION_MAX_MESSAGES: '100', OVERFLOW_POLICY: 'block' },
    })
    const channel = `full-${Date.now()}`
    // A consumer group (default, created by a first pull) that has acked nothing: under `block`
    // its messages are kept, and the channel fills. (A channel without groups drops its oldest.)
    const created = await fetch(`${worker.httpUrl}/v1/channels/${channel}/pull`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_READ_TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(created.status).toBe(200)
    bridge = await startBridgeProcess(
      bridgeArgs(port, channel, ['--metrics-port', '0', '--batch-messages', '20']),
    )
    const metrics = String(
      bridge.lines.find((line) => line.msg === 'serving metrics, /healthz and /readyz')?.metrics,
    ).replace(/\/metrics$/, '')
    const push = connectPush(bridge.port)
    for (let index = 0; index < 150; index++) await push.send(['f', String(index)])
    const httpUrl = worker.httpUrl
    const readiness = await waitFor(
      async () => {
        const response = await fetch(`${metrics}/readyz`)
        const body = (await response.json()) as { blockedByChannel: string[] }
        return response.status === 503 && body.blockedByChannel.includes(channel)
          ? (body as unknown as Record<string, unknown>)
          : undefined
      },
      { timeoutMs: 30_000, what: '/readyz to say blocked by the channel' },
    )
    expect(readiness).toMatchObject({
      ready: false,
      notConnected: [],
      blockedByChannel: [channel],
      channels: { [channel]: { connected: true, blocked: { code: 'CHANNEL_FULL' } } },
    })
    // Batches of up to 20 (fewer when the 5 ms timer seals one): stored until one did not fit.
    const first = (await readChannel(httpUrl, channel)).length
    expect(first).toBeGreaterThan(0)
    expect(first).toBeLessThanOrEqual(100)
    // Five seconds of a full channel: one socket, one error line, a handful of retries.
    await new Promise((resolve) => setTimeout(resolve, 5000))
    const lines = bridge.lines
    expect(lines.filter((line) => line.msg === 'relay connected')).toHaveLength(1)
    expect(lines.filter((line) => line.msg === 'relay disconnected')).toEqual([])
    expect(lines.filter((line) => line.level === 50).map((line) => line.msg)).toEqual([
      'the channel refused a batch; it stays queued and is sent again after a backoff',
    ])
    const text = await (await fetch(`${metrics}/metrics`)).text()
    const refusals = Number(
      new RegExp(`zmq_edge_relay_refusals_total\\{channel="${channel}"\\} (\\d+)`).exec(text)?.[1],
    )
    // Backoff from 50 ms doubling to 500 ms (the flags): about a dozen tries in 5 s, not 50.
    expect(refusals).toBeGreaterThan(1)
    expect(refusals).toBeLessThan(25)
    expect(text).toContain(`zmq_edge_relay_blocked{channel="${channel}"} 1`)

    // A consumer acks what is stored: room is made, the rest follows.
    const headers = {
      authorization: `Bearer ${TEST_READ_TOKEN}`,
      'content-type': 'application/json',
    }
    const pulled = (await (
      await fetch(`${httpUrl}/v1/channels/${channel}/pull`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ batchSize: 100 }),
      })
    ).json()) as { messages: { leaseId: string }[] }
    expect(pulled.messages).toHaveLength(first)
    const acked = await fetch(`${httpUrl}/v1/channels/${channel}/ack`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ acks: pulled.messages.map((message) => message.leaseId) }),
    })
    expect(acked.status).toBe(200)
    await waitFor(
      async () => {
        const messages = await readChannel(httpUrl, channel)
        return messages.at(-1)?.[1] === '149' ? messages : undefined
      },
      { timeoutMs: 30_000, what: 'the last 50 stored' },
    )
    await waitFor(async () => (await fetch(`${metrics}/readyz`)).status === 200, {
      what: '/readyz 200 again',
    })
    expect(
      bridge.lines.find((line) => line.msg === 'the channel accepts batches again'),
    ).toMatchObject({
      code: 'CHANNEL_FULL',
    })
  }, 90_000)

  it('announces its message limit: the bridge closes a sender of a larger message, others flow', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port, vars: { MAX_MESSAGE_BYTES: '1000' } })
    const channel = `limit-${Date.now()}`
    bridge = await startBridgeProcess(bridgeArgs(port, channel))
    await waitFor(
      () => bridge?.lines.find((line) => String(line.msg).startsWith('the channel stores smaller')),
      {
        what: 'the limit learnt from the WELCOME',
      },
    )
    expect(
      bridge.lines.find((line) => String(line.msg).startsWith('the channel stores smaller')),
    ).toMatchObject({
      maxMessageBytes: 1000,
      configured: 16 * 1024 * 1024,
    })
    const big = connectPush(bridge.port)
    const small = connectPush(bridge.port)
    await small.send(['small', 'x'.repeat(990)]) // 995 octets: fits
    await big.send(['big', 'x'.repeat(1000)]) // 1,003 octets: over
    await small.send(['small', 'after'])
    await waitFor(
      () =>
        bridge?.lines.find(
          (line) =>
            line.msg === 'connection closed by the bridge' && line.code === 'FRAME_TOO_LARGE',
        ),
      { what: 'the big sender closed' },
    )
    const httpUrl = worker.httpUrl
    const stored = await waitFor(
      async () => {
        const messages = await readChannel(httpUrl, channel)
        return messages.length >= 2 ? messages : undefined
      },
      { what: 'the small messages stored' },
    )
    expect(stored.map((frames) => [frames[0], frames[1]?.length])).toEqual([
      ['small', 990],
      ['small', 5],
    ])
    // Nothing was refused or rejected by the channel: the limit held at the socket.
    expect(bridge.lines.filter((line) => line.level === 50)).toEqual([])
  }, 60_000)
})
