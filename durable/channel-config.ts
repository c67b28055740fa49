// A channel's settings, from wrangler vars: built and checked once, in the Durable Object's
// constructor. Nothing else reads these vars.

/** Deliveries of a message to leased consumers before it becomes a dead letter. */
export const DEFAULT_MAX_ATTEMPTS = 5
/** Largest `MAX_ATTEMPTS` accepted. */
export const MAX_MAX_ATTEMPTS = 1000

export interface ChannelConfig {
  maxAttempts: number
}

/** The vars the config is built from (strings, as wrangler vars are). */
export interface ChannelVars {
  MAX_ATTEMPTS?: string
}

/**
 * @throws RangeError naming the setting when a var is not a valid value.
 */
export function parseChannelConfig(vars: ChannelVars): ChannelConfig {
  const text = vars.MAX_ATTEMPTS
  if (text === undefined || text === '') return { maxAttempts: DEFAULT_MAX_ATTEMPTS }
  const maxAttempts = /^\d+$/.test(text) ? Number(text) : Number.NaN
  if (!(maxAttempts >= 1 && maxAttempts <= MAX_MAX_ATTEMPTS)) {
    throw new RangeError(
      `MAX_ATTEMPTS must be an integer from 1 to ${MAX_MAX_ATTEMPTS}, got ${text}`,
    )
  }
  return { maxAttempts }
}
