// The octets that connections not yet READY may hold, all listeners of the process together: one
// budget, so that many unauthenticated peers cannot add up to more memory than the operator chose.

/** Default budget: 16 MiB, room for 2,000 connections each holding a whole 8 KiB handshake frame. */
export const DEFAULT_PREAUTH_BUDGET_BYTES = 16 * 1024 * 1024

/**
 * Default budget of messages under way on ready connections, all listeners together: 256 MiB,
 * 16 messages of the largest size at once. A NULL peer is ready at once and a CURVE peer of a
 * listener without an allow-list as soon as it knows the public key: READY is not
 * authentication there, and 100 connections an IP each holding most of a 16 MiB message must
 * not add up to more than this.
 */
export const DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES = 256 * 1024 * 1024

/**
 * A counter of octets reserved against a limit. Connections reserve what they hold before their
 * handshake is done (the greeting buffer, a partial frame) and release it once READY or closed.
 */
export class PreauthBudget {
  readonly limit: number
  #used = 0
  #peak = 0

  /**
   * @param limitBytes the most octets reserved at once (default {@link DEFAULT_PREAUTH_BUDGET_BYTES})
   * @throws {RangeError} if limitBytes is not a positive safe integer
   */
  constructor(limitBytes: number = DEFAULT_PREAUTH_BUDGET_BYTES) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) {
      throw new RangeError(
        `the budget must be a positive whole number of octets, got ${limitBytes}`,
      )
    }
    this.limit = limitBytes
  }

  /** Octets reserved now. */
  get used(): number {
    return this.#used
  }

  /** The most octets ever reserved at once. */
  get peak(): number {
    return this.#peak
  }

  /** Reserves `octets` if they fit under the limit; false (and nothing reserved) if not. */
  tryReserve(octets: number): boolean {
    if (this.#used + octets > this.limit) return false
    this.#used += octets
    if (this.#used > this.#peak) this.#peak = this.#used
    return true
  }

  /** Gives back octets reserved earlier. */
  release(octets: number): void {
    this.#used = Math.max(0, this.#used - octets)
  }
}

/** What one connection holds against a budget: brought to a new amount, or given back whole. */
export class Reservation {
  readonly budget: PreauthBudget
  #held = 0

  constructor(budget: PreauthBudget) {
    this.budget = budget
  }

  get held(): number {
    return this.#held
  }

  /**
   * Reserves or gives back the difference to `octets`.
   * @returns false, with nothing changed, when the increase does not fit the budget.
   */
  update(octets: number): boolean {
    if (octets > this.#held && !this.budget.tryReserve(octets - this.#held)) return false
    if (octets < this.#held) this.budget.release(this.#held - octets)
    this.#held = octets
    return true
  }

  release(): void {
    this.update(0)
  }
}
