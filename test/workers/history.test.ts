// A channel's last hour (GET /v1/channels/:channel/history) inside workerd: batches relayed over
// the WebSocket, pulls and acks over HTTP, the minute's counts and gauges as the dashboard charts
// them; no row written for it per batch; and the same minute after the object starts again
// from storage.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { afterEach, describe, expect, it } from 'vitest'
import type { ChannelObject } from '../../durable/channel-object'
import { HISTORY_MINUTES } from '../../shared/api/limits'
import { ChannelHistorySchema } from '../../shared/api/schemas'
import {
  closeAllIngest,
  countRows,
  errorCode,
  get,
  ORIGIN,
  openIngest,
  READ_TOKEN,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

afterEach(closeAllIngest)

const stubOf = (channel: string) => env.CHANNEL.get(env.CHANNEL.idFromName(channel))

async function history(channel: string) {
  const response = await get(`/v1/channels/${channel}/history`, READ_TOKEN)
  expect(response.status).toBe(200)
  expect(response.headers.get('Cache-Control')).toBe('no-store')
  return ChannelHistorySchema.parse(await response.json())
}

/** A count over the whole hour: the test may cross a minute's end. */
function hourTotal(minutes: { messagesIn: number | null; acked: number | null }[]) {
  return {
    messagesIn: minutes.reduce((sum, minute) => sum + (minute.messagesIn ?? 0), 0),
    acked: minutes.reduce((sum, minute) => sum + (minute.acked ?? 0), 0),
  }
}

async function consume(channel: string, count: number): Promise<number> {
  const call = (path: string, body: unknown) =>
    exports.default.fetch(`${ORIGIN}/v1/channels/${channel}/${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    })
  const pulled = (await (await call('pull', { batchSize: count })).json()) as {
    messages: { leaseId: string }[]
  }
  const acked = (await (
    await call('ack', { acks: pulled.messages.map((message) => message.leaseId) })
  ).json()) as { acked: number }
  return acked.acked
}

/** Rows the channel has written, as its stats meter them. */
async function rowsWritten(channel: string): Promise<number> {
  const stats = (await (await get(`/v1/channels/${channel}`, READ_TOKEN)).json()) as {
    cost: { rowsWritten: number }
  }
  return stats.cost.rowsWritten
}

/** Sends batches on one socket and waits for each ACK. */
async function relay(channel: string, sizes: number[], firstBatchSeq = 1): Promise<void> {
  const socket = await openIngest(channel)
  for (const [index, size] of sizes.entries()) {
    const messages = Array.from({ length: size }, (_, n) => relayMessage([utf8(`m${n}`)]))
    socket.sendBatch(firstBatchSeq + index, messages)
    expect((await socket.next()).kind).toBe('ack')
  }
}

describe('GET /v1/channels/:channel/history', () => {
  it('counts the minute: messages in, acked, depth and each group lag', async () => {
    const channel = uniqueChannel('hist')
    await relay(channel, [5, 3])
    expect(await consume(channel, 6)).toBe(6)
    const body = await history(channel)
    expect(body.channel).toBe(channel)
    expect(body.minutes).toHaveLength(HISTORY_MINUTES)
    const current = body.minutes.at(-1)
    expect(current).toMatchObject({ depth: 8, lag: { default: 2 } })
    expect(hourTotal(body.minutes)).toEqual({ messagesIn: 8, acked: 6 })
    expect(current?.seconds).toBeGreaterThanOrEqual(1)
    const now = Date.parse(body.now)
    expect(Date.parse(current?.start ?? '')).toBe(Math.floor(now / 60_000) * 60_000)
    // Minutes are a minute apart, oldest first; before the channel's first batch: unknown.
    const starts = body.minutes.map((minute) => Date.parse(minute.start))
    expect(starts.slice(1).map((start, index) => start - (starts[index] as number))).toEqual(
      Array(HISTORY_MINUTES - 1).fill(60_000),
    )
    const before = body.minutes.at(-3)
    expect(before).toMatchObject({ messagesIn: null, acked: null, depth: null, lag: {} })
  })

  it('answers for a channel with nothing stored: zeros now, unknown before', async () => {
    const body = await history(uniqueChannel('hist-empty'))
    expect(body.minutes.at(-1)).toMatchObject({ messagesIn: 0, acked: 0, depth: 0, lag: {} })
    expect(body.minutes[0]).toMatchObject({ messagesIn: null, depth: null })
  })

  it('writes no row for it per batch', async () => {
    const channel = uniqueChannel('hist-rows')
    // The first batch writes the channel's state (never written before) and its session.
    await relay(channel, [10])
    const before = await rowsWritten(channel)
    await relay(channel, [10, 10, 10], 2)
    // Three segments; the state (with the history in it) waits for its minute.
    expect((await rowsWritten(channel)) - before).toBe(3)
    expect(hourTotal((await history(channel)).minutes).messagesIn).toBe(40)
  })

  it('is read from memory: no row read or written to answer it', async () => {
    const channel = uniqueChannel('hist-read')
    await relay(channel, [3, 3])
    expect(await consume(channel, 2)).toBe(2)
    const cost = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      const rows = countRows(state.storage)
      const answer = instance.history()
      return { read: rows.read(), written: rows.written(), depth: answer.minutes.at(-1)?.depth }
    })
    expect(cost).toEqual({ read: 0, written: 0, depth: 6 })
  })

  it('survives a refused request: no group rebuilt from storage, nothing read', async () => {
    const channel = uniqueChannel('hist-refused')
    await relay(channel, [2])
    const cost = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      const rows = countRows(state.storage)
      const refused = instance.deadLetters({ group: 'nope', after: 0, limit: 10, maxBytes: 1024 })
      return { refused, read: rows.read(), written: rows.written() }
    })
    expect(cost).toEqual({
      refused: { ok: false, reason: 'group_not_found' },
      read: 0,
      written: 0,
    })
    expect(hourTotal((await history(channel)).minutes).messagesIn).toBe(2)
  })

  it('keeps the minute when the object starts again from storage', async () => {
    const channel = uniqueChannel('hist-restart')
    await relay(channel, [4, 4])
    expect(await consume(channel, 3)).toBe(3)
    expect(hourTotal((await history(channel)).minutes)).toEqual({ messagesIn: 8, acked: 3 })
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) =>
      instance.restartForTests(),
    )
    const after = await history(channel)
    expect(after.minutes.at(-1)).toMatchObject({ depth: 8, lag: { default: 5 } })
    // Counted from the sample written with the state: nothing lost, nothing twice.
    expect(hourTotal(after.minutes)).toEqual({ messagesIn: 8, acked: 3 })
  })

  it('refuses a channel name that is not one', async () => {
    const response = await get('/v1/channels/..%2Fx/history', READ_TOKEN)
    expect(response.status).toBe(400)
    expect(await errorCode(response)).toBe('invalid_channel')
  })
})
