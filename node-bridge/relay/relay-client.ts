// The relay: batches received messages and sends them over one WebSocket per channel to the
// Worker, keeping each batch until the Durable Object acknowledges it as stored. Bounded by a
// high-water mark: when full it asks the PULL side to stop reading, so TCP pushes back.
import WebSocket from 'ws'
import {
  AckStatus,
  decodeRelayFrame,
  encodeBatch,
  encodedMessageSize,
  type RelayMessage,
} from '../../durable/relay-protocol'
import type { Logger } from '../log'
import type { RelaySpool } from './spool'

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
  /** Unacknowledged messages at which the relay is full and the PULL side stops reading. */
  hwmMessages: number
  /** Unacknowledged octets (encoded) at which the relay is full. */
  hwmBytes: number
  /** First reconnect delay; it doubles, with jitter, up to `reconnectMaxMs`. */
  reconnectInitialMs: number
  reconnectMaxMs: number
  logger: Logger
  /** Called when the relay becomes full (true) and when it drains below half the mark (false). */
  onPressure?: (full: boolean) => void
  /**
   * Persists every message before it counts as received, and the batches and acks; what it
   * recovered from an earlier run is sent first, under the same batch numbers. Its bridge id
   * replaces `bridgeId`.
   */
  spool?: RelaySpool
}

/** Monotonic counters and current gauges, for logs and metrics. */
export interface RelayCounters {
  /** Messages handed to the relay (and persisted first, with a spool). */
  received: number
  /** Unacknowledged messages read back from the spool on start. */
  replayed: number
  /** Messages acknowledged as stored by the Durable Object. */
  acked: number
  batchesSent: number
  batchesAcked: number
  /** Batches the Durable Object had stored already (a resend after a lost ack). */
  duplicates: number
  /** Batches sent again after a reconnect. */
  resent: number
  reconnects: number
  /** Batches split after the Worker refused one as too big (WebSocket close 1009). */
  splits: number
  /** Milliseconds spent full, pushing back on the ZeroMQ clients. */
  pushbackMs: number
}

interface PendingBatch {
  seq: number
  /** Id of the first message; the others follow one by one (the spool records ranges). */
  firstId: number
  messages: RelayMessage[]
  /** Encoded size, octets. */
  size: number
  sent: boolean
}

/** RFC 6455 close code: the message was too big for the receiver. */
const CLOSE_MESSAGE_TOO_BIG = 1009
/** Relay frame header plus batch header, generously. */
const BATCH_OVERHEAD = 4 + 1 + 255 + 8 + 4
const textDecoder = new TextDecoder()

export class RelayClient {
  readonly #options: RelayClientOptions
  readonly #url: string
  readonly #bridgeId: string
  readonly #spool: RelaySpool | undefined
  #socket: WebSocket | undefined
  #connected = false
  #stopped = false
  #nextBatchSeq = 1
  /** Largest batch to send, octets; lowered when the Worker answers 1009. */
  #maxBatchBytes: number
  #open: RelayMessage[] = []
  #openBytes = 0
  /** Id of the first message of `#open`; ids count every message ever received, from 1. */
  #openFirstId = 1
  #flushTimer: NodeJS.Timeout | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #reconnectAttempt = 0
  /** Sealed batches in order: the first `maxInFlightBatches` may be on the wire. */
  #batches: PendingBatch[] = []
  #pendingMessages = 0
  #pendingBytes = 0
  #full = false
  #fullSince = 0
  #idleWaiters: Array<() => void> = []
  readonly counters: RelayCounters = {
    received: 0,
    replayed: 0,
    acked: 0,
    batchesSent: 0,
    batchesAcked: 0,
    duplicates: 0,
    resent: 0,
    reconnects: 0,
    splits: 0,
    pushbackMs: 0,
  }

