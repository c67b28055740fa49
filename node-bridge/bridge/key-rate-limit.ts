// Per-key rate limits of the key registry (`rateLimit` of a record), held per bridge: a token
// bucket for messages and one for frame octets, each refilled at its rate and holding a second
// of it. A message is always taken; when it leaves a bucket in debt, its connection is not read
// until the debt is paid (PullSocket's `throttle`), so the sender is pushed back by TCP and its
// own high-water mark, and nothing is dropped. All of a key's connections to one bridge share
// its buckets; across bridges each holds its own (a key on two bridges may send twice the rate).

import type { RateLimit } from '../../shared/api/key-records.ts'

interface Bucket {
  messages: number
  bytes: number
  at: number
}

/** Most keys whose buckets are held; past it the least recently used go (and start full). */
const MAX_BUCKETS = 100_000

export class KeyRateLimiter {
  readonly #buckets = new Map<string, Bucket>()

  /**
   * Takes one message of `bytes` octets from `key`'s buckets.
   * @returns how long not to read the key's connection, ms (0: read on).
   */
  take(key: string, bytes: number, limit: RateLimit, now = Date.now()): number {
    const { messagesPerSecond: messageRate, bytesPerSecond: byteRate } = limit
    let bucket = this.#buckets.get(key)
    if (bucket) this.#buckets.delete(key)
    else {
      bucket = { messages: messageRate ?? 0, bytes: byteRate ?? 0, at: now }
      if (this.#buckets.size >= MAX_BUCKETS) {
        const oldest = this.#buckets.keys().next()
        if (!oldest.done) this.#buckets.delete(oldest.value)
      }
    }
    this.#buckets.set(key, bucket)
    const elapsed = Math.max(0, now - bucket.at) / 1000
    bucket.at = now
    let waitMs = 0
    if (messageRate) {
      bucket.messages = Math.min(messageRate, bucket.messages + elapsed * messageRate) - 1
      if (bucket.messages < 0) waitMs = Math.max(waitMs, (-bucket.messages / messageRate) * 1000)
    }
    if (byteRate) {
      bucket.bytes = Math.min(byteRate, bucket.bytes + elapsed * byteRate) - bytes
      if (bucket.bytes < 0) waitMs = Math.max(waitMs, (-bucket.bytes / byteRate) * 1000)
    }
    return Math.ceil(waitMs)
  }
}
