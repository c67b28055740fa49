// The Cloudflare Queues adapter inside workerd, for what the SDK test (test/node/cf-queues-sdk)
// does not reach: a large message's body, the envelope of every kind of refusal, the same
// leases as /v1 (a lease from one acked by the other), and rows read as /v1's pull reads them.
import { describe, expect, it } from 'vitest'
import {
  appRequest,
  ingestBatch,
  pattern,
  READ_TOKEN,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const MiB = 1024 * 1024
const queue = (channel: string, action: 'pull' | 'ack') =>
  `/cf/client/v4/accounts/acct/queues/${channel}/messages/${action}`

async function call(path: string, body: unknown, init: RequestInit = {}) {
  return appRequest(path, READ_TOKEN, { method: 'POST', body: JSON.stringify(body), ...init })
}

describe('the Cloudflare Queues adapter', () => {
  it('gives a large message as a JSON body naming where its frames are', async () => {
    const channel = uniqueChannel('cfq')
    await ingestBatch(channel, [relayMessage([pattern(9 * MiB, 3), utf8('tail')])])
    const response = await call(queue(channel, 'pull'), {})
    const { result } = (await response.json()) as {
      result: { messages: Array<{ body: string; metadata: Record<string, string> }> }
    }
    const [message] = result.messages
    expect(message?.metadata).toMatchObject({ 'CF-Content-Type': 'json', 'zmq-edge-frames': '2' })
    expect(JSON.parse(message?.body ?? '')).toEqual({
      size: 9 * MiB + 4,
      frameSizes: [9 * MiB, 4],
      framesUrl: `/v1/channels/${channel}/messages/1/frames`,
    })
  })

  it('puts every refusal in Cloudflare’s envelope, with zmq-edge’s error beside', async () => {
    const channel = uniqueChannel('cfq')
    const refusals: Array<[string, Response | Promise<Response>, number, string]> = [
      [
        'no token',
        appRequest(queue(channel, 'pull'), undefined, { method: 'POST', body: '{}' }),
        401,
        'unauthorized',
      ],
      ['a bad body', call(queue(channel, 'pull'), { batch_size: 0 }), 400, 'invalid_body'],
      ['not JSON', call(queue(channel, 'pull'), {}, { body: '{' }), 400, 'invalid_body'],
      ['a bad queue id', call(queue('a~b~c', 'pull'), {}), 400, 'invalid_param'],
      ['no such group', call(queue(`${channel}~none`, 'pull'), {}), 404, 'group_not_found'],
      ['an empty ack', call(queue(channel, 'ack'), {}), 400, 'invalid_body'],
      [
        'a body too large',
        call(queue(channel, 'ack'), { acks: [{ lease_id: 'x'.repeat(300 * 1024) }] }),
        413,
        'payload_too_large',
      ],
    ]
    for (const [what, answer, status, code] of refusals) {
      const response = await answer
      expect(response.status, what).toBe(status)
      const body = (await response.json()) as Record<string, unknown>
      expect(body, what).toEqual({
        success: false,
        errors: [{ code: status, message: expect.any(String) }],
        messages: [],
        result: null,
        error: { code: expect.any(String), message: expect.any(String) },
      })
      expect((body.error as { code: string }).code, what).toMatch(
        code === 'invalid_param' ? /^invalid_/ : new RegExp(`^${code}$`),
      )
    }
  })

  it('shares its leases with /v1: pulled here, extended and acked there', async () => {
    const channel = uniqueChannel('cfq')
    await ingestBatch(channel, [relayMessage([utf8('one')]), relayMessage([utf8('two')])])
    const pulled = (await (await call(queue(channel, 'pull'), { batch_size: 1 })).json()) as {
      result: { message_backlog_count: number; messages: Array<{ lease_id: string; id: string }> }
    }
    expect(pulled.result.message_backlog_count).toBe(2)
    const leaseId = pulled.result.messages[0]?.lease_id as string
    const extended = await appRequest(`/v1/channels/${channel}/leases/extend`, READ_TOKEN, {
      method: 'POST',
      body: JSON.stringify({ leaseIds: [leaseId], visibilityTimeoutMs: 60_000 }),
    })
    expect(await extended.json()).toMatchObject({ extended: 1 })
    const acked = await appRequest(`/v1/channels/${channel}/ack`, READ_TOKEN, {
      method: 'POST',
      body: JSON.stringify({ acks: [leaseId] }),
    })
    expect(await acked.json()).toMatchObject({ acked: 1 })
    const next = (await (await call(queue(channel, 'pull'), { batch_size: 5 })).json()) as {
      result: { message_backlog_count: number; messages: Array<{ id: string; body: string }> }
    }
    expect(next.result.messages.map((message) => message.body)).toEqual(['two'])
    expect(next.result.message_backlog_count).toBe(1)
  })
})
