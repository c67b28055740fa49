// Cloudflare Queues pull consumers, unchanged: the official `cloudflare` SDK (npm, 7.3.0), its
// baseURL set to the Worker under `wrangler dev`, pulls and acks a channel's messages through the
// /cf/client/v4 adapter. Bodies by content type, retries seen again with their attempts, a named
// consumer group as `channel~group`, the same leases as /v1, and errors as the SDK's errors.

import Cloudflare from 'cloudflare'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { feedMessage, RelayFeeder } from '../support/relay-feeder'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

let worker: WranglerDev
let feeder: RelayFeeder
const channel = `cfq-${Date.now()}`
const key = new Uint8Array(32).fill(7)

beforeAll(async () => {
  worker = await startWranglerDev()
  feeder = await RelayFeeder.open({
    wsUrl: worker.wsUrl,
    channel,
    ingestToken: TEST_INGEST_TOKEN,
    bridgeId: 'cfq-bridge',
  })
  await feeder.send([
    feedMessage(['hello queues']),
    feedMessage([new Uint8Array([0, 255, 1])]),
    feedMessage(['order', '{"id": 1}']),
    feedMessage(['from pump 7'], { mechanism: 'CURVE', publicKey: key, keyName: 'pump 7' }),
  ])
}, 90_000)

afterAll(async () => {
  feeder?.close()
  await worker?.stop()
})

/** The SDK as a Cloudflare Queues user makes it, with the Worker as its base URL. */
function sdk(apiToken = TEST_READ_TOKEN): Cloudflare {
  return new Cloudflare({ apiToken, baseURL: `${worker.httpUrl}/cf/client/v4`, maxRetries: 0 })
}

const b64 = (bytes: number[] | string) =>
  Buffer.from(typeof bytes === 'string' ? bytes : Uint8Array.from(bytes)).toString('base64')

