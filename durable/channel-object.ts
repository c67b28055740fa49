// The Durable Object of one channel (`idFromName(channel)`): accepts its bridges' WebSockets
// with the Hibernation API, stores their relay batches in SQLite, and serves the Worker over
// RPC: cursor reads and leased pulls (both may wait for the next insert), one frame of a message
// as a stream, acks, dead letters, stats. Waiting readers are woken by the insert itself, never by polling storage. It tells the
// channel directory (./channel-directory.ts) that the channel exists, at most once a day.

import { DurableObject } from 'cloudflare:workers'
import { batchLimits } from './batch-policy'
import {
  epochZeroRefusal,
  knownBridges,
  lastBatchSeq,
  lastBatchSeqs,
  pruneSessions,
  SESSION_IDLE_MS,
  sessionKey,
} from './bridge-sessions'
import { type ChannelConfig, parseChannelConfig } from './channel-config'
import { directoryStub } from './channel-directory'
import { type Counter, readCounters } from './counters'
import {
  type DeadLetter,
  type ExtendOutcome,
  type LeasedMessage,
  LeaseQueue,
  type QueueStats,
  type SettleOutcome,
} from './lease-queue'
import {
  BODY_CHUNK_SIZE,
  MessageStore,
  type ReadOptions,
  type StoredMessage,
} from './message-store'
import { type BatchStore, type IngestSocketState, ingestRelayMessage } from './relay-ingest'
import {
  CLOSE_REPLACED,
  encodeWelcome,
  parseRelaySession,
  RELAY_SUBPROTOCOL,
} from './relay-protocol'
import { expireByAge, nextExpiryAt } from './retention'
import { migrate } from './schema'

/** Requests one object holds waiting at once; more are refused (HTTP 429). */
export const MAX_WAITERS = 1000

/** The answer of a call that may wait: refused when too many are waiting already. */
export type Waited<T> = { ok: true; value: T } | { ok: false; reason: 'too_many_waiters' }

/** Octets of a frame read from storage per pull of its stream: one body chunk's worth. */
export const FRAME_PIECE_BYTES = BODY_CHUNK_SIZE

/** One frame of a message: its size and its octets as a stream, or why there is none. */
export type FrameRead =
  | { status: 'found'; size: number; body: ReadableStream<Uint8Array> }
  | { status: 'message_not_found' }
  | { status: 'frame_not_found'; frameCount: number }

/** How long after a failure to tell the directory the object waits before it tries again. */
export const DIRECTORY_RETRY_MS = 60_000

/** How often, at most, a channel tells the directory again that it exists. */
export const DIRECTORY_REFRESH_MS = 24 * 60 * 60 * 1000

/** The key, in the object's key-value storage, of the time it last told the directory. */
export const DIRECTORY_TOLD_KEY = 'directory.toldAt'

/** The key, in the object's key-value storage, of the time idle sessions were last pruned. */
export const SESSIONS_PRUNED_KEY = 'sessions.prunedAt'

/**
 * A bridge socket's attachment, which survives hibernation: the ingest state (its session and
 * any refused batch), when the socket was accepted, and whether a newer socket of the same bridge
 * replaced it.
 */
interface BridgeSocketState extends IngestSocketState {
  connectedAt: number
  replaced?: boolean
}

/** The hibernation tag of a bridge's sockets: its newer socket finds the older ones by it. */
function bridgeTag(bridgeId: string): string {
  return `bridge:${bridgeId}`
}

/** One bridge WebSocket open on the channel. */
export interface BridgeConnection {
  /** The id the bridge connected with. */
  bridgeId?: string
  /** Milliseconds since the epoch when the object accepted the socket. */
  connectedAt?: number
  /** The highest batchSeq stored in the socket's session (numbered 1, 2, 3, … per session). */
  lastBatchSeq?: number
}

/** Everything `GET /v1/channels/:channel` reports, in raw numbers. */
export interface ChannelStats {
  now: number
  log: {
    messages: number
    bytes: number
    oldest?: { seq: number; receivedAt: number }
    newest?: { seq: number; receivedAt: number }
  }
  queue: QueueStats
  bridges: { connected: number; known: number; connections: BridgeConnection[] }
  counters: Record<Counter, number>
  config: ChannelConfig
}

