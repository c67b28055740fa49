// The HTTP API's JSON for stored messages: frames in base64 (or, with `?encoding=utf8`, as
// strings where they are valid UTF-8), or for a large message its sizes and the path of its
// frames; the receive time in ISO 8601, a CURVE client's public key in Z85.

import type { HistoryMinute } from '../durable/channel-history'
import type { ChannelStats } from '../durable/channel-object'
import type { DeadLetter, GroupInfo, LeasedMessage } from '../durable/consumer-groups'
import type { KeyRecord } from '../durable/key-store'
import type { StoredMessage } from '../durable/message-store'
import type { TokenRecord } from '../durable/registry'
import { keyStatus } from '../shared/api/key-records'
import type { ApiInlineMessage, ApiMessage } from '../shared/api-types'
import { z85Encode } from '../shared/z85'
import { toBase64 } from './base64'

/** How frames are written: `base64` (the default) or `utf8` (strings, base64 where invalid). */
export type FrameEncoding = 'base64' | 'utf8'

// fatal: invalid UTF-8 throws instead of becoming U+FFFD; ignoreBOM: a leading U+FEFF is
// kept as text, so the string encodes back to the very same octets.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** A frame as text when it is valid UTF-8; undefined when it is not (binary). */
export function textOf(frame: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(frame)
  } catch {
    return undefined
  }
}

/** The frames as the API writes them in `encoding`. */
function encodeFrames(
  frames: readonly Uint8Array[],
  encoding: FrameEncoding,
): Pick<ApiInlineMessage, 'frames' | 'binaryFrames'> {
  if (encoding === 'base64') return { frames: frames.map(toBase64) }
  const binaryFrames: number[] = []
  const encoded = frames.map((frame, index) => {
    const text = textOf(frame)
    if (text !== undefined) return text
    binaryFrames.push(index)
    return toBase64(frame)
  })
  return { frames: encoded, binaryFrames }
}

/** The path of a message's frames: `GET <it>/<index>` gives frame `index` as octets. */
export function framesPath(channel: string, seq: number): string {
  return `/v1/channels/${channel}/messages/${seq}/frames`
}

/** Formats one stored message of `channel` for the HTTP API. */
export function toApiMessage(
  channel: string,
  message: StoredMessage,
  encoding: FrameEncoding = 'base64',
): ApiMessage {
  const peer: ApiMessage['peer'] = { address: message.peerAddress, mechanism: message.mechanism }
  if (message.publicKey) peer.publicKey = z85Encode(message.publicKey)
  if (message.keyName !== undefined) peer.keyName = message.keyName
  const head = { seq: message.seq, receivedAt: new Date(message.receivedAt).toISOString() }
  if (message.frames === null) {
    return {
      ...head,
      frames: null,
      size: message.size,
      frameCount: message.frameSizes.length,
      frameSizes: message.frameSizes,
      framesUrl: framesPath(channel, message.seq),
      peer,
    }
  }
  return { ...head, ...encodeFrames(message.frames, encoding), peer }
}

/** One message in a `POST /v1/channels/:channel/pull` response. */
export type ApiLeasedMessage<Message extends ApiMessage = ApiMessage> = Message & {
  leaseId: string
  /** Deliveries so far, this one included. */
  attempts: number
  /** ISO 8601: when the lease runs out unless acked, retried or extended. */
  leaseExpiresAt: string
}

export function toApiLeasedMessage(
  channel: string,
  message: LeasedMessage,
  encoding: FrameEncoding = 'base64',
): ApiLeasedMessage {
  return {
    ...toApiMessage(channel, message, encoding),
    leaseId: message.leaseId,
    attempts: message.attempts,
    leaseExpiresAt: new Date(message.leaseExpiresAt).toISOString(),
  }
}

/** One message in a `GET /v1/channels/:channel/dead-letters` response. */
export type ApiDeadLetter<Message extends ApiMessage = ApiMessage> = Message & {
  attempts: number
  /** ISO 8601: when it became a dead letter. */
  deadAt: string
  reason: DeadLetter['reason']
}

export function toApiDeadLetter(
  channel: string,
  message: DeadLetter,
  encoding: FrameEncoding = 'base64',
): ApiDeadLetter {
  return {
    ...toApiMessage(channel, message, encoding),
    attempts: message.attempts,
    deadAt: new Date(message.deadAt).toISOString(),
    reason: message.reason,
  }
}

const iso = (ms: number) => new Date(ms).toISOString()

/** One consumer group in the API: its position, lag and counters. */
export function toApiGroup(group: GroupInfo) {
  return {
    name: group.name,
    createdAt: iso(group.createdAt),
    activeAt: iso(group.activeAt),
    inactive: group.inactive,
    committedOffset: group.committedOffset,
    lag: {
      messages: group.lag,
      bytes: group.lagBytes,
      oldestUnacked:
        group.oldestUnacked === undefined
          ? null
          : { seq: group.oldestUnacked.seq, storedAt: iso(group.oldestUnacked.storedAt) },
    },
    available: group.available,
    inFlight: group.inFlight,
    delayed: group.delayed,
    deadLetters: group.deadLetters,
    counters: group.counters,
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
    groups: stats.groups.map(toApiGroup),
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
      messagesDuplicate: counters.messages_duplicate,
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
    cost: stats.cost,
    storageBytes: stats.storageBytes,
    migrating: stats.migrating,
    config: stats.config,
  }
}

/** A channel's last hour in the API (`GET /v1/channels/{channel}/history`). */
export function toApiHistory(channel: string, history: { now: number; minutes: HistoryMinute[] }) {
  return {
    channel,
    now: iso(history.now),
    minutes: history.minutes.map((minute) => ({ ...minute, start: iso(minute.start) })),
  }
}

/** A scoped token as the API shows it: never its secret. */
export function toApiToken(token: TokenRecord) {
  return {
    id: token.id,
    name: token.name,
    scopes: token.scopes,
    channels: token.channels,
    ...(token.bridgeId === undefined ? {} : { bridgeId: token.bridgeId }),
    createdAt: new Date(token.createdAt).toISOString(),
    ...(token.expiresAt === undefined
      ? {}
      : { expiresAt: new Date(token.expiresAt).toISOString() }),
    createdBy: token.createdBy,
  }
}

/** A CURVE key record as the API shows it: keys in Z85, times in ISO 8601, its status now. */
export function toApiKey(record: KeyRecord, now: number) {
  const iso = (ms: number) => new Date(ms).toISOString()
  return {
    id: record.id,
    name: record.name,
    publicKey: z85Encode(record.publicKey),
    ...(record.secondPublicKey ? { secondPublicKey: z85Encode(record.secondPublicKey) } : {}),
    channels: record.channels,
    labels: record.labels,
    ...(record.rateLimit ? { rateLimit: record.rateLimit } : {}),
    status: keyStatus(record, now),
    createdAt: iso(record.createdAt),
    updatedAt: iso(record.updatedAt),
    ...(record.revokedAt === undefined ? {} : { revokedAt: iso(record.revokedAt) }),
    ...(record.expiresAt === undefined ? {} : { expiresAt: iso(record.expiresAt) }),
  }
}
