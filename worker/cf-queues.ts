// The Cloudflare Queues pull-consumer adapter: a channel's consumer group served as Cloudflare
// serves a queue to HTTP pull consumers (POST …/queues/:queue_id/messages/pull and …/ack under
// /cf/client/v4), so the official `cloudflare` SDK pointed at this Worker, and libraries built
// on it, consume unchanged. The leases are the group's own: a message pulled here is acked here
// or through /v1, either way. Shapes: developers.cloudflare.com/api/resources/queues/
// subresources/messages/methods/pull/ and …/ack/.

import type { MiddlewareHandler } from 'hono'
import type { LeasedMessage } from '../durable/consumer-groups'
import { DEFAULT_GROUP } from '../durable/consumer-groups'
import { z85Encode } from '../shared/z85'
import { toBase64 } from './base64'
import { framesPath, textOf } from './present'

/** Where the adapter's routes live: the SDK's `baseURL` is `https://<worker>` plus this. */
export const CF_API_PREFIX = '/cf/client/v4'

/** A queue id's channel and consumer group: `channel`, or `channel~group`. */
export function queueTarget(queueId: string): { channel: string; group: string } {
  const [channel = '', group = DEFAULT_GROUP] = queueId.split('~')
  return { channel, group }
}

/** One message as Cloudflare's pull answers it. */
export interface CfMessage {
  id: string
  body: string
  attempts: number
  lease_id: string
  timestamp_ms: number
  metadata: Record<string, string>
}

/**
 * A leased message as a Cloudflare Queues message. Its `body` is one string, so the frames map
 * to it by `CF-Content-Type`: `text` for one UTF-8 frame (the text), `bytes` for one other
 * frame (its base64), `json` for several frames (a JSON array of each frame's base64) or a
 * large message listed without its frames (a JSON object with its size and frames URL).
 */
export function toCfMessage(channel: string, message: LeasedMessage): CfMessage {
  const metadata: Record<string, string> = {
    'zmq-edge-seq': String(message.seq),
    'zmq-edge-peer-address': message.peerAddress,
    'zmq-edge-mechanism': message.mechanism,
  }
  if (message.publicKey) metadata['zmq-edge-public-key'] = z85Encode(message.publicKey)
  if (message.keyName !== undefined) metadata['zmq-edge-key-name'] = message.keyName
  let body: string
  let type: 'text' | 'bytes' | 'json'
  if (message.frames === null) {
    metadata['zmq-edge-frames'] = String(message.frameSizes.length)
    type = 'json'
    body = JSON.stringify({
      size: message.size,
      frameSizes: message.frameSizes,
      framesUrl: framesPath(channel, message.seq),
    })
  } else {
    const frames = message.frames
    metadata['zmq-edge-frames'] = String(frames.length)
    const text = frames.length === 1 ? textOf(frames[0] as Uint8Array) : undefined
    if (text !== undefined) {
      type = 'text'
      body = text
    } else if (frames.length === 1) {
      type = 'bytes'
      body = toBase64(frames[0] as Uint8Array)
    } else {
      type = 'json'
      body = JSON.stringify(frames.map(toBase64))
    }
  }
  return {
    id: String(message.seq),
    body,
    attempts: message.attempts,
    lease_id: message.leaseId,
    timestamp_ms: Math.floor(message.receivedAt),
    metadata: { 'CF-Content-Type': type, ...metadata },
  }
}

/** A success in Cloudflare's envelope. */
export function cfSuccess<T>(result: T) {
  return { success: true, errors: [], messages: [], result }
}

/**
 * Puts the adapter's errors in Cloudflare's envelope (`success: false`, `errors`, which the SDK
 * turns into its APIError), keeping zmq-edge's own `error` beside it.
 */
export const cfErrorEnvelope: MiddlewareHandler = async (c, next) => {
  await next()
  const response = c.res
  if (response.ok || !response.headers.get('Content-Type')?.includes('application/json')) return
  const body = (await response
    .clone()
    .json()
    .catch(() => undefined)) as { error?: { code?: unknown; message?: unknown } } | undefined
  const error = body?.error
  if (typeof error?.code !== 'string' || typeof error.message !== 'string') return
  const headers = new Headers(response.headers)
  headers.delete('Content-Length')
  c.res = undefined
  c.res = new Response(
    JSON.stringify({
      success: false,
      errors: [{ code: response.status, message: error.message }],
      messages: [],
      result: null,
      error,
    }),
    { status: response.status, headers },
  )
}
