// One ZMTP 3.x connection, client side, as an explicit state machine over a byte transport:
// greeting → security handshake → socket-type check → messages out, PINGs answered. No sockets
// or timers here: the socket layer feeds bytes in and writes what comes out.

import {
  decodeCommand,
  decodeErrorReason,
  decodePing,
  encodeCommandBody,
  PING_CONTEXT_MAX,
} from './codec/command'
import { type Frame, FrameDecoder } from './codec/frame-decoder'
import {
  classifyGreetingPrefix,
  decodeGreeting,
  encodeGreetingRest,
  encodeGreetingStart,
  GREETING_SIZE,
  GREETING_START_SIZE,
} from './codec/greeting'
import type { ConnectionTransport, ReadyPeer } from './connection'
import { ZmtpError, ZmtpErrorCode } from './errors'
import type { ClientMechanism } from './mechanisms/client-mechanism'
import type { HandshakeStep } from './mechanisms/mechanism'

export interface ClientConnectionEvents {
  onReady?(peer: ReadyPeer): void
  /** Any traffic from the peer (RFC 37: every octet is a sign of life). */
  onActivity?(): void
  /** Called once, when the connection closes; `error` says why when it was not a clean end. */
  onClose?(error?: ZmtpError): void
}

export interface ClientConnectionOptions {
  mechanism: ClientMechanism
  /** Our socket type, e.g. `PUSH`. */
  socketType: string
  /** Peer socket types we accept (RFC 23 compatibility table: PUSH talks to PULL). */
  peerSocketTypes: readonly string[]
  /** Largest frame accepted from the peer; default 64 KiB (a PUSH receives only commands). */
  maxFrameSize?: number
}

export const ClientConnectionState = {
  GREETING: 'greeting',
  HANDSHAKE: 'handshake',
  READY: 'ready',
  CLOSED: 'closed',
} as const
export type ClientConnectionState =
  (typeof ClientConnectionState)[keyof typeof ClientConnectionState]

const DEFAULT_MAX_FRAME_SIZE = 64 * 1024

/**
 * The client end of ZMTP 3.1 (RFC 37) for a sending socket. Sends signature and major version
 * first and the rest of the greeting once the server's major version is known, as libzmq does
 * (libzmq servers wait for it: src/zmtp_engine.cpp, `receive_greeting`).
 */
export class ClientConnection {
  readonly #transport: ConnectionTransport
  readonly #events: ClientConnectionEvents
  readonly #options: ClientConnectionOptions
  readonly #decoder: FrameDecoder
  #state: ClientConnectionState = ClientConnectionState.GREETING
  readonly #greeting = new Uint8Array(GREETING_SIZE)
  #greetingLength = 0
  #sentGreetingRest = false
  #minorVersion = 0
  #peerTtlMs = 0
  /** Message frames received (a PULL never sends any; they are dropped). */
  droppedFrames = 0

