// The interface of a client-side security mechanism: a handshake state machine without I/O that,
// once the handshake is done, wraps every frame we send and unwraps every frame we receive.
import type { Command } from '../codec/command'
import type { Frame } from '../codec/frame-decoder'
import type { HandshakeStep } from './mechanism'

/** A client-side security mechanism (RFC 23 §Authentication and Confidentiality). */
export interface ClientMechanism {
  /** The 20-octet greeting name, e.g. `NULL` or `CURVE`. */
  readonly name: string
  /**
   * Called once the server's greeting is read; returns what to send first (NULL: READY, CURVE:
   * HELLO).
   */
  start(peerMinorVersion: number): HandshakeStep
  /** Called with each command of the handshake. Throws `ZmtpError` to end it. */
  onCommand(command: Command): HandshakeStep
  /** After the handshake: the frame a received wire frame carries. Throws `ZmtpError`. */
  decodeFrame(frame: Frame): Frame
  /** After the handshake: wire octets for a frame of `bodyLength` octets (header included). */
  encodedSize(bodyLength: number): number
  /**
   * After the handshake: writes one frame (header and body, boxed by CURVE) into `target` at
   * `offset`; returns the offset after it. `target` must have {@link encodedSize} octets free.
   */
  writeFrame(
    target: Uint8Array,
    offset: number,
    body: Uint8Array,
    options: { more?: boolean; command?: boolean },
  ): number
}
