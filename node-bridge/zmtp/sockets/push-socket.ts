// A ZeroMQ PUSH socket in TypeScript: connects to tcp:// endpoints (NULL or CURVE client), queues
// up to a high-water mark while no peer is ready, drains the queue in as few TCP writes as
// possible, round-robins messages over ready peers, reconnects like libzmq, and lingers on close.
import { EventEmitter } from 'node:events'
import { connect, type Socket } from 'node:net'
import { type ReadyPeer, ZmtpConnection } from '../connection.ts'
import { parseTcpEndpoint, type TcpEndpoint } from '../endpoint.ts'
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import { CurveClientMechanism } from '../mechanisms/curve-client-mechanism.ts'
import type { Mechanism } from '../mechanisms/mechanism.ts'
import { NullMechanism } from '../mechanisms/null-mechanism.ts'
import { ReconnectBackoff, reconnectsAfter } from '../reconnect.ts'
import {
  type PushSocketOptions,
  parsePushOptions,
  type ResolvedPushOptions,
} from './push-options.ts'
import { PUSH, type SocketType } from './socket-type.ts'

export type { PushSocketOptions } from './push-options.ts'

/** A message: one frame (bytes or UTF-8 text) or several (a multipart message). */
export type OutgoingMessage = Uint8Array | string | ReadonlyArray<Uint8Array | string>

/** Where an endpoint stands. */
export const EndpointState = {
  /** TCP connect in progress. */
  CONNECTING: 'connecting',
  /** Connected; greeting and security handshake in progress. */
  HANDSHAKING: 'handshaking',
  /** Handshake done: messages flow. */
  READY: 'ready',
  /** Disconnected; a reconnect is scheduled. */
  WAITING: 'waiting',
  /** The server refused us (ERROR, or a protocol error): no more reconnects, as libzmq. */
  FAILED: 'failed',
  /** Disconnected by `disconnect()` or `close()`. */
  CLOSED: 'closed',
} as const
export type EndpointState = (typeof EndpointState)[keyof typeof EndpointState]

/** What `endpoints()` reports for one endpoint. */
export interface EndpointStatus {
  endpoint: string
  state: EndpointState
  /** TCP connections made so far (1 + reconnects that reached TCP). */
  connections: number
  /** Handshakes completed. */
  handshakes: number
  /** Why it failed for good, or why its last connection ended. */
  lastError?: ZmtpError
}

/** Counters since the socket was made. */
export interface PushSocketStats {
  /** Messages waiting in the queue (not yet handed to a connection). */
  queued: number
  /** Messages the kernel accepted on some connection. */
  sent: number
  /** Messages whose write failed because their connection broke (ZeroMQ does not resend). */
  dropped: number
  /** TCP writes of messages (each one buffer, possibly many messages). */
  messageWrites: number
  /** Octets of messages written, framing and CURVE boxes included. */
  messageBytes: number
}

/** Events, each with the endpoint as written. */
export interface PushSocketEvents {
  /** A handshake completed; messages flow to this peer. */
  ready: [endpoint: string, peer: ReadyPeer]
  /** A connection ended; `error` when it ended for a protocol reason or a timeout. */
  disconnect: [endpoint: string, error: ZmtpError | undefined]
  /** A reconnect is scheduled in `delayMs`. */
  retry: [endpoint: string, delayMs: number]
  /** The endpoint gave up for good (the server sent ERROR, or broke the protocol). */
  failed: [endpoint: string, error: ZmtpError]
}

/** Thrown by `send()`/`trySend()` after `close()`, and by pending `send()`s that close drops. */
export class SocketClosedError extends Error {
  override readonly name = 'SocketClosedError'
  readonly code = 'SOCKET_CLOSED'
}

/**
 * Largest frame read from a peer: a PULL sends commands only (RFC 30), a ROUTER's replies are an
 * envelope and a short answer.
 */
const MAX_FRAME_FROM_PEER = 64 * 1024

const textEncoder = new TextEncoder()

interface Endpoint {
  address: TcpEndpoint
  state: EndpointState
  socket?: Socket
  connection?: ZmtpConnection
  /** The error that ended the current connection, if the connection layer saw one. */
  closeError?: ZmtpError
  lastError?: ZmtpError
  backoff: ReconnectBackoff
  reconnectTimer?: NodeJS.Timeout
  handshakeTimer?: NodeJS.Timeout
  heartbeatTimer?: NodeJS.Timeout
  lastActivity: number
  /** When the oldest PING nothing has answered since was sent (0: none). */
  pingSentAt: number
  /** Messages written to this connection whose write has not completed. */
  pending: number
  connections: number
  handshakes: number
}

