// Checks of what a client puts in the URL: the channel name, a message's seq and frame index,
// and the read query. Each returns the typed value or throws an ApiError 400.

import { CHANNEL_NAME_PREFIX, CHANNEL_NAME_RULE, isChannelName } from '../shared/channel-name'
import { ApiError, ErrorCode } from './errors'
import type { FrameEncoding } from './present'

/** `limit` when the query has none. */
export const DEFAULT_LIMIT = 100
/** Largest `limit` accepted (dead letters, the event stream's pages). */
export const MAX_LIMIT = 1000
/**
 * Largest `limit` of a messages read: a page is bounded by its frame octets (8 MiB) anyway,
 * and small messages read fastest in large pages.
 */
export const MAX_READ_LIMIT = 10_000

/**
 * @returns the channel name as given.
 * @throws ApiError 400 invalid_channel when it breaks the channel-name rule (dots only included:
 * `/v1/channels/../messages` would reach another route, as URLs drop such segments).
 */
export function parseChannel(name: string): string {
  if (!isChannelName(name)) {
    throw new ApiError(400, ErrorCode.INVALID_CHANNEL, `channel names are ${CHANNEL_NAME_RULE}`)
  }
  return name
}

/**
 * @returns the consumer group name as given: the channel-name rule.
 * @throws ApiError 400 invalid_group otherwise.
 */
export function parseGroup(name: string): string {
  if (!isChannelName(name)) {
    throw new ApiError(400, ErrorCode.INVALID_GROUP, `group names are ${CHANNEL_NAME_RULE}`)
  }
  return name
}

/**
 * Reads the seq (an integer ≥ 1) and the frame index (an integer ≥ 0) of a frame's path,
 * `/v1/channels/:channel/messages/:seq/frames/:index`.
 * @throws ApiError 400 invalid_path when either is anything else.
 */
export function parseFrameRef(seq: string, index: string): { seq: number; index: number } {
  const number = (value: string) => (/^\d{1,16}$/.test(value) ? Number(value) : Number.NaN)
  const parsed = { seq: number(seq), index: number(index) }
  if (!(Number.isSafeInteger(parsed.seq) && parsed.seq >= 1)) {
    throw new ApiError(400, ErrorCode.INVALID_PATH, 'the seq must be an integer >= 1')
  }
  if (!Number.isSafeInteger(parsed.index)) {
    throw new ApiError(400, ErrorCode.INVALID_PATH, 'the frame index must be an integer >= 0')
  }
  return parsed
}

function integer(value: string, name: string): number {
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(number)) {
    throw new ApiError(400, ErrorCode.INVALID_QUERY, `${name} must be a non-negative integer`)
  }
  return number
}

/**
 * Reads `after` (default 0) and `limit` (default {@link DEFAULT_LIMIT}) of a messages query.
 * @throws ApiError 400 invalid_query when `after` is not an integer ≥ 0 or `limit` is not an
 * integer from 1 to `maxLimit` (default {@link MAX_LIMIT}).
 */
export function parseReadQuery(
  query: Record<string, string | undefined>,
  maxLimit = MAX_LIMIT,
): {
  after: number
  limit: number
} {
  const after = query.after === undefined ? 0 : integer(query.after, 'after')
  const limit = query.limit === undefined ? DEFAULT_LIMIT : integer(query.limit, 'limit')
  if (limit < 1 || limit > maxLimit) {
    throw new ApiError(400, ErrorCode.INVALID_QUERY, `limit must be from 1 to ${maxLimit}`)
  }
  return { after, limit }
}

/**
 * Reads `encoding` of a query: `base64` (the default) or `utf8`.
 * @throws ApiError 400 invalid_query for any other value.
 */
export function parseEncoding(value: string | undefined): FrameEncoding {
  if (value === undefined || value === 'base64') return 'base64'
  if (value === 'utf8') return 'utf8'
  throw new ApiError(400, ErrorCode.INVALID_QUERY, 'encoding must be base64 or utf8')
}

/**
 * Reads the cursor of an event stream: the `Last-Event-ID` header when there is one (a
 * reconnecting EventSource sends it), else the `after` query parameter, else 0.
 * @throws ApiError 400 invalid_query when the one used is not an integer ≥ 0.
 */
export function parseEventCursor(lastEventId: string | undefined, after: string | undefined) {
  if (lastEventId !== undefined && lastEventId.trim() !== '') {
    return integer(lastEventId.trim(), 'Last-Event-ID')
  }
  return after === undefined ? 0 : integer(after, 'after')
}

/** Most channels `GET /v1/channels` lists (each is one call to the channel's object). */
export const MAX_LIST_CHANNELS = 100

/** Orders of a channel listing: by name, or most recently seen first. */
export type ListOrder = 'name' | 'recent'

