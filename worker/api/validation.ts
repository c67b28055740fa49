// What a request that breaks a route's schema gets: the API's error, with the code of the part
// at fault (the channel or group name, the path, the query, the body) and the first issue.

import type { ZodError } from 'zod'
import { ApiError, ErrorCode } from '../errors'

/** Longest error message made from a request's content. */
const MAX_MESSAGE = 300

/** The error for a failed check of request part `target` (Hono's validation targets). */
export function validationError(target: string, error: ZodError): ApiError {
  const issue = error.issues[0]
  const field = String(issue?.path[0] ?? '')
  const code =
    target === 'param'
      ? field === 'channel'
        ? ErrorCode.INVALID_CHANNEL
        : field === 'group'
          ? ErrorCode.INVALID_GROUP
          : ErrorCode.INVALID_PATH
      : target === 'json'
        ? ErrorCode.INVALID_BODY
        : ErrorCode.INVALID_QUERY
  const path = issue?.path.join('.') ?? ''
  const said = issue?.message ?? 'invalid request'
  // Our own messages name their field already ("limit must be…"); zod's do not.
  const message = path === '' || said.startsWith(path) ? said : `${path}: ${said}`
  // An issue can quote the request (every unknown key of a 256 KiB body): say the start of it.
  return new ApiError(
    400,
    code,
    message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message,
  )
}

/**
 * The cursor of an event stream: the `Last-Event-ID` header when there is one (a reconnecting
 * EventSource sends it), else the `after` query parameter, else 0.
 * @throws ApiError 400 invalid_query when the one used is not an integer ≥ 0.
 */
export function parseEventCursor(lastEventId: string | undefined, after: string | undefined) {
  const [name, text] =
    lastEventId !== undefined && lastEventId.trim() !== ''
      ? ['Last-Event-ID', lastEventId.trim()]
      : ['after', after ?? '0']
  const value = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN
  if (!Number.isSafeInteger(value)) {
    throw new ApiError(400, ErrorCode.INVALID_QUERY, `${name} must be a non-negative integer`)
  }
  return value
}