interface Waiter {
  frames: Uint8Array[]
  resolve: () => void
  reject: (error: Error) => void
}

function toFrames(message: OutgoingMessage): Uint8Array[] {
  const parts = typeof message === 'string' || message instanceof Uint8Array ? [message] : message
  if (parts.length === 0) throw new RangeError('a message has at least one frame')
  return parts.map((part) => (typeof part === 'string' ? textEncoder.encode(part) : part))
}

function messageSize(frames: readonly Uint8Array[]): number {
  let size = 0
  for (const frame of frames) size += frame.length + 9
  return size
}

/**
 * What a sending socket is: ZMTP 3.1 over TCP with the NULL or CURVE client mechanism, a queue
 * up to a high-water mark, round robin over ready peers, reconnects like libzmq, linger on close.
 * {@link PushSocket} is it as is; the request sockets (./dealer-socket.ts) add the replies.
 */
export abstract class SendingSocket extends EventEmitter<PushSocketEvents> {
  readonly #options: ResolvedPushOptions
  readonly #endpoints = new Map<string, Endpoint>()
  readonly #ready: Endpoint[] = []
  #queue: Uint8Array[][] = []
  #queueHead = 0
  readonly #waiters: Waiter[] = []
  #roundRobin = 0
  #flushScheduled: NodeJS.Immediate | undefined
  #closed = false
  readonly #watchers = new Set<() => void>()
  readonly #stats = { sent: 0, dropped: 0, messageWrites: 0, messageBytes: 0 }

  /**
   * @throws {RangeError} on an invalid option; {@link KeyFormatError} on a CURVE key in no known format
   */
  constructor(options: PushSocketOptions = {}) {
    super()
    this.#options = parsePushOptions(options)
  }

  /** Our CURVE public key C (what a server's allow-list names), or undefined with NULL. */
  get curvePublicKey(): Uint8Array | undefined {
    return this.#options.curve?.publicKey.slice()
  }

  /** Peers with a completed handshake. */
  get readyPeers(): number {
    return this.#ready.length
  }

