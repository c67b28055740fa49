// The dashboard's Worker side: the channel directory that each channel's object tells about
// itself, and GET /v1/channels, which lists the channels with their stats and connected bridges,
// fed through the real ingest path. (The page is a static asset, which this pool does not
// serve: test/node/dashboard-browser.test.ts reads it from `wrangler dev`.)

import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { DIRECTORY_NAME } from '../../durable/channel-directory'
import { DIRECTORY_REFRESH_MS, DIRECTORY_TOLD_KEY } from '../../durable/channel-object'
import { app } from '../../worker/app'
import {
  countRows,
  get,
  INGEST_TOKEN,
  ORIGIN,
  openIngest,
  READ_TOKEN,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

interface ListedChannel {
  channel: string
  log: { messages: number; bytes: number; newest: { seq: number } | null }
  queue: { depth: number; available: number; inFlight: number; deadLetters: number }
  bridges: {
    connected: number
    known: number
    connections: {
      bridgeId: string | null
      connectedAt: string | null
      lastBatchSeq: number | null
    }[]
  }
  counters: Record<string, number>
  error?: { code: string; message: string }
}

interface ChannelList {
  channels: ListedChannel[]
  total: number
  truncated: boolean
  next?: string
}

async function list(query = ''): Promise<ChannelList> {
  const response = await get(`/v1/channels${query}`, READ_TOKEN)
  expect(response.status).toBe(200)
  expect(response.headers.get('Cache-Control')).toBe('no-store')
  return (await response.json()) as ChannelList
}

/** Lists the channels under `prefix` until `check` holds (the directory is told in the background). */
async function listUntil(prefix: string, check: (listing: ChannelList) => boolean, query = '') {
  return vi.waitFor(
    async () => {
      const listing = await list(`?prefix=${prefix}${query}`)
      if (!check(listing)) throw new Error(`not yet: ${JSON.stringify(listing)}`)
      return listing
    },
    { timeout: 10_000, interval: 20 },
  )
}

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status)
  expect(response.headers.get('content-type')).toMatch(/^application\/json/)
  const body = (await response.json()) as { error: { code: string; message: string } }
  expect(body).toEqual({ error: { code, message: expect.any(String) } })
}

function directory() {
  return env.DIRECTORY.get(env.DIRECTORY.idFromName(DIRECTORY_NAME))
}

