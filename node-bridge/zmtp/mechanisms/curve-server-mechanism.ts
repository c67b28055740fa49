// The CURVE security mechanism, server side (RFC 25 ZMTP-CURVE, RFC 26 CurveZMQ), as a handshake
// state machine without I/O: EXPECT_HELLO → (WELCOME) EXPECT_INITIATE → (READY) READY.
// Layouts as libzmq reads them (src/curve_server.cpp, src/curve_mechanism_base.cpp), where they
// differ from RFC 26's prose (noted where they do).

import { type Command, encodeCommand } from '../codec/command.ts'
import { decodeMetadata, encodeMetadata, readyProperties, socketTypeOf } from '../codec/metadata.ts'
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'
import type { CookieKeyring } from './curve-cookie.ts'
import { CURVE_BOX_OVERHEAD, CURVE_KEY_SIZE, type CurveCrypto } from './curve-crypto.ts'
import { isLowOrderPoint } from './curve-keys.ts'
import { CurveMechanism } from './curve-mechanism.ts'
import {
  COOKIE_NONCE,
  commandData,
  equalBytes,
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

/** Options of a {@link CurveServerMechanism}. */
export interface CurveServerOptions {
  /** Our long-term secret key s (32 octets). Pass the same array to every connection (caching). */
  secretKey: Uint8Array
  /** Our long-term public key S (must belong to `secretKey`); derived from it when absent. */
  publicKey?: Uint8Array
  /** Our Socket-Type property, sent in READY (e.g. `PULL`). */
  socketType: string
  /** Our Identity property, sent in READY: how a ROUTER peer addresses us. */
  identity?: Uint8Array
  /** The primitives; share one instance per listener. */
  crypto: CurveCrypto
  /** The listener's cookie keys; share one keyring per listener. */
  cookieKeys: CookieKeyring
  /**
   * Decides whether a client's authenticated long-term public key C may connect. Absent: any
   * client that knows our public key may ("Stonehouse"). `false` sends ERROR "400" (the client
   * gives up); a throw closes silently (the client retries later).
   */
  authorize?: (clientPublicKey: Uint8Array) => boolean
}

const State = {
  EXPECT_HELLO: 'expect-hello',
  EXPECT_INITIATE: 'expect-initiate',
  READY: 'ready',
  FAILED: 'failed',
} as const
type State = (typeof State)[keyof typeof State]

// Offsets are in the command *data*, after the name: the body minus 1 + name length octets.
// HELLO body 200 = 6 (`\x05HELLO`) + 194.
const HELLO_DATA_SIZE = 194
// Version 2, padding 72: RFC 26's prose says 70, its grammar `72%x00` and the 200-octet total say
// 72, and libzmq reads C′ at offset 80 (src/curve_server.cpp).
const HELLO_CLIENT_KEY = 2 + 72
const HELLO_SHORT_NONCE = HELLO_CLIENT_KEY + CURVE_KEY_SIZE // 106
const HELLO_BOX = HELLO_SHORT_NONCE + SHORT_NONCE_SIZE // 114
/** HELLO signature box: 64 zero octets. */
const HELLO_SIGNATURE_SIZE = 64
/** Cookie: long nonce + Box[C′ + s′](K), 16 + 80. */
const COOKIE_SIZE = LONG_NONCE_SIZE + 2 * CURVE_KEY_SIZE + CURVE_BOX_OVERHEAD
// INITIATE body >= 257 = 9 (`\x08INITIATE`) + 248: cookie 96, short nonce 8, box >= 144.
const INITIATE_SHORT_NONCE = COOKIE_SIZE // 96
const INITIATE_BOX = INITIATE_SHORT_NONCE + SHORT_NONCE_SIZE // 104
/** Vouch: long nonce + Box[C′ + S](C→S′), 16 + 80. */
const VOUCH_SIZE = LONG_NONCE_SIZE + 2 * CURVE_KEY_SIZE + CURVE_BOX_OVERHEAD
/** Inside the INITIATE box: C (32), vouch (96), then metadata. */
const INITIATE_METADATA = CURVE_KEY_SIZE + VOUCH_SIZE // 128
const INITIATE_DATA_MIN = INITIATE_BOX + INITIATE_METADATA + CURVE_BOX_OVERHEAD // 248

/**
 * CURVE server for one connection. Failures throw {@link ZmtpError}: malformed or undecryptable
 * commands close silently (the client retries, RFC 26 soft error), a refused client key sends
 * ERROR "400" (the client gives up, RFC 26 hard error).
 */
export class CurveServerMechanism extends CurveMechanism {
  readonly asServer = true
  readonly sendsErrors = true
  readonly #secretKey: Uint8Array
  readonly #publicKey: Uint8Array
  readonly #socketType: string
  readonly #identity: Uint8Array | undefined
  readonly #cookieKeys: CookieKeyring
  readonly #authorize: ((clientPublicKey: Uint8Array) => boolean) | undefined
  #state: State = State.EXPECT_HELLO
  /** C′, the client's transient public key (from HELLO). */
  #clientTransient: Uint8Array | undefined
  /** s′, our transient secret key (made for WELCOME, wiped after INITIATE). */
  #transientSecret: Uint8Array | undefined
  /** beforenm(C′, s′), made from INITIATE: its box, READY's, then every MESSAGE's. */
  #sessionKey: Uint8Array | undefined

  /** @throws {RangeError} if a key is not 32 octets */
  constructor(options: CurveServerOptions) {
    super(options.crypto, true)
    if (options.secretKey.length !== CURVE_KEY_SIZE) {
      throw new RangeError(`the CURVE secret key must be ${CURVE_KEY_SIZE} octets`)
    }
    this.#secretKey = options.secretKey
    this.#publicKey = options.publicKey ?? options.crypto.derivePublicKey(options.secretKey)
    if (this.#publicKey.length !== CURVE_KEY_SIZE) {
      throw new RangeError(`the CURVE public key must be ${CURVE_KEY_SIZE} octets`)
    }
    this.#socketType = options.socketType
    this.#identity = options.identity
    this.#cookieKeys = options.cookieKeys
    this.#authorize = options.authorize
  }

  /** RFC 26: the client speaks first (HELLO). */
  start(_peerMinorVersion: number): HandshakeStep {
    return { output: [] }
  }

  protected handshake(command: Command): HandshakeStep {
    switch (this.#state) {
      case State.EXPECT_HELLO:
        return this.#onHello(command)
      case State.EXPECT_INITIATE:
        return this.#onInitiate(command)
      default:
        return fail(
          ZmtpErrorCode.UNEXPECTED_COMMAND,
          `${command.name} after the CURVE handshake ended`,
        )
    }
  }

  #onHello(command: Command): HandshakeStep {
    // Everything cheap before any public-key operation: a garbage HELLO costs no crypto.
    // RFC 26: HELLO is exactly 200 octets.
    const data = commandData(
      command,
      'HELLO',
      { exactly: HELLO_DATA_SIZE },
      ZmtpErrorCode.MALFORMED_COMMAND_HELLO,
    )
    // RFC 26: CurveZMQ version 1.0. The padding is not checked (libzmq does not either): it only
    // has to make HELLO bigger than WELCOME.
    if (data[0] !== 1 || data[1] !== 0) {
      fail(
        ZmtpErrorCode.MALFORMED_COMMAND_HELLO,
        `HELLO has CurveZMQ version ${data[0]}.${data[1]}`,
      )
    }
    const clientTransient = data.slice(HELLO_CLIENT_KEY, HELLO_CLIENT_KEY + CURVE_KEY_SIZE)
    if (isLowOrderPoint(clientTransient)) {
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'HELLO carries a low-order transient key')
    }
    // Box[64 × %x00](C′→S): opened with C′ and s.
    const helloKey = this.crypto.precompute(clientTransient, this.#secretKey)
    if (!helloKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'HELLO transient key gives no shared secret')
    const shortNonce = data.subarray(HELLO_SHORT_NONCE, HELLO_BOX)
    const signature = this.crypto.open(
      data.subarray(HELLO_BOX),
      nonce(HELLO_NONCE, shortNonce),
      helloKey,
    )
    if (
      !signature ||
      signature.length !== HELLO_SIGNATURE_SIZE ||
      !signature.every((o) => o === 0)
    ) {
      helloKey.fill(0)
      fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'HELLO signature box does not open (wrong server key?)')
    }
    this.acceptPeerNonce(readShortNonce(shortNonce, 0))
    this.#clientTransient = clientTransient

    // WELCOME: fresh S′/s′; cookie = long nonce + Box[C′ + s′](K) under the listener's key.
    const transient = this.crypto.generateKeyPair()
    this.#transientSecret = transient.secretKey
    const cookieNonce = this.crypto.randomBytes(LONG_NONCE_SIZE)
    const cookiePlain = new Uint8Array(2 * CURVE_KEY_SIZE)
    cookiePlain.set(clientTransient)
    cookiePlain.set(transient.secretKey, CURVE_KEY_SIZE)
    const cookieBox = this.crypto.seal(
      cookiePlain,
      nonce(COOKIE_NONCE, cookieNonce),
      this.#cookieKeys.current(),
    )
    cookiePlain.fill(0)
    // Box[S′ + cookie](S→C′), 128 + 16 octets, with a random long nonce.
    const welcomePlain = new Uint8Array(CURVE_KEY_SIZE + COOKIE_SIZE)
    welcomePlain.set(transient.publicKey)
    welcomePlain.set(cookieNonce, CURVE_KEY_SIZE)
    welcomePlain.set(cookieBox, CURVE_KEY_SIZE + LONG_NONCE_SIZE)
    const welcomeNonce = this.crypto.randomBytes(LONG_NONCE_SIZE)
    const welcomeBox = this.crypto.seal(welcomePlain, nonce(WELCOME_NONCE, welcomeNonce), helloKey)
    helloKey.fill(0)
    const welcome = new Uint8Array(LONG_NONCE_SIZE + welcomeBox.length)
    welcome.set(welcomeNonce)
    welcome.set(welcomeBox, LONG_NONCE_SIZE)
    this.#state = State.EXPECT_INITIATE
    // RFC 26: WELCOME is 168 octets.
    return { output: [encodeCommand('WELCOME', welcome)] }
  }

  #onInitiate(command: Command): HandshakeStep {
    // RFC 26: INITIATE is at least 257 octets.
    const data = commandData(
      command,
      'INITIATE',
      { atLeast: INITIATE_DATA_MIN },
      ZmtpErrorCode.MALFORMED_COMMAND_INITIATE,
    )
    const clientTransient = this.#clientTransient as Uint8Array
    const transientSecret = this.#transientSecret as Uint8Array

    // The cookie: sealed by this listener within the last rotations, for this connection's keys.
    const cookieNonce = nonce(COOKIE_NONCE, data.subarray(0, LONG_NONCE_SIZE))
    const cookieBox = data.subarray(LONG_NONCE_SIZE, COOKIE_SIZE)
    let cookie: Uint8Array | null = null
    for (const key of this.#cookieKeys.accepted()) {
      cookie = this.crypto.open(cookieBox, cookieNonce, key)
      if (cookie) break
    }
    if (!cookie)
      fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'INITIATE cookie does not open (expired or forged)')
    const cookieMatches =
      equalBytes(cookie.subarray(0, CURVE_KEY_SIZE), clientTransient) &&
      equalBytes(cookie.subarray(CURVE_KEY_SIZE), transientSecret)
    cookie.fill(0)
    if (!cookieMatches) {
      fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'INITIATE cookie was made for another connection')
    }

    // RFC 26: short nonces increase; INITIATE's must be above HELLO's.
    const shortNonce = data.subarray(INITIATE_SHORT_NONCE, INITIATE_BOX)
    const peerNonce = readShortNonce(shortNonce, 0)
    if (!this.followsPeerNonce(peerNonce)) {
      fail(ZmtpErrorCode.INVALID_SEQUENCE, 'INITIATE short nonce does not follow HELLO’s')
    }

    // Box[C + vouch + metadata](C′→S′).
    const sessionKey = this.crypto.precompute(clientTransient, transientSecret)
    if (!sessionKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret with the transient key')
    this.#sessionKey = sessionKey
    const plain = this.crypto.open(
      data.subarray(INITIATE_BOX),
      nonce(INITIATE_NONCE, shortNonce),
      sessionKey,
    )
    if (!plain) fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'INITIATE box does not open')
    const clientKey = plain.slice(0, CURVE_KEY_SIZE)
    if (isLowOrderPoint(clientKey)) {
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'INITIATE carries a low-order long-term key')
    }

    // Vouch: Box[C′ + S](C→S′), proves the holder of C made this connection to us.
    const vouchKey = this.crypto.precompute(clientKey, transientSecret)
    if (!vouchKey) fail(ZmtpErrorCode.KEY_EXCHANGE, 'no shared secret with the long-term key')
    const vouch = this.crypto.open(
      plain.subarray(CURVE_KEY_SIZE + LONG_NONCE_SIZE, INITIATE_METADATA),
      nonce(VOUCH_NONCE, plain.subarray(CURVE_KEY_SIZE, CURVE_KEY_SIZE + LONG_NONCE_SIZE)),
      vouchKey,
    )
    vouchKey.fill(0)
    if (!vouch) fail(ZmtpErrorCode.CRYPTOGRAPHIC, 'INITIATE vouch does not open')
    // libzmq checks only C′; RFC 26 puts S in the vouch too and every client sends it.
    if (
      !equalBytes(vouch.subarray(0, CURVE_KEY_SIZE), clientTransient) ||
      !equalBytes(vouch.subarray(CURVE_KEY_SIZE), this.#publicKey)
    ) {
      fail(ZmtpErrorCode.KEY_EXCHANGE, 'INITIATE vouch is not for this connection and server')
    }
    this.acceptPeerNonce(peerNonce)

    const socketType = socketTypeOf(decodeMetadata(plain.subarray(INITIATE_METADATA)))
    this.#checkAuthorized(clientKey)

    // READY: Box[metadata](S′→C′) with our short nonce 1.
    const readyNonce = this.takeNonce()
    const readyBox = this.crypto.seal(
      encodeMetadata(readyProperties(this.#socketType, this.#identity)),
      nonce(READY_NONCE, readyNonce),
      sessionKey,
    )
    const ready = new Uint8Array(SHORT_NONCE_SIZE + readyBox.length)
    ready.set(readyNonce)
    ready.set(readyBox, SHORT_NONCE_SIZE)
    // The transient secret lives on only inside the session key.
    transientSecret.fill(0)
    this.#transientSecret = undefined
    this.#state = State.READY
    this.establish(sessionKey)
    return {
      output: [encodeCommand('READY', ready)],
      done: { socketType, publicKey: clientKey },
    }
  }

  #checkAuthorized(clientKey: Uint8Array): void {
    if (!this.#authorize) return
    let allowed: boolean
    try {
      allowed = this.#authorize(clientKey.slice())
    } catch (cause) {
      // Our fault, not the client's: close without ERROR so it comes back later, and say so
      // as a bug of ours (no backoff for the client, the stack in the log).
      throw new ZmtpError(ZmtpErrorCode.INTERNAL_ERROR, 'the CURVE authorizer failed', {
        cause,
      })
    }
    if (!allowed) {
      // libzmq sends the ZAP status as the ERROR reason; "400" makes the client give up.
      throw new ZmtpError(ZmtpErrorCode.AUTHENTICATION_FAILED, 'client key not authorized', {
        action: 'error',
        reason: '400',
      })
    }
  }

  protected forgetHandshake(): void {
    this.#state = State.FAILED
    this.#transientSecret?.fill(0)
    this.#transientSecret = undefined
    this.#sessionKey?.fill(0)
    this.#sessionKey = undefined
  }
}
