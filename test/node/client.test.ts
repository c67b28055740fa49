// The typed HTTP client and its consumer loop against the real Worker under `wrangler dev`:
// cursor reads as an async iterator that long-polls and resumes; consume() with two workers
// whose handlers outlast the visibility timeout (their leases extended, so nothing is delivered
// twice), retries after a handler's failure, a clean stop that settles what ran, and errors no
// retry fixes.

import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { consume } from '../../shared/client/consumer'
import { type LeasedMessage, ZmqEdgeApiError, ZmqEdgeClient } from '../../shared/client/http-client'
import { fedChannel, feedMessage, type RelayFeeder } from '../support/relay-feeder'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

let worker: WranglerDev
const feeders: RelayFeeder[] = []

beforeAll(async () => {
  worker = await startWranglerDev()
}, 90_000)
afterAll(async () => {
  for (const feeder of feeders) feeder.close()
  await worker?.stop()
})

async function channelWith(texts: string[]): Promise<{ channel: string; feeder: RelayFeeder }> {
  const fed = await fedChannel(
    worker.wsUrl,
    TEST_INGEST_TOKEN,
    texts.map((text) => [text]),
    'client',
  )
  feeders.push(fed.feeder)
  return fed
}

const client = () => new ZmqEdgeClient({ url: worker.httpUrl, token: TEST_READ_TOKEN })
const textOf = (message: { frames: string[] | null }) => message.frames?.[0]
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('ZmqEdgeClient', () => {
  it('reads a channel as an async iterator: from a cursor, then what arrives, by long poll', async () => {
    const { channel, feeder } = await channelWith(['a', 'b', 'c'])
    const controller = new AbortController()
    const seen: string[] = []
    const reading = (async () => {
      for await (const message of client().messages(channel, {
        after: 1,
        encoding: 'utf8',
        wait: 5,
        signal: controller.signal,
      })) {
        seen.push(textOf(message) as string)
        if (seen.length === 3) controller.abort()
      }
    })()
    await sleep(500)
    // Sent while the iterator waits in a long poll: it comes without a new request's delay.
    await feeder.send([feedMessage(['d'])])
    await reading
    expect(seen).toEqual(['b', 'c', 'd'])
    const stats = await client().stats(channel)
    expect(stats.log.messages).toBe(4)
    // The last hour: the four messages, however the minutes fell.
    const history = await client().history(channel)
    expect(history.minutes).toHaveLength(60)
    expect(history.minutes.reduce((sum, minute) => sum + (minute.messagesIn ?? 0), 0)).toBe(4)
    expect(history.minutes.at(-1)?.depth).toBe(4)
  })

  it('fails with the API’s error for what no retry fixes', async () => {
    const wrong = new ZmqEdgeClient({ url: worker.httpUrl, token: 'wrong' })
    const error = await wrong.stats('default').catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ZmqEdgeApiError)
    expect(error).toMatchObject({ status: 401, code: 'unauthorized', transient: false })
    const iterator = wrong.messages('default')
    await expect(iterator.next()).rejects.toMatchObject({ code: 'unauthorized' })
  })
})

