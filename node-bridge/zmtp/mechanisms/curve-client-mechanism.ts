// The CURVE security mechanism, client side (RFC 25 ZMTP-CURVE, RFC 26 CurveZMQ), as a handshake
// state machine without I/O: (HELLO) EXPECT_WELCOME → (INITIATE) EXPECT_READY → READY.
// Layouts as libzmq writes them (src/curve_client.cpp, src/curve_mechanism_base.cpp): nonces
// HELLO 1, INITIATE 2, MESSAGE 3…; MESSAGE in ordinary frames; boxed flags 0x01 MORE, 0x02
// COMMAND (msg_t::command in src/msg.hpp); vouch = C′ + S (RFC 26 §INITIATE).

import { type Command, decodeErrorReason, encodeCommand } from '../codec/command'
import type { Frame } from '../codec/frame-decoder'
import { decodeMetadata, encodeMetadata, socketTypeOf } from '../codec/metadata'
import { ZmtpError, ZmtpErrorCode } from '../errors'
import {
  CURVE_BOX_OVERHEAD,
  CURVE_KEY_SIZE,
  CURVE_NONCE_SIZE,
  type CurveCrypto,
  type CurveKeyPair,
} from './curve-crypto'
import { isLowOrderPoint } from './curve-keys'
import {
  CLIENT_MESSAGE_NONCE,
  fail,
  HELLO_NONCE,
  INITIATE_NONCE,
  LONG_NONCE_SIZE,
  MESSAGE_BOX,
  MESSAGE_OVERHEAD,
  MESSAGE_PREFIX,
  messageFrameSize,
  PAYLOAD_COMMAND,
  PAYLOAD_MORE,
  READY_NONCE,
  SERVER_MESSAGE_NONCE,
  SHORT_NONCE_SIZE,
  VOUCH_NONCE,
  WELCOME_NONCE,
  writeMessageFrame,
} from './curve-wire'
import type { HandshakeStep, Mechanism } from './mechanism'

/** Options of a {@link CurveClientMechanism}. */
export interface CurveClientOptions {
  /** S, the server's long-term public key (32 octets). */
  serverPublicKey: Uint8Array
  /**
   * C/c, our long-term key pair. Pass the same arrays to every connection (the crypto caches per
   * secret-key array). The server's allow-list, if any, names C.
   */
  keyPair: CurveKeyPair
  /** Our Socket-Type property, sent in INITIATE (e.g. `PUSH`). */
  socketType: string
  /** The primitives; share one instance between connections. */
  crypto: CurveCrypto
}

const State = {
  START: 'start',
  EXPECT_WELCOME: 'expect-welcome',
  EXPECT_READY: 'expect-ready',
  READY: 'ready',
  FAILED: 'failed',
} as const
type State = (typeof State)[keyof typeof State]

const _ascii = (text: string) => new TextEncoder().encode(text)

/** RFC 26 grammar and libzmq: 72 octets of padding (the prose's 70 is an erratum). */
const HELLO_PADDING = 72
const HELLO_SIGNATURE_SIZE = 64
/** WELCOME data: long nonce + Box[S′ + cookie](S→C′) = 16 + 32 + 96 + 16. */
const COOKIE_SIZE = 96
const WELCOME_DATA_SIZE = LONG_NONCE_SIZE + CURVE_KEY_SIZE + COOKIE_SIZE + CURVE_BOX_OVERHEAD
/** READY data: short nonce + box of at least the tag. */
const READY_DATA_MIN = SHORT_NONCE_SIZE + CURVE_BOX_OVERHEAD
/** MESSAGE body: `\x07MESSAGE` + short nonce, then the box of flags + payload. */

const TWO_POW_32 = 2 ** 32
const ERROR_NAME = new TextEncoder().encode('\x05ERROR')

