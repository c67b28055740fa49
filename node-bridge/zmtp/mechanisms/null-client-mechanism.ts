// The NULL security mechanism, client side (RFC 23 and RFC 37 §The NULL Security Mechanism).

import { type Command, decodeErrorReason, encodeReady } from '../codec/command'
import { frameHeaderSize, writeFrame } from '../codec/frame'
import type { Frame } from '../codec/frame-decoder'
import { decodeMetadata, socketTypeOf } from '../codec/metadata'
import { ZmtpError, ZmtpErrorCode } from '../errors'
import type { ClientMechanism } from './client-mechanism'
import type { HandshakeStep } from './mechanism'

export class NullClientMechanism implements ClientMechanism {
  readonly name = 'NULL'
  readonly #ready: Uint8Array
  #done = false

  /** @param socketType our Socket-Type property, sent in READY (e.g. `PUSH`). */
  constructor(socketType: string) {
    this.#ready = encodeReady([['Socket-Type', socketType]])
  }

  /** RFC 37: the client sends READY first (a 3.0 server sends its own without waiting). */
  start(_peerMinorVersion: number): HandshakeStep {
    return { output: [this.#ready] }
  }

  onCommand(command: Command): HandshakeStep {
    if (command.name === 'ERROR') {
      // RFC 23: the peer refused us; ZeroMQ clients do not come back after an ERROR.
      throw new ZmtpError(
        ZmtpErrorCode.PEER_ERROR,
        `server sent ERROR: ${decodeErrorReason(command.data)}`,
        { reason: decodeErrorReason(command.data) },
      )
    }
    if (command.name !== 'READY' || this.#done) {
      throw new ZmtpError(
        ZmtpErrorCode.UNEXPECTED_COMMAND,
        `expected READY in the NULL handshake, got ${command.name}`,
      )
    }
    this.#done = true
    return { output: [], done: { socketType: socketTypeOf(decodeMetadata(command.data)) } }
  }

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
