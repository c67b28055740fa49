// PushSocket options: defaults taken from libzmq where it has one, validated once.

import { type CurveCrypto, createCurveCrypto } from '../mechanisms/curve-crypto.ts'
import { parseCurveKey } from '../mechanisms/curve-keys.ts'
import { DEFAULT_RECONNECT_IVL_MAX_MS, DEFAULT_RECONNECT_IVL_MS } from '../reconnect.ts'

export { DEFAULT_RECONNECT_IVL_MAX_MS, DEFAULT_RECONNECT_IVL_MS }

/** libzmq ZMQ_SNDHWM default: 1000 messages. */
export const DEFAULT_SEND_HWM = 1000
/** How long `close()` waits for queued messages to be handed to a peer, ms. */
export const DEFAULT_LINGER_MS = 30_000
/** libzmq ZMQ_HANDSHAKE_IVL default: 30 s. */
export const DEFAULT_HANDSHAKE_IVL_MS = 30_000
/** Largest single TCP write when draining a backlog (the first message always fits). */
export const DEFAULT_MAX_WRITE_BYTES = 256 * 1024

/** A CURVE key as 32 octets, or as text in Z85, base64 or hex. */
export type CurveKeyInput = Uint8Array | string

/** CURVE client settings (RFC 26). */
export interface PushCurveOptions {
  /** S, the server's long-term public key. Required. */
  serverKey: CurveKeyInput
  /** c, our long-term secret key. Default: a fresh key pair for this socket. */
  secretKey?: CurveKeyInput
  /** C, our long-term public key; derived from `secretKey` when absent. */
  publicKey?: CurveKeyInput
}

/** Options of a {@link PushSocket}. Durations are milliseconds. */
export interface PushSocketOptions {
  /** CURVE client keys; absent: the NULL mechanism. */
  curve?: PushCurveOptions
  /** Messages queued before `trySend()` returns false and `send()` waits. Default 1000. */
  sendHighWaterMark?: number
  /** How long `close()` waits for queued messages; -1 forever, 0 drop at once. Default 30000. */
  linger?: number
  /** Delay before reconnecting, plus a random 0..ivl jitter; -1: never reconnect. Default 100. */
  reconnectIvl?: number
  /** With a value above `reconnectIvl`, the delay doubles after each failure up to it. Default 0. */
  reconnectIvlMax?: number
  /** A handshake not done in this time is dropped and retried; 0: no limit. Default 30000. */
  handshakeIvl?: number
  /** Send a PING this often once connected; 0, the default: only answer the server's. */
  heartbeatIvl?: number
  /** Drop the connection (and reconnect) when a PING gets no traffic back in this time. Default: heartbeatIvl. */
  heartbeatTimeout?: number
  /** The TTL our PINGs announce (RFC 37, rounded to deciseconds); 0, the default: none. */
  heartbeatTtl?: number
  /** Largest single write when draining the queue. Default 256 KiB. */
  maxWriteBytes?: number
  /** CURVE primitives (tests pin them). Default: node:crypto X25519 + tweetnacl. */
  crypto?: CurveCrypto
  /** Uniform [0, 1) source for the reconnect jitter (tests pin it). Default Math.random. */
  random?: () => number
}

/** Options after validation, with the keys parsed. */
export interface ResolvedPushOptions {
  curve?: { serverKey: Uint8Array; publicKey: Uint8Array; secretKey: Uint8Array }
  sendHighWaterMark: number
  linger: number
  reconnectIvl: number
  reconnectIvlMax: number
  handshakeIvl: number
  heartbeatIvl: number
  heartbeatTimeout: number
  heartbeatTtl: number
  maxWriteBytes: number
  crypto: CurveCrypto
  random: () => number
}

function integer(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`)
  }
  return value
}

function key(input: CurveKeyInput, setting: string): Uint8Array {
  if (typeof input === 'string') return parseCurveKey(input, setting)
  if (input.length !== 32) throw new RangeError(`${setting} must be 32 octets, got ${input.length}`)
  return Uint8Array.from(input)
}

/**
 * Validates options and fills in the defaults.
 * @throws {RangeError} naming the option; {@link KeyFormatError} for a key in no known format
 */
export function parsePushOptions(options: PushSocketOptions = {}): ResolvedPushOptions {
  const crypto = options.crypto ?? createCurveCrypto()
  const heartbeatIvl = integer('heartbeatIvl', options.heartbeatIvl ?? 0, 0)
  const resolved: ResolvedPushOptions = {
    sendHighWaterMark: integer(
      'sendHighWaterMark',
      options.sendHighWaterMark ?? DEFAULT_SEND_HWM,
      1,
    ),
    linger: integer('linger', options.linger ?? DEFAULT_LINGER_MS, -1),
    reconnectIvl: integer('reconnectIvl', options.reconnectIvl ?? DEFAULT_RECONNECT_IVL_MS, -1),
    reconnectIvlMax: integer(
      'reconnectIvlMax',
      options.reconnectIvlMax ?? DEFAULT_RECONNECT_IVL_MAX_MS,
      0,
    ),
    handshakeIvl: integer('handshakeIvl', options.handshakeIvl ?? DEFAULT_HANDSHAKE_IVL_MS, 0),
    heartbeatIvl,
    heartbeatTimeout: integer('heartbeatTimeout', options.heartbeatTimeout ?? heartbeatIvl, 0),
    heartbeatTtl: integer('heartbeatTtl', options.heartbeatTtl ?? 0, 0),
    maxWriteBytes: integer('maxWriteBytes', options.maxWriteBytes ?? DEFAULT_MAX_WRITE_BYTES, 1),
    crypto,
    random: options.random ?? Math.random,
  }
  if (resolved.reconnectIvl === 0) throw new RangeError('reconnectIvl must be -1 or at least 1')
  if (resolved.heartbeatTtl > 6_553_500) throw new RangeError('heartbeatTtl must be <= 6553500')
  if (options.curve) {
    const serverKey = key(options.curve.serverKey, 'curve.serverKey')
    let secretKey: Uint8Array
    let publicKey: Uint8Array
    if (options.curve.secretKey === undefined) {
      ;({ publicKey, secretKey } = crypto.generateKeyPair())
    } else {
      secretKey = key(options.curve.secretKey, 'curve.secretKey')
      publicKey =
        options.curve.publicKey === undefined
          ? crypto.derivePublicKey(secretKey)
          : key(options.curve.publicKey, 'curve.publicKey')
    }
    resolved.curve = { serverKey, publicKey, secretKey }
  }
  return resolved
}
