// The consumer HTTP API inside workerd, over real WebSockets and real SQLite: long-poll cursor
// reads woken by the insert, leased pulls, acks, retries, lease expiry and extension, dead
// letters and redrive, stats, and the migration that brought the queue to existing data.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { decodeGroupState } from '../../durable/group-state'
import type { ApiInlineMessage } from '../../shared/api-types'
import { MAX_DRAIN_BYTES } from '../../worker/body-limit'
import type { ApiLeasedMessage } from '../../worker/present'
import {
  expectQueueCountersExact,
  get,
  ingestBatch,
  ORIGIN,
  openIngest,
  READ_TOKEN,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return exports.default.fetch(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: {
      Authorization: `Bearer ${READ_TOKEN}`,
      'Content-Type': 'application/json',
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

interface PullResponse {
  channel: string
  messages: ApiLeasedMessage<ApiInlineMessage>[]
}

async function pull(channel: string, body: Record<string, unknown> = {}): Promise<PullResponse> {
  const response = await post(`/v1/channels/${channel}/pull`, body)
  expect(response.status).toBe(200)
  return (await response.json()) as PullResponse
}

async function ack(channel: string, body: Record<string, unknown>) {
  const response = await post(`/v1/channels/${channel}/ack`, body)
  expect(response.status).toBe(200)
  return (await response.json()) as {
    acked: number
    retried: number
    deadLettered: number
    unknown: string[]
  }
}

async function stats(channel: string) {
  const response = await get(`/v1/channels/${channel}`, READ_TOKEN)
  expect(response.status).toBe(200)
  // biome-ignore lint/suspicious/noExplicitAny: the test reads arbitrary fields
  return (await response.json()) as any
}

async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status)
  const body = (await response.json()) as { error: { code: string; message: string } }
  expect(body).toEqual({ error: { code, message: expect.any(String) } })
  return body.error
}

const texts = (messages: { frames: string[] }[]) =>
  messages.map((message) => atob(message.frames[0] ?? ''))

/** Stores `count` one-frame messages "m1", "m2", … in one batch. */
async function fill(channel: string, count: number, batchSeq = 1) {
  const messages = Array.from({ length: count }, (_, index) =>
    relayMessage([utf8(`m${index + 1}`)]),
  )
  expect(await ingestBatch(channel, messages, { batchSeq })).toMatchObject({ kind: 'ack' })
}

describe('GET /v1/channels/:channel/messages?wait=', () => {
  it('holds a read on an empty cursor and returns within milliseconds of the insert', async () => {
    const channel = uniqueChannel('poll')
    const relay = await openIngest(channel)
    const startedAt = Date.now()
    let answeredAt = 0
    const read = get(`/v1/channels/${channel}/messages?after=0&wait=5`, READ_TOKEN).then(
      async (response) => {
        answeredAt = Date.now()
        return response
      },
    )
    await sleep(300) // the read is waiting inside the Durable Object by now
    expect(answeredAt).toBe(0)
    relay.sendBatch(1, [relayMessage([utf8('wake up')])])
    expect(await relay.next()).toMatchObject({ kind: 'ack', firstSeq: 1 })
    const ackedAt = Date.now()
    const response = await read
    expect(response.status).toBe(200)
    const page = (await response.json()) as { messages: { frames: string[] }[]; next: number }
    expect(texts(page.messages)).toEqual(['wake up'])
    expect(page.next).toBe(1)
    const wakeMs = answeredAt - ackedAt
    console.log(
      `long-poll wake latency: ${wakeMs} ms after the bridge's ACK (held ${answeredAt - startedAt} ms)`,
    )
    expect(answeredAt - startedAt).toBeGreaterThanOrEqual(300)
    expect(wakeMs).toBeLessThan(300)
  })

  it('returns an empty page when the wait ends with nothing new', async () => {
    const channel = uniqueChannel('poll')
    await fill(channel, 2)
    const startedAt = Date.now()
    const page = await readPage(channel, '?after=2&wait=1')
    const heldMs = Date.now() - startedAt
    console.log(`empty long poll with wait=1 held ${heldMs} ms`)
    expect(page).toEqual({ channel, messages: [], next: 2 })
    expect(heldMs).toBeGreaterThanOrEqual(950)
    expect(heldMs).toBeLessThan(2500)
  })

  it('answers at once when messages are there, and with wait=0 when none are', async () => {
    const channel = uniqueChannel('poll')
    await fill(channel, 3)
    const startedAt = Date.now()
    expect(texts((await readPage(channel, '?after=1&wait=30')).messages)).toEqual(['m2', 'm3'])
    expect((await readPage(channel, '?after=3&wait=0')).messages).toEqual([])
    expect(Date.now() - startedAt).toBeLessThan(500)
  })

  it('is not woken by a duplicate batch', async () => {
    const channel = uniqueChannel('poll')
    await fill(channel, 1)
    const startedAt = Date.now()
    const read = readPage(channel, '?after=1&wait=1')
    await sleep(100)
    await fill(channel, 1) // the same bridge and batchSeq: DUPLICATE, nothing stored
    expect((await read).messages).toEqual([])
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(950)
  })

  it.each(['31', '-1', 'abc', '1.2345', '', '1e1'])('refuses wait=%j with 400', async (wait) => {
    await expectError(
      await get(`/v1/channels/abc/messages?wait=${wait}`, READ_TOKEN),
      400,
      'invalid_query',
    )
  })
})

describe('POST /v1/channels/:channel/pull and /ack', () => {
  it('leases oldest first with lease ids and attempts, and acks remove from the queue', async () => {
    const channel = uniqueChannel('pull')
    await fill(channel, 5)
    const first = await pull(channel, { batchSize: 3, visibilityTimeoutMs: 60_000 })
    expect(first.messages.map((message) => message.seq)).toEqual([1, 2, 3])
    expect(texts(first.messages)).toEqual(['m1', 'm2', 'm3'])
    for (const message of first.messages) {
      expect(message).toMatchObject({
        attempts: 1,
        // Opaque, per message: the pull's lease number and the seq.
        leaseId: expect.stringMatching(new RegExp(`^\\d+\\.${message.seq}$`)),
        peer: { address: '127.0.0.1:5555', mechanism: 'NULL' },
        receivedAt: '2023-11-14T22:13:20.000Z',
      })
      expect(Date.parse(message.leaseExpiresAt)).toBeGreaterThan(Date.now() + 50_000)
    }
    const second = await pull(channel, { batchSize: 10 })
    expect(second.messages.map((message) => message.seq)).toEqual([4, 5])
    expect((await pull(channel)).messages).toEqual([])

    const leaseIds = [...first.messages, ...second.messages].map((message) => message.leaseId)
    // One ack call spans both pulls.
    expect(await ack(channel, { acks: leaseIds })).toEqual({
      channel,
      group: 'default',
      acked: 5,
      retried: 0,
      deadLettered: 0,
      unknown: [],
    })
    // Acked twice: the lease is gone.
    expect(await ack(channel, { acks: [leaseIds[0]] })).toMatchObject({
      acked: 0,
      unknown: [leaseIds[0]],
    })
    expect((await stats(channel)).queue).toEqual({
      depth: 0,
      available: 0,
      inFlight: 0,
      delayed: 0,
      deadLetters: 0,
    })
    // The log is the source of truth: cursor readers still see every acked message.
    expect(texts((await readPage(channel)).messages)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5'])
  })

  it('never leases one message to two concurrent consumers', async () => {
    const channel = uniqueChannel('pull')
    await fill(channel, 50)
    const results = await Promise.all(
      Array.from({ length: 4 }, () => pull(channel, { batchSize: 20 })),
    )
    const seqs = results.flatMap((result) => result.messages.map((message) => message.seq))
    expect(seqs).toHaveLength(50)
    expect(new Set(seqs).size).toBe(50)

    // Consumers waiting on an empty queue, woken together by one batch.
    const waiting = Array.from({ length: 3 }, () => pull(channel, { batchSize: 2, wait: 5 }))
    await sleep(200)
    await fill(channel, 5, 2)
    const woken = (await Promise.all(waiting)).flatMap((result) =>
      result.messages.map((message) => message.seq),
    )
    expect(new Set(woken).size).toBe(woken.length)
    expect(woken.length).toBeGreaterThanOrEqual(2)
    expect(woken.every((seq) => seq > 50)).toBe(true)
    const rest = (await pull(channel, { batchSize: 10 })).messages.map((message) => message.seq)
    expect([...woken, ...rest].sort((a, b) => a - b)).toEqual([51, 52, 53, 54, 55])
  })

  it('redelivers a message whose lease expired, with attempts + 1, and refuses the old lease', async () => {
    const channel = uniqueChannel('pull')
    await fill(channel, 1)
    const [first] = (await pull(channel, { visibilityTimeoutMs: 200 })).messages
    expect(first?.attempts).toBe(1)
    expect((await pull(channel)).messages).toEqual([]) // leased
    const startedAt = Date.now()
    // Waits for the lease to expire, not for an insert.
    const [again] = (await pull(channel, { visibilityTimeoutMs: 60_000, wait: 5 })).messages
    expect(Date.now() - startedAt).toBeLessThan(1500)
    expect(again).toMatchObject({ seq: 1, attempts: 2 })
    expect(again?.leaseId).not.toBe(first?.leaseId)
    expect(await ack(channel, { acks: [first?.leaseId, again?.leaseId] })).toMatchObject({
      acked: 1,
      unknown: [first?.leaseId],
    })
    expect((await stats(channel)).counters).toMatchObject({ leased: 2, redelivered: 1, acked: 1 })
  })

  it('retries with a delay, and an ack of an expired lease not yet re-leased still counts', async () => {
    const channel = uniqueChannel('pull')
    await fill(channel, 2)
    const leased = (await pull(channel, { batchSize: 2, visibilityTimeoutMs: 100 })).messages
    expect(
      await ack(channel, {
        retries: [
          { leaseId: leased[0]?.leaseId, delayMs: 0 },
          { leaseId: leased[1]?.leaseId, delayMs: 400 },
        ],
      }),
    ).toMatchObject({ acked: 0, retried: 2, deadLettered: 0, unknown: [] })
    expect((await stats(channel)).queue).toMatchObject({ depth: 2, available: 1, delayed: 1 })
    const now = await pull(channel, { batchSize: 10, visibilityTimeoutMs: 60_000 })
    expect(now.messages.map((message) => [message.seq, message.attempts])).toEqual([[1, 2]])
    // The delayed one comes once its delay ends: the pull waits for that, not for an insert.
    const later = await pull(channel, { batchSize: 10, visibilityTimeoutMs: 100, wait: 3 })
    expect(later.messages.map((message) => [message.seq, message.attempts])).toEqual([[2, 2]])
    await sleep(200) // seq 2's lease has expired; nobody has leased it again
    expect(
      await ack(channel, { acks: [now.messages[0]?.leaseId, later.messages[0]?.leaseId] }),
    ).toMatchObject({ acked: 2, unknown: [] })
    expect((await stats(channel)).queue.depth).toBe(0)
  })

  it('extends a lease so the message is not redelivered', async () => {
    const channel = uniqueChannel('pull')
    await fill(channel, 1)
    const [message] = (await pull(channel, { visibilityTimeoutMs: 300 })).messages
    const response = await post(`/v1/channels/${channel}/leases/extend`, {
      leaseIds: [message?.leaseId, 'not-a-lease'],
      visibilityTimeoutMs: 10_000,
    })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      channel,
      group: 'default',
      extended: 1,
      unknown: ['not-a-lease'],
    })
    await sleep(500)
    expect((await pull(channel)).messages).toEqual([])
    expect((await stats(channel)).queue).toMatchObject({ inFlight: 1, available: 0 })
    expect(await ack(channel, { acks: [message?.leaseId] })).toMatchObject({ acked: 1 })
  })
})

