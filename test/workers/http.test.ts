// The HTTP API through the Worker: health, routing, auth, validation, configuration errors, and
// paging through a channel's messages.

import { env } from 'cloudflare:workers'
import { z } from '@hono/zod-openapi'
import { describe, expect, it, vi } from 'vitest'
import type { ZodError } from 'zod'
import { ChannelParam } from '../../shared/api/schemas'
import type { ApiMessage } from '../../shared/api-types'
import { BRIDGE_ID_HEADER, EPOCH_HEADER } from '../../shared/relay-protocol'
import { validationError } from '../../worker/api/validation'
import { app } from '../../worker/app'
import { tokensEqual } from '../../worker/auth'
import {
  expectBytes,
  fromBase64,
  get,
  INGEST_TOKEN,
  ingestBatch,
  ingestHeaders,
  type MessagesPage,
  ORIGIN,
  pattern,
  READ_TOKEN,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const MiB = 1024 * 1024

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toMatch(/^application\/json/)
  const body = (await response.json()) as { error: { code: string; message: string } }
  expect(body).toEqual({ error: { code, message: expect.any(String) } })
  expect(body.error.message.length).toBeGreaterThan(0)
  return body.error
}

describe('GET /v1/health', () => {
  it('answers ok without a token and says which tokens are configured', async () => {
    const response = await get('/v1/health')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      status: 'ok',
      configured: { read: true, ingest: true, admin: true },
    })
  })
})

describe('routing', () => {
  it.each([
    ['GET', '/index.html'],
    ['POST', '/'],
    ['GET', '/v1/nothing'],
    ['POST', '/v1/channels'],
    ['GET', '/v1/channels/abc/leases'],
    ['GET', '/v1/channels/abc/pull'],
    ['GET', '/v1/channels/abc/other'],
    ['POST', '/v1/channels/abc/messages'],
    ['POST', '/v1/health'],
  ])('answers %s %s with 404 not_found', async (method, path) => {
    const response = await app.request(`${ORIGIN}${path}`, { method }, env)
    await expectError(response, 404, 'not_found')
  })

  it('answers an unexpected failure with 500 internal and logs it', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const broken = {
      ...env,
      CHANNEL: {
        idFromName() {
          throw new Error('namespace unavailable')
        },
      } as unknown as Env['CHANNEL'],
    }
    const response = await app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      { headers: { Authorization: `Bearer ${READ_TOKEN}` } },
      broken,
    )
    const error = await expectError(response, 500, 'internal')
    expect(error.message).not.toMatch(/namespace unavailable/)
    expect(log).toHaveBeenCalledWith(
      'unhandled error',
      expect.objectContaining({ error: expect.stringContaining('namespace unavailable') }),
    )
  })
})

describe('authorization', () => {
  const routes = [
    { route: 'messages', token: READ_TOKEN, other: INGEST_TOKEN },
    { route: 'ingest', token: INGEST_TOKEN, other: READ_TOKEN },
  ]
  const upgrade = { Upgrade: 'websocket' }

  describe.each(routes)('of /v1/channels/:channel/$route', ({ route, token, other }) => {
    const path = `/v1/channels/abc/${route}`

    it('refuses a request without a token with 401 and WWW-Authenticate', async () => {
      const response = await get(path, undefined, upgrade)
      await expectError(response, 401, 'unauthorized')
      expect(response.headers.get('WWW-Authenticate')).toMatch(/^Bearer /)
    })

    it('refuses a wrong token and other schemes with 401, the other route’s token with 403', async () => {
      const forbidden = await get(path, undefined, { ...upgrade, Authorization: `Bearer ${other}` })
      await expectError(forbidden, 403, 'forbidden')
      for (const header of [
        `Bearer ${token}x`,
        `Bearer ${token.slice(0, -1)}`,
        `Basic ${btoa(`user:${token}`)}`,
        `Bearer`,
        `${token}`,
      ]) {
        const response = await get(path, undefined, { ...upgrade, Authorization: header })
        await expectError(response, 401, 'unauthorized')
        expect(response.headers.get('WWW-Authenticate')).toMatch(/^Bearer /)
      }
    })

    it('answers 503 not_configured when its token is missing or empty', async () => {
      for (const value of [undefined, '']) {
        const bindings = { ...env, READ_TOKEN: value, INGEST_TOKEN: value, ADMIN_TOKEN: value }
        const response = await app.request(
          `${ORIGIN}${path}`,
          { headers: { ...upgrade, Authorization: `Bearer ${token}` } },
          bindings,
        )
        const error = await expectError(response, 503, 'not_configured')
        expect(error.message).not.toContain(token)
      }
    })
  })

  it('serves one route when only the other token is missing', async () => {
    const bindings = { ...env, INGEST_TOKEN: undefined }
    const read = await app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      { headers: { Authorization: `Bearer ${READ_TOKEN}` } },
      bindings,
    )
    expect(read.status).toBe(200)
    const health = await app.request(`${ORIGIN}/v1/health`, {}, bindings)
    expect(await health.json()).toEqual({
      status: 'ok',
      configured: { read: true, ingest: false, admin: true },
    })
  })

  it('takes the bearer scheme case-insensitively and compares in constant time', async () => {
    for (const header of [
      `Bearer ${READ_TOKEN}`,
      `bearer ${READ_TOKEN}`,
      `BEARER  ${READ_TOKEN}`,
    ]) {
      const response = await get('/v1/channels/abc/messages', undefined, { Authorization: header })
      expect(response.status).toBe(200)
    }
    const spaced = await get('/v1/channels/abc/messages', undefined, {
      Authorization: `Bearer ${READ_TOKEN} x`,
    })
    await expectError(spaced, 401, 'unauthorized')
    expect(await tokensEqual('secret', 'secret')).toBe(true)
    expect(await tokensEqual('secret', 'secreT')).toBe(false)
    expect(await tokensEqual('secret', 'secret-but-longer')).toBe(false)
    expect(await tokensEqual('', 'x')).toBe(false)
  })
})

