// What the channel's Durable Object answers to each WebSocket message from a bridge: decode the
// relay frame, store a batch, and reply with exactly one ACK or NACK (docs/relay-protocol.md).
// No socket here: the caller sends the reply and keeps the per-socket state.

import type { StoreOutcome } from './message-store'
import {
  AckStatus,
  decodeRelayFrame,
  encodeAck,
  encodeNack,
  NackCode,
  type RelayBatch,
  RelayProtocolError,
  RelayProtocolErrorCode,
} from './relay-protocol'

/** Where batches go; `MessageStore` in production. */
export interface BatchStore {
  storeBatch(batch: RelayBatch): StoreOutcome
}

/**
 * What one bridge socket remembers between messages (kept as the WebSocket's attachment, so
 * it survives hibernation). `refused` is the first batch whose storage failed on this socket.
 */
export interface IngestSocketState {
  refused?: { bridgeId: string; batchSeq: number }
}

/** The reply to send and the socket's state after the message. */
export interface IngestResult {
  reply: Uint8Array
  state: IngestSocketState
  /** True when new messages were stored (not for a duplicate or a refusal). */
  stored?: boolean
}

// JavaScript dates cover ±8.64e15 ms; a receive time outside cannot be shown as ISO 8601.
const MAX_TIME_MS = 8.64e15

function nack(batchSeq: number, code: NackCode, reason: string): Uint8Array {
  return encodeNack({ batchSeq, code, reason })
}

function invalidMessage(batch: RelayBatch): string | undefined {
  const index = batch.messages.findIndex((message) => Math.abs(message.receivedAt) > MAX_TIME_MS)
  return index === -1 ? undefined : `message ${index}: receivedAt is not a valid time`
}

/**
 * Handles one WebSocket message from a bridge.
 *
 * - Text, undecodable bytes, or a frame other than BATCH → NACK MALFORMED_FRAME (a frame of
 *   another protocol version → NACK UNSUPPORTED_VERSION, as docs/relay-protocol.md says).
 * - A batch at or below its bridge's last stored batchSeq → ACK DUPLICATE (0, 0).
 * - Otherwise the batch is stored in one transaction → ACK STORED with its first/last seq.
 * - The log is full (retention limits, overflow policy `block`) → NACK CHANNEL_FULL; the
 *   bridge keeps the batch and sends it again later. Like a storage failure, later batches
 *   of that bridge on the socket are then refused with NACK OUT_OF_ORDER.
 * - Storage fails → NACK STORAGE_FAILED; later batches of that bridge on the same socket are
 *   then refused with NACK OUT_OF_ORDER until the refused one is stored, because storing
 *   them would advance the bridge's last batchSeq past it and turn its resend into a
 *   DUPLICATE, losing it.
 */
export function ingestRelayMessage(
  store: BatchStore,
  data: string | ArrayBuffer,
  state: IngestSocketState,
): IngestResult {
  if (typeof data === 'string') {
    return { reply: nack(0, NackCode.MALFORMED_FRAME, 'relay frames are binary'), state }
  }
  let batch: RelayBatch
  try {
    const frame = decodeRelayFrame(new Uint8Array(data))
    if (frame.kind !== 'batch') {
      const reply = nack(0, NackCode.MALFORMED_FRAME, `expected a BATCH, got ${frame.kind}`)
      return { reply, state }
    }
    batch = frame
  } catch (error) {
    if (!(error instanceof RelayProtocolError)) throw error
    const code =
      error.code === RelayProtocolErrorCode.UNSUPPORTED_VERSION
        ? NackCode.UNSUPPORTED_VERSION
        : NackCode.MALFORMED_FRAME
    return { reply: nack(0, code, error.message), state }
  }

  const invalid = invalidMessage(batch)
  if (invalid) return { reply: nack(batch.batchSeq, NackCode.MALFORMED_FRAME, invalid), state }

  const { refused } = state
  if (refused && refused.bridgeId === batch.bridgeId && batch.batchSeq > refused.batchSeq) {
    const reason = `batch ${refused.batchSeq} was not stored; resend from it`
    return { reply: nack(batch.batchSeq, NackCode.OUT_OF_ORDER, reason), state }
  }

  let outcome: StoreOutcome
  try {
    outcome = store.storeBatch(batch)
  } catch (error) {
    console.error('relay batch not stored', {
      bridgeId: batch.bridgeId,
      batchSeq: batch.batchSeq,
      error: String(error),
    })
    const reply = nack(batch.batchSeq, NackCode.STORAGE_FAILED, String(error))
    const { bridgeId, batchSeq } = batch
    return { reply, state: refused ? state : { refused: { bridgeId, batchSeq } } }
  }

  if (outcome.status === 'full') {
    const reply = nack(batch.batchSeq, NackCode.CHANNEL_FULL, outcome.reason)
    const { bridgeId, batchSeq } = batch
    return { reply, state: refused ? state : { refused: { bridgeId, batchSeq } } }
  }

  // The refused batch is stored now (or was before): later ones may follow it again.
  const resolved = refused?.bridgeId === batch.bridgeId && refused.batchSeq === batch.batchSeq
  const reply =
    outcome.status === 'duplicate'
      ? encodeAck({
          batchSeq: batch.batchSeq,
          status: AckStatus.DUPLICATE,
          firstSeq: 0,
          lastSeq: 0,
        })
      : encodeAck({
          batchSeq: batch.batchSeq,
          status: AckStatus.STORED,
          firstSeq: outcome.firstSeq,
          lastSeq: outcome.lastSeq,
        })
  return { reply, state: resolved ? {} : state, stored: outcome.status === 'stored' }
}
