// A leased consumer on the typed client: pulls a consumer group's messages, runs a handler on
// each (up to `concurrency` at once), extends the leases of those still running, acks the ones
// that succeeded and retries the others after a delay, and on its signal stops pulling, lets
// the running handlers finish and settles them before it resolves. What sqs-consumer and
// Cloudflare Queues' consumers do, so a handler that takes longer than the visibility timeout
// keeps its message, and a crash only delays it.

import {
  backoffMs,
  type FrameEncoding,
  type LeasedMessage,
  pause,
  ZmqEdgeApiError,
  type ZmqEdgeClient,
} from './http-client.ts'

export interface ConsumeOptions {
  channel: string
  /** The consumer group (`default`, created by its first pull; others with PUT …/groups/:group). */
  group?: string
  /** Runs once per delivery: resolving acks the message, throwing retries it after a delay. */
  handler: (message: LeasedMessage, context: HandlerContext) => unknown
  /** Handlers running at once (default 1). */
  concurrency?: number
  /** Most messages one pull leases (default: `concurrency`; never more than are free). */
  batchSize?: number
  /** Each lease's length, extended while its handler runs (default 30 s). */
  visibilityTimeoutMs?: number
  /** Before a failed message is offered again, ms: fixed, or by message and error (default: 1 s
   * doubling with its attempts, at most 5 min). */
  retryDelayMs?: number | ((message: LeasedMessage, error: unknown) => number)
  /**
   * Longest a handler may run, ms: past it, its message is retried (its handler's signal
   * aborts, and what it does after is not waited for). Default: no limit, its lease extended
   * for as long as it runs.
   */
  handlerTimeoutMs?: number
  /** Long-poll wait of each pull, seconds (default 20). */
  wait?: number
  /** Frames as text when UTF-8 (`utf8`, the default) or always base64. */
  encoding?: FrameEncoding
  /** Stops the consumer: no more pulls, the running handlers finish, their messages settle. */
  signal?: AbortSignal
  /** Told of failures it retries (no answer, 429, 5xx) and of a handler's error. */
  onError?: (error: unknown, message?: LeasedMessage) => void
}

export interface HandlerContext {
  /**
   * Aborted when the consumer stops, when the message's lease was lost (not extended), or when
   * the handler ran past `handlerTimeoutMs` (its reason a {@link HandlerTimeoutError}).
   */
  signal: AbortSignal
}

/** Why a handler's signal aborted when it ran past `handlerTimeoutMs`. */
export class HandlerTimeoutError extends Error {
  override readonly name = 'HandlerTimeoutError'
  constructor(readonly timeoutMs: number) {
    super(`the handler ran over ${timeoutMs} ms`)
  }
}

export interface ConsumeResult {
  /** Messages whose handler resolved and whose ack was taken. */
  acked: number
  /** Deliveries whose handler threw (retried, or dead letters on their last attempt). */
  failed: number
}

/** Most lease ids one ack or extend carries (the API's limit). */
const MAX_IDS = 1000
/** Longest visibility timeout and retry delay the API takes, ms (12 hours). */
const MAX_DELAY_MS = 43_200_000

