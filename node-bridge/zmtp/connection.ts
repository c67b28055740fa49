// One ZMTP 3.x connection, either end, as an explicit state machine over a byte transport:
// greeting → security handshake → socket-type check → messages. Which end is the mechanism's
// business (NULL dialled or not, CURVE client or server); what flows after the handshake is the
// socket type's (./sockets/socket-type.ts). No sockets or timers here.
import {
  decodeCommand,
  decodeErrorReason,
  decodePing,
  encodeCommandBody,
  encodeError,
  encodePongBody,
  PING_CONTEXT_MAX,
} from './codec/command.ts'
import { type Frame, FrameDecoder } from './codec/frame-decoder.ts'
import {
  classifyGreetingPrefix,
  decodeGreeting,
  encodeGreetingRest,
  encodeGreetingStart,
  GREETING_SIZE,
  SIGNATURE_SIZE,
} from './codec/greeting.ts'
import { ZmtpError, ZmtpErrorCode } from './errors.ts'
import type { HandshakeStep, Mechanism, PeerIdentity } from './mechanisms/mechanism.ts'
import {
  type SocketType,
  socketTypeOfZmtp2Code,
  ZMTP2_SOCKET_TYPE_CODES,
} from './sockets/socket-type.ts'

/** Where a connection writes; the socket layer adapts a TCP socket (or a test pipe) to it. */
export interface ConnectionTransport {
  write(bytes: Uint8Array): void
  /** True while earlier writes wait for the peer to read them (optional; false if absent). */
  readonly backedUp?: boolean
  /** Ends the connection after pending writes are flushed. */
  close(): void
}

/** What the connection learned about its peer when the handshake succeeded. */
export interface ReadyPeer extends PeerIdentity {
  mechanism: string
  /** 3, or 2 for a ZMTP 2.0 peer. */
  majorVersion: number
  minorVersion: number
  socketType: string
}

export interface ConnectionEvents {
  onReady?(peer: ReadyPeer): void
  /**
   * A whole multipart message, for socket types that receive; frame bodies may be views into
   * received chunks.
   */
  onMessage?(frames: Uint8Array[]): void
  /** Any traffic from the peer (RFC 37: every octet is a sign of life). */
  onActivity?(): void
  /** Called once, when the connection closes; `error` says why when it was not a clean end. */
  onClose?(error?: ZmtpError): void
}

export interface ConnectionOptions {
  mechanism: Mechanism
  /** Our socket type: its name, its peers, whether it receives or sends. */
  socketType: SocketType
  /**
   * Largest message received, all frames together, in octets (for a socket type that only
   * sends, the largest frame it reads: commands, or messages it drops).
   */
  maxMessageSize: number
  /** Accept ZMTP 2.0 peers (RFC 15); NULL only. Default false. */
  allowZmtp2?: boolean
  /** Most frames in one message (each costs memory beyond its octets); default unlimited. */
  maxFramesPerMessage?: number
}

export const ConnectionState = {
  GREETING: 'greeting',
  HANDSHAKE: 'handshake',
  READY: 'ready',
  CLOSED: 'closed',
} as const
export type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState]

const GREETING_START_SIZE = 11
/** RFC 15: signature (10), revision, socket type; the identity follows as a frame. */
const ZMTP2_GREETING_SIZE = 12
/**
 * Largest frame a peer may send before its handshake is done, in octets. The handshake needs
 * little: a NULL READY is 6 octets plus metadata (RFC 23), a CURVE HELLO exactly 200 and an
 * INITIATE 257 plus boxed metadata (RFC 26), and metadata is capped at METADATA_TOTAL_LIMIT
 * (4 KiB). An unauthenticated peer that announces more is refused from the frame header, before
 * any of its body is buffered; the message limit applies only once the connection is READY.
 */
export const MAX_HANDSHAKE_FRAME_SIZE = 8 * 1024
/**
 * Smallest frame limit after the handshake, whatever maxMessageSize says: room for the commands
 * a peer may still send (PING with its context, RFC 37).
 */
const MIN_FRAME_LIMIT = 1024

const NO_GREETING = new Uint8Array(0)
/** What each frame of a message under way costs beyond its octets (its view object), roughly. */
const PART_OVERHEAD = 64
const NO_BYTES = new Uint8Array(0)

