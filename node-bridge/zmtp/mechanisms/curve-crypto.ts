// The cryptography CurveZMQ needs (RFC 26: NaCl crypto_box with precomputation, crypto_secretbox),
// behind one interface so tests can pin keys and nonces. Three backends, fastest first:
// - `sodium`: libsodium through sodium-native (prebuilt binaries shipped in its npm package);
//   opens 100-byte boxes ~5× and 10 KiB boxes ~12× faster than tweetnacl (docs/performance.md);
// - `hybrid`: X25519 in node:crypto (about 15× faster than tweetnacl: bench/curve-handshake.ts), boxes in
//   tweetnacl, for a platform sodium-native has no binary for;
// - `tweetnacl`: pure JavaScript, the reference the others are tested against.
// HSalsa20 (one block per key pair) always comes from tweetnacl: sodium-native does not export it.

import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
  randomFillSync,
} from 'node:crypto'
import { createRequire } from 'node:module'
import nacl from 'tweetnacl'

/** RFC 26: keys are 32 octets. */
export const CURVE_KEY_SIZE = 32
/** RFC 26: nonces are 24 octets. */
export const CURVE_NONCE_SIZE = 24
/** RFC 26: a box is 16 octets larger than what it holds (the Poly1305 tag). */
export const CURVE_BOX_OVERHEAD = 16

/** An X25519 key pair, 32 octets each. */
export interface CurveKeyPair {
  publicKey: Uint8Array
  secretKey: Uint8Array
}

/**
 * The primitives of a CurveZMQ server. One instance is meant to be shared by every connection of
 * a listener: implementations may cache per-key state (the node:crypto one keeps a KeyObject per
 * secret-key array it has seen, by identity, so pass the same array each time).
 */