function wholeNumber(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be a whole number from ${min} to ${max}, got ${value}`)
  }
  return value
}

interface Running {
  message: LeasedMessage
  controller: AbortController
}

/**
 * Consumes `options.channel`'s group until `options.signal` aborts.
 * @returns what it settled, once stopped and settled.
 * @throws ZmqEdgeApiError for an answer no retry fixes (401, 403, 404…), after settling what ran.
 */
export async function consume(
  client: ZmqEdgeClient,
  options: ConsumeOptions,
): Promise<ConsumeResult> {
  const concurrency = wholeNumber('concurrency', options.concurrency ?? 1, 1, 1000)
  const batchSize = wholeNumber('batchSize', options.batchSize ?? concurrency, 1, 1000)
  const visibilityTimeoutMs = wholeNumber(
    'visibilityTimeoutMs',
    options.visibilityTimeoutMs ?? 30_000,
    1,
    MAX_DELAY_MS,
  )
  const handlerTimeoutMs =
    options.handlerTimeoutMs === undefined
      ? undefined
      : wholeNumber('handlerTimeoutMs', options.handlerTimeoutMs, 1, Number.MAX_SAFE_INTEGER)
  const { channel, group, signal } = options
  const target = group === undefined ? {} : { group }
  const result: ConsumeResult = { acked: 0, failed: 0 }
  const running = new Map<string, Running>()
  const acks: string[] = []
  const retries: { leaseId: string; delayMs: number }[] = []
  let fatal: unknown
  let drain: Promise<void> | undefined
  // Resolved whenever a handler finishes: the pull loop waits on it for a free slot.
  let slotFreed: () => void = () => {}

  // On stop: a pull waiting on the Worker is aborted, and running handlers are told.
  const pulls = new AbortController()
  const stopped = new Promise<void>((resolve) =>
    pulls.signal.addEventListener('abort', () => resolve(), { once: true }),
  )
  const stop = () => {
    pulls.abort()
    for (const { controller } of running.values()) controller.abort(new Error('stopped'))
  }
  if (signal?.aborted) stop()
  signal?.addEventListener('abort', stop, { once: true })

  const report = (error: unknown, message?: LeasedMessage) => {
    try {
      options.onError?.(error, message)
    } catch {
      // A reporter's own failure is not the consumer's.
    }
  }

  // Sends the acks and retries gathered, one request at a time, until none is left. `drain` is
  // cleared in the same turn as the check that found nothing left, so what a handler pushes
  // after it starts another.
  const sendAll = async (): Promise<void> => {
    let failures = 0
    try {
      while (acks.length > 0 || retries.length > 0) {
        const ackIds = acks.splice(0, MAX_IDS)
        const retried = retries.splice(0, MAX_IDS - ackIds.length)
        try {
          const answer = await client.ack(channel, {
            ...target,
            ...(ackIds.length ? { acks: ackIds } : {}),
            ...(retried.length ? { retries: retried } : {}),
          })
          const unknown = new Set(answer.unknown)
          result.acked += ackIds.filter((id) => !unknown.has(id)).length
          failures = 0
        } catch (error) {
          // Stopping with the Worker unreachable: given up after a few tries (the leases
          // expire and the messages come again; nothing acked is lost).
          const givingUp = pulls.signal.aborted && failures >= 4
          if (error instanceof ZmqEdgeApiError && error.transient && !givingUp) {
            // Kept for the next try: a lost ack would deliver the message again.
            acks.unshift(...ackIds)
            retries.unshift(...retried)
            report(error)
            await pause(backoffMs(++failures, error.retryAfterMs))
            continue
          }
          if (givingUp) report(error)
          else fatal ??= error
          return
        }
      }
    } finally {
      drain = undefined
    }
  }

  // Started only with something to send: its first step waits on the Worker, so `drain` is
  // set before it can end.
  const settle = (): Promise<void> => {
    if (drain === undefined && (acks.length > 0 || retries.length > 0)) drain = sendAll()
    return drain ?? Promise.resolve()
  }

  // A delay the API takes, whatever the option gives (a function that throws or returns
  // anything but a number falls back to the default): a retry it refused would hold the acks
  // sent with it.
  const retryDelay = (message: LeasedMessage, error: unknown): number => {
    const fallback = Math.min(300_000, 1000 * 2 ** Math.max(0, message.attempts - 1))
    let delay: unknown = options.retryDelayMs
    if (typeof delay === 'function') {
      try {
        delay = delay(message, error)
      } catch (thrown) {
        report(thrown, message)
        delay = undefined
      }
    }
    if (typeof delay !== 'number' || !Number.isFinite(delay)) return fallback
    return Math.max(0, Math.min(MAX_DELAY_MS, Math.round(delay)))
  }

  const run = async (message: LeasedMessage, controller: AbortController) => {
    let timer: ReturnType<typeof setTimeout> | undefined
    try {
      const handled = Promise.resolve().then(() =>
        options.handler(message, { signal: controller.signal }),
      )
      if (handlerTimeoutMs === undefined) {
        await handled
      } else {
        // What the handler does past its time is not waited for (nor reported).
        handled.catch(() => undefined)
        await Promise.race([
          handled,
          new Promise((_, reject) => {
            timer = setTimeout(() => {
              const timeout = new HandlerTimeoutError(handlerTimeoutMs)
              controller.abort(timeout)
              reject(timeout)
            }, handlerTimeoutMs)
          }),
        ])
      }
      acks.push(message.leaseId)
    } catch (error) {
      result.failed++
      report(error, message)
      retries.push({ leaseId: message.leaseId, delayMs: retryDelay(message, error) })
    } finally {
      clearTimeout(timer)
      running.delete(message.leaseId)
      slotFreed()
    }
    await settle()
  }

  // Extends the running messages' leases a third of the way into each timeout.
  const extending = setInterval(
    async () => {
      const leaseIds = [...running.keys()]
      for (let start = 0; start < leaseIds.length; start += MAX_IDS) {
        const ids = leaseIds.slice(start, start + MAX_IDS)
        try {
          const answer = await client.extend(channel, {
            ...target,
            leaseIds: ids,
            visibilityTimeoutMs,
          })
          // Not extended: the lease expired, and the message may be someone else's now.
          for (const id of answer.unknown)
            running.get(id)?.controller.abort(new Error('lease lost'))
        } catch (error) {
          report(error)
        }
      }
    },
    Math.max(1000, Math.floor(visibilityTimeoutMs / 3)),
  )
  const handlers = new Set<Promise<void>>()
  let failures = 0
  try {
    while (!pulls.signal.aborted && fatal === undefined) {
      const free = concurrency - running.size
      if (free === 0) {
        await Promise.race([new Promise<void>((resolve) => (slotFreed = resolve)), stopped])
        continue
      }
      let leased: LeasedMessage[]
      try {
        leased = await client.pull(channel, {
          ...target,
          batchSize: Math.min(batchSize, free),
          visibilityTimeoutMs,
          wait: options.wait ?? 20,
          encoding: options.encoding ?? 'utf8',
          signal: pulls.signal,
        })
        failures = 0
      } catch (error) {
        if (pulls.signal.aborted) break
        if (!(error instanceof ZmqEdgeApiError) || !error.transient) throw error
        report(error)
        await pause(backoffMs(++failures, error.retryAfterMs), pulls.signal)
        continue
      }
      for (const message of leased) {
        const controller = new AbortController()
        running.set(message.leaseId, { message, controller })
        const handled = run(message, controller)
        handlers.add(handled)
        void handled.finally(() => handlers.delete(handled))
      }
    }
  } finally {
    signal?.removeEventListener('abort', stop)
    // Stopped (or failed): what runs finishes and is settled before this returns.
    await Promise.allSettled([...handlers])
    // A drain may be under way: it sends what was pushed while it ran.
    while (fatal === undefined && (drain !== undefined || acks.length > 0 || retries.length > 0)) {
      await settle()
      if (pulls.signal.aborted && drain === undefined) break
    }
    clearInterval(extending)
  }
  if (fatal !== undefined) throw fatal
  return result
}