/** A handler of the owner's threw: whatever it threw, that is our fault, not the peer's. */
function handlerFailed(name: string, cause: unknown): ZmtpError {
  return new ZmtpError(ZmtpErrorCode.INTERNAL_ERROR, `the ${name} handler failed`, { cause })
}

export class ZmtpConnection {
  readonly #transport: ConnectionTransport
  readonly #events: ConnectionEvents
  readonly #options: ConnectionOptions
  readonly #decoder: FrameDecoder
  #state: ConnectionState = ConnectionState.GREETING
  #greeting = new Uint8Array(GREETING_SIZE)
  #greetingLength = 0
  /** Greeting octets needed before the next decision: 11 (signature + version), then 64 or 12. */
  #greetingNeed = GREETING_START_SIZE
  #zmtp2 = false
  #skipIdentityFrame = false
  #majorVersion = 3
  #minorVersion = 0
  #peerTtlMs = 0
  #parts: Uint8Array[] = []
  #partsSize = 0
  #maxMessageSize: number
  #droppedMessages = 0

  constructor(
    transport: ConnectionTransport,
    events: ConnectionEvents,
    options: ConnectionOptions,
  ) {
    this.#transport = transport
    this.#events = events
    this.#options = options
    this.#maxMessageSize = options.maxMessageSize
    // Until the handshake is done, only what the handshake needs; the message limit after it.
    this.#decoder = new FrameDecoder({ maxFrameSize: this.#handshakeFrameLimit() })
  }