describe('dead letters', () => {
  it('take a message after its 5th attempt is retried; redrive brings it back', async () => {
    const channel = uniqueChannel('dead')
    await fill(channel, 2)
    for (let attempt = 1; attempt <= 5; attempt++) {
      const [message] = (await pull(channel, { batchSize: 1 })).messages
      expect(message).toMatchObject({ seq: 1, attempts: attempt })
      const outcome = await ack(channel, { retries: [{ leaseId: message?.leaseId }] })
      expect(outcome).toMatchObject(attempt < 5 ? { retried: 1 } : { deadLettered: 1 })
    }
    const response = await get(`/v1/channels/${channel}/dead-letters`, READ_TOKEN)
    expect(response.status).toBe(200)
    const page = (await response.json()) as {
      messages: (ApiLeasedMessage<ApiInlineMessage> & { deadAt: string; reason: string })[]
      next: number
    }
    expect(page.messages).toHaveLength(1)
    expect(page.messages[0]).toMatchObject({ seq: 1, attempts: 5, reason: 'retried' })
    expect(texts(page.messages)).toEqual(['m1'])
    expect(page.next).toBe(1)
    expect((await stats(channel)).queue).toMatchObject({ depth: 1, deadLetters: 1 })
    // The remaining message is still served; the dead one is not.
    expect((await pull(channel, { batchSize: 10 })).messages.map((m) => m.seq)).toEqual([2])

    const redrive = await post(`/v1/channels/${channel}/dead-letters/redrive`, {})
    expect(redrive.status).toBe(200)
    expect(await redrive.json()).toEqual({ channel, group: 'default', redriven: 1 })
    const [back] = (await pull(channel)).messages
    expect(back).toMatchObject({ seq: 1, attempts: 1 })
    expect((await stats(channel)).counters).toMatchObject({ deadLettered: 1, redriven: 1 })
    await expectQueueCountersExact(channel)
  })

  it('take a message whose last lease expires, by alarm, with nobody pulling', async () => {
    const channel = uniqueChannel('dead')
    await fill(channel, 1)
    for (let attempt = 1; attempt <= 5; attempt++) {
      const [message] = (await pull(channel, { visibilityTimeoutMs: 100, wait: 2 })).messages
      expect(message).toMatchObject({ seq: 1, attempts: attempt })
    }
    await sleep(600) // the last lease expires; the alarm runs
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    // Straight from storage, so no request's lazy sweep did the work.
    const rows = await runInDurableObject(stub, (_instance, state) => ({
      dead: state.storage.sql
        .exec('SELECT group_name, seq, attempts, reason FROM group_dead_letters')
        .toArray(),
      state: decodeGroupState(
        state.storage.sql.exec("SELECT state FROM consumer_groups WHERE name = 'default'").one()
          .state as string,
      ),
    }))
    expect(rows.dead).toEqual([{ group_name: 'default', seq: 1, attempts: 5, reason: 'expired' }])
    expect(rows.state).toMatchObject({ pending: [], leases: [] })
    await expectQueueCountersExact(channel)

    const bySeq = await post(`/v1/channels/${channel}/dead-letters/redrive`, { seqs: [1, 99] })
    expect(await bySeq.json()).toEqual({ channel, group: 'default', redriven: 1 })
    expect((await pull(channel)).messages.map((message) => message.attempts)).toEqual([1])
  })
})

