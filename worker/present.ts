// The HTTP API's JSON for stored messages: frames in base64, the receive time in ISO 8601, a
// CURVE client's public key in Z85.

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
