// Admission control for a listener: connections in total and per IP, and (CURVE) handshakes
// per second per IP, so one host cannot exhaust the bridge's sockets or its CPU.

export interface ConnectionLimitsOptions {
  maxConnections: number
  maxConnectionsPerIp: number
  /** New handshakes a second per IP; 0 turns the rate limit off. Bursts of twice the rate pass. */
  handshakesPerSecondPerIp: number
  now?: () => number
}

/** Why a connection was refused. */
export type Refusal = 'TOO_MANY_CONNECTIONS' | 'TOO_MANY_HANDSHAKES'

interface HostState {
  connections: number
  tokens: number
  refilledAt: number
}

export class ConnectionLimits {
  readonly #options: ConnectionLimitsOptions
  readonly #now: () => number
  readonly #hosts = new Map<string, HostState>()
  #connections = 0

  constructor(options: ConnectionLimitsOptions) {
    this.#options = options
    this.#now = options.now ?? (() => performance.now())
  }

  /** Hosts with state (open connections or a bucket not yet full). */
  get trackedHosts(): number {
    return this.#hosts.size
  }

  /** Admits one connection from `host`, or says why not. Call `release` when an admitted one ends. */
  admit(host: string): Refusal | undefined {
    const { maxConnections, maxConnectionsPerIp, handshakesPerSecondPerIp: rate } = this.#options
    const state = this.#hosts.get(host) ?? {
      connections: 0,
      tokens: 2 * rate,
      refilledAt: this.#now(),
    }
    if (this.#connections >= maxConnections || state.connections >= maxConnectionsPerIp) {
      this.#forgetIfIdle(host, state)
      return 'TOO_MANY_CONNECTIONS'
    }
    if (rate > 0) {
      const now = this.#now()
      state.tokens = Math.min(2 * rate, state.tokens + ((now - state.refilledAt) / 1000) * rate)
      state.refilledAt = now
      if (state.tokens < 1) {
        this.#hosts.set(host, state)
        return 'TOO_MANY_HANDSHAKES'
      }
      state.tokens -= 1
    }
    state.connections++
    this.#connections++
    this.#hosts.set(host, state)
    return undefined
  }

  release(host: string): void {
    const state = this.#hosts.get(host)
    if (!state) return
    state.connections--
    this.#connections--
    this.#forgetIfIdle(host, state)
  }

  /** Forgets hosts with no connection whose bucket has refilled; call it now and then. */
  sweep(): void {
    for (const [host, state] of this.#hosts) this.#forgetIfIdle(host, state)
  }

  /** A host is remembered only while it holds connections or its bucket is refilling. */
  #forgetIfIdle(host: string, state: HostState): void {
    if (state.connections > 0) return
    const rate = this.#options.handshakesPerSecondPerIp
    const refilled =
      rate === 0 || state.tokens + ((this.#now() - state.refilledAt) / 1000) * rate >= 2 * rate
    if (refilled) this.#hosts.delete(host)
  }
}