  constructor(options: RelayClientOptions) {
    this.#options = options
    this.#maxBatchBytes = options.maxBatchBytes
    const base = options.workerUrl.replace(/\/+$/, '')
    this.#url = `${base}/v1/channels/${encodeURIComponent(options.channel)}/ingest`
    this.#spool = options.spool
    this.#bridgeId = options.spool?.bridgeId ?? options.bridgeId
    if (this.#spool) this.#recover(this.#spool)
  }

  /** The bridge id batches carry (the spool's, when there is one). */
  get bridgeId(): string {
    return this.#bridgeId
  }

  /** Takes back what the spool held: its batches keep their numbers and go first. */
  #recover(spool: RelaySpool): void {
    const { recovered } = spool
    this.#nextBatchSeq = recovered.nextBatchSeq
    for (const batch of recovered.batches) {
      let size = BATCH_OVERHEAD
      for (const message of batch.messages) size += encodedMessageSize(message)
      this.#batches.push({
        seq: batch.batchSeq,
        firstId: batch.firstId,
        messages: batch.messages,
        size,
        sent: false,
      })
      this.#pendingMessages += batch.messages.length
      this.#pendingBytes += size - BATCH_OVERHEAD
      this.counters.replayed += batch.messages.length
    }
    this.#openFirstId = recovered.openFirstId
    // Unsealed messages are on disk already: they only join the open batch.
    for (const message of recovered.open) this.#add(message)
    this.counters.replayed += recovered.open.length
    this.#checkPressure()
  }

  get connected(): boolean {
    return this.#connected
  }

  /** Messages received but not yet acknowledged by the Durable Object. */
  get unacknowledged(): number {
    return this.#pendingMessages
  }

  /** Encoded octets of the messages not yet acknowledged. */
  get unacknowledgedBytes(): number {
    return this.#pendingBytes
  }

  /** Batches on the wire, awaiting their ack. */
  get inFlight(): number {
    return this.#batches.filter((batch) => batch.sent).length
  }

  /** True while the high-water mark is reached and the PULL side should not read. */
  get full(): boolean {
    return this.#full
  }

  start(): void {
    this.#connect()
  }

  /** Queues one message for the next batch. Never drops: the caller stops reading when full. */
  enqueue(message: RelayMessage): void {
    this.#spool?.append(this.#openFirstId + this.#open.length, message)
    this.counters.received++
    this.#add(message)
    this.#checkPressure()
  }

  #add(message: RelayMessage): void {
    const size = encodedMessageSize(message)
    this.#pendingMessages++
    this.#pendingBytes += size
    this.#open.push(message)
    this.#openBytes += size
    if (
      this.#open.length >= this.#options.maxBatchMessages ||
      this.#openBytes + BATCH_OVERHEAD >= this.#maxBatchBytes
    ) {
      this.#seal()
    } else if (!this.#flushTimer) {
      this.#flushTimer = setTimeout(() => this.#seal(), this.#options.flushDelayMs)
    }
  }

  /** Resolves once every message enqueued so far is acknowledged (or `timeoutMs` passes). */
  async drain(timeoutMs: number): Promise<boolean> {
    this.#seal()
    if (this.#pendingMessages === 0) return true
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
    this.#spool?.flush()
    this.#socket?.close(1000, 'bridge stopping')
  }

  #checkPressure(): void {
    const { hwmMessages, hwmBytes, onPressure } = this.#options
    if (!this.#full) {
      if (this.#pendingMessages >= hwmMessages || this.#pendingBytes >= hwmBytes) {
        this.#full = true
        this.#fullSince = Date.now()
        this.#options.logger.warn(
          { unacknowledged: this.#pendingMessages, bytes: this.#pendingBytes },
          'relay full: pausing ZeroMQ reads until the Worker catches up',
        )
        onPressure?.(true)
      }
      return
    }
    // Resume below half the mark, so reads do not flap on and off with every ack.
    if (this.#pendingMessages <= hwmMessages / 2 && this.#pendingBytes <= hwmBytes / 2) {
      this.#full = false
      const pausedMs = Date.now() - this.#fullSince
      this.counters.pushbackMs += pausedMs
      this.#options.logger.info({ pausedMs }, 'relay drained: resuming ZeroMQ reads')
      onPressure?.(false)
    }
  }

  #seal(): void {
    clearTimeout(this.#flushTimer)
    this.#flushTimer = undefined
    if (this.#open.length === 0) return
    const messages = this.#open
    const batch: PendingBatch = {
      seq: this.#nextBatchSeq++,
      firstId: this.#openFirstId,
      messages,
      size: this.#openBytes + BATCH_OVERHEAD,
      sent: false,
    }
    this.#batches.push(batch)
    this.#spool?.seal(batch.seq, batch.firstId, messages.length)
    this.#open = []
    this.#openBytes = 0
    this.#openFirstId += messages.length
    this.#pump()
  }

  /** Sends unsent batches while the in-flight window has room. */
  #pump(): void {
    const socket = this.#socket
    if (!this.#connected || !socket) return
    const window = Math.min(this.#batches.length, this.#options.maxInFlightBatches)
    // A batch may be stored as soon as it is sent: its SEAL (and messages) must be on disk
    // first, or a restart could number other messages with a stored batch's number.
    this.#spool?.flush()
    for (let index = 0; index < window; index++) {
      const batch = this.#batches[index] as PendingBatch
      if (batch.sent) continue
      batch.sent = true
      this.counters.batchesSent++
      // Encoded when sent, not kept: an unacknowledged batch holds only its messages.
      socket.send(
        encodeBatch({
          bridgeId: this.#bridgeId,
          batchSeq: batch.seq,
          messages: batch.messages,
        }),
      )
    }
  }

  #connect(): void {
    if (this.#stopped) return
    const { logger, ingestToken } = this.#options
    const socket = new WebSocket(this.#url, {
      headers: { authorization: `Bearer ${ingestToken}` },
      perMessageDeflate: false,
      // A batch may be resent whole; the Worker's own limit is 32 MiB.
      maxPayload: 64 * 1024 * 1024,
    })
    this.#socket = socket
    socket.binaryType = 'nodebuffer'
    let ended = false
    const end = (code: number, reason: string) => {
      if (ended) return
      ended = true
      this.#onSocketEnd(socket, code, reason)
    }

    socket.on('open', () => {
      this.#connected = true
      this.#reconnectAttempt = 0
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
        end(1006, `HTTP ${response.statusCode}`)
      })
    })
    socket.on('error', (error) => {
      logger.warn({ err: error.message }, 'relay socket error')
    })
    socket.on('close', (code, reason) => end(code, textDecoder.decode(reason)))
  }

  #onSocketEnd(socket: WebSocket, code: number, reason: string): void {
    const wasConnected = this.#connected && this.#socket === socket
    if (this.#socket === socket) {
      this.#socket = undefined
      this.#connected = false
    }
    if (this.#stopped) return
    if (wasConnected) this.#options.logger.warn({ code, reason }, 'relay disconnected')
    if (code === CLOSE_MESSAGE_TOO_BIG) this.#splitAfterTooBig()
    this.counters.reconnects++
    const { reconnectInitialMs, reconnectMaxMs } = this.#options
    // Exponential backoff with jitter: half the step fixed, half random, so many bridges that
    // lost the Worker at once (a deploy) do not come back in step.
    const step = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** this.#reconnectAttempt)
    this.#reconnectAttempt = Math.min(this.#reconnectAttempt + 1, 30)
    const delay = step / 2 + Math.random() * (step / 2)
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay)
  }

  /**
   * The Worker closed with 1009: a batch was larger than it accepts. Nothing from that batch on
   * was stored (the Worker stops reading at it), so those batches are split to half the size of
   * the largest and numbered again from the first of them; earlier, maybe stored batches keep
   * their numbers, so the Durable Object still recognises them.
   */
  #splitAfterTooBig(): void {
    const sent = this.#batches.filter((batch) => batch.sent)
    const largest = Math.max(0, ...sent.map((batch) => batch.size))
    const limit = Math.max(1, Math.floor(largest / 2))
    const first = this.#batches.findIndex((batch) => batch.sent && batch.size > limit)
    if (first < 0 || largest === 0) return
    this.#maxBatchBytes = Math.min(this.#maxBatchBytes, limit)
    const rest = this.#batches.splice(first)
    let seq = (rest[0] as PendingBatch).seq
    let id = (rest[0] as PendingBatch).firstId
    const messages = rest.flatMap((batch) => batch.messages)
    const split: PendingBatch[] = []
    let current: PendingBatch | undefined
    for (const message of messages) {
      const size = encodedMessageSize(message)
      if (!current || (current.messages.length > 0 && current.size + size > limit)) {
        current = { seq: seq++, firstId: id, messages: [], size: BATCH_OVERHEAD, sent: false }
        split.push(current)
      }
      current.messages.push(message)
      current.size += size
      id++
    }
    this.#batches.push(...split)
    // The spool records the new numbering; its first SEAL replaces the old batches from there.
    for (const batch of split) this.#spool?.seal(batch.seq, batch.firstId, batch.messages.length)
    this.#nextBatchSeq = seq
    this.counters.splits++
    this.#options.logger.warn(
      { maxBatchBytes: this.#maxBatchBytes, batches: this.#batches.length },
      'the Worker refused a batch as too big (1009): splitting',
    )
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
        'Durable Object refused a batch; it stays queued and is sent again after a reconnect',
      )
      // Resend on a fresh connection, after the backoff, rather than loop on this one.
      this.#socket?.close(1011, 'batch refused')
      return
    }
    if (frame.kind !== 'ack') return
    // Acks arrive in order; anything at or below the acked seq is stored.
    let ackedSeq = 0
    while (this.#batches.length > 0 && (this.#batches[0] as PendingBatch).seq <= frame.batchSeq) {
      const batch = this.#batches.shift() as PendingBatch
      ackedSeq = batch.seq
      this.counters.batchesAcked++
      this.counters.acked += batch.messages.length
      this.#pendingMessages -= batch.messages.length
      this.#pendingBytes -= batch.size - BATCH_OVERHEAD
    }
    if (ackedSeq > 0) this.#spool?.ack(ackedSeq)
    if (frame.status === AckStatus.DUPLICATE) this.counters.duplicates++
    this.#pump()
    this.#checkPressure()
    if (this.#pendingMessages === 0) {
      const waiters = this.#idleWaiters
      this.#idleWaiters = []
      for (const wake of waiters) wake()
    }
  }
}
