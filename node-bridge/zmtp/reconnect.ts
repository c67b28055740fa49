// The reconnect policy of a socket that dials, with libzmq's semantics, for every socket type
// here (a PUSH dialling a PULL, the bridge's PULL dialling a PUSH that binds).
import { LOCAL_FAILURES, type ZmtpError, ZmtpErrorCode } from './errors.ts'

/** libzmq's defaults: ZMQ_RECONNECT_IVL 100 ms, ZMQ_RECONNECT_IVL_MAX 0 (no backoff). */
export const DEFAULT_RECONNECT_IVL_MS = 100
export const DEFAULT_RECONNECT_IVL_MAX_MS = 0

/**
 * Failures after which we dial again besides a plain close: timeouts (a dead or silent peer), as
 * libzmq; failures of our own (LOCAL_FAILURES: a full budget, a bug), which libzmq has no
 * equivalent of; and a message over our limits, which libzmq treats as a protocol error
 * (EMSGSIZE) but ours can be lowered by the channel while a peer is connected, and a bound PUSH
 * left without its PULL would queue up to its high-water mark for good.
 */
const REDIAL_AFTER: ReadonlySet<string> = new Set([
  ZmtpErrorCode.HANDSHAKE_TIMEOUT,
  ZmtpErrorCode.HEARTBEAT_TIMEOUT,
  ZmtpErrorCode.IDLE_TIMEOUT,
  ZmtpErrorCode.FRAME_TOO_LARGE,
  ZmtpErrorCode.TOO_MANY_FRAMES,
  ...LOCAL_FAILURES,
])

/**
 * Whether to dial again after a connection ended with `error` (undefined: a plain close, or TCP
 * could not connect). As libzmq's `session_base_t::engine_error` (src/session_base.cpp): a
 * connection or timeout error reconnects; a protocol error (the peer's ERROR, a refused key, a
 * wrong socket type, mechanism or version, anything malformed) ends the session for good. See
 * REDIAL_AFTER for where we differ.
 */
export function reconnectsAfter(error: ZmtpError | undefined): boolean {
  return error === undefined || REDIAL_AFTER.has(error.code)
}

/**
 * The wait before each reconnect, as libzmq's `get_new_reconnect_ivl` (src/tcp_connecter.cpp):
 * the current interval plus a random 0..reconnectIvl jitter; then, when reconnectIvlMax exceeds
 * reconnectIvl, the interval doubles up to it. A completed handshake starts it over.
 */
export class ReconnectBackoff {
  readonly #ivl: number
  readonly #ivlMax: number
  readonly #random: () => number
  #current: number

  /**
   * @param options.reconnectIvl base delay, ms (libzmq ZMQ_RECONNECT_IVL; default 100)
   * @param options.reconnectIvlMax ceiling of the doubling, ms; 0 or below the base: no doubling
   * @param options.random uniform [0, 1) for the jitter (tests pin it); default Math.random
   */
  constructor(
    options: { reconnectIvl?: number; reconnectIvlMax?: number; random?: () => number } = {},
  ) {
    this.#ivl = Math.max(0, options.reconnectIvl ?? DEFAULT_RECONNECT_IVL_MS)
    this.#ivlMax = options.reconnectIvlMax ?? DEFAULT_RECONNECT_IVL_MAX_MS
    this.#random = options.random ?? Math.random
    this.#current = this.#ivl
  }

  /** The delay before the next attempt, ms; grows the interval for the one after. */
  next(): number {
    const delay = this.#current + Math.floor(this.#random() * this.#ivl)
    if (this.#ivlMax > this.#ivl) this.#current = Math.min(this.#current * 2, this.#ivlMax)
    return delay
  }

  /** After a completed handshake: the next failure waits the base interval again. */
  reset(): void {
    this.#current = this.#ivl
  }
}
