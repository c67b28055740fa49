// A small per-isolate cache whose entries are trusted for a fixed time and whose size is
// bounded (the oldest written go first): what the Worker keeps of the registry's answers.
// Concurrent misses of one key share one load, so a burst of requests with one token is one
// registry call; a load that fails leaves the last value in use for up to STALE_TTLS times the
// time (the registry briefly away costs freshness, not every request) and is tried again at the
// next miss.

/** How many times its time a value may be used while loading it again fails. */
const STALE_TTLS = 12

interface Entry<V> {
  value?: { current: V }
  at: number
  loading?: Promise<V>
}

export class TtlCache<V> {
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #entries = new Map<string, Entry<V>>()

  constructor(ttlMs: number, maxEntries: number) {
    this.#ttlMs = ttlMs
    this.#maxEntries = maxEntries
  }

  /** The value of `key` while fresh, else `load()`'s, which is then kept. */
  get(key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now()
    const entry = this.#entries.get(key)
    if (entry?.value && now - entry.at < this.#ttlMs) return Promise.resolve(entry.value.current)
    if (entry?.loading) return entry.loading
    const loading = load().then(
      (value) => {
        this.#entries.delete(key)
        this.#entries.set(key, { value: { current: value }, at: Date.now() })
        this.#bound()
        return value
      },
      (error: unknown) => {
        const stale = this.#entries.get(key)
        if (stale?.value && Date.now() - stale.at < this.#ttlMs * STALE_TTLS) {
          stale.loading = undefined
          return stale.value.current
        }
        this.#entries.delete(key)
        throw error
      },
    )
    if (entry) entry.loading = loading
    else {
      this.#entries.set(key, { at: 0, loading })
      this.#bound()
    }
    return loading
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }

  #bound(): void {
    if (this.#entries.size <= this.#maxEntries) return
    const oldest = this.#entries.keys().next()
    if (!oldest.done) this.#entries.delete(oldest.value)
  }
}
