// The live tail, `GET /v1/channels/:channel/events`, as Server-Sent Events inside workerd:
// events for batches ingested over the real WebSocket, woken by the insert, resumable with
// Last-Event-ID, keep-alive comments, and a clean end when the client goes away.

import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it } from 'vitest'
import type { ApiInlineMessage } from '../../shared/api-types'
import { app, EVENT_STREAM } from '../../worker/app'
import {
  get,
  ingestBatch,
  ORIGIN,
  openIngest,
  READ_TOKEN,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

afterEach(() => {
  EVENT_STREAM.keepAliveMs = 15_000
})

interface SseEvent {
  id?: string
  event?: string
  data?: string
  comment?: string
}

/** Reads an event stream block by block (blocks end with a blank line). */
class EventReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  #buffer = ''

  constructor(response: Response) {
    if (!response.body) throw new Error('no body')
    this.#reader = response.body.getReader()
  }

  /** The next block (an event, or a comment line), within `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const end = this.#buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 2)
        const event: SseEvent = {}
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) event.comment = line.slice(1).trim()
          else {
            const colon = line.indexOf(':')
            const field = line.slice(0, colon) as 'id' | 'event' | 'data'
            event[field] = line.slice(colon + 1).replace(/^ /, '')
          }
        }
        return event
      }
      const left = deadline - Date.now()
      if (left <= 0) throw new Error('no event within the timeout')
      const chunk = await Promise.race([
        this.#reader.read(),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('no event within the timeout')), left),
        ),
      ])
      if (chunk.done) throw new Error('the stream ended')
      this.#buffer += this.#decoder.decode(chunk.value, { stream: true })
    }
  }

  /** The next `count` message events, skipping comments. */
  async messages(count: number): Promise<{ id: string; message: ApiInlineMessage }[]> {
    const events: { id: string; message: ApiInlineMessage }[] = []
    while (events.length < count) {
      const event = await this.next()
      if (event.comment !== undefined) continue
      expect(event.event).toBe('message')
      events.push({ id: event.id ?? '', message: JSON.parse(event.data ?? '') as ApiInlineMessage })
    }
    return events
  }

  cancel(): Promise<void> {
    return this.#reader.cancel()
  }
}

async function openEvents(channel: string, query = '', headers: Record<string, string> = {}) {
  const response = await get(`/v1/channels/${channel}/events${query}`, READ_TOKEN, headers)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
  expect(response.headers.get('cache-control')).toBe('no-cache')
  const reader = new EventReader(response)
  // The stream opens with a comment, before any message.
  expect(await reader.next()).toEqual({ comment: 'connected' })
  return reader
}

const batch = (...texts: string[]) => texts.map((text) => relayMessage([utf8(text)]))

describe('GET /v1/channels/:channel/events', () => {
  it('streams each ingested message as an event and resumes with Last-Event-ID', async () => {
    const channel = uniqueChannel('sse')
    const first = await openEvents(channel)
    // Held open on an empty channel, then woken by a batch over the real WebSocket.
    const relay = await openIngest(channel)
    const sentAt = Date.now()
    relay.sendBatch(1, batch('e1', 'e2', 'e3'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    const events = await first.messages(3)
    expect(Date.now() - sentAt).toBeLessThan(1_000)
    expect(events.map((event) => event.id)).toEqual(['1', '2', '3'])
    expect(events.map((event) => event.message.seq)).toEqual([1, 2, 3])
    expect(events.map((event) => atob(event.message.frames[0] ?? ''))).toEqual(['e1', 'e2', 'e3'])
    expect(events[0]?.message).toMatchObject({
      peer: { address: '127.0.0.1:5555', mechanism: 'NULL' },
      receivedAt: '2023-11-14T22:13:20.000Z',
    })
    await first.cancel()

    // Missed while disconnected: 4 and 5. Resuming from event 3 gives only those, then live.
    relay.sendBatch(2, batch('e4', 'e5'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    const resumed = await openEvents(channel, '?after=0', { 'Last-Event-ID': '3' })
    const missed = await resumed.messages(2)
    expect(missed.map((event) => [event.id, atob(event.message.frames[0] ?? '')])).toEqual([
      ['4', 'e4'],
      ['5', 'e5'],
    ])
    relay.sendBatch(3, batch('e6'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    expect((await resumed.messages(1)).map((event) => event.id)).toEqual(['6'])
    await resumed.cancel()
  })

  it('starts after the `after` query parameter, and takes encoding=utf8', async () => {
    const channel = uniqueChannel('sse')
    await ingestBatch(channel, [
      relayMessage([utf8('a')]),
      relayMessage([utf8('b'), new Uint8Array([0xff, 0x00])]),
    ])
    const reader = await openEvents(channel, '?after=1&encoding=utf8')
    const [event] = await reader.messages(1)
    expect(event?.id).toBe('2')
    expect(event?.message).toMatchObject({ seq: 2, frames: ['b', '/wA='], binaryFrames: [1] })
    await reader.cancel()
  })

  it('sends a keep-alive comment when nothing arrives, and keeps streaming after it', async () => {
    EVENT_STREAM.keepAliveMs = 100
    const channel = uniqueChannel('sse')
    // Counts the stream's reads of the object, to see them stop when the client leaves.
    let reads = 0
    const counting = {
      ...env,
      CHANNEL: {
        idFromName: (name: string) => env.CHANNEL.idFromName(name),
        get: (id: DurableObjectId) => {
          const stub = env.CHANNEL.get(id)
          return {
            readPage: (options: Parameters<typeof stub.readPage>[0]) => {
              reads++
              return stub.readPage(options)
            },
          }
        },
      } as unknown as Env['CHANNEL'],
    }
    // app.request runs this module's app, so the shortened interval applies.
    const response = await app.request(
      `${ORIGIN}/v1/channels/${channel}/events`,
      { headers: { Authorization: `Bearer ${READ_TOKEN}` } },
      counting,
    )
    const reader = new EventReader(response)
    expect(await reader.next()).toEqual({ comment: 'connected' })
    expect(await reader.next(2_000)).toEqual({ comment: 'keep-alive' })
    expect(await reader.next(2_000)).toEqual({ comment: 'keep-alive' })
    await ingestBatch(channel, batch('late'))
    const [event] = await reader.messages(1)
    expect(event?.id).toBe('1')
    // Cancelling ends the stream: no more reads, however long it stays idle.
    await reader.cancel()
    const readsAtCancel = reads
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(reads - readsAtCancel).toBeLessThanOrEqual(1)
  })

  it('refuses a bad cursor or token before streaming', async () => {
    const channel = uniqueChannel('sse')
    const badHeader = await get(`/v1/channels/${channel}/events`, READ_TOKEN, {
      'Last-Event-ID': 'abc',
    })
    expect(badHeader.status).toBe(400)
    expect(await badHeader.json()).toMatchObject({ error: { code: 'invalid_query' } })
    const badAfter = await get(`/v1/channels/${channel}/events?after=-1`, READ_TOKEN)
    expect(badAfter.status).toBe(400)
    const noToken = await get(`/v1/channels/${channel}/events`)
    expect(noToken.status).toBe(401)
    const badChannel = await get('/v1/channels/no%20spaces/events', READ_TOKEN)
    expect(badChannel.status).toBe(400)
  })
})