describe('GET /v1/channels', () => {
  it('requires the read token', async () => {
    await expectError(await get('/v1/channels'), 401, 'unauthorized')
    await expectError(await get('/v1/channels', INGEST_TOKEN), 403, 'forbidden')
    const unconfigured = await app.request(
      `${ORIGIN}/v1/channels`,
      { headers: { Authorization: `Bearer ${READ_TOKEN}` } },
      { ...env, READ_TOKEN: undefined, ADMIN_TOKEN: undefined },
    )
    await expectError(unconfigured, 503, 'not_configured')
  })

  it.each([
    ['limit=0'],
    ['limit=101'],
    ['limit=x'],
    ['prefix=a%20b'],
    [`prefix=${'a'.repeat(65)}`],
    ['after=a%20b'],
    ['after='],
    ['order=size'],
  ])('refuses ?%s with 400 invalid_query', async (query) => {
    await expectError(await get(`/v1/channels?${query}`, READ_TOKEN), 400, 'invalid_query')
  })

  it('lists the channels that received batches, with depth, counters and bridge ids', async () => {
    const prefix = uniqueChannel('list')
    const busy = `${prefix}-a`
    const idle = `${prefix}-b`
    const relay = await openIngest(busy, { bridgeId: 'bridge-a' })
    relay.sendBatch(1, [relayMessage([utf8('one')]), relayMessage([utf8('two')])])
    expect(await relay.next()).toMatchObject({ kind: 'ack', lastSeq: 2 })
    relay.sendBatch(2, [relayMessage([utf8('three'), new Uint8Array([0xff])])])
    expect(await relay.next()).toMatchObject({ kind: 'ack', lastSeq: 3 })
    // A bridge that connected but has sent nothing yet: its id is known from the upgrade.
    await openIngest(idle, { bridgeId: 'bridge-b' })

    const listing = await listUntil(prefix, (found) => found.total === 2)
    expect(listing.truncated).toBe(false)
    expect(listing.channels.map((entry) => entry.channel)).toEqual([busy, idle])
    const [a, b] = listing.channels as [ListedChannel, ListedChannel]
    expect(a.log).toMatchObject({ messages: 3, bytes: 12, newest: { seq: 3 } })
    expect(a.queue).toMatchObject({ depth: 3, available: 3, inFlight: 0, deadLetters: 0 })
    expect(a.counters).toMatchObject({ messagesStored: 3, batchesStored: 2 })
    expect(a.bridges.connected).toBe(1)
    expect(a.bridges.connections).toEqual([
      { bridgeId: 'bridge-a', connectedAt: expect.any(String), lastBatchSeq: 2 },
    ])
    const connectedAt = Date.parse(a.bridges.connections[0]?.connectedAt ?? '')
    expect(Math.abs(Date.now() - connectedAt)).toBeLessThan(60_000)
    expect(b.log.messages).toBe(0)
    expect(b.bridges.connections).toEqual([
      { bridgeId: 'bridge-b', connectedAt: expect.any(String), lastBatchSeq: null },
    ])

    // The same stats as the channel's own route (but for the ages and the rows read, which go
    // on).
    const own = (await (await get(`/v1/channels/${busy}`, READ_TOKEN)).json()) as ListedChannel
    const { log, cost, ...rest } = a as ListedChannel & { cost: unknown }
    expect(own).toMatchObject({ ...rest, log: { messages: log.messages, bytes: log.bytes } })
    expect(cost).toMatchObject({ rowsRead: expect.any(Number), rowsWritten: expect.any(Number) })
  })

  it('shows a bridge gone once its socket closes, and the channel still listed', async () => {
    const channel = uniqueChannel('gone')
    const relay = await openIngest(channel, { bridgeId: 'bridge-g' })
    relay.sendBatch(1, [relayMessage([utf8('x')])])
    await relay.next()
    await listUntil(channel, (found) => found.channels[0]?.bridges.connected === 1)
    relay.close()
    const listing = await listUntil(channel, (found) => found.channels[0]?.bridges.connected === 0)
    expect(listing.channels[0]).toMatchObject({ log: { messages: 1 }, bridges: { known: 1 } })
    expect(listing.channels[0]?.bridges.connections).toEqual([])
  })

  it('lists at most `limit` channels, in name order, and says when there are more', async () => {
    const prefix = uniqueChannel('many')
    const names = [`${prefix}-3`, `${prefix}-1`, `${prefix}-2`]
    for (const name of names) await openIngest(name)
    await listUntil(prefix, (found) => found.total === 3)

    const first = await list(`?prefix=${prefix}&limit=2`)
    expect(first.channels.map((entry) => entry.channel)).toEqual([`${prefix}-1`, `${prefix}-2`])
    expect(first).toMatchObject({ total: 3, truncated: true })
    const all = await list(`?prefix=${prefix}&limit=3`)
    expect(all.channels).toHaveLength(3)
    expect(all).toMatchObject({ total: 3, truncated: false })
  })

  it('pages with after and next, past the first page, in name order', async () => {
    const prefix = uniqueChannel('page')
    const names = [1, 2, 3, 4, 5].map((index) => `${prefix}-${index}`)
    await runInDurableObject(directory(), (instance) => {
      for (const name of [...names].reverse()) instance.register(name)
      // Around the prefix, not under it.
      instance.register(`${prefix}`.slice(0, -1))
      instance.register(`${prefix}.`)
      instance.register(`${prefix}~`.replace('~', '0'))
    })
    const pages: string[][] = []
    let after: string | undefined
    for (;;) {
      const query = `?prefix=${prefix}-&limit=2${after === undefined ? '' : `&after=${after}`}`
      const page = await list(query)
      expect(page.total).toBe(5)
      pages.push(page.channels.map((entry) => entry.channel))
      expect(page.truncated).toBe(page.next !== undefined)
      if (page.next === undefined) break
      expect(page.next).toBe(page.channels.at(-1)?.channel)
      after = page.next
    }
    expect(pages).toEqual([names.slice(0, 2), names.slice(2, 4), names.slice(4)])
  })

  it('lists the most recently seen first with order=recent, and pages in that order', async () => {
    const prefix = uniqueChannel('recent')
    const seen: [string, number][] = [
      [`${prefix}-a`, 1_000],
      [`${prefix}-b`, 3_000],
      [`${prefix}-c`, 2_000],
      [`${prefix}-d`, 3_000],
    ]
    await runInDurableObject(directory(), (instance) => {
      const now = vi.spyOn(Date, 'now')
      for (const [name, at] of seen) {
        now.mockReturnValue(at)
        instance.register(name)
      }
      now.mockRestore()
    })
    const first = await list(`?prefix=${prefix}&order=recent&limit=3`)
    expect(first.channels.map((entry) => entry.channel)).toEqual([
      `${prefix}-b`,
      `${prefix}-d`,
      `${prefix}-c`,
    ])
    expect(first).toMatchObject({ total: 4, truncated: true, next: `${prefix}-c` })
    const second = await list(`?prefix=${prefix}&order=recent&limit=3&after=${first.next}`)
    expect(second.channels.map((entry) => entry.channel)).toEqual([`${prefix}-a`])
    expect(second).toMatchObject({ total: 4, truncated: false })
    expect(second.next).toBeUndefined()
    // The default stays name order.
    const byName = await list(`?prefix=${prefix}`)
    expect(byName.channels.map((entry) => entry.channel)).toEqual(seen.map(([name]) => name).sort())
  })

  it('lists a channel whose object fails with an error instead of its stats', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const channel = uniqueChannel('broken')
    await openIngest(channel)
    await listUntil(channel, (found) => found.total === 1)
    const broken = {
      ...env,
      CHANNEL: {
        idFromName: (name: string) => env.CHANNEL.idFromName(name),
        get: () => ({
          stats: () => Promise.reject(new Error('object unavailable')),
        }),
      } as unknown as Env['CHANNEL'],
    }
    const response = await app.request(
      `${ORIGIN}/v1/channels?prefix=${channel}`,
      { headers: { Authorization: `Bearer ${READ_TOKEN}` } },
      broken,
    )
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      channels: [{ channel, error: { code: 'internal', message: 'the channel did not answer' } }],
      total: 1,
      truncated: false,
    })
    expect(log).toHaveBeenCalledWith(
      'channel stats failed',
      expect.objectContaining({ channel, error: expect.stringContaining('object unavailable') }),
    )
  })
})

