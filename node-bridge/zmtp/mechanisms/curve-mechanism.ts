// What the CURVE client and server share (RFC 26 CurveZMQ), as libzmq's curve_mechanism_base
// (src/curve_mechanism_base.cpp) holds it for both: the short nonces of the connection and,
// once the handshake has made the session key, the MESSAGE boxes every frame travels in. Each
// side adds its handshake commands (./curve-client-mechanism.ts, ./curve-server-mechanism.ts).

import type { Command } from '../codec/command.ts'
import type { Frame } from '../codec/frame-decoder.ts'
import { ZmtpErrorCode } from '../errors.ts'
import type { CurveCrypto } from './curve-crypto.ts'
import {
  CLIENT_MESSAGE_NONCE,
  fail,
  MESSAGE_BOX,
  MESSAGE_OVERHEAD,
  MESSAGE_PREFIX,
  messageFrameSize,
  nonce,
  PAYLOAD_COMMAND,
  PAYLOAD_MORE,
  readShortNonce,
  SERVER_MESSAGE_NONCE,
  SHORT_NONCE_SIZE,
  shortNonceBytes,
  writeMessageFrame,
} from './curve-wire.ts'
import type { HandshakeStep, Mechanism } from './mechanism.ts'

/** A short nonce as its 32-bit halves (a counter may pass 2^53 in principle, never in a double). */
export type ShortNonce = [high: number, low: number]

/** True when `body` starts as a MESSAGE command does and can hold one. */
export function isMessageBody(body: Uint8Array): boolean {
  if (body.length < MESSAGE_OVERHEAD) return false
  for (let index = 0; index < MESSAGE_PREFIX.length; index++) {
    if (body[index] !== MESSAGE_PREFIX[index]) return false
  }
  return true
}

export abstract class CurveMechanism implements Mechanism {
  readonly name = 'CURVE'
  /** A MESSAGE body is the payload plus 33 octets: `\x07MESSAGE`, short nonce, flags, MAC. */
  readonly frameOverhead = MESSAGE_OVERHEAD
  abstract readonly asServer: boolean
  abstract readonly sendsErrors: boolean
  protected readonly crypto: CurveCrypto
  /** Our next short nonce: every command and MESSAGE we send takes one (libzmq get_and_inc_nonce). */
  #nonce = 1
  /** The peer's last short nonce (RFC 26: strictly increasing over its commands and MESSAGEs). */
  #peerNonce: ShortNonce = [0, 0]
  /** The session key, once the handshake is done: every MESSAGE box both ways. */
  #sessionKey: Uint8Array | undefined
  /** The nonce of the MESSAGEs we send and of those we open: their prefix, then the short nonce. */
  readonly #sendNonce: Uint8Array
  readonly #openNonce: Uint8Array

  constructor(crypto: CurveCrypto, asServer: boolean) {
    this.crypto = crypto
    const [sends, opens] = asServer
      ? [SERVER_MESSAGE_NONCE, CLIENT_MESSAGE_NONCE]
      : [CLIENT_MESSAGE_NONCE, SERVER_MESSAGE_NONCE]
    this.#sendNonce = nonce(sends, new Uint8Array(SHORT_NONCE_SIZE))
    this.#openNonce = nonce(opens, new Uint8Array(SHORT_NONCE_SIZE))
  }

  abstract start(peerMinorVersion: number): HandshakeStep

  /** The side's handshake: one command in, what to answer. Throws `ZmtpError` to end it. */
  protected abstract handshake(command: Command): HandshakeStep

  /** Wipes what only the handshake holds (transient secrets) and ends it for good. */
  protected abstract forgetHandshake(): void

  onCommand(command: Command): HandshakeStep {
    try {
      return this.handshake(command)
    } catch (error) {
      this.#abandon()
      throw error
    }
  }

