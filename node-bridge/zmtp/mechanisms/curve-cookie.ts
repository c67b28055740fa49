// The CurveZMQ cookie key (RFC 26 §The WELCOME Command): a secret that seals each WELCOME's
// cookie, shared by the connections of a listener and replaced on a timer-free schedule.
import { randomFillSync } from 'node:crypto'
import type { CurveCrypto } from './curve-crypto.ts'

/** Default rotation interval: a key seals cookies for 30 s and opens them for at most 60 s. */
export const DEFAULT_COOKIE_ROTATION_MS = 30_000

/** Options of a {@link CookieKeyring}. */
export interface CookieKeyringOptions {
  /**
   * How long a key seals new cookies, in ms (default 30 000). A key opens cookies for at least
   * one and less than two intervals; RFC 26 asks to discard it "after a short interval, for
   * example 60 seconds".
   */
  rotationMs?: number
  /** A clock in ms (default `performance.now`, which never goes back). Tests pass their own. */
  now?: () => number
  /** Where new keys' random octets come from (default node:crypto); a CurveCrypto will do. */
  crypto?: Pick<CurveCrypto, 'randomBytes'>
}

interface CookieKey {
  key: Uint8Array
  createdAt: number
}

const KEY_SIZE = 32

/**
 * Current and previous cookie keys. Rotation happens lazily when the keyring is used, so there
 * are no timers; a key retired mid-handshake still opens its cookies (it becomes the previous
 * key), a key two rotations old does not. Retired keys are overwritten with zeros.
 */
export class CookieKeyring {
  readonly #rotationMs: number
  readonly #now: () => number
  readonly #randomBytes: (n: number) => Uint8Array
  #current: CookieKey | undefined
  #previous: CookieKey | undefined

  /** @throws {RangeError} if rotationMs is not a positive finite number */
  constructor(options: CookieKeyringOptions = {}) {
    const rotationMs = options.rotationMs ?? DEFAULT_COOKIE_ROTATION_MS
    if (!Number.isFinite(rotationMs) || rotationMs <= 0) {
      throw new RangeError(`rotationMs must be a positive number, got ${rotationMs}`)
    }
    this.#rotationMs = rotationMs
    this.#now = options.now ?? (() => performance.now())
    const crypto = options.crypto
    this.#randomBytes = crypto
      ? (n) => crypto.randomBytes(n)
      : (n) => randomFillSync(new Uint8Array(n))
  }

  /** The key to seal a new cookie with (rotated first when due). */
  current(): Uint8Array {
    return this.#refresh().key
  }

  /** The keys a cookie may have been sealed with: the current one, then the previous if still valid. */
  accepted(): Uint8Array[] {
    const current = this.#refresh()
    return this.#previous ? [current.key, this.#previous.key] : [current.key]
  }

  #refresh(): CookieKey {
    const now = this.#now()
    let current = this.#current
    if (!current || now - current.createdAt >= this.#rotationMs) {
      this.#previous?.key.fill(0)
      this.#previous = current
      current = { key: this.#randomBytes(KEY_SIZE), createdAt: now }
      if (current.key.length !== KEY_SIZE)
        throw new RangeError('randomBytes returned the wrong size')
      this.#current = current
    }
    // A key opens cookies for less than two intervals after it was made.
    if (this.#previous && now - this.#previous.createdAt >= 2 * this.#rotationMs) {
      this.#previous.key.fill(0)
      this.#previous = undefined
    }
    return current
  }
}
