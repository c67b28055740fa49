// The interface every security mechanism implements, client or server side: a handshake state
// machine without I/O that, once the handshake is done, wraps every frame we send and unwraps
// every frame we receive.
import type { Command } from '../codec/command.ts'
import type { Frame } from '../codec/frame-decoder.ts'

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

/** A security mechanism, one side of it (RFC 23 §Authentication and Confidentiality). */
export interface Mechanism {
  /** The 20-octet greeting name, e.g. `NULL` or `CURVE`. */
  readonly name: string
  /** RFC 23: the as-server greeting field; 1 only for the server side of CURVE. */
  readonly asServer: boolean
  /**
   * Whether this side may answer a failure with an ERROR command. RFC 23 lets either NULL peer
   * send one (a socket-type mismatch SHOULD get ERROR); RFC 26 gives ERROR to the CURVE server,
   * and a CURVE client whose handshake is over could only send it unboxed, which the server
   * would take for a malformed MESSAGE.
   */
  readonly sendsErrors: boolean
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
  /** After the handshake: wire octets for a frame of `bodyLength` octets (header included). */
  encodedSize(bodyLength: number): number
  /**
   * After the handshake: writes one frame (header and body, boxed by CURVE) into `target` at
   * `offset`; returns the offset after it. `target` must have {@link encodedSize} octets free.
   * @throws {ZmtpError} UNEXPECTED_COMMAND before the handshake ended
   */
  writeFrame(
    target: Uint8Array,
    offset: number,
    body: Uint8Array,
    options: { more?: boolean; command?: boolean },
  ): number
}