  /** Counters, and the number of queued messages. */
  get stats(): PushSocketStats {
    return { queued: this.#queueLength, ...this.#stats }
  }

  /** Every endpoint and where it stands. */
  endpoints(): EndpointStatus[] {
    return [...this.#endpoints.values()].map((entry) => ({
      endpoint: entry.address.endpoint,
      state: entry.state,
      connections: entry.connections,
      handshakes: entry.handshakes,
      ...(entry.lastError ? { lastError: entry.lastError } : {}),
    }))
  }

  /**
   * Starts connecting to `tcp://HOST:PORT` (at once; later attempts follow the reconnect policy).
   * Connecting twice to the same endpoint is a no-op.
   * @throws {RangeError} on a malformed endpoint; {@link SocketClosedError} after close
   */
  connect(endpoint: string): void {
    if (this.#closed) throw new SocketClosedError('the socket is closed')
    const address = parseTcpEndpoint(endpoint)
    if (this.#endpoints.has(address.endpoint)) return
    const entry: Endpoint = {
      address,
      state: EndpointState.CONNECTING,
      backoff: new ReconnectBackoff(this.#options),
      lastActivity: 0,
      pingSentAt: 0,
      pending: 0,
      connections: 0,
      handshakes: 0,
    }
    this.#endpoints.set(address.endpoint, entry)
    this.#open(entry)
  }

  /** Stops using an endpoint: closes its connection, cancels its reconnects. */
  disconnect(endpoint: string): void {
    const entry = this.#endpoints.get(parseTcpEndpoint(endpoint).endpoint)
    if (!entry) return
    this.#endpoints.delete(entry.address.endpoint)
    this.#shut(entry, true)
  }

  /**
   * Queues a message if the queue is below the high-water mark (NetMQ `TrySendFrame`).
   * @returns false when the queue is full (nothing is queued)
   * @throws {SocketClosedError} after close; {@link RangeError} on an empty multipart message
   */
  trySend(message: OutgoingMessage): boolean {
    if (this.#closed) throw new SocketClosedError('the socket is closed')
    const frames = toFrames(message)
    if (this.#waiters.length > 0 || this.#queueLength >= this.#options.sendHighWaterMark) {
      return false
    }
    this.#enqueue(frames)
    return true
  }

  /**
   * Queues a message, waiting for room below the high-water mark first (libzmq's blocking send).
   * Resolves once queued, not once delivered; `close()` says what was delivered.
   * @throws {SocketClosedError} after close, or if close drops it while it waits
   */
  protected queueMessage(message: OutgoingMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new SocketClosedError('the socket is closed'))
    let frames: Uint8Array[]
    try {
      frames = toFrames(message)
    } catch (error) {
      return Promise.reject(error)
    }
    if (this.#waiters.length === 0 && this.#queueLength < this.#options.sendHighWaterMark) {
      this.#enqueue(frames)
      return Promise.resolve()
    }
    return new Promise((resolve, reject) => this.#waiters.push({ frames, resolve, reject }))
  }

  /**
   * Stops sending: waits up to `linger` ms (default the socket's) until every queued message
   * has been handed to a peer's TCP connection, then closes every connection.
   * Stops waiting early when every endpoint has failed for good (nothing can be delivered).
   * @returns how many messages were not handed to a peer (queued, waiting, or unwritten)
   */
  async close(options: { linger?: number } = {}): Promise<{ unsent: number }> {
    if (this.#closed) return { unsent: 0 }
    const linger = options.linger ?? this.#options.linger
    this.#closed = true
    if (linger !== 0) {
      await this.#until(() => this.#unsent() === 0 || this.#allFailed(), linger)
    }
    const unsent = this.#unsent()
    const error = new SocketClosedError('the socket closed before the message was queued')
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error)
    this.#queue = []
    this.#queueHead = 0
    if (this.#flushScheduled) clearImmediate(this.#flushScheduled)
    const closing = [...this.#endpoints.values()].map((entry) => this.#shut(entry, unsent === 0))
    this.#endpoints.clear()
    await Promise.all(closing)
    return { unsent }
  }

  get #queueLength(): number {
    return this.#queue.length - this.#queueHead
  }

  #unsent(): number {
    let pending = 0
    for (const entry of this.#endpoints.values()) pending += entry.pending
    return this.#queueLength + this.#waiters.length + pending
  }

  #allFailed(): boolean {
    if (this.#endpoints.size === 0) return false
    for (const entry of this.#endpoints.values()) {
      if (entry.state !== EndpointState.FAILED) return false
    }
    return true
  }

  /** Resolves when `done()` holds or after `timeoutMs` (-1: never times out). */
  #until(done: () => boolean, timeoutMs: number): Promise<void> {
    if (done()) return Promise.resolve()
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const watcher = () => {
        if (!done()) return
        finish()
      }
      const finish = () => {
        clearTimeout(timer)
        this.#watchers.delete(watcher)
        resolve()
      }
      this.#watchers.add(watcher)
      if (timeoutMs > 0) timer = setTimeout(finish, timeoutMs)
    })
  }

  #notify(): void {
    for (const watcher of [...this.#watchers]) watcher()
  }

  #enqueue(frames: Uint8Array[]): void {
    this.#queue.push(frames)
    this.#scheduleFlush()
  }

  /**
   * Flushes on the next turn of the event loop, so that messages sent in one go (a loop of
   * `await send()` included) leave in one write.
   */
  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#ready.length === 0) return
    this.#flushScheduled = setImmediate(() => {
      this.#flushScheduled = undefined
      this.#flush()
    })
  }

  /** Hands queued messages to ready peers, round-robin, one buffer per peer per write. */
  #flush(): void {
    const writable = this.#ready.filter((entry) => !entry.socket?.writableNeedDrain)
    const batches = new Map<Endpoint, { messages: Uint8Array[][]; bytes: number }>()
    while (this.#queueLength > 0 && writable.length > 0) {
      const index = this.#roundRobin++ % writable.length
      const entry = writable[index] as Endpoint
      const frames = this.#queue[this.#queueHead] as Uint8Array[]
      this.#queue[this.#queueHead++] = []
      let batch = batches.get(entry)
      if (!batch) {
        batch = { messages: [], bytes: 0 }
        batches.set(entry, batch)
      }
      batch.messages.push(frames)
      batch.bytes += messageSize(frames)
      if (batch.bytes >= this.#options.maxWriteBytes) {
        batches.delete(entry)
        if (!this.#write(entry, batch.messages)) writable.splice(index, 1)
      }
      if (this.#queueLength === 0) this.#admitWaiters()
    }
    for (const [entry, batch] of batches) this.#write(entry, batch.messages)
    // Compact the queue once its consumed head dominates it.
    if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#queueHead)
      this.#queueHead = 0
    }
    this.#admitWaiters()
    if (this.#queueLength > 0 && writable.length > 0) this.#scheduleFlush()
    this.#notify()
  }

  /** Moves waiting `send()`s into the queue while it is below the high-water mark. */
  #admitWaiters(): void {
    while (this.#waiters.length > 0 && this.#queueLength < this.#options.sendHighWaterMark) {
      const waiter = this.#waiters.shift() as Waiter
      this.#queue.push(waiter.frames)
      waiter.resolve()
    }
  }

  /** One TCP write of whole messages; returns false when the socket asks us to wait for drain. */
  #write(entry: Endpoint, messages: Uint8Array[][]): boolean {
    const { socket, connection } = entry
    if (!socket || !connection) {
      // Cannot happen for a ready entry; put them back rather than lose them.
      this.#queue.splice(this.#queueHead, 0, ...messages)
      return false
    }
    const bytes = connection.encodeMessages(messages)
    const count = messages.length
    entry.pending += count
    this.#stats.messageWrites++
    this.#stats.messageBytes += bytes.length
    return socket.write(bytes, (error) => {
      entry.pending -= count
      if (error) this.#stats.dropped += count
      else this.#stats.sent += count
      this.#notify()
    })
  }

  /**
   * The socket type on the wire: PUSH here; a DEALER or REQ (./dealer-socket.ts) sends the same
   * way and also reads its peers' replies.
   */
  protected socketType(): SocketType {
    return PUSH
  }

  /** A whole message from a peer (none for PUSH: a PULL sends nothing, RFC 30). */
  protected onPeerMessage(_frames: Uint8Array[]): void {}

  #mechanism(): Mechanism {
    const { curve, crypto } = this.#options
    const socketType = this.socketType().name
    if (!curve) return new NullMechanism(socketType, { dialled: true })
    return new CurveClientMechanism({
      serverPublicKey: curve.serverKey,
      keyPair: { publicKey: curve.publicKey, secretKey: curve.secretKey },
      socketType,
      crypto,
    })
  }

  /** Opens a TCP connection to the endpoint and runs ZMTP on it. */
  #open(entry: Endpoint): void {
    entry.state = EndpointState.CONNECTING
    entry.closeError = undefined
    const socket = connect({ host: entry.address.host, port: entry.address.port, noDelay: true })
    entry.socket = socket
    const connection = new ZmtpConnection(
      {
        write: (bytes) => {
          socket.write(bytes)
        },
        // A PULL that PINGs and never reads gets no PONGs queued for it (RFC 37 asks for one each).
        get backedUp() {
          return socket.writableNeedDrain
        },
        close: () => {
          socket.destroy()
        },
      },
      {
        onActivity: () => {
          entry.lastActivity = Date.now()
        },
        onReady: (peer) => this.#onReady(entry, peer),
        onMessage: (frames) => this.onPeerMessage(frames),
        onClose: (error) => {
          if (error) entry.closeError = error
        },
      },
      {
        mechanism: this.#mechanism(),
        socketType: this.socketType(),
        maxMessageSize: MAX_FRAME_FROM_PEER,
      },
    )
    entry.connection = connection
    socket.on('connect', () => {
      entry.connections++
      entry.state = EndpointState.HANDSHAKING
      entry.lastActivity = Date.now()
      const { handshakeIvl } = this.#options
      if (handshakeIvl > 0) {
        entry.handshakeTimer = setTimeout(() => {
          connection.fail(
            new ZmtpError(ZmtpErrorCode.HANDSHAKE_TIMEOUT, `no handshake in ${handshakeIvl} ms`),
          )
        }, handshakeIvl)
        entry.handshakeTimer.unref()
      }
      connection.start()
    })
    socket.on('data', (chunk: Buffer) => {
      connection.receive(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    })
    socket.on('drain', () => this.#scheduleFlush())
    // ECONNREFUSED, ECONNRESET, EPIPE…: all end in 'close', where the reconnect is decided.
    socket.on('error', () => undefined)
    socket.on('close', () => {
      connection.transportClosed()
      this.#onClosed(entry, socket)
    })
  }

  #onReady(entry: Endpoint, peer: ReadyPeer): void {
    clearTimeout(entry.handshakeTimer)
    entry.state = EndpointState.READY
    entry.handshakes++
    // A completed handshake ends the backoff (the next failure starts again at reconnectIvl).
    entry.backoff.reset()
    entry.pingSentAt = 0
    this.#ready.push(entry)
    this.#startHeartbeat(entry)
    this.emit('ready', entry.address.endpoint, peer)
    this.#scheduleFlush()
    this.#notify()
  }

  /** RFC 37 heartbeats: our PINGs (when configured) and the server's TTL. */
  #startHeartbeat(entry: Endpoint): void {
    const { heartbeatIvl, heartbeatTimeout, heartbeatTtl } = this.#options
    const tick = heartbeatIvl > 0 ? Math.max(10, Math.min(heartbeatIvl, heartbeatTimeout) / 4) : 250
    entry.heartbeatTimer = setInterval(() => {
      const connection = entry.connection
      if (!connection) return
      const now = Date.now()
      if (entry.pingSentAt > 0 && entry.lastActivity >= entry.pingSentAt) entry.pingSentAt = 0
      const silent = now - entry.lastActivity
      const ttl = connection.peerTtlMs
      if (
        (entry.pingSentAt > 0 &&
          heartbeatTimeout > 0 &&
          now - entry.pingSentAt >= heartbeatTimeout) ||
        (ttl > 0 && silent > ttl)
      ) {
        connection.fail(
          new ZmtpError(
            ZmtpErrorCode.HEARTBEAT_TIMEOUT,
            `no traffic from the server for ${silent} ms`,
          ),
        )
        return
      }
      if (
        heartbeatIvl > 0 &&
        now - Math.max(entry.pingSentAt, entry.lastActivity) >= heartbeatIvl
      ) {
        if (entry.pingSentAt === 0) entry.pingSentAt = now
        connection.sendPing(Math.round(heartbeatTtl / 100))
      }
    }, tick)
    entry.heartbeatTimer.unref()
  }

  #onClosed(entry: Endpoint, socket: Socket): void {
    if (entry.socket !== socket) return
    clearTimeout(entry.handshakeTimer)
    clearInterval(entry.heartbeatTimer)
    entry.socket = undefined
    entry.connection = undefined
    const readyIndex = this.#ready.indexOf(entry)
    if (readyIndex >= 0) this.#ready.splice(readyIndex, 1)
    const error = entry.closeError
    if (error) entry.lastError = error
    const wasConnected =
      entry.state === EndpointState.READY || entry.state === EndpointState.HANDSHAKING
    if (wasConnected) this.emit('disconnect', entry.address.endpoint, error)
    if (entry.state === EndpointState.CLOSED || !this.#endpoints.has(entry.address.endpoint)) {
      entry.state = EndpointState.CLOSED
    } else if (error && !reconnectsAfter(error)) {
      // libzmq: a protocol error or the server's ERROR ends the session; no reconnect.
      entry.state = EndpointState.FAILED
      this.emit('failed', entry.address.endpoint, error)
    } else if (this.#options.reconnectIvl < 0) {
      entry.state = EndpointState.CLOSED
    } else {
      const delay = entry.backoff.next()
      entry.state = EndpointState.WAITING
      entry.reconnectTimer = setTimeout(() => {
        entry.reconnectTimer = undefined
        if (entry.state === EndpointState.WAITING) this.#open(entry)
      }, delay)
      this.emit('retry', entry.address.endpoint, delay)
    }
    this.#notify()
  }

  /** Closes an endpoint's connection (gracefully when `graceful`); resolves once it is closed. */
  #shut(entry: Endpoint, graceful: boolean): Promise<void> {
    entry.state = EndpointState.CLOSED
    clearTimeout(entry.reconnectTimer)
    clearTimeout(entry.handshakeTimer)
    clearInterval(entry.heartbeatTimer)
    const socket = entry.socket
    if (!socket || socket.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      socket.once('close', () => resolve())
      if (!graceful) {
        socket.destroy()
        return
      }
      // FIN after our last octets; the server closes its side when it has read them.
      socket.end()
      setTimeout(() => socket.destroy(), 1000).unref()
    })
  }
}

/**
 * A ZeroMQ PUSH socket (RFC 30) speaking ZMTP 3.1 over TCP, with the NULL or CURVE client
 * mechanism.
 *
 * Queueing differs from libzmq in one way: the queue belongs to the socket, not to each
 * endpoint, so a message waits for whichever peer is ready first instead of being parked on an
 * endpoint that is down (libzmq with ZMQ_IMMEDIATE=0 parks it). Message buffers are queued as
 * they are: do not change them after `send()`.
 */
export class PushSocket extends SendingSocket {
  /**
   * Queues a message, waiting for room below the high-water mark first (libzmq's blocking send).
   * Resolves once queued, not once delivered; `close()` says what was delivered.
   * @throws {SocketClosedError} after close, or if close drops it while it waits
   */
  send(message: OutgoingMessage): Promise<void> {
    return this.queueMessage(message)
  }
}
