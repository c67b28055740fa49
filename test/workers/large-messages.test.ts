// Messages over LARGE_MESSAGE_BYTES inside workerd, over real WebSockets and real SQLite: every
// read lists them by their sizes and the path of their frames, never with the frames (so no
// response is far over its cap, and the object does not read the body), and
// `GET …/messages/:seq/frames/:index` serves one frame's octets.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { LARGE_MESSAGE_BYTES } from '../../durable/message-store'
import type { ApiLargeMessage, ApiMessage } from '../../shared/api-types'
import { NDJSON_MEDIA_TYPE } from '../../worker/app'
import {
  expectBytes,
  get,
  ingestBatch,
  ORIGIN,
  pattern,
  READ_TOKEN,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const MiB = 1024 * 1024

/** The large message's frames: 5 MiB, 3 octets and 4 MiB, so frame 2 starts mid-chunk. */
const LARGE_FRAMES = [pattern(5 * MiB, 1), utf8('mid'), pattern(4 * MiB, 2)]
const LARGE_SIZE = 9 * MiB + 3

/** Stores `small`, the large message and `tail` as seqs 1, 2 and 3 of a new channel. */
async function channelWithLargeMessage(prefix: string): Promise<string> {
  const channel = uniqueChannel(prefix)
  const reply = await ingestBatch(channel, [
    relayMessage([utf8('small')]),
    relayMessage(LARGE_FRAMES),
    relayMessage([utf8('tail')]),
  ])
  expect(reply).toMatchObject({ kind: 'ack' })
  return channel
}

/** What every read gives for seq 2 of {@link channelWithLargeMessage}. */
function expectedLarge(channel: string): ApiLargeMessage {
  return {
    seq: 2,
    receivedAt: '2023-11-14T22:13:20.000Z',
    frames: null,
    size: LARGE_SIZE,
    frameCount: 3,
    frameSizes: [5 * MiB, 3, 4 * MiB],
    framesUrl: `/v1/channels/${channel}/messages/2/frames`,
    peer: { address: '127.0.0.1:5555', mechanism: 'NULL' },
  }
}

function post(path: string, body: unknown) {
  return exports.default.fetch(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
}

/** The response's body as text, asserting it stays far under the 8 MiB cap. */
async function smallText(response: Response): Promise<string> {
  expect(response.status).toBe(200)
  // Not .text(): workerd warns on a Content-Type it does not know as text.
  const bytes = new Uint8Array(await response.arrayBuffer())
  expect(bytes.length).toBeLessThan(4096)
  return new TextDecoder().decode(bytes)
}

describe('a message over LARGE_MESSAGE_BYTES', () => {
  it('is listed by its sizes and the path of its frames in a JSON read, any encoding', async () => {
    const channel = await channelWithLargeMessage('large-json')
    for (const query of ['', '?encoding=utf8']) {
      const response = await get(`/v1/channels/${channel}/messages${query}`, READ_TOKEN)
      const page = JSON.parse(await smallText(response)) as { messages: ApiMessage[] }
      expect(page.messages.map((message) => message.seq)).toEqual([1, 2, 3])
      expect(page.messages[1]).toEqual(expectedLarge(channel))
      // The small messages around it keep their frames.
      expect(page.messages[2]?.frames).toEqual([query ? 'tail' : btoa('tail')])
    }
  })

  it('is listed the same way in NDJSON and on the event stream', async () => {
    const channel = await channelWithLargeMessage('large-streams')
    const ndjson = await smallText(
      await get(`/v1/channels/${channel}/messages`, READ_TOKEN, { Accept: NDJSON_MEDIA_TYPE }),
    )
    expect(JSON.parse(ndjson.split('\n')[1] ?? '')).toEqual(expectedLarge(channel))

    const events = await get(`/v1/channels/${channel}/events?after=1`, READ_TOKEN)
    expect(events.status).toBe(200)
    const reader = events.body?.getReader()
    if (!reader) throw new Error('no body')
    let text = ''
    const decoder = new TextDecoder()
    while (!text.includes('id: 3\n')) {
      const chunk = await reader.read()
      if (chunk.done) throw new Error('the stream ended')
      text += decoder.decode(chunk.value, { stream: true })
    }
    await reader.cancel()
    expect(text.length).toBeLessThan(4096)
    const data = /id: 2\nevent: message\ndata: (.*)\n\n/.exec(text)?.[1] ?? ''
    expect(JSON.parse(data)).toEqual(expectedLarge(channel))
  })

  it('is leased and dead-lettered without its frames', async () => {
    const channel = await channelWithLargeMessage('large-lease')
    // The small first message out of the way: acked.
    const first = (await (await post(`/v1/channels/${channel}/pull`, { batchSize: 1 })).json()) as {
      messages: { leaseId: string }[]
    }
    await post(`/v1/channels/${channel}/ack`, { acks: [first.messages[0]?.leaseId] })
    for (let attempt = 1; attempt <= 5; attempt++) {
      const response = await post(`/v1/channels/${channel}/pull`, { batchSize: 1 })
      const { messages } = JSON.parse(await smallText(response)) as {
        messages: (ApiLargeMessage & { leaseId: string; attempts: number })[]
      }
      expect(messages).toEqual([
        {
          ...expectedLarge(channel),
          leaseId: expect.any(String),
          attempts: attempt,
          leaseExpiresAt: expect.any(String),
        },
      ])
      await post(`/v1/channels/${channel}/ack`, { retries: [{ leaseId: messages[0]?.leaseId }] })
    }
    const dead = await get(`/v1/channels/${channel}/dead-letters`, READ_TOKEN)
    const page = JSON.parse(await smallText(dead)) as { messages: ApiMessage[] }
    expect(page.messages).toEqual([
      {
        ...expectedLarge(channel),
        attempts: 5,
        deadAt: expect.any(String),
        reason: 'retried',
      },
    ])
  })

  it('is listed without reading its body: the pieces after its first may even be gone', async () => {
    const channel = uniqueChannel('large-unread')
    await ingestBatch(channel, [relayMessage([pattern(9 * MiB, 7)])])
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    // Only the first piece, with the segment's head and the frame sizes in it, stays: a read
    // that touched the rest fails.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec('DELETE FROM segment_pieces WHERE first_seq = 1')
    })
    const response = await get(`/v1/channels/${channel}/messages`, READ_TOKEN)
    const page = JSON.parse(await smallText(response)) as { messages: ApiMessage[] }
    expect(page.messages[0]).toMatchObject({ frames: null, size: 9 * MiB, frameSizes: [9 * MiB] })
  })

  it('starts just over LARGE_MESSAGE_BYTES: a message of exactly that comes with its frames', async () => {
    const channel = uniqueChannel('large-edge')
    await ingestBatch(channel, [
      relayMessage([pattern(LARGE_MESSAGE_BYTES - 1, 1), utf8('x')]),
      relayMessage([pattern(LARGE_MESSAGE_BYTES, 2), utf8('x')]),
    ])
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    const read = await stub.readMessages({ after: 0, limit: 10, maxBytes: 1 })
    if (!read.ok) throw new Error('refused')
    expect(read.value.map((message) => message.frames?.length ?? null)).toEqual([2])
    const next = await stub.readMessages({ after: 1, limit: 10, maxBytes: 1 })
    if (!next.ok) throw new Error('refused')
    expect(next.value).toMatchObject([
      { seq: 2, frames: null, size: LARGE_MESSAGE_BYTES + 1, frameSizes: [LARGE_MESSAGE_BYTES, 1] },
    ])
  })
})

