// The channel's last hour (durable/channel-history.ts) against a model that records every
// change: a sample at most once a minute must still give each minute's exact counts and gauges,
// through idle minutes, pruning and a write and reload of the samples; and across a restart
// that lost changes, the minutes still add up to what was stored.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ChannelHistory, type HistoryValues, MINUTE_MS } from '../../durable/channel-history'
import { HISTORY_MINUTES } from '../../shared/api/limits'

const T0 = Date.UTC(2026, 11, 5, 12, 0, 0)

/** A channel reduced to what history samples, changed one event at a time. */
class ModelChannel {
  stored = 0
  acked = 0
  lags: Record<string, number> = {}
  /** Every change: its time and the values after it. */
  readonly log: Array<{ at: number; values: HistoryValues }> = []

  get values(): HistoryValues {
    return { stored: this.stored, acked: this.acked, depth: this.stored, lags: { ...this.lags } }
  }

  store(history: ChannelHistory, at: number, count: number): void {
    history.beforeChange(at, () => this.values)
    this.stored += count
    this.lags.default = (this.lags.default ?? 0) + count
    this.log.push({ at, values: this.values })
  }

  ack(history: ChannelHistory, at: number, count: number): void {
    history.beforeChange(at, () => this.values)
    const done = Math.min(count, this.lags.default ?? 0)
    this.acked += done
    this.lags.default = (this.lags.default ?? 0) - done
    this.log.push({ at, values: this.values })
  }

  /** What the totals grew by from `start` to `end` (changes at `end` belong to the next minute). */
  truth(start: number, end: number) {
    const inside = this.log.filter((change) => change.at >= start && change.at < end)
    const before = this.log.filter((change) => change.at < start).at(-1)
    const from = before?.values ?? { stored: 0, acked: 0 }
    const to = inside.at(-1)?.values ?? before?.values ?? { stored: 0, acked: 0 }
    return { messagesIn: to.stored - from.stored, acked: to.acked - from.acked }
  }
}

