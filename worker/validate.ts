// Checks of what a client puts in the URL: the channel name and the read query. Each returns
// the typed value or throws an ApiError 400.

import { ApiError, ErrorCode } from './errors'

/** Channel names: 1 to 64 of A–Z a–z 0–9 . _ - */
export const CHANNEL_NAME = /^[A-Za-z0-9._-]{1,64}$/

/** `limit` when the query has none. */
export const DEFAULT_LIMIT = 100
/** Largest `limit` accepted. */
export const MAX_LIMIT = 1000

/**
 * @returns the channel name as given.
 * @throws ApiError 400 invalid_channel when it does not match {@link CHANNEL_NAME}.
 */
export function parseChannel(name: string): string {
  if (!CHANNEL_NAME.test(name)) {
    throw new ApiError(
      400,
      ErrorCode.INVALID_CHANNEL,
      'channel names are 1 to 64 characters of A-Z a-z 0-9 . _ -',
    )
  }
  return name
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
 * integer from 1 to {@link MAX_LIMIT}.
 */
export function parseReadQuery(query: Record<string, string | undefined>): {
  after: number
  limit: number
} {
  const after = query.after === undefined ? 0 : integer(query.after, 'after')
  const limit = query.limit === undefined ? DEFAULT_LIMIT : integer(query.limit, 'limit')
  if (limit < 1 || limit > MAX_LIMIT) {
    throw new ApiError(400, ErrorCode.INVALID_QUERY, `limit must be from 1 to ${MAX_LIMIT}`)
  }
  return { after, limit }
}