describe('GET /v1/channels/:channel/ingest', () => {
  it('answers a request that is not a WebSocket upgrade with 426', async () => {
    const response = await get('/v1/channels/abc/ingest', INGEST_TOKEN)
    await expectError(response, 426, 'upgrade_required')
    expect(response.headers.get('Upgrade')).toBe('websocket')
  })

  it('refuses a bridge of relay protocol version 1 (no subprotocol) with 400, naming v2', async () => {
    const { 'Sec-WebSocket-Protocol': _, ...v1 } = ingestHeaders()
    const response = await get('/v1/channels/abc/ingest', undefined, v1)
    const error = await expectError(response, 400, 'unsupported_relay_version')
    expect(error.message).toMatch(/zmq-edge\.relay\.v2/)
    const other = await get('/v1/channels/abc/ingest', undefined, {
      ...ingestHeaders(),
      'Sec-WebSocket-Protocol': 'zmq-edge.relay.v1, chat',
    })
    await expectError(other, 400, 'unsupported_relay_version')
  })

  it.each([
    ['no bridge id', { [BRIDGE_ID_HEADER]: '' }],
    ['a bridge id with a space', { [BRIDGE_ID_HEADER]: 'edge vm' }],
    ['a bridge id of 129 characters', { [BRIDGE_ID_HEADER]: 'b'.repeat(129) }],
    ['no epoch', { [EPOCH_HEADER]: '' }],
    ['a negative epoch', { [EPOCH_HEADER]: '-1' }],
    ['an epoch over 2^53 - 1', { [EPOCH_HEADER]: '9007199254740992' }],
    ['an epoch that is no integer', { [EPOCH_HEADER]: '1e3' }],
  ])('refuses an upgrade with %s: 400 invalid_session', async (_, headers) => {
    const response = await get('/v1/channels/abc/ingest', undefined, {
      ...ingestHeaders(),
      ...headers,
    })
    await expectError(response, 400, 'invalid_session')
  })
})

describe('channel names', () => {
  const tooLong = 'a'.repeat(65)
  it.each([
    ['a space', 'a%20b'],
    ['a slash', 'a%2Fb'],
    ['65 characters', tooLong],
    ['a colon', 'a:b'],
    ['non-ASCII', '%C3%A9t%C3%A9'],
    ['only dots', '...'],
    ['only dots (64)', '.'.repeat(64)],
  ])('refuses %s with 400 invalid_channel on both routes', async (_, name) => {
    await expectError(
      await get(`/v1/channels/${name}/messages`, READ_TOKEN),
      400,
      'invalid_channel',
    )
    await expectError(
      await get(`/v1/channels/${name}/ingest`, INGEST_TOKEN, { Upgrade: 'websocket' }),
      400,
      'invalid_channel',
    )
  })

  it('refuses . and .. (URL parsing would drop them from the path) with invalid_channel', () => {
    // URL parsing removes such segments before a route sees them; the schema refuses them too.
    for (const name of ['.', '..', '...']) {
      const result = z.object({ channel: ChannelParam }).safeParse({ channel: name })
      expect(result.success).toBe(false)
      const error = validationError('param', (result as { error: ZodError }).error)
      expect(error).toMatchObject({ status: 400, code: 'invalid_channel' })
    }
    // Dots among other characters are fine.
    for (const name of ['.a', 'a..b', '..-', '_.']) expect(ChannelParam.parse(name)).toBe(name)
  })

  it('accepts 64 characters of A-Z a-z 0-9 . _ -', async () => {
    const name = `Az09._-${'x'.repeat(57)}`
    const page = await readPage(name)
    expect(page).toEqual({ channel: name, messages: [], next: 0 })
  })
})

