// The bridge's per-key rate limit (node-bridge/bridge/key-rate-limit.ts): a second of burst, then
// each message over the rate owes its share of a second; bytes the same; keys apart.
import { describe, expect, it } from 'vitest'
import { KeyRateLimiter } from '../../node-bridge/bridge/key-rate-limit'

describe('KeyRateLimiter', () => {
  it('lets a second of messages through, then spaces them at the rate', () => {
    const limiter = new KeyRateLimiter()
    const limit = { messagesPerSecond: 10 }
    const waits = Array.from({ length: 12 }, () => limiter.take('k', 1, limit, 1000))
    expect(waits.slice(0, 10)).toEqual(Array(10).fill(0))
    expect(waits.slice(10)).toEqual([100, 200])
    // A second later the debt (2 messages) is paid and 8 more fit.
    const later = Array.from({ length: 9 }, () => limiter.take('k', 1, limit, 2000))
    expect(later.slice(0, 8)).toEqual(Array(8).fill(0))
    expect(later[8]).toBe(100)
    // Another key has its own buckets.
    expect(limiter.take('other', 1, limit, 2000)).toBe(0)
  })

  it('limits octets, the stricter of the two winning', () => {
    const limiter = new KeyRateLimiter()
    const limit = { messagesPerSecond: 1000, bytesPerSecond: 1000 }
    expect(limiter.take('k', 600, limit, 0)).toBe(0)
    expect(limiter.take('k', 600, limit, 0)).toBe(200)
    expect(limiter.take('k', 1000, limit, 0)).toBe(1200)
  })
})
