// A ZeroMQ PULL socket that binds a TCP port and accepts PUSH peers: one ZmtpConnection per
// TCP connection, every complete message handed on with where it came from.
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import { idempotencyKeyOfFrame } from '../../shared/idempotency-key.ts'
import type { Mechanism } from '../../shared/relay-protocol.ts'
import { z85Encode } from '../../shared/z85.ts'
import {
  type ConnectionEvents,
  ConnectionState,
  type ConnectionTransport,
  type ReadyPeer,
  ZmtpConnection,
} from '../zmtp/connection.ts'
import { LOCAL_FAILURES, ZmtpError, ZmtpErrorCode } from '../zmtp/errors.ts'
import type { Mechanism as ZmtpMechanism } from '../zmtp/mechanisms/mechanism.ts'
import { ReconnectBackoff, reconnectsAfter } from '../zmtp/reconnect.ts'
import { splitEnvelope } from '../zmtp/sockets/router.ts'
import { PULL, type SocketType } from '../zmtp/sockets/socket-type.ts'
import { ConnectionLimits } from './connection-limits.ts'
import type { Logger } from './log.ts'
import {
  DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES,
  PreauthBudget,
  Reservation,
} from './preauth-budget.ts'
import { RefusalLog } from './refusal-log.ts'
import type { MessageReceipt } from './relay/relay-client.ts'

/** A message as the PULL socket received it. */
export interface InboundMessage {
  frames: Uint8Array[]
  receivedAt: number
  peerAddress: string
  mechanism: Mechanism
  publicKey?: Uint8Array
  /** From a request's envelope (../../shared/idempotency-key.ts). */
  idempotencyKey?: string
  /** The key's record name, set by the bridge when it admits keys by the registry. */
  keyName?: string
}

export interface PullSocketOptions {
  host: string
  port: number
  /** Makes the mechanism for one new connection (mechanisms hold per-connection state). */
  createMechanism: () => ZmtpMechanism
  /**
   * The socket type each connection speaks: PULL (the default) or another that receives, such
   * as a SUB with its subscriptions (../zmtp/sockets/sub.ts).
   */
  socketType?: SocketType
  handshakeTimeoutMs: number
  maxMessageSize: number
  /** Default {@link DEFAULT_MAX_FRAMES_PER_MESSAGE}. */
  maxFramesPerMessage?: number
  /** Default {@link DEFAULT_MAX_CONNECTIONS}. */
  maxConnections?: number
  /** Default {@link DEFAULT_MAX_CONNECTIONS_PER_IP}. */
  maxConnectionsPerIp?: number
  /**
   * New connections a second per IP (each one is a handshake to pay for), bursts of twice that;
   * 0, the default: no limit. The bridge sets it on every listener (NULL and CURVE).
   */
  handshakesPerSecondPerIp?: number
  /**
   * What connections not yet READY may hold (greeting buffers, partial handshake frames), shared
   * by every listener of the process: the bridge passes one to all. Default: a budget of this
   * socket's own, of DEFAULT_PREAUTH_BUDGET_BYTES.
   */
  preauthBudget?: PreauthBudget
  /**
   * What ready connections may hold of messages not yet whole, shared by every listener; a
   * connection that would take it past its limit is closed (MESSAGE_BUDGET_EXCEEDED). Default:
   * one of {@link DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES} for this socket alone.
   */
  partialMessageBudget?: PreauthBudget
  /**
   * After a failed handshake, refuse new connections from that address (an IPv6 /64) for 1 s,
   * doubling with each further failure up to this many ms; a success starts it over. 0, the
   * default: no backoff (the bridge's default is DEFAULT_HANDSHAKE_BACKOFF_MS).
   */
  handshakeBackoffMaxMs?: number
  /** Accept ZMTP 2.0 peers (old libzmq, JeroMQ 0.3) on this NULL listener. Default false. */
  allowZmtp2?: boolean
  /**
   * Refused connections are logged as the first of each reason, then one summary line per
   * interval of this many ms (default DEFAULT_REFUSAL_LOG_INTERVAL_MS).
   */
  refusalLogIntervalMs?: number
  /**
   * Send a PING this often (ms) to every ready peer that greeted as ZMTP 3.1 or later (RFC 37);
   * 0, the default: only answer theirs. ZMTP 3.0 and 2.0 peers are never sent one: 3.0 has no
   * PING (a libzmq 4.1 peer never answers, and passes the command on as a message), 2.0 has no
   * commands at all.
   */
  heartbeatIvlMs?: number
  /** A peer silent this long (ms) after our PING is dropped; default the interval. */
  heartbeatTimeoutMs?: number
  /**
   * A ready peer that is not PINGed (heartbeats off, or a ZMTP 3.0/2.0 peer) and sends nothing
   * for this long (ms) is closed; 0, the default: never.
   */
  idleTimeoutMs?: number
  logger: Logger
  /**
   * A message received. On a socket type that replies (ROUTER), `onReceipt` is given: call it
   * once the message's fate is known, and the peer gets its reply (../relay/relay-client.ts).
   */
  onMessage(message: InboundMessage, onReceipt?: (receipt: MessageReceipt) => void): void
  /** Connection lifecycle, for metrics. */
  onEvent?(event: PullSocketEvent): void
  /**
   * After each message delivered: how long not to read its connection, ms (0: read on). The
   * bridge's per-key rate limit (./key-rate-limit.ts); TCP pushes back on the sender meanwhile.
   */
  throttle?(message: InboundMessage): number
}