/** One channel: its messages, its leased consumers' state, and the bridges that relay to it. */
export class ChannelObject extends DurableObject<Env> {
  readonly #store: MessageStore
  readonly #queue: LeaseQueue
  /**
   * The channel's settings from the wrangler vars. Not private only so that tests can give one
   * object other limits (`runInDurableObject`); nothing else writes it.
   */
  config: ChannelConfig
  /** Wake-ups of the requests waiting for a change (an insert, a retry, a redrive). */
  readonly #waiters = new Set<() => void>()
  /**
   * When the directory is next due to be told (ms since the epoch): a day after it was told,
   * a minute after a failure to tell it. 0 until checked in this lifetime.
   */
  #announceAt = 0

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.config = parseChannelConfig(env)
    this.#store = new MessageStore(ctx.storage, () => this.config)
    this.#queue = new LeaseQueue(ctx.storage, this.#store)
    // No event reaches the object before the schema is current.
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage)
    })
  }

  /**
   * Accepts a bridge's WebSocket (the Worker has checked the token, the upgrade, the relay
   * subprotocol and the session headers). The socket is hibernatable: the object may leave memory
   * between messages. An older socket of the same bridge id is closed with CLOSE_REPLACED, so
   * only the newest writes. The first frame on the socket is the WELCOME.
   */
  override fetch(request: Request): Response {
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return Response.json(
        { error: { code: 'upgrade_required', message: 'expected a WebSocket upgrade' } },
        { status: 426, headers: { Upgrade: 'websocket' } },
      )
    }
    const session = parseRelaySession(request.headers)
    if ('error' in session) {
      return Response.json(
        { error: { code: 'invalid_session', message: session.error } },
        { status: 400 },
      )
    }
    const epochZero = epochZeroRefusal(this.ctx.storage.sql, session)
    if (epochZero) {
      return Response.json(
        { error: { code: 'invalid_session', message: epochZero } },
        { status: 400 },
      )
    }
    const now = Date.now()
    const tag = bridgeTag(session.bridgeId)
    for (const older of this.ctx.getWebSockets(tag)) {
      const state = older.deserializeAttachment() as BridgeSocketState | null
      if (state) older.serializeAttachment({ ...state, replaced: true })
      try {
        older.close(CLOSE_REPLACED, 'replaced by a newer connection of this bridge id')
      } catch {
        // Closed already.
      }
    }
    this.#pruneSessions(now)
    const { 0: client, 1: server } = new WebSocketPair()
    this.ctx.acceptWebSocket(server, [tag])
    server.serializeAttachment({ session, connectedAt: now } satisfies BridgeSocketState)
    server.send(
      encodeWelcome({
        lastBatchSeq: lastBatchSeq(this.ctx.storage.sql, session) ?? 0,
        ...batchLimits(this.config),
        now,
      }),
    )
    this.#announce()
    return new Response(null, {
      status: 101,
      webSocket: client,
      headers: { 'Sec-WebSocket-Protocol': RELAY_SUBPROTOCOL },
    })
  }

  /**
   * Forgets sessions idle past SESSION_IDLE_MS, at most once a day (on a bridge socket): every
   * bridge start without a spool is a session, and their rows should not pile up.
   */
  #pruneSessions(now: number): void {
    const { kv, sql } = this.ctx.storage
    const prunedAt = kv.get<number>(SESSIONS_PRUNED_KEY)
    if (prunedAt !== undefined && now - prunedAt < SESSION_IDLE_MS / 30) return
    pruneSessions(sql, now)
    kv.put(SESSIONS_PRUNED_KEY, now)
  }

  /**
   * Tells the channel directory that this channel exists (its name is `ctx.id.name`, from
   * `idFromName`). On a bridge socket or stored batch, at most once per
   * {@link DIRECTORY_REFRESH_MS}: a time comparison per batch, as long as the object stays in
   * memory; the time it was told is kept in the object's storage, so an object that hibernates
   * between sparse batches does not call the directory at each wake-up. Never awaited by
   * ingest, and a failure is only logged (and retried after {@link DIRECTORY_RETRY_MS}): the
   * batches come first.
   */
  #announce(): void {
    const name = this.ctx.id.name
    const now = Date.now()
    if (now < this.#announceAt || name === undefined) return
    const toldAt = this.ctx.storage.kv.get<number>(DIRECTORY_TOLD_KEY)
    if (toldAt !== undefined && now - toldAt < DIRECTORY_REFRESH_MS) {
      this.#announceAt = toldAt + DIRECTORY_REFRESH_MS
      return
    }
    this.#announceAt = now + DIRECTORY_REFRESH_MS
    const told = (async () => {
      await directoryStub(this.env).register(name)
      this.ctx.storage.kv.put(DIRECTORY_TOLD_KEY, Date.now())
    })().catch((error) => {
      this.#announceAt = Date.now() + DIRECTORY_RETRY_MS
      console.error('channel directory not told', { channel: name, error: String(error) })
    })
    this.ctx.waitUntil(told)
  }

  /**
   * Resolves after `ms`, or as soon as {@link #wake} runs, whichever is first.
   * @returns false without waiting when {@link MAX_WAITERS} requests wait already.
   */
  #waitForChange(ms: number): Promise<boolean> | false {
    if (this.#waiters.size >= MAX_WAITERS) return false
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#waiters.delete(done)
        resolve(true)
      }
      const timer = setTimeout(done, Math.max(0, ms))
      this.#waiters.add(done)
    })
  }

  /** Wakes every waiting request; each then reads storage again. */
  #wake(): void {
    for (const done of [...this.#waiters]) done()
  }

  /**
   * RPC: the messages after `options.after`, oldest first. With nothing there and `waitMs` > 0,
   * waits until a batch is stored or the wait ends. The object returns raw bytes and
   * milliseconds; the Worker turns them into the HTTP API's JSON (base64, ISO 8601, Z85). A
   * message over LARGE_MESSAGE_BYTES comes without its frames (see {@link readFrame}).
   * @throws RangeError for options out of range.
   */
  async readMessages(options: ReadOptions & { waitMs?: number }): Promise<Waited<StoredMessage[]>> {
    const { after, limit, maxBytes, waitMs = 0 } = options
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`bad after: ${after}`)
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`bad limit: ${limit}`)
    if (!(maxBytes >= 0)) throw new RangeError(`bad maxBytes: ${maxBytes}`)
    const deadline = Date.now() + waitMs
    for (;;) {
      const messages = this.#store.read({ after, limit, maxBytes })
      const left = deadline - Date.now()
      if (messages.length > 0 || left <= 0) return { ok: true, value: messages }
      const waiting = this.#waitForChange(left)
      if (!waiting) return { ok: false, reason: 'too_many_waiters' }
      await waiting
    }
  }

  /**
   * RPC: frame `index` (from 0) of message `seq`. Only the length prefixes before it are read
   * now; its octets are read {@link FRAME_PIECE_BYTES} at a time as the stream is consumed, so
   * neither side ever holds the message, nor even the frame, whole. The stream errors if the
   * message leaves the log (retention) before it ends.
   * @throws RangeError for a seq or an index out of range, or a corrupt stored body.
   */
  readFrame(seq: number, index: number): FrameRead {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`bad seq: ${seq}`)
    if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`bad index: ${index}`)
    const found = this.#store.locateFrame(seq, index)
    if (found.status !== 'found') return found
    const store = this.#store
    let sent = 0
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          if (sent === found.size) {
            controller.close()
            return
          }
          const length = Math.min(FRAME_PIECE_BYTES, found.size - sent)
          controller.enqueue(store.readFrameRange(found, sent, length))
          sent += length
        },
      },
      { highWaterMark: 0 },
    )
    return { status: 'found', size: found.size, body }
  }

  /**
   * RPC: leases up to `batchSize` available messages for `visibilityTimeoutMs`. With none
   * available and `waitMs` > 0, waits for an insert, a retry, a redrive or a lease to expire.
   */
  async pull(options: {
    batchSize: number
    visibilityTimeoutMs: number
    maxBytes: number
    waitMs: number
  }): Promise<Waited<LeasedMessage[]>> {
    const { maxAttempts } = this.config
    const deadline = Date.now() + options.waitMs
    for (;;) {
      const now = Date.now()
      const messages = this.#queue.pull({ ...options, maxAttempts, now })
      if (messages.length > 0) await this.#scheduleAlarm()
      const left = deadline - now
      if (messages.length > 0 || left <= 0) return { ok: true, value: messages }
      // A lease that expires or a delay that ends within the wait makes a message available.
      const next = this.#queue.nextAvailableAt(now)
      const waiting = this.#waitForChange(Math.min(left, next === undefined ? left : next - now))
      if (!waiting) return { ok: false, reason: 'too_many_waiters' }
      await waiting
    }
  }

  /** RPC: acks and retries (see {@link LeaseQueue.settle}). */
  async settle(options: {
    acks: string[]
    retries: { leaseId: string; delayMs: number }[]
  }): Promise<SettleOutcome> {
    const outcome = this.#queue.settle({
      ...options,
      maxAttempts: this.config.maxAttempts,
      now: Date.now(),
    })
    if (outcome.retried > 0) this.#wake()
    return outcome
  }

  /** RPC: extends unexpired leases to `visibilityTimeoutMs` from now. */
  async extendLeases(leaseIds: string[], visibilityTimeoutMs: number): Promise<ExtendOutcome> {
    const outcome = this.#queue.extend(leaseIds, visibilityTimeoutMs, Date.now())
    if (outcome.extended > 0) await this.#scheduleAlarm()
    return outcome
  }

  /** RPC: dead letters after `after`, in seq order. */
  deadLetters(options: ReadOptions): DeadLetter[] {
    this.#queue.sweep(Date.now(), this.config.maxAttempts)
    return this.#queue.deadLetters(options)
  }

  /** RPC: sends dead letters (those in `seqs`, or all) back to the queue, attempts reset. */
  redrive(seqs?: number[]): number[] {
    const moved = this.#queue.redrive(seqs)
    if (moved.length > 0) this.#wake()
    return moved
  }

  /** RPC: the channel's numbers. */
  stats(): ChannelStats {
    const now = Date.now()
    this.#queue.sweep(now, this.config.maxAttempts)
    const counters = readCounters(this.ctx.storage.sql)
    return {
      now,
      log: {
        messages: counters.log_messages,
        bytes: counters.log_bytes,
        ...this.#store.bounds(),
      },
      queue: this.#queue.stats(now),
      bridges: {
        connected: this.ctx.getWebSockets().length,
        known: knownBridges(this.ctx.storage.sql),
        connections: this.#connections(),
      },
      counters,
      config: this.config,
    }
  }

  /** The bridge sockets open now, oldest first, from their attachments. */
  #connections(): BridgeConnection[] {
    const sockets = this.ctx
      .getWebSockets()
      .map((ws) => ws.deserializeAttachment() as BridgeSocketState | null)
      .filter((state): state is BridgeSocketState => Boolean(state?.session) && !state?.replaced)
    const lastSeqs = lastBatchSeqs(
      this.ctx.storage.sql,
      sockets.map((socket) => socket.session),
    )
    return sockets
      .map(({ session, connectedAt }) => {
        const connection: BridgeConnection = { bridgeId: session.bridgeId, connectedAt }
        const last = lastSeqs.get(sessionKey(session.bridgeId, session.epoch))
        if (last !== undefined) connection.lastBatchSeq = last
        return connection
      })
      .sort((a, b) => (a.connectedAt ?? 0) - (b.connectedAt ?? 0))
  }

  /**
   * Sets the alarm for the earliest lease that is its message's last attempt, so the message
   * becomes a dead letter on time even when nobody pulls, or for the moment the oldest message
   * passes the retention age, whichever is first. Earlier leases expire lazily: a pull simply
   * finds them available.
   */
  async #scheduleAlarm(): Promise<void> {
    const times = [
      this.#queue.nextDeadLetterAt(this.config.maxAttempts),
      nextExpiryAt(this.ctx.storage.sql, this.config.retention),
    ].filter((time) => time !== undefined)
    if (times.length === 0) return
    const at = Math.min(...times)
    const current = await this.ctx.storage.getAlarm()
    if (current === null || current > at) await this.ctx.storage.setAlarm(at)
  }

  /** Deletes messages past the retention age, dead-letters what expired, sets the next alarm. */
  override async alarm(): Promise<void> {
    const now = Date.now()
    this.ctx.storage.transactionSync(() =>
      expireByAge(this.ctx.storage.sql, this.config.retention, now),
    )
    this.#queue.sweep(now, this.config.maxAttempts)
    await this.#scheduleAlarm()
  }

  /**
   * One relay frame from a bridge: stored synchronously, then answered with an ACK or NACK.
   * The output gate holds the ACK until the transaction is durable.
   */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const state = ws.deserializeAttachment() as BridgeSocketState | null
    // A socket of protocol version 1 (accepted before an update) or one replaced by a newer
    // socket of its bridge: nothing it sends is stored.
    if (!state?.session || state.replaced) {
      try {
        ws.close(state?.replaced ? CLOSE_REPLACED : 1002, 'this socket no longer takes batches')
      } catch {}
      return
    }
    const store: BatchStore = {
      storeBatch: (session, batch) => this.#store.storeBatch(session, batch),
    }
    const result = ingestRelayMessage(store, message, state)
    // Rewritten only when something changed: a refusal, its resolution.
    if (result.state !== state) {
      ws.serializeAttachment({ ...result.state, connectedAt: state.connectedAt })
    }
    ws.send(result.reply)
    if (result.close) {
      try {
        ws.close(1007, 'unreadable relay frame')
      } catch {}
      return
    }
    if (!result.stored) return
    this.#announce()
    // After the transaction: woken readers see the batch (their replies, like the ACK, leave
    // once the output gate has seen it durable).
    this.#wake()
    // The retention age of the new head of the log, if it changed.
    await this.#scheduleAlarm()
  }

  /** Completes the close handshake (wrangler dev does not always answer it by itself). */
  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // 1005 (no code) and 1006 (abnormal) may not be sent in a close frame.
    const closeCode = code === 1005 || code === 1006 ? 1000 : code
    try {
      ws.close(closeCode, reason)
    } catch {
      // Already closed: nothing left to answer.
    }
  }

  override webSocketError(_ws: WebSocket, error: unknown): void {
    console.error('bridge WebSocket error', { error: String(error) })
  }
}
