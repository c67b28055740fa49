// The Worker over real HTTP/1.1 under `wrangler dev`, as clients see it: a kept-alive connection
// stays usable after the Worker answers a chunked body early (413 once part of it is read, 401
// before any), a large message's frame comes with its Content-Length, byte for byte, and a
// connection the server closed while idle is not reused.

import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { feedMessage, RelayFeeder } from '../support/relay-feeder'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

/** The Worker's MAX_REQUEST_BYTES (worker/app.ts, which only loads inside workerd). */
const MAX_REQUEST_BYTES = 256 * 1024

let worker: WranglerDev

beforeAll(async () => {
  worker = await startWranglerDev()
}, 90_000)

afterAll(async () => {
  await worker?.stop()
})

interface Answer {
  status: number
  body: Buffer
  headers: http.IncomingHttpHeaders
  /** The client's port: the same for two requests that shared a connection. */
  localPort: number | undefined
}

/**
 * One request through `agent`. A string body goes out in 16 KiB writes without a length, so as
 * `Transfer-Encoding: chunked`.
 */
function request(
  agent: http.Agent,
  options: { method: string; path: string; token: string; chunked?: string; json?: unknown },
): Promise<Answer> {
  const { hostname, port } = new URL(worker.httpUrl)
  const headers: Record<string, string> = {
    authorization: `Bearer ${options.token}`,
    'content-type': 'application/json',
  }
  const json = options.json === undefined ? undefined : JSON.stringify(options.json)
  if (json !== undefined) headers['content-length'] = String(Buffer.byteLength(json))
  return new Promise((resolve, reject) => {
    const outgoing = http.request(
      { hostname, port, path: options.path, method: options.method, agent, headers },
      (response) => {
        const chunks: Buffer[] = []
        response.on('data', (chunk: Buffer) => chunks.push(chunk))
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks),
            headers: response.headers,
            localPort: outgoing.socket?.localPort,
          }),
        )
      },
    )
    outgoing.on('error', reject)
    if (options.chunked !== undefined) {
      for (let offset = 0; offset < options.chunked.length; offset += 16 * 1024) {
        outgoing.write(options.chunked.slice(offset, offset + 16 * 1024))
      }
      outgoing.end()
    } else {
      outgoing.end(json)
    }
  })
}

describe('a kept-alive connection after an early answer to a chunked body', () => {
  const ack = { acks: ['not-a-lease'] }
  const oversized = JSON.stringify({ acks: ['x'.repeat(MAX_REQUEST_BYTES + 40 * 1024)] })

  it('answers 413 to a chunked body over 256 KiB, then the next POST on that connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const path = '/v1/channels/keep-alive/ack'
      const refused = await request(agent, {
        method: 'POST',
        path,
        token: TEST_READ_TOKEN,
        chunked: oversized,
      })
      expect(refused.status).toBe(413)
      expect(JSON.parse(refused.body.toString())).toMatchObject({
        error: { code: 'payload_too_large' },
      })
      // Before the Worker drained such a body, wrangler dev answered this one 503 "Your worker
      // restarted mid-request": its proxy's pooled connection to the Worker was closed.
      const next = await request(agent, { method: 'POST', path, token: TEST_READ_TOKEN, json: ack })
      expect({ status: next.status, body: JSON.parse(next.body.toString()) }).toEqual({
        status: 200,
        body: {
          channel: 'keep-alive',
          group: 'default',
          acked: 0,
          retried: 0,
          deadLettered: 0,
          unknown: ack.acks,
        },
      })
      expect(next.localPort).toBe(refused.localPort)
    } finally {
      agent.destroy()
    }
  })

  // A body the Worker never read is no trouble: workerd discards it. Kept so it stays so.
  it('answers 401 to a chunked body without the token, then the next POST on that connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    try {
      const path = '/v1/channels/keep-alive/ack'
      const body = JSON.stringify({ acks: ['y'.repeat(200 * 1024)] })
      const refused = await request(agent, { method: 'POST', path, token: 'wrong', chunked: body })
      expect(refused.status).toBe(401)
      const next = await request(agent, { method: 'POST', path, token: TEST_READ_TOKEN, json: ack })
      expect(next.status).toBe(200)
      expect(next.localPort).toBe(refused.localPort)
    } finally {
      agent.destroy()
    }
  })
})

describe('a large message over HTTP', () => {
  it('is listed without its frames, and each frame comes with its Content-Length', async () => {
    const channel = `large-${Date.now()}`
    const feeder = await RelayFeeder.open({
      wsUrl: worker.wsUrl,
      channel,
      ingestToken: TEST_INGEST_TOKEN,
      bridgeId: 'large-bridge',
    })
    const big = Buffer.alloc(9 * 1024 * 1024)
    for (let index = 0; index < big.length; index++) big[index] = (index * 31) & 0xff
    try {
      await feeder.send([feedMessage(['head', big])], 30_000)
    } finally {
      feeder.close()
    }
    const agent = new http.Agent({ keepAlive: true })
    try {
      const read = await request(agent, {
        method: 'GET',
        path: `/v1/channels/${channel}/messages`,
        token: TEST_READ_TOKEN,
      })
      expect(read.body.length).toBeLessThan(1024)
      const [message] = JSON.parse(read.body.toString()).messages
      expect(message).toMatchObject({
        frames: null,
        size: big.length + 4,
        frameCount: 2,
        frameSizes: [4, big.length],
        framesUrl: `/v1/channels/${channel}/messages/1/frames`,
      })
      const frame = await request(agent, {
        method: 'GET',
        path: `${message.framesUrl}/1`,
        token: TEST_READ_TOKEN,
      })
      expect(frame.status).toBe(200)
      expect(frame.headers['content-type']).toBe('application/octet-stream')
      expect(frame.headers['content-length']).toBe(String(big.length))
      expect(frame.headers['transfer-encoding']).toBeUndefined()
      expect(frame.body.equals(big)).toBe(true)
    } finally {
      agent.destroy()
    }
  })
})

describe('an idle connection', () => {
  it('is closed by the server after 5 s; a fetch after a busy 5 s still gets its answer', async () => {
    // The cause of a flaky end-to-end read (test/support/fresh-connections.ts): workerd drops a
    // kept-alive connection idle for 5 s, and a client busy past that must not reuse it.
    const { hostname, port } = new URL(worker.httpUrl)
    const socket = net.connect(Number(port), hostname)
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())))
    socket.write(`GET /v1/health HTTP/1.1\r\nhost: ${hostname}\r\n\r\n`)
    await new Promise((resolve) => socket.once('data', resolve))
    const answeredAt = Date.now()

    const health = async () => {
      const response = await fetch(`${worker.httpUrl}/v1/health`)
      return { status: response.status, body: await response.json() }
    }
    expect(await health()).toMatchObject({ status: 200, body: { status: 'ok' } })
    const busyUntil = Date.now() + 5_300
    while (Date.now() < busyUntil) {
      // the event loop is held, as by a bridge relaying thousands of messages
    }
    expect(await health()).toMatchObject({ status: 200, body: { status: 'ok' } })
    const idleFor = (await closed) - answeredAt
    expect(idleFor).toBeGreaterThanOrEqual(4_900)
    expect(idleFor).toBeLessThan(8_000)
  })
})