/** GET with the read token. */
const getFrame = (path: string) => get(path, READ_TOKEN)

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toMatch(/^application\/json/)
  expect(await response.json()).toEqual({ error: { code, message: expect.any(String) } })
}

describe('GET /v1/channels/:channel/messages/:seq/frames/:index', () => {
  it('serves each frame of a large message as octets, with Content-Length', async () => {
    const channel = await channelWithLargeMessage('frames')
    const { framesUrl } = expectedLarge(channel)
    for (const [index, expected] of LARGE_FRAMES.entries()) {
      const response = await getFrame(`${framesUrl}/${index}`)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('application/octet-stream')
      expect(response.headers.get('content-length')).toBe(String(expected.length))
      expectBytes(new Uint8Array(await response.arrayBuffer()), expected)
    }
  })

  it('serves the frames of a small message too, an empty one as 0 octets', async () => {
    const channel = uniqueChannel('frames-small')
    await ingestBatch(channel, [relayMessage([utf8('a'), new Uint8Array(0), utf8('ccc')])])
    const octets = async (index: number) => {
      const response = await getFrame(`/v1/channels/${channel}/messages/1/frames/${index}`)
      expect(response.status).toBe(200)
      return new TextDecoder().decode(await response.arrayBuffer())
    }
    expect([await octets(0), await octets(1), await octets(2)]).toEqual(['a', '', 'ccc'])
  })

  it('answers 404 for a message or a frame that does not exist', async () => {
    const channel = uniqueChannel('frames-missing')
    await ingestBatch(channel, [relayMessage([utf8('only')])])
    const base = `/v1/channels/${channel}/messages`
    await expectError(await getFrame(`${base}/2/frames/0`), 404, 'message_not_found')
    await expectError(await getFrame(`${base}/1/frames/1`), 404, 'frame_not_found')
    await expectError(
      await getFrame(`/v1/channels/${uniqueChannel()}/messages/1/frames/0`),
      404,
      'message_not_found',
    )
  })

  it('answers 400 invalid_path for a seq or an index that is not a number in range', async () => {
    const channel = uniqueChannel('frames-bad')
    for (const [seq, index] of [
      ['0', '0'],
      ['x', '0'],
      ['1.5', '0'],
      ['-1', '0'],
      ['99999999999999999', '0'],
      ['1', '-1'],
      ['1', 'a'],
      ['1', '1e3'],
    ]) {
      const response = await getFrame(`/v1/channels/${channel}/messages/${seq}/frames/${index}`)
      await expectError(response, 400, 'invalid_path')
    }
    await expectError(
      await getFrame('/v1/channels/a%20b/messages/1/frames/0'),
      400,
      'invalid_channel',
    )
  })

  it('requires the read token', async () => {
    const channel = uniqueChannel('frames-auth')
    const path = `/v1/channels/${channel}/messages/1/frames/0`
    await expectError(await get(path), 401, 'unauthorized')
    await expectError(await get(path, 'wrong-token'), 401, 'unauthorized')
    await expectError(await get(path, 'test-ingest-token'), 403, 'forbidden')
  })
})
