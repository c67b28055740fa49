// A CurveZMQ client written from RFC 26 with tweetnacl alone, for tests: it builds HELLO,
// INITIATE and MESSAGE commands with pinned keys and nonces, reads WELCOME, READY and server
// MESSAGEs, and can break any field on request. Independent of the server code under test.

import nacl from 'tweetnacl'
import { concatBytes } from '../../node-bridge/zmtp/codec/bytes'
import { encodeFrame } from '../../node-bridge/zmtp/codec/frame'
import { decodeMetadata, encodeMetadata } from '../../node-bridge/zmtp/codec/metadata'

export interface KeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

export interface CurveTestClientOptions {
  /** S, the server's long-term public key. */
  serverPublicKey: Uint8Array
  /** C/c, the client's long-term key pair (default: fresh). */
  longTerm?: KeyPair
  /** C′/c′, the client's transient key pair (default: fresh). */
  transient?: KeyPair
  /** Random octets for long nonces (default tweetnacl's). */
  randomBytes?: (n: number) => Uint8Array
}

export interface HelloOptions {
  nonce?: bigint
  version?: [number, number]
  /** Anti-amplification padding length (RFC grammar and libzmq: 72). */
  padding?: number
  /** Written in the C′ field instead of our transient public key. */
  transientField?: Uint8Array
  /** Box the signature to this key instead of S (a client with the wrong server key). */
  boxTo?: Uint8Array
  /** Flip a bit in the signature box. */
  tamperBox?: boolean
  /** What the signature box holds (RFC 26: 64 zero octets). */
  signature?: Uint8Array
  /** The command name (default HELLO). */
  name?: string
}

export interface InitiateOptions {
  nonce?: bigint
  /** Send this cookie instead of the one from WELCOME. */
  cookie?: Uint8Array
  metadata?: Array<[string, string | Uint8Array]>
  /** Metadata octets as they are, instead of `metadata` (to send malformed metadata). */
  rawMetadata?: Uint8Array
  /** Written as C inside the box instead of our long-term public key. */
  clientKeyField?: Uint8Array
  /** The vouch's server key (RFC 26: S). */
  vouchServerKey?: Uint8Array
  /** The vouch's transient key (RFC 26: C′). */
  vouchTransient?: Uint8Array
  /** Make the vouch box with this secret key instead of c. */
  vouchSecretKey?: Uint8Array
  /** Flip a bit in the INITIATE box. */
  tamperBox?: boolean
  /** Flip a bit in the cookie. */
  tamperCookie?: boolean
  /** Cut the command body to this many octets. */
  truncateTo?: number
  name?: string
}

export interface MessageOptions {
  more?: boolean
  command?: boolean
  /** The boxed flags octet, overriding more/command. */
  flags?: number
  /** Use this short nonce (the counter then continues from it). */
  nonce?: bigint
  tamperBox?: boolean
  /** Put the MESSAGE in a command frame (flags 0x04) instead of an ordinary one (0x00). */
  commandFrame?: boolean
}

const ascii = (text: string) => new TextEncoder().encode(text)

export { concatBytes }

function u64(value: bigint): Uint8Array {
  const out = new Uint8Array(8)
  new DataView(out.buffer).setBigUint64(0, value)
  return out
}

function commandBody(name: string, data: Uint8Array): Uint8Array {
  return concatBytes(Uint8Array.of(name.length), ascii(name), data)
}

function flipBit(bytes: Uint8Array, index: number): Uint8Array {
  const copy = bytes.slice()
  copy[index] = (copy[index] ?? 0) ^ 0x01
  return copy
}

/** A ZMTP 3.1 greeting for a CURVE client (as-server 0). */
export function curveClientGreeting(mechanism = 'CURVE'): Uint8Array {
  const greeting = new Uint8Array(64)
  greeting.set([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1])
  greeting.set(ascii(mechanism), 12)
  return greeting
}

export class CurveTestClient {
  readonly serverPublicKey: Uint8Array
  readonly longTerm: KeyPair
  readonly transient: KeyPair
  readonly #randomBytes: (n: number) => Uint8Array
  /** S′, from WELCOME. */
  serverTransient: Uint8Array | undefined
  /** The cookie from WELCOME (96 octets). */
  cookie: Uint8Array | undefined
  /** Our next short nonce: HELLO 1, INITIATE 2, MESSAGE 3… (as libzmq). */
  nextNonce = 1n
  /** The short nonces of the server's READY and MESSAGEs, in order. */
  readonly serverNonces: bigint[] = []

  constructor(options: CurveTestClientOptions) {
    this.serverPublicKey = options.serverPublicKey
    this.longTerm = options.longTerm ?? nacl.box.keyPair()
    this.transient = options.transient ?? nacl.box.keyPair()
    this.#randomBytes = options.randomBytes ?? nacl.randomBytes
  }