/** What a PULL socket reports about its connections. */
export type PullSocketEvent =
  /** A handshake succeeded. */
  | { type: 'ready'; mechanism: string }
  /** A connection whose handshake had succeeded closed. */
  | { type: 'closed'; mechanism: string }
  /** A connection closed, with an error, before its handshake succeeded. */
  | { type: 'handshake-failed'; code: string }
  /** A connection refused before any ZMTP by the connection limits. */
  | { type: 'refused'; code: string }
  /** A request answered (a ROUTER listener): `seq`, or the code of its `ERR <code>`. */
  | { type: 'replied'; answer: string }

export const DEFAULT_MAX_FRAMES_PER_MESSAGE = 10_000
export const DEFAULT_MAX_CONNECTIONS = 10_000
/**
 * Open connections from one address (an IPv6 /64) per listener. A libzmq PUSH holds one
 * connection per socket and endpoint, so 100 is 100 sender sockets behind one address; with
 * DEFAULT_MAX_CONNECTIONS at 10,000, filling a listener takes 100 addresses, not 10. Raise it for
 * many senders behind one NAT.
 */
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 100

/** What a connection we dialled tells the dialler: how it failed, and that it became ready. */
interface DialHooks {
  onFailure(error: ZmtpError): void
  onReady(): void
}

/**
 * Requests of one connection waiting for their replies, at most: past it the peer is not read
 * until half are answered (a DEALER may have many in flight; 1,000 is libzmq's default HWM).
 */
export const MAX_PENDING_REPLIES = 1000

/**
 * Largest request envelope, all its frames, octets: routing ids are at most 255 octets (RFC 23),
 * a few of them from proxies on the way, and a request id of the sender's own. A larger one
 * (or one of more frames) is answered ERR ENVELOPE_TOO_LARGE, with no envelope, and not stored.
 */
export const MAX_ENVELOPE_BYTES = 1024
/** And at most this many frames, the delimiter included: each is an object kept until then. */
export const MAX_ENVELOPE_FRAMES = 16

const ASCII = new TextEncoder()

/**
 * The reply's answer frame: the seq in ASCII decimal, or `ERR <code>`. SEQ_UNKNOWN: the channel
 * had taken the batch before (a resend) but could not say under which seqs (see MessageReceipt).
 */
/**
 * The idempotency key of a request's envelope: undefined when no frame carries one, null when
 * one breaks the rule or two frames carry one (which would the sender mean?).
 */
function idempotencyKeyOf(envelope: readonly Uint8Array[]): string | null | undefined {
  let found: string | undefined
  for (const frame of envelope) {
    const carried = idempotencyKeyOfFrame(frame)
    if (carried === undefined) continue
    if ('invalid' in carried || found !== undefined) return null
    found = carried.key
  }
  return found
}

function answerOf(receipt: MessageReceipt): string {
  if (receipt.status === 'stored') return String(receipt.seq)
  return receipt.status === 'rejected' ? 'ERR REJECTED' : 'ERR SEQ_UNKNOWN'
}

