// The Worker's per-isolate cache of registry answers (worker/ttl-cache.ts): fresh values are
// served without a load, concurrent misses share one load, a failed load serves the last value
// for a while (then fails), and the size is bounded.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { patternWithin } from '../../shared/channel-pattern'
import { scopeOf } from '../../worker/api/routes'
import { TtlCache } from '../../worker/ttl-cache'

afterEach(() => {
  vi.useRealTimers()
})

describe('TtlCache', () => {
  it('loads once while fresh, and shares one load between concurrent misses', async () => {
    vi.useFakeTimers()
    const cache = new TtlCache<number>(5000, 100)
    let loads = 0
    const load = async () => {
      loads++
      await Promise.resolve()
      return loads
    }
    expect(
      await Promise.all([cache.get('k', load), cache.get('k', load), cache.get('k', load)]),
    ).toEqual([1, 1, 1])
    expect(await cache.get('k', load)).toBe(1)
    vi.advanceTimersByTime(5000)
    expect(await cache.get('k', load)).toBe(2)
    cache.delete('k')
    expect(await cache.get('k', load)).toBe(3)
  })

  it('serves the last value while loads fail, for 12 times its time, then the failure', async () => {
    vi.useFakeTimers()
    const cache = new TtlCache<string>(1000, 100)
    expect(await cache.get('k', async () => 'first')).toBe('first')
    const failing = async (): Promise<string> => {
      throw new Error('registry away')
    }
    vi.advanceTimersByTime(1000)
    expect(await cache.get('k', failing)).toBe('first')
    vi.advanceTimersByTime(10_000)
    expect(await cache.get('k', failing)).toBe('first')
    vi.advanceTimersByTime(1000)
    await expect(cache.get('k', failing)).rejects.toThrow('registry away')
    await expect(cache.get('new', failing)).rejects.toThrow('registry away')
  })

  it('keeps at most its number of entries, the oldest going first', async () => {
    const cache = new TtlCache<string>(60_000, 2)
    for (const key of ['a', 'b', 'c']) await cache.get(key, async () => key)
    let loaded = false
    await cache.get('a', async () => {
      loaded = true
      return 'a'
    })
    expect(loaded).toBe(true)
  })
})

describe('channel patterns handed on', () => {
  it('are within the giver’s only when every channel they reach is', () => {
    expect(patternWithin('team-a-1', ['team-a-*'])).toBe(true)
    expect(patternWithin('team-a-x*', ['team-a-*'])).toBe(true)
    expect(patternWithin('team-*', ['team-a-*'])).toBe(false)
    expect(patternWithin('*', ['team-a-*'])).toBe(false)
    expect(patternWithin('orders*', ['orders'])).toBe(false)
    expect(patternWithin('orders', ['orders'])).toBe(true)
    expect(patternWithin('*', ['*'])).toBe(true)
  })
})

describe('route scopes', () => {
  it('are one known scope, or [] for a public route: anything else throws', () => {
    expect(scopeOf({ security: [{ bearer: ['read'] }] })).toBe('read')
    expect(scopeOf({ security: [] })).toBeUndefined()
    for (const security of [
      undefined,
      [{ bearer: [] }],
      [{ bearer: ['raed'] }],
      [{ basic: ['read'] }],
      [{ bearer: ['read', 'admin'] }],
    ]) {
      expect(() => scopeOf({ security } as never)).toThrow(/security/)
    }
  })
})
