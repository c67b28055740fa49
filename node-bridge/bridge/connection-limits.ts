// Admission control for a listener: connections in total and per IP (an IPv6 /64 counting as one
// address), new connections per second per IP, and a backoff for an address whose handshakes
// fail, so one host cannot exhaust the bridge's sockets or its CPU.

const IPV4_MAPPED = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i
const IPV4_TAIL = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/
const HEX_GROUP = /^[0-9a-f]{1,4}$/

/**
 * What the per-IP limits count as one address: an IPv4 address as it is (an IPv4-mapped IPv6
 * address, as a dual-stack socket reports IPv4 clients, as that IPv4 address), and an IPv6
 * address as its /64, the smallest prefix a site is given (RFC 6177), so that one host cannot
 * take a new address of its /64 for each connection. Anything else is returned as it is.
 */
export function hostKey(address: string): string {
  const zone = address.indexOf('%')
  const host = (zone >= 0 ? address.slice(0, zone) : address).toLowerCase()
  if (!host.includes(':')) return host
  const mapped = IPV4_MAPPED.exec(host)
  if (mapped) return mapped[1] as string
  const groups = ipv6Groups(host)
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : host
}

/**
 * The one address a backoff is kept for: the address itself (an IPv4-mapped one as IPv4, no
 * zone), not its /64. A backoff refuses everyone under its key, so it must be the offender's
 * own: a /64 or a NAT shared with others would let one failing client lock all of them out.
 */
export function exactAddress(address: string): string {
  const zone = address.indexOf('%')
  const host = (zone >= 0 ? address.slice(0, zone) : address).toLowerCase()
  return IPV4_MAPPED.exec(host)?.[1] ?? host
}