  /**
   * Before READY: what the handshake needs. Not tied to the message limit: handshake frames
   * are commands, not messages, and a channel's small limit must not refuse a READY's metadata.
   */
  #handshakeFrameLimit(): number {
    return MAX_HANDSHAKE_FRAME_SIZE
  }

  /**
   * The largest wire frame once READY: a whole message plus the mechanism's wrapping, no more.
   * Anything larger is refused from its header, before any of its body is buffered.
   */
  #messageFrameLimit(): number {
    return Math.max(this.#maxMessageSize + this.#options.mechanism.frameOverhead, MIN_FRAME_LIMIT)
  }

  /** True while frames are still handshake frames (a ZMTP 2.0 identity frame counts as one). */
  #inHandshake(): boolean {
    return this.#state === ConnectionState.HANDSHAKE || this.#skipIdentityFrame
  }

  get state(): ConnectionState {
    return this.#state
  }

  /** True until the peer is authenticated and its handshake frames are all read. */
  get handshaking(): boolean {
    return this.#state === ConnectionState.GREETING || this.#inHandshake()
  }

  /**
   * Octets this connection holds for a peer that has not finished its handshake: the greeting
   * buffer until the greeting is read, then the decoder's partial frame. 0 once READY: what a
   * ready connection holds is bounded by the message limit instead.
   */
  get preauthBytes(): number {
    if (this.#state === ConnectionState.GREETING) return this.#greeting.length
    return this.#inHandshake() ? this.#decoder.retainedBytes : 0
  }

  /**
   * Octets a ready connection holds for a message not yet whole: the frames received so far (and
   * a little for each) and the decoder's partial frame. 0 before READY (see preauthBytes).
   */
  get partialMessageBytes(): number {
    if (this.#state !== ConnectionState.READY || this.#skipIdentityFrame) return 0
    return this.#decoder.retainedBytes + this.#partsSize + PART_OVERHEAD * this.#parts.length
  }

  /**
   * RFC 37: the TTL of the peer's last PING, in ms (0: none). With no traffic from the peer for
   * that long, it may be considered dead.
   */
  get peerTtlMs(): number {
    return this.#peerTtlMs
  }

  /**
   * Messages the peer sent that were not delivered: to a socket type that does not receive
   * (RFC 30: a PULL sends none), or that it does not admit (a SUB's subscriptions).
   */
  get droppedMessages(): number {
    return this.#droppedMessages
  }

  /**
   * Changes the largest message, all frames together, from the next frame on (a message under
   * way is checked against the new limit when its next frame arrives). Past the limit the
   * connection closes with FRAME_TOO_LARGE, as libzmq does past ZMQ_MAXMSGSIZE
   * (src/v2_decoder.cpp).
   * @throws {RangeError} if `octets` is not a positive safe integer
   */
  setMaxMessageSize(octets: number): void {
    if (!Number.isSafeInteger(octets) || octets <= 0) {
      throw new RangeError(`the message limit must be a positive whole number, got ${octets}`)
    }
    this.#maxMessageSize = octets
    // The greeting counts as handshake: its limit must stay until READY.
    this.#decoder.maxFrameSize = this.handshaking
      ? this.#handshakeFrameLimit()
      : this.#messageFrameLimit()
  }

  /**
   * Sends a heartbeat PING (RFC 37) with our TTL and a context (at most 16 octets are sent),
   * boxed by the mechanism; only once the handshake is done.
   */
  sendPing(ttlDeciseconds = 0, context: Uint8Array = NO_BYTES): void {
    if (this.#state !== ConnectionState.READY) return
    const data = new Uint8Array(2 + Math.min(context.length, PING_CONTEXT_MAX))
    data[0] = (ttlDeciseconds >> 8) & 0xff
    data[1] = ttlDeciseconds & 0xff
    data.set(context.subarray(0, PING_CONTEXT_MAX), 2)
    this.#transport.write(this.#encodeCommand(encodeCommandBody('PING', data)))
  }

  /**
   * Encodes whole messages into one buffer, ready for one TCP write (the bundling libzmq does:
   * queued messages leave in one segment). Only for a socket type that sends, once READY.
   * @throws {ZmtpError} UNEXPECTED_COMMAND before READY or for a socket type that does not send
   */
  encodeMessages(messages: ReadonlyArray<readonly Uint8Array[]>): Uint8Array {
    if (this.#state !== ConnectionState.READY || !this.#options.socketType.sends) {
      throw new ZmtpError(
        ZmtpErrorCode.UNEXPECTED_COMMAND,
        this.#options.socketType.sends
          ? 'cannot send before the handshake'
          : `a ${this.#options.socketType.name} socket does not send messages`,
      )
    }
    return this.#encodeFrames(messages)
  }

  #encodeFrames(messages: ReadonlyArray<readonly Uint8Array[]>): Uint8Array {
    const mechanism = this.#options.mechanism
    let size = 0
    for (const frames of messages) {
      for (const frame of frames) size += mechanism.encodedSize(frame.length)
    }
    const out = new Uint8Array(size)
    let offset = 0
    for (const frames of messages) {
      const last = frames.length - 1
      for (let index = 0; index <= last; index++) {
        offset = mechanism.writeFrame(out, offset, frames[index] as Uint8Array, {
          more: index < last,
        })
      }
    }
    return out
  }

  /**
   * Sends a command (RFC 23 §Commands: SUBSCRIBE, RFC 29), boxed by the mechanism; only once
   * the handshake is done, and never to a ZMTP 2.0 peer, which has no commands (RFC 15).
   * @throws {ZmtpError} UNEXPECTED_COMMAND before READY or to a ZMTP 2.0 peer
   */
  sendCommand(name: string, data: Uint8Array): void {
    if (this.#state !== ConnectionState.READY || this.#zmtp2) {
      throw new ZmtpError(
        ZmtpErrorCode.UNEXPECTED_COMMAND,
        this.#zmtp2 ? 'a ZMTP 2.0 peer has no commands' : 'cannot send before the handshake',
      )
    }
    this.#transport.write(this.#encodeCommand(encodeCommandBody(name, data)))
  }

  /**
   * Sends one message the socket type itself makes, whether or not it sends application
   * messages: a SUB's subscription to a peer before ZMTP 3.1 (RFC 29). Only once READY.
   * @throws {ZmtpError} UNEXPECTED_COMMAND before READY
   */
  sendControlMessage(frames: readonly Uint8Array[]): void {
    if (this.#state !== ConnectionState.READY) {
      throw new ZmtpError(ZmtpErrorCode.UNEXPECTED_COMMAND, 'cannot send before the handshake')
    }
    this.#transport.write(this.#encodeFrames([frames]))
  }

  /** A command frame (PING, PONG), boxed by the mechanism. */
  #encodeCommand(body: Uint8Array): Uint8Array {
    const out = new Uint8Array(this.#options.mechanism.encodedSize(body.length))
    this.#options.mechanism.writeFrame(out, 0, body, { command: true })
    return out
  }

  /** Starts the greeting: signature and major version now, the rest once the peer's arrive. */
  start(): void {
    this.#transport.write(encodeGreetingStart())
  }

  /**
   * Feeds received bytes. Any protocol violation closes the connection (see `onClose`).
   * The connection takes `chunk` over: messages are views of it, and CURVE opens boxes in place.
   */
  receive(chunk: Uint8Array): void {
    if (this.#state === ConnectionState.CLOSED) return
    this.#events.onActivity?.()
    try {
      let rest = chunk
      if (this.#state === ConnectionState.GREETING) {
        rest = this.#readGreeting(chunk)
        if (this.#state === ConnectionState.GREETING) return
      }
      while (rest.length > 0) {
        // During the handshake one frame at a time: its end raises the frame limit, and the
        // frames after it in the same read must be sized against the new one.
        const handshake = this.#inHandshake()
        const frames = this.#decoder.push(rest, handshake ? 1 : Number.POSITIVE_INFINITY)
        rest = handshake ? rest.subarray(this.#decoder.consumed) : NO_BYTES
        for (const frame of frames) {
          this.#onFrame(frame)
          // A frame can end the connection (a failed handshake, a peer ERROR).
          if (this.#isClosed()) return
        }
        // Frames before a violation in the same chunk were delivered; now close for it.
        if (this.#decoder.error) throw this.#decoder.error
      }
    } catch (error) {
      // The codec and the mechanisms throw ZmtpError for whatever the peer sends; anything else
      // is a bug of ours, and must not be blamed on the peer.
      this.fail(
        error instanceof ZmtpError
          ? error
          : new ZmtpError(ZmtpErrorCode.INTERNAL_ERROR, 'unexpected failure', { cause: error }),
      )
    }
  }

  #isClosed(): boolean {
    return this.#state === ConnectionState.CLOSED
  }

  /**
   * Closes the connection because of `error`: with an ERROR command first when its action says
   * so and the mechanism lets this end send one.
   */
  fail(error: ZmtpError): void {
    if (this.#state === ConnectionState.CLOSED) return
    if (error.action === 'error' && this.#options.mechanism.sendsErrors) {
      this.#transport.write(encodeError(error.reason ?? error.code))
    }
    this.#closeWith(error)
  }

  /** The transport ended (peer closed, or the socket layer closed it). */
  transportClosed(): void {
    if (this.#state === ConnectionState.CLOSED) return
    this.#state = ConnectionState.CLOSED
    this.#events.onClose?.()
  }

  #closeWith(error: ZmtpError): void {
    this.#state = ConnectionState.CLOSED
    // What the peer sent of a frame or a message is not kept while the socket winds down.
    this.#decoder.release()
    this.#parts = []
    this.#partsSize = 0
    this.#transport.close()
    this.#events.onClose?.(error)
  }

  /** Reads greeting octets; returns what follows the greeting in `chunk`. */
  #readGreeting(chunk: Uint8Array): Uint8Array {
    let offset = 0
    while (offset < chunk.length && this.#state === ConnectionState.GREETING) {
      const take = Math.min(this.#greetingNeed - this.#greetingLength, chunk.length - offset)
      this.#greeting.set(chunk.subarray(offset, offset + take), this.#greetingLength)
      this.#greetingLength += take
      offset += take
      if (this.#greetingNeed === GREETING_START_SIZE) this.#classifyGreeting()
      if (this.#greetingLength === this.#greetingNeed && this.#greetingNeed > GREETING_START_SIZE) {
        if (this.#zmtp2) this.#finishZmtp2Greeting()
        else this.#finishGreeting()
      }
    }
    // Read and decoded: its 64 octets need not stay with every idle connection.
    if (this.#state !== ConnectionState.GREETING) this.#greeting = NO_GREETING
    return chunk.subarray(offset)
  }

  /** Decides, from the signature and the version octet, which protocol the peer speaks. */
  #classifyGreeting(): void {
    const prefix = this.#greeting.subarray(0, this.#greetingLength)
    const kind = classifyGreetingPrefix(prefix)
    if (kind === 'need-more') return
    if (kind === 'zmtp3') {
      this.#greetingNeed = GREETING_SIZE
      const { name, asServer } = this.#options.mechanism
      this.#transport.write(encodeGreetingRest({ minor: 1, mechanism: name, asServer }))
      return
    }
    // RFC 15 (ZMTP 2.0): a full signature, then revision 1. Only on NULL listeners that allow
    // it: RFC 23 makes every other mechanism close on a 1.0/2.0 peer (the downgrade guard).
    // 'legacy' also means not ZMTP at all (classified from octet 0 or 9 alone): octet 10 only
    // counts after a real signature, or the same bytes would be refused or accepted depending on
    // how they were split.
    const revision = prefix[GREETING_START_SIZE - 1]
    const zmtp2 =
      this.#options.allowZmtp2 === true &&
      this.#options.mechanism.name === 'NULL' &&
      prefix.length >= GREETING_START_SIZE &&
      prefix[0] === 0xff &&
      ((prefix[SIGNATURE_SIZE - 1] ?? 0) & 1) === 1 &&
      (revision === 1 || revision === 2)
    if (!zmtp2) {
      // ZMTP 1.0 has no socket type at all, so a stray HTTP request would turn into messages.
      throw new ZmtpError(ZmtpErrorCode.UNSUPPORTED_VERSION, 'peer does not speak ZMTP 3.x')
    }
    const ours = ZMTP2_SOCKET_TYPE_CODES[this.#options.socketType.name]
    if (ours === undefined) {
      throw new ZmtpError(
        ZmtpErrorCode.UNSUPPORTED_VERSION,
        `a ${this.#options.socketType.name} socket does not exist in ZMTP 2.0`,
      )
    }
    this.#zmtp2 = true
    this.#greetingNeed = ZMTP2_GREETING_SIZE
    // Our socket type and an empty identity, as a ZMTP 2.0 peer expects after the revision.
    this.#transport.write(Uint8Array.of(ours, 0x00, 0x00))
  }

  #finishZmtp2Greeting(): void {
    const code = this.#greeting[GREETING_START_SIZE] ?? -1
    const socketType = socketTypeOfZmtp2Code(code)
    if (socketType === undefined || !this.#options.socketType.peers.includes(socketType)) {
      // ZMTP 2.0 has no ERROR command: close.
      throw new ZmtpError(
        ZmtpErrorCode.INVALID_SOCKET_TYPE,
        `ZMTP 2.0 peer of socket type ${socketType ?? code} cannot talk to ${this.#options.socketType.name}`,
      )
    }
    this.#majorVersion = 2
    this.#minorVersion = 0
    this.#skipIdentityFrame = true
    this.#state = ConnectionState.READY
    const peer: ReadyPeer = {
      mechanism: this.#options.mechanism.name,
      majorVersion: 2,
      minorVersion: 0,
      socketType,
    }
    this.#ready(peer)
  }

  #finishGreeting(): void {
    const greeting = decodeGreeting(this.#greeting)
    // RFC 23: the mechanism must match ours exactly, else close.
    if (greeting.mechanism !== this.#options.mechanism.name) {
      throw new ZmtpError(
        ZmtpErrorCode.MECHANISM_MISMATCH,
        `peer offers mechanism ${greeting.mechanism}, this listener speaks ${this.#options.mechanism.name}`,
      )
    }
    this.#minorVersion = greeting.minor
    this.#state = ConnectionState.HANDSHAKE
    this.#writeStep(this.#options.mechanism.start(greeting.minor))
  }

  #ready(peer: ReadyPeer): void {
    // The socket type's first words (a SUB's subscriptions), then the owner hears of the peer.
    try {
      this.#options.socketType.onReady?.(this, peer)
    } catch (cause) {
      if (cause instanceof ZmtpError) throw cause
      throw handlerFailed('socket type onReady', cause)
    }
    try {
      this.#events.onReady?.(peer)
    } catch (cause) {
      throw handlerFailed('onReady', cause)
    }
  }

  #writeStep(step: HandshakeStep): void {
    if (step.done) {
      // Check the peer before answering, so a wrong socket type gets ERROR instead of READY.
      const peer = this.#checkPeer(step.done)
      for (const bytes of step.output) this.#transport.write(bytes)
      this.#state = ConnectionState.READY
      this.#decoder.maxFrameSize = this.#messageFrameLimit()
      this.#ready(peer)
      return
    }
    for (const bytes of step.output) this.#transport.write(bytes)
  }

  #checkPeer(identity: PeerIdentity): ReadyPeer {
    const { socketType } = identity
    if (!this.#options.socketType.peers.includes(socketType)) {
      // RFC 23: on a socket-type mismatch, SHOULD send ERROR and disconnect.
      throw new ZmtpError(
        ZmtpErrorCode.INVALID_SOCKET_TYPE,
        `peer socket type ${socketType || '(none)'} cannot talk to ${this.#options.socketType.name}`,
        { action: 'error', reason: 'Invalid socket type' },
      )
    }
    return {
      ...identity,
      mechanism: this.#options.mechanism.name,
      majorVersion: this.#majorVersion,
      minorVersion: this.#minorVersion,
      socketType,
    }
  }

  #onFrame(frame: Frame): void {
    if (this.#state === ConnectionState.HANDSHAKE) {
      if (!frame.command) {
        throw new ZmtpError(
          ZmtpErrorCode.UNEXPECTED_COMMAND,
          'message frame before the handshake ended',
        )
      }
      this.#writeStep(this.#options.mechanism.onCommand(decodeCommand(frame.body)))
      return
    }
    if (this.#zmtp2) {
      // RFC 15: bits 2-7 are reserved in ZMTP 2.0; there are no commands.
      if (frame.command) {
        throw new ZmtpError(
          ZmtpErrorCode.MALFORMED_FRAME,
          'reserved flag bit 2 set by a ZMTP 2.0 peer',
        )
      }
      // The first frame is the peer's identity, which none of our socket types uses.
      if (this.#skipIdentityFrame) {
        if (frame.more)
          throw new ZmtpError(ZmtpErrorCode.MALFORMED_FRAME, 'ZMTP 2.0 identity with MORE')
        this.#skipIdentityFrame = false
        this.#decoder.maxFrameSize = this.#messageFrameLimit()
        return
      }
    }
    // After the handshake the mechanism unwraps each frame (CURVE: a MESSAGE box).
    const inner = this.#options.mechanism.decodeFrame(frame)
    if (inner.command) {
      this.#onCommand(inner.body)
      return
    }
    this.#onMessageFrame(inner)
  }

  #onMessageFrame(frame: Frame): void {
    if (!this.#options.socketType.receives) {
      // Nowhere to deliver it (a PUSH): counted, not kept. The frame limit still bounds it.
      if (!frame.more) this.#droppedMessages++
      return
    }
    this.#partsSize += frame.body.length
    if (this.#partsSize > this.#maxMessageSize) {
      throw new ZmtpError(
        ZmtpErrorCode.FRAME_TOO_LARGE,
        `message exceeds ${this.#maxMessageSize} octets`,
      )
    }
    this.#parts.push(frame.body)
    if (this.#parts.length > (this.#options.maxFramesPerMessage ?? Number.POSITIVE_INFINITY)) {
      throw new ZmtpError(
        ZmtpErrorCode.TOO_MANY_FRAMES,
        `message exceeds ${this.#options.maxFramesPerMessage} frames`,
      )
    }
    if (frame.more) return
    // RFC 23: messages are atomic; deliver only once the last frame is here.
    const frames = this.#parts
    this.#parts = []
    this.#partsSize = 0
    const admits = this.#options.socketType.admits
    if (admits && !admits(frames)) {
      // Not what the socket asked for (a SUB's filter): counted, not delivered.
      this.#droppedMessages++
      return
    }
    try {
      this.#events.onMessage?.(frames)
    } catch (cause) {
      throw handlerFailed('onMessage', cause)
    }
  }

  #onCommand(body: Uint8Array): void {
    const command = decodeCommand(body)
    switch (command.name) {
      case 'PING': {
        // RFC 37: answer with PONG echoing the context.
        const { context, ttlDeciseconds } = decodePing(command.data)
        this.#peerTtlMs = ttlDeciseconds * 100
        // Not while our writes to the peer are backed up: a read full of PINGs must not become
        // thousands of PONGs queued for a peer that does not read them.
        if (this.#transport.backedUp) return
        this.#transport.write(this.#encodeCommand(encodePongBody(context)))
        return
      }
      case 'PONG':
        // Its activity is what counts (onActivity).
        return
      case 'ERROR': {
        const reason = decodeErrorReason(command.data)
        throw new ZmtpError(ZmtpErrorCode.PEER_ERROR, `peer sent ERROR: ${reason}`, { reason })
      }
      default: {
        // The socket type's commands (SUBSCRIBE for a publisher); others are ignored, as libzmq
        // ignores commands its socket type does not use.
        const handle = this.#options.socketType.onCommand
        if (!handle) return
        try {
          handle(command, this)
        } catch (cause) {
          if (cause instanceof ZmtpError) throw cause
          throw handlerFailed('onCommand', cause)
        }
      }
    }
  }
}
