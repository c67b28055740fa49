// The channel-name rule, one place for every side: the bridge's settings, the command line, the
// Worker's routes (channel and consumer-group names), the channel directory and the dashboard's
// filter all take their check from here.

/** Longest channel (or group) name. */
export const CHANNEL_NAME_MAX_LENGTH = 64

/** The rule in words, for error messages. */
export const CHANNEL_NAME_RULE = '1 to 64 characters of A-Z a-z 0-9 . _ -, not only dots'

/** A name's characters, 1 to 64 of them. */
const NAME = /^[A-Za-z0-9._-]{1,64}$/
/** Names of dots only: `.` and `..` are path segments URL parsing removes, so none is a channel. */
const ONLY_DOTS = /^\.+$/

/**
 * What the dashboard's filter accepts: the start of a name, 0 to 64 of its characters (the
 * dashboard's browser code imports it; the list route checks its `prefix` with it).
 */
export const CHANNEL_NAME_PREFIX = /^[A-Za-z0-9._-]{0,64}$/

/** True when `name` is a channel name: {@link CHANNEL_NAME_RULE}. */
export function isChannelName(name: string): boolean {
  return NAME.test(name) && !ONLY_DOTS.test(name)
}
