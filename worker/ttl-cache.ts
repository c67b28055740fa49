// A small per-isolate cache whose entries are trusted for a fixed time and whose size is
// bounded (the oldest written go first): what the Worker keeps of the registry's answers.

export class TtlCache<V> {
  readonly #ttlMs: number
  readonly #maxEntries: number
  readonly #entries = new Map<string, { value: V; at: number }>()

  constructor(ttlMs: number, maxEntries: number) {
    this.#ttlMs = ttlMs
    this.#maxEntries = maxEntries
  }

  /** The value of `key` while fresh, else `load()`'s, which is then kept. */
  async get(key: string, load: () => Promise<V>): Promise<V> {
    const now = Date.now()
    const cached = this.#entries.get(key)
    if (cached && now - cached.at < this.#ttlMs) return cached.value
    const value = await load()
    this.#entries.delete(key)
    this.#entries.set(key, { value, at: now })
    if (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next()
      if (!oldest.done) this.#entries.delete(oldest.value)
    }
    return value
  }

  delete(key: string): void {
    this.#entries.delete(key)
  }
}