/**
 * Reads `limit` (1 to {@link MAX_LIST_CHANNELS}, default the most), `prefix` (the start of
 * the channel names to list; default all), `after` (the cursor: the `next` of the previous
 * page, a channel name) and `order` (`name`, the default, or `recent`) of a channel listing.
 * @throws ApiError 400 invalid_query for a limit out of range, a prefix that no channel name
 * could start with, an `after` that is no channel name or an unknown order.
 */
export function parseListQuery(query: Record<string, string | undefined>): {
  limit: number
  prefix: string
  after?: string
  order: ListOrder
} {
  const limit = query.limit === undefined ? MAX_LIST_CHANNELS : integer(query.limit, 'limit')
  if (limit < 1 || limit > MAX_LIST_CHANNELS) {
    throw invalidQuery(`limit must be from 1 to ${MAX_LIST_CHANNELS}`)
  }
  const prefix = query.prefix ?? ''
  if (!CHANNEL_NAME_PREFIX.test(prefix)) {
    throw invalidQuery('prefix must be 1 to 64 characters of A-Z a-z 0-9 . _ -')
  }
  const { after } = query
  if (after !== undefined && !isChannelName(after)) {
    throw invalidQuery('after must be a channel name (the next of the previous page)')
  }
  const order = query.order ?? 'name'
  if (order !== 'name' && order !== 'recent') throw invalidQuery('order must be name or recent')
  return after === undefined ? { limit, prefix, order } : { limit, prefix, after, order }
}

/** Longest `wait`, in seconds, of a long poll (reads and pulls). */
export const MAX_WAIT_SECONDS = 30
/** Largest `batchSize` of a pull, and most lease ids in one ack or extend request. */
export const MAX_BATCH = 1000
/** `batchSize` of a pull that names none. */
export const DEFAULT_BATCH_SIZE = 10
/** Longest lease and longest retry delay: 12 hours, as in Cloudflare Queues and SQS. */
export const MAX_VISIBILITY_TIMEOUT_MS = 12 * 60 * 60 * 1000
/** Lease of a pull that names none. */
export const DEFAULT_VISIBILITY_TIMEOUT_MS = 30_000
/** Longest lease id accepted (ours are 36-character UUIDs). */
const MAX_LEASE_ID_LENGTH = 128

function invalidQuery(message: string): ApiError {
  return new ApiError(400, ErrorCode.INVALID_QUERY, message)
}

function invalidBody(message: string): ApiError {
  return new ApiError(400, ErrorCode.INVALID_BODY, message)
}

/**
 * Reads `wait` (seconds, default 0, up to 3 decimals) of a long-poll query.
 * @returns the wait in milliseconds.
 * @throws ApiError 400 invalid_query when it is not a number from 0 to {@link MAX_WAIT_SECONDS}.
 */
export function parseWait(value: string | undefined): number {
  if (value === undefined) return 0
  const seconds = /^\d{1,2}(\.\d{1,3})?$/.test(value) ? Number(value) : Number.NaN
  if (!(seconds >= 0 && seconds <= MAX_WAIT_SECONDS)) {
    throw invalidQuery(`wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`)
  }
  return Math.round(seconds * 1000)
}

type JsonObject = Record<string, unknown>

function object(value: unknown, allowed: readonly string[], what = 'the body'): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidBody(`${what} must be a JSON object`)
  }
  const extra = Object.keys(value).find((key) => !allowed.includes(key))
  if (extra !== undefined) {
    throw invalidBody(`${what} has an unknown field ${JSON.stringify(extra)}; fields: ${allowed}`)
  }
  return value as JsonObject
}

function integerField(
  body: JsonObject,
  name: string,
  range: { min: number; max: number; default?: number },
): number {
  const value = body[name]
  if (value === undefined && range.default !== undefined) return range.default
  if (
    !Number.isSafeInteger(value) ||
    (value as number) < range.min ||
    (value as number) > range.max
  ) {
    throw invalidBody(`${name} must be an integer from ${range.min} to ${range.max}`)
  }
  return value as number
}

function waitField(body: JsonObject): number {
  const value = body.wait
  if (value === undefined) return 0
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_WAIT_SECONDS)) {
    throw invalidBody(`wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`)
  }
  return Math.round(value * 1000)
}

function leaseId(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LEASE_ID_LENGTH) {
    throw invalidBody(`${name} must be a lease id (a string of 1 to ${MAX_LEASE_ID_LENGTH})`)
  }
  return value
}

function array(body: JsonObject, name: string, required: boolean): unknown[] {
  const value = body[name]
  if (value === undefined && !required) return []
  if (!Array.isArray(value)) throw invalidBody(`${name} must be an array`)
  if (value.length > MAX_BATCH) throw invalidBody(`${name} holds more than ${MAX_BATCH} items`)
  return value
}

