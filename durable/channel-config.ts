// A channel's settings, from wrangler vars: built and checked once, in the Durable Object's
// constructor. Nothing else reads these vars.

/** Deliveries of a message to leased consumers before it becomes a dead letter. */
export const DEFAULT_MAX_ATTEMPTS = 5
/** Largest `MAX_ATTEMPTS` accepted. */
export const MAX_MAX_ATTEMPTS = 1000

/** What happens to a batch that would take the log over its message or byte limit. */
export type OverflowPolicy = 'block' | 'drop-oldest'

/** How much of its log a channel keeps. 0 means no limit. */
export interface RetentionLimits {
  maxMessages: number
  /** Frame octets. */
  maxBytes: number
  maxAgeSeconds: number
  overflowPolicy: OverflowPolicy
}

export const DEFAULT_RETENTION: RetentionLimits = {
  maxMessages: 1_000_000,
  maxBytes: 1024 * 1024 * 1024,
  maxAgeSeconds: 7 * 24 * 60 * 60,
  overflowPolicy: 'block',
}

/** Largest message a channel stores by default: what a bridge relays by default too. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
/**
 * Largest `MAX_MESSAGE_BYTES`: a message travels in one WebSocket message of at most 32 MiB,
 * with its batch's framing.
 */
export const MAX_MAX_MESSAGE_BYTES = 31 * 1024 * 1024

/**
 * How long a consumer group may go without a pull, ack or extend before it is inactive: 1 day.
 * An inactive group is reported as such and no longer holds retention back under `block`, so a
 * group nobody reads any more cannot stall ingest for good (as JetStream's `inactive_threshold`
 * retires a consumer). Its messages are kept while the limits allow.
 */
export const DEFAULT_GROUP_INACTIVE_SECONDS = 24 * 60 * 60

export interface ChannelConfig {
  maxAttempts: number
  /** GROUP_INACTIVE_SECONDS in ms; 0: groups never become inactive. */
  groupInactiveMs: number
  /** Largest message (its frames' octets) the channel stores; announced to bridges. */
  maxMessageBytes: number
  retention: RetentionLimits
}

/** The vars the config is built from (strings, as wrangler vars are). */
export interface ChannelVars {
  /** Deliveries to leased consumers before a dead letter (default 5). */
  MAX_ATTEMPTS?: string
  /** Largest message a channel stores, frame octets (default 16 MiB). */
  MAX_MESSAGE_BYTES?: string
  /** Idle time after which a consumer group stops holding retention back (default 1 day). */
  GROUP_INACTIVE_SECONDS?: string
  /** Retention (0 = no limit): messages, frame bytes and age per channel. */
  RETENTION_MAX_MESSAGES?: string
  RETENTION_MAX_BYTES?: string
  RETENTION_MAX_AGE_SECONDS?: string
  /** `block` (default: NACK CHANNEL_FULL, nothing lost) or `drop-oldest`. */
  OVERFLOW_POLICY?: string
}

function integerVar(
  name: string,
  text: string | undefined,
  fallback: number,
  range: { min: number; max: number },
): number {
  if (text === undefined || text === '') return fallback
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!(value >= range.min && value <= range.max)) {
    throw new RangeError(
      `${name} must be an integer from ${range.min} to ${range.max}, got ${text}`,
    )
  }
  return value
}

/**
 * @throws RangeError naming the setting when a var is not a valid value.
 */
export function parseChannelConfig(vars: ChannelVars): ChannelConfig {
  const maxAttempts = integerVar('MAX_ATTEMPTS', vars.MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS, {
    min: 1,
    max: MAX_MAX_ATTEMPTS,
  })
  const unlimited = { min: 0, max: Number.MAX_SAFE_INTEGER }
  const policy = vars.OVERFLOW_POLICY || DEFAULT_RETENTION.overflowPolicy
  if (policy !== 'block' && policy !== 'drop-oldest') {
    throw new RangeError(`OVERFLOW_POLICY must be block or drop-oldest, got ${policy}`)
  }
  return {
    maxAttempts,
    groupInactiveMs:
      integerVar(
        'GROUP_INACTIVE_SECONDS',
        vars.GROUP_INACTIVE_SECONDS,
        DEFAULT_GROUP_INACTIVE_SECONDS,
        { min: 0, max: 365 * 24 * 60 * 60 },
      ) * 1000,
    maxMessageBytes: integerVar(
      'MAX_MESSAGE_BYTES',
      vars.MAX_MESSAGE_BYTES,
      DEFAULT_MAX_MESSAGE_BYTES,
      { min: 1, max: MAX_MAX_MESSAGE_BYTES },
    ),
    retention: {
      maxMessages: integerVar(
        'RETENTION_MAX_MESSAGES',
        vars.RETENTION_MAX_MESSAGES,
        DEFAULT_RETENTION.maxMessages,
        unlimited,
      ),
      maxBytes: integerVar(
        'RETENTION_MAX_BYTES',
        vars.RETENTION_MAX_BYTES,
        DEFAULT_RETENTION.maxBytes,
        unlimited,
      ),
      maxAgeSeconds: integerVar(
        'RETENTION_MAX_AGE_SECONDS',
        vars.RETENTION_MAX_AGE_SECONDS,
        DEFAULT_RETENTION.maxAgeSeconds,
        unlimited,
      ),
      overflowPolicy: policy,
    },
  }
}