describe('a group at its state cap', () => {
  it('refuses retries that would grow it (409 group_full), still takes acks, and loses nothing', async () => {
    const channel = uniqueChannel('full-group')
    for (let batchSeq = 1; batchSeq <= 40; batchSeq++) {
      const messages = Array.from({ length: 1000 }, (_, index) =>
        relayMessage([utf8(`${batchSeq}-${index}`)]),
      )
      expect(await ingestBatch(channel, messages, { batchSeq })).toMatchObject({ kind: 'ack' })
    }
    // First every message tracked in a few runs: each pull's 1000 retried with one delay.
    for (let round = 0; round < 40; round++) {
      const pulled = await pull(channel, { batchSize: 1000, visibilityTimeoutMs: 3_600_000 })
      expect(pulled.messages).toHaveLength(1000)
      const retries = pulled.messages.map((message) => ({
        leaseId: message.leaseId,
        delayMs: 3000,
      }))
      expect((await post(`/v1/channels/${channel}/ack`, { retries })).status).toBe(200)
    }
    await sleep(3100)
    // Then retried again with alternating delays: a run per message, ~30 octets of state each.
    let refused: Response | undefined
    let leaseIds: string[] = []
    for (let round = 0; round < 40 && !refused; round++) {
      const pulled = await pull(channel, { batchSize: 1000, visibilityTimeoutMs: 3_600_000 })
      leaseIds = pulled.messages.map((message) => message.leaseId)
      expect(leaseIds).toHaveLength(1000)
      const response = await post(`/v1/channels/${channel}/ack`, {
        retries: leaseIds.map((leaseId, index) => ({
          leaseId,
          delayMs: 3_600_000 + (index % 2) * 1000,
        })),
      })
      if (response.status === 409) refused = response
      else expect(response.status).toBe(200)
    }
    if (!refused) throw new Error('the state never reached its cap')
    expect(await refused.json()).toEqual({
      error: { code: 'group_full', message: expect.stringMatching(/ack leases/) },
    })
    // The refused call changed nothing: those leases are still current, and acks go through.
    expect(await ack(channel, { acks: leaseIds })).toMatchObject({ acked: 1000, unknown: [] })
    const report = await stats(channel)
    expect(report.groups[0].lag.messages).toBe(40_000 - 1000)
    expect(texts((await readPage(channel, '?after=39999')).messages)).toEqual(['40-999'])
  }, 60_000)
})