  constructor(
    transport: ConnectionTransport,
    events: ClientConnectionEvents,
    options: ClientConnectionOptions,
  ) {
    this.#transport = transport
    this.#events = events
    this.#options = options
    this.#decoder = new FrameDecoder({
      maxFrameSize: options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE,
    })
  }

  get state(): ClientConnectionState {
    return this.#state
  }

  /** RFC 37: the TTL of the server's last PING, in ms (0: none). */
  get peerTtlMs(): number {
    return this.#peerTtlMs
  }

  /** Starts the greeting: signature and major version now, the rest once the server's arrive. */
  start(): void {
    this.#transport.write(encodeGreetingStart())
  }

  /**
   * Encodes whole messages into one buffer, ready for one TCP write (the bundling the article
   * saw: five queued messages, one segment). Only once the handshake is done.
   * @throws {ZmtpError} UNEXPECTED_COMMAND before READY
   */
  encodeMessages(messages: ReadonlyArray<readonly Uint8Array[]>): Uint8Array {
    if (this.#state !== ClientConnectionState.READY) {
      throw new ZmtpError(ZmtpErrorCode.UNEXPECTED_COMMAND, 'cannot send before the handshake')
    }
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

  /** A command frame (PING, PONG), boxed by the mechanism. */
  #encodeCommand(name: string, data: Uint8Array): Uint8Array {
    const body = encodeCommandBody(name, data)
    const out = new Uint8Array(this.#options.mechanism.encodedSize(body.length))
    this.#options.mechanism.writeFrame(out, 0, body, { command: true })
    return out
  }

  /** Sends a heartbeat PING (RFC 37) with our TTL and a context; only once READY. */
  sendPing(ttlDeciseconds = 0, context: Uint8Array = new Uint8Array(0)): void {
    if (this.#state !== ClientConnectionState.READY) return
    const data = new Uint8Array(2 + Math.min(context.length, PING_CONTEXT_MAX))
    data[0] = (ttlDeciseconds >> 8) & 0xff
    data[1] = ttlDeciseconds & 0xff
    data.set(context.subarray(0, PING_CONTEXT_MAX), 2)
    this.#transport.write(this.#encodeCommand('PING', data))
  }

  /**
   * Feeds received bytes. Any protocol violation closes the connection (see `onClose`).
   * The connection takes `chunk` over (CURVE opens boxes in place).
   */
  receive(chunk: Uint8Array): void {
    if (this.#state === ClientConnectionState.CLOSED) return
    this.#events.onActivity?.()
    try {
      let rest = chunk
      if (this.#state === ClientConnectionState.GREETING) {
        rest = this.#readGreeting(chunk)
        if (this.#state === ClientConnectionState.GREETING) return
      }
      if (rest.length === 0) return
      for (const frame of this.#decoder.push(rest)) {
        this.#onFrame(frame)
        // A frame can end the connection (a refused handshake, the server's ERROR).
        if (this.#isClosed()) return
      }
      if (this.#decoder.error) throw this.#decoder.error
    } catch (error) {
      this.fail(
        error instanceof ZmtpError
          ? error
          : new ZmtpError(ZmtpErrorCode.MALFORMED_FRAME, 'unexpected failure', { cause: error }),
      )
    }
  }

  #isClosed(): boolean {
    return this.#state === ClientConnectionState.CLOSED
  }

  /** Closes because of `error`. RFC 26: a client SHALL NOT send ERROR, so it just closes. */
  fail(error: ZmtpError): void {
    if (this.#state === ClientConnectionState.CLOSED) return
    this.#state = ClientConnectionState.CLOSED
    this.#transport.close()
    this.#events.onClose?.(error)
  }

  /** The transport ended (the server closed, or the socket layer closed it). */
  transportClosed(): void {
    if (this.#state === ClientConnectionState.CLOSED) return
    this.#state = ClientConnectionState.CLOSED
    this.#events.onClose?.()
  }

  #readGreeting(chunk: Uint8Array): Uint8Array {
    const take = Math.min(GREETING_SIZE - this.#greetingLength, chunk.length)
    this.#greeting.set(chunk.subarray(0, take), this.#greetingLength)
    this.#greetingLength += take
    if (!this.#sentGreetingRest) {
      const kind = classifyGreetingPrefix(this.#greeting.subarray(0, this.#greetingLength))
      // We speak ZMTP 3.x only: no downgrade to 1.0/2.0 (RFC 23 §Backwards Interoperability).
      if (kind === 'legacy') {
        throw new ZmtpError(ZmtpErrorCode.UNSUPPORTED_VERSION, 'server does not speak ZMTP 3.x')
      }
      if (kind === 'zmtp3' && this.#greetingLength >= GREETING_START_SIZE) {
        this.#sentGreetingRest = true
        // RFC 23: as-server is 0 for clients (NULL and CURVE alike).
        this.#transport.write(
          encodeGreetingRest({
            minor: 1,
            mechanism: this.#options.mechanism.name,
            asServer: false,
          }),
        )
      }
    }
    if (this.#greetingLength < GREETING_SIZE) return chunk.subarray(chunk.length)
    this.#finishGreeting()
    return chunk.subarray(take)
  }

  #finishGreeting(): void {
    const greeting = decodeGreeting(this.#greeting)
    // RFC 23: the mechanism must match ours exactly, else close.
    if (greeting.mechanism !== this.#options.mechanism.name) {
      throw new ZmtpError(
        ZmtpErrorCode.MECHANISM_MISMATCH,
        `server offers mechanism ${greeting.mechanism}, we speak ${this.#options.mechanism.name}`,
      )
    }
    this.#minorVersion = greeting.minor
    this.#state = ClientConnectionState.HANDSHAKE
    this.#writeStep(this.#options.mechanism.start(greeting.minor))
  }

  #writeStep(step: HandshakeStep): void {
    for (const bytes of step.output) this.#transport.write(bytes)
    if (!step.done) return
    const { socketType } = step.done
    if (!this.#options.peerSocketTypes.includes(socketType)) {
      throw new ZmtpError(
        ZmtpErrorCode.INVALID_SOCKET_TYPE,
        `server socket type ${socketType || '(none)'} cannot talk to ${this.#options.socketType}`,
      )
    }
    this.#state = ClientConnectionState.READY
    this.#events.onReady?.({
      ...step.done,
      mechanism: this.#options.mechanism.name,
      majorVersion: 3,
      minorVersion: this.#minorVersion,
      socketType,
    })
  }

  #onFrame(frame: Frame): void {
    if (this.#state === ClientConnectionState.HANDSHAKE) {
      if (!frame.command) {
        throw new ZmtpError(
          ZmtpErrorCode.UNEXPECTED_COMMAND,
          'message frame before the handshake ended',
        )
      }
      this.#writeStep(this.#options.mechanism.onCommand(decodeCommand(frame.body)))
      return
    }
    const inner = this.#options.mechanism.decodeFrame(frame)
    if (!inner.command) {
      // RFC 30: a PULL never sends messages; a PUSH has nowhere to deliver them.
      this.droppedFrames++
      return
    }
    const command = decodeCommand(inner.body)
    switch (command.name) {
      case 'PING': {
        // RFC 37: answer with PONG echoing (at most 16 octets of) the context.
        const { context, ttlDeciseconds } = decodePing(command.data)
        this.#peerTtlMs = ttlDeciseconds * 100
        this.#transport.write(this.#encodeCommand('PONG', context.subarray(0, PING_CONTEXT_MAX)))
        return
      }
      case 'ERROR': {
        const reason = decodeErrorReason(command.data)
        throw new ZmtpError(ZmtpErrorCode.PEER_ERROR, `server sent ERROR: ${reason}`, { reason })
      }
      default:
        // PONG (activity already noted), SUBSCRIBE, CANCEL and unknown commands are ignored.
        return
    }
  }
}
