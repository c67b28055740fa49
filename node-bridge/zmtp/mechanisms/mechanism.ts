// The interface every security mechanism implements: a handshake state machine without I/O.
import type { Command } from '../codec/command'
import type { Frame } from '../codec/frame-decoder'

/**
 * What the peer proved about itself when the handshake completed. Only what is used afterwards:
 * a connection keeps this for its lifetime, so no metadata map and no views of received reads.
 */
export interface PeerIdentity {
  /** The peer's Socket-Type property from READY (or INITIATE); '' when it sent none. */
  socketType: string
  /** CURVE: the client's authenticated long-term public key. */
  publicKey?: Uint8Array
}

/** One step of a handshake: frames to write, and the peer's identity once it is complete. */
export interface HandshakeStep {
  output: Uint8Array[]
  done?: PeerIdentity
}

/** A server-side security mechanism (RFC 23 §Authentication and Confidentiality). */
export interface ServerMechanism {
  /** The 20-octet greeting name, e.g. `NULL` or `CURVE`. */
  readonly name: string
  /** RFC 23: the as-server greeting field; 0 for NULL, 1 for CURVE servers. */
  readonly asServer: boolean
  /**
   * Octets the mechanism wraps around each message frame after the handshake: 0 for NULL, 33 for
   * CURVE (name, short nonce, flags octet, MAC). The connection refuses a wire frame larger than
   * the message limit plus this from its header, before buffering any of its body.
   */
  readonly frameOverhead: number
  /** Called once the peer's greeting is read; returns what to send before any command arrives. */
  start(peerMinorVersion: number): HandshakeStep
  /** Called with each command frame of the handshake. Throws `ZmtpError` to end it. */
  onCommand(command: Command): HandshakeStep
  /**
   * After the handshake: the frame that a received wire frame carries. NULL returns it as is;
   * CURVE opens a MESSAGE box, whose inner flags say MORE and COMMAND. Throws `ZmtpError`.
   */
  decodeFrame(frame: Frame): Frame
  /** After the handshake: the wire bytes of a frame we send (a PONG); CURVE boxes it. */
  encodeFrame(body: Uint8Array, options: { more?: boolean; command?: boolean }): Uint8Array
}
