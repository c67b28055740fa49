// End to end with real components: a libzmq PUSH (the `zeromq` package) → the bridge over TCP →
// WebSocket → the Worker and its Durable Object under `wrangler dev` (workerd, SQLite) → HTTP.

import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type RunningBridge, startBridge } from '../../node-bridge/bridge/bridge'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import type { ApiInlineMessage } from '../../shared/api-types'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

/** What these small messages come as: with their frames. */
type ApiMessage = ApiInlineMessage

let worker: WranglerDev
let bridge: RunningBridge
let push: zmq.Push
const channel = `e2e-${Date.now()}`
const secureChannel = `${channel}-curve`
const server = zmq.curveKeyPair()
const allowed = zmq.curveKeyPair()
const stranger = zmq.curveKeyPair()
let allowFile: string

beforeAll(async () => {
  worker = await startWranglerDev()
  allowFile = join(mkdtempSync(join(tmpdir(), 'zmq-edge-e2e-')), 'allowed-clients')
  writeFileSync(allowFile, `# clients allowed on the CURVE listener\n${allowed.publicKey}\n`)
  const config = parseConfig(
    {
      listener: [
        `tcp://127.0.0.1:0,mechanism=NULL,channel=${channel}`,
        `tcp://127.0.0.1:0,mechanism=CURVE,channel=${secureChannel}`,
      ],
      curveSecretKey: server.secretKey,
      curveAllowFile: allowFile,
      workerUrl: worker.wsUrl,
      ingestToken: TEST_INGEST_TOKEN,
    },
    {},
  )
  bridge = await startBridge(config, createMemoryLogger('warn').logger)
  push = new zmq.Push({ linger: 0, sendHighWaterMark: 100_000 })
  push.connect(`tcp://127.0.0.1:${bridge.address.port}`)
}, 90_000)

afterAll(async () => {
  for (const socket of curveSockets) socket.close()
  push?.close()
  await bridge?.stop(2000)
  await worker?.stop()
})

async function readAll(after = 0, from = channel): Promise<ApiMessage[]> {
  const messages: ApiMessage[] = []
  let cursor = after
  for (;;) {
    const response = await fetch(
      `${worker.httpUrl}/v1/channels/${from}/messages?after=${cursor}&limit=1000`,
      { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
    )
    expect(response.status).toBe(200)
    const body = (await response.json()) as {
      channel: string
      messages: ApiMessage[]
      next: number
    }
    expect(body.channel).toBe(from)
    if (body.messages.length === 0) return messages
    messages.push(...body.messages)
    cursor = body.next
  }
}

const curveSockets: zmq.Push[] = []

const decode = (frames: string[]) =>
  frames.map((frame) => new Uint8Array(Buffer.from(frame, 'base64')))

describe('PUSH → bridge → Worker → Durable Object → HTTP', () => {
  it('returns exactly the bytes that were sent, with their peer and receive time', async () => {
    const all = Uint8Array.from({ length: 256 }, (_, index) => index)
    const big = new Uint8Array(1024 * 1024).map((_, index) => (index * 13 + 5) & 0xff)
    const sent: Uint8Array[][] = [
      [new TextEncoder().encode('hello')],
      [new TextEncoder().encode('multi'), new Uint8Array(0), all],
      [big],
    ]
    const before = Date.now()
    for (const message of sent) await push.send(message)

    const messages = await waitFor(
      async () => {
        const read = await readAll()
        return read.length >= sent.length ? read : undefined
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'three messages over HTTP' },
    )
    expect(messages).toHaveLength(3)
    messages.forEach((message, index) => {
      expect(decode(message.frames)).toEqual(sent[index])
      expect(message.peer.mechanism).toBe('NULL')
      expect(message.peer.address).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(message.peer.publicKey).toBeUndefined()
      const receivedAt = Date.parse(message.receivedAt)
      expect(receivedAt).toBeGreaterThanOrEqual(before - 1000)
      expect(receivedAt).toBeLessThanOrEqual(Date.now())
    })
    expect(messages.map((message) => message.seq)).toEqual(
      [...messages.map((m) => m.seq)].sort((a, b) => a - b),
    )
  })

  it('stores 10,000 messages once each, in order', async () => {
    const start = (await readAll()).at(-1)?.seq ?? 0
    for (let index = 0; index < 10_000; index++) await push.send(['bulk', String(index)])
    const messages = await waitFor(
      async () => {
        const read = await readAll(start)
        return read.length >= 10_000 ? read : undefined
      },
      { timeoutMs: 60_000, intervalMs: 250, what: '10,000 messages over HTTP' },
    )
    expect(messages).toHaveLength(10_000)
    expect(messages.map((message) => new TextDecoder().decode(decode(message.frames)[1]))).toEqual(
      Array.from({ length: 10_000 }, (_, index) => String(index)),
    )
    await waitFor(() => bridge.relay.unacknowledged === 0, { what: 'all batches acknowledged' })
    expect(bridge.relay.counters.acked).toBe(bridge.relay.counters.received)
  })

  it('tags CURVE messages with the client key and stores nothing from a client off the list', async () => {
    const port = bridge.listeners[1]?.address.port
    const connect = (client: { publicKey: string; secretKey: string }) => {
      const socket = new zmq.Push({
        linger: 0,
        curveServerKey: server.publicKey,
        curvePublicKey: client.publicKey,
        curveSecretKey: client.secretKey,
      })
      curveSockets.push(socket)
      socket.connect(`tcp://127.0.0.1:${port}`)
      return socket
    }
    const refused = connect(stranger)
    const accepted = connect(allowed)
    void refused.send('from a stranger').catch(() => undefined)
    await accepted.send(['secure', 'hello'])

    const messages = await waitFor(
      async () => {
        const read = await readAll(0, secureChannel)
        return read.length > 0 ? read : undefined
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the CURVE message over HTTP' },
    )
    expect(messages).toHaveLength(1)
    expect(decode(messages[0]?.frames ?? [])).toEqual([
      new TextEncoder().encode('secure'),
      new TextEncoder().encode('hello'),
    ])
    expect(messages[0]?.peer).toMatchObject({ mechanism: 'CURVE', publicKey: allowed.publicKey })
    expect(JSON.stringify(messages)).not.toContain(stranger.publicKey)
  })
})