/** The peer's `host:port`; IPv4 clients of a dual-stack socket show as plain IPv4. */
function formatAddress(socket: Socket): string {
  const host = (socket.remoteAddress ?? 'unknown').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '')
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? 0}`
}

/**
 * Fair queuing: each connection's bytes are parsed as they arrive, one read (at most 64 KiB) at
 * a time, and Node's event loop serves ready sockets in turn, so no client gets more than one
 * read ahead of another.
 */
export class PullSocket {
  readonly #options: PullSocketOptions
  readonly #server: Server
  /** Open connections and, once their handshake succeeded, their peers. */
  readonly #connections = new Map<Socket, InboundConnection>()
  readonly #heartbeatTimer: NodeJS.Timeout
  readonly #limits: ConnectionLimits
  readonly #refusalLog: RefusalLog
  /** Failed handshakes, likewise: a flood of garbage must not become a flood of log lines. */
  readonly #failureLog: RefusalLog
  readonly #sweepTimer: NodeJS.Timeout
  #paused = false
  /** Set by stopReading: no pressure relief resumes reading. */
  #readingStopped = false
  #closed = false
  /** Outgoing connections (from `connect`) and their pending redials. */
  readonly #dialing = new Set<Socket>()
  readonly #reconnectTimers = new Set<NodeJS.Timeout>()
  /** Connections refused before any ZMTP, by reason. */
  readonly refused = { TOO_MANY_CONNECTIONS: 0, TOO_MANY_HANDSHAKES: 0, HANDSHAKE_BACKOFF: 0 }
  /** Connections closed before their handshake completed, by error code (the log samples them). */
  readonly failed = new Map<string, number>()
  #maxMessageSize: number
  /** Octets held by connections that are not READY (see PullSocketOptions.preauthBudget). */
  readonly preauthBudget: PreauthBudget
  /** Octets of messages under way on ready connections (see the option of the same name). */
  readonly partialMessageBudget: PreauthBudget
  /** When reading was last paused (ms), so silence timers can skip the pause. */
  #pausedAt = 0

  constructor(options: PullSocketOptions) {
    this.#options = options
    this.#maxMessageSize = options.maxMessageSize
    this.preauthBudget = options.preauthBudget ?? new PreauthBudget()
    this.partialMessageBudget =
      options.partialMessageBudget ?? new PreauthBudget(DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES)
    this.#limits = new ConnectionLimits({
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? DEFAULT_MAX_CONNECTIONS_PER_IP,
      handshakesPerSecondPerIp: options.handshakesPerSecondPerIp ?? 0,
      handshakeBackoffMaxMs: options.handshakeBackoffMaxMs ?? 0,
    })
    this.#refusalLog = new RefusalLog(options.logger, options.refusalLogIntervalMs)
    this.#failureLog = new RefusalLog(options.logger, options.refusalLogIntervalMs, {
      line: 'handshake failed',
      summary: 'handshakes failed',
    })
    this.#sweepTimer = setInterval(() => this.#limits.sweep(), 10_000).unref()
    // Often enough for the shortest of the intervals, at most every 250 ms (peers' PING TTLs).
    const periods = [
      options.heartbeatIvlMs ?? 0,
      options.heartbeatTimeoutMs ?? 0,
      options.idleTimeoutMs ?? 0,
    ].filter((ms) => ms > 0)
    this.#heartbeatTimer = setInterval(
      () => this.#heartbeat(),
      Math.max(20, Math.min(250, ...periods.map((ms) => ms / 4))),
    ).unref()
    // A paused socket still reads until its buffer holds highWaterMark octets (64 KiB from Node
    // 22): 16 KiB keeps what 10,000 paused peers can park in Node's buffers small.
    this.#server = createServer(
      { noDelay: true, highWaterMark: SOCKET_HIGH_WATER_MARK },
      (socket) => this.#accept(socket),
    )
  }

  /** The largest message, all frames together, that connections now accept. */
  get maxMessageSize(): number {
    return this.#maxMessageSize
  }

  /**
   * Lowers the message limit, for open connections and new ones: e.g. to the largest message
   * the Worker takes, learnt when the relay connects. The limit becomes the smaller of `octets`
   * and the configured `maxMessageSize` (so a later, larger value goes back up to it, never
   * past it). It is checked per message; a connection whose peer sends more is closed with
   * FRAME_TOO_LARGE, as libzmq does past ZMQ_MAXMSGSIZE.
   * @throws {RangeError} if `octets` is not a positive safe integer
   */
  setMaxMessageSize(octets: number): void {
    if (!Number.isSafeInteger(octets) || octets <= 0) {
      throw new RangeError(`the message limit must be a positive whole number, got ${octets}`)
    }
    this.#maxMessageSize = Math.min(octets, this.#options.maxMessageSize)
    for (const { connection } of this.#connections.values()) {
      connection.setMaxMessageSize(this.#maxMessageSize)
    }
  }

  /** Logs a failed handshake, sampled (see {@link RefusalLog}). */
  handshakeFailed(code: string, peer: string, host: string, message: string): void {
    this.failed.set(code, (this.failed.get(code) ?? 0) + 1)
    this.#failureLog.refused(code, peer, host, { err: message })
  }

  /** Open connections, handshaking or ready. */
  get connectionCount(): number {
    return this.#connections.size
  }

  /**
   * Closes every ready connection whose peer matches, e.g. CURVE clients whose key was taken off
   * the allow-list. Returns how many were closed.
   */
  /** The peers whose handshake succeeded and that are still connected. */
  readyPeers(): ReadyPeer[] {
    const peers: ReadyPeer[] = []
    for (const { peer, closing } of this.#connections.values())
      if (peer && !closing) peers.push(peer)
    return peers
  }

  closeWhere(predicate: (peer: ReadyPeer) => boolean, error: ZmtpError): number {
    let closed = 0
    for (const { connection, peer } of this.#connections.values()) {
      if (peer && predicate(peer)) {
        connection.fail(error)
        closed++
      }
    }
    return closed
  }

  /**
   * Sends due PINGs to the peers that know PING, and ends connections that stayed silent: past
   * our heartbeat timeout, past the TTL of the peer's own PING, or, for peers we cannot PING,
   * past the idle timeout.
   */
  #heartbeat(): void {
    // A paused connection is not read, so its silence says nothing about the peer.
    if (this.#paused) return
    const now = Date.now()
    const ivl = this.#options.heartbeatIvlMs ?? 0
    const timeout = this.#options.heartbeatTimeoutMs ?? ivl
    const idle = this.#options.idleTimeoutMs ?? 0
    for (const entry of this.#connections.values()) {
      const { peer } = entry
      if (!peer || entry.closing || entry.ending) continue
      if (entry.repliesBlocked || entry.throttledUntil > now) {
        // Not read because its replies wait on the channel, or its key is over its rate limit:
        // its silence is ours, not the peer's.
        entry.lastDataAt = now
        if (entry.unansweredSince > 0) entry.unansweredSince = now
        continue
      }
      const silentMs = now - entry.lastDataAt
      const { peerTtlMs } = entry.connection
      if (entry.unansweredSince > 0 && entry.lastDataAt >= entry.unansweredSince) {
        entry.unansweredSince = 0
      }
      if (
        (entry.unansweredSince > 0 && now - entry.unansweredSince > timeout) ||
        (peerTtlMs > 0 && silentMs > peerTtlMs)
      ) {
        entry.endSilent(ZmtpErrorCode.HEARTBEAT_TIMEOUT, silentMs)
        continue
      }
      // RFC 37 defines PING; a peer greeting as 3.0 may not know it (libzmq 4.1 does not), and
      // ZMTP 2.0 has no commands at all.
      const pingable = ivl > 0 && peer.majorVersion === 3 && peer.minorVersion >= 1
      if (pingable) {
        if (now - Math.max(entry.lastPingAt, entry.lastDataAt) >= ivl) {
          entry.lastPingAt = now
          if (entry.unansweredSince === 0) entry.unansweredSince = now
          entry.connection.sendPing()
        }
      } else if (idle > 0 && silentMs >= idle) {
        entry.endSilent(ZmtpErrorCode.IDLE_TIMEOUT, silentMs)
      }
    }
  }

  /**
   * Stops or restarts reading every connection (new ones included). While paused, the kernel's
   * receive buffers fill, TCP's window closes, and the PUSH clients queue on their side up to
   * their own high-water mark: backpressure, as ZeroMQ intends, without dropping anything.
   */
  setPaused(paused: boolean): void {
    if (paused === this.#paused || (!paused && this.#readingStopped)) return
    this.#paused = paused
    const now = Date.now()
    // Silence while we were not reading is ours, not the peer's: the timers skip the pause
    // (moved on by its length, not started over, so a relay going on and off at its
    // high-water mark does not keep dead peers alive).
    const pausedMs = paused ? 0 : now - this.#pausedAt
    if (paused) this.#pausedAt = now
    for (const [socket, entry] of this.#connections) {
      // Peers still in their handshake are read on: the pre-handshake budget bounds them, and
      // a handshake left unread would time out and be blamed on the peer.
      if (paused) {
        if (entry.peer) socket.pause()
      } else {
        entry.resumeIfFree()
        entry.lastDataAt += pausedMs
        if (entry.unansweredSince > 0) entry.unansweredSince += pausedMs
      }
    }
  }

  get paused(): boolean {
    return this.#paused
  }

  /** Stops accepting new connections; open ones keep being read. */
  stopAccepting(): void {
    if (this.#server.listening) this.#server.close()
  }

  /**
   * Reads no more, for good, and keeps the connections open: a stopping bridge drains its relay
   * first, so a ROUTER's replies to what is stored meanwhile still reach their senders.
   */
  stopReading(): void {
    this.setPaused(true)
    this.#readingStopped = true
  }

  /** Binds the port; resolves with the bound address (useful with port 0). */
  async listen(): Promise<AddressInfo> {
    const { host, port } = this.#options
    try {
      return await this.#listenOn(host, port)
    } catch (error) {
      // `::` (from `tcp://*:PORT`) on a host without IPv6: all IPv4 interfaces instead.
      if (host === '::' && (error as NodeJS.ErrnoException).code === 'EAFNOSUPPORT') {
        return this.#listenOn('0.0.0.0', port)
      }
      throw error
    }
  }

  #listenOn(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      // A `::` socket is dual-stack: IPv4 clients arrive as ::ffff:a.b.c.d.
      this.#server.listen({ host, port, ipv6Only: false }, () => {
        this.#server.off('error', reject)
        resolve(this.#server.address() as AddressInfo)
      })
    })
  }

  /** Stops accepting and closes every connection. */
  close(): Promise<void> {
    this.#closed = true
    for (const timer of this.#reconnectTimers) clearTimeout(timer)
    for (const socket of this.#dialing) socket.destroy()
    clearInterval(this.#sweepTimer)
    clearInterval(this.#heartbeatTimer)
    this.#refusalLog.flush()
    this.#failureLog.flush()
    for (const socket of this.#connections.keys()) socket.destroy()
    if (!this.#server.listening) return Promise.resolve()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  #accept(socket: Socket): void {
    const host = socket.remoteAddress ?? 'unknown'
    const refusal = this.#limits.admit(host)
    if (refusal) {
      // Before any ZMTP: the peer sees a reset and retries later, as after any plain close.
      this.refused[refusal]++
      this.#options.onEvent?.({ type: 'refused', code: refusal })
      // Never a line per refusal: during a flood that would be the flood, in the log.
      this.#refusalLog.refused(refusal, formatAddress(socket), host)
      socket.destroy()
      return
    }
    socket.on('close', () => this.#limits.release(host))
    this.#attach(socket, undefined, { limits: this.#limits, host })
  }

  /**
   * Dials a PUSH peer that binds (libzmq's `zmq_connect` on a PULL), and dials again after a
   * plain close, a failure to connect or a timeout, every 100 ms plus up to 100 ms of jitter
   * (libzmq's default reconnect_ivl); a protocol error (the peer's ERROR, a wrong socket type,
   * mechanism or version, anything malformed) stops the dialling, as in libzmq (../../zmtp/reconnect.ts).
   */
  connect(host: string, port: number): void {
    const endpoint = `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`
    const log = this.#options.logger.child({ connect: endpoint })
    const backoff = new ReconnectBackoff()
    const dial = () => {
      if (this.#closed) return
      const socket = connect({ host, port, noDelay: true })
      let failure: ZmtpError | undefined
      socket.once('connect', () => {
        log.info('connected')
        this.#attach(socket, {
          onFailure: (error) => {
            failure = error
          },
          // A completed handshake starts the backoff over, as libzmq.
          onReady: () => backoff.reset(),
        })
      })
      socket.on('error', (error) => log.debug({ err: error.message }, 'connect error'))
      socket.once('close', () => {
        if (this.#closed) return
        if (failure && !reconnectsAfter(failure)) {
          log.error(
            { code: failure.code },
            'the peer refused us or broke the protocol; not reconnecting',
          )
          return
        }
        const delay = backoff.next()
        log.debug({ delayMs: Math.round(delay) }, 'reconnecting')
        const timer = setTimeout(dial, delay)
        this.#reconnectTimers.add(timer)
        timer.unref()
      })
      this.#dialing.add(socket)
      socket.once('close', () => this.#dialing.delete(socket))
    }
    dial()
  }

  #attach(socket: Socket, dial?: DialHooks, admission?: Admission): void {
    const entry = new InboundConnection(socket, this.#options, this, dial, admission)
    this.#connections.set(socket, entry)
    socket.once('close', () => {
      this.#connections.delete(socket)
      entry.transportClosed()
    })
    entry.start()
  }
}

/** An accepted connection's address and the limits that admitted it, told how its handshake went. */
interface Admission {
  limits: ConnectionLimits
  host: string
}

/**
 * Handshake failures that are not the peer's doing, and so do not back its address off: a bug
 * of ours, or a budget other peers may have filled.
 */
/** How long a connection closed for silence is still read for what its peer sent, ms. */
const SILENT_CLOSE_GRACE_MS = 2000

/** Node's read buffer per socket (see the server's creation). */
const SOCKET_HIGH_WATER_MARK = 16 * 1024

/** Reads smaller than this are kept whole, whatever share of them messages use. */
const SPARSE_READ_MIN_BYTES = 16 * 1024

/**
 * Frames are views of the TCP reads they arrived in, and the relay keeps messages until the
 * Worker acknowledges them, counting their own size against its high-water mark. A read that
 * messages use only a little of (a small message, then the start of a large frame that is
 * copied elsewhere) would keep up to 64 KiB alive per small message: for those, the frames are
 * copied to their own size. The relay holds the same message objects, so this takes effect
 * there; reads that messages fill, the usual case, are not copied.
 */
function releaseSparseReads(messages: InboundMessage[]): void {
  const used = new Map<ArrayBufferLike, number>()
  for (const { frames } of messages) {
    for (const frame of frames) used.set(frame.buffer, (used.get(frame.buffer) ?? 0) + frame.length)
  }
  for (const { frames } of messages) {
    for (let index = 0; index < frames.length; index++) {
      const frame = frames[index] as Uint8Array
      if (isSparse(frame.buffer, used.get(frame.buffer) ?? 0)) frames[index] = frame.slice()
    }
  }
}

function isSparse(buffer: ArrayBufferLike, used: number): boolean {
  return buffer.byteLength >= SPARSE_READ_MIN_BYTES && used * 4 < buffer.byteLength
}

/**
 * One accepted or dialled TCP connection: its ZmtpConnection's transport and event handlers in
 * one object, with the heartbeat bookkeeping. A class rather than closures: with 10,000 idle
 * peers, every per-connection function costs (under tsx, each named arrow ~250 octets more).
 */
class InboundConnection implements ConnectionTransport, ConnectionEvents {
  readonly connection: ZmtpConnection
  peer?: ReadyPeer
  /** When the peer last sent anything: RFC 37 counts any traffic as a sign of life. */
  lastDataAt = Date.now()
  /** When we last sent a PING (0: never). */
  lastPingAt = 0
  /** When the first PING that nothing has answered since was sent (0: none outstanding). */
  unansweredSince = 0
  /** Our writes to the peer are backed up: it is not read until they drain. */
  writeBlocked = false
  /** We are closing it: what the peer sends is no longer read. */
  closing = false
  /** We ended our side for the peer's silence, and read what it sends until it closes. */
  ending = false
  readonly #socket: Socket
  readonly #options: PullSocketOptions
  readonly #owner: PullSocket
  readonly #dial: DialHooks | undefined
  readonly #admission: Admission | undefined
  readonly #peerAddress: string
  readonly #log: Logger
  readonly #acceptedAt = Date.now()
  readonly #mechanismName: Mechanism
  #handshakeTimer: NodeJS.Timeout | undefined
  #closeReason = 'peer closed'
  /** Octets reserved in the pre-handshake budget for this connection. */
  /** What this connection holds of the pre-handshake and partial-message budgets. */
  readonly #preauth: Reservation
  readonly #partial: Reservation
  /** Messages delivered while one read is parsed, and their octets (see releaseSparseReads). */
  #delivered: InboundMessage[] = []
  #deliveredBytes = 0
  /** Requests whose reply waits for the channel (ROUTER): past the bound, the peer is not read. */
  #pendingReplies = 0
  repliesBlocked = false
  /** Not read until then, ms since the epoch: its key is over its rate limit (`throttle`). */
  throttledUntil = 0
  #throttleTimer: NodeJS.Timeout | undefined

  constructor(
    socket: Socket,
    options: PullSocketOptions,
    owner: PullSocket,
    dial: DialHooks | undefined,
    admission: Admission | undefined,
  ) {
    this.#socket = socket
    this.#options = options
    this.#owner = owner
    this.#preauth = new Reservation(owner.preauthBudget)
    this.#partial = new Reservation(owner.partialMessageBudget)
    this.#dial = dial
    this.#admission = admission
    this.#peerAddress = formatAddress(socket)
    this.#log = options.logger.child({ peer: this.#peerAddress })
    const mechanism = options.createMechanism()
    this.#mechanismName = mechanism.name === 'CURVE' ? 'CURVE' : 'NULL'
    this.connection = new ZmtpConnection(this, this, {
      mechanism,
      socketType: options.socketType ?? PULL,
      maxMessageSize: owner.maxMessageSize,
      maxFramesPerMessage: options.maxFramesPerMessage ?? DEFAULT_MAX_FRAMES_PER_MESSAGE,
      allowZmtp2: options.allowZmtp2 === true,
    })
  }

  start(): void {
    const timeoutMs = this.#options.handshakeTimeoutMs
    this.#handshakeTimer = setTimeout(() => {
      this.connection.fail(
        new ZmtpError(ZmtpErrorCode.HANDSHAKE_TIMEOUT, `no handshake within ${timeoutMs} ms`),
      )
    }, timeoutMs)
    this.#handshakeTimer.unref()
    // Debug: a flood of connections must not be a flood of lines (the handshake is logged).
    this.#log.debug('connection accepted')
    // Plain Uint8Array views: frames handed on are platform-neutral, not Buffers.
    this.#socket.on('data', (chunk: Buffer) => {
      this.lastDataAt = Date.now()
      this.connection.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      if (this.#preauth.held > 0 || this.connection.handshaking) this.#accountPreauth()
      else this.#accountPartial()
      // Per read, not per message: one comparison, and the slow path only for sparse reads.
      if (this.#delivered.length > 0) {
        if (isSparse(chunk.buffer, this.#deliveredBytes)) releaseSparseReads(this.#delivered)
        this.#delivered.length = 0
        this.#deliveredBytes = 0
      }
    })
    this.#socket.on('error', (error) => this.#log.debug({ err: error.message }, 'socket error'))
    this.connection.start()
    // The greeting buffer counts from the start.
    this.#accountPreauth()
  }

  /**
   * Brings this connection's reservation in the pre-handshake budget to what it holds now. It
   * is checked after each read: a read adds at most one handshake frame (8 KiB), so what the
   * budget counts never passes its limit, and what is held passes it by at most that much.
   */
  #accountPreauth(): void {
    const held = this.connection.state === ConnectionState.CLOSED ? 0 : this.connection.preauthBytes
    this.#account(
      this.#preauth,
      held,
      ZmtpErrorCode.PREAUTH_BUDGET_EXCEEDED,
      'connections before their handshake',
    )
  }

  /** The same for a message under way on a ready connection, against its own budget. */
  #accountPartial(): void {
    const held =
      this.connection.state === ConnectionState.CLOSED ? 0 : this.connection.partialMessageBytes
    this.#account(this.#partial, held, ZmtpErrorCode.MESSAGE_BUDGET_EXCEEDED, 'messages under way')
  }

  /** Brings `reservation` to `held`; closes the connection (and gives it all back) if it cannot. */
  #account(reservation: Reservation, held: number, code: ZmtpErrorCode, what: string): void {
    if (reservation.update(held)) return
    const { budget } = reservation
    this.connection.fail(
      new ZmtpError(
        code,
        `${what} hold ${budget.used} of ${budget.limit} octets; this connection would add ${held - reservation.held}`,
      ),
    )
    reservation.release()
  }

  /** The TCP connection has closed. */
  transportClosed(): void {
    this.connection.transportClosed()
    this.#preauth.release()
    this.#partial.release()
    if (this.peer) this.#options.onEvent?.({ type: 'closed', mechanism: this.peer.mechanism })
    // Info for peers that were ready; debug for the rest (a flood is summarised elsewhere).
    this.#log[this.peer ? 'info' : 'debug'](
      {
        reason: this.#closeReason,
        handshake: this.peer !== undefined,
        durationMs: Date.now() - this.#acceptedAt,
      },
      'connection closed',
    )
  }

  // --- ConnectionTransport

  get backedUp(): boolean {
    return this.writeBlocked
  }

  write(bytes: Uint8Array): void {
    // After our FIN (a silent peer's grace, or a close) nothing more may be written.
    if (this.#socket.writableEnded) return
    // A peer that sends PINGs and never reads our PONGs would grow this buffer without end:
    // stop reading it until what we wrote has drained.
    if (!this.#socket.write(bytes) && !this.writeBlocked) {
      this.writeBlocked = true
      this.#socket.pause()
      this.#socket.once('drain', () => {
        this.writeBlocked = false
        this.resumeIfFree()
      })
    }
  }

  /**
   * Ends a connection whose peer has been silent: our FIN now, but what the peer sends until it
   * closes its side (a libzmq PUSH does once it reads our FIN) is still read and delivered, so a
   * message it wrote as we gave up on it is not lost; destroyed after SILENT_CLOSE_GRACE_MS.
   */
  endSilent(code: ZmtpErrorCode, silentMs: number): void {
    if (this.closing || this.ending) return
    this.ending = true
    this.#closeReason = code
    this.#log.warn({ code, silentMs }, 'closing a silent connection')
    const socket = this.#socket
    socket.end()
    setTimeout(() => socket.destroy(), SILENT_CLOSE_GRACE_MS).unref()
  }

  close(): void {
    const socket = this.#socket
    // Whatever the peer still sends is not read: at most the socket's small read buffer
    // (SOCKET_HIGH_WATER_MARK) and one read wait in Node until it is destroyed.
    this.closing = true
    socket.pause()
    socket.end()
    // A peer that never reads must not hold the socket open.
    setTimeout(() => socket.destroy(), 1000).unref()
  }

  // --- ConnectionEvents

  onReady(ready: ReadyPeer): void {
    this.#clearHandshakeTimer()
    if (!this.connection.handshaking) this.#preauth.release()
    this.peer = ready
    // Ready peers are the ones a full relay stops reading.
    if (this.#owner.paused) this.#socket.pause()
    this.#admission?.limits.handshakeSucceeded(this.#admission.host)
    this.#dial?.onReady()
    this.#options.onEvent?.({ type: 'ready', mechanism: ready.mechanism })
    this.#log.info(
      {
        mechanism: ready.mechanism,
        zmtp: `${ready.majorVersion}.${ready.minorVersion}`,
        socketType: ready.socketType,
        ...(ready.publicKey ? { publicKey: z85Encode(ready.publicKey) } : {}),
      },
      'handshake succeeded',
    )
  }

  onMessage(frames: Uint8Array[]): void {
    const replies = this.#options.socketType?.sends === true
    // A request's envelope is kept until its reply: copied out of the read it is a view of.
    const { envelope, body } = replies
      ? splitEnvelope(frames)
      : { envelope: undefined, body: frames }
    const message: InboundMessage = {
      frames: body,
      receivedAt: Date.now(),
      peerAddress: this.#peerAddress,
      mechanism: this.#mechanismName,
    }
    const publicKey = this.peer?.publicKey
    if (publicKey) message.publicKey = publicKey
    if (!envelope) {
      this.#deliver(message)
      return
    }
    let envelopeBytes = 0
    for (const frame of envelope) envelopeBytes += frame.length
    if (envelopeBytes > MAX_ENVELOPE_BYTES || envelope.length > MAX_ENVELOPE_FRAMES) {
      // Kept until the reply: a large one held by many requests would be memory nobody counts.
      this.#reply([], 'ERR ENVELOPE_TOO_LARGE', false)
      return
    }
    const kept = envelope.map((frame) => frame.slice())
    if (body.length === 0) {
      this.#reply(kept, 'ERR EMPTY_MESSAGE', false)
      return
    }
    const key = idempotencyKeyOf(envelope)
    if (key === null) {
      this.#reply(kept, 'ERR IDEMPOTENCY_KEY_INVALID', false)
      return
    }
    if (key !== undefined) message.idempotencyKey = key
    this.#pendingReplies++
    if (this.#pendingReplies >= MAX_PENDING_REPLIES && !this.repliesBlocked) {
      this.repliesBlocked = true
      this.#socket.pause()
    }
    this.#deliver(message, (receipt) => this.#reply(kept, answerOf(receipt), true))
  }

  #deliver(message: InboundMessage, onReceipt?: (receipt: MessageReceipt) => void): void {
    this.#delivered.push(message)
    for (const frame of message.frames) this.#deliveredBytes += frame.length
    this.#options.onMessage(message, onReceipt)
    const waitMs = this.#options.throttle?.(message) ?? 0
    if (waitMs > 0) this.#throttle(waitMs)
  }

  /** Stops reading the peer for `ms` (TCP then pushes back on it); nothing is dropped. */
  #throttle(ms: number): void {
    const until = Date.now() + ms
    if (until <= this.throttledUntil) return
    this.throttledUntil = until
    this.#socket.pause()
    clearTimeout(this.#throttleTimer)
    this.#throttleTimer = setTimeout(() => {
      this.throttledUntil = 0
      this.resumeIfFree()
    }, ms)
    this.#throttleTimer.unref()
  }

  /** Reads the peer again, unless something still holds it. */
  resumeIfFree(): void {
    if (
      this.#owner.paused ||
      this.writeBlocked ||
      this.repliesBlocked ||
      this.closing ||
      this.throttledUntil > Date.now()
    ) {
      return
    }
    this.#socket.resume()
  }

  /** Sends `envelope` and `answer` back to the peer, if it is still there to read it. */
  #reply(envelope: Uint8Array[], answer: string, pending: boolean): void {
    if (pending) {
      this.#pendingReplies--
      if (this.repliesBlocked && this.#pendingReplies <= MAX_PENDING_REPLIES / 2) {
        this.repliesBlocked = false
        this.resumeIfFree()
      }
    }
    this.#options.onEvent?.({
      type: 'replied',
      answer: answer.startsWith('ERR ') ? answer.slice(4) : 'seq',
    })
    if (this.connection.state !== ConnectionState.READY) return
    this.write(this.connection.encodeMessages([[...envelope, ASCII.encode(answer)]]))
  }

  onClose(error?: ZmtpError): void {
    this.#clearHandshakeTimer()
    clearTimeout(this.#throttleTimer)
    this.#preauth.release()
    if (!error) return
    this.#dial?.onFailure(error)
    this.#closeReason = error.code
    if (!this.peer) {
      this.#options.onEvent?.({ type: 'handshake-failed', code: error.code })
      if (this.#admission && !LOCAL_FAILURES.has(error.code)) {
        this.#admission.limits.handshakeFailed(this.#admission.host)
      }
    }
    if (error.code === ZmtpErrorCode.INTERNAL_ERROR) {
      // A bug of ours: at error level, with the stack of what was thrown.
      this.#log.error(
        { code: error.code, err: error.cause instanceof Error ? error.cause : error },
        `connection closed: ${error.message}`,
      )
      return
    }
    if (!this.peer) {
      this.#owner.handshakeFailed(
        error.code,
        this.#peerAddress,
        this.#admission?.host ?? this.#peerAddress,
        error.message,
      )
      return
    }
    this.#log.warn(
      { code: error.code, err: error.message, action: error.action },
      'connection closed by the bridge',
    )
  }

  #clearHandshakeTimer(): void {
    clearTimeout(this.#handshakeTimer)
    this.#handshakeTimer = undefined
  }
}
