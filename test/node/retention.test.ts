// The retention rules (durable/retention.ts) on their own, over an in-memory log of runs and a
// group floor: ages, the count and byte limits under each overflow policy, and that a refusal
// changes nothing. The same module runs in the Durable Object over SQLite segments.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { RetentionLimits } from '../../durable/channel-config'
import {
  expireByAge,
  type GroupFloor,
  type HeadRun,
  makeRoom,
  nextExpiryAt,
  type RetainedLog,
} from '../../durable/retention'

/** A log of runs (segments) of `count` messages of `bytes` frame octets each. */
function memoryLog(runs: Array<{ count: number; bytes: number; storedAt: number }>) {
  const kept: HeadRun[] = []
  let seq = 1
  for (const run of runs) {
    kept.push({
      firstSeq: seq,
      lastSeq: seq + run.count - 1,
      bytes: run.bytes,
      storedAt: run.storedAt,
    })
    seq += run.count
  }
  const log: RetainedLog & { runs: HeadRun[] } = {
    runs: kept,
    get messageCount() {
      return kept.reduce((sum, run) => sum + run.lastSeq - run.firstSeq + 1, 0)
    },
    get byteCount() {
      return kept.reduce((sum, run) => sum + run.bytes, 0)
    },
    head: () => kept[0],
    dropHead: () => {
      kept.shift()
    },
    before: (at: number) => {
      const whole = kept.filter((run) => run.lastSeq < at)
      return {
        messages: whole.reduce((sum, run) => sum + run.lastSeq - run.firstSeq + 1, 0),
        bytes: whole.reduce((sum, run) => sum + run.bytes, 0),
      }
    },
  }
  return log
}

/** Groups that are done with every seq below `floor` (none when undefined). */
function groupsDoneBelow(floor: number | undefined): GroupFloor {
  return {
    protectedFrom: floor,
    notDone: (from, through) =>
      floor === undefined ? 0 : Math.max(0, through - Math.max(from, floor) + 1),
  }
}

const limits = (overrides: Partial<RetentionLimits>): RetentionLimits => ({
  maxMessages: 0,
  maxBytes: 0,
  maxAgeSeconds: 0,
  overflowPolicy: 'block',
  ...overrides,
})

describe('expireByAge', () => {
  it('drops whole runs stored at or before the cutoff, and says when the next one is due', () => {
    const log = memoryLog([
      { count: 3, bytes: 30, storedAt: 1000 },
      { count: 2, bytes: 20, storedAt: 2000 },
      { count: 1, bytes: 10, storedAt: 3000 },
    ])
    const rule = limits({ maxAgeSeconds: 1 })
    expect(nextExpiryAt(log, rule)).toBe(2000)
    // At exactly its expiry time a run goes (the alarm set for that time must delete it).
    expect(expireByAge(log, rule, 3000)).toBe(5)
    expect(log.runs.map((run) => run.firstSeq)).toEqual([6])
    expect(nextExpiryAt(log, rule)).toBe(4000)
    expect(expireByAge(log, limits({ maxAgeSeconds: 0 }), 1e12)).toBe(0)
  })
})

describe('makeRoom', () => {
  const runs = () =>
    memoryLog([
      { count: 4, bytes: 40, storedAt: 1 },
      { count: 4, bytes: 40, storedAt: 2 },
      { count: 4, bytes: 40, storedAt: 3 },
    ])

  it('refuses a batch larger than the limits outright', () => {
    const log = runs()
    const outcome = makeRoom(
      log,
      limits({ maxMessages: 5 }),
      { count: 6, bytes: 1 },
      groupsDoneBelow(undefined),
    )
    expect(outcome.ok).toBe(false)
    expect(log.messageCount).toBe(12)
  })

  it('under block, drops only runs every active group is done with, or refuses and keeps all', () => {
    const done = runs()
    expect(
      makeRoom(done, limits({ maxMessages: 12 }), { count: 4, bytes: 1 }, groupsDoneBelow(5)),
    ).toEqual({ ok: true, expired: 0, trimmed: 4, dropped: 0 })
    expect(done.runs.map((run) => run.firstSeq)).toEqual([5, 9])

    // Room for 5 needs two runs; the groups are done with one.
    const full = runs()
    const refused = makeRoom(
      full,
      limits({ maxMessages: 12 }),
      { count: 5, bytes: 1 },
      groupsDoneBelow(5),
    )
    expect(refused.ok).toBe(false)
    expect(full.runs).toHaveLength(3)
  })

  it('with no active group, or under drop-oldest, drops the oldest runs and counts what a group lost', () => {
    const log = runs()
    expect(
      makeRoom(log, limits({ maxBytes: 100 }), { count: 1, bytes: 50 }, groupsDoneBelow(undefined)),
    ).toEqual({
      ok: true,
      expired: 0,
      trimmed: 8,
      dropped: 0,
    })
    const dropping = runs()
    expect(
      makeRoom(
        dropping,
        limits({ maxMessages: 12, overflowPolicy: 'drop-oldest' }),
        { count: 5, bytes: 1 },
        groupsDoneBelow(3),
      ),
    ).toEqual({ ok: true, expired: 0, trimmed: 2, dropped: 6 })
    expect(dropping.runs.map((run) => run.firstSeq)).toEqual([9])
  })

  it('leaves the log within its limits, or changes nothing, whatever the runs and the floor', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            count: fc.integer({ min: 1, max: 5 }),
            bytes: fc.integer({ min: 0, max: 50 }),
          }),
          {
            maxLength: 12,
          },
        ),
        fc.record({
          count: fc.integer({ min: 1, max: 10 }),
          bytes: fc.integer({ min: 0, max: 60 }),
        }),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 0, max: 300 }),
        fc.option(fc.integer({ min: 1, max: 70 }), { nil: undefined }),
        fc.constantFrom<'block' | 'drop-oldest'>('block', 'drop-oldest'),
        (shape, incoming, maxMessages, maxBytes, floor, overflowPolicy) => {
          const log = memoryLog(shape.map((run, index) => ({ ...run, storedAt: index })))
          const before = log.runs.map((run) => run.firstSeq)
          const outcome = makeRoom(
            log,
            limits({ maxMessages, maxBytes, overflowPolicy }),
            incoming,
            groupsDoneBelow(floor),
          )
          if (!outcome.ok) {
            expect(log.runs.map((run) => run.firstSeq)).toEqual(before)
            return
          }
          if (maxMessages > 0)
            expect(log.messageCount + incoming.count).toBeLessThanOrEqual(maxMessages)
          if (maxBytes > 0) expect(log.byteCount + incoming.bytes).toBeLessThanOrEqual(maxBytes)
          if (overflowPolicy === 'block' && floor !== undefined) expect(outcome.dropped).toBe(0)
        },
      ),
    )
  })
})