/** The eight 16-bit groups of an IPv6 address, without leading zeros; undefined if malformed. */
function ipv6Groups(host: string): string[] | undefined {
  let text = host
  // A dotted IPv4 tail stands for the last two groups.
  const tail = IPV4_TAIL.exec(text)
  if (tail) {
    const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number]
    text = `${text.slice(0, tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const left = halves[0] ? halves[0].split(':') : []
  const right = halves.length === 2 && halves[1] ? halves[1].split(':') : []
  const missing = 8 - left.length - right.length
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined
  const groups = [...left, ...Array.from({ length: missing }, () => '0'), ...right]
  if (!groups.every((group) => HEX_GROUP.test(group))) return undefined
  return groups.map((group) => Number.parseInt(group, 16).toString(16))
}

export interface ConnectionLimitsOptions {
  maxConnections: number
  maxConnectionsPerIp: number
  /** New handshakes a second per IP; 0 turns the rate limit off. Bursts of twice the rate pass. */
  handshakesPerSecondPerIp: number
  /**
   * After a failed handshake, new connections from that address are refused for
   * HANDSHAKE_BACKOFF_INITIAL_MS, doubling with each further failure up to this many ms; a
   * successful handshake starts it over. 0 (the default) turns the backoff off.
   */
  handshakeBackoffMaxMs?: number
  now?: () => number
}

/** The first backoff after a failed handshake, ms; it doubles with each further failure. */
export const HANDSHAKE_BACKOFF_INITIAL_MS = 1000
/**
 * Addresses remembered at most. Past it, the oldest without an open connection are forgotten
 * first, so a spray from many addresses (IPv6 /64s are plentiful) cannot grow this map unbounded.
 */
const MAX_TRACKED_HOSTS = 65_536

/** Why a connection was refused. */
export type Refusal = 'TOO_MANY_CONNECTIONS' | 'TOO_MANY_HANDSHAKES' | 'HANDSHAKE_BACKOFF'

interface HostState {
  connections: number
  tokens: number
  refilledAt: number
}

interface Backoff {
  /** Failed handshakes since the last success (or since the address was forgotten). */
  failures: number
  /** New connections are refused until then (the clock of `now`). */
  until: number
}

export class ConnectionLimits {
  readonly #options: ConnectionLimitsOptions
  readonly #now: () => number
  readonly #hosts = new Map<string, HostState>()
  /** By {@link exactAddress}, in the order last failed (a Map keeps insertion order). */
  readonly #backoffs = new Map<string, Backoff>()
  #connections = 0

  constructor(options: ConnectionLimitsOptions) {
    this.#options = options
    this.#now = options.now ?? (() => performance.now())
  }

  /** Addresses with state (open connections, a bucket not yet full, or a backoff). */
  get trackedHosts(): number {
    return this.#hosts.size + this.#backoffs.size
  }

  /**
   * Admits one connection from `address`, or says why not. Call `release` with the same address
   * when an admitted one ends. Addresses are counted by {@link hostKey}.
   */
  admit(address: string): Refusal | undefined {
    // Checked first and costing nothing else: a client that keeps failing (a libzmq CURVE
    // client with a wrong server key retries every 100-200 ms, for ever) is turned away at
    // accept, with no handshake to pay for.
    const backoff = this.#backoffs.get(exactAddress(address))
    if (backoff && backoff.until > this.#now()) return 'HANDSHAKE_BACKOFF'
    const host = hostKey(address)
    const { maxConnections, maxConnectionsPerIp, handshakesPerSecondPerIp: rate } = this.#options
    let state = this.#hosts.get(host)
    if (!state) {
      this.#makeRoom(this.#hosts, (entry) => entry.connections === 0)
      state = this.#newState()
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

  /**
   * A connection from `address` failed its handshake: refuse that address's next ones for a
   * while (when the backoff is on), twice as long as after its previous failure, at most the
   * maximum.
   */
  handshakeFailed(address: string): void {
    const maxMs = this.#options.handshakeBackoffMaxMs ?? 0
    if (maxMs <= 0) return
    const key = exactAddress(address)
    const now = this.#now()
    const backoff = this.#backoffs.get(key) ?? { failures: 0, until: 0 }
    if (!this.#backoffs.has(key)) {
      this.#makeRoom(this.#backoffs, (entry) => entry.until + maxMs <= now)
    }
    backoff.until = now + Math.min(HANDSHAKE_BACKOFF_INITIAL_MS * 2 ** backoff.failures, maxMs)
    backoff.failures++
    // Moved to the end: the oldest failures are the first forgotten.
    this.#backoffs.delete(key)
    this.#backoffs.set(key, backoff)
  }

  /** A connection from `address` completed its handshake: that address's backoff starts over. */
  handshakeSucceeded(address: string): void {
    this.#backoffs.delete(exactAddress(address))
  }

  release(address: string): void {
    const host = hostKey(address)
    const state = this.#hosts.get(host)
    if (!state) return
    state.connections--
    this.#connections--
    this.#forgetIfIdle(host, state)
  }

  /**
   * Forgets hosts with no connection whose bucket has refilled, and backoffs over for longer
   * than the longest backoff; call it now and then.
   */
  sweep(): void {
    for (const [host, state] of this.#hosts) this.#forgetIfIdle(host, state)
    const now = this.#now()
    const maxMs = this.#options.handshakeBackoffMaxMs ?? 0
    for (const [key, backoff] of this.#backoffs) {
      if (backoff.until + maxMs <= now) this.#backoffs.delete(key)
    }
  }

  #newState(): HostState {
    const rate = this.#options.handshakesPerSecondPerIp
    return { connections: 0, tokens: 2 * rate, refilledAt: this.#now() }
  }

  /**
   * Keeps `map` under MAX_TRACKED_HOSTS entries before one is added: forgets some that
   * `forgettable` allows, oldest first, else the oldest whatever they hold (a backoff forgotten
   * early only lets an offender retry sooner), so a spray from many addresses (IPv6 /64s are
   * plentiful) cannot grow it without bound.
   */
  #makeRoom<T>(map: Map<string, T>, forgettable: (entry: T) => boolean): void {
    if (map.size < MAX_TRACKED_HOSTS) return
    let budget = 16
    for (const [key, entry] of map) {
      if (!forgettable(entry)) continue
      map.delete(key)
      if (--budget === 0) return
    }
    if (map !== (this.#hosts as Map<string, unknown>)) {
      for (const key of map.keys()) {
        map.delete(key)
        if (--budget === 0) return
      }
    }
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
