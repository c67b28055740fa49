// The relay: batches received messages and sends them over one WebSocket per channel to the
// Worker, keeping each batch until the Durable Object acknowledges it as stored. Bounded by a
// high-water mark: when full it asks the PULL side to stop reading, so TCP pushes back. A batch
// the channel refuses (NACK) keeps the socket: the relay backs off and sends it again, saying so
// once and then now and then, never reconnecting in a loop (docs/relay-protocol.md).
import WebSocket from 'ws'
import { isKeyName } from '../../../shared/key-name.ts'
import {
  AckStatus,
  BATCH_HEADER_SIZE,
  BRIDGE_ID_HEADER,
  CLOSE_CREDENTIAL_REVOKED,
  CLOSE_REPLACED,
  decodeRelayFrame,
  EPOCH_HEADER,
  encodeBatch,
  encodedMessageSize,
  NackCode,
  nackCodeName,
  newEpoch,
  RELAY_SUBPROTOCOL,
  type RelayAck,
  type RelayMessage,
  type RelayNack,
  type RelaySession,
  type RelayWelcome,
  seqsOfAck,
} from '../../../shared/relay-protocol.ts'
import type { Logger } from '../log.ts'
import type { RelaySpool } from './spool.ts'

export interface RelayClientOptions {
  /** Base URL of the Worker, `ws://` or `wss://`. */
  workerUrl: string
  channel: string
  ingestToken: string
  bridgeId: string
  /**
   * The epoch of this run's batch numbering (default: a new random one; a spool's own wins).
   * Only tests need it.
   */
  epoch?: number
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
  /**
   * First delay before reconnecting, or before resending a refused batch; it doubles, with
   * jitter, up to `reconnectMaxMs`.
   */
  reconnectInitialMs: number
  reconnectMaxMs: number
  logger: Logger
  /** Called when the relay becomes full (true) and when it drains below half the mark (false). */
  onPressure?: (full: boolean) => void
  /** Called with the channel's limits each time the Worker announces them (each connection). */
  onLimits?: (limits: RelayWelcome) => void
  /**
   * Persists every message before it counts as received, and the batches and acks; what it
   * recovered from an earlier run is sent first, under the same batch numbers and epoch. Its
   * bridge id replaces `bridgeId`.
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
  /** Batches sent again after a reconnect or a refusal. */
  resent: number
  reconnects: number
  /** Batches split after the Worker refused one as too big (WebSocket close 1009). */
  splits: number
  /** Milliseconds spent full, pushing back on the ZeroMQ clients. */
  pushbackMs: number
  /** Batches the channel refused (NACK), each to be sent again. */
  refusals: number
  /** Messages the channel rejected for good (ACK REJECTED: over its limits on their own). */
  rejected: number
  /**
   * DUPLICATE answers to a batch this process had no reason to think stored (never sent on a
   * socket that died before its reply, not read back from a spool): another process writes in
   * this session. Should stay 0; each is logged as an error.
   */
  unexpectedDuplicates: number
  /** Messages not stored, being resends under an idempotency key of one stored before. */
  resentMessages: number
  /** Receive times found ahead of the channel's clock (a clock that jumped back) and set to now. */
  clampedTimes: number
}

/** Why the channel refuses to store, while it does: shown in logs, metrics and /readyz. */
export interface RelayBlock {
  /** The NACK code's name, e.g. CHANNEL_FULL, or MESSAGE_TOO_BIG for a WebSocket close 1009. */
  code: string
  reason: string
  /** When the first refusal in a row came (ms since the epoch). */
  since: number
  /** Refusals in a row. */
  refusals: number
}

/**
 * What became of one message, for a sender that waits for it (a REQ or DEALER peer, RFC 28):
 * stored under `seq`; rejected, never stored (over the channel's limits on its own); or
 * `seq-unknown`: the channel had taken its batch before (the answer to a resend) and cannot
 * place it: almost always stored, its segment since dropped by retention, but also a batch
 * whose REJECTED answer was lost, or one another process sent under this session.
 */
export type MessageReceipt =
  | { status: 'stored'; seq: number }
  | { status: 'seq-unknown' }
  | { status: 'rejected' }

/** What an ACK says of where its batch's messages are. */
type AckSeqs = Pick<RelayAck, 'firstSeq' | 'lastSeq' | 'duplicates'>
const NO_SEQS: AckSeqs = { firstSeq: 0, lastSeq: 0 }

