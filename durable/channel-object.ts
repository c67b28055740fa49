// The Durable Object of one channel (`idFromName(channel)`): accepts its bridges' WebSockets
// with the Hibernation API, stores their relay batches in SQLite as segments, and serves the
// Worker over RPC: cursor reads and consumer groups' leased pulls (both may wait for the next
// insert), one frame of a message as a stream, acks, dead letters, groups, stats. Waiting
// readers are woken by the insert itself, never by polling storage. It tells the channel
// directory (./channel-directory.ts) that the channel exists, at most once a day.

import { DurableObject } from 'cloudflare:workers'
import {
  CLOSE_CREDENTIAL_REVOKED,
  CLOSE_REPLACED,
  encodeWelcome,
  negotiateRelayVersion,
  parseRelaySession,
  RELAY_PROTOCOL_VERSION,
  relaySubprotocol,
  TOKEN_EXPIRES_HEADER,
  TOKEN_ID_HEADER,
} from '../shared/relay-protocol'
import { batchLimits } from './batch-policy'
import {
  epochZeroRefusal,
  knownBridges,
  pruneSessions,
  SESSION_IDLE_MS,
  sessionKey,
} from './bridge-sessions'
import { type ChannelConfig, parseChannelConfig } from './channel-config'
import { directoryStub } from './channel-directory'
import { HISTORY_GROUPS, type HistoryMinute, type HistoryValues } from './channel-history'
import {
  ConsumerGroups,
  DEFAULT_GROUP,
  type DeadLetter,
  type ExtendOutcome,
  type GroupInfo,
  GroupNotFoundError,
  GroupStateFullError,
  type LeasedMessage,
  type SettleOutcome,
  TooManyGroupsError,
} from './consumer-groups'
import { type Counter, GroupCounter } from './counters'
import type { GroupStart } from './group-state'
import { importLegacyConsumers } from './legacy-consumers'
import {
  type MessagePage,
  MessageStore,
  pageMessages,
  type ReadOptions,
  type StoredMessage,
} from './message-store'
import { registryStub } from './registry'
import { type BatchStore, type IngestSocketState, ingestRelayMessage } from './relay-ingest'
import { RowMeter } from './row-meter'
import { migrate } from './schema'
import { SEGMENT_PIECE_BYTES } from './segment-store'

/** Requests one object holds waiting at once; more are refused (HTTP 429). */
export const MAX_WAITERS = 1000

/** Why a call was refused: too many waiting already, or a consumer group that is not there. */
export type Refusal = 'too_many_waiters' | 'group_not_found' | 'too_many_groups' | 'group_full'

/** The answer of a call that may be refused (see {@link Refusal}). */
export type Waited<T> = { ok: true; value: T } | { ok: false; reason: Refusal }

/** Octets of a frame read from storage per pull of its stream: one stored piece's worth. */
export const FRAME_PIECE_BYTES = SEGMENT_PIECE_BYTES

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
  /** Closed because its scoped token was deleted or expired. */
  revoked?: boolean
  /**
   * The scoped token the Worker let the socket in with: its id, expiry, and when the registry
   * last said it exists. Absent for a root secret.
   */
  token?: { id: string; expiresAt?: number; checkedAt: number }
}

/** How often a socket's scoped token is asked of the registry again, at most, ms. */
export const TOKEN_RECHECK_MS = 5000

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

/** Group `default` as today's queue routes see it (before its first pull: as it would start). */
export interface QueueStats {
  /** Messages not acked yet (dead letters excluded). */
  depth: number
  /** Messages a pull could lease now. */
  available: number
  /** Messages leased, the lease not expired. */
  inFlight: number
  /** Messages retried with a delay that has not passed. */
  delayed: number
  deadLetters: number
}

/** Rows Cloudflare bills: read and written by the channel's SQL, in all and per message stored. */
export interface RowCost {
  rowsRead: number
  rowsWritten: number
  perMessage: { rowsRead: number; rowsWritten: number }
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
  groups: GroupInfo[]
  bridges: { connected: number; known: number; connections: BridgeConnection[] }
  counters: Record<Counter, number>
  cost: RowCost
  /** Octets of the channel's SQLite database (every table): what Cloudflare bills as storage. */
  storageBytes: number
  /** Rows of the schema before segments still to move (0 once done). */
  migrating: boolean
  config: ChannelConfig
}

/**
 * What the channel's history samples (./channel-history.ts): computed at most once a minute, at
 * a state write, and for a read of the history.
 */