describe('ChannelHistory', () => {
  it('has no minutes before its first change, and counts from it', () => {
    const history = new ChannelHistory()
    const model = new ModelChannel()
    const now = T0 + 30_000
    const empty = history.minutes(now, model.values)
    expect(empty.at(-1)).toMatchObject({ messagesIn: 0, acked: 0, depth: 0 })
    expect(empty.slice(0, -1).every((minute) => minute.messagesIn === null)).toBe(true)
    model.store(history, T0 + 10_000, 5)
    const minutes = history.minutes(now, model.values)
    expect(minutes).toHaveLength(HISTORY_MINUTES)
    const current = minutes.at(-1)
    expect(current).toEqual({
      start: T0,
      seconds: 30,
      messagesIn: 5,
      acked: 0,
      depth: 5,
      lag: { default: 5 },
    })
    // Before the first sample nothing is known: null, not 0.
    expect(minutes.at(-2)).toMatchObject({ messagesIn: null, acked: null, depth: null, lag: {} })
  })

  it('samples once a minute at most, and not at all for a minute without a change', () => {
    const history = new ChannelHistory()
    const model = new ModelChannel()
    let reads = 0
    const values = () => {
      reads++
      return model.values
    }
    for (let second = 0; second < 60; second++) {
      history.beforeChange(T0 + second * 1000, values)
      model.stored++
    }
    expect(reads).toBe(1)
    history.beforeChange(T0 + 5 * MINUTE_MS, values)
    expect(reads).toBe(2)
    // The end of the first minute and the start of the sixth: a flat run between.
    expect(history.samples.map((sample) => sample.at)).toEqual([
      T0,
      T0 + MINUTE_MS,
      T0 + 5 * MINUTE_MS,
    ])
    const minutes = history.minutes(T0 + 5 * MINUTE_MS + 1000, model.values)
    expect(minutes.slice(-6).map((minute) => minute.messagesIn)).toEqual([60, 0, 0, 0, 0, 0])
    expect(minutes.slice(-6).map((minute) => minute.depth)).toEqual([60, 60, 60, 60, 60, 60])
  })

  it('keeps an idle stretch as its two ends', () => {
    const history = new ChannelHistory()
    const model = new ModelChannel()
    model.store(history, T0, 1)
    for (let minute = 1; minute <= 50; minute++) {
      history.beforeChange(T0 + minute * MINUTE_MS + 10, () => model.values)
    }
    expect(history.samples.length).toBeLessThanOrEqual(3)
  })

  it('keeps an hour, and the minutes before it still count from the sample before', () => {
    const history = new ChannelHistory()
    const model = new ModelChannel()
    for (let minute = 0; minute < 200; minute++) model.store(history, T0 + minute * MINUTE_MS, 2)
    const now = T0 + 200 * MINUTE_MS - 1
    expect(history.samples.length).toBeLessThanOrEqual(2 * (HISTORY_MINUTES + 1) + 1)
    const minutes = history.minutes(now, model.values)
    expect(minutes.map((minute) => minute.messagesIn)).toEqual(Array(HISTORY_MINUTES).fill(2))
    expect(minutes[0]?.start).toBe(T0 + (200 - HISTORY_MINUTES) * MINUTE_MS)
  })

  it('reads back what it wrote, and leaves out what is not a sample', () => {
    const history = new ChannelHistory()
    const model = new ModelChannel()
    model.store(history, T0, 3)
    model.ack(history, T0 + MINUTE_MS, 1)
    const written = JSON.parse(JSON.stringify(history.samples))
    const read = new ChannelHistory([
      ...written,
      { at: 'x' },
      null,
      { at: T0, stored: -1, acked: 0, depth: 0, lags: {} },
      { at: T0 + 1, stored: 1, acked: 0, depth: 0, lags: { a: 1.5 } },
    ])
    expect(read.samples).toEqual(history.samples)
    expect(new ChannelHistory('not a list').samples).toEqual([])
  })

  it('writes one sample a minute, however often the state is written', () => {
    const history = new ChannelHistory()
    const model = new ModelChannel()
    for (let minute = 0; minute < 30; minute++) {
      for (let batch = 0; batch < 300; batch++) {
        const at = T0 + minute * MINUTE_MS + batch * 100
        model.store(history, at, 1)
        history.written(at, model.values)
      }
    }
    const now = T0 + 30 * MINUTE_MS - 1
    expect(history.samples.length).toBeLessThanOrEqual(3 * 30 + 1)
    const minutes = history.minutes(now, model.values).slice(-30)
    expect(minutes.map((minute) => minute.messagesIn)).toEqual(Array(30).fill(300))
  })

  it('forgets samples from after now (a clock set back)', () => {
    const history = new ChannelHistory([
      { at: T0, stored: 0, acked: 0, depth: 0, lags: {} },
      { at: T0 + 10 * MINUTE_MS, stored: 9, acked: 0, depth: 9, lags: {} },
    ])
    const model = new ModelChannel()
    model.store(history, T0 + MINUTE_MS, 4)
    expect(history.samples.map((sample) => sample.at)).toEqual([T0, T0 + MINUTE_MS])
  })

  it('counts a minute from the totals, so a group deleted (acks falling) counts 0, not less', () => {
    const history = new ChannelHistory()
    history.beforeChange(T0, () => ({ stored: 10, acked: 8, depth: 2, lags: { a: 2 } }))
    history.beforeChange(T0 + MINUTE_MS, () => ({ stored: 10, acked: 3, depth: 2, lags: {} }))
    const minutes = history.minutes(T0 + MINUTE_MS + 1000, {
      stored: 10,
      acked: 3,
      depth: 2,
      lags: {},
    })
    expect(minutes.at(-2)?.acked).toBe(0)
    expect(minutes.at(-1)?.lag).toEqual({})
  })

  it('gives every minute its exact counts and end values (property)', () => {
    const event = fc.record({
      // Whole minutes from a minute's start land changes on minutes' ends; 0, on one instant.
      gapMs: fc.oneof(
        fc.constantFrom(0, MINUTE_MS, 2 * MINUTE_MS),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 7 * MINUTE_MS }),
      ),
      kind: fc.constantFrom('store', 'ack'),
      // The state written after the change (as the object writes it, at most once a minute).
      write: fc.boolean(),
      // Then evicted, its state written first (hibernation between sparse batches): the object
      // that wakes starts from the samples alone.
      evict: fc.boolean(),
      count: fc.integer({ min: 1, max: 50 }),
    })
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 120 }),
        fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3 * MINUTE_MS })),
        fc.integer({ min: 0, max: 3 }),
        (events, tailMs, reloadEvery) => {
          let history = new ChannelHistory()
          const model = new ModelChannel()
          let at = T0
          events.forEach((change, index) => {
            at += change.gapMs
            if (change.kind === 'store') model.store(history, at, change.count)
            else model.ack(history, at, change.count)
            if (change.write) history.written(at, model.values)
            if (change.evict) {
              history.written(at, model.values)
              history = new ChannelHistory(JSON.parse(JSON.stringify(history.samples)))
            }
            // A write and read of the samples (no change lost): the same history.
            if (reloadEvery > 0 && index % reloadEvery === 0) {
              const reloaded = new ChannelHistory(JSON.parse(JSON.stringify(history.samples)))
              expect(reloaded.samples).toEqual(history.samples)
            }
          })
          const now = at + tailMs
          const minutes = history.minutes(now, model.values)
          const first = model.log[0]?.at ?? now
          for (const minute of minutes) {
            const end = Math.min(minute.start + MINUTE_MS, now)
            if (end < first) {
              expect(minute.messagesIn).toBeNull()
              continue
            }
            const truth = model.truth(minute.start, minute.start + MINUTE_MS)
            expect(minute.messagesIn).toBe(truth.messagesIn)
            expect(minute.acked).toBe(truth.acked)
            const atEnd =
              minute === minutes.at(-1)
                ? model.values
                : model.log.filter((change) => change.at < end).at(-1)?.values
            expect(minute.depth).toBe(atEnd?.depth ?? 0)
            expect(minute.lag).toEqual(atEnd?.lags ?? {})
          }
        },
      ),
      { numRuns: 500 },
    )
  })

  it('across a restart that lost changes, the minutes still add up to what was stored', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 2, maxLength: HISTORY_MINUTES - 1 }),
        fc.integer({ min: 1, max: HISTORY_MINUTES - 1 }),
        (perMinute, crashAt) => {
          let history = new ChannelHistory()
          const model = new ModelChannel()
          let written: unknown = []
          perMinute.forEach((count, minute) => {
            // Written with the state each minute; the write just before the crash is lost.
            if (minute === crashAt) history = new ChannelHistory(written)
            const at = T0 + minute * MINUTE_MS + 5000
            model.store(history, at, count)
            history.written(at, model.values)
            if (minute < crashAt - 1) written = JSON.parse(JSON.stringify(history.samples))
          })
          const now = T0 + perMinute.length * MINUTE_MS + 1000
          const minutes = history.minutes(now, model.values)
          const total = minutes.reduce((sum, minute) => sum + (minute.messagesIn ?? 0), 0)
          // From the first sample kept: nothing counted twice, nothing stored after it missed.
          expect(total).toBe(model.stored - (history.samples[0]?.stored ?? 0))
          // Minutes up to the last write kept stay exact.
          const kept = (written as { at: number }[]).at(-1)?.at ?? T0
          for (const minute of minutes.filter((m) => m.start + MINUTE_MS <= kept)) {
            if (minute.start < T0) continue
            expect(minute.messagesIn).toBe(perMinute[(minute.start - T0) / MINUTE_MS])
          }
        },
      ),
      { numRuns: 200 },
    )
  })
})
