// What a channel accepts from its bridges, in one place: the limits it announces in WELCOME and
// the checks every batch passes before it is stored. Pure functions, no storage.

import type { RelayBatch, RelayMessage, RelayWelcome } from '../shared/relay-protocol'
import type { ChannelConfig } from './channel-config'

/**
 * Largest WebSocket message a Worker or Durable Object receives: 32 MiB; a larger one closes the
 * socket with 1009 (Cloudflare Workers limits, "WebSocket message size").
 */
export const MAX_BATCH_BYTES = 32 * 1024 * 1024

/**
 * How far ahead of the object's clock a receive time may be. Bridge clocks drift (NTP keeps them
 * within milliseconds, a VM without it drifts seconds a day); minutes ahead is a wrong clock or
 * a forged field. Old times are legitimate: a spool replayed after a long outage.
 */
export const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000

/** The limits of {@link RelayWelcome}, as this channel's configuration makes them. */
export type BatchLimits = Omit<RelayWelcome, 'kind' | 'lastBatchSeq' | 'now'>

/** What a channel announces and enforces. Retention limits bound a batch too: it must fit. */
export function batchLimits(config: ChannelConfig): BatchLimits {
  const { maxMessages, maxBytes } = config.retention
  const underRetention = (limit: number) => (maxBytes > 0 ? Math.min(limit, maxBytes) : limit)
  return {
    maxMessageBytes: underRetention(config.maxMessageBytes),
    // Encoded octets: with the frames' own octets below, the frames fit the byte retention.
    maxBatchBytes: underRetention(MAX_BATCH_BYTES),
    maxBatchMessages: maxMessages,
    maxClockSkewMs: MAX_CLOCK_SKEW_MS,
  }
}

/** Why a batch cannot be stored as it is. */
export type BatchVerdict =
  /** Over the limits, but its messages may fit in smaller batches: split and resend. */
  | { verdict: 'too_large'; reason: string }
  /** One message over the limits on its own: never storable. */
  | { verdict: 'rejected'; reason: string }
  /** A field the object does not trust. */
  | { verdict: 'invalid'; reason: string }

function frameOctets(message: RelayMessage): number {
  let size = 0
  for (const frame of message.frames) size += frame.length
  return size
}

/**
 * Checks a batch against the channel's limits and the fields only the bridge vouches for.
 * @returns undefined when the batch may be stored.
 */
export function checkBatch(
  batch: RelayBatch,
  limits: BatchLimits,
  now: number,
): BatchVerdict | undefined {
  const latest = now + limits.maxClockSkewMs
  let total = 0
  for (const [index, message] of batch.messages.entries()) {
    // The bridge sets a key exactly for a CURVE client it authenticated.
    if (message.publicKey && message.mechanism !== 'CURVE') {
      return { verdict: 'invalid', reason: `message ${index}: a public key without CURVE` }
    }
    if (!message.publicKey && message.mechanism === 'CURVE') {
      return { verdict: 'invalid', reason: `message ${index}: CURVE without the client's key` }
    }
    if (message.receivedAt > latest) {
      const ahead = Math.round((message.receivedAt - now) / 1000)
      return {
        verdict: 'invalid',
        reason: `message ${index}: received ${ahead} s after the channel's clock (at most ${limits.maxClockSkewMs / 1000} s): is the bridge's clock right?`,
      }
    }
    const size = frameOctets(message)
    total += size
    if (size > limits.maxMessageBytes) {
      const reason = `message ${index} is ${size} octets; the channel stores at most ${limits.maxMessageBytes}`
      return batch.messages.length === 1
        ? { verdict: 'rejected', reason }
        : { verdict: 'too_large', reason }
    }
  }
  const count = batch.messages.length
  if (limits.maxBatchMessages > 0 && count > limits.maxBatchMessages) {
    return {
      verdict: 'too_large',
      reason: `${count} messages; the channel takes at most ${limits.maxBatchMessages} at once`,
    }
  }
  if (total > limits.maxBatchBytes) {
    return {
      verdict: 'too_large',
      reason: `${total} octets; the channel takes at most ${limits.maxBatchBytes} at once`,
    }
  }
  return undefined
}