interface PendingBatch {
  seq: number
  /** Id of the first message; the others follow one by one (the spool records ranges). */
  firstId: number
  messages: RelayMessage[]
  /** Encoded size, octets. */
  size: number
  /** On the wire of the current socket, its reply not in yet. */
  sent: boolean
  /** Times this process sent it, over every socket. */
  sends: number
  /**
   * It may be stored: read back from the spool (an earlier run may have sent it), or sent on a
   * socket that ended before its reply came.
   */
  maybeStored: boolean
}

/** Where the current socket stands. */
type SocketPhase =
  /** No socket, or one not open yet. */
  | 'connecting'
  /** Open; batches wait for the WELCOME (the session's state and the channel's limits). */
  | 'welcoming'
  | 'streaming'
  /** A batch was refused: nothing is sent until its replies are in and the backoff is over. */
  | 'refused'

/** RFC 6455 close code: the message was too big for the receiver. */
const CLOSE_MESSAGE_TOO_BIG = 1009
/** RFC 6455 close code: the other end broke the protocol. */
const CLOSE_PROTOCOL_ERROR = 1002
/** Relay frame header plus batch header. */
const BATCH_OVERHEAD = BATCH_HEADER_SIZE
/** How often, at most, a refusal or a clamped receive time that goes on is logged again. */
const REFUSAL_LOG_INTERVAL_MS = 60_000
/** A bridge clock this far from the Worker's is worth a warning. */
const CLOCK_WARNING_MS = 10_000
/**
 * A WebSocket ping this often; a socket with no pong by the next one is dead (a half-open TCP
 * connection would otherwise hold batches until TCP gives up). Durable Objects answer pings
 * without waking (Cloudflare, "WebSockets" best practices).
 */
const KEEPALIVE_MS = 30_000
const textDecoder = new TextDecoder()

/**
 * Whether no intermediary can read the relay's bytes: TLS (`wss:`), or a loopback address.
 * Masking (RFC 6455 §5.3, §10.3) is there so that bytes a client sends cannot be taken by a
 * proxy on the path for requests of its own (cache poisoning); where no proxy can see them,
 * an all-zero key lets ws skip XORing every batch, a fifth of the bridge's CPU at 250,000 msg/s.
 */
export function cleartextSeenByNobody(url: string): boolean {
  const { protocol, hostname } = new URL(url)
  if (protocol === 'wss:') return true
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
}

function zeroMask(mask: Buffer): void {
  mask.fill(0)
}

