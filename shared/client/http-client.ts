// A typed client of the Worker's HTTP API, for Node, browsers and Workers (fetch only). Its
// request and answer types are the API's own schemas (../api/schemas.ts, type-only: no zod is
// loaded), so the client and the Worker cannot disagree on a field without the build saying so.
// Cursor reads come as an async iterator that long-polls and resumes; ./consumer.ts runs
// leased consumers on it.

import type { z } from '@hono/zod-openapi'
import type {
  AckRequestSchema,
  AckResponseSchema,
  ChannelHistorySchema,
  ChannelStatsSchema,
  ExtendResponseSchema,
  LeasedMessageSchema,
  MessagePageSchema,
  PullRequestSchema,
} from '../api/schemas.ts'
import type { ApiMessage } from '../api-types.ts'

/** How frames come: base64 always, or text when they are UTF-8 (`binaryFrames` lists others). */
export type FrameEncoding = 'base64' | 'utf8'

export type ChannelStats = z.infer<typeof ChannelStatsSchema>
export type ChannelHistory = z.infer<typeof ChannelHistorySchema>
export type MessagePage = Omit<z.infer<typeof MessagePageSchema>, 'messages'> & {
  messages: ApiMessage[]
}
export type LeasedMessage = ApiMessage &
  Pick<z.infer<typeof LeasedMessageSchema>, 'leaseId' | 'attempts' | 'leaseExpiresAt'>
export type PullOptions = z.input<typeof PullRequestSchema> & {
  group?: string
  encoding?: FrameEncoding
  signal?: AbortSignal
}
export type AckOptions = z.input<typeof AckRequestSchema> & { group?: string }
export type AckResult = z.infer<typeof AckResponseSchema>
export type ExtendResult = z.infer<typeof ExtendResponseSchema>

/** The Worker's error answer, `{"error": {"code", "message"}}`, or a failure to get one. */
export class ZmqEdgeApiError extends Error {
  override readonly name = 'ZmqEdgeApiError'
  constructor(
    /** HTTP status; 0 when no answer came. */
    readonly status: number,
    /** The API's error code (`unauthorized`, `group_not_found`…), or `network`. */
    readonly code: string,
    message: string,
    /** What a Retry-After asked, in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message)
  }

  /** Whether trying again later may succeed: no answer, a 429, or a 5xx. */
  get transient(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500
  }
}

export interface ClientOptions {
  /** The Worker's URL: `http://127.0.0.1:8787` under `npm start`. */
  url: string
  /** A token with the routes' scope: read for reads, consume for pull and ack. */
  token: string
  /** Another fetch (a test's, a proxy's); the global one by default. */
  fetch?: typeof fetch
}

/** The API's routes as methods. */
export class ZmqEdgeClient {
  readonly #base: string
  readonly #token: string
  readonly #fetch: typeof fetch

