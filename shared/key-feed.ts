// The key feed: how the Worker's registry tells a bridge which CURVE client keys to admit
// (bridges with --key-registry). A WebSocket, `GET /v1/keys/feed` with the bridge's ingest
// credential; the registry sends JSON text messages: the whole registry first (the snapshot, in
// pages), then each change as it happens. The bridge admits a key on a channel when its entry
// is neither revoked nor expired and its channels reach the channel. Shared by the Registry
// object (which writes it) and the bridge (which reads it); platform-neutral.

import { matchesChannel } from './channel-pattern'

/** A key record as bridges need it. */
export interface FeedKey {
  id: string
  name: string
  /** Z85; two during a rotation. */
  publicKeys: string[]
  channels: string[]
  rateLimit?: { messagesPerSecond?: number; bytesPerSecond?: number }
  /** Milliseconds since the epoch. */
  expiresAt?: number
  revoked: boolean
}

export type FeedMessage =
  /** A page of the registry as of `version`; the last page has `last`. */
  | { type: 'snapshot'; version: number; keys: FeedKey[]; last: boolean }
  /** A record created or changed. */
  | { type: 'change'; version: number; key: FeedKey }
  /** A record deleted. */
  | { type: 'delete'; version: number; id: string }

/** Whether `key` is admitted on `channel` at `now`. */
export function feedAdmits(key: FeedKey, channel: string, now: number): boolean {
  return (
    !key.revoked &&
    (key.expiresAt === undefined || key.expiresAt > now) &&
    matchesChannel(key.channels, channel)
  )
}

/**
 * Whether two sets of channel patterns reach a channel in common: a feed for a credential of
 * some channels sends only the keys it could be asked about.
 */
export function patternsOverlap(a: readonly string[], b: readonly string[]): boolean {
  const reaches = (x: string, y: string) => {
    const xs = x.endsWith('*')
    const ys = y.endsWith('*')
    if (!xs && !ys) return x === y
    if (xs && ys)
      return x.slice(0, -1).startsWith(y.slice(0, -1)) || y.slice(0, -1).startsWith(x.slice(0, -1))
    const [name, prefix] = xs ? [y, x.slice(0, -1)] : [x, y.slice(0, -1)]
    return name.startsWith(prefix)
  }
  return a.some((x) => b.some((y) => reaches(x, y)))
}

/**
 * Parses one feed message; undefined for anything else (a newer registry's message types are
 * skipped, not fatal).
 */
export function parseFeedMessage(text: string): FeedMessage | undefined {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (typeof value !== 'object' || value === null) return undefined
  const message = value as Partial<FeedMessage> & Record<string, unknown>
  if (typeof message.version !== 'number') return undefined
  if (message.type === 'snapshot' && Array.isArray(message.keys)) {
    return message.keys.every(isFeedKey) ? (message as FeedMessage) : undefined
  }
  if (message.type === 'change' && isFeedKey(message.key)) return message as FeedMessage
  if (message.type === 'delete' && typeof message.id === 'string') return message as FeedMessage
  return undefined
}

function isFeedKey(value: unknown): value is FeedKey {
  if (typeof value !== 'object' || value === null) return false
  const key = value as Record<string, unknown>
  return (
    typeof key.id === 'string' &&
    typeof key.name === 'string' &&
    Array.isArray(key.publicKeys) &&
    key.publicKeys.every((text) => typeof text === 'string') &&
    Array.isArray(key.channels) &&
    key.channels.every((text) => typeof text === 'string') &&
    typeof key.revoked === 'boolean' &&
    (key.expiresAt === undefined || typeof key.expiresAt === 'number')
  )
}