function historyValues(store: MessageStore, groups: ConsumerGroups, now: number): HistoryValues {
  return {
    stored: store.state.counters.messages_stored,
    acked: groups.ackedTotal(),
    depth: store.messageCount,
    lags: groups.lags(now, HISTORY_GROUPS),
  }
}

/** One channel: its messages, its leased consumers' state, and the bridges that relay to it. */
export class ChannelObject extends DurableObject<Env> {
  // Built under blockConcurrencyWhile, once the schema is current: no event comes before.
  #store!: MessageStore
  #groups!: ConsumerGroups
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
  /** The alarm as this object last set or found it (null: none), so it is not read each time. */
  #alarmAt: number | null | undefined

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.config = parseChannelConfig(env)
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage)
      this.#open()
      if (this.#store.migrating) await this.#scheduleAlarm()
    })
  }

  /**
   * Builds the channel's modules over its storage (the object's memory of it: a test may call
   * it again to see what a restarted object would), taking over the rows of the schema before
   * segments if there are any.
   */
  #open(): void {
    const meter = new RowMeter(this.ctx.storage.sql)
    const store = new MessageStore(this.ctx.storage, () => this.config, meter)
    const groups = new ConsumerGroups(meter.sql, store, () => this.config)
    store.groups = () => groups.floor(Date.now())
    store.state.historyValues = (now) => historyValues(store, groups, now)
    this.ctx.storage.transactionSync(() => {
      const now = Date.now()
      if (importLegacyConsumers(meter.sql, groups, store.state, now)) store.flushNow(now)
    })
    this.#store = store
    this.#groups = groups
    this.#alarmAt = undefined
  }

  /**
   * Test hook: forgets everything held in memory and starts again from storage (migrations
   * included), as an object evicted and started again would.
   */
  async restartForTests(): Promise<void> {
    migrate(this.ctx.storage)
    this.#open()
    if (this.#store.migrating) await this.#scheduleAlarm()
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
    const epochZero = epochZeroRefusal(this.#store.sql, session)
    if (epochZero) {
      return Response.json(
        { error: { code: 'invalid_session', message: epochZero } },
        { status: 400 },
      )
    }
    // The Worker checked that the bridge offers a version this object takes.
    const version =
      negotiateRelayVersion(request.headers.get('Sec-WebSocket-Protocol')) ?? RELAY_PROTOCOL_VERSION
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
    const tokenId = request.headers.get(TOKEN_ID_HEADER)
    const expires = Number(request.headers.get(TOKEN_EXPIRES_HEADER) ?? Number.NaN)
    const token =
      tokenId === null
        ? undefined
        : {
            id: tokenId,
            ...(Number.isFinite(expires) ? { expiresAt: expires } : {}),
            checkedAt: now,
          }
    server.serializeAttachment({
      session,
      version,
      connectedAt: now,
      ...(token ? { token } : {}),
    } satisfies BridgeSocketState)
    server.send(
      encodeWelcome(
        {
          lastBatchSeq: this.#store.state.lastBatchSeq(session) ?? 0,
          ...batchLimits(this.config),
          now,
        },
        version,
      ),
    )
    this.#announce()
    return new Response(null, {
      status: 101,
      webSocket: client,
      headers: { 'Sec-WebSocket-Protocol': relaySubprotocol(version) },
    })
  }

  /**
   * Forgets sessions idle past SESSION_IDLE_MS, at most once a day (on a bridge socket): every
   * bridge start without a spool is a session, and their rows should not pile up.
   */
  #pruneSessions(now: number): void {
    const { kv } = this.ctx.storage
    const prunedAt = kv.get<number>(SESSIONS_PRUNED_KEY)
    if (prunedAt !== undefined && now - prunedAt < SESSION_IDLE_MS / 30) return
    pruneSessions(this.#store.sql, now)
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
    const page = await this.readPage(options)
    return page.ok ? { ok: true, value: pageMessages(page.value) } : page
  }

  /**
   * RPC: {@link readMessages} as stored (see `MessagePage`): the Worker decodes the segments it
   * gets with `pageMessages`, so a page of thousands of messages crosses as a few buffers.
   * @throws RangeError for options out of range.
   */
  async readPage(options: ReadOptions & { waitMs?: number }): Promise<Waited<MessagePage>> {
    const { after, limit, maxBytes, waitMs = 0 } = options
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`bad after: ${after}`)
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`bad limit: ${limit}`)
    if (!(maxBytes >= 0)) throw new RangeError(`bad maxBytes: ${maxBytes}`)
    const deadline = Date.now() + waitMs
    for (;;) {
      const page = this.#store.readPage({ after, limit, maxBytes })
      this.#store.state.touched()
      const left = deadline - Date.now()
      if (page.count > 0 || left <= 0) return { ok: true, value: page }
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
   * Runs a call on a consumer group, turning a group that is not there (or one too many) into
   * a refusal the Worker maps to its HTTP error.
   */
  #onGroup<T>(call: () => T): Waited<T> {
    try {
      return { ok: true, value: call() }
    } catch (error) {
      if (error instanceof GroupNotFoundError) return { ok: false, reason: 'group_not_found' }
      if (error instanceof TooManyGroupsError) return { ok: false, reason: 'too_many_groups' }
      if (error instanceof GroupStateFullError) return { ok: false, reason: 'group_full' }
      throw error
    }
  }

  /**
   * Runs `write` in one transaction and marks the rows it cost for the next state write. When it
   * fails, SQLite rolls back and the modules' memory of the storage (ends of the log, counters,
   * group states) is built again from it, so nothing in memory is left of what did not happen.
   */
  #write<T>(write: () => T): T {
    this.#beforeChange()
    try {
      const result = this.ctx.storage.transactionSync(write)
      this.#store.state.touched()
      return result
    } catch (error) {
      // A group that is not there, or one too many, is refused before anything changes: memory
      // is right as it is, and building it again would read rows at each refused request.
      if (!(error instanceof GroupNotFoundError || error instanceof TooManyGroupsError)) {
        this.#open()
      }
      throw error
    }
  }

  /** Samples the channel's history if this is the minute's first change (see ./channel-history.ts). */
  #beforeChange(): void {
    const now = Date.now()
    this.#store.state.beforeChange(now, () => historyValues(this.#store, this.#groups, now))
  }

  /** RPC: the last hour, minute by minute: messages stored and acked, depth, groups' lag. */
  history(): { now: number; minutes: HistoryMinute[] } {
    const now = Date.now()
    const live = historyValues(this.#store, this.#groups, now)
    return { now, minutes: this.#store.state.history.minutes(now, live) }
  }

  /**
   * RPC: leases up to `batchSize` available messages of consumer group `group` (default
   * `default`, created at its first pull) for `visibilityTimeoutMs`. With none available and
   * `waitMs` > 0, waits for an insert, a retry, a redrive or a lease to expire.
   */
  async pull(options: {
    group?: string
    batchSize: number
    visibilityTimeoutMs: number
    maxBytes: number
    waitMs: number
  }): Promise<Waited<LeasedMessage[]>> {
    const { group = DEFAULT_GROUP, ...pull } = options
    const deadline = Date.now() + options.waitMs
    for (;;) {
      const now = Date.now()
      const result = this.#onGroup(() =>
        this.#write(() => this.#groups.pull(group, { ...pull, now })),
      )
      if (!result.ok) return result
      if (result.value.length > 0) await this.#scheduleAlarm()
      const left = deadline - now
      if (result.value.length > 0 || left <= 0) return result
      // A lease that expires or a delay that ends within the wait makes a message available.
      const next = this.#groups.nextChangeAt(group, now)
      const waiting = this.#waitForChange(Math.min(left, next === undefined ? left : next - now))
      if (!waiting) return { ok: false, reason: 'too_many_waiters' }
      await waiting
    }
  }

  /** RPC: acks and retries of group `group` (default `default`; see ConsumerGroups.settle). */
  async settle(options: {
    group?: string
    acks: string[]
    retries: { leaseId: string; delayMs: number }[]
  }): Promise<Waited<SettleOutcome>> {
    const { group = DEFAULT_GROUP, ...settle } = options
    const outcome = this.#onGroup(() =>
      this.#write(() => this.#groups.settle(group, settle, Date.now())),
    )
    if (outcome.ok && outcome.value.retried > 0) this.#wake()
    if (outcome.ok && outcome.value.deadLettered + outcome.value.retried > 0) {
      await this.#scheduleAlarm()
    }
    return outcome
  }

  /** RPC: extends unexpired leases of group `group` to `visibilityTimeoutMs` from now. */
  async extendLeases(
    leaseIds: string[],
    visibilityTimeoutMs: number,
    group = DEFAULT_GROUP,
  ): Promise<Waited<ExtendOutcome>> {
    const outcome = this.#onGroup(() =>
      this.#write(() => this.#groups.extend(group, leaseIds, visibilityTimeoutMs, Date.now())),
    )
    if (outcome.ok && outcome.value.extended > 0) await this.#scheduleAlarm()
    return outcome
  }

  /** RPC: dead letters of group `group` after `after`, in seq order. */
  deadLetters(options: ReadOptions & { group?: string }): Waited<DeadLetter[]> {
    const { group = DEFAULT_GROUP, ...read } = options
    return this.#onGroup(() => this.#write(() => this.#groups.deadLetters(group, read, Date.now())))
  }

  /** RPC: sends dead letters of group `group` (those in `seqs`, or all) back, attempts reset. */
  redrive(seqs?: number[], group = DEFAULT_GROUP): Waited<number[]> {
    const moved = this.#onGroup(() =>
      this.#write(() => this.#groups.redrive(group, seqs, Date.now())),
    )
    if (moved.ok && moved.value.length > 0) this.#wake()
    return moved
  }

  /**
   * RPC: creates consumer group `name` at `start`, or leaves an existing one as it is.
   * @returns whether it was created, and its numbers.
   */
  putGroup(name: string, start: GroupStart): Waited<{ created: boolean; group: GroupInfo }> {
    return this.#onGroup(() =>
      this.#write(() => {
        const now = Date.now()
        const { created } = this.#groups.create(name, start, now)
        return { created, group: this.#groups.info(name, now) as GroupInfo }
      }),
    )
  }

  /** RPC: deletes consumer group `name` with its leases and dead letters. */
  deleteGroup(name: string): Waited<null> {
    const deleted = this.#write(() => this.#groups.delete(name))
    return deleted ? { ok: true, value: null } : { ok: false, reason: 'group_not_found' }
  }

  /** RPC: every consumer group with its lag. */
  listGroups(): GroupInfo[] {
    const now = Date.now()
    this.#write(() => this.#groups.sweep(now))
    return this.#groups.list(now)
  }

  /**
   * RPC: {@link pull}, then what the group has not acked (Cloudflare Queues' pull answers with
   * its backlog; counted in memory, no row read).
   */
  async pullWithBacklog(
    options: Parameters<ChannelObject['pull']>[0],
  ): Promise<Waited<{ messages: LeasedMessage[]; backlog: number }>> {
    const pulled = await this.pull(options)
    if (!pulled.ok) return pulled
    const backlog = this.#groups.backlog(options.group ?? DEFAULT_GROUP, Date.now()) ?? 0
    return { ok: true, value: { messages: pulled.value, backlog } }
  }

  /** RPC: one consumer group with its lag. */
  group(name: string): Waited<GroupInfo> {
    const now = Date.now()
    this.#write(() => this.#groups.sweep(now))
    const info = this.#groups.info(name, now)
    return info ? { ok: true, value: info } : { ok: false, reason: 'group_not_found' }
  }

  /** RPC: the channel's numbers. */
  stats(): ChannelStats {
    const now = Date.now()
    this.#write(() => this.#groups.sweep(now))
    const store = this.#store
    const groups = this.#groups.list(now)
    const counters = { ...store.state.counters } as Record<Counter, number>
    for (const name of Object.values(GroupCounter)) counters[name] = 0
    const sum = (name: GroupCounter, value: number) => {
      counters[name] += value
    }
    for (const group of groups) {
      sum(GroupCounter.LEASED, group.counters.leased)
      sum(GroupCounter.REDELIVERED, group.counters.redelivered)
      sum(GroupCounter.ACKED, group.counters.acked)
      sum(GroupCounter.RETRIED, group.counters.retried)
      sum(GroupCounter.DEAD_LETTERED, group.counters.deadLettered)
      sum(GroupCounter.REDRIVEN, group.counters.redriven)
    }
    const queueGroup = groups.find((group) => group.name === DEFAULT_GROUP)
    const messages = store.messageCount
    const queue: QueueStats = queueGroup
      ? {
          depth: queueGroup.lag,
          available: queueGroup.available,
          inFlight: queueGroup.inFlight,
          delayed: queueGroup.delayed,
          deadLetters: queueGroup.deadLetters,
        }
      : { depth: messages, available: messages, inFlight: 0, delayed: 0, deadLetters: 0 }
    const rows = store.meter.totals()
    const stored = Math.max(1, counters.messages_stored)
    store.state.touched()
    return {
      now,
      log: { messages, bytes: store.byteCount, ...store.bounds() },
      queue,
      groups,
      bridges: {
        connected: this.ctx.getWebSockets().length,
        known: knownBridges(store.sql),
        connections: this.#connections(),
      },
      counters,
      cost: {
        ...rows,
        perMessage: { rowsRead: rows.rowsRead / stored, rowsWritten: rows.rowsWritten / stored },
      },
      storageBytes: this.ctx.storage.sql.databaseSize,
      migrating: store.migrating,
      config: this.config,
    }
  }

  /** The bridge sockets open now, oldest first, from their attachments. */
  #connections(): BridgeConnection[] {
    const sockets = this.ctx
      .getWebSockets()
      .map((ws) => ws.deserializeAttachment() as BridgeSocketState | null)
      .filter((state): state is BridgeSocketState => Boolean(state?.session) && !state?.replaced)
    const lastSeqs = this.#store.state.lastBatchSeqs(sockets.map((socket) => socket.session))
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
   * Sets the alarm for the earliest of: a lease that is its message's last attempt (so the
   * message becomes a dead letter on time even when nobody pulls), the oldest segment passing the
   * retention age, the channel's state falling due to be written, and, while rows of the old
   * schema are left, now. Earlier leases expire lazily: a pull simply finds them available.
   */
  async #scheduleAlarm(): Promise<void> {
    const times = [
      this.#groups.nextDeadAt(),
      this.#store.nextExpiryAt(),
      this.#store.state.dueAt(),
      this.#store.migrating ? Date.now() : undefined,
    ].filter((time) => time !== undefined)
    if (times.length === 0) return
    const at = Math.min(...times)
    if (this.#alarmAt === undefined) this.#alarmAt = await this.ctx.storage.getAlarm()
    if (this.#alarmAt === null || this.#alarmAt > at) {
      await this.ctx.storage.setAlarm(at)
      this.#alarmAt = at
    }
  }

  /**
   * Deletes segments past the retention age, moves a slice of old rows into segments while any
   * are left, dead-letters what expired, writes the state if due, sets the next alarm.
   */
  override async alarm(): Promise<void> {
    this.#alarmAt = null
    const now = Date.now()
    try {
      this.#beforeChange()
      this.#store.expire(now)
      if (this.#store.migrating) {
        this.#store.migrateSlice(now)
        this.#wake()
      }
      this.#write(() => this.#groups.sweep(now))
      this.#store.flushIfDue(now)
    } catch (error) {
      // Rolled back: memory is built again from storage (see #write); the alarm is retried.
      this.#open()
      throw error
    }
    await this.#scheduleAlarm()
  }

  /**
   * One relay frame from a bridge: stored synchronously, then answered with an ACK or NACK.
   * The output gate holds the ACK until the transaction is durable.
   */
  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    let state = ws.deserializeAttachment() as BridgeSocketState | null
    // A socket of protocol version 1 (accepted before an update), one replaced by a newer
    // socket of its bridge, or one whose token is gone: nothing it sends is stored.
    if (!state?.session || state.replaced || state.revoked) {
      const code = state?.revoked
        ? CLOSE_CREDENTIAL_REVOKED
        : state?.replaced
          ? CLOSE_REPLACED
          : 1002
      try {
        ws.close(code, 'this socket no longer takes batches')
      } catch {}
      return
    }
    // A socket let in with a scoped token stores nothing once the token has expired, and is
    // closed once the registry no longer has it, asked at most every TOKEN_RECHECK_MS and
    // without holding the batch up (awaiting it here would let the next batch overtake this one).
    const token = state.token
    if (token) {
      const now = Date.now()
      if (token.expiresAt !== undefined && token.expiresAt <= now) {
        this.#closeRevoked(ws)
        return
      }
      if (now - token.checkedAt >= TOKEN_RECHECK_MS) {
        state = { ...state, token: { ...token, checkedAt: now } }
        ws.serializeAttachment(state)
        this.ctx.waitUntil(this.#recheckToken(ws, token.id))
      }
    }
    const store: BatchStore = {
      storeBatch: (session, batch) => {
        try {
          return this.#store.storeBatch(session, batch)
        } catch (error) {
          // Rolled back: forget what memory held of it (see #write).
          this.#open()
          throw error
        }
      },
    }
    this.#store.state.touched()
    this.#beforeChange()
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

  /** Closes `ws` if the registry no longer has the token it was let in with. */
  async #recheckToken(ws: WebSocket, id: string): Promise<void> {
    try {
      const token = await registryStub(this.env).token(id)
      if (!token || (token.expiresAt !== undefined && token.expiresAt <= Date.now())) {
        this.#closeRevoked(ws)
      }
    } catch (error) {
      // The registry unreachable: the socket stays (the Worker checks again at the next upgrade).
      console.error('token check failed', { error: String(error) })
    }
  }

  #closeRevoked(ws: WebSocket): void {
    const state = ws.deserializeAttachment() as BridgeSocketState | null
    if (state) ws.serializeAttachment({ ...state, revoked: true })
    try {
      ws.close(CLOSE_CREDENTIAL_REVOKED, 'its token was deleted or expired')
    } catch {
      // Closed already.
    }
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