  constructor(options: ClientOptions) {
    this.#base = options.url.replace(/\/+$/, '')
    this.#token = options.token
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init))
  }

  /** `GET /v1/channels/:channel`: its log, queue, groups, bridges and counters. */
  stats(channel: string, signal?: AbortSignal): Promise<ChannelStats> {
    return this.#json('GET', `/v1/channels/${path(channel)}`, undefined, signal)
  }

  /**
   * `GET /v1/channels/:channel/history`: the last hour, minute by minute (messages in and acked,
   * depth, each group's lag), as the dashboard charts it.
   */
  history(channel: string, signal?: AbortSignal): Promise<ChannelHistory> {
    return this.#json('GET', `/v1/channels/${path(channel)}/history`, undefined, signal)
  }

  /**
   * One page of a cursor read: the messages after `after`, up to `limit`; with `wait` (seconds,
   * up to 30) an empty page waits for the next message first.
   */
  read(
    channel: string,
    options: {
      after?: number
      limit?: number
      wait?: number
      encoding?: FrameEncoding
      signal?: AbortSignal
    } = {},
  ): Promise<MessagePage> {
    const query = new URLSearchParams({ after: String(options.after ?? 0) })
    if (options.limit !== undefined) query.set('limit', String(options.limit))
    if (options.wait !== undefined) query.set('wait', String(options.wait))
    if (options.encoding) query.set('encoding', options.encoding)
    return this.#json(
      'GET',
      `/v1/channels/${path(channel)}/messages?${query}`,
      undefined,
      options.signal,
    )
  }

  /**
   * Every message after `after` (0: from the start), then each new one as it is stored, by long
   * poll: an async iterator that resumes from the last message it gave. Transient failures (no
   * answer, 429, 5xx) are retried after a pause; others end it with their ZmqEdgeApiError.
   * Ends when `signal` aborts (or the loop breaks).
   */
  async *messages(
    channel: string,
    options: {
      after?: number
      wait?: number
      limit?: number
      encoding?: FrameEncoding
      signal?: AbortSignal
    } = {},
  ): AsyncGenerator<ApiMessage, void, undefined> {
    let after = options.after ?? 0
    let failures = 0
    const { signal } = options
    while (!signal?.aborted) {
      let page: MessagePage
      try {
        page = await this.read(channel, {
          after,
          wait: options.wait ?? 20,
          ...(options.limit !== undefined ? { limit: options.limit } : {}),
          ...(options.encoding ? { encoding: options.encoding } : {}),
          ...(signal ? { signal } : {}),
        })
      } catch (error) {
        if (signal?.aborted) return
        if (!(error instanceof ZmqEdgeApiError) || !error.transient) throw error
        failures++
        await pause(backoffMs(failures, error.retryAfterMs), signal)
        continue
      }
      failures = 0
      for (const message of page.messages) {
        yield message
        after = message.seq
      }
      after = Math.max(after, page.next)
    }
  }

  /** `POST …/pull`: leases up to `batchSize` available messages of `group` (`default`). */
  async pull(channel: string, options: PullOptions = {}): Promise<LeasedMessage[]> {
    const { group, encoding, signal, ...body } = options
    const query = encoding ? `?encoding=${encoding}` : ''
    const answer = await this.#json<{ messages: LeasedMessage[] }>(
      'POST',
      `${groupPath(channel, group)}/pull${query}`,
      body,
      signal,
    )
    return answer.messages
  }

  /** `POST …/ack`: acks some leases, makes others available again after their delay. */
  ack(channel: string, options: AckOptions): Promise<AckResult> {
    const { group, ...body } = options
    return this.#json('POST', `${groupPath(channel, group)}/ack`, body)
  }

  /** `POST …/leases/extend`: each unexpired lease now ends `visibilityTimeoutMs` from now. */
  extend(
    channel: string,
    options: { leaseIds: string[]; visibilityTimeoutMs: number; group?: string },
  ): Promise<ExtendResult> {
    const { group, ...body } = options
    return this.#json('POST', `${groupPath(channel, group)}/leases/extend`, body)
  }

  async #json<T>(method: string, route: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    let response: Response
    try {
      response = await this.#fetch(`${this.#base}${route}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#token}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        ...(signal ? { signal } : {}),
      })
    } catch (error) {
      if (signal?.aborted) throw error
      throw new ZmqEdgeApiError(0, 'network', `the Worker did not answer: ${messageOf(error)}`)
    }
    let parsed: unknown
    try {
      const text = await response.text()
      parsed = text ? JSON.parse(text) : undefined
    } catch (error) {
      if (signal?.aborted) throw error
      // The answer broke off, or is not JSON (a proxy's page): as good as no answer.
      if (response.ok || !(error instanceof SyntaxError)) {
        throw new ZmqEdgeApiError(
          0,
          'network',
          `the Worker's answer was cut or unreadable: ${messageOf(error)}`,
        )
      }
      parsed = undefined
    }
    if (!response.ok) {
      const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error
      throw new ZmqEdgeApiError(
        response.status,
        typeof error?.code === 'string' ? error.code : `http_${response.status}`,
        typeof error?.message === 'string'
          ? error.message
          : `${response.status} ${response.statusText}`,
        retryAfterOf(response.headers.get('retry-after')),
      )
    }
    return parsed as T
  }
}

function path(name: string): string {
  return encodeURIComponent(name)
}

function groupPath(channel: string, group: string | undefined): string {
  const base = `/v1/channels/${path(channel)}`
  return group === undefined || group === 'default' ? base : `${base}/groups/${path(group)}`
}

/** A Retry-After is honoured up to an hour. */
const MAX_RETRY_AFTER_MS = 3_600_000

/** A Retry-After header in ms (delay-seconds or an HTTP date), or undefined. */
export function retryAfterOf(header: string | null): number | undefined {
  const value = (header || '').trim()
  if (value === '') return undefined
  const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - Date.now()
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : undefined
}

/** 0.5 s doubling to 30 s after each failure in a row, or what a Retry-After asked if longer. */
export function backoffMs(failures: number, retryAfterMs = 0): number {
  return Math.max(retryAfterMs, Math.min(30_000, 500 * 2 ** (failures - 1)))
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    signal?.addEventListener('abort', done, { once: true })
  })
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
