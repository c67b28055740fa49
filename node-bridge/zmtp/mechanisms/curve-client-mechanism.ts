// The CURVE security mechanism, client side (RFC 25 ZMTP-CURVE, RFC 26 CurveZMQ), as a handshake
// state machine without I/O: (HELLO) EXPECT_WELCOME → (INITIATE) EXPECT_READY → READY.
// Layouts as libzmq writes them (src/curve_client.cpp, src/curve_mechanism_base.cpp): nonces
// HELLO 1, INITIATE 2, MESSAGE 3…; MESSAGE in ordinary frames; boxed flags 0x01 MORE, 0x02
// COMMAND (msg_t::command in src/msg.hpp); vouch = C′ + S (RFC 26 §INITIATE).

import { concatBytes } from '../codec/bytes.ts'
import { type Command, decodeErrorReason, encodeCommand } from '../codec/command.ts'
import type { Frame } from '../codec/frame-decoder.ts'
import { decodeMetadata, encodeMetadata, socketTypeOf } from '../codec/metadata.ts'
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import {
  CURVE_BOX_OVERHEAD,
  CURVE_KEY_SIZE,
  type CurveCrypto,
  type CurveKeyPair,
} from './curve-crypto.ts'
import { isLowOrderPoint } from './curve-keys.ts'
import { CurveMechanism } from './curve-mechanism.ts'
import {
  commandData,
  fail,
  HELLO_NONCE,
  INITIATE_NONCE,
  LONG_NONCE_SIZE,
  nonce,
  READY_NONCE,
  readShortNonce,
  SHORT_NONCE_SIZE,
  VOUCH_NONCE,
  WELCOME_NONCE,
} from './curve-wire.ts'
import type { HandshakeStep } from './mechanism.ts'

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

/** RFC 26 grammar and libzmq: 72 octets of padding (the prose's 70 is an erratum). */
const HELLO_PADDING = 72
const HELLO_SIGNATURE_SIZE = 64
/** WELCOME data: long nonce + Box[S′ + cookie](S→C′) = 16 + 32 + 96 + 16. */
const COOKIE_SIZE = 96
const WELCOME_DATA_SIZE = LONG_NONCE_SIZE + CURVE_KEY_SIZE + COOKIE_SIZE + CURVE_BOX_OVERHEAD
/** READY data: short nonce + box of at least the tag. */
const READY_DATA_MIN = SHORT_NONCE_SIZE + CURVE_BOX_OVERHEAD

const ERROR_NAME = new TextEncoder().encode('\x05ERROR')

/** An ERROR command body: its name, then a reason. */
function isErrorCommand(body: Uint8Array): boolean {
  return (
    body.length > ERROR_NAME.length && ERROR_NAME.every((octet, index) => body[index] === octet)
  )
}

/**
 * CURVE client for one connection. A server that refuses us says so with ERROR (RFC 26: the
 * client gives up); a server that cannot open our HELLO (a wrong server key) closes silently.
 * Short nonces: HELLO 1, INITIATE 2, MESSAGE 3… ours; READY 1, MESSAGE 2… the server's.
 */
export class CurveClientMechanism extends CurveMechanism {
  readonly asServer = false
  /** RFC 26: ERROR is the server's. */
  readonly sendsErrors = false
  readonly #options: CurveClientOptions
  #state: State = State.START
  /** C′/c′, fresh for this connection (RFC 26: transient keys are per connection). */
  #transient: CurveKeyPair | undefined
  /** beforenm(S′, c′): the INITIATE and READY boxes, then every MESSAGE's. */
  #sessionKey: Uint8Array | undefined

  /** @throws {RangeError} if a key is not 32 octets */
  constructor(options: CurveClientOptions) {
    super(options.crypto, false)
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
  }

