// The relay: batches received messages and sends them over one WebSocket per channel to the
// Worker, keeping each batch until the Durable Object acknowledges it as stored.
import WebSocket from 'ws'
import {
  AckStatus,
  decodeRelayFrame,
  encodeBatch,
  encodedMessageSize,
  type RelayMessage,
} from '../../durable/relay-protocol'
import type { Logger } from '../log'

export interface RelayClientOptions {
  /** Base URL of the Worker, `ws://` or `wss://`. */
  workerUrl: string
  channel: string
  ingestToken: string
  bridgeId: string
  /** Flush a batch when it holds this many messages… */
  maxBatchMessages: number
  /** …or this many encoded octets… */
  maxBatchBytes: number
  /** …or when its first message has waited this long. */
  flushDelayMs: number
  /** Batches sent and not yet acknowledged, at most. */
  maxInFlightBatches: number
  reconnectDelayMs: number
  logger: Logger
}

export interface RelayCounters {
  received: number
  batchesSent: number
  batchesAcked: number
  messagesAcked: number
  duplicates: number
  resent: number
  reconnects: number
}

interface PendingBatch {
  seq: number
  bytes: Uint8Array
  messageCount: number
  sent: boolean
}

const textDecoder = new TextDecoder()

export class RelayClient {
  readonly #options: RelayClientOptions
  readonly #url: string
  #socket: WebSocket | undefined
  #connected = false
  #stopped = false
  #nextBatchSeq = 1
  #open: RelayMessage[] = []
  #openBytes = 0
  #flushTimer: NodeJS.Timeout | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  /** Sealed batches in order: the first `maxInFlightBatches` may be on the wire. */
  #batches: PendingBatch[] = []
  #idleWaiters: Array<() => void> = []
  readonly counters: RelayCounters = {
    received: 0,
    batchesSent: 0,
    batchesAcked: 0,
    messagesAcked: 0,
    duplicates: 0,
    resent: 0,
    reconnects: 0,
  }

  constructor(options: RelayClientOptions) {
    this.#options = options
    const base = options.workerUrl.replace(/\/+$/, '')
    this.#url = `${base}/v1/channels/${encodeURIComponent(options.channel)}/ingest`
  }

  get connected(): boolean {
    return this.#connected
  }

  /** Messages received but not yet acknowledged by the Durable Object. */
  get unacknowledged(): number {
    let count = this.#open.length
    for (const batch of this.#batches) count += batch.messageCount
    return count
  }

  start(): void {
    this.#connect()
  }

  /** Queues one message for the next batch. */
  enqueue(message: RelayMessage): void {
    this.counters.received++
    this.#open.push(message)
    this.#openBytes += encodedMessageSize(message)
    if (
      this.#open.length >= this.#options.maxBatchMessages ||
      this.#openBytes >= this.#options.maxBatchBytes
    ) {
      this.#seal()
    } else if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => this.#seal(), this.#options.flushDelayMs)
    }
  }

  /** Resolves once every message enqueued so far is acknowledged (or `timeoutMs` passes). */
  async drain(timeoutMs: number): Promise<boolean> {
    this.#seal()
    if (this.unacknowledged === 0) return true
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs)
      this.#idleWaiters.push(() => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }

  /** Closes the WebSocket and stops reconnecting; unacknowledged messages stay counted. */
  stop(): void {
    this.#stopped = true
    clearTimeout(this.#flushTimer)
    clearTimeout(this.#reconnectTimer)
    this.#socket?.close(1000, 'bridge stopping')
  }

  #seal(): void {
    clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    if (this.#open.length === 0) return
    const messages = this.#open
    this.#open = []
    this.#openBytes = 0
    const seq = this.#nextBatchSeq++
    const bytes = encodeBatch({ bridgeId: this.#options.bridgeId, batchSeq: seq, messages })
    this.#batches.push({ seq, bytes, messageCount: messages.length, sent: false })
    this.#pump()
  }

  /** Sends unsent batches while the in-flight window has room. */
  #pump(): void {
    if (!this.#connected || !this.#socket) return
    const window = Math.min(this.#batches.length, this.#options.maxInFlightBatches)
    for (let index = 0; index < window; index++) {
      const batch = this.#batches[index] as PendingBatch
      if (batch.sent) continue
      batch.sent = true
      this.counters.batchesSent++
      this.#socket.send(batch.bytes)
    }
  }

  #connect(): void {
    if (this.#stopped) return
    const { logger, ingestToken } = this.#options
    const socket = new WebSocket(this.#url, {
      headers: { authorization: `Bearer ${ingestToken}` },
      perMessageDeflate: false,
    })
    this.#socket = socket
    socket.binaryType = 'nodebuffer'

    socket.on('open', () => {
      this.#connected = true
      logger.info({ url: this.#url }, 'relay connected')
      // Everything unacknowledged goes again, in order; the Durable Object drops duplicates.
      for (const batch of this.#batches) {
        if (batch.sent) this.counters.resent++
        batch.sent = false
      }
      this.#pump()
    })
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        logger.warn({ text: data.toString().slice(0, 200) }, 'relay sent text; ignored')
        return
      }
      this.#onFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    })
    socket.on('unexpected-response', (_request, response) => {
      let body = ''
      response.on('data', (chunk: Buffer) => {
        body += chunk.toString()
      })
      response.on('end', () => {
        logger.error(
          { status: response.statusCode, body: body.slice(0, 500) },
          'relay refused by the Worker',
        )
        socket.terminate()
      })
    })
    socket.on('error', (error) => {
      logger.warn({ err: error.message }, 'relay socket error')
    })
    socket.on('close', (code, reason) => {
      const wasConnected = this.#connected
      this.#connected = false
      if (this.#socket === socket) this.#socket = undefined
      if (this.#stopped) return
      if (wasConnected) {
        logger.warn({ code, reason: textDecoder.decode(reason) }, 'relay disconnected')
      }
      this.counters.reconnects++
      this.#reconnectTimer = setTimeout(() => this.#connect(), this.#options.reconnectDelayMs)
    })
  }

  #onFrame(bytes: Uint8Array): void {
    const { logger } = this.#options
    let frame: ReturnType<typeof decodeRelayFrame>
    try {
      frame = decodeRelayFrame(bytes)
    } catch (error) {
      logger.error({ err: (error as Error).message }, 'relay sent an unreadable frame')
      return
    }
    if (frame.kind === 'nack') {
      logger.error(
        { batchSeq: frame.batchSeq, code: frame.code, reason: frame.reason },
        'Durable Object refused a batch; it stays queued',
      )
      // Resend on a fresh connection rather than loop on this one.
      this.#socket?.close(1011, 'batch refused')
      return
    }
    if (frame.kind !== 'ack') return
    // Acks arrive in order; anything at or below the acked seq is stored.
    while (this.#batches.length > 0 && (this.#batches[0] as PendingBatch).seq <= frame.batchSeq) {
      const batch = this.#batches.shift() as PendingBatch
      this.counters.batchesAcked++
      this.counters.messagesAcked += batch.messageCount
    }
    if (frame.status === AckStatus.DUPLICATE) this.counters.duplicates++
    this.#pump()
    if (this.unacknowledged === 0) {
      const waiters = this.#idleWaiters
      this.#idleWaiters = []
      for (const wake of waiters) wake()
    }
  }
}
