// The HTTP API's JSON for stored messages: frames in base64, the receive time in ISO 8601, a
// CURVE client's public key in Z85.

import type { ChannelStats } from '../durable/channel-object'
import type { DeadLetter, LeasedMessage } from '../durable/lease-queue'
import type { StoredMessage } from '../durable/message-store'
import { z85Encode } from '../durable/z85'
import { toBase64 } from './base64'

/** One message in a `GET /v1/channels/:channel/messages` response. */
export interface ApiMessage {
  seq: number
  /** ISO 8601, UTC, millisecond precision. */
  receivedAt: string
  /** Each frame's octets, base64 (RFC 4648 §4). */
  frames: string[]
  peer: {
    address: string
    mechanism: string
    /** The CURVE client's long-term public key in Z85; only when the bridge sent one. */
    publicKey?: string
  }
}

/** Formats one stored message for the HTTP API. */
export function toApiMessage(message: StoredMessage): ApiMessage {
  const peer: ApiMessage['peer'] = { address: message.peerAddress, mechanism: message.mechanism }
  if (message.publicKey) peer.publicKey = z85Encode(message.publicKey)
  return {
    seq: message.seq,
    receivedAt: new Date(message.receivedAt).toISOString(),
    frames: message.frames.map(toBase64),
    peer,
  }
}

/** One message in a `POST /v1/channels/:channel/pull` response. */
export interface ApiLeasedMessage extends ApiMessage {
  leaseId: string
  /** Deliveries so far, this one included. */
  attempts: number
  /** ISO 8601: when the lease runs out unless acked, retried or extended. */
  leaseExpiresAt: string
}

export function toApiLeasedMessage(message: LeasedMessage): ApiLeasedMessage {
  return {
    ...toApiMessage(message),
    leaseId: message.leaseId,
    attempts: message.attempts,
    leaseExpiresAt: new Date(message.leaseExpiresAt).toISOString(),
  }
}

/** One message in a `GET /v1/channels/:channel/dead-letters` response. */
export interface ApiDeadLetter extends ApiMessage {
  attempts: number
  /** ISO 8601: when it became a dead letter. */
  deadAt: string
  reason: DeadLetter['reason']
}

export function toApiDeadLetter(message: DeadLetter): ApiDeadLetter {
  return {
    ...toApiMessage(message),
    attempts: message.attempts,
    deadAt: new Date(message.deadAt).toISOString(),
    reason: message.reason,
  }
}

/** The JSON of `GET /v1/channels/:channel`. */
export function toApiStats(channel: string, stats: ChannelStats) {
  const end = (at: { seq: number; receivedAt: number } | undefined) =>
    at
      ? {
          seq: at.seq,
          receivedAt: new Date(at.receivedAt).toISOString(),
          ageMs: stats.now - at.receivedAt,
        }
      : null
  const { counters } = stats
  return {
    channel,
    log: {
      messages: stats.log.messages,
      bytes: stats.log.bytes,
      oldest: end(stats.log.oldest),
      newest: end(stats.log.newest),
    },
    queue: stats.queue,
    bridges: stats.bridges,
    counters: {
      messagesStored: counters.messages_stored,
      batchesStored: counters.batches_stored,
      batchesDuplicate: counters.batches_duplicate,
      leased: counters.leased,
      redelivered: counters.redelivered,
      acked: counters.acked,
      retried: counters.retried,
      deadLettered: counters.dead_lettered,
      redriven: counters.redriven,
    },
    config: stats.config,
  }
}
