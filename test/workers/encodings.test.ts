// Frame encodings (`?encoding=utf8` on reads, pulls and dead letters) and NDJSON reads
// (`Accept: application/x-ndjson`), over real WebSockets and real SQLite.

import { exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { ApiInlineMessage } from '../../shared/api-types'
import { NDJSON_MEDIA_TYPE, NEXT_HEADER } from '../../worker/app'
import {
  expectBytes,
  fromBase64,
  get,
  ingestBatch,
  ORIGIN,
  pattern,
  READ_TOKEN,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const INVALID_UTF8 = [
  new Uint8Array([0xff]),
  new Uint8Array([0xc3]), // a lead byte without its continuation
  new Uint8Array([0xed, 0xa0, 0x80]), // an encoded surrogate
  new Uint8Array([0xc0, 0xaf]), // an overlong "/"
]

/** One message of text, empty, BOM-led, non-ASCII and binary frames. */
async function storeMixed(channel: string) {
  const frames = [
    utf8('hello'),
    new Uint8Array(0),
    utf8('\uFEFFbom'),
    utf8('zürich 🚀'),
    ...INVALID_UTF8,
    pattern(300, 7),
  ]
  expect(await ingestBatch(channel, [relayMessage(frames)])).toMatchObject({ kind: 'ack' })
  return frames
}

function post(path: string, body: unknown) {
  return exports.default.fetch(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
}

/** Rebuilds each frame's octets from a utf8-encoded message. */
function octets(message: ApiInlineMessage): Uint8Array[] {
  const binary = new Set(message.binaryFrames)
  return message.frames.map((frame, index) =>
    binary.has(index) ? fromBase64(frame) : new TextEncoder().encode(frame),
  )
}

describe('?encoding=utf8', () => {
  it('gives text frames as strings and lists the others, still base64, in binaryFrames', async () => {
    const channel = uniqueChannel('utf8')
    const frames = await storeMixed(channel)
    const page = await readPage(channel, '?encoding=utf8')
    const [message] = page.messages
    if (!message) throw new Error('no message')
    expect(message.frames.slice(0, 4)).toEqual(['hello', '', '\uFEFFbom', 'zürich 🚀'])
    expect(message.binaryFrames).toEqual([4, 5, 6, 7, 8])
    // Lossless: every frame's octets come back, the BOM included.
    const back = octets(message)
    expect(back).toHaveLength(frames.length)
    back.forEach((bytes, index) => {
      expectBytes(bytes, frames[index] as Uint8Array)
    })
  })

  it('has an empty binaryFrames when every frame is text', async () => {
    const channel = uniqueChannel('utf8')
    await ingestBatch(channel, [relayMessage([utf8('a'), utf8('b')])])
    const [message] = (await readPage(channel, '?encoding=utf8')).messages
    expect(message).toMatchObject({ frames: ['a', 'b'], binaryFrames: [] })
  })

  it('is base64 without binaryFrames by default and with encoding=base64', async () => {
    const channel = uniqueChannel('utf8')
    const frames = await storeMixed(channel)
    for (const query of ['', '?encoding=base64']) {
      const [message] = (await readPage(channel, query)).messages
      if (!message) throw new Error('no message')
      expect(message).not.toHaveProperty('binaryFrames')
      expect(message.frames.map(fromBase64)).toEqual(frames)
    }
  })

  it('refuses another encoding with 400 invalid_query on every route that takes it', async () => {
    const channel = uniqueChannel('utf8')
    const responses = [
      await get(`/v1/channels/${channel}/messages?encoding=hex`, READ_TOKEN),
      await get(`/v1/channels/${channel}/dead-letters?encoding=UTF-8`, READ_TOKEN),
      await get(`/v1/channels/${channel}/events?encoding=latin1`, READ_TOKEN),
      await post(`/v1/channels/${channel}/pull?encoding=`, {}),
    ]
    for (const response of responses) {
      expect(response.status).toBe(400)
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
        'invalid_query',
      )
    }
  })

  it('applies to leased pulls and dead letters', async () => {
    const channel = uniqueChannel('utf8')
    await storeMixed(channel)
    const pulled = (await (
      await post(`/v1/channels/${channel}/pull?encoding=utf8`, {})
    ).json()) as {
      messages: (ApiInlineMessage & { leaseId: string })[]
    }
    const [leased] = pulled.messages
    if (!leased) throw new Error('nothing leased')
    expect(leased.frames[0]).toBe('hello')
    expect(leased.binaryFrames).toEqual([4, 5, 6, 7, 8])
    // Five retries make it a dead letter (MAX_ATTEMPTS = 5).
    let leaseId = leased.leaseId
    for (let attempt = 1; attempt <= 5; attempt++) {
      const ack = await post(`/v1/channels/${channel}/ack`, { retries: [{ leaseId }] })
      expect(ack.status).toBe(200)
      if (attempt === 5) break
      const again = (await (await post(`/v1/channels/${channel}/pull`, {})).json()) as {
        messages: { leaseId: string }[]
      }
      leaseId = again.messages[0]?.leaseId ?? ''
    }
    const dead = (await (
      await get(`/v1/channels/${channel}/dead-letters?encoding=utf8`, READ_TOKEN)
    ).json()) as { messages: ApiInlineMessage[] }
    expect(dead.messages).toHaveLength(1)
    expect(dead.messages[0]?.frames[3]).toBe('zürich 🚀')
    expect(dead.messages[0]?.binaryFrames).toEqual([4, 5, 6, 7, 8])
  })
})

async function readNdjson(channel: string, query = '', accept = NDJSON_MEDIA_TYPE) {
  const response = await get(`/v1/channels/${channel}/messages${query}`, READ_TOKEN, {
    Accept: accept,
  })
  expect(response.status).toBe(200)
  // Not .text(): workerd warns on a Content-Type it does not know as text.
  const text = new TextDecoder().decode(await response.arrayBuffer())
  return { response, text, lines: text.split('\n') }
}

describe('Accept: application/x-ndjson', () => {
  it('streams one JSON message per line, with the next cursor in a header', async () => {
    const channel = uniqueChannel('ndjson')
    const messages = Array.from({ length: 5 }, (_, index) => relayMessage([utf8(`n${index + 1}`)]))
    await ingestBatch(channel, messages)
    const { response, text, lines } = await readNdjson(channel, '?after=1&limit=3')
    expect(response.headers.get('content-type')).toBe('application/x-ndjson; charset=utf-8')
    expect(response.headers.get(NEXT_HEADER)).toBe('4')
    expect(text.endsWith('\n')).toBe(true)
    expect(lines.pop()).toBe('')
    const parsed = lines.map((line) => JSON.parse(line) as ApiInlineMessage)
    expect(parsed.map((message) => message.seq)).toEqual([2, 3, 4])
    expect(parsed.map((message) => atob(message.frames[0] ?? ''))).toEqual(['n2', 'n3', 'n4'])
    // The same messages as the JSON page.
    expect(parsed).toEqual((await readPage(channel, '?after=1&limit=3')).messages)
  })

  it('is chosen among other media types, takes encoding=utf8, and is empty past the end', async () => {
    const channel = uniqueChannel('ndjson')
    await ingestBatch(channel, [relayMessage([utf8('x'), new Uint8Array([0xff])])])
    const { lines } = await readNdjson(
      channel,
      '?encoding=utf8',
      'application/json;q=0.5, application/x-ndjson',
    )
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      seq: 1,
      frames: ['x', '/w=='],
      binaryFrames: [1],
    })
    // A q of 0 refuses it (RFC 9110 §12.5.1): JSON then.
    const refused = await get(`/v1/channels/${channel}/messages`, READ_TOKEN, {
      Accept: 'application/x-ndjson;q=0, application/json',
    })
    expect(refused.headers.get('content-type')).toMatch(/^application\/json/)
    const empty = await readNdjson(channel, '?after=1')
    expect(empty.text).toBe('')
    expect(empty.response.headers.get(NEXT_HEADER)).toBe('1')
  })

  it('is capped like the JSON page: 8 MiB of frames, a larger first message alone', async () => {
    const channel = uniqueChannel('ndjson')
    const MiB = 1024 * 1024
    const big = (seed: number) => relayMessage([pattern(3 * MiB, seed)])
    await ingestBatch(channel, [big(1), big(2), big(3), big(4)])
    const { lines, response } = await readNdjson(channel)
    lines.pop()
    expect(lines).toHaveLength(2)
    expect(response.headers.get(NEXT_HEADER)).toBe('2')
    const second = JSON.parse(lines[1] ?? '') as ApiInlineMessage
    expectBytes(fromBase64(second.frames[0] ?? ''), pattern(3 * MiB, 2))
  })

  it('answers JSON to other Accept headers', async () => {
    const channel = uniqueChannel('ndjson')
    const response = await get(`/v1/channels/${channel}/messages`, READ_TOKEN, {
      Accept: 'application/json',
    })
    expect(response.headers.get('content-type')).toMatch(/^application\/json/)
    expect(await response.json()).toEqual({ channel, messages: [], next: 0 })
  })
})
