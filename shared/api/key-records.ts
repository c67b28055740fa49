// What a CURVE key record holds besides its keys, as the API and the bridges see it: the limits
// of its labels, and its rate limit. One place for the schemas, the registry and the bridge.

/** A key's rate limit: the bridge pauses reading that key's connections past it, never drops. */
export interface RateLimit {
  messagesPerSecond?: number
  bytesPerSecond?: number
}

/** What `status` a record shows: revoked wins over expired. */
export const KEY_STATUSES = ['active', 'revoked', 'expired'] as const
export type KeyStatus = (typeof KEY_STATUSES)[number]

/** Most labels per key, and their lengths. */
export const MAX_LABELS = 32
export const LABEL_NAME = /^[A-Za-z0-9._-]{1,64}$/
export const MAX_LABEL_VALUE = 256

/** The status of a record now. */
export function keyStatus(
  record: { revoked: boolean; expiresAt?: number },
  now: number,
): KeyStatus {
  if (record.revoked) return 'revoked'
  return record.expiresAt !== undefined && record.expiresAt <= now ? 'expired' : 'active'
}