export interface CurveCrypto {
  /** `sodium` (libsodium), `hybrid` (node:crypto X25519 + tweetnacl) or `tweetnacl`. */
  readonly backend: CurveBackend
  /** Octets from a cryptographically strong source. */
  randomBytes(n: number): Uint8Array
  /** A fresh X25519 key pair (NaCl crypto_box_keypair). */
  generateKeyPair(): CurveKeyPair
  /**
   * The public key of a secret key (NaCl crypto_scalarmult_base).
   * @throws {RangeError} if the key is not 32 octets
   */
  derivePublicKey(secretKey: Uint8Array): Uint8Array
  /**
   * NaCl crypto_box_beforenm: HSalsa20 of the X25519 shared secret, the key of every box between
   * the two key pairs.
   * @returns the 32-octet key, or null when the shared secret is all zero (an all-zero or other
   *   low-order public key: libsodium and OpenSSL refuse those, tweetnacl would not)
   * @throws {RangeError} if a key is not 32 octets
   */
  precompute(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array | null
  /** NaCl crypto_box_afternm (≡ crypto_secretbox): the box, 16 octets longer than `message`. */
  seal(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array
  /** NaCl crypto_box_open_afternm (≡ crypto_secretbox_open): the plaintext, or null if forged. */
  open(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null
  /**
   * {@link open} where the box lies, for the message path: the plaintext overwrites the
   * ciphertext and comes back as a view of `box` from octet 16 on, so nothing is allocated. The
   * caller must own `box` (frames are views of the TCP chunks a connection was handed).
   * @returns the view, or null if forged (then `box` is unchanged)
   */
  openInPlace(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null
  /**
   * {@link seal} where the message lies: `buffer` holds 16 spare octets, then the message; the
   * box (tag, then ciphertext) replaces them, so a frame can be built in one allocation.
   */
  sealInPlace(buffer: Uint8Array, nonce: Uint8Array, key: Uint8Array): void
}

export type CurveBackend = 'sodium' | 'hybrid' | 'tweetnacl'

/** Options of {@link createCurveCrypto}. */
export interface CurveCryptoOptions {
  /**
   * `auto` (default): libsodium when sodium-native loads, else node:crypto X25519 when the
   * runtime has it, else tweetnacl alone. Naming a backend insists on it (throws if it is not
   * available here); tests and benchmarks use that to compare them.
   */
  backend?: 'auto' | CurveBackend
}

interface LowLevel {
  crypto_core_hsalsa20(
    out: Uint8Array,
    input: Uint8Array,
    key: Uint8Array,
    constant: Uint8Array,
  ): number
}
// tweetnacl's typings omit `lowlevel`, which the library exports (nacl-fast.js).
const lowlevel = (nacl as unknown as { lowlevel: LowLevel }).lowlevel

// crypto_box_beforenm = HSalsa20(key = X25519 secret, input = 16 zero octets, constant = sigma).
const SIGMA = new TextEncoder().encode('expand 32-byte k')
const ZERO16 = new Uint8Array(16)
// PKCS#8 DER prefix of an X25519 private key (RFC 8410): the 32 secret octets follow.
const PKCS8_X25519_PREFIX = Uint8Array.from([
  0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
])

function checkKey(key: Uint8Array, what: string): void {
  if (key.length !== CURVE_KEY_SIZE) {
    throw new RangeError(`${what} must be ${CURVE_KEY_SIZE} octets, got ${key.length}`)
  }
}

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== CURVE_NONCE_SIZE) {
    throw new RangeError(`a nonce must be ${CURVE_NONCE_SIZE} octets, got ${nonce.length}`)
  }
}

function isAllZero(bytes: Uint8Array): boolean {
  let bits = 0
  for (let index = 0; index < bytes.length; index++) bits |= bytes[index] ?? 0
  return bits === 0
}

function boxKey(sharedSecret: Uint8Array): Uint8Array {
  const key = new Uint8Array(CURVE_KEY_SIZE)
  lowlevel.crypto_core_hsalsa20(key, ZERO16, sharedSecret, SIGMA)
  return key
}

function toBase64Url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

function fromBase64Url(text: string | undefined): Uint8Array {
  return Uint8Array.from(Buffer.from(text ?? '', 'base64url'))
}

/** Symmetric boxes and randomness, the same in both backends. */
abstract class BaseCurveCrypto implements CurveCrypto {
  abstract readonly backend: CurveBackend
  abstract generateKeyPair(): CurveKeyPair
  abstract derivePublicKey(secretKey: Uint8Array): Uint8Array
  abstract precompute(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array | null

  randomBytes(n: number): Uint8Array {
    return randomFillSync(new Uint8Array(n))
  }

  seal(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
    return nacl.secretbox(message, nonce, key)
  }

  open(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null {
    return nacl.secretbox.open(box, nonce, key)
  }

  // tweetnacl has no in-place API: same contract, with a copy.
  openInPlace(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null {
    const plain = nacl.secretbox.open(box, nonce, key)
    if (!plain) return null
    const view = box.subarray(CURVE_BOX_OVERHEAD)
    view.set(plain)
    return view
  }

  sealInPlace(buffer: Uint8Array, nonce: Uint8Array, key: Uint8Array): void {
    buffer.set(nacl.secretbox(buffer.subarray(CURVE_BOX_OVERHEAD), nonce, key))
  }
}

/** Pure tweetnacl: ~1,700 X25519 per second per core. */
class TweetnaclCurveCrypto extends BaseCurveCrypto {
  readonly backend = 'tweetnacl'

  generateKeyPair(): CurveKeyPair {
    const { publicKey, secretKey } = nacl.box.keyPair()
    return { publicKey, secretKey }
  }

  derivePublicKey(secretKey: Uint8Array): Uint8Array {
    checkKey(secretKey, 'a secret key')
    return nacl.scalarMult.base(secretKey)
  }

  precompute(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array | null {
    checkKey(theirPublicKey, 'a public key')
    checkKey(mySecretKey, 'a secret key')
    if (isAllZero(theirPublicKey)) return null
    // tweetnacl returns an all-zero secret for low-order points instead of failing.
    const shared = nacl.scalarMult(mySecretKey, theirPublicKey)
    if (isAllZero(shared)) return null
    const key = boxKey(shared)
    shared.fill(0)
    return key
  }
}

/** X25519 in node:crypto (OpenSSL) with cached private KeyObjects; ~30,000 per second per core. */
class HybridCurveCrypto extends BaseCurveCrypto {
  readonly backend = 'hybrid'
  // By array identity: our long-term key (one array per listener) and the transient keys made by
  // generateKeyPair. A WeakMap lets a connection's keys go with the connection.
  readonly #privateKeys = new WeakMap<Uint8Array, KeyObject>()
  readonly #publicKeys = new WeakMap<Uint8Array, Uint8Array>()

  generateKeyPair(): CurveKeyPair {
    const { privateKey } = generateKeyPairSync('x25519')
    const jwk = privateKey.export({ format: 'jwk' })
    const pair = { publicKey: fromBase64Url(jwk.x), secretKey: fromBase64Url(jwk.d) }
    this.#privateKeys.set(pair.secretKey, privateKey)
    this.#publicKeys.set(pair.secretKey, pair.publicKey)
    return { publicKey: pair.publicKey.slice(), secretKey: pair.secretKey }
  }

  derivePublicKey(secretKey: Uint8Array): Uint8Array {
    checkKey(secretKey, 'a secret key')
    let publicKey = this.#publicKeys.get(secretKey)
    if (!publicKey) {
      const jwk = createPublicKey(this.#privateKey(secretKey)).export({ format: 'jwk' })
      publicKey = fromBase64Url(jwk.x)
      this.#publicKeys.set(secretKey, publicKey)
    }
    return publicKey.slice()
  }

  precompute(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array | null {
    checkKey(theirPublicKey, 'a public key')
    checkKey(mySecretKey, 'a secret key')
    if (isAllZero(theirPublicKey)) return null
    let shared: Buffer
    try {
      // JWK is node:crypto's fast public-key import (~150k/s against ~13k/s for SPKI DER).
      const publicKey = createPublicKey({
        key: { kty: 'OKP', crv: 'X25519', x: toBase64Url(theirPublicKey) },
        format: 'jwk',
      })
      shared = diffieHellman({ privateKey: this.#privateKey(mySecretKey), publicKey })
    } catch {
      // OpenSSL fails the derivation when the shared secret is all zero (a low-order point).
      return null
    }
    if (isAllZero(shared)) return null
    const key = boxKey(shared)
    shared.fill(0)
    return key
  }

  #privateKey(secretKey: Uint8Array): KeyObject {
    let key = this.#privateKeys.get(secretKey)
    if (!key) {
      const der = new Uint8Array(PKCS8_X25519_PREFIX.length + CURVE_KEY_SIZE)
      der.set(PKCS8_X25519_PREFIX)
      der.set(secretKey, PKCS8_X25519_PREFIX.length)
      key = createPrivateKey({ key: Buffer.from(der.buffer), format: 'der', type: 'pkcs8' })
      der.fill(0)
      this.#privateKeys.set(secretKey, key)
    }
    return key
  }
}

/** The part of sodium-native's API this module uses (its package ships no typings). */
interface SodiumNative {
  crypto_box_keypair(publicKey: Uint8Array, secretKey: Uint8Array): void
  crypto_scalarmult_base(publicKey: Uint8Array, secretKey: Uint8Array): void
  /** @throws {Error} when the result is all zero (a low-order public key) */
  crypto_scalarmult(shared: Uint8Array, secretKey: Uint8Array, publicKey: Uint8Array): void
  crypto_secretbox_easy(
    box: Uint8Array,
    message: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
  ): void
  crypto_secretbox_open_easy(
    message: Uint8Array,
    box: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
  ): boolean
  // libsodium allows the message and the ciphertext to be the same memory.
  crypto_secretbox_detached(
    cipher: Uint8Array,
    tag: Uint8Array,
    message: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
  ): void
  crypto_secretbox_open_detached(
    message: Uint8Array,
    cipher: Uint8Array,
    tag: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
  ): boolean
  randombytes_buf(out: Uint8Array): void
}

let sodiumModule: SodiumNative | null | undefined

/** sodium-native, or null when it cannot load here (no prebuilt binary for this platform). */
function loadSodium(): SodiumNative | null {
  if (sodiumModule === undefined) {
    try {
      sodiumModule = createRequire(import.meta.url)('sodium-native') as SodiumNative
    } catch {
      sodiumModule = null
    }
  }
  return sodiumModule
}

/** libsodium: ~32,000 X25519 and ~1.3M 100-byte box opens per second per core. */
class SodiumCurveCrypto implements CurveCrypto {
  readonly backend = 'sodium'
  readonly #sodium: SodiumNative
  readonly #publicKeys = new WeakMap<Uint8Array, Uint8Array>()

  constructor(sodium: SodiumNative) {
    this.#sodium = sodium
  }

  randomBytes(n: number): Uint8Array {
    const bytes = new Uint8Array(n)
    this.#sodium.randombytes_buf(bytes)
    return bytes
  }

  generateKeyPair(): CurveKeyPair {
    const pair = {
      publicKey: new Uint8Array(CURVE_KEY_SIZE),
      secretKey: new Uint8Array(CURVE_KEY_SIZE),
    }
    this.#sodium.crypto_box_keypair(pair.publicKey, pair.secretKey)
    return pair
  }

  derivePublicKey(secretKey: Uint8Array): Uint8Array {
    checkKey(secretKey, 'a secret key')
    // By array identity, like the hybrid backend: a listener's key is derived once, not per
    // connection (a scalar multiplication, ~5 % of a handshake over TCP).
    let publicKey = this.#publicKeys.get(secretKey)
    if (!publicKey) {
      publicKey = new Uint8Array(CURVE_KEY_SIZE)
      this.#sodium.crypto_scalarmult_base(publicKey, secretKey)
      this.#publicKeys.set(secretKey, publicKey)
    }
    return publicKey.slice()
  }

  precompute(theirPublicKey: Uint8Array, mySecretKey: Uint8Array): Uint8Array | null {
    checkKey(theirPublicKey, 'a public key')
    checkKey(mySecretKey, 'a secret key')
    const shared = new Uint8Array(CURVE_KEY_SIZE)
    try {
      this.#sodium.crypto_scalarmult(shared, mySecretKey, theirPublicKey)
    } catch {
      // libsodium refuses an all-zero shared secret (a low-order public key).
      return null
    }
    const key = boxKey(shared)
    shared.fill(0)
    return key
  }

  seal(message: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array {
    checkKey(key, 'a box key')
    checkNonce(nonce)
    const box = new Uint8Array(message.length + CURVE_BOX_OVERHEAD)
    this.#sodium.crypto_secretbox_easy(box, message, nonce, key)
    return box
  }

  open(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null {
    checkKey(key, 'a box key')
    checkNonce(nonce)
    if (box.length < CURVE_BOX_OVERHEAD) return null
    const message = new Uint8Array(box.length - CURVE_BOX_OVERHEAD)
    return this.#sodium.crypto_secretbox_open_easy(message, box, nonce, key) ? message : null
  }

  openInPlace(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | null {
    checkKey(key, 'a box key')
    checkNonce(nonce)
    if (box.length < CURVE_BOX_OVERHEAD) return null
    const message = box.subarray(CURVE_BOX_OVERHEAD)
    const tag = box.subarray(0, CURVE_BOX_OVERHEAD)
    // libsodium checks the tag before it writes, so a forged box is left as it was.
    return this.#sodium.crypto_secretbox_open_detached(message, message, tag, nonce, key)
      ? message
      : null
  }

  sealInPlace(buffer: Uint8Array, nonce: Uint8Array, key: Uint8Array): void {
    checkKey(key, 'a box key')
    checkNonce(nonce)
    if (buffer.length < CURVE_BOX_OVERHEAD) {
      throw new RangeError(`a buffer to seal needs ${CURVE_BOX_OVERHEAD} spare octets first`)
    }
    const message = buffer.subarray(CURVE_BOX_OVERHEAD)
    this.#sodium.crypto_secretbox_detached(
      message,
      buffer.subarray(0, CURVE_BOX_OVERHEAD),
      message,
      nonce,
      key,
    )
  }
}

function hasNodeX25519(): boolean {
  try {
    generateKeyPairSync('x25519')
    return true
  } catch {
    return false
  }
}

/**
 * The crypto for CURVE listeners; share one instance between the connections of a listener.
 * @throws {Error} when the backend named is not available in this runtime
 */
export function createCurveCrypto(options: CurveCryptoOptions = {}): CurveCrypto {
  const backend = options.backend ?? 'auto'
  if (backend === 'tweetnacl') return new TweetnaclCurveCrypto()
  if (backend === 'auto' || backend === 'sodium') {
    const sodium = loadSodium()
    if (sodium) return new SodiumCurveCrypto(sodium)
    if (backend === 'sodium') {
      throw new Error('sodium-native does not load here (no prebuilt binary for this platform?)')
    }
  }
  if (hasNodeX25519()) return new HybridCurveCrypto()
  if (backend === 'hybrid') throw new Error('node:crypto has no X25519 in this runtime')
  return new TweetnaclCurveCrypto()
}
