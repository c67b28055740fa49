// What the channel's Durable Object answers to each WebSocket message from a bridge: decode the
// relay frame, store a batch, and reply with exactly one ACK or NACK (docs/relay-protocol.md).
// No socket here: the caller sends the reply and keeps the per-socket state.

import {
  AckStatus,
  decodeRelayFrame,
  encodeAck,
  encodeNack,
  NackCode,
  type RelayBatch,
  RelayProtocolError,
  RelayProtocolErrorCode,
  type RelayProtocolVersion,
  type RelaySession,
} from '../shared/relay-protocol'
import type { StoreOutcome } from './message-store'

/** Where batches go; `MessageStore` in production. */
export interface BatchStore {
  storeBatch(session: RelaySession, batch: RelayBatch): StoreOutcome
}

/**
 * What one bridge socket remembers between messages (kept as the WebSocket's attachment, so
 * it survives hibernation): its session and protocol version, from the upgrade, and `refused`,
 * the first batch not stored on this socket.
 */
export interface IngestSocketState {
  session: RelaySession
  /** Absent on sockets accepted before version 3: those speak version 2. */
  version?: RelayProtocolVersion
  refused?: number
}

/** The reply to send and the socket's state after the message. */
export interface IngestResult {
  reply: Uint8Array
  state: IngestSocketState
  /** True when new messages were stored (not for a duplicate or a refusal). */
  stored?: boolean
  /**
   * Close the socket after the reply (RFC 6455 1007, invalid payload): a frame that could not be
   * read names no batch, so nothing after it on this socket can be taken in order.
   */
  close?: boolean
}

// Receive times are kept to ±2^51 ms (about 71,000 years either side of 1970): segments store
// each as a difference from the one before, within ±2^52 (./segment-codec.ts), and JavaScript
// dates (±8.64e15 ms) show them all as ISO 8601.
const MAX_TIME_MS = 2 ** 51

/** The NACK for each refusal a store may answer. */
const NACK_OF = {
  out_of_order: NackCode.OUT_OF_ORDER,
  full: NackCode.CHANNEL_FULL,
  too_large: NackCode.BATCH_TOO_LARGE,
  invalid: NackCode.INVALID_MESSAGE,
} as const

function nack(
  version: RelayProtocolVersion,
  batchSeq: number,
  code: NackCode,
  reason: string,
): Uint8Array {
  return encodeNack({ batchSeq, code, reason }, version)
}

function withoutRefusal({ refused: _, ...state }: IngestSocketState): IngestSocketState {
  return state
}

function malformedMessage(batch: RelayBatch): string | undefined {
  const index = batch.messages.findIndex((message) => Math.abs(message.receivedAt) > MAX_TIME_MS)
  return index === -1 ? undefined : `message ${index}: receivedAt is not a valid time`
}

/**
 * Handles one WebSocket message from a bridge.
 *
 * - Text, undecodable bytes, or a frame other than BATCH → NACK MALFORMED_FRAME (a frame of
 *   another protocol version → NACK UNSUPPORTED_VERSION, as docs/relay-protocol.md says), and
 *   the socket is closed: such a frame names no batch to hold the later ones behind.
 * - A batch at or below its session's last stored batchSeq → ACK DUPLICATE, with the seqs its
 *   first copy was stored under while the object still finds them, else (0, 0).
 * - Otherwise the batch is stored in one transaction → ACK STORED with its first/last seq, or
 *   ACK REJECTED for one message that no batch could carry (see MessageStore.storeBatch).
 * - Any refusal (not the next number, log full, batch too large, a field not trusted, storage
 *   failure) → a NACK with its code; later batches on the same socket are then refused with NACK
 *   OUT_OF_ORDER until the refused one is stored, because storing them would advance the
 *   session's last batchSeq past it and turn its resend into a DUPLICATE, losing it.
 */
export function ingestRelayMessage(
  store: BatchStore,
  data: string | ArrayBuffer,
  state: IngestSocketState,
): IngestResult {
  const version = state.version ?? 2
  if (typeof data === 'string') {
    const reply = nack(version, 0, NackCode.MALFORMED_FRAME, 'relay frames are binary')
    return { reply, state, close: true }
  }
  let batch: RelayBatch
  try {
    const frame = decodeRelayFrame(new Uint8Array(data), version)
    if (frame.kind !== 'batch') {
      const reply = nack(
        version,
        0,
        NackCode.MALFORMED_FRAME,
        `expected a BATCH, got ${frame.kind}`,
      )
      return { reply, state, close: true }
    }
    batch = frame
  } catch (error) {
    if (!(error instanceof RelayProtocolError)) throw error
    const code =
      error.code === RelayProtocolErrorCode.UNSUPPORTED_VERSION
        ? NackCode.UNSUPPORTED_VERSION
        : NackCode.MALFORMED_FRAME
    return { reply: nack(version, 0, code, error.message), state, close: true }
  }

  const { refused } = state
  if (refused !== undefined && batch.batchSeq > refused) {
    const reason = `batch ${refused} was not stored; resend from it`
    return { reply: nack(version, batch.batchSeq, NackCode.OUT_OF_ORDER, reason), state }
  }
  // Every refusal of a batch holds the later ones on this socket, whatever its code.
  const refuse = (code: NackCode, reason: string): IngestResult => ({
    reply: nack(version, batch.batchSeq, code, reason),
    state: refused === undefined ? { ...state, refused: batch.batchSeq } : state,
  })

  const malformed = malformedMessage(batch)
  if (malformed) return refuse(NackCode.MALFORMED_FRAME, malformed)

  let outcome: StoreOutcome
  try {
    outcome = store.storeBatch(state.session, batch)
  } catch (error) {
    console.error('relay batch not stored', {
      bridgeId: state.session.bridgeId,
      batchSeq: batch.batchSeq,
      error: String(error),
    })
    return refuse(NackCode.STORAGE_FAILED, String(error))
  }

  switch (outcome.status) {
    case 'out_of_order':
    case 'full':
    case 'too_large':
    case 'invalid':
      return refuse(NACK_OF[outcome.status], outcome.reason)
    default:
      break
  }
  // The refused batch is stored now (or was before, or used up): later ones may follow it.
  const resolved = refused === batch.batchSeq
  const next: IngestSocketState = resolved ? withoutRefusal(state) : state
  const status =
    outcome.status === 'stored'
      ? AckStatus.STORED
      : outcome.status === 'rejected'
        ? AckStatus.REJECTED
        : AckStatus.DUPLICATE
  const seqs =
    outcome.status === 'stored'
      ? { firstSeq: outcome.firstSeq, lastSeq: outcome.lastSeq, duplicates: outcome.duplicates }
      : outcome.status === 'duplicate' && outcome.seqs
        ? outcome.seqs
        : { firstSeq: 0, lastSeq: 0 }
  if (outcome.status === 'rejected') {
    console.error('relay message rejected: over the channel limits on its own', {
      bridgeId: state.session.bridgeId,
      batchSeq: batch.batchSeq,
      reason: outcome.reason,
    })
  }
  return {
    reply: encodeAck({ batchSeq: batch.batchSeq, status, ...seqs }, version),
    state: next,
    stored: outcome.status === 'stored',
  }
}