export class RelayClient {
  readonly #options: RelayClientOptions
  readonly #url: string
  readonly #session: RelaySession
  readonly #spool: RelaySpool | undefined
  #socket: WebSocket | undefined
  #phase: SocketPhase = 'connecting'
  #stopped = false
  #nextBatchSeq = 1
  /** The highest batch acknowledged (everything up to it is stored or used up). */
  #lastAckedSeq = 0
  /** Largest batch to send, octets; lowered when the Worker answers 1009. */
  #maxBatchBytes: number
  /** What the channel announced on the current connection (until then, no limit of its own). */
  #limits: RelayWelcome | undefined
  /** The Worker's clock minus ours, from the last WELCOME. */
  #clockOffsetMs = 0
  #clampLoggedAt = 0
  #open: RelayMessage[] = []
  #openBytes = 0
  /**
   * Who waits for each message's fate, by the message itself (splitting a batch moves messages,
   * not receipts); and how many wait, so a bridge without waiters skips the looking.
   */
  readonly #receipts = new WeakMap<RelayMessage, (receipt: MessageReceipt) => void>()
  #waiting = 0
  /** Id of the first message of `#open`; ids count every message ever received, from 1. */
  #openFirstId = 1
  #flushTimer: NodeJS.Timeout | undefined
  #reconnectTimer: NodeJS.Timeout | undefined
  #reconnectAttempt = 0
  /** Resets the reconnect backoff once a socket has lasted; cleared when it ends. */
  #stableTimer: NodeJS.Timeout | undefined
  #keepaliveTimer: NodeJS.Timeout | undefined
  /** Sealed batches in order: the first `maxInFlightBatches` may be on the wire. */
  #batches: PendingBatch[] = []
  /** Batches sent on the current socket whose reply has not come. */
  #outstanding = 0
  /** After a refusal, one batch at a time until one is acknowledged again. */
  #probing = false
  /** The first refusal in a row and what came of it; cleared when a batch is stored again. */
  #block: (RelayBlock & { batchSeq: number; nackCode: number; loggedAt: number }) | undefined
  #resendTimer: NodeJS.Timeout | undefined
  #resendAttempt = 0
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
    refusals: 0,
    rejected: 0,
    unexpectedDuplicates: 0,
    resentMessages: 0,
    clampedTimes: 0,
  }

  constructor(options: RelayClientOptions) {
    this.#options = options
    this.#maxBatchBytes = options.maxBatchBytes
    const base = options.workerUrl.replace(/\/+$/, '')
    this.#url = `${base}/v1/channels/${encodeURIComponent(options.channel)}/ingest`
    this.#spool = options.spool
    // A spool's numbering goes on across restarts, under its epoch; without one, each run
    // numbers from 1 under a new epoch, so it cannot be taken for the run before.
    this.#session = {
      bridgeId: options.spool?.bridgeId ?? options.bridgeId,
      epoch: options.spool?.epoch ?? options.epoch ?? newEpoch(),
    }
    if (this.#spool) this.#recover(this.#spool)
  }

  /** The bridge id batches carry (the spool's, when there is one). */
  get bridgeId(): string {
    return this.#session.bridgeId
  }

  /** The epoch of this relay's batch numbering (see RelaySession); never logged. */
  get epoch(): number {
    return this.#session.epoch
  }

  /** Takes back what the spool held: its batches keep their numbers and go first. */
  #recover(spool: RelaySpool): void {
    const { recovered } = spool
    this.#nextBatchSeq = recovered.nextBatchSeq
    this.#lastAckedSeq = (recovered.batches[0]?.batchSeq ?? recovered.nextBatchSeq) - 1
    for (const batch of recovered.batches) {
      let size = BATCH_OVERHEAD
      for (const message of batch.messages) size += encodedMessageSize(message)
      this.#batches.push({
        seq: batch.batchSeq,
        firstId: batch.firstId,
        messages: batch.messages,
        size,
        sent: false,
        sends: 0,
        maybeStored: true,
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

  /** Connected to the Worker and welcomed by the channel. */
  get connected(): boolean {
    return this.#phase === 'streaming' || this.#phase === 'refused'
  }

  /** The channel's refusal in progress, when it refuses to store (see {@link RelayBlock}). */
  get blocked(): RelayBlock | undefined {
    if (!this.#block) return undefined
    const { code, reason, since, refusals } = this.#block
    return { code, reason, since, refusals }
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
    return this.#outstanding
  }

  /** True while the high-water mark is reached and the PULL side should not read. */
  get full(): boolean {
    return this.#full
  }

  start(): void {
    this.#connect()
  }

  /**
   * Queues one message for the next batch. Never drops: the caller stops reading when full.
   * `onReceipt` is told what became of it once the channel answered: after the ACK of the batch
   * holding it, never before, once. It is not kept across a restart of this process.
   */
  enqueue(message: RelayMessage, onReceipt?: (receipt: MessageReceipt) => void): void {
    // A name that breaks its rule would fail the encoding of every batch holding it: the message
    // goes without it (a name is a label; the message is the data).
    if (message.keyName !== undefined && !(message.publicKey && isKeyName(message.keyName))) {
      delete message.keyName
    }
    if (onReceipt) {
      this.#receipts.set(message, onReceipt)
      this.#waiting++
    }
    this.#spool?.append(this.#openFirstId + this.#open.length, message)
    this.counters.received++
    this.#add(message)
    this.#checkPressure()
  }

  /** The batch limits in force: ours, lowered by a 1009 and by what the channel announced. */
  #batchLimits(): { messages: number; bytes: number } {
    const limits = this.#limits
    const announcedMessages = limits?.maxBatchMessages ? limits.maxBatchMessages : Infinity
    return {
      messages: Math.min(this.#options.maxBatchMessages, announcedMessages),
      bytes: Math.min(this.#maxBatchBytes, limits?.maxBatchBytes ?? Infinity),
    }
  }

  #add(message: RelayMessage): void {
    const size = encodedMessageSize(message)
    this.#pendingMessages++
    this.#pendingBytes += size
    // A message that would take the open batch past the limits goes into the next one; one
    // over the channel's message limit (queued before it was known) goes alone, so the
    // channel's refusal of it concerns it only.
    const limits = this.#batchLimits()
    const alone = size > (this.#limits?.maxMessageBytes ?? Infinity)
    if (
      this.#open.length > 0 &&
      (alone || this.#openBytes + size + BATCH_OVERHEAD > limits.bytes)
    ) {
      this.#seal()
    }
    this.#open.push(message)
    this.#openBytes += size
    if (
      alone ||
      this.#open.length >= limits.messages ||
      this.#openBytes + BATCH_OVERHEAD >= limits.bytes
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
    clearTimeout(this.#resendTimer)
    clearTimeout(this.#stableTimer)
    clearInterval(this.#keepaliveTimer)
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
      sends: 0,
      maybeStored: false,
    }
    this.#batches.push(batch)
    this.#spool?.seal(batch.seq, batch.firstId, messages.length)
    this.#open = []
    this.#openBytes = 0
    this.#openFirstId += messages.length
    this.#pump()
  }

  /** Sends unsent batches while the in-flight window has room (one while probing). */
  #pump(): void {
    const socket = this.#socket
    if (this.#phase !== 'streaming' || !socket) return
    const size = this.#probing ? 1 : this.#options.maxInFlightBatches
    const window = Math.min(this.#batches.length, size)
    // A batch may be stored as soon as it is sent: its SEAL (and messages) must be on disk
    // first, or a restart could number other messages with a stored batch's number.
    this.#spool?.flush()
    for (let index = 0; index < window; index++) {
      const batch = this.#batches[index] as PendingBatch
      if (batch.sent) continue
      this.#clampReceiveTimes(batch)
      // Encoded when sent, not kept: an unacknowledged batch holds only its messages.
      const frame = encodeBatch({ batchSeq: batch.seq, messages: batch.messages })
      batch.sent = true
      if (batch.sends > 0) this.counters.resent++
      batch.sends++
      this.#outstanding++
      this.counters.batchesSent++
      socket.send(frame)
    }
  }

  /**
   * A receive time ahead of the channel's clock by more than half its tolerance (this bridge's
   * clock was ahead, then stepped back) becomes now on the channel's clock: refused, it would
   * hold the batch and all after it until real time caught up with it.
   */
  #clampReceiveTimes(batch: PendingBatch): void {
    const limits = this.#limits
    if (!limits) return
    const channelNow = Date.now() + this.#clockOffsetMs
    const latest = channelNow + limits.maxClockSkewMs / 2
    let clamped = 0
    for (const message of batch.messages) {
      if (message.receivedAt > latest) {
        message.receivedAt = channelNow
        clamped++
      }
    }
    if (clamped === 0) return
    this.counters.clampedTimes += clamped
    const now = Date.now()
    if (now - this.#clampLoggedAt >= REFUSAL_LOG_INTERVAL_MS) {
      this.#clampLoggedAt = now
      this.#options.logger.error(
        { clamped: this.counters.clampedTimes, batchSeq: batch.seq },
        "messages received in the future of the channel's clock (this clock jumped back?): their receive time is set to now",
      )
    }
  }

  #connect(): void {
    if (this.#stopped) return
    const { logger, ingestToken } = this.#options
    const socket = new WebSocket(this.#url, [RELAY_SUBPROTOCOL], {
      headers: {
        authorization: `Bearer ${ingestToken}`,
        [BRIDGE_ID_HEADER]: this.#session.bridgeId,
        [EPOCH_HEADER]: String(this.#session.epoch),
      },
      perMessageDeflate: false,
      // A batch may be resent whole; the Worker's own limit is 32 MiB.
      maxPayload: 64 * 1024 * 1024,
      ...(cleartextSeenByNobody(this.#url) ? { generateMask: zeroMask } : {}),
    })
    this.#socket = socket
    this.#phase = 'connecting'
    this.#outstanding = 0
    socket.binaryType = 'nodebuffer'
    let ended = false
    const end = (code: number, reason: string) => {
      if (ended) return
      ended = true
      this.#onSocketEnd(socket, code, reason)
    }

    socket.on('open', () => {
      if (this.#socket !== socket || this.#stopped) return
      this.#phase = 'welcoming'
      logger.info({ url: this.#url }, 'relay connected')
      let answered = true
      socket.on('pong', () => {
        answered = true
      })
      this.#keepaliveTimer = setInterval(() => {
        if (!answered) {
          logger.warn('relay socket silent for a ping interval: reconnecting')
          socket.terminate()
          return
        }
        answered = false
        socket.ping()
      }, KEEPALIVE_MS)
      this.#keepaliveTimer.unref()
    })
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      // A reply that arrives while stopping changes nothing: the spool may be closed already.
      if (this.#socket !== socket || this.#stopped) return
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
    if (this.#socket !== socket) return
    const wasConnected = this.connected
    this.#socket = undefined
    this.#phase = 'connecting'
    this.#outstanding = 0
    this.#probing = false
    clearTimeout(this.#resendTimer)
    this.#resendTimer = undefined
    clearTimeout(this.#stableTimer)
    clearInterval(this.#keepaliveTimer)
    if (code === CLOSE_MESSAGE_TOO_BIG && !this.#stopped) this.#splitAfterTooBig()
    // Whatever was on the wire goes again on the next socket; with no reply, it may be stored.
    for (const batch of this.#batches) {
      if (batch.sent) batch.maybeStored = true
      batch.sent = false
    }
    if (this.#stopped) return
    if (code === CLOSE_REPLACED) {
      this.#options.logger.warn(
        { bridgeId: this.#session.bridgeId, reason },
        'the Worker closed this relay for a newer connection with the same bridge id (is another bridge running with this id?)',
      )
    } else if (code === CLOSE_CREDENTIAL_REVOKED) {
      this.#options.logger.error(
        { channel: this.#options.channel },
        'the Worker closed this relay: its ingest token was deleted or expired (give the bridge a valid --ingest-token)',
      )
    } else if (wasConnected) {
      this.#options.logger.warn({ code, reason }, 'relay disconnected')
    }
    this.counters.reconnects++
    const delay = this.#backoff(this.#reconnectAttempt)
    this.#reconnectAttempt = Math.min(this.#reconnectAttempt + 1, 30)
    clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay)
  }

  /**
   * Exponential backoff with jitter: half the step fixed, half random, so many bridges that
   * lost the Worker at once (a deploy) do not come back in step.
   */
  #backoff(attempt: number): number {
    const { reconnectInitialMs, reconnectMaxMs } = this.#options
    const step = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** attempt)
    return step / 2 + Math.random() * (step / 2)
  }

  /**
   * The Worker closed with 1009: a batch on this socket was larger than it (or a proxy) accepts.
   * The receiver reads frames in order and stops at that one, so it is the first one sent over
   * the limit: larger than every batch before it. The largest batch sent is therefore that one
   * or a later one, and none from it on was read: those are split to half its size and numbered
   * again from it. Earlier batches, maybe stored without their ACK, keep their numbers (one of
   * them too large still is the largest next time). A largest batch of one message cannot be
   * split: that message is larger than the path to the Worker carries, and the relay is blocked
   * on it (logged, in /readyz) until the limit changes; it is not dropped.
   */
  #splitAfterTooBig(): void {
    const sent = this.#batches.filter((batch) => batch.sent)
    const largest = Math.max(0, ...sent.map((batch) => batch.size))
    if (largest === 0) return
    const first = this.#batches.findIndex((batch) => batch.sent && batch.size === largest)
    const culprit = this.#batches[first] as PendingBatch
    if (culprit.messages.length === 1) {
      this.#noteRefusal(
        'MESSAGE_TOO_BIG',
        `a message of ${largest} octets is larger than the Worker, or a proxy before it, takes in one WebSocket message (close 1009)`,
        culprit.seq,
        0,
      )
      return
    }
    const limit = Math.max(1, Math.floor(largest / 2))
    this.#maxBatchBytes = Math.min(this.#maxBatchBytes, limit)
    this.#splitFrom(first, { bytes: limit, messages: Infinity })
    this.#options.logger.warn(
      { maxBatchBytes: this.#maxBatchBytes, batches: this.#batches.length },
      'the Worker refused a batch as too big (1009): splitting',
    )
  }

  /**
   * Splits batches from index `first` on (none of them stored) within `limit`, and numbers
   * them again from the first of them. With `onlyFirst`, the batch at `first` is split and the
   * later ones keep their messages, only their numbers follow on. The spool records the new
   * numbering (its first SEAL replaces the old batches from there).
   */
  #splitFrom(first: number, limit: { bytes: number; messages: number }, onlyFirst = false): void {
    const rest = this.#batches.splice(first)
    if (rest.length === 0) return
    let seq = (rest[0] as PendingBatch).seq
    let id = (rest[0] as PendingBatch).firstId
    const renumbered: PendingBatch[] = []
    const open = (): PendingBatch => {
      const batch: PendingBatch = {
        seq: seq++,
        firstId: id,
        messages: [],
        size: BATCH_OVERHEAD,
        sent: false,
        sends: 0,
        maybeStored: false,
      }
      renumbered.push(batch)
      return batch
    }
    // Split as one run of messages, or (`onlyFirst`) the first batch alone, the others whole.
    const runs = onlyFirst
      ? rest.map((batch) => batch.messages)
      : [rest.flatMap((batch) => batch.messages)]
    const whole = { bytes: Infinity, messages: Infinity }
    for (const [index, messages] of runs.entries()) {
      const bound = index === 0 ? limit : whole
      let current = open()
      for (const message of messages) {
        const size = encodedMessageSize(message)
        if (
          current.messages.length > 0 &&
          (current.size + size > bound.bytes || current.messages.length >= bound.messages)
        ) {
          current = open()
        }
        current.messages.push(message)
        current.size += size
        id++
      }
    }
    this.#batches.push(...renumbered)
    for (const batch of renumbered) {
      this.#spool?.seal(batch.seq, batch.firstId, batch.messages.length)
    }
    this.#nextBatchSeq = seq
    this.counters.splits++
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
    switch (frame.kind) {
      case 'welcome':
        this.#onWelcome(frame)
        return
      case 'nack':
        this.#outstanding = Math.max(0, this.#outstanding - 1)
        this.#onNack(frame)
        return
      case 'ack':
        this.#outstanding = Math.max(0, this.#outstanding - 1)
        if (this.#phase === 'refused') {
          // After a refusal the object refuses every later batch on the socket until the refused
          // one comes again: an ACK now breaks the protocol, and trusting it could drop a batch.
          logger.error(
            { batchSeq: frame.batchSeq, refused: this.#block?.batchSeq },
            'the channel acknowledged a batch after refusing an earlier one: reconnecting',
          )
          this.#socket?.close(CLOSE_PROTOCOL_ERROR, 'ack after a refusal')
          return
        }
        this.#onAck(frame.batchSeq, frame.status, false, frame)
        return
      default:
        logger.error({ kind: frame.kind }, 'relay sent a frame a bridge does not take')
    }
  }

  /** The highest batch number the channel may have stored of this session. */
  #highestMaybeStored(): number {
    let highest = this.#lastAckedSeq
    for (const batch of this.#batches) {
      if (batch.maybeStored || batch.sent) highest = Math.max(highest, batch.seq)
    }
    return highest
  }

  #onWelcome(welcome: RelayWelcome): void {
    const { logger } = this.#options
    if (this.#phase !== 'welcoming') {
      logger.error('relay sent a second WELCOME; ignored')
      return
    }
    if (welcome.maxMessageBytes < 1 || welcome.maxBatchBytes <= BATCH_OVERHEAD) {
      logger.error(
        { maxMessageBytes: welcome.maxMessageBytes, maxBatchBytes: welcome.maxBatchBytes },
        'the channel announced limits no message fits: reconnecting',
      )
      this.#socket?.close(CLOSE_PROTOCOL_ERROR, 'impossible limits')
      return
    }
    this.#clockOffsetMs = welcome.now - Date.now()
    const skewMs = -this.#clockOffsetMs
    if (Math.abs(skewMs) > CLOCK_WARNING_MS) {
      const level = skewMs > welcome.maxClockSkewMs ? 'error' : 'warn'
      logger[level](
        { skewMs, maxClockSkewMs: welcome.maxClockSkewMs },
        `this bridge's clock is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'ahead of' : 'behind'} the Worker's`,
      )
    }
    const highest = this.#highestMaybeStored()
    if (welcome.lastBatchSeq > highest) {
      // Every number the session has stored could only come from this process (or the run its
      // spool continues): a higher one means another process writes under this id and epoch.
      logger.error(
        {
          bridgeId: this.#session.bridgeId,
          lastBatchSeq: welcome.lastBatchSeq,
          highestSent: highest,
        },
        'the channel has batches of this session that this process never sent: another process uses this bridge id and epoch (a copied spool?)',
      )
    } else if (welcome.lastBatchSeq > this.#lastAckedSeq) {
      // Stored on a socket that died before the ACK came: acknowledged now, never renumbered;
      // but a batch a sender waits on goes again, for the seqs its DUPLICATE brings.
      const waited = this.#batches.find((batch) => this.#hasWaiters(batch))
      const through = Math.min(welcome.lastBatchSeq, (waited?.seq ?? Infinity) - 1)
      if (through > this.#lastAckedSeq) this.#onAck(through, AckStatus.DUPLICATE, true)
    }
    this.#limits = welcome
    this.#options.onLimits?.(welcome)
    // The backoff starts over once a socket has lasted, not at once: a socket closed right
    // after its WELCOME (replaced by another bridge with this id, 1009) must not reconnect fast.
    clearTimeout(this.#stableTimer)
    this.#stableTimer = setTimeout(() => {
      this.#reconnectAttempt = 0
    }, this.#options.reconnectMaxMs)
    this.#stableTimer.unref()
    this.#phase = 'streaming'
    this.#pump()
  }

  /**
   * Everything up to `batchSeq` is stored (or used up, for REJECTED). `fromWelcome`: learnt from
   * a WELCOME, not from an answer to a send of this socket.
   */
  #onAck(batchSeq: number, status: AckStatus, fromWelcome = false, seqs: AckSeqs = NO_SEQS): void {
    const { logger } = this.#options
    let ackedSeq = 0
    while (this.#batches.length > 0 && (this.#batches[0] as PendingBatch).seq <= batchSeq) {
      const batch = this.#batches.shift() as PendingBatch
      ackedSeq = batch.seq
      if (this.#waiting > 0) {
        // An ACK's seqs are its own batch's; one another process's batch could have (a
        // DUPLICATE this process had no reason to expect) are no seqs of ours.
        const own = batch.seq === batchSeq && (status !== AckStatus.DUPLICATE || batch.maybeStored)
        this.#tellReceipts(
          batch,
          batch.seq === batchSeq ? status : AckStatus.DUPLICATE,
          own ? seqs : NO_SEQS,
        )
      }
      this.counters.batchesAcked++
      this.#pendingMessages -= batch.messages.length
      this.#pendingBytes -= batch.size - BATCH_OVERHEAD
      if (batch.seq === batchSeq && status === AckStatus.REJECTED) {
        this.counters.rejected += batch.messages.length
        logger.error(
          {
            batchSeq,
            messages: batch.messages.slice(0, 10).map((message) => ({
              peer: message.peerAddress,
              octets: message.frames.reduce((sum, frame) => sum + frame.length, 0),
              frames: message.frames.length,
            })),
            maxMessageBytes: this.#limits?.maxMessageBytes,
          },
          'the channel rejected a message larger than it stores; dropped (lower --max-message-size to refuse such messages at the ZeroMQ socket)',
        )
        continue
      }
      this.counters.acked += batch.messages.length
      if (batch.seq === batchSeq && status === AckStatus.STORED) {
        this.counters.resentMessages += seqs.duplicates?.length ?? 0
      }
      if (batch.seq === batchSeq && status === AckStatus.DUPLICATE && !fromWelcome) {
        this.counters.duplicates++
        if (!batch.maybeStored) {
          this.counters.unexpectedDuplicates++
          logger.error(
            { batchSeq, bridgeId: this.#session.bridgeId },
            'the channel says a batch that only this process sent, and was answered each time, was stored before: another process writes under this bridge id and epoch',
          )
        }
      }
    }
    if (ackedSeq > 0) {
      this.#lastAckedSeq = Math.max(this.#lastAckedSeq, ackedSeq)
      this.#spool?.ack(ackedSeq)
    }
    if (!fromWelcome) {
      this.#probing = false
      if (this.#block && batchSeq >= this.#block.batchSeq) this.#unblock()
    }
    this.#pump()
    this.#checkPressure()
    if (this.#pendingMessages === 0) {
      const waiters = this.#idleWaiters
      this.#idleWaiters = []
      for (const wake of waiters) wake()
    }
  }

  #hasWaiters(batch: PendingBatch): boolean {
    return this.#waiting > 0 && batch.messages.some((message) => this.#receipts.has(message))
  }

  /**
   * Tells each waiting sender of `batch` what became of its message: its seq from the ACK when
   * that answers this very batch and places each of its messages, else the seq is unknown.
   */
  #tellReceipts(batch: PendingBatch, status: AckStatus, seqs: AckSeqs): void {
    const placed = seqsOfAck(seqs, batch.messages.length)
    batch.messages.forEach((message, index) => {
      const tell = this.#receipts.get(message)
      if (!tell) return
      this.#receipts.delete(message)
      this.#waiting--
      const receipt: MessageReceipt =
        status === AckStatus.REJECTED
          ? { status: 'rejected' }
          : placed
            ? { status: 'stored', seq: placed[index] as number }
            : { status: 'seq-unknown' }
      try {
        tell(receipt)
      } catch (error) {
        this.#options.logger.error({ err: String(error) }, 'a receipt handler failed')
      }
    })
  }

  /**
   * A refused batch: nothing of it is stored, and the object refuses the later ones on this
   * socket until it comes again. Stop sending; once every reply is in, send again from the
   * refused batch (split first when too large), after a backoff unless splitting.
   */
  #onNack(nack: RelayNack): void {
    if (this.#phase === 'refused') {
      // The batches sent after the refused one, refused in turn (OUT_OF_ORDER): all go again.
      this.#resumeWhenAnswered()
      return
    }
    if (this.#phase !== 'streaming') return
    this.#phase = 'refused'
    for (const batch of this.#batches) batch.sent = false
    this.#noteRefusal(nackCodeName(nack.code), nack.reason, nack.batchSeq, nack.code)
    this.#resumeWhenAnswered()
  }

  /** Counts and logs a refusal: the first of a row at once, then once a minute. */
  #noteRefusal(code: string, reason: string, batchSeq: number, nackCode: number): void {
    this.counters.refusals++
    const now = Date.now()
    const { logger } = this.#options
    const block = this.#block
    if (!block) {
      this.#block = { code, reason, since: now, refusals: 1, batchSeq, nackCode, loggedAt: now }
      logger.error(
        { code, reason, batchSeq, unacknowledged: this.#pendingMessages },
        nackCode === NackCode.BATCH_TOO_LARGE
          ? 'the channel refused a batch as too large: splitting it'
          : 'the channel refused a batch; it stays queued and is sent again after a backoff',
      )
      return
    }
    block.refusals++
    block.code = code
    block.reason = reason
    block.batchSeq = batchSeq
    block.nackCode = nackCode
    if (now - block.loggedAt >= REFUSAL_LOG_INTERVAL_MS) {
      block.loggedAt = now
      logger.error(
        { code, reason, refusals: block.refusals, sinceMs: now - block.since },
        'the channel still refuses batches',
      )
    }
  }

  /** Once no reply is outstanding, splits or waits, then streams again from the first batch. */
  #resumeWhenAnswered(): void {
    const block = this.#block
    if (this.#outstanding > 0 || !block || this.#resendTimer) return
    const first = this.#batches.findIndex((batch) => batch.seq === block.batchSeq)
    const refused = this.#batches[first]
    if (block.nackCode === NackCode.BATCH_TOO_LARGE && refused && refused.messages.length > 1) {
      // Half the refused batch, the later ones as they are: a few round trips, whatever the
      // limit, down to one message (which the object stores or rejects).
      this.#splitFrom(
        first,
        {
          bytes: Math.max(1, Math.floor(refused.size / 2)),
          messages: Math.max(1, Math.floor(refused.messages.length / 2)),
        },
        true,
      )
      this.#resume()
      return
    }
    const delay = this.#backoff(this.#resendAttempt)
    this.#resendAttempt = Math.min(this.#resendAttempt + 1, 30)
    this.#resendTimer = setTimeout(() => this.#resume(), delay)
  }

  /** Streams again after a refusal, one batch at a time until one is acknowledged. */
  #resume(): void {
    this.#resendTimer = undefined
    if (this.#phase !== 'refused') return
    this.#phase = 'streaming'
    this.#probing = true
    this.#pump()
  }

  /** A batch was stored (or answered) after refusals: the channel accepts again. */
  #unblock(): void {
    const block = this.#block
    if (!block) return
    this.#block = undefined
    this.#resendAttempt = 0
    this.#options.logger.info(
      { code: block.code, refusals: block.refusals, blockedMs: Date.now() - block.since },
      'the channel accepts batches again',
    )
  }
}