/** An ERROR command body: its name, then a reason. */
function isErrorCommand(body: Uint8Array): boolean {
  return (
    body.length > ERROR_NAME.length && ERROR_NAME.every((octet, index) => body[index] === octet)
  )
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/**
 * CURVE client for one connection. A server that refuses us says so with ERROR (RFC 26: the
 * client gives up); a server that cannot open our HELLO (a wrong server key) closes silently.
 */
export class CurveClientMechanism implements Mechanism {
  readonly name = 'CURVE'
  readonly asServer = false
  /** RFC 26: ERROR is the server's. */
  readonly sendsErrors = false
  readonly frameOverhead = MESSAGE_OVERHEAD
  readonly #options: CurveClientOptions
  readonly #crypto: CurveCrypto
  #state: State = State.START
  /** C′/c′, fresh for this connection (RFC 26: transient keys are per connection). */
  #transient: CurveKeyPair | undefined
  /** beforenm(S′, c′): every box after WELCOME. */
  #sessionKey: Uint8Array | undefined
  /** Our next short nonce: HELLO 1, INITIATE 2, MESSAGE 3… (libzmq `get_and_inc_nonce`). */
  #nonce = 1
  /** The server's last short nonce (READY 1, MESSAGE 2…); RFC 26: strictly increasing. */
  #peerNonce = 0
  readonly #messageNonce = new Uint8Array(CURVE_NONCE_SIZE)

  /** @throws {RangeError} if a key is not 32 octets */
  constructor(options: CurveClientOptions) {
    for (const [key, what] of [
      [options.serverPublicKey, 'the server public key'],
      [options.keyPair.publicKey, 'the client public key'],
      [options.keyPair.secretKey, 'the client secret key'],
    ] as const) {
      if (key.length !== CURVE_KEY_SIZE) {
        throw new RangeError(`${what} must be ${CURVE_KEY_SIZE} octets, got ${key.length}`)
      }
    }
    this.#options = options
    this.#crypto = options.crypto
    this.#messageNonce.set(CLIENT_MESSAGE_NONCE)
  }

  #takeNonce(): Uint8Array {
    const out = new Uint8Array(SHORT_NONCE_SIZE)
    const view = new DataView(out.buffer)
    view.setUint32(0, Math.floor(this.#nonce / TWO_POW_32))
    view.setUint32(4, this.#nonce >>> 0)
    this.#nonce++
    return out
  }

  #readNonce(bytes: Uint8Array, offset: number): number {
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset, SHORT_NONCE_SIZE)
    return view.getUint32(0) * TWO_POW_32 + view.getUint32(4)
  }

  /** HELLO: version 1.0, padding, C′, short nonce 1, Box[64 zeros](C′→S). RFC 26: 200 octets. */
  start(_peerMinorVersion: number): HandshakeStep {
    if (this.#state !== State.START) fail(ZmtpErrorCode.UNEXPECTED_COMMAND, 'started twice')
    const transient = this.#crypto.generateKeyPair()
    this.#transient = transient
    const helloKey = this.#crypto.precompute(this.#options.serverPublicKey, transient.secretKey)
    if (!helloKey) {
      this.#abandon()
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'the server public key is a low-order point')
    }
    const shortNonce = this.#takeNonce()
    const box = this.#crypto.seal(
      new Uint8Array(HELLO_SIGNATURE_SIZE),
      concat(HELLO_NONCE, shortNonce),
      helloKey,
    )
    helloKey.fill(0)
    const data = concat(
      Uint8Array.of(1, 0),
      new Uint8Array(HELLO_PADDING),
      transient.publicKey,
      shortNonce,
      box,
    )
    this.#state = State.EXPECT_WELCOME
    return { output: [encodeCommand('HELLO', data)] }
  }

  onCommand(command: Command): HandshakeStep {
    try {
      if (command.name === 'ERROR') {
        // RFC 26: an ERROR during the handshake is final; libzmq gives up (e.g. ZAP "400").
        const reason = decodeErrorReason(command.data)
        throw new ZmtpError(
          /^4\d\d$/.test(reason) ? ZmtpErrorCode.AUTHENTICATION_FAILED : ZmtpErrorCode.PEER_ERROR,
          `server sent ERROR: ${reason}`,
          { reason },
        )
      }
      switch (this.#state) {
        case State.EXPECT_WELCOME:
          return this.#onWelcome(command)
        case State.EXPECT_READY:
          return this.#onReady(command)
        default:
          return fail(ZmtpErrorCode.UNEXPECTED_COMMAND, `unexpected ${command.name}`)
      }
    } catch (error) {
      this.#abandon()
      throw error
    }
  }

  #onWelcome(command: Command): HandshakeStep {
    if (command.name !== 'WELCOME') {
      fail(ZmtpErrorCode.UNEXPECTED_COMMAND, `expected WELCOME, got ${command.name}`)
    }
    const data = command.data
    // RFC 26: WELCOME is exactly 168 octets.
    if (data.length !== WELCOME_DATA_SIZE) {
      fail(ZmtpErrorCode.MALFORMED_COMMAND, `WELCOME is ${data.length + 8} octets, not 168`)
    }
    const transient = this.#transient as CurveKeyPair
    const { serverPublicKey, keyPair } = this.#options
    // Box[S′ + cookie](S→C′), long nonce.
    const welcomeKey = this.#crypto.precompute(serverPublicKey, transient.secretKey)
    if (!welcomeKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret with the server key')
    const plain = this.#crypto.open(
      data.subarray(LONG_NONCE_SIZE),
      concat(WELCOME_NONCE, data.subarray(0, LONG_NONCE_SIZE)),
      welcomeKey,
    )
    welcomeKey.fill(0)
    if (!plain) fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'WELCOME box does not open')
    const serverTransient = plain.slice(0, CURVE_KEY_SIZE)
    const cookie = plain.subarray(CURVE_KEY_SIZE)
    if (isLowOrderPoint(serverTransient)) {
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'WELCOME carries a low-order transient key')
    }
    const sessionKey = this.#crypto.precompute(serverTransient, transient.secretKey)
    if (!sessionKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret with S′')
    this.#sessionKey = sessionKey

    // Vouch: Box[C′ + S](C→S′) with a random long nonce (RFC 26; libzmq, NetMQ, JeroMQ put S in).
    const vouchKey = this.#crypto.precompute(serverTransient, keyPair.secretKey)
    if (!vouchKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret for the vouch')
    const vouchNonce = this.#crypto.randomBytes(LONG_NONCE_SIZE)
    const vouch = this.#crypto.seal(
      concat(transient.publicKey, serverPublicKey),
      concat(VOUCH_NONCE, vouchNonce),
      vouchKey,
    )
    vouchKey.fill(0)
    // INITIATE: cookie, short nonce 2, Box[C + vouch nonce + vouch + metadata](C′→S′).
    const shortNonce = this.#takeNonce()
    const box = this.#crypto.seal(
      concat(
        keyPair.publicKey,
        vouchNonce,
        vouch,
        encodeMetadata([['Socket-Type', this.#options.socketType]]),
      ),
      concat(INITIATE_NONCE, shortNonce),
      sessionKey,
    )
    this.#state = State.EXPECT_READY
    return { output: [encodeCommand('INITIATE', concat(cookie, shortNonce, box))] }
  }

  #onReady(command: Command): HandshakeStep {
    if (command.name !== 'READY') {
      fail(ZmtpErrorCode.UNEXPECTED_COMMAND, `expected READY, got ${command.name}`)
    }
    const data = command.data
    if (data.length < READY_DATA_MIN) {
      fail(ZmtpErrorCode.MALFORMED_COMMAND, `READY is ${data.length + 6} octets, less than 30`)
    }
    const peerNonce = this.#readNonce(data, 0)
    const plain = this.#crypto.open(
      data.subarray(SHORT_NONCE_SIZE),
      concat(READY_NONCE, data.subarray(0, SHORT_NONCE_SIZE)),
      this.#sessionKey as Uint8Array,
    )
    if (!plain) fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'READY box does not open')
    this.#peerNonce = peerNonce
    const socketType = socketTypeOf(decodeMetadata(plain))
    // The transient secret lives on only inside the session key.
    this.#transient?.secretKey.fill(0)
    this.#state = State.READY
    return { output: [], done: { socketType } }
  }

  /** A failed handshake keeps nothing. */
  #abandon(): void {
    this.#state = State.FAILED
    this.#transient?.secretKey.fill(0)
    this.#sessionKey?.fill(0)
    this.#sessionKey = undefined
  }

  /**
   * Opens a server MESSAGE (a PING, usually), in an ordinary or a command frame.
   * @throws {ZmtpError} MALFORMED_COMMAND_MESSAGE, INVALID_SEQUENCE, CRYPTOGRAPHIC
   */
  decodeFrame(frame: Frame): Frame {
    const sessionKey = this.#sessionKey
    if (this.#state !== State.READY || !sessionKey) {
      return fail(ZmtpErrorCode.UNEXPECTED_COMMAND, 'MESSAGE before the CURVE handshake ended')
    }
    const body = frame.body
    if (body.length < MESSAGE_OVERHEAD || !MESSAGE_PREFIX.every((octet, i) => body[i] === octet)) {
      // An unboxed ERROR after the handshake is still the server's last word; nothing else
      // unboxed is taken.
      if (frame.command && isErrorCommand(body)) return frame
      return fail(ZmtpErrorCode.MALFORMED_COMMAND_MESSAGE, 'frame is not a CURVE MESSAGE')
    }
    const peerNonce = this.#readNonce(body, MESSAGE_PREFIX.length)
    if (peerNonce <= this.#peerNonce) {
      return fail(ZmtpErrorCode.INVALID_SEQUENCE, 'server MESSAGE short nonce did not increase')
    }
    const nonce = new Uint8Array(CURVE_NONCE_SIZE)
    nonce.set(SERVER_MESSAGE_NONCE)
    nonce.set(body.subarray(MESSAGE_PREFIX.length, MESSAGE_BOX), SERVER_MESSAGE_NONCE.length)
    const plain = this.#crypto.openInPlace(body.subarray(MESSAGE_BOX), nonce, sessionKey)
    if (!plain) return fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'server MESSAGE box does not open')
    this.#peerNonce = peerNonce
    const flags = plain[0] ?? 0
    return {
      more: (flags & PAYLOAD_MORE) !== 0,
      command: (flags & PAYLOAD_COMMAND) !== 0,
      body: plain.subarray(1),
    }
  }

  encodedSize(bodyLength: number): number {
    return messageFrameSize(bodyLength)
  }

  /** Boxes a frame we send into a MESSAGE with our next short nonce. */
  writeFrame(
    target: Uint8Array,
    offset: number,
    body: Uint8Array,
    options: { more?: boolean; command?: boolean },
  ): number {
    const key = this.#sessionKey
    if (this.#state !== State.READY || !key) {
      return fail(ZmtpErrorCode.UNEXPECTED_COMMAND, 'cannot send before the CURVE handshake ended')
    }
    const shortNonce = this.#takeNonce()
    this.#messageNonce.set(shortNonce, CLIENT_MESSAGE_NONCE.length)
    return writeMessageFrame(target, offset, body, options, {
      shortNonce,
      messageNonce: this.#messageNonce,
      key,
      crypto: this.#crypto,
    })
  }
}
