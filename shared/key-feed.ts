// The key feed: how the Worker's registry tells a bridge which CURVE client keys to admit
// (bridges with --key-registry). A WebSocket, `GET /v1/keys/feed` with the bridge's ingest
// credential; the registry sends JSON text messages: the whole registry first (the snapshot, in
// pages), then each change as it happens. The bridge admits a key on a channel when its entry
// is neither revoked nor expired and its channels reach the channel. Shared by the Registry
// object (which writes it) and the bridge (which reads it); platform-neutral.

import { matchesChannel } from './channel-pattern.ts'

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

/** Why a CURVE client was refused, as bridges report it. */
export const REFUSAL_REASONS = [
  'unknown_key',
  'revoked',
  'expired',
  'channel_not_allowed',
  'bad_box',
] as const
export type RefusalReason = (typeof REFUSAL_REASONS)[number]

/** Whether `key` (undefined: not in the registry) is admitted on `channel` at `now`, or why not. */
export function feedAdmission(
  key: FeedKey | undefined,
  channel: string,
  now: number,
): 'admitted' | RefusalReason {
  if (!key) return 'unknown_key'
  if (key.revoked) return 'revoked'
  if (key.expiresAt !== undefined && key.expiresAt <= now) return 'expired'
  return matchesChannel(key.channels, channel) ? 'admitted' : 'channel_not_allowed'
}

/** Whether `key` is admitted on `channel` at `now`. */
export function feedAdmits(key: FeedKey, channel: string, now: number): boolean {
  return feedAdmission(key, channel, now) === 'admitted'
}

/**
 * What a bridge tells the registry over its feed, every REPORT_INTERVAL_MS: per key whose
 * connections changed or that sent something since the last report, its connections now and
 * what it sent; and the handshakes refused since, counted per key (Z85; '' when the client's key
 * was never learnt, a bad box) and reason.
 */
export interface BridgeReport {
  type: 'report'
  bridgeId: string
  keys: Array<{
    publicKey: string
    connections: number
    messages: number
    bytes: number
    lastSeenAt: number
  }>
  refusals: Array<{ publicKey: string; reason: RefusalReason; count: number }>
}

/**
 * How often a bridge reports, ms (and a second after a refusal, when it has not reported for as
 * long): each report writes a row per key it names, so reports are rare and name only the keys
 * whose connections changed or that sent something.
 */
export const REPORT_INTERVAL_MS = 60_000
/** Least time between two reports the registry takes from one socket, ms. */
export const MIN_REPORT_SPACING_MS = 5_000
/** Most entries of each list in one report (a bridge sends the busiest). */
export const MAX_REPORT_ENTRIES = 2_000

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
  const value = jsonObject(text)
  if (!value) return undefined
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

/** Parses a bridge's report; undefined for anything malformed or over the bounds. */
export function parseBridgeReport(text: string): BridgeReport | undefined {
  const report = jsonObject(text)
  if (!report) return undefined
  const count = (n: unknown) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
  const key = (text: unknown) => typeof text === 'string' && text.length <= 40
  if (
    report.type !== 'report' ||
    typeof report.bridgeId !== 'string' ||
    !/^[A-Za-z0-9._:-]{1,128}$/.test(report.bridgeId) ||
    !Array.isArray(report.keys) ||
    !Array.isArray(report.refusals) ||
    report.keys.length > MAX_REPORT_ENTRIES ||
    report.refusals.length > MAX_REPORT_ENTRIES
  ) {
    return undefined
  }
  const keysOk = report.keys.every((entry: Record<string, unknown>) => {
    return (
      typeof entry === 'object' &&
      entry !== null &&
      typeof entry.publicKey === 'string' &&
      entry.publicKey.length === 40 &&
      count(entry.connections) &&
      count(entry.messages) &&
      count(entry.bytes) &&
      count(entry.lastSeenAt)
    )
  })
  const refusalsOk = report.refusals.every((entry: Record<string, unknown>) => {
    return (
      typeof entry === 'object' &&
      entry !== null &&
      key(entry.publicKey) &&
      REFUSAL_REASONS.includes(entry.reason as RefusalReason) &&
      count(entry.count)
    )
  })
  return keysOk && refusalsOk ? (report as unknown as BridgeReport) : undefined
}

/** The JSON object `text` holds; undefined for anything else. */
function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === 'object' && value !== null
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}
