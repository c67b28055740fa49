// RelayClient against a WebSocket server that speaks the relay protocol with the real codec and
// enforces a small message limit, as a proxy in front of the Worker might: split on 1009,
// pressure on and off, in-order acks, reconnect with backoff.
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import {
  AckStatus,
  decodeRelayFrame,
  encodeAck,
  type RelayMessage,
} from '../../durable/relay-protocol'
import { RelayClient, type RelayClientOptions } from '../../node-bridge/relay/relay-client'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'

interface Receiver {
  url: string
  /** Stored message bodies, in order, once each (a resent batch is acked as a duplicate). */
  stored: string[]
  batchSizes: number[]
  close(): Promise<void>
}

/** A relay endpoint that stores batches like the Durable Object does, with a payload limit. */
async function startReceiver(maxPayload: number): Promise<Receiver> {
  const server = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload })
  await new Promise((resolve) => server.once('listening', resolve))
  const stored: string[] = []
  const batchSizes: number[] = []
  const lastSeq = new Map<string, number>()
  server.on('connection', (socket) => {
    // Over the limit, ws closes with 1009 and reports the error here.
    socket.on('error', () => undefined)
    socket.on('message', (data: Buffer) => {
      const frame = decodeRelayFrame(new Uint8Array(data))
      if (frame.kind !== 'batch') return
      batchSizes.push(data.length)
      if (frame.batchSeq <= (lastSeq.get(frame.bridgeId) ?? 0)) {
        socket.send(
          encodeAck({
            batchSeq: frame.batchSeq,
            status: AckStatus.DUPLICATE,
            firstSeq: 0,
            lastSeq: 0,
          }),
        )
        return
      }
      lastSeq.set(frame.bridgeId, frame.batchSeq)
      const first = stored.length + 1
      for (const message of frame.messages)
        stored.push(Buffer.from(message.frames[0] ?? []).toString())
      socket.send(
        encodeAck({
          batchSeq: frame.batchSeq,
          status: AckStatus.STORED,
          firstSeq: first,
          lastSeq: stored.length,
        }),
      )
    })
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `ws://127.0.0.1:${port}`,
    stored,
    batchSizes,
    close: () =>
      new Promise((resolve) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resolve())
      }),
  }
}

function message(text: string, padding = 0): RelayMessage {
  return {
    receivedAt: Date.now(),
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:1',
    frames: [new TextEncoder().encode(text), new Uint8Array(padding)],
  }
}

const clients: RelayClient[] = []
const receivers: Receiver[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.stop()
  for (const receiver of receivers.splice(0)) await receiver.close()
})

function relay(url: string, options: Partial<RelayClientOptions> = {}) {
  const logs = createMemoryLogger()
  const client = new RelayClient({
    workerUrl: url,
    channel: 'test',
    ingestToken: 't',
    bridgeId: 'bridge-test',
    maxBatchMessages: 1000,
    maxBatchBytes: 4 * 1024 * 1024,
    flushDelayMs: 5,
    maxInFlightBatches: 16,
    hwmMessages: 100_000,
    hwmBytes: 256 * 1024 * 1024,
    reconnectInitialMs: 20,
    reconnectMaxMs: 200,
    logger: logs.logger,
    ...options,
  })
  clients.push(client)
  return { client, logs }
}

describe('RelayClient', () => {
  it('splits batches the receiver refuses as too big (1009) instead of looping', async () => {
    const receiver = await startReceiver(64 * 1024)
    receivers.push(receiver)
    const { client } = relay(receiver.url)
    // 100 messages of 4 KiB: one 400 KiB batch, over the 64 KiB limit.
    for (let index = 0; index < 100; index++) client.enqueue(message(String(index), 4096))
    client.start()
    await waitFor(() => receiver.stored.length === 100, { what: 'every message stored' })
    expect(receiver.stored).toEqual(Array.from({ length: 100 }, (_, index) => String(index)))
    expect(client.counters.splits).toBeGreaterThan(0)
    expect(Math.max(...receiver.batchSizes)).toBeLessThanOrEqual(64 * 1024)
    await waitFor(() => client.unacknowledged === 0, { what: 'all acked' })
  })

  it('reports pressure at the high-water mark and relief below half of it', async () => {
    const changes: boolean[] = []
    const receiver = await startReceiver(1024 * 1024)
    receivers.push(receiver)
    const live = relay(receiver.url, { hwmMessages: 10, onPressure: (full) => changes.push(full) })
    for (let index = 0; index < 9; index++) live.client.enqueue(message(String(index)))
    expect(live.client.full).toBe(false)
    live.client.enqueue(message('9'))
    expect(live.client.full).toBe(true)
    expect(changes).toEqual([true])
    live.client.start()
    await waitFor(() => changes.length === 2, { what: 'relief' })
    expect(changes).toEqual([true, false])
    expect(live.client.counters.pushbackMs).toBeGreaterThanOrEqual(0)
  })

  it('backs off between failed connection attempts, up to the maximum', async () => {
    const { client, logs } = relay('ws://127.0.0.1:9', {
      reconnectInitialMs: 20,
      reconnectMaxMs: 160,
    })
    client.start()
    await waitFor(() => client.counters.reconnects >= 6, { timeoutMs: 5000, what: 'six attempts' })
    const times = logs.lines
      .filter((line) => line.msg === 'relay socket error')
      .map((line) => Number(line.time))
    const gaps = times.slice(1).map((time, index) => time - (times[index] as number))
    // Steps 20, 40, 80, 160, 160 ms, each waited at least half: the later gaps are longer.
    expect(gaps.length).toBeGreaterThanOrEqual(5)
    expect(Math.max(...gaps.slice(-2))).toBeGreaterThanOrEqual(80)
    expect(Math.max(...gaps)).toBeLessThan(1000)
  })
})
