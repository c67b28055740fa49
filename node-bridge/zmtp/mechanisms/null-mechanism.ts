// The NULL security mechanism, either side (RFC 23 and RFC 37 §The NULL Security Mechanism).
import { type Command, decodeErrorReason, encodeReady } from '../codec/command.ts'
import { frameHeaderSize, writeFrame } from '../codec/frame.ts'
import type { Frame } from '../codec/frame-decoder.ts'
import { decodeMetadata, readyProperties, socketTypeOf } from '../codec/metadata.ts'
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import type { HandshakeStep, Mechanism } from './mechanism.ts'

// READY is the same for every connection of a socket type (and identity): encoded once, shared
// (never mutated).
const readyCommands = new Map<string, Uint8Array>()
function readyCommand(socketType: string, identity: Uint8Array | undefined): Uint8Array {
  const key = identity ? `${socketType}/${identity.join(',')}` : socketType
  let ready = readyCommands.get(key)
  if (!ready) {
    ready = encodeReady(readyProperties(socketType, identity))
    readyCommands.set(key, ready)
  }
  return ready
}

export class NullMechanism implements Mechanism {
  readonly name = 'NULL'
  readonly asServer = false
  readonly sendsErrors = true
  /** NULL frames carry themselves. */
  readonly frameOverhead = 0
  readonly #ready: Uint8Array
  readonly #dialled: boolean
  #sentReady = false

  /**
   * @param socketType our Socket-Type property, sent in READY (e.g. `PULL`).
   * @param options.dialled we opened the TCP connection, so RFC 37 makes us the NULL client,
   *   which speaks first.
   * @param options.identity our Identity property (RFC 23), by which a ROUTER peer addresses us.
   */
  constructor(socketType: string, options: { dialled?: boolean; identity?: Uint8Array } = {}) {
    this.#ready = readyCommand(socketType, options.identity)
    this.#dialled = options.dialled === true
  }

  start(peerMinorVersion: number): HandshakeStep {
    // RFC 23 (3.0) is symmetric: each peer sends READY before receiving. RFC 37 (3.1) makes the
    // server (the side that binds) answer the client's READY, so a 3.1 server waits.
    if (peerMinorVersion === 0 || this.#dialled) {
      this.#sentReady = true
      return { output: [this.#ready] }
    }
    return { output: [] }
  }

  onCommand(command: Command): HandshakeStep {
    if (command.name === 'ERROR') {
      // RFC 23: the peer refused us; ZeroMQ peers do not come back with the same credentials.
      const reason = decodeErrorReason(command.data)
      throw new ZmtpError(
        ZmtpErrorCode.PEER_ERROR,
        `peer sent ERROR during the NULL handshake: ${reason}`,
        { reason },
      )
    }
    if (command.name !== 'READY') {
      throw new ZmtpError(
        ZmtpErrorCode.UNEXPECTED_COMMAND,
        `expected READY in the NULL handshake, got ${command.name}`,
      )
    }
    const socketType = socketTypeOf(decodeMetadata(command.data))
    const output = this.#sentReady ? [] : [this.#ready]
    this.#sentReady = true
    return { output, done: { socketType } }
  }

  /** NULL frames carry themselves. */
  decodeFrame(frame: Frame): Frame {
    return frame
  }

  encodedSize(bodyLength: number): number {
    return frameHeaderSize(bodyLength) + bodyLength
  }

  writeFrame(
    target: Uint8Array,
    offset: number,
    body: Uint8Array,
    options: { more?: boolean; command?: boolean },
  ): number {
    return writeFrame(target, offset, body, options)
  }
}