  #takeNonce(nonce: bigint | undefined): Uint8Array {
    const value = nonce ?? this.nextNonce
    this.nextNonce = value + 1n
    return u64(value)
  }

  /** HELLO command body (200 octets unless told otherwise). */
  helloBody(options: HelloOptions = {}): Uint8Array {
    const [major, minor] = options.version ?? [1, 0]
    const shortNonce = this.#takeNonce(options.nonce)
    let box = nacl.box(
      options.signature ?? new Uint8Array(64),
      concatBytes(ascii('CurveZMQHELLO---'), shortNonce),
      options.boxTo ?? this.serverPublicKey,
      this.transient.secretKey,
    )
    if (options.tamperBox) box = flipBit(box, 20)
    return commandBody(
      options.name ?? 'HELLO',
      concatBytes(
        Uint8Array.of(major, minor),
        new Uint8Array(options.padding ?? 72),
        options.transientField ?? this.transient.publicKey,
        shortNonce,
        box,
      ),
    )
  }

  hello(options: HelloOptions = {}): Uint8Array {
    return encodeFrame(this.helloBody(options), { command: true })
  }

  /** Reads a WELCOME command body; keeps S′ and the cookie. */
  readWelcome(body: Uint8Array): void {
    if (body.length !== 168) throw new Error(`WELCOME is ${body.length} octets, not 168`)
    if (new TextDecoder().decode(body.subarray(0, 8)) !== '\x07WELCOME')
      throw new Error('not WELCOME')
    const plain = nacl.box.open(
      body.subarray(24),
      concatBytes(ascii('WELCOME-'), body.subarray(8, 24)),
      this.serverPublicKey,
      this.transient.secretKey,
    )
    if (!plain) throw new Error('WELCOME box does not open')
    this.serverTransient = plain.slice(0, 32)
    this.cookie = plain.slice(32, 128)
  }

  /** INITIATE command body (at least 257 octets). */
  initiateBody(options: InitiateOptions = {}): Uint8Array {
    const serverTransient = this.#serverTransient()
    let cookie = options.cookie ?? this.cookie ?? new Uint8Array(96)
    if (options.tamperCookie) cookie = flipBit(cookie, 40)
    const vouchNonce = this.#randomBytes(16)
    const vouch = nacl.box(
      concatBytes(
        options.vouchTransient ?? this.transient.publicKey,
        options.vouchServerKey ?? this.serverPublicKey,
      ),
      concatBytes(ascii('VOUCH---'), vouchNonce),
      serverTransient,
      options.vouchSecretKey ?? this.longTerm.secretKey,
    )
    const metadata =
      options.rawMetadata ?? encodeMetadata(options.metadata ?? [['Socket-Type', 'PUSH']])
    const shortNonce = this.#takeNonce(options.nonce)
    let box = nacl.box(
      concatBytes(options.clientKeyField ?? this.longTerm.publicKey, vouchNonce, vouch, metadata),
      concatBytes(ascii('CurveZMQINITIATE'), shortNonce),
      serverTransient,
      this.transient.secretKey,
    )
    if (options.tamperBox) box = flipBit(box, 20)
    const body = commandBody(options.name ?? 'INITIATE', concatBytes(cookie, shortNonce, box))
    return options.truncateTo === undefined ? body : body.subarray(0, options.truncateTo)
  }

  initiate(options: InitiateOptions = {}): Uint8Array {
    return encodeFrame(this.initiateBody(options), { command: true })
  }

  /** Reads a READY command body; returns its metadata. */
  readReady(body: Uint8Array): Map<string, Uint8Array> {
    if (new TextDecoder().decode(body.subarray(0, 6)) !== '\x05READY') throw new Error('not READY')
    const shortNonce = body.subarray(6, 14)
    this.serverNonces.push(new DataView(shortNonce.buffer, shortNonce.byteOffset).getBigUint64(0))
    const plain = nacl.box.open(
      body.subarray(14),
      concatBytes(ascii('CurveZMQREADY---'), shortNonce),
      this.#serverTransient(),
      this.transient.secretKey,
    )
    if (!plain) throw new Error('READY box does not open')
    return decodeMetadata(plain)
  }

  /** A MESSAGE command body carrying one frame. */
  messageBody(payload: Uint8Array | string, options: MessageOptions = {}): Uint8Array {
    const data = typeof payload === 'string' ? ascii(payload) : payload
    const flags = options.flags ?? (options.more ? 0x01 : 0) | (options.command ? 0x02 : 0)
    const shortNonce = this.#takeNonce(options.nonce)
    let box = nacl.box(
      concatBytes(Uint8Array.of(flags), data),
      concatBytes(ascii('CurveZMQMESSAGEC'), shortNonce),
      this.#serverTransient(),
      this.transient.secretKey,
    )
    if (options.tamperBox) box = flipBit(box, box.length - 1)
    return concatBytes(ascii('\x07MESSAGE'), shortNonce, box)
  }

  /** A wire frame holding a MESSAGE (flags 0x00 like libzmq, or 0x04 when `commandFrame`). */
  message(payload: Uint8Array | string, options: MessageOptions = {}): Uint8Array {
    return encodeFrame(this.messageBody(payload, options), {
      command: options.commandFrame === true,
    })
  }

  /** Opens a MESSAGE from the server. */
  openMessage(body: Uint8Array): { flags: number; payload: Uint8Array } {
    if (new TextDecoder().decode(body.subarray(0, 8)) !== '\x07MESSAGE')
      throw new Error('not MESSAGE')
    const shortNonce = body.subarray(8, 16)
    this.serverNonces.push(new DataView(shortNonce.buffer, shortNonce.byteOffset).getBigUint64(0))
    const plain = nacl.box.open(
      body.subarray(16),
      concatBytes(ascii('CurveZMQMESSAGES'), shortNonce),
      this.#serverTransient(),
      this.transient.secretKey,
    )
    if (!plain) throw new Error('server MESSAGE does not open')
    return { flags: plain[0] ?? 0, payload: plain.subarray(1) }
  }

  #serverTransient(): Uint8Array {
    if (!this.serverTransient) throw new Error('no WELCOME read yet')
    return this.serverTransient
  }
}