describe('GET /v1/channels/:channel', () => {
  it('reports the log, the queue, connected bridges and counters', async () => {
    const channel = uniqueChannel('stats')
    const empty = await stats(channel)
    expect(empty.log).toEqual({ messages: 0, bytes: 0, oldest: null, newest: null })
    expect(empty.bridges).toEqual({ connected: 0, known: 0, connections: [] })

    const relay = await openIngest(channel, { bridgeId: 'bridge-a' })
    relay.sendBatch(1, [
      relayMessage([utf8('abc'), utf8('de')], { receivedAt: Date.now() - 10_000 }),
      relayMessage([utf8('fghij')]),
    ])
    await relay.next()
    relay.sendBatch(1, [relayMessage([utf8('dup')])])
    await relay.next()
    await pull(channel, { batchSize: 1 })

    const report = await stats(channel)
    expect(report.channel).toBe(channel)
    expect(report.log).toMatchObject({
      messages: 2,
      bytes: 10,
      oldest: { seq: 1 },
      newest: { seq: 2, receivedAt: '2023-11-14T22:13:20.000Z' },
    })
    expect(report.log.oldest.ageMs).toBeGreaterThanOrEqual(10_000)
    expect(report.log.oldest.ageMs).toBeLessThan(20_000)
    expect(report.queue).toEqual({
      depth: 2,
      available: 1,
      inFlight: 1,
      delayed: 0,
      deadLetters: 0,
    })
    expect(report.bridges).toEqual({
      connected: 1,
      known: 1,
      connections: [{ bridgeId: 'bridge-a', connectedAt: expect.any(String), lastBatchSeq: 1 }],
    })
    expect(report.counters).toEqual({
      messagesStored: 2,
      batchesStored: 1,
      batchesDuplicate: 1,
      messagesDuplicate: 0,
      leased: 1,
      redelivered: 0,
      acked: 0,
      retried: 0,
      deadLettered: 0,
      redriven: 0,
      dropped: 0,
      trimmed: 0,
      expired: 0,
      batchesRefused: 0,
      batchesInvalid: 0,
      messagesRejected: 0,
    })
    expect(report.config).toEqual({
      maxAttempts: 5,
      groupInactiveMs: 86_400_000,
      maxMessageBytes: 16 * 1024 * 1024,
      retention: {
        maxMessages: 1_000_000,
        maxBytes: 1024 * 1024 * 1024,
        maxAgeSeconds: 604_800,
        overflowPolicy: 'block',
      },
    })
  })
})