  /** HELLO: version 1.0, padding, C′, short nonce 1, Box[64 zeros](C′→S). RFC 26: 200 octets. */
  start(_peerMinorVersion: number): HandshakeStep {
    if (this.#state !== State.START) fail(ZmtpErrorCode.UNEXPECTED_COMMAND, 'started twice')
    const transient = this.crypto.generateKeyPair()
    this.#transient = transient
    const helloKey = this.crypto.precompute(this.#options.serverPublicKey, transient.secretKey)
    if (!helloKey) {
      this.forgetHandshake()
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'the server public key is a low-order point')
    }
    const shortNonce = this.takeNonce()
    const box = this.crypto.seal(
      new Uint8Array(HELLO_SIGNATURE_SIZE),
      nonce(HELLO_NONCE, shortNonce),
      helloKey,
    )
    helloKey.fill(0)
    const data = concatBytes(
      Uint8Array.of(1, 0),
      new Uint8Array(HELLO_PADDING),
      transient.publicKey,
      shortNonce,
      box,
    )
    this.#state = State.EXPECT_WELCOME
    return { output: [encodeCommand('HELLO', data)] }
  }

  protected handshake(command: Command): HandshakeStep {
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
  }

  #onWelcome(command: Command): HandshakeStep {
    // RFC 26: WELCOME is exactly 168 octets.
    const data = commandData(command, 'WELCOME', { exactly: WELCOME_DATA_SIZE })
    const transient = this.#transient as CurveKeyPair
    const { serverPublicKey, keyPair } = this.#options
    // Box[S′ + cookie](S→C′), long nonce.
    const welcomeKey = this.crypto.precompute(serverPublicKey, transient.secretKey)
    if (!welcomeKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret with the server key')
    const plain = this.crypto.open(
      data.subarray(LONG_NONCE_SIZE),
      nonce(WELCOME_NONCE, data.subarray(0, LONG_NONCE_SIZE)),
      welcomeKey,
    )
    welcomeKey.fill(0)
    if (!plain) fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'WELCOME box does not open')
    const serverTransient = plain.slice(0, CURVE_KEY_SIZE)
    const cookie = plain.subarray(CURVE_KEY_SIZE)
    if (isLowOrderPoint(serverTransient)) {
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'WELCOME carries a low-order transient key')
    }
    const sessionKey = this.crypto.precompute(serverTransient, transient.secretKey)
    if (!sessionKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret with S′')
    this.#sessionKey = sessionKey

    // Vouch: Box[C′ + S](C→S′) with a random long nonce (RFC 26; libzmq, NetMQ, JeroMQ put S in).
    const vouchKey = this.crypto.precompute(serverTransient, keyPair.secretKey)
    if (!vouchKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret for the vouch')
    const vouchNonce = this.crypto.randomBytes(LONG_NONCE_SIZE)
    const vouch = this.crypto.seal(
      concatBytes(transient.publicKey, serverPublicKey),
      nonce(VOUCH_NONCE, vouchNonce),
      vouchKey,
    )
    vouchKey.fill(0)
    // INITIATE: cookie, short nonce 2, Box[C + vouch nonce + vouch + metadata](C′→S′).
    const shortNonce = this.takeNonce()
    const box = this.crypto.seal(
      concatBytes(
        keyPair.publicKey,
        vouchNonce,
        vouch,
        encodeMetadata([['Socket-Type', this.#options.socketType]]),
      ),
      nonce(INITIATE_NONCE, shortNonce),
      sessionKey,
    )
    this.#state = State.EXPECT_READY
    return { output: [encodeCommand('INITIATE', concatBytes(cookie, shortNonce, box))] }
  }

  #onReady(command: Command): HandshakeStep {
    const data = commandData(command, 'READY', { atLeast: READY_DATA_MIN })
    const sessionKey = this.#sessionKey as Uint8Array
    const plain = this.crypto.open(
      data.subarray(SHORT_NONCE_SIZE),
      nonce(READY_NONCE, data.subarray(0, SHORT_NONCE_SIZE)),
      sessionKey,
    )
    if (!plain) fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'READY box does not open')
    this.acceptPeerNonce(readShortNonce(data, 0))
    const socketType = socketTypeOf(decodeMetadata(plain))
    // The transient secret lives on only inside the session key (and no cache keeps c′ alive).
    this.#transient?.secretKey.fill(0)
    this.#transient = undefined
    this.#state = State.READY
    this.establish(sessionKey)
    return { output: [], done: { socketType } }
  }

  protected forgetHandshake(): void {
    this.#state = State.FAILED
    this.#transient?.secretKey.fill(0)
    this.#sessionKey?.fill(0)
    this.#sessionKey = undefined
  }

  /** An unboxed ERROR after the handshake is still the server's last word; nothing else is. */
  protected override unboxedFrame(frame: Frame): Frame | undefined {
    return frame.command && isErrorCommand(frame.body) ? frame : undefined
  }
}
