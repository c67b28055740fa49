// Refused connections (and failed handshakes) in the log without flooding it: the first of each
// reason in an interval as its own line, then one summary line for the interval, with the counts
// per reason and the addresses seen most. A flood costs a few lines, not one per connection.
import { hostKey } from './connection-limits.ts'
import type { Logger } from './log.ts'

/** Default length of a summary interval, ms. */
export const DEFAULT_REFUSAL_LOG_INTERVAL_MS = 10_000
/** Addresses named in a summary. */
const TOP_ADDRESSES = 5
/** Addresses counted in one interval; refusals from more are counted under `other`. */
const MAX_COUNTED_ADDRESSES = 1024

/** The lines a {@link RefusalLog} writes: one event, and the summary of an interval. */
export interface RefusalLogLines {
  line: string
  summary: string
}

const CONNECTIONS_REFUSED: RefusalLogLines = {
  line: 'connection refused',
  summary: 'connections refused',
}

export class RefusalLog {
  readonly #logger: Logger
  readonly #intervalMs: number
  readonly #lines: RefusalLogLines
  #byReason = new Map<string, number>()
  #byAddress = new Map<string, number>()
  #other = 0
  #suppressed = 0
  #timer: NodeJS.Timeout | undefined

  constructor(
    logger: Logger,
    intervalMs: number = DEFAULT_REFUSAL_LOG_INTERVAL_MS,
    lines: RefusalLogLines = CONNECTIONS_REFUSED,
  ) {
    this.#logger = logger
    this.#intervalMs = intervalMs
    this.#lines = lines
  }

  /**
   * One connection from `address` (`peer`: as logs show it) refused (or failed) for `code`;
   * `details` go on its own line, when it gets one.
   */
  refused(code: string, peer: string, address: string, details: object = {}): void {
    const seen = this.#byReason.get(code) ?? 0
    this.#byReason.set(code, seen + 1)
    const key = hostKey(address)
    const count = this.#byAddress.get(key)
    if (count !== undefined) this.#byAddress.set(key, count + 1)
    else if (this.#byAddress.size < MAX_COUNTED_ADDRESSES) this.#byAddress.set(key, 1)
    else this.#other++
    if (seen === 0) {
      this.#logger.warn({ peer, code, ...details }, this.#lines.line)
    } else {
      this.#suppressed++
    }
    if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.#intervalMs)
      this.#timer.unref()
    }
  }

  /** Ends the interval: logs its summary if any refusal went without a line of its own. */
  flush(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#suppressed > 0) {
      const top = [...this.#byAddress]
        .sort((a, b) => b[1] - a[1])
        .slice(0, TOP_ADDRESSES)
        .map(([address, count]) => ({ address, count }))
      this.#logger.warn(
        {
          intervalMs: this.#intervalMs,
          refused: Object.fromEntries(this.#byReason),
          top,
          ...(this.#other > 0 ? { otherAddresses: this.#other } : {}),
        },
        this.#lines.summary,
      )
    }
    this.#byReason = new Map()
    this.#byAddress = new Map()
    this.#other = 0
    this.#suppressed = 0
  }
}
