// A relay endpoint in Node for tests of the bridge's RelayClient where the real Worker cannot
// stage the case: a proxy's smaller WebSocket limit (1009), acks lost mid-flight, refusals on
// demand. It speaks relay protocol v2 with the real codec and stores like the Durable Object:
// once per (bridge id, epoch, batchSeq), the next number only, WELCOME first on each socket, a
// DUPLICATE with the seqs its first copy got.
import type { IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import {
  AckStatus,
  type DuplicateMessage,
  decodeRelayFrame,
  encodeAck,
  encodeNack,
  encodeWelcome,
  NackCode,
  parseRelaySession,
  RELAY_SUBPROTOCOL,
  type RelayBatch,
  type RelayWelcome,
} from '../../shared/relay-protocol'

/** What the receiver does with one batch, instead of storing it. */
export type ReceiverVerdict =
  | { nack: NackCode; reason?: string }
  | { ack: typeof AckStatus.REJECTED }
  | undefined

export interface RelayReceiver {
  url: string
  /**
   * The first frame of each stored message, as text, in order; a duplicate is not stored, nor
   * a message whose idempotency key was stored before (as the Durable Object does, one sender).
   */
  stored: string[]
  /** The key name each stored message came with (undefined: none), beside `stored`. */
  keyNames: (string | undefined)[]
  /** Encoded sizes of the batches received. */
  batchSizes: number[]
  /** While true, batches are stored but their acks never sent (lost with the connection). */
  dropAcks: boolean
  duplicates: number
  /** Sockets opened so far. */
  connections: number
  /** What the next WELCOMEs announce. */
  limits: Omit<RelayWelcome, 'kind' | 'lastBatchSeq' | 'now'>
  /**
   * Behave as a broken object would: after a refusal, take later batches anyway (so a client
   * can be tested against an ACK that follows a NACK).
   */
  forgetRefusals: boolean
  /** Decides a batch's fate before it is stored (default: store it). */
  verdict: (batch: RelayBatch) => ReceiverVerdict
  /** Batches answered, by their reply: 'stored', 'duplicate', 'rejected', or a NACK code. */
  replies: string[]
  /** The last batch stored per session, keyed `epoch/bridgeId`. */
  lastBatchSeqs: Map<string, number>
  /** Ends every bridge socket, as a Worker that restarts does; the bridges reconnect. */
  disconnect(): void
  close(): Promise<void>
}

const text = (frame: Uint8Array | undefined) => Buffer.from(frame ?? []).toString()

/** Starts a receiver on a free loopback port; `maxPayload` makes ws close larger messages with 1009. */
export async function startRelayReceiver(
  options: { maxPayload?: number } = {},
): Promise<RelayReceiver> {
  const server = new WebSocketServer({
    port: 0,
    host: '127.0.0.1',
    ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}),
    handleProtocols: (protocols) => (protocols.has(RELAY_SUBPROTOCOL) ? RELAY_SUBPROTOCOL : false),
  })
  await new Promise((resolve) => server.once('listening', resolve))
  const lastSeqs = new Map<string, number>()
  /** Where each stored batch went, keyed `epoch/bridgeId/batchSeq`: a DUPLICATE says so too. */
  const batchSeqs = new Map<
    string,
    { firstSeq: number; lastSeq: number; duplicates?: DuplicateMessage[] }
  >()
  const storedKeys = new Map<string, number>()
  const receiver: RelayReceiver = {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stored: [],
    keyNames: [],
    batchSizes: [],
    dropAcks: false,
    duplicates: 0,
    connections: 0,
    limits: {
      maxMessageBytes: 16 * 1024 * 1024,
      maxBatchBytes: 32 * 1024 * 1024,
      maxBatchMessages: 0,
      maxClockSkewMs: 300_000,
    },
    forgetRefusals: false,
    verdict: () => undefined,
    replies: [],
    lastBatchSeqs: lastSeqs,
    disconnect: () => {
      for (const client of server.clients) client.terminate()
    },
    close: () =>
      new Promise((resolve) => {
        for (const client of server.clients) client.terminate()
        server.close(() => resolve())
      }),
  }
  server.on('connection', (socket, request: IncomingMessage) => {
    receiver.connections++
    const session = parseRelaySession({ get: (name) => header(request, name) })
    if ('error' in session) {
      socket.close(1002, session.error)
      return
    }
    const key = `${session.epoch}/${session.bridgeId}`
    // Over maxPayload, ws closes with 1009 and reports the error here.
    socket.on('error', () => undefined)
    socket.send(
      encodeWelcome({ lastBatchSeq: lastSeqs.get(key) ?? 0, now: Date.now(), ...receiver.limits }),
    )
    let refused: number | undefined
    socket.on('message', (data: Buffer) => {
      const frame = decodeRelayFrame(new Uint8Array(data))
      if (frame.kind !== 'batch') return
      receiver.batchSizes.push(data.length)
      const { batchSeq } = frame
      const nack = (code: NackCode, reason: string) => {
        receiver.replies.push(String(code))
        socket.send(encodeNack({ batchSeq, code, reason }))
      }
      const last = lastSeqs.get(key)
      if (last !== undefined && batchSeq <= last) {
        receiver.duplicates++
        receiver.replies.push('duplicate')
        if (!receiver.dropAcks) {
          const seqs = batchSeqs.get(`${key}/${batchSeq}`) ?? { firstSeq: 0, lastSeq: 0 }
          socket.send(encodeAck({ batchSeq, status: AckStatus.DUPLICATE, ...seqs }))
        }
        return
      }
      if (refused !== undefined && batchSeq > refused) {
        nack(NackCode.OUT_OF_ORDER, `batch ${refused} was not stored; resend from it`)
        return
      }
      if (last !== undefined && batchSeq !== last + 1) {
        refused ??= batchSeq
        nack(NackCode.OUT_OF_ORDER, `batch ${batchSeq} after batch ${last}`)
        return
      }
      const verdict = receiver.verdict(frame)
      if (verdict && 'nack' in verdict) {
        if (!receiver.forgetRefusals) refused ??= batchSeq
        nack(verdict.nack, verdict.reason ?? 'refused by the test')
        return
      }
      if (refused === batchSeq) refused = undefined
      lastSeqs.set(key, batchSeq)
      if (verdict && 'ack' in verdict) {
        receiver.replies.push('rejected')
        socket.send(encodeAck({ batchSeq, status: AckStatus.REJECTED, firstSeq: 0, lastSeq: 0 }))
        return
      }
      const first = receiver.stored.length + 1
      const duplicates: DuplicateMessage[] = []
      frame.messages.forEach((message, index) => {
        const idempotencyKey = message.idempotencyKey
        const known = idempotencyKey === undefined ? undefined : storedKeys.get(idempotencyKey)
        if (known !== undefined) {
          duplicates.push({ index, seq: known })
          return
        }
        receiver.stored.push(text(message.frames[0]))
        receiver.keyNames.push(message.keyName)
        if (idempotencyKey !== undefined) storedKeys.set(idempotencyKey, receiver.stored.length)
      })
      const some = receiver.stored.length >= first
      const seqs = {
        firstSeq: some ? first : 0,
        lastSeq: some ? receiver.stored.length : 0,
        duplicates,
      }
      batchSeqs.set(`${key}/${batchSeq}`, seqs)
      receiver.replies.push('stored')
      if (receiver.dropAcks) return
      socket.send(encodeAck({ batchSeq, status: AckStatus.STORED, ...seqs }))
    })
  })
  return receiver
}

function header(request: IncomingMessage, name: string): string | null {
  const value = request.headers[name.toLowerCase()]
  return typeof value === 'string' ? value : null
}
