// The dashboard's requests to the Worker's API: with a token (the read token, or the Keys
// panel's admin token), never cached nor with cookies, and a failure as an ApiFailure (status,
// the API's error code, how long a Retry-After asks to wait). The answers' types come from the API's schemas (type-only: no zod reaches the
// page); the answers are not checked against them (that would need the schemas' code here).

import type { z } from '@hono/zod-openapi'
import type {
  ChannelHistorySchema,
  ChannelListSchema,
  MessagePageSchema,
} from '../../../shared/api/schemas'
import type { ApiMessage } from '../../../shared/api-types'
import { retryAfterOf, ZmqEdgeApiError } from '../../../shared/client/http-client'

type Listing = z.infer<typeof ChannelListSchema>
type Listed = Listing['channels'][number]

/** A channel of the listing whose stats could not be read: its name and the error. */
export type ChannelFailure = Extract<Listed, { error: unknown }>

/** A channel's stats in the listing. */
export type ChannelStats = Exclude<Listed, ChannelFailure>

/** One channel of `GET /v1/channels`. */
export type ChannelEntry = ChannelStats | ChannelFailure

/** `GET /v1/channels`. */
export type ChannelList = Omit<Listing, 'channels'> & { channels: ChannelEntry[] }

/** `GET /v1/channels/:channel/messages`, its messages either inline or large. */
export type MessagePage = Omit<z.infer<typeof MessagePageSchema>, 'messages'> & {
  messages: ApiMessage[]
}

/** `GET /v1/channels/:channel/history`: the last hour, a minute each, oldest first. */
export type ChannelHistory = z.infer<typeof ChannelHistorySchema>

/** The read token when a request is made: null when signed out. */
export type TokenSource = () => string | null

/** True when the listing could not read the channel (the entry has an error, not stats). */
export function isFailure(entry: ChannelEntry): entry is ChannelFailure {
  return 'error' in entry && Boolean(entry.error)
}

/** A request that failed: the client's error (HTTP status, 0 for no answer; code; message). */
export { ZmqEdgeApiError as ApiFailure }

/** `GET path` with the token: the JSON answer, or an ApiFailure. */
export function getJson<T>(path: string, token: string | null, signal?: AbortSignal): Promise<T> {
  return requestJson<T>('GET', path, token, signal)
}

/** `POST path` with the token and no body: the JSON answer, or an ApiFailure. */
export function postJson<T>(path: string, token: string | null): Promise<T> {
  return requestJson<T>('POST', path, token)
}

async function requestJson<T>(
  method: 'GET' | 'POST',
  path: string,
  token: string | null,
  signal?: AbortSignal,
): Promise<T> {
  const authorization = bearer(token)
  let response: Response
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: authorization, Accept: 'application/json' },
      cache: 'no-store',
      credentials: 'omit',
      signal,
    })
  } catch (error) {
    throw new ZmqEdgeApiError(0, 'network', `the Worker did not answer (${messageOf(error)})`)
  }
  let body: unknown = null
  try {
    body = await response.json()
  } catch {
    // Not JSON: the failure is told by its status.
  }
  if (!response.ok) {
    throw failureOf(response, body, retryAfterOf(response.headers.get('Retry-After')))
  }
  // The answer as the API documents it: not checked (see above).
  return body as T
}

/**
 * `GET url` with the token, as a Blob: a frame of a large message, which the page saves as a
 * file. A network error is thrown as it is.
 */
export async function getBlob(url: string, token: string | null): Promise<Blob> {
  const authorization = bearer(token)
  const response = await fetch(url, {
    headers: { Authorization: authorization },
    cache: 'no-store',
    credentials: 'omit',
  })
  if (!response.ok) {
    let body: unknown = null
    try {
      body = await response.json()
    } catch {
      // Not JSON: the failure is told by its status.
    }
    throw failureOf(response, body, undefined)
  }
  return response.blob()
}

/** An error in words, for the page: an ApiFailure with its code and HTTP status. */
export function describe(error: unknown): string {
  if (error instanceof ZmqEdgeApiError) {
    const status = error.status ? `, HTTP ${error.status}` : ''
    return `${error.message} (${error.code}${status})`
  }
  return String(messageOf(error) || error)
}

/**
 * The Authorization header. Requests are made only while signed in (signing out stops the polls
 * and removes what could start one); should one be made without a token, it fails as a request.
 */
function bearer(token: string | null): string {
  if (token === null) throw new ZmqEdgeApiError(0, 'signed_out', 'not signed in')
  return `Bearer ${token}`
}

/** The ApiFailure of an answer that is not ok, from the API's error body when it has one. */
function failureOf(
  response: Response,
  body: unknown,
  retryAfter: number | undefined,
): ZmqEdgeApiError {
  const { code, message } = errorOf(body)
  return new ZmqEdgeApiError(
    response.status,
    String(code || `http_${response.status}`),
    String(message || response.statusText || 'the request failed'),
    retryAfter,
  )
}

/** The `error` object's code and message of an API error body (anything else: neither). */
function errorOf(body: unknown): { code?: unknown; message?: unknown } {
  const error = typeof body === 'object' && body !== null && 'error' in body ? body.error : null
  if (typeof error !== 'object' || error === null) return {}
  return {
    code: 'code' in error ? error.code : undefined,
    message: 'message' in error ? error.message : undefined,
  }
}

/** An error's message, when it has one. */
function messageOf(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'message' in error
    ? error.message
    : undefined
}