describe('GET /v1/channels/:channel/messages', () => {
  it('reads up to 10,000 messages a page, across segments and from the middle of one', async () => {
    const channel = uniqueChannel('big-page')
    for (let batchSeq = 1; batchSeq <= 3; batchSeq++) {
      const messages = Array.from({ length: 1000 }, (_, index) =>
        relayMessage([utf8(`${batchSeq}-${index}`)]),
      )
      expect(await ingestBatch(channel, messages, { batchSeq })).toMatchObject({ kind: 'ack' })
    }
    const all = await readPage(channel, '?limit=10000')
    expect(all.messages).toHaveLength(3000)
    expect(all.next).toBe(3000)
    const middle = await readPage(channel, '?after=1500&limit=1001')
    expect(middle.messages.map((message) => message.seq)).toEqual(
      Array.from({ length: 1001 }, (_, index) => 1501 + index),
    )
    expect(atob(middle.messages[0]?.frames[0] ?? '')).toBe('2-500')
    expect(atob(middle.messages.at(-1)?.frames[0] ?? '')).toBe('3-500')
  })

  it.each([
    '?limit=0',
    '?limit=10001',
    '?limit=1.5',
    '?limit=ten',
    '?limit=',
    '?limit=-1',
    '?after=-1',
    '?after=1.5',
    '?after=abc',
    '?after=',
    '?after=1e3',
    '?after=99999999999999999999',
  ])('refuses %s with 400 invalid_query', async (query) => {
    await expectError(
      await get(`/v1/channels/abc/messages${query}`, READ_TOKEN),
      400,
      'invalid_query',
    )
  })

  it('pages in seq order with after, limit and next', async () => {
    const channel = uniqueChannel()
    const texts = ['a', 'b', 'c', 'd', 'e']
    await ingestBatch(
      channel,
      texts.map((text) => relayMessage([utf8(text)])),
    )
    const frames = (page: { messages: { frames: string[] }[] }) =>
      page.messages.map((message) => atob(message.frames[0] ?? ''))

    const first = await readPage(channel, '?limit=2')
    expect(first.messages.map((message) => message.seq)).toEqual([1, 2])
    expect(frames(first)).toEqual(['a', 'b'])
    expect(first.next).toBe(2)
    const second = await readPage(channel, `?after=${first.next}&limit=2`)
    expect(frames(second)).toEqual(['c', 'd'])
    expect(second.next).toBe(4)
    const third = await readPage(channel, `?after=${second.next}&limit=2`)
    expect(frames(third)).toEqual(['e'])
    expect(third.next).toBe(5)
    const done = await readPage(channel, `?after=${third.next}`)
    expect(done).toEqual({ channel, messages: [], next: 5 })
    expect((await readPage(channel, '?after=1000')).next).toBe(1000)
    expect(frames(await readPage(channel, '?after=0&limit=1000'))).toEqual(texts)
  })

  it('returns 100 messages by default', async () => {
    const channel = uniqueChannel()
    const messages = Array.from({ length: 150 }, (_, index) => relayMessage([utf8(`${index}`)]))
    await ingestBatch(channel, messages)
    const page = await readPage(channel)
    expect(page.messages).toHaveLength(100)
    expect(page.next).toBe(100)
    expect((await readPage(channel, '?after=100')).messages).toHaveLength(50)
  })

  it('caps a page at 8 MiB of frames, and lists a 9 MiB message by its size instead', async () => {
    const channel = uniqueChannel()
    const threeMiB = [pattern(3 * MiB, 1), pattern(3 * MiB, 2), pattern(3 * MiB, 3)]
    const nineMiB = pattern(9 * MiB, 4)
    await ingestBatch(
      channel,
      threeMiB.map((frame) => relayMessage([frame])),
    )
    await ingestBatch(channel, [relayMessage([nineMiB]), relayMessage([utf8('after')])], {
      batchSeq: 2,
    })

    const first = await readPage(channel) // 3 + 3 MiB fit; a third would make 9 MiB
    expect(first.messages.map((message) => message.seq)).toEqual([1, 2])
    expect(first.next).toBe(2)
    // 3 MiB, then the 9 MiB message without its frames (it weighs 16 octets), then 'after'.
    const response = await get(`/v1/channels/${channel}/messages?after=2`, READ_TOKEN)
    const body = new Uint8Array(await response.arrayBuffer())
    expect(body.length).toBeLessThan(4.5 * MiB) // 3 MiB of base64 and a little JSON
    const second = JSON.parse(new TextDecoder().decode(body)) as MessagesPage<ApiMessage>
    expect(second.messages.map((message) => message.seq)).toEqual([3, 4, 5])
    expect(second.next).toBe(5)
    expectBytes(fromBase64(second.messages[0]?.frames?.[0] ?? ''), threeMiB[2] as Uint8Array)
    expect(second.messages[1]).toMatchObject({
      seq: 4,
      frames: null,
      size: 9 * MiB,
      frameCount: 1,
      frameSizes: [9 * MiB],
      framesUrl: `/v1/channels/${channel}/messages/4/frames`,
    })
    expect(atob(second.messages[2]?.frames?.[0] ?? '')).toBe('after')
    // Its one frame, byte for byte, from the frame route.
    const frame = await get(`/v1/channels/${channel}/messages/4/frames/0`, READ_TOKEN)
    expect(frame.status).toBe(200)
    expectBytes(new Uint8Array(await frame.arrayBuffer()), nineMiB)
  })
})

