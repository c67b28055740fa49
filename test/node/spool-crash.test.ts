// kill -9 of the bridge, with real processes: the bridge (`zmq-edge bridge`), the Worker and its
// Durable Object under `wrangler dev`, and a libzmq PUSH. With `--spool-dir`, every message the
// killed bridge had read is stored once, in order, after a restart; without it, the messages it
// held unacknowledged are lost (the README's "What a crash can lose").
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type BridgeProcess, startBridgeProcess } from '../support/bridge-process'
import { freePort, readChannel } from '../support/channel-reader'
import { waitFor } from '../support/wait'
import { startWranglerDev, TEST_INGEST_TOKEN, type WranglerDev } from '../support/wrangler-dev'

let worker: WranglerDev | undefined
const bridges: BridgeProcess[] = []
const pushes: zmq.Push[] = []
const dirs: string[] = []

afterEach(async () => {
  for (const push of pushes.splice(0)) push.close()
  for (const bridge of bridges.splice(0)) await bridge.stop('SIGKILL')
  await worker?.stop()
  worker = undefined
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

async function startBridge(workerPort: number, channel: string, extra: string[] = []) {
  const bridge = await startBridgeProcess([
    '--bind',
    'tcp://127.0.0.1:0',
    '--channel',
    channel,
    '--worker-url',
    `ws://127.0.0.1:${workerPort}`,
    '--ingest-token',
    TEST_INGEST_TOKEN,
    '--reconnect-initial',
    '50',
    '--reconnect-max',
    '500',
    // Counters every 50 ms: the test reads `received` from them.
    '--stats-interval',
    '50',
    ...extra,
  ])
  bridges.push(bridge)
  return bridge
}

/** The latest `received` counter the bridge logged. */
function received(bridge: BridgeProcess): number {
  const stats = bridge.lines.filter((line) => line.msg === 'relay stats').at(-1)
  return Number(stats?.received ?? 0)
}

function connectPush(port: number): zmq.Push {
  const push = new zmq.Push({ linger: 0, sendHighWaterMark: 100_000 })
  pushes.push(push)
  push.connect(`tcp://127.0.0.1:${port}`)
  return push
}

/** Sends `[client, from..to-1]` at about 2,000 messages/s. */
async function stream(
  push: zmq.Push,
  client: string,
  from: number,
  to: number,
  onSent = (_: number) => {},
) {
  for (let index = from; index < to; index++) {
    await push.send([client, String(index)])
    onSent(index + 1)
    if (index % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

async function waitStored(httpUrl: string, channel: string, count: number): Promise<string[][]> {
  return waitFor(
    async () => {
      const messages = await readChannel(httpUrl, channel)
      return messages.length >= count ? messages : undefined
    },
    { timeoutMs: 60_000, intervalMs: 250, what: `${count} messages stored` },
  )
}

const indices = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, index) => String(from + index))

describe('the spool as the operator meets it', () => {
  it('refuses to start with a --bridge-id other than the one its spool was written with', async () => {
    const spoolDir = mkdtempSync(join(tmpdir(), 'zmq-edge-crash-'))
    dirs.push(spoolDir)
    const port = await freePort() // no Worker: the bridge only has to start
    const first = await startBridge(port, 'pinned', [
      '--spool-dir',
      spoolDir,
      '--bridge-id',
      'edge-a',
    ])
    await first.stop('SIGKILL')
    const refused = startBridge(port, 'pinned', ['--spool-dir', spoolDir, '--bridge-id', 'edge-b'])
    await expect(refused).rejects.toThrow(/exited with 2[\s\S]*--bridge-id: is "edge-b".*"edge-a"/)
  }, 60_000)
})

describe('kill -9 of the bridge', () => {
  it('loses nothing it had read with --spool-dir: replayed under the same bridge id, stored once, in order', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `spool-${Date.now()}`
    const spoolDir = mkdtempSync(join(tmpdir(), 'zmq-edge-crash-'))
    dirs.push(spoolDir)
    const args = ['--spool-dir', spoolDir, '--spool-segment-bytes', '65536']
    const first = await startBridge(port, channel, args)
    const push = connectPush(first.port)

    // The Worker dies (SIGKILL) mid-stream: some stored batches never get their ack.
    const total = 6000
    const sending = stream(push, 's', 0, total)
    await waitStored(worker.httpUrl, channel, 1500)
    const persistDir = worker.persistDir
    await worker.stop({ keepState: true, signal: 'SIGKILL' })
    worker = undefined
    await sending
    // Every message was read (and so spooled) by the bridge, and thousands wait for an ack.
    await waitFor(() => received(first) === total, { timeoutMs: 30_000, what: 'all read' })
    await first.stop('SIGKILL')
    const bridgeId = first.lines.find((line) => line.msg === 'bridge started')?.bridgeId
    expect(bridgeId).toBeDefined()

    const second = await startBridge(port, channel, args)
    const replay = second.lines.find((line) => String(line.msg).startsWith('spool replayed'))
    expect(replay?.bridgeId).toBe(bridgeId)
    expect(Number(replay?.messages)).toBeGreaterThan(1000)
    worker = await startWranglerDev({ port, persistDir })

    const stored = await waitStored(worker.httpUrl, channel, total)
    await waitFor(
      () => second.lines.filter((line) => line.msg === 'relay stats').at(-1)?.queued === 0,
      { timeoutMs: 30_000, what: 'the replay acknowledged' },
    )
    const final = await readChannel(worker.httpUrl, channel)
    expect(final.length).toBe(stored.length)
    expect(final).toEqual(indices(0, total).map((index) => ['s', index]))
  }, 180_000)

  it('with --spool-dir, stores everything the bridge had counted as received when killed with the Worker up', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `spool-live-${Date.now()}`
    const spoolDir = mkdtempSync(join(tmpdir(), 'zmq-edge-crash-'))
    dirs.push(spoolDir)
    const args = ['--spool-dir', spoolDir, '--batch-delay', '20']
    const first = await startBridge(port, channel, args)
    const push = connectPush(first.port)
    let sent = 0
    const sending = stream(push, 'l', 0, 20_000, (count) => {
      sent = count
    })
    await waitStored(worker.httpUrl, channel, 2000)
    // Its count is logged every 50 ms, so it may lag what is stored already: kill once the log
    // says more was read than stored (the spool must bring those back).
    await waitFor(() => received(first) > 2000, { timeoutMs: 30_000, what: 'over 2,000 read' })
    await first.stop('SIGKILL')
    // Read before the kill, by the bridge's own count (a lower bound).
    const readBeforeKill = received(first)
    expect(readBeforeKill).toBeGreaterThan(2000)
    push.close()
    await sending.catch(() => undefined)

    const second = await startBridge(port, channel, args)
    await waitFor(
      () => second.lines.filter((line) => line.msg === 'relay stats').at(-1)?.queued === 0,
      { timeoutMs: 30_000, what: 'the replay acknowledged' },
    )
    const stored = await readChannel(worker.httpUrl, channel)
    // Once each, in order, nothing it had read missing; at most what was sent.
    expect(stored.length).toBeGreaterThanOrEqual(readBeforeKill)
    expect(stored.length).toBeLessThanOrEqual(sent)
    expect(stored).toEqual(indices(0, stored.length).map((index) => ['l', index]))
  }, 180_000)

  it('without a spool, loses the messages it held unacknowledged', async () => {
    const port = await freePort()
    worker = await startWranglerDev({ port })
    const channel = `nospool-${Date.now()}`
    const first = await startBridge(port, channel)
    const push = connectPush(first.port)
    await stream(push, 'n', 0, 500)
    await waitStored(worker.httpUrl, channel, 500)
    const persistDir = worker.persistDir
    await worker.stop({ keepState: true })
    worker = undefined
    await stream(push, 'n', 500, 1500)
    await waitFor(() => received(first) === 1500, { timeoutMs: 30_000, what: 'all read' })
    await first.stop('SIGKILL')

    const second = await startBridge(port, channel)
    worker = await startWranglerDev({ port, persistDir })
    const marker = connectPush(second.port)
    await marker.send(['after-restart'])
    const stored = await waitFor(
      async () => {
        const messages = await readChannel(worker?.httpUrl ?? '', channel)
        return messages.at(-1)?.[0] === 'after-restart' ? messages : undefined
      },
      { timeoutMs: 60_000, intervalMs: 250, what: 'the marker stored' },
    )
    // The 1,000 messages read while the Worker was away died with the process.
    expect(stored).toEqual([...indices(0, 500).map((index) => ['n', index]), ['after-restart']])
  }, 180_000)
})
