// Retention inside workerd: limits by count, bytes and age, a whole segment (a stored batch) at
// a time; `block` NACKing CHANNEL_FULL over the real WebSocket while an active consumer group
// has not acked (nothing lost, segments every group acked trimmed to make room); a channel
// without groups, and `drop-oldest`, dropping the oldest segments, counted in stats.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { parseChannelConfig, type RetentionLimits } from '../../durable/channel-config'
import type { ChannelObject } from '../../durable/channel-object'
import { MessageStore } from '../../durable/message-store'
import { AckStatus, NackCode } from '../../shared/relay-protocol'
import {
  expectQueueCountersExact,
  get,
  ORIGIN,
  openIngest,
  READ_TOKEN,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const stubOf = (channel: string) => env.CHANNEL.get(env.CHANNEL.idFromName(channel))

/** Gives one channel's object other retention limits (the vars hold for every channel). */
async function limit(channel: string, retention: Partial<RetentionLimits>) {
  await runInDurableObject(stubOf(channel), (instance: ChannelObject) => {
    instance.config = {
      ...instance.config,
      retention: { ...instance.config.retention, ...retention },
    }
  })
}

const texts = (messages: { frames: string[] }[]) =>
  messages.map((message) => atob(message.frames[0] ?? ''))

const batch = (...names: string[]) => names.map((name) => relayMessage([utf8(name)]))

// biome-ignore lint/suspicious/noExplicitAny: the test reads arbitrary fields
async function stats(channel: string): Promise<any> {
  return (await get(`/v1/channels/${channel}`, READ_TOKEN)).json()
}

function post(path: string, body: unknown) {
  return exports.default.fetch(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  })
}

async function pullAndAck(channel: string, batchSize: number) {
  const pulled = (await (await post(`/v1/channels/${channel}/pull`, { batchSize })).json()) as {
    messages: { leaseId: string }[]
  }
  const acks = pulled.messages.map((message) => message.leaseId)
  expect((await post(`/v1/channels/${channel}/ack`, { acks })).status).toBe(200)
}

describe('retention settings', () => {
  it('come from the wrangler vars, with defaults, and refuse bad values', () => {
    expect(parseChannelConfig({}).retention).toEqual({
      maxMessages: 1_000_000,
      maxBytes: 1024 * 1024 * 1024,
      maxAgeSeconds: 604_800,
      overflowPolicy: 'block',
    })
    expect(
      parseChannelConfig({
        RETENTION_MAX_MESSAGES: '0',
        RETENTION_MAX_BYTES: '10',
        RETENTION_MAX_AGE_SECONDS: '60',
        OVERFLOW_POLICY: 'drop-oldest',
      }).retention,
    ).toEqual({ maxMessages: 0, maxBytes: 10, maxAgeSeconds: 60, overflowPolicy: 'drop-oldest' })
    expect(() => parseChannelConfig({ OVERFLOW_POLICY: 'drop' })).toThrow(/OVERFLOW_POLICY/)
    expect(() => parseChannelConfig({ RETENTION_MAX_BYTES: '-1' })).toThrow(/RETENTION_MAX_BYTES/)
  })
})

/** Creates consumer group `default` (from the earliest message) with an empty pull. */
async function startGroup(channel: string) {
  expect((await post(`/v1/channels/${channel}/pull`, {})).status).toBe(200)
}