/** A pull request's body. */
export interface PullBody {
  batchSize: number
  visibilityTimeoutMs: number
  /** Milliseconds to wait for a message when none is available. */
  waitMs: number
}

/**
 * `{"batchSize"?: 1..1000 = 10, "visibilityTimeoutMs"?: 1..43200000 = 30000, "wait"?: 0..30 s}`
 * @throws ApiError 400 invalid_body for anything else.
 */
export function parsePullBody(value: unknown): PullBody {
  const body = object(value, ['batchSize', 'visibilityTimeoutMs', 'wait'])
  return {
    batchSize: integerField(body, 'batchSize', {
      min: 1,
      max: MAX_BATCH,
      default: DEFAULT_BATCH_SIZE,
    }),
    visibilityTimeoutMs: integerField(body, 'visibilityTimeoutMs', {
      min: 1,
      max: MAX_VISIBILITY_TIMEOUT_MS,
      default: DEFAULT_VISIBILITY_TIMEOUT_MS,
    }),
    waitMs: waitField(body),
  }
}

/** An ack request's body. */
export interface AckBody {
  acks: string[]
  retries: { leaseId: string; delayMs: number }[]
}

/**
 * `{"acks"?: [leaseId], "retries"?: [{"leaseId", "delayMs"?: 0..43200000 = 0}]}`, at least
 * one lease id and at most 1000 in all.
 * @throws ApiError 400 invalid_body for anything else.
 */
export function parseAckBody(value: unknown): AckBody {
  const body = object(value, ['acks', 'retries'])
  const acks = array(body, 'acks', false).map((item, index) => leaseId(item, `acks[${index}]`))
  const retries = array(body, 'retries', false).map((item, index) => {
    const retry = object(item, ['leaseId', 'delayMs'], `retries[${index}]`)
    return {
      leaseId: leaseId(retry.leaseId, `retries[${index}].leaseId`),
      delayMs: integerField(retry, 'delayMs', {
        min: 0,
        max: MAX_VISIBILITY_TIMEOUT_MS,
        default: 0,
      }),
    }
  })
  const total = acks.length + retries.length
  if (total === 0) throw invalidBody('acks and retries are both empty')
  if (total > MAX_BATCH) throw invalidBody(`more than ${MAX_BATCH} lease ids in one request`)
  return { acks, retries }
}

/** An extend request's body. */
export interface ExtendBody {
  leaseIds: string[]
  visibilityTimeoutMs: number
}

/**
 * `{"leaseIds": [leaseId] (1..1000), "visibilityTimeoutMs": 1..43200000}`
 * @throws ApiError 400 invalid_body for anything else.
 */
export function parseExtendBody(value: unknown): ExtendBody {
  const body = object(value, ['leaseIds', 'visibilityTimeoutMs'])
  const leaseIds = array(body, 'leaseIds', true).map((item, index) =>
    leaseId(item, `leaseIds[${index}]`),
  )
  if (leaseIds.length === 0) throw invalidBody('leaseIds is empty')
  const visibilityTimeoutMs = integerField(body, 'visibilityTimeoutMs', {
    min: 1,
    max: MAX_VISIBILITY_TIMEOUT_MS,
  })
  return { leaseIds, visibilityTimeoutMs }
}

/**
 * `{}` (every dead letter) or `{"seqs": [seq] (1..1000)}`.
 * @returns the seqs, or undefined for all.
 * @throws ApiError 400 invalid_body for anything else.
 */
export function parseRedriveBody(value: unknown): { seqs?: number[] } {
  const body = object(value, ['seqs'])
  if (body.seqs === undefined) return {}
  const seqs = array(body, 'seqs', true).map((item, index) => {
    if (!Number.isSafeInteger(item) || (item as number) < 1) {
      throw invalidBody(`seqs[${index}] must be an integer >= 1`)
    }
    return item as number
  })
  if (seqs.length === 0) throw invalidBody('seqs is empty; send {} to redrive every dead letter')
  return { seqs }
}

/** Where a new consumer group starts: before the oldest message, after the newest, or after a seq. */
export type GroupStart = 'earliest' | 'latest' | { afterSeq: number }

/**
 * `{"start"?: "earliest" (the default) | "latest" | {"afterSeq": n ≥ 0}}`
 * @throws ApiError 400 invalid_body for anything else.
 */
export function parseGroupBody(value: unknown): { start: GroupStart } {
  const body = object(value, ['start'])
  const start = body.start ?? 'earliest'
  if (start === 'earliest' || start === 'latest') return { start }
  if (typeof start === 'object' && start !== null && !Array.isArray(start)) {
    const position = object(start, ['afterSeq'], 'start')
    return {
      start: {
        afterSeq: integerField(position, 'afterSeq', { min: 0, max: Number.MAX_SAFE_INTEGER }),
      },
    }
  }
  throw invalidBody('start must be "earliest", "latest" or {"afterSeq": n}')
}