/**
 * A channel that stored its first batch, and the time the directory says it was last seen once
 * the channel has told it; `seen` reads that time again.
 */
async function firstBatchTold(tag: string, bridgeId: string) {
  const channel = uniqueChannel(tag)
  const relay = await openIngest(channel, { bridgeId })
  relay.sendBatch(1, [relayMessage([utf8('first')])])
  await relay.next()
  const seen = async () =>
    (await directory().list({ limit: 1, prefix: channel })).channels[0]?.lastSeenAt
  const firstSeen = await vi.waitFor(async () => {
    const at = await seen()
    if (at === undefined) throw new Error('not told yet')
    return at
  })
  return { channel, relay, seen, firstSeen }
}

describe('the channel directory', () => {
  it('reads only the rows under the prefix (a key range, not a scan)', async () => {
    const prefix = uniqueChannel('range')
    await runInDurableObject(directory(), (instance, state) => {
      for (let index = 0; index < 300; index++) instance.register(`${prefix}-${index}`)
      instance.register(`${prefix}x-1`)
      instance.register(`${prefix}x-2`)
      const rows = countRows(state.storage)
      const page = instance.list({ limit: 10, prefix: `${prefix}x` })
      expect(page).toMatchObject({ total: 2 })
      expect(page.channels.map((entry) => entry.name)).toEqual([`${prefix}x-1`, `${prefix}x-2`])
      const read = rows.read()
      // A scan of the table would read its 302 rows, twice (the page and the count).
      expect(read).toBeLessThan(20)
    })
  })

  it('is told again after a day by an object that stays in memory', async () => {
    const { relay, seen, firstSeen } = await firstBatchTold('daily', 'bridge-d')
    // A day and a bit later, the same object (the socket is still open) stores a batch.
    const later = Date.now() + DIRECTORY_REFRESH_MS + 60_000
    vi.spyOn(Date, 'now').mockReturnValue(later)
    relay.sendBatch(2, [relayMessage([utf8('next day')])])
    await relay.next()
    await vi.waitFor(async () => expect(await seen()).toBe(later))
    expect(later).toBeGreaterThan(firstSeen)
  })

  it('is told at most once a day, not on every batch', async () => {
    const { channel, relay, seen, firstSeen } = await firstBatchTold('once', 'bridge-o')
    await new Promise((resolve) => setTimeout(resolve, 20))
    for (let batchSeq = 2; batchSeq <= 5; batchSeq++) {
      relay.sendBatch(batchSeq, [relayMessage([utf8(`m${batchSeq}`)])])
      await relay.next()
    }
    await openIngest(channel)
    expect(await seen()).toBe(firstSeen)
  })

  it('is not told again by a channel that told it within a day, even after a restart', async () => {
    const channel = uniqueChannel('told')
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    // As if an earlier lifetime of the object had told the directory an hour ago.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.kv.put(DIRECTORY_TOLD_KEY, Date.now() - 3_600_000)
    })
    const relay = await openIngest(channel)
    relay.sendBatch(1, [relayMessage([utf8('x')])])
    await relay.next()
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect((await list(`?prefix=${channel}`)).total).toBe(0)

    // A day later it is told again, and records when.
    const other = uniqueChannel('stale')
    const otherStub = env.CHANNEL.get(env.CHANNEL.idFromName(other))
    await runInDurableObject(otherStub, (_instance, state) => {
      state.storage.kv.put(DIRECTORY_TOLD_KEY, Date.now() - DIRECTORY_REFRESH_MS - 1)
    })
    const before = Date.now()
    await openIngest(other)
    await listUntil(other, (found) => found.total === 1)
    const toldAt = await runInDurableObject(otherStub, (_instance, state) =>
      state.storage.kv.get<number>(DIRECTORY_TOLD_KEY),
    )
    expect(toldAt).toBeGreaterThanOrEqual(before)
  })

  it('never makes ingest fail: a directory failure is logged and retried only later', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const channel = uniqueChannel('nodir')
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    await runInDurableObject(stub, (instance) => {
      const failing = {
        get() {
          throw new Error('directory unavailable')
        },
        idFromName: () => env.DIRECTORY.idFromName(DIRECTORY_NAME),
      }
      ;(instance as unknown as { env: Env }).env = {
        ...env,
        DIRECTORY: failing as unknown as Env['DIRECTORY'],
      }
    })
    const relay = await openIngest(channel)
    for (let batchSeq = 1; batchSeq <= 3; batchSeq++) {
      relay.sendBatch(batchSeq, [relayMessage([utf8(`m${batchSeq}`)])])
      expect(await relay.next()).toMatchObject({ kind: 'ack', lastSeq: batchSeq })
    }
    const failures = () =>
      log.mock.calls.filter(([message]) => message === 'channel directory not told')
    await vi.waitFor(() => expect(failures()).toHaveLength(1))
    expect(failures()[0]?.[1]).toMatchObject({
      channel,
      error: expect.stringContaining('directory unavailable'),
    })
    expect((await list(`?prefix=${channel}`)).total).toBe(0)
  })

  it('refuses a name no channel can have', async () => {
    await runInDurableObject(directory(), (instance) => {
      expect(() => instance.register('')).toThrow(RangeError)
      expect(() => instance.register('x'.repeat(65))).toThrow(RangeError)
      expect(() => instance.list({ limit: 0 })).toThrow(RangeError)
      expect(instance.list({ limit: 10, prefix: 'no-such-' })).toEqual({ channels: [], total: 0 })
    })
  })
})