describe('overflow policy block', () => {
  it('NACKs CHANNEL_FULL back to the bridge while a group has not acked, loses nothing, and takes the batch once acked segments make room', async () => {
    const channel = uniqueChannel('block')
    await limit(channel, { maxMessages: 3, overflowPolicy: 'block' })
    await startGroup(channel)
    const relay = await openIngest(channel)
    for (const [index, name] of ['a', 'b', 'c'].entries()) {
      relay.sendBatch(index + 1, batch(name))
      expect(await relay.next()).toMatchObject({ kind: 'ack', status: AckStatus.STORED })
    }

    relay.sendBatch(4, batch('d', 'e'))
    expect(await relay.next()).toMatchObject({
      kind: 'nack',
      batchSeq: 4,
      code: NackCode.CHANNEL_FULL,
    })
    // Later batches of that bridge on the socket wait for the refused one.
    relay.sendBatch(5, batch('f'))
    expect(await relay.next()).toMatchObject({ kind: 'nack', code: NackCode.OUT_OF_ORDER })
    expect(texts((await readPage(channel)).messages)).toEqual(['a', 'b', 'c'])

    // The group acks two: their segments may now leave the log to make room.
    await pullAndAck(channel, 2)
    const resend = await openIngest(channel)
    resend.sendBatch(4, batch('d', 'e'))
    expect(await resend.next()).toMatchObject({
      kind: 'ack',
      status: AckStatus.STORED,
      firstSeq: 4,
    })
    resend.sendBatch(5, batch('f'))
    expect(await resend.next()).toMatchObject({ kind: 'nack', code: NackCode.CHANNEL_FULL })

    // Cursor readers see the log from its new head; seqs are never reused.
    const page = await readPage(channel)
    expect(page.messages.map((message) => message.seq)).toEqual([3, 4, 5])
    const report = await stats(channel)
    expect(report.log).toMatchObject({ messages: 3, oldest: { seq: 3 }, newest: { seq: 5 } })
    expect(report.counters).toMatchObject({ trimmed: 2, dropped: 0, batchesRefused: 2 })
    expect(report.queue.depth).toBe(3)
  })

  it('keeps a segment a group has acked only in part: segments leave whole', async () => {
    const channel = uniqueChannel('block')
    await limit(channel, { maxMessages: 3, overflowPolicy: 'block' })
    await startGroup(channel)
    const relay = await openIngest(channel)
    relay.sendBatch(1, batch('a', 'b', 'c'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    await pullAndAck(channel, 2)
    relay.sendBatch(2, batch('d'))
    expect(await relay.next()).toMatchObject({ kind: 'nack', code: NackCode.CHANNEL_FULL })
    await pullAndAck(channel, 1)
    const resend = await openIngest(channel)
    resend.sendBatch(2, batch('d'))
    expect(await resend.next()).toMatchObject({ kind: 'ack', firstSeq: 4 })
    expect(texts((await readPage(channel)).messages)).toEqual(['d'])
  })

  it('refuses by bytes; a batch larger than the limits itself is split, a message rejected', async () => {
    const channel = uniqueChannel('block')
    await limit(channel, { maxBytes: 10, overflowPolicy: 'block' })
    await startGroup(channel)
    const relay = await openIngest(channel)
    relay.sendBatch(1, batch('12345678'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    relay.sendBatch(2, batch('345'))
    expect(await relay.next()).toMatchObject({ kind: 'nack', code: NackCode.CHANNEL_FULL })
    // Whatever room is made, these never fit: the bridge splits the first, drops the second.
    const other = await openIngest(channel, { bridgeId: 'bridge-2' })
    other.sendBatch(1, batch('012345', '6789ab'))
    const nack = await other.next()
    expect(nack).toMatchObject({ kind: 'nack', code: NackCode.BATCH_TOO_LARGE })
    expect((nack as { reason: string }).reason).toMatch(/at most 10 at once/)
    vi.spyOn(console, 'error').mockImplementation(() => {})
    other.sendBatch(1, batch('0123456789ab'))
    expect(await other.next()).toMatchObject({ kind: 'ack', status: AckStatus.REJECTED })
    expect((await stats(channel)).log).toMatchObject({ messages: 1, bytes: 8 })
  })

  it('makes a channel read by cursors only a log that drops its oldest segments', async () => {
    const channel = uniqueChannel('log')
    await limit(channel, { maxMessages: 1000, overflowPolicy: 'block' })
    const relay = await openIngest(channel)
    for (let batchSeq = 1; batchSeq <= 30; batchSeq++) {
      const names = Array.from(
        { length: 100 },
        (_, index) => `m${(batchSeq - 1) * 100 + index + 1}`,
      )
      relay.sendBatch(batchSeq, batch(...names))
      expect(await relay.next()).toMatchObject({ kind: 'ack', status: AckStatus.STORED })
    }
    const report = await stats(channel)
    expect(report.log).toMatchObject({
      messages: 1000,
      oldest: { seq: 2001 },
      newest: { seq: 3000 },
    })
    expect(report.counters).toMatchObject({ trimmed: 2000, dropped: 0, batchesRefused: 0 })
    expect(report.groups).toEqual([])
  })

  it('stops holding back for a group idle past GROUP_INACTIVE_SECONDS, and reports it inactive', async () => {
    const channel = uniqueChannel('idle')
    await limit(channel, { maxMessages: 2, overflowPolicy: 'block' })
    await startGroup(channel)
    const relay = await openIngest(channel)
    relay.sendBatch(1, batch('a', 'b'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    relay.sendBatch(2, batch('c'))
    expect(await relay.next()).toMatchObject({ kind: 'nack', code: NackCode.CHANNEL_FULL })
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) => {
      instance.config = { ...instance.config, groupInactiveMs: 1 }
    })
    await new Promise((resolve) => setTimeout(resolve, 5))
    const resend = await openIngest(channel)
    resend.sendBatch(2, batch('c'))
    expect(await resend.next()).toMatchObject({ kind: 'ack', firstSeq: 3 })
    const report = await stats(channel)
    expect(report.groups).toMatchObject([{ name: 'default', inactive: true }])
    // Its unacked messages left the log: counted as dropped, and it goes on from the oldest.
    expect(report.counters).toMatchObject({ dropped: 2 })
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) => {
      instance.config = { ...instance.config, groupInactiveMs: 60_000 }
    })
    const pulled = (await (await post(`/v1/channels/${channel}/pull`, {})).json()) as {
      messages: { seq: number }[]
    }
    expect(pulled.messages.map((message) => message.seq)).toEqual([3])
    expect((await stats(channel)).groups).toMatchObject([
      { inactive: false, counters: { dropped: 2 } },
    ])
  })
})

describe('overflow policy drop-oldest', () => {
  it('deletes the oldest segments whatever groups have acked, and counts them', async () => {
    const channel = uniqueChannel('drop')
    await limit(channel, { maxMessages: 4, overflowPolicy: 'drop-oldest' })
    await startGroup(channel)
    const relay = await openIngest(channel)
    for (const [index, name] of ['a', 'b', 'c', 'd'].entries()) {
      relay.sendBatch(index + 1, batch(name))
      expect(await relay.next()).toMatchObject({ kind: 'ack' })
    }
    await pullAndAck(channel, 1) // a is acked
    relay.sendBatch(5, batch('e', 'f', 'g'))
    expect(await relay.next()).toMatchObject({ kind: 'ack', firstSeq: 5, lastSeq: 7 })
    expect(texts((await readPage(channel)).messages)).toEqual(['d', 'e', 'f', 'g'])
    const report = await stats(channel)
    expect(report.counters).toMatchObject({ trimmed: 1, dropped: 2, batchesRefused: 0 })
    expect(report.log).toMatchObject({ messages: 4, bytes: 4 })
    expect(report.queue.depth).toBe(4)
    const pulled = (await (
      await post(`/v1/channels/${channel}/pull`, { batchSize: 10 })
    ).json()) as {
      messages: { seq: number }[]
    }
    expect(pulled.messages.map((message) => message.seq)).toEqual([4, 5, 6, 7])
    await expectQueueCountersExact(channel)
  })

  it('drops by bytes, large messages in pieces included', async () => {
    const channel = uniqueChannel('drop')
    const MiB = 1024 * 1024
    await limit(channel, { maxBytes: 5 * MiB, overflowPolicy: 'drop-oldest' })
    const relay = await openIngest(channel)
    const big = () => relayMessage([new Uint8Array(3 * MiB)])
    relay.sendBatch(1, [big()])
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    relay.sendBatch(2, [big()])
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    const pieces = await runInDurableObject(stubOf(channel), (_instance, state) =>
      state.storage.sql.exec('SELECT DISTINCT first_seq FROM segment_pieces').toArray(),
    )
    expect(pieces).toEqual([{ first_seq: 2 }])
    expect((await stats(channel)).log).toMatchObject({ messages: 1, bytes: 3 * MiB })
  })
})

describe('retention by age', () => {
  it('deletes messages older than the limit by alarm, acked or not, and on the next batch', async () => {
    const channel = uniqueChannel('age')
    await limit(channel, { maxAgeSeconds: 1 })
    const relay = await openIngest(channel)
    relay.sendBatch(1, batch('old1', 'old2'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    const alarm = await runInDurableObject(stubOf(channel), (_instance, state) =>
      state.storage.getAlarm(),
    )
    expect(alarm).toBeGreaterThan(Date.now())
    expect(alarm).toBeLessThanOrEqual(Date.now() + 1_000)
    await new Promise((resolve) => setTimeout(resolve, 1_100))
    // Runs the alarm now rather than waiting for the runtime to.
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) => instance.alarm())
    expect((await readPage(channel)).messages).toEqual([])
    relay.sendBatch(2, batch('new'))
    expect(await relay.next()).toMatchObject({ kind: 'ack', firstSeq: 3 })
    const report = await stats(channel)
    expect(report.counters).toMatchObject({ expired: 2 })
    expect(report.log).toMatchObject({ messages: 1, oldest: { seq: 3 } })
    expect(report.queue.depth).toBe(1)
  })

  it('expires the head exactly at the time the alarm is set for', async () => {
    const channel = uniqueChannel('age')
    await limit(channel, { maxAgeSeconds: 60 })
    const relay = await openIngest(channel)
    relay.sendBatch(1, batch('x'))
    expect(await relay.next()).toMatchObject({ kind: 'ack' })
    const result = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      const store = new MessageStore(state.storage, () => instance.config)
      const at = store.nextExpiryAt() ?? 0
      return { before: store.expire(at - 1), at: store.expire(at), next: store.nextExpiryAt() }
    })
    expect(result).toEqual({ before: 0, at: 1, next: undefined })
  })
})