describe('the official cloudflare SDK against the Worker', () => {
  it('pulls a batch with Cloudflare’s fields, each body by its content type', async () => {
    const pulled = await sdk().queues.messages.pull(channel, {
      account_id: 'ignored',
      batch_size: 10,
      visibility_timeout_ms: 1000,
    })
    expect(pulled.message_backlog_count).toBe(4)
    const messages = pulled.messages ?? []
    expect(messages.map((message) => [message.body, message.metadata])).toEqual([
      ['hello queues', expect.objectContaining({ 'CF-Content-Type': 'text', 'zmq-edge-seq': '1' })],
      [b64([0, 255, 1]), expect.objectContaining({ 'CF-Content-Type': 'bytes' })],
      [
        JSON.stringify([b64('order'), b64('{"id": 1}')]),
        expect.objectContaining({ 'CF-Content-Type': 'json', 'zmq-edge-frames': '2' }),
      ],
      [
        'from pump 7',
        expect.objectContaining({
          'zmq-edge-mechanism': 'CURVE',
          'zmq-edge-key-name': 'pump 7',
          'zmq-edge-public-key': expect.any(String),
        }),
      ],
    ])
    for (const [index, message] of messages.entries()) {
      expect(message).toMatchObject({
        id: String(index + 1),
        attempts: 1,
        lease_id: expect.any(String),
        timestamp_ms: expect.any(Number),
      })
      expect(Math.abs((message.timestamp_ms as number) - Date.now())).toBeLessThan(120_000)
    }
    // Leased: nothing more to pull until the leases run out.
    const again = await sdk().queues.messages.pull(channel, { account_id: 'x', batch_size: 10 })
    expect(again.messages).toEqual([])
    expect(again.message_backlog_count).toBe(4)
  })

  it('acks and retries; a retried message comes again with its attempts, then is acked', async () => {
    // The leases of the first pull expired (1 s): pulled again, as attempts 2.
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const client = sdk()
    const pulled = (await client.queues.messages.pull(channel, { account_id: 'x', batch_size: 4 }))
      .messages as Array<{ lease_id: string; id: string; attempts: number }>
    expect(pulled.map((message) => message.attempts)).toEqual([2, 2, 2, 2])
    const [first, second, ...rest] = pulled as [(typeof pulled)[0], (typeof pulled)[0]]
    const acked = await client.queues.messages.ack(channel, {
      account_id: 'x',
      acks: [...rest, first].map((message) => ({ lease_id: message.lease_id })),
      retries: [{ lease_id: second?.lease_id as string, delay_seconds: 0 }],
    })
    expect(acked).toMatchObject({ ackCount: 3, retryCount: 1, warnings: [] })
    // An ack of a lease no longer current is a warning, not an error (as Cloudflare's).
    const late = await client.queues.messages.ack(channel, {
      account_id: 'x',
      acks: [{ lease_id: first?.lease_id as string }],
    })
    expect(late).toMatchObject({ ackCount: 0, retryCount: 0 })
    expect(late?.warnings).toHaveLength(1)

    const retried = await client.queues.messages.pull(channel, { account_id: 'x' })
    expect(retried.messages?.map((message) => [message.id, message.attempts])).toEqual([
      [second?.id, 3],
    ])
    expect(retried.message_backlog_count).toBe(1)
    // The same leases as /v1: acked there.
    const response = await fetch(`${worker.httpUrl}/v1/channels/${channel}/ack`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_READ_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ acks: [retried.messages?.[0]?.lease_id] }),
    })
    expect(await response.json()).toMatchObject({ acked: 1 })
    const empty = await client.queues.messages.pull(channel, { account_id: 'x' })
    expect(empty).toEqual({ message_backlog_count: 0, messages: [] })
  })

  it('consumes a named consumer group as channel~group, apart from the others', async () => {
    const created = await fetch(`${worker.httpUrl}/v1/channels/${channel}/groups/billing`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${TEST_READ_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ start: 'earliest' }),
    })
    expect(created.status).toBe(201)
    const pulled = await sdk().queues.messages.pull(`${channel}~billing`, {
      account_id: 'x',
      batch_size: 100,
    })
    expect(pulled.messages?.map((message) => message.id)).toEqual(['1', '2', '3', '4'])
  })

  it('fails as the SDK expects: its error classes, with Cloudflare’s errors and ours', async () => {
    const failure = async (call: () => Promise<unknown>) => {
      try {
        await call()
      } catch (error) {
        return error as InstanceType<typeof Cloudflare.APIError> & {
          error?: { error?: { code: string } }
        }
      }
      throw new Error('expected the SDK to throw')
    }
    const wrong = await failure(() =>
      sdk('wrong-token').queues.messages.pull(channel, { account_id: 'x' }),
    )
    expect(wrong).toBeInstanceOf(Cloudflare.AuthenticationError)
    expect(wrong.status).toBe(401)
    expect(wrong.errors).toEqual([{ code: 401, message: expect.any(String) }])
    expect(wrong.error?.error?.code).toBe('unauthorized')

    const ingest = await failure(() =>
      sdk(TEST_INGEST_TOKEN).queues.messages.pull(channel, { account_id: 'x' }),
    )
    expect(ingest).toBeInstanceOf(Cloudflare.PermissionDeniedError)
    const noGroup = await failure(() =>
      sdk().queues.messages.pull(`${channel}~nobody`, { account_id: 'x' }),
    )
    expect(noGroup).toBeInstanceOf(Cloudflare.NotFoundError)
    expect(noGroup.error?.error?.code).toBe('group_not_found')
    for (const queue of [`${channel}~a~b`, 'bad name', `${channel}~`]) {
      const bad = await failure(() => sdk().queues.messages.pull(queue, { account_id: 'x' }))
      expect(bad, queue).toBeInstanceOf(Cloudflare.BadRequestError)
    }
    const tooMany = await failure(() =>
      sdk().queues.messages.pull(channel, { account_id: 'x', batch_size: 101 }),
    )
    expect(tooMany).toBeInstanceOf(Cloudflare.BadRequestError)
    const nothing = await failure(() => sdk().queues.messages.ack(channel, { account_id: 'x' }))
    expect(nothing).toBeInstanceOf(Cloudflare.BadRequestError)
    expect(nothing.errors[0]?.message).toMatch(/acks and retries are both empty/)
  })
})