describe('consume()', () => {
  it('runs two workers whose handlers outlast the lease: extended, each message handled once', async () => {
    const texts = Array.from({ length: 8 }, (_, index) => `job ${index}`)
    const { channel } = await channelWith(texts)
    const controller = new AbortController()
    const handled: Array<{ worker: number; text: string; attempts: number }> = []
    const errors: unknown[] = []
    // Each handler takes 2.5 s, over the 2 s visibility timeout: only extensions keep it.
    const workers = [1, 2].map((worker) =>
      consume(client(), {
        channel,
        concurrency: 2,
        visibilityTimeoutMs: 2000,
        wait: 1,
        signal: controller.signal,
        onError: (error) => errors.push(error),
        handler: async (message) => {
          await sleep(2500)
          handled.push({ worker, text: textOf(message) as string, attempts: message.attempts })
          if (handled.length === texts.length) controller.abort()
        },
      }),
    )
    const results = await Promise.all(workers)
    expect(handled.map((entry) => entry.text).sort()).toEqual(texts)
    expect(handled.every((entry) => entry.attempts === 1)).toBe(true)
    // Both workers took part, and every message was acked.
    expect(new Set(handled.map((entry) => entry.worker))).toEqual(new Set([1, 2]))
    expect(results.reduce((sum, result) => sum + result.acked, 0)).toBe(texts.length)
    expect(errors).toEqual([])
    const stats = await client().stats(channel)
    expect(stats.queue).toMatchObject({ available: 0, inFlight: 0 })
  }, 30_000)

  it('retries a message whose handler throws, after the delay, and acks it once it succeeds', async () => {
    const { channel } = await channelWith(['flaky', 'fine'])
    const controller = new AbortController()
    const deliveries: Array<[string, number]> = []
    const failures: unknown[] = []
    const result = await consume(client(), {
      channel,
      retryDelayMs: 300,
      wait: 1,
      signal: controller.signal,
      onError: (error) => failures.push(error),
      handler: (message: LeasedMessage) => {
        deliveries.push([textOf(message) as string, message.attempts])
        if (textOf(message) === 'flaky' && message.attempts === 1) throw new Error('not yet')
        if (deliveries.length === 3) controller.abort()
      },
    })
    expect(deliveries).toEqual([
      ['flaky', 1],
      ['fine', 1],
      ['flaky', 2],
    ])
    expect(result).toEqual({ acked: 2, failed: 1 })
    expect(failures).toHaveLength(1)
    expect((await client().stats(channel)).queue).toMatchObject({ available: 0, inFlight: 0 })
  })

  it('stops on its signal: no more pulls, the running handler finishes and is acked', async () => {
    const { channel } = await channelWith(['one', 'two', 'three'])
    const controller = new AbortController()
    const started: string[] = []
    let sawStop = false
    const running = consume(client(), {
      channel,
      wait: 1,
      signal: controller.signal,
      handler: async (message, context) => {
        started.push(textOf(message) as string)
        if (started.length === 1) {
          controller.abort()
          sawStop = context.signal.aborted
          await sleep(300)
        }
      },
    })
    expect(await running).toEqual({ acked: 1, failed: 0 })
    expect(started).toEqual(['one'])
    expect(sawStop).toBe(true)
    // The other two were never leased: the next consumer gets them at their first attempt.
    const next = await client().pull(channel, { batchSize: 10, encoding: 'utf8' })
    expect(next.map((message) => [textOf(message), message.attempts])).toEqual([
      ['two', 1],
      ['three', 1],
    ])
  })

  it('retries a handler past handlerTimeoutMs without waiting for it, and checks its options', async () => {
    const { channel } = await channelWith(['hangs'])
    const controller = new AbortController()
    const attempts: number[] = []
    const result = await consume(client(), {
      channel,
      wait: 1,
      handlerTimeoutMs: 300,
      // A delay function that throws: the default delay is used, and nothing crashes.
      retryDelayMs: () => {
        throw new Error('no delay for you')
      },
      signal: controller.signal,
      handler: (message, context) => {
        attempts.push(message.attempts)
        if (message.attempts === 1) return new Promise(() => undefined) // never settles
        expect(context.signal.aborted).toBe(false)
        controller.abort()
      },
    })
    expect(attempts).toEqual([1, 2])
    expect(result).toEqual({ acked: 1, failed: 1 })
    for (const options of [
      { concurrency: 0 },
      { concurrency: Number.NaN },
      { visibilityTimeoutMs: 0.5 },
    ]) {
      await expect(
        consume(client(), { channel, handler: () => undefined, ...options }),
      ).rejects.toThrow(RangeError)
    }
  })

  it('ends with the API’s error when its token cannot consume', async () => {
    const error = await consume(
      new ZmqEdgeClient({ url: worker.httpUrl, token: TEST_INGEST_TOKEN }),
      {
        channel: 'default',
        handler: () => undefined,
      },
    ).catch((caught: unknown) => caught)
    expect(error).toMatchObject({ status: 403, code: 'forbidden' })
  })
})
