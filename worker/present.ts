// The HTTP API's JSON for stored messages: frames in base64 (or, with `?encoding=utf8`, as
// strings where they are valid UTF-8), the receive time in ISO 8601, a CURVE client's public
// key in Z85.

import type { ChannelStats } from '../durable/channel-object'
import type { DeadLetter, LeasedMessage } from '../durable/lease-queue'
import type { StoredMessage } from '../durable/message-store'
import { z85Encode } from '../durable/z85'
import { toBase64 } from './base64'

/** How frames are written: `base64` (the default) or `utf8` (strings, base64 where invalid). */
export type FrameEncoding = 'base64' | 'utf8'

/** One message in a `GET /v1/channels/:channel/messages` response. */
export interface ApiMessage {
  seq: number
  /** ISO 8601, UTC, millisecond precision. */
  receivedAt: string
  /**
   * Each frame's octets, base64 (RFC 4648 §4); with `encoding=utf8`, the decoded text of each
   * frame that is valid UTF-8 and base64 for those listed in {@link binaryFrames}.
   */
  frames: string[]
  /**
   * Only with `encoding=utf8`: the indexes (from 0) of the frames that are not valid UTF-8 and
   * so are base64 in `frames`; empty when every frame is text.
   */
  binaryFrames?: number[]
  peer: {
    address: string
    mechanism: string
    /** The CURVE client's long-term public key in Z85; only when the bridge sent one. */
    publicKey?: string
  }
}

// fatal: invalid UTF-8 throws instead of becoming U+FFFD; ignoreBOM: a leading U+FEFF is
// kept as text, so the string encodes back to the very same octets.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** The frames as the API writes them in `encoding`. */
function encodeFrames(
  frames: readonly Uint8Array[],
  encoding: FrameEncoding,
): Pick<ApiMessage, 'frames' | 'binaryFrames'> {
  if (encoding === 'base64') return { frames: frames.map(toBase64) }
  const binaryFrames: number[] = []
  const encoded = frames.map((frame, index) => {
    try {
      return strictUtf8.decode(frame)
    } catch {
      binaryFrames.push(index)
      return toBase64(frame)
    }
  })
  return { frames: encoded, binaryFrames }
}

/** Formats one stored message for the HTTP API. */
export function toApiMessage(
  message: StoredMessage,
  encoding: FrameEncoding = 'base64',
): ApiMessage {
  const peer: ApiMessage['peer'] = { address: message.peerAddress, mechanism: message.mechanism }
  if (message.publicKey) peer.publicKey = z85Encode(message.publicKey)
  return {
    seq: message.seq,
    receivedAt: new Date(message.receivedAt).toISOString(),
    ...encodeFrames(message.frames, encoding),
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

export function toApiLeasedMessage(
  message: LeasedMessage,
  encoding: FrameEncoding = 'base64',
): ApiLeasedMessage {
  return {
    ...toApiMessage(message, encoding),
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

export function toApiDeadLetter(
  message: DeadLetter,
  encoding: FrameEncoding = 'base64',
): ApiDeadLetter {
  return {
    ...toApiMessage(message, encoding),
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
    bridges: {
      connected: stats.bridges.connected,
      known: stats.bridges.known,
      connections: stats.bridges.connections.map((connection) => ({
        bridgeId: connection.bridgeId ?? null,
        connectedAt:
          connection.connectedAt === undefined
            ? null
            : new Date(connection.connectedAt).toISOString(),
        lastBatchSeq: connection.lastBatchSeq ?? null,
      })),
    },
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
      dropped: counters.dropped,
      trimmed: counters.trimmed,
      expired: counters.expired,
      batchesRefused: counters.batches_refused,
      batchesInvalid: counters.batches_invalid,
      messagesRejected: counters.messages_rejected,
    },
    config: stats.config,
  }
}
