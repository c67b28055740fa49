// Channel patterns: what a scoped API token (and a registered CURVE key) may reach. A pattern is
// a channel name, or the start of names followed by `*` (`sensors-*`; `*` alone is every
// channel), as in AWS IoT policy resources or NATS subject wildcards at the end. One place for
// the Worker's checks, the registry's validation and the command line.

import { CHANNEL_NAME_MAX_LENGTH, CHANNEL_NAME_PREFIX, isChannelName } from './channel-name.ts'

/** The rule in words, for error messages. */
export const CHANNEL_PATTERN_RULE =
  'a channel name, or the start of one followed by * (sensors-*; * alone is every channel)'

/**
 * Most patterns one token or key holds: the channel list's query takes two SQL parameters for
 * each, within the 100 a Durable Object's SQLite statement takes.
 */
export const MAX_CHANNEL_PATTERNS = 32

/** True when `pattern` follows {@link CHANNEL_PATTERN_RULE}. */
export function isChannelPattern(pattern: string): boolean {
  if (!pattern.endsWith('*')) return isChannelName(pattern)
  const prefix = pattern.slice(0, -1)
  return prefix.length < CHANNEL_NAME_MAX_LENGTH && CHANNEL_NAME_PREFIX.test(prefix)
}

/** True when `channel` is one of `patterns`' channels. */
export function matchesChannel(patterns: readonly string[], channel: string): boolean {
  return patterns.some((pattern) =>
    pattern.endsWith('*') ? channel.startsWith(pattern.slice(0, -1)) : channel === pattern,
  )
}

/**
 * True when every channel `pattern` reaches is one `within` reaches: a name they match, or a
 * prefix that starts with one of theirs (so a token can hand on no more than it holds).
 */
export function patternWithin(pattern: string, within: readonly string[]): boolean {
  if (!pattern.endsWith('*')) return matchesChannel(within, pattern)
  const prefix = pattern.slice(0, -1)
  return within.some((outer) => outer.endsWith('*') && prefix.startsWith(outer.slice(0, -1)))
}