describe('request validation on the consumer routes', () => {
  it.each(
    (
      [
        ['pull', { batchSize: 0 }],
        ['pull', { batchSize: 1001 }],
        ['pull', { batchSize: '10' }],
        ['pull', { visibilityTimeoutMs: 0 }],
        ['pull', { visibilityTimeoutMs: 43_200_001 }],
        ['pull', { wait: 31 }],
        ['pull', { wait: -1 }],
        ['pull', { batch_size: 10 }],
        ['pull', []],
        ['ack', {}],
        ['ack', { acks: [] }],
        ['ack', { acks: [1] }],
        ['ack', { acks: [''] }],
        ['ack', { acks: Array.from({ length: 1001 }, () => 'x') }],
        ['ack', { retries: [{ leaseId: 'x', delayMs: -1 }] }],
        ['ack', { retries: [{ leaseId: 'x', delay: 1 }] }],
        ['leases/extend', { leaseIds: ['x'] }],
        ['leases/extend', { leaseIds: [], visibilityTimeoutMs: 1000 }],
        ['dead-letters/redrive', { seqs: [] }],
        ['dead-letters/redrive', { seqs: [0] }],
        ['dead-letters/redrive', { seqs: 'all' }],
      ] as [string, unknown][]
    ).map(([route, body]) => [route, JSON.stringify(body).slice(0, 60), body] as const),
  )('POST %s %s → 400 invalid_body', async (route, _shown, body) => {
    await expectError(await post(`/v1/channels/abc/${route}`, body), 400, 'invalid_body')
  })

  it('refuses malformed JSON (400), other media types (415) and large bodies (413)', async () => {
    await expectError(await post('/v1/channels/abc/pull', '{"batchSize":'), 400, 'invalid_body')
    await expectError(
      await post('/v1/channels/abc/pull', '{}', { 'Content-Type': 'text/plain' }),
      415,
      'unsupported_media_type',
    )
    await expectError(
      await post('/v1/channels/abc/ack', { acks: ['x'.repeat(300 * 1024)] }),
      413,
      'payload_too_large',
    )
  })

  it('takes every JSON media type, parameters spaced or not, and names the fault briefly', async () => {
    for (const type of [
      'application/json ; charset=utf-8',
      'application/json;',
      'application/json; charset=utf-8;',
      'application/vnd.acme.v2+json',
      'APPLICATION/JSON',
    ]) {
      const response = await post(
        `/v1/channels/${uniqueChannel('types')}/pull`,
        {},
        { 'Content-Type': type },
      )
      expect({ type, status: response.status }).toEqual({ type, status: 200 })
    }
    // Every unknown key of a large body would be quoted: the message says the start of it.
    const keys = Object.fromEntries(Array.from({ length: 5000 }, (_, index) => [`k${index}`, 1]))
    const error = await expectError(await post('/v1/channels/abc/pull', keys), 400, 'invalid_body')
    expect(error.message.length).toBeLessThanOrEqual(301)
    const start = await expectError(
      await exports.default.fetch(`${ORIGIN}/v1/channels/abc/groups/g`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ start: 'middle' }),
      }),
      400,
      'invalid_body',
    )
    expect(start.message).toContain('"earliest", "latest"')
    // A message of ours names its field once; zod's get the field's path in front.
    const limit = await expectError(
      await get('/v1/channels/abc/messages?limit=0', READ_TOKEN),
      400,
      'invalid_query',
    )
    expect(limit.message).toBe('limit must be an integer from 1 to 10000')
    const retry = await expectError(
      await post('/v1/channels/abc/ack', { retries: [{ leaseId: 7 }] }),
      400,
      'invalid_body',
    )
    expect(retry.message).toMatch(/^retries\.0\.leaseId: /)
  })

  /** `text` as a body without a length (chunked), 16 KiB at a time, counting what was pulled. */
  function countedBody(text: string, piece = 16 * 1024) {
    const bytes = new TextEncoder().encode(text)
    const counter = { sent: 0, cancelled: false }
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (counter.sent >= bytes.length) return controller.close()
        const chunk = bytes.subarray(counter.sent, counter.sent + piece)
        counter.sent += chunk.length
        controller.enqueue(chunk)
      },
      cancel() {
        counter.cancelled = true
      },
    })
    return { bytes, counter, stream }
  }

  const postStream = (path: string, stream: ReadableStream) =>
    exports.default.fetch(`${ORIGIN}${path}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
      body: stream,
    })

  it('reads a chunked body within the limit, and drains one over it before the 413', async () => {
    const small = countedBody(JSON.stringify({ acks: ['a'.repeat(100), 'b'] }), 10)
    const accepted = await postStream('/v1/channels/abc/ack', small.stream)
    expect(accepted.status).toBe(200)
    expect(await accepted.json()).toMatchObject({ acked: 0, unknown: ['a'.repeat(100), 'b'] })

    // Read to the end (not left half read), so workerd keeps the connection usable.
    const oversized = (octets: number) => JSON.stringify({ acks: ['x'.repeat(octets)] })
    const large = countedBody(oversized(300 * 1024))
    await expectError(
      await postStream('/v1/channels/abc/ack', large.stream),
      413,
      'payload_too_large',
    )
    expect(large.counter).toEqual({ sent: large.bytes.length, cancelled: false })

    // Past MAX_DRAIN_BYTES of it, the rest is cancelled instead: not all of it is pulled.
    const huge = countedBody(oversized(256 * 1024 + MAX_DRAIN_BYTES + 512 * 1024))
    await expectError(
      await postStream('/v1/channels/abc/ack', huge.stream),
      413,
      'payload_too_large',
    )
    expect(huge.counter.sent).toBeLessThan(huge.bytes.length)
  })

  it.each([
    ['GET', ''],
    ['POST', '/pull'],
    ['POST', '/ack'],
    ['POST', '/leases/extend'],
    ['GET', '/dead-letters'],
    ['POST', '/dead-letters/redrive'],
  ])('%s /v1/channels/:channel%s needs the read token (401)', async (method, route) => {
    const response = await exports.default.fetch(`${ORIGIN}/v1/channels/abc${route}`, {
      method,
      headers: { 'Content-Type': 'application/json' },
      ...(method === 'POST' ? { body: '{}' } : {}),
    })
    await expectError(response, 401, 'unauthorized')
  })

  it('checks the channel name on every consumer route', async () => {
    await expectError(await get('/v1/channels/a:b', READ_TOKEN), 400, 'invalid_channel')
    await expectError(await post('/v1/channels/a:b/pull', {}), 400, 'invalid_channel')
  })
})