describe('CORS', () => {
  const preflight = (origin: string, bindings: Env) =>
    app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'GET',
          'Access-Control-Request-Headers': 'authorization',
        },
      },
      bindings,
    )

  it('is off by default: no other origin is allowed', async () => {
    const response = await preflight('https://app.example', env)
    expect(response.headers.get('Access-Control-Allow-Origin')).toBeNull()
    const read = await get('/v1/channels/abc/messages', READ_TOKEN, {
      Origin: 'https://app.example',
    })
    expect(read.status).toBe(200)
    expect(read.headers.get('Access-Control-Allow-Origin')).toBeNull()
  })

  it('allows exactly the origins CORS_ALLOWED_ORIGINS lists, with the headers clients need', async () => {
    const bindings = { ...env, CORS_ALLOWED_ORIGINS: 'https://app.example, https://other.example' }
    const allowed = await preflight('https://app.example', bindings)
    expect(allowed.status).toBe(204)
    expect(allowed.headers.get('Access-Control-Allow-Origin')).toBe('https://app.example')
    expect(allowed.headers.get('Access-Control-Allow-Headers')?.toLowerCase()).toContain(
      'authorization',
    )
    const stranger = await preflight('https://evil.example', bindings)
    expect(stranger.headers.get('Access-Control-Allow-Origin')).toBeNull()
    const read = await app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      { headers: { Origin: 'https://other.example', Authorization: `Bearer ${READ_TOKEN}` } },
      bindings,
    )
    expect(read.status).toBe(200)
    expect(read.headers.get('Access-Control-Allow-Origin')).toBe('https://other.example')
    expect(read.headers.get('Access-Control-Expose-Headers')).toContain('Zmq-Edge-Next')
    // Refusals carry it too, so the page can read why.
    const refused = await app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      { headers: { Origin: 'https://app.example' } },
      bindings,
    )
    expect(refused.status).toBe(401)
    expect(refused.headers.get('Access-Control-Allow-Origin')).toBe('https://app.example')
  })
})

describe('security headers', () => {
  it('are on every answer', async () => {
    const health = await get('/v1/health')
    expect(health.headers.get('X-Content-Type-Options')).toBe('nosniff')
    expect(health.headers.get('X-Frame-Options')).toBe('DENY')
    expect(health.headers.get('Referrer-Policy')).toBe('no-referrer')
    expect(health.headers.get('Strict-Transport-Security')).toMatch(/^max-age=/)
    const refused = await get('/v1/channels/abc/messages')
    expect(refused.status).toBe(401)
    expect(refused.headers.get('X-Content-Type-Options')).toBe('nosniff')
  })
})