  /** Our next short nonce, as 8 octets. */
  protected takeNonce(): Uint8Array {
    return shortNonceBytes(this.#nonce++)
  }

  /** Whether the peer's short nonce `next` is above the last it used. */
  protected followsPeerNonce([high, low]: ShortNonce): boolean {
    const [lastHigh, lastLow] = this.#peerNonce
    return high > lastHigh || (high === lastHigh && low > lastLow)
  }

  /** Records the short nonce of a peer's command once its box opened. */
  protected acceptPeerNonce(peerNonce: ShortNonce): void {
    this.#peerNonce = peerNonce
  }

  /** The handshake is done: MESSAGEs are boxed with `sessionKey` from now on. */
  protected establish(sessionKey: Uint8Array): void {
    this.#sessionKey = sessionKey
  }

  /**
   * A frame that is no MESSAGE but this side takes anyway (the client: the server's unboxed
   * ERROR); undefined for none.
   */
  protected unboxedFrame(_frame: Frame): Frame | undefined {
    return undefined
  }

  /**
   * Opens a MESSAGE (RFC 26) that arrived in a ZMTP frame. libzmq and NetMQ send MESSAGE in
   * ordinary frames (flags 0x00), RFC 23 says command frames: both are accepted, and the outer
   * MORE bit is ignored (unauthenticated; the boxed flags octet is what counts, as in libzmq).
   * RFC 26: no ERROR for a bad MESSAGE, so every failure closes.
   * @throws {ZmtpError} MALFORMED_COMMAND_MESSAGE, INVALID_SEQUENCE, CRYPTOGRAPHIC
   */
  decodeFrame(frame: Frame): Frame {
    const sessionKey = this.#sessionKey
    if (!sessionKey) {
      return fail(ZmtpErrorCode.UNEXPECTED_COMMAND, 'MESSAGE before the CURVE handshake ended')
    }
    const body = frame.body
    if (!isMessageBody(body)) {
      const taken = this.unboxedFrame(frame)
      if (taken) return taken
      return this.#failMessage(
        ZmtpErrorCode.MALFORMED_COMMAND_MESSAGE,
        'frame is not a CURVE MESSAGE command',
      )
    }
    const [high, low] = readShortNonce(body, MESSAGE_PREFIX.length)
    // RFC 26: "correctly incrementing short nonces". libzmq only checks that they grow, which
    // lets an attacker on the path drop whole MESSAGE frames unnoticed (and splice multipart
    // messages); libzmq, JeroMQ and NetMQ count up by one on both sides, so we require exactly
    // that.
    const [lastHigh, lastLow] = this.#peerNonce
    const nextLow = (lastLow + 1) % 0x1_0000_0000
    if (high !== lastHigh + (nextLow === 0 ? 1 : 0) || low !== nextLow) {
      return this.#failMessage(
        ZmtpErrorCode.INVALID_SEQUENCE,
        'MESSAGE short nonce is not the previous one plus one',
      )
    }
    const openNonce = this.#openNonce
    openNonce.set(
      body.subarray(MESSAGE_PREFIX.length, MESSAGE_BOX),
      openNonce.length - SHORT_NONCE_SIZE,
    )
    // In place: the frame is a view of a TCP chunk this connection owns, and the plaintext can
    // stay there as the message body (no allocation per message).
    const plain = this.crypto.openInPlace(body.subarray(MESSAGE_BOX), openNonce, sessionKey)
    if (!plain) return this.#failMessage(ZmtpErrorCode.CRYPTOGRAPHIC, 'MESSAGE box does not open')
    this.#peerNonce = [high, low]
    const flags = plain[0] ?? 0
    // Real peers set only MORE (0x01) or COMMAND (0x02) (libzmq masks its flags with exactly
    // these). RFC 26 says other bits MUST be zero; a command with MORE is not ZMTP either.
    if (
      (flags & ~(PAYLOAD_MORE | PAYLOAD_COMMAND)) !== 0 ||
      flags === (PAYLOAD_MORE | PAYLOAD_COMMAND)
    ) {
      return this.#failMessage(
        ZmtpErrorCode.MALFORMED_COMMAND_MESSAGE,
        `MESSAGE flags 0x${flags.toString(16).padStart(2, '0')} are not MORE or COMMAND`,
      )
    }
    return {
      more: (flags & PAYLOAD_MORE) !== 0,
      command: (flags & PAYLOAD_COMMAND) !== 0,
      body: plain.subarray(1),
    }
  }

  encodedSize(bodyLength: number): number {
    return messageFrameSize(bodyLength)
  }

  /**
   * Boxes a frame we send into a MESSAGE with our next short nonce.
   * @throws {ZmtpError} UNEXPECTED_COMMAND before the handshake ended
   */
  writeFrame(
    target: Uint8Array,
    offset: number,
    body: Uint8Array,
    options: { more?: boolean; command?: boolean },
  ): number {
    const key = this.#sessionKey
    if (!key) {
      return fail(ZmtpErrorCode.UNEXPECTED_COMMAND, 'cannot send before the CURVE handshake ended')
    }
    const shortNonce = this.takeNonce()
    this.#sendNonce.set(shortNonce, this.#sendNonce.length - SHORT_NONCE_SIZE)
    return writeMessageFrame(target, offset, body, options, {
      shortNonce,
      messageNonce: this.#sendNonce,
      key,
      crypto: this.crypto,
    })
  }

  #failMessage(code: ZmtpErrorCode, message: string): never {
    this.#abandon()
    return fail(code, message)
  }

  /** A failed connection keeps no secret. */
  #abandon(): void {
    this.forgetHandshake()
    this.#sessionKey?.fill(0)
    this.#sessionKey = undefined
  }
}
