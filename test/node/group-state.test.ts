// A consumer group's one-row state: each rule of pulls, acks, retries, extends, retention and
// redrive, the JSON row, and a model test against a naive per-message reference.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  buryExpired,
  candidates,
  createGroupState,
  decodeGroupState,
  dropBelow,
  encodeGroupState,
  extend,
  formatLeaseId,
  type GroupStart,
  type GroupState,
  GroupStateError,
  GroupStateErrorCode,
  groupLag,
  importQueue,
  type LeaseRef,
  type LogRange,
  lease,
  MAX_IN_FLIGHT,
  MAX_RUNS,
  nextChangeAt,
  nextDeadAt,
  parseLeaseId,
  redrive,
  settle,
} from '../../durable/group-state'

const log = (oldest: number, newest: number): LogRange => ({ oldest, newest })
const refOf = (leaseId: string) => parseLeaseId(leaseId) as LeaseRef
const runCount = (state: GroupState) =>
  state.pending.length + state.leases.reduce((sum, item) => sum + item.members.length, 0)

function fresh(range: LogRange, start: GroupStart = 'earliest', now = 1_000): GroupState {
  return createGroupState({ start, log: range, now, leaseIdBase: 500 })
}

/** Leases everything `candidates` offers (at most `max`), as the SQL layer's pull would. */
function pull(
  state: GroupState,
  options: { now: number; log: LogRange; max?: number; vt?: number; maxAttempts?: number },
) {
  const { now, maxAttempts = 3, vt = 100 } = options
  const offered = candidates(state, {
    now,
    maxAttempts,
    log: options.log,
    max: options.max ?? Number.POSITIVE_INFINITY,
  })
  const seqs = offered.available.map((candidate) => candidate.seq)
  const result = lease(state, {
    seqs,
    now,
    visibilityTimeoutMs: vt,
    maxAttempts,
    log: options.log,
  })
  return { ...result, offered }
}

function codeOf(action: () => unknown): string | undefined {
  try {
    action()
  } catch (error) {
    if (error instanceof GroupStateError) return error.code
    throw error
  }
  return undefined
}

describe('lease ids', () => {
  it('round-trip as lease number and seq', () => {
    expect(formatLeaseId(812, 7)).toBe('812.7')
    expect(parseLeaseId('812.7')).toEqual({ leaseNumber: 812, seq: 7 })
    expect(parseLeaseId('0.1')).toEqual({ leaseNumber: 0, seq: 1 })
    const max = Number.MAX_SAFE_INTEGER
    expect(parseLeaseId(`${max}.${max}`)).toEqual({ leaseNumber: max, seq: max })
  })

  it.each([
    '',
    '.',
    '1.',
    '.1',
    '1',
    '1..2',
    '1.2.3',
    '01.2',
    '1.02',
    '1.0',
    '+1.2',
    '-1.2',
    '1.2 ',
    ' 1.2',
    '1e3.2',
    '0x1.2',
    '1.2\n',
    '١.٢',
    '9007199254740992.1',
    '1.9007199254740992',
    '99999999999999999.1',
    `${'1'.repeat(40)}.1`,
  ])('refuses %j', (text) => {
    expect(parseLeaseId(text)).toBeUndefined()
  })

  it('refuses whatever is not a string or not its format, never throwing', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const parsed = parseLeaseId(text)
        if (parsed !== undefined) expect(formatLeaseId(parsed.leaseNumber, parsed.seq)).toBe(text)
      }),
    )
    expect(parseLeaseId(42 as unknown as string)).toBeUndefined()
  })
})

describe('createGroupState', () => {
  it('starts before the oldest, after the newest, or after a seq', () => {
    const range = log(5, 20)
    expect(fresh(range, 'earliest').frontier).toBe(4)
    expect(fresh(range, 'latest').frontier).toBe(20)
    expect(fresh(range, { afterSeq: 10 }).frontier).toBe(10)
    expect(fresh(range, { afterSeq: 0 }).frontier).toBe(4)
    expect(fresh(log(1, 0), 'earliest').frontier).toBe(0)
    expect(fresh(log(1, 0), 'latest').frontier).toBe(0)
  })

  it('beyond the newest skips the seqs up to afterSeq when they arrive', () => {
    let state = fresh(log(1, 3), { afterSeq: 6 })
    expect(groupLag(state, log(1, 3), 1_000).messages).toBe(0)
    expect(pull(state, { now: 1_000, log: log(1, 6) }).leased).toEqual([])
    state = pull(state, { now: 1_000, log: log(1, 8) }).state
    expect(state.leases[0]?.members).toEqual([{ from: 7, to: 8, attempts: 1 }])
  })

  it('records the times and the first lease number, with zero counters', () => {
    const state = createGroupState({ start: 'latest', log: log(1, 0), now: 77, leaseIdBase: 9 })
    expect(state).toMatchObject({ createdAt: 77, activeAt: 77, nextLeaseId: 9 })
    expect(Object.values(state.counters).every((value) => value === 0)).toBe(true)
  })

  it('throws RangeError on programmer errors', () => {
    const bad = [
      { start: 'earliest', log: log(0, 0), now: 0, leaseIdBase: 0 },
      { start: 'earliest', log: log(5, 3), now: 0, leaseIdBase: 0 },
      { start: 'earliest', log: log(1, 0), now: 1.5, leaseIdBase: 0 },
      { start: 'earliest', log: log(1, 0), now: 0, leaseIdBase: -1 },
      { start: { afterSeq: -1 }, log: log(1, 0), now: 0, leaseIdBase: 0 },
      { start: 'middle', log: log(1, 0), now: 0, leaseIdBase: 0 },
    ]
    for (const options of bad) {
      expect(() => createGroupState(options as Parameters<typeof createGroupState>[0])).toThrow(
        RangeError,
      )
    }
  })
})

describe('pull', () => {
  it('leases new seqs in order as one lease of one run, with per-message ids', () => {
    const state = fresh(log(1, 10))
    const {
      state: next,
      leaseNumber,
      expiresAt,
      leased,
      offered,
    } = pull(state, {
      now: 1_000,
      log: log(1, 10),
      max: 4,
      vt: 30,
    })
    expect(offered.available).toEqual(
      [1, 2, 3, 4].map((seq) => ({ seq, attempts: 0, redelivery: false })),
    )
    expect(leaseNumber).toBe(500)
    expect(expiresAt).toBe(1_030)
    expect(leased).toEqual([1, 2, 3, 4].map((seq) => ({ seq, attempts: 1, leaseId: `500.${seq}` })))
    expect(next.frontier).toBe(4)
    expect(next.nextLeaseId).toBe(501)
    expect(next.leases).toEqual([
      { id: 500, expiresAt: 1_030, members: [{ from: 1, to: 4, attempts: 1 }] },
    ])
    expect(next.counters).toMatchObject({ leased: 4, redelivered: 0 })
    expect(state.frontier).toBe(0)
  })

  it('offers nothing leased and unexpired, and nothing acked, again', () => {
    let state = pull(fresh(log(1, 3)), { now: 1_000, log: log(1, 3), max: 2 }).state
    state = settle(state, { acks: [refOf('500.1')], retries: [], now: 1_010, maxAttempts: 3 }).state
    const offered = candidates(state, { now: 1_050, maxAttempts: 3, log: log(1, 3), max: 10 })
    expect(offered.available.map((item) => item.seq)).toEqual([3])
    const later = candidates(state, { now: 1_100, maxAttempts: 3, log: log(1, 3), max: 10 })
    expect(later.available).toEqual([
      { seq: 2, attempts: 1, redelivery: true },
      { seq: 3, attempts: 0, redelivery: false },
    ])
  })

  it('with no seqs only marks the group active', () => {
    const state = fresh(log(1, 0))
    const result = lease(state, {
      seqs: [],
      now: 5_000,
      visibilityTimeoutMs: 10,
      maxAttempts: 3,
      log: log(1, 0),
    })
    expect(result.leaseNumber).toBeUndefined()
    expect(result.state).toEqual({ ...state, activeAt: 5_000 })
  })

  it('refuses seqs that are not a prefix of the candidates', () => {
    const state = fresh(log(1, 10))
    const options = { now: 1_000, visibilityTimeoutMs: 10, maxAttempts: 3, log: log(1, 10) }
    expect(() => lease(state, { ...options, seqs: [2] })).toThrow(RangeError)
    expect(() => lease(state, { ...options, seqs: [1, 3] })).toThrow(RangeError)
    expect(() => lease(state, { ...options, seqs: [11] })).toThrow(RangeError)
    expect(() => lease(state, { ...options, seqs: [1], visibilityTimeoutMs: -1 })).toThrow(
      RangeError,
    )
  })

  it('interleaves expired members and visible retries by seq, new seqs last', () => {
    let state = pull(fresh(log(1, 6)), { now: 1_000, log: log(1, 6), max: 4, vt: 10 }).state
    state = settle(state, {
      acks: [refOf('500.1')],
      retries: [{ ...refOf('500.3'), delayMs: 0 }],
      now: 1_001,
      maxAttempts: 3,
    }).state
    const offered = candidates(state, { now: 1_010, maxAttempts: 3, log: log(1, 6), max: 10 })
    expect(offered.available).toEqual([
      { seq: 2, attempts: 1, redelivery: true },
      { seq: 3, attempts: 1, redelivery: false },
      { seq: 4, attempts: 1, redelivery: true },
      { seq: 5, attempts: 0, redelivery: false },
      { seq: 6, attempts: 0, redelivery: false },
    ])
    const next = lease(state, {
      seqs: [2, 3],
      now: 1_010,
      visibilityTimeoutMs: 10,
      maxAttempts: 3,
      log: log(1, 6),
    })
    // A retried message re-leased is not a redelivery (lease-queue.ts counted lease_id, which a
    // retry clears); the expired one is.
    expect(next.state.counters).toMatchObject({ leased: 6, redelivered: 1 })
    expect(next.leased.map((item) => item.attempts)).toEqual([2, 2])
    expect(next.state.leases).toEqual([
      { id: 500, expiresAt: 1_010, members: [{ from: 4, to: 4, attempts: 1 }] },
      { id: 501, expiresAt: 1_020, members: [{ from: 2, to: 3, attempts: 2 }] },
    ])
  })
})

describe('settle', () => {
  const start = () => pull(fresh(log(1, 5)), { now: 1_000, log: log(1, 5), vt: 100 }).state

  it('acks a message after its lease expired, until it is leased again', () => {
    const state = start()
    const late = settle(state, { acks: [refOf('500.2')], retries: [], now: 5_000, maxAttempts: 3 })
    expect(late).toMatchObject({ acked: 1, unknownAcks: [] })
    const released = pull(state, { now: 1_100, log: log(1, 5), max: 2 }).state
    const stale = settle(released, {
      acks: [refOf('500.2'), refOf('500.3'), refOf('501.2')],
      retries: [],
      now: 1_101,
      maxAttempts: 3,
    })
    expect(stale.acked).toBe(2)
    expect(stale.unknownAcks).toEqual([0])
  })

  it('retries to pending after the delay, attempts kept', () => {
    const state = start()
    const { state: next, retried } = settle(state, {
      acks: [],
      retries: [{ ...refOf('500.2'), delayMs: 50 }],
      now: 1_010,
      maxAttempts: 3,
    })
    expect(retried).toBe(1)
    expect(next.pending).toEqual([{ from: 2, to: 2, attempts: 1, visibleAt: 1_060 }])
    expect(next.leases[0]?.members).toEqual([
      { from: 1, to: 1, attempts: 1 },
      { from: 3, to: 5, attempts: 1 },
    ])
    const early = candidates(next, { now: 1_059, maxAttempts: 3, log: log(1, 5), max: 9 })
    expect(early.available).toEqual([])
    const due = candidates(next, { now: 1_060, maxAttempts: 3, log: log(1, 5), max: 9 })
    expect(due.available).toEqual([{ seq: 2, attempts: 1, redelivery: false }])
    expect(groupLag(next, log(1, 5), 1_010)).toMatchObject({ delayed: 1, inFlight: 4 })
  })

  it('turns a retry at the last attempt into a dead letter', () => {
    const state = start()
    const result = settle(state, {
      acks: [],
      retries: [{ ...refOf('500.4'), delayMs: 0 }],
      now: 1_010,
      maxAttempts: 1,
    })
    expect(result.deadLettered).toEqual([{ seq: 4, attempts: 1, reason: 'retried' }])
    expect(result.retried).toBe(0)
    expect(result.state.pending).toEqual([])
    expect(result.state.counters).toMatchObject({ deadLettered: 1, retried: 0 })
  })

  it('applies acks before retries; a second ref to one message is unknown', () => {
    const state = start()
    const result = settle(state, {
      acks: [refOf('500.1'), refOf('500.1'), refOf('500.2')],
      retries: [
        { ...refOf('500.2'), delayMs: 0 },
        { ...refOf('500.3'), delayMs: 0 },
        { ...refOf('500.3'), delayMs: 0 },
      ],
      now: 1_010,
      maxAttempts: 3,
    })
    expect(result).toMatchObject({ acked: 2, retried: 1, unknownAcks: [1], unknownRetries: [0, 2] })
  })

  it('removes a lease record once all its members are acked', () => {
    const state = start()
    const acks = [5, 3, 1, 2, 4].map((seq) => refOf(`500.${seq}`))
    const result = settle(state, { acks, retries: [], now: 1_010, maxAttempts: 3 })
    expect(result.state.leases).toEqual([])
    expect(groupLag(result.state, log(1, 5), 1_010).committedOffset).toBe(5)
  })

  it('treats unknown lease numbers and seqs as unknown', () => {
    const state = start()
    const result = settle(state, {
      acks: [
        { leaseNumber: 499, seq: 1 },
        { leaseNumber: 500, seq: 6 },
      ],
      retries: [{ leaseNumber: 10, seq: 1, delayMs: 0 }],
      now: 1_010,
      maxAttempts: 3,
    })
    expect(result).toMatchObject({ acked: 0, unknownAcks: [0, 1], unknownRetries: [0] })
    expect(result.state.leases).toEqual(state.leases)
    expect(result.state.activeAt).toBe(1_010)
  })
})

describe('buryExpired', () => {
  it('buries members whose lease expired at their last attempt', () => {
    let state = pull(fresh(log(1, 3)), { now: 1_000, log: log(1, 3), vt: 10, maxAttempts: 2 }).state
    state = pull(state, { now: 1_010, log: log(1, 3), max: 2, vt: 10, maxAttempts: 2 }).state
    const offered = candidates(state, { now: 1_020, maxAttempts: 2, log: log(1, 3), max: 9 })
    expect(offered.dead).toEqual([
      { seq: 1, attempts: 2, reason: 'expired' },
      { seq: 2, attempts: 2, reason: 'expired' },
    ])
    expect(offered.available).toEqual([{ seq: 3, attempts: 1, redelivery: true }])
    expect(buryExpired(state, 1_019, 2).dead).toEqual([])
    expect(buryExpired(state, 1_019, 2).state).toBe(state)
    const { state: after, dead } = buryExpired(state, 1_020, 2)
    expect(dead).toEqual(offered.dead)
    expect(after.counters.deadLettered).toBe(2)
    expect(after.leases.map((item) => item.id)).toEqual([500])
    expect(nextDeadAt(state, 2)).toBe(1_020)
    expect(nextDeadAt(after, 2)).toBeUndefined()
  })
})

describe('extend', () => {
  const start = () => pull(fresh(log(1, 6)), { now: 1_000, log: log(1, 6), vt: 100 }).state

  it('moves only the named members; the others keep their expiry and their ids work', () => {
    const state = start()
    const result = extend(state, {
      items: [refOf('500.2'), refOf('500.3')],
      visibilityTimeoutMs: 500,
      now: 1_050,
    })
    expect(result).toMatchObject({ extended: 2, unknown: [] })
    expect(result.state.leases).toEqual([
      {
        id: 500,
        expiresAt: 1_100,
        members: [
          { from: 1, to: 1, attempts: 1 },
          { from: 2, to: 3, attempts: 1, expiresAt: 1_550 },
          { from: 4, to: 6, attempts: 1 },
        ],
      },
    ])
    const offered = candidates(result.state, {
      now: 1_100,
      maxAttempts: 3,
      log: log(1, 6),
      max: 9,
    })
    expect(offered.available.map((item) => item.seq)).toEqual([1, 4, 5, 6])
    expect(nextChangeAt(result.state, 1_100)).toBe(1_550)
    const acked = settle(result.state, {
      acks: ['500.1', '500.2', '500.4', '500.5', '500.6'].map(refOf),
      retries: [],
      now: 1_200,
      maxAttempts: 3,
    })
    expect(acked.acked).toBe(5)
    // What is left shares one expiry: it becomes the lease's.
    expect(acked.state.leases).toEqual([
      { id: 500, expiresAt: 1_550, members: [{ from: 3, to: 3, attempts: 1 }] },
    ])
  })

  it('extending every member moves the lease and keeps one run', () => {
    const state = start()
    const items = [1, 2, 3, 4, 5, 6].map((seq) => refOf(`500.${seq}`))
    const result = extend(state, { items, visibilityTimeoutMs: 500, now: 1_050 })
    expect(result.state.leases).toEqual([
      { id: 500, expiresAt: 1_550, members: [{ from: 1, to: 6, attempts: 1 }] },
    ])
  })

  it('refuses expired, acked and unknown memberships; a repeat is extended again', () => {
    const state = settle(start(), {
      acks: [refOf('500.1')],
      retries: [],
      now: 1_000,
      maxAttempts: 3,
    }).state
    const items = [refOf('500.1'), refOf('500.2'), refOf('501.2'), refOf('500.2')]
    expect(extend(state, { items, visibilityTimeoutMs: 10, now: 1_050 })).toMatchObject({
      extended: 2,
      unknown: [0, 2],
    })
    // As lease-queue.ts: a 0 timeout expires the message, so the repeat finds it expired.
    expect(extend(state, { items, visibilityTimeoutMs: 0, now: 1_050 })).toMatchObject({
      extended: 1,
      unknown: [0, 2, 3],
    })
    expect(extend(state, { items, visibilityTimeoutMs: 10, now: 1_100 })).toMatchObject({
      extended: 0,
      unknown: [0, 1, 2, 3],
    })
  })
})

describe('caps', () => {
  it('stop new seqs at MAX_IN_FLIGHT leased, not re-leases', () => {
    const range = log(1, MAX_IN_FLIGHT + 500)
    let state = pull(fresh(range), {
      now: 1_000,
      log: range,
      max: MAX_IN_FLIGHT - 10,
      vt: 10,
    }).state
    const partial = candidates(state, { now: 1_000, maxAttempts: 3, log: range, max: 100 })
    expect(partial.available.length).toBe(10)
    state = pull(state, { now: 1_000, log: range, vt: 10 }).state
    expect(groupLag(state, range, 1_000)).toMatchObject({ inFlight: MAX_IN_FLIGHT, available: 0 })
    expect(candidates(state, { now: 1_009, maxAttempts: 3, log: range, max: 5 }).available).toEqual(
      [],
    )
    const expired = candidates(state, { now: 1_010, maxAttempts: 3, log: range, max: 5 })
    expect(expired.available.map((item) => item.seq)).toEqual([1, 2, 3, 4, 5])
    expect(expired.available.every((item) => item.redelivery)).toBe(true)
    // Acks make room again.
    const acks = [1, 2, 3].map((seq) => ({ leaseNumber: 500, seq }))
    state = settle(state, { acks, retries: [], now: 1_005, maxAttempts: 3 }).state
    const room = candidates(state, { now: 1_005, maxAttempts: 3, log: range, max: 50 })
    expect(room.available.map((item) => item.seq)).toEqual([10_001, 10_002, 10_003])
  })

  it('stop new seqs at MAX_RUNS runs, while pending runs stay available', () => {
    const range = log(1, MAX_RUNS + 100)
    let state = pull(fresh(range), { now: 1_000, log: range, max: MAX_RUNS, vt: 10 }).state
    // Each retry with its own delay makes a run of its own.
    const retries = Array.from({ length: MAX_RUNS }, (_, i) => ({
      leaseNumber: 500,
      seq: i + 1,
      delayMs: i,
    }))
    state = settle(state, { acks: [], retries, now: 1_000, maxAttempts: 3 }).state
    expect(runCount(state)).toBe(MAX_RUNS)
    expect(groupLag(state, range, 1_000)).toMatchObject({ inFlight: 0, delayed: MAX_RUNS - 1 })
    const offered = candidates(state, { now: 1_002, maxAttempts: 3, log: range, max: 10 })
    expect(offered.available.map((item) => item.seq)).toEqual([1, 2, 3])
    expect(groupLag(state, range, 1_002).available).toBe(3)
    expect(encodeGroupState(state).length).toBeLessThan(600_000)
  })
})

describe('retention', () => {
  it('dropBelow forgets what retention deleted, counting what the group was not done with', () => {
    let state = pull(fresh(log(1, 10)), { now: 1_000, log: log(1, 10), max: 6, vt: 10 }).state
    state = settle(state, {
      acks: [refOf('500.1')],
      retries: [{ ...refOf('500.2'), delayMs: 5 }],
      now: 1_000,
      maxAttempts: 3,
    }).state
    // 1 acked; 2 pending; 3 to 6 leased; 7 to 10 new.
    const cut = dropBelow(state, 5)
    expect(cut.dropped).toBe(3)
    expect(cut.state.pending).toEqual([])
    expect(cut.state.leases[0]?.members).toEqual([{ from: 5, to: 6, attempts: 1 }])
    expect(cut.state.counters.dropped).toBe(3)
    const acked = settle(cut.state, {
      acks: [refOf('500.3'), refOf('500.5')],
      retries: [],
      now: 1_001,
      maxAttempts: 3,
    })
    expect(acked).toMatchObject({ acked: 1, unknownAcks: [0] })
    const past = dropBelow(state, 9)
    expect(past).toMatchObject({ dropped: 7 })
    expect(past.state).toMatchObject({ frontier: 8, pending: [], leases: [] })
    expect(dropBelow(past.state, 9).state).toBe(past.state)
  })

  it('never offers seqs below the oldest, even before dropBelow', () => {
    const state = fresh(log(1, 10))
    const offered = candidates(state, { now: 1_000, maxAttempts: 3, log: log(4, 10), max: 2 })
    expect(offered.available.map((item) => item.seq)).toEqual([4, 5])
    const leased = lease(state, {
      seqs: [4, 5],
      now: 1_000,
      visibilityTimeoutMs: 10,
      maxAttempts: 3,
      log: log(4, 10),
    })
    expect(leased.state.frontier).toBe(5)
    expect(leased.state.counters.dropped).toBe(3)
    expect(groupLag(state, log(4, 10), 1_000)).toMatchObject({
      messages: 7,
      committedOffset: 3,
      oldestUnacked: 4,
    })
  })
})

describe('redrive', () => {
  it('sends dead letters back as pending with attempts 0, below the committed offset too', () => {
    let state = pull(fresh(log(1, 5)), { now: 1_000, log: log(1, 5), vt: 10, maxAttempts: 1 }).state
    state = settle(state, {
      acks: [refOf('500.3'), refOf('500.4'), refOf('500.5')],
      retries: [{ ...refOf('500.1'), delayMs: 0 }],
      now: 1_001,
      maxAttempts: 1,
    }).state
    state = buryExpired(state, 1_010, 1).state
    expect(groupLag(state, log(1, 5), 1_010).committedOffset).toBe(5)
    const result = redrive(state, [2, 1, 2, 0, 9], log(1, 5))
    expect(result.redriven).toEqual([1, 2])
    expect(result.state.pending).toEqual([{ from: 1, to: 2, attempts: 0, visibleAt: 0 }])
    expect(result.state.counters.redriven).toBe(2)
    expect(groupLag(result.state, log(1, 5), 1_010).committedOffset).toBe(0)
    const offered = candidates(result.state, { now: 1_010, maxAttempts: 1, log: log(1, 5), max: 9 })
    expect(offered.available).toEqual([
      { seq: 1, attempts: 0, redelivery: false },
      { seq: 2, attempts: 0, redelivery: false },
    ])
    expect(redrive(result.state, [1, 2], log(2, 5)).redriven).toEqual([])
    expect(redrive(state, [1, 2], log(2, 5)).redriven).toEqual([2])
  })
})

describe('groupLag and timing', () => {
  it('counts pending, leased and new; in flight, delayed and available now', () => {
    let state = pull(fresh(log(1, 10)), { now: 1_000, log: log(1, 10), max: 4, vt: 50 }).state
    state = settle(state, {
      acks: [refOf('500.1')],
      retries: [{ ...refOf('500.3'), delayMs: 20 }],
      now: 1_000,
      maxAttempts: 3,
    }).state
    expect(groupLag(state, log(1, 10), 1_000)).toEqual({
      messages: 9,
      inFlight: 2,
      delayed: 1,
      available: 6,
      committedOffset: 1,
      oldestUnacked: 2,
    })
    expect(nextChangeAt(state, 1_000)).toBe(1_020)
    expect(nextChangeAt(state, 1_020)).toBe(1_050)
    expect(nextChangeAt(state, 1_050)).toBeUndefined()
    expect(groupLag(state, log(1, 10), 1_050)).toMatchObject({ inFlight: 0, available: 9 })
    expect(groupLag(fresh(log(1, 0)), log(1, 0), 0)).toEqual({
      messages: 0,
      inFlight: 0,
      delayed: 0,
      available: 0,
      committedOffset: 0,
      oldestUnacked: undefined,
    })
  })
})

describe('compaction', () => {
  it('10,000 messages pulled 100 at a time and acked in order leave no run behind', () => {
    const range = log(1, 10_000)
    let state = fresh(range)
    let most = 0
    for (let now = 1_000; ; now++) {
      const pulled = pull(state, { now, log: range, max: 100, vt: 1_000 })
      if (pulled.leased.length === 0) break
      state = pulled.state
      most = Math.max(most, runCount(state))
      const acks = pulled.leased.map((item) => refOf(item.leaseId))
      state = settle(state, { acks, retries: [], now, maxAttempts: 3 }).state
    }
    expect(most).toBe(1)
    expect(state.leases).toEqual([])
    expect(state.counters).toMatchObject({ leased: 10_000, acked: 10_000 })
    expect(encodeGroupState(state).length).toBeLessThan(250)
  })

  it('ten pulls in flight, acked out of order, stay a handful of runs', () => {
    const range = log(1, 1_000)
    let state = fresh(range)
    const leases: string[][] = []
    for (let i = 0; i < 10; i++) {
      const pulled = pull(state, { now: 1_000 + i, log: range, max: 100, vt: 10_000 })
      state = pulled.state
      leases.push(pulled.leased.map((item) => item.leaseId))
    }
    expect(runCount(state)).toBe(10)
    for (const ids of leases.reverse()) {
      state = settle(state, { acks: ids.map(refOf), retries: [], now: 2_000, maxAttempts: 3 }).state
      expect(runCount(state)).toBeLessThanOrEqual(10)
    }
    expect(groupLag(state, range, 2_000).committedOffset).toBe(1_000)
  })
})

describe('importQueue', () => {
  it('takes lease-queue rows as pending, everything else up to the newest as done', () => {
    const state = importQueue({
      rows: [
        { seq: 7, attempts: 0, visibleAt: 0 },
        { seq: 3, attempts: 1, visibleAt: 900 },
        { seq: 4, attempts: 1, visibleAt: 900 },
        { seq: 1, attempts: 2, visibleAt: 0 },
      ],
      log: log(2, 8),
      now: 1_000,
      leaseIdBase: 7,
    })
    expect(state.frontier).toBe(8)
    expect(state.pending).toEqual([
      { from: 3, to: 4, attempts: 1, visibleAt: 900 },
      { from: 7, to: 7, attempts: 0, visibleAt: 0 },
    ])
    expect(() =>
      importQueue({
        rows: [
          { seq: 3, attempts: 0, visibleAt: 0 },
          { seq: 3, attempts: 0, visibleAt: 0 },
        ],
        log: log(1, 8),
        now: 0,
        leaseIdBase: 0,
      }),
    ).toThrow(RangeError)
  })
})

describe('JSON row', () => {
  function busy(): GroupState {
    let state = pull(fresh(log(1, 20)), { now: 1_000, log: log(1, 20), max: 8, vt: 100 }).state
    state = settle(state, {
      acks: [refOf('500.1')],
      retries: [{ ...refOf('500.2'), delayMs: 40 }],
      now: 1_010,
      maxAttempts: 3,
    }).state
    state = extend(state, { items: [refOf('500.5')], visibilityTimeoutMs: 300, now: 1_020 }).state
    return pull(state, { now: 1_020, log: log(1, 20), max: 3, vt: 100 }).state
  }

  it('is compact: runs as arrays, a member expiry only where it differs', () => {
    expect(JSON.parse(encodeGroupState(busy()))).toEqual({
      v: 1,
      frontier: 11,
      nextLeaseId: 502,
      createdAt: 1_000,
      activeAt: 1_020,
      counters: {
        leased: 11,
        redelivered: 0,
        acked: 1,
        retried: 1,
        deadLettered: 0,
        redriven: 0,
        dropped: 0,
      },
      pending: [[2, 2, 1, 1_050]],
      leases: [
        [
          500,
          1_100,
          [
            [3, 4, 1],
            [5, 5, 1, 1_320],
            [6, 8, 1],
          ],
        ],
        [501, 1_120, [[9, 11, 1]]],
      ],
    })
  })

  it('round-trips', () => {
    const state = busy()
    expect(decodeGroupState(encodeGroupState(state))).toEqual(state)
    const empty = fresh(log(1, 0))
    expect(decodeGroupState(encodeGroupState(empty))).toEqual(empty)
  })

  const valid = () => JSON.parse(encodeGroupState(busy())) as Record<string, unknown>
  const corrupt: [string, string, (row: Record<string, unknown>) => unknown][] = [
    ['a version from elsewhere', 'UNSUPPORTED_VERSION', (row) => ({ ...row, v: 2 })],
    ['no version', 'UNSUPPORTED_VERSION', ({ v: _v, ...row }) => row],
    ['an array', 'INVALID_SHAPE', () => []],
    ['null', 'INVALID_SHAPE', () => null],
    ['a missing frontier', 'INVALID_SHAPE', ({ frontier: _f, ...row }) => row],
    ['a fractional frontier', 'INVALID_SHAPE', (row) => ({ ...row, frontier: 1.5 })],
    ['a string counter', 'INVALID_SHAPE', (row) => ({ ...row, counters: { acked: '1' } })],
    ['a negative time', 'INVALID_SHAPE', (row) => ({ ...row, activeAt: -1 })],
    ['a short pending run', 'INVALID_SHAPE', (row) => ({ ...row, pending: [[2, 2, 1]] })],
    ['a backwards run', 'INVALID_SHAPE', (row) => ({ ...row, pending: [[3, 2, 1, 0]] })],
    ['seq 0', 'INVALID_SHAPE', (row) => ({ ...row, pending: [[0, 0, 1, 0]] })],
    [
      'a member never delivered',
      'INVALID_SHAPE',
      (row) => ({ ...row, leases: [[1, 0, [[1, 1, 0]]]] }),
    ],
    ['a lease of 2 fields', 'INVALID_SHAPE', (row) => ({ ...row, leases: [[1, 0]] })],
    ['leases not an array', 'INVALID_SHAPE', (row) => ({ ...row, leases: {} })],
    ['an empty lease', 'INVALID_STATE', (row) => ({ ...row, leases: [[1, 0, []]] })],
    ['overlapping runs', 'INVALID_STATE', (row) => ({ ...row, pending: [[2, 3, 1, 0]] })],
    [
      'runs out of order',
      'INVALID_STATE',
      (row) => ({
        ...row,
        pending: [
          [9, 9, 0, 0],
          [1, 1, 0, 0],
        ],
        leases: [],
      }),
    ],
    ['a run past the frontier', 'INVALID_STATE', (row) => ({ ...row, frontier: 10 })],
    [
      'a lease id twice',
      'INVALID_STATE',
      (row) => ({
        ...row,
        leases: [
          [1, 0, [[3, 3, 1]]],
          [1, 0, [[4, 4, 1]]],
        ],
      }),
    ],
  ]

  it.each(corrupt)('refuses %s with %s', (_name, code, change) => {
    expect(codeOf(() => decodeGroupState(JSON.stringify(change(valid()))))).toBe(code)
  })

  it('refuses text that is not JSON with INVALID_JSON and the parser error as cause', () => {
    for (const text of ['', '{', 'undefined', '{"v":1,}']) {
      expect(codeOf(() => decodeGroupState(text))).toBe(GroupStateErrorCode.INVALID_JSON)
    }
    try {
      decodeGroupState('{')
    } catch (error) {
      expect((error as GroupStateError).cause).toBeInstanceOf(SyntaxError)
    }
  })

  it('gives a typed error or a valid state for any JSON, never another error', () => {
    const base = valid()
    const rowLike = fc.record({
      v: fc.oneof(fc.constant(1), fc.jsonValue()),
      frontier: fc.oneof(fc.nat(30), fc.jsonValue()),
      nextLeaseId: fc.oneof(fc.nat(), fc.jsonValue()),
      createdAt: fc.nat(),
      activeAt: fc.nat(),
      counters: fc.oneof(fc.constant(base.counters), fc.jsonValue()),
      pending: fc.array(fc.array(fc.oneof(fc.nat(30), fc.jsonValue()), { maxLength: 5 })),
      leases: fc.array(
        fc.tuple(fc.nat(5), fc.nat(), fc.array(fc.array(fc.nat(30), { maxLength: 5 }))),
      ),
    })
    fc.assert(
      fc.property(fc.oneof(rowLike, fc.jsonValue()), (row) => {
        let state: GroupState
        try {
          state = decodeGroupState(JSON.stringify(row))
        } catch (error) {
          expect(error).toBeInstanceOf(GroupStateError)
          return
        }
        expect(decodeGroupState(encodeGroupState(state))).toEqual(state)
      }),
      { numRuns: 500 },
    )
  })
})

describe('cost', () => {
  it('pulls 1000 and acks 1000 in well under a millisecond or so', () => {
    const range = log(1, 1_000_000)
    let state = fresh(range)
    const rounds = 50
    let pullMs = 0
    let ackMs = 0
    for (let round = 0; round < rounds; round++) {
      const now = 1_000 + round
      let started = performance.now()
      const pulled = pull(state, { now, log: range, max: 1_000, vt: 1_000 })
      pullMs += performance.now() - started
      const acks = pulled.leased.map((item) => refOf(item.leaseId)).reverse()
      started = performance.now()
      state = settle(pulled.state, { acks, retries: [], now, maxAttempts: 3 }).state
      ackMs += performance.now() - started
    }
    // Generous bounds: two shared CPUs; typical figures are a tenth of these.
    expect(pullMs / rounds).toBeLessThan(5)
    expect(ackMs / rounds).toBeLessThan(5)
    expect(state.leases).toEqual([])
  })
})

type Rec =
  | { kind: 'leased'; lease: number; expiresAt: number; attempts: number }
  | { kind: 'pending'; visibleAt: number; attempts: number }
  | { kind: 'done' }
  | { kind: 'dead'; attempts: number }

/** The reference: one record per message, everything by brute force. */
class Model {
  oldest: number
  newest: number
  /** Seqs up to this never enter the group (its start position). */
  readonly start: number
  readonly recs = new Map<number, Rec>()
  maxEntered = 0
  nextLease: number
  readonly counters = {
    leased: 0,
    redelivered: 0,
    acked: 0,
    retried: 0,
    deadLettered: 0,
    redriven: 0,
    dropped: 0,
  }

  constructor(range: LogRange, start: GroupStart, leaseIdBase: number) {
    this.oldest = range.oldest
    this.newest = range.newest
    this.start =
      start === 'earliest'
        ? range.oldest - 1
        : start === 'latest'
          ? range.newest
          : Math.max(start.afterSeq, range.oldest - 1)
    this.nextLease = leaseIdBase
  }

  get frontier(): number {
    return Math.max(this.start, this.maxEntered, this.oldest - 1)
  }

  isNew(seq: number): boolean {
    return !this.recs.has(seq) && seq > this.start
  }

  notDone(seq: number): boolean {
    const rec = this.recs.get(seq)
    return rec === undefined ? seq > this.start : rec.kind === 'leased' || rec.kind === 'pending'
  }

  seqs(): number[] {
    const all: number[] = []
    for (let seq = this.oldest; seq <= this.newest; seq++) all.push(seq)
    return all
  }

  candidates(now: number, maxAttempts: number, max: number) {
    const dead: { seq: number; attempts: number; reason: 'expired' }[] = []
    const available: { seq: number; attempts: number; redelivery: boolean }[] = []
    for (const seq of this.seqs()) {
      const rec = this.recs.get(seq)
      if (rec?.kind === 'leased' && rec.expiresAt <= now) {
        if (rec.attempts >= maxAttempts)
          dead.push({ seq, attempts: rec.attempts, reason: 'expired' })
        else available.push({ seq, attempts: rec.attempts, redelivery: true })
      } else if (rec?.kind === 'pending' && rec.visibleAt <= now) {
        available.push({ seq, attempts: rec.attempts, redelivery: false })
      } else if (this.isNew(seq)) {
        available.push({ seq, attempts: 0, redelivery: false })
      }
    }
    return { dead, available: available.slice(0, max) }
  }

  bury(now: number, maxAttempts: number) {
    const dead = this.candidates(now, maxAttempts, 0).dead
    for (const { seq, attempts } of dead) this.recs.set(seq, { kind: 'dead', attempts })
    this.counters.deadLettered += dead.length
    return dead
  }

  lease(seqs: number[], now: number, vt: number, maxAttempts: number) {
    if (seqs.length === 0) return []
    const id = this.nextLease
    this.nextLease = id >= Number.MAX_SAFE_INTEGER ? 0 : id + 1
    const offered = this.candidates(now, maxAttempts, seqs.length).available
    return offered.map(({ seq, attempts, redelivery }) => {
      const rec = this.recs.get(seq)
      // Never leased twice at once, never offered once done.
      expect(rec === undefined || rec.kind === 'pending' || rec.kind === 'leased').toBe(true)
      if (rec?.kind === 'leased') expect(rec.expiresAt).toBeLessThanOrEqual(now)
      this.recs.set(seq, { kind: 'leased', lease: id, expiresAt: now + vt, attempts: attempts + 1 })
      this.maxEntered = Math.max(this.maxEntered, seq)
      this.counters.leased++
      if (redelivery) this.counters.redelivered++
      return { seq, attempts: attempts + 1, leaseId: `${id}.${seq}` }
    })
  }

  held(ref: LeaseRef): Rec | undefined {
    const rec = this.recs.get(ref.seq)
    return rec?.kind === 'leased' && rec.lease === ref.leaseNumber && ref.seq >= this.oldest
      ? rec
      : undefined
  }

  settle(acks: LeaseRef[], retries: (LeaseRef & { delayMs: number })[], now: number, maxA: number) {
    const result = {
      acked: 0,
      retried: 0,
      deadLettered: [] as { seq: number; attempts: number; reason: 'retried' }[],
      unknownAcks: [] as number[],
      unknownRetries: [] as number[],
    }
    for (const [index, ref] of acks.entries()) {
      if (this.held(ref) === undefined) {
        result.unknownAcks.push(index)
        continue
      }
      this.recs.set(ref.seq, { kind: 'done' })
      result.acked++
    }
    for (const [index, ref] of retries.entries()) {
      const rec = this.held(ref)
      if (rec?.kind !== 'leased') {
        result.unknownRetries.push(index)
      } else if (rec.attempts >= maxA) {
        this.recs.set(ref.seq, { kind: 'dead', attempts: rec.attempts })
        result.deadLettered.push({ seq: ref.seq, attempts: rec.attempts, reason: 'retried' })
      } else {
        this.recs.set(ref.seq, {
          kind: 'pending',
          visibleAt: now + ref.delayMs,
          attempts: rec.attempts,
        })
        result.retried++
      }
    }
    result.deadLettered.sort((a, b) => a.seq - b.seq)
    this.counters.acked += result.acked
    this.counters.retried += result.retried
    this.counters.deadLettered += result.deadLettered.length
    return result
  }

  extend(items: LeaseRef[], vt: number, now: number) {
    const result = { extended: 0, unknown: [] as number[] }
    for (const [index, ref] of items.entries()) {
      const rec = this.held(ref)
      if (rec?.kind !== 'leased' || rec.expiresAt <= now) {
        result.unknown.push(index)
      } else {
        rec.expiresAt = now + vt
        result.extended++
      }
    }
    return result
  }

  retain(oldest: number): number {
    let dropped = 0
    for (let seq = this.oldest; seq < oldest; seq++) {
      if (this.notDone(seq)) dropped++
      this.recs.delete(seq)
    }
    this.oldest = Math.max(this.oldest, oldest)
    this.counters.dropped += dropped
    return dropped
  }

  redrive(seqs: number[]): number[] {
    const moved = [...new Set(seqs)]
      .filter((seq) => seq >= this.oldest && this.recs.get(seq)?.kind === 'dead')
      .sort((a, b) => a - b)
    for (const seq of moved) this.recs.set(seq, { kind: 'pending', visibleAt: 0, attempts: 0 })
    this.counters.redriven += moved.length
    return moved
  }

  lag(now: number, maxAttempts: number) {
    let messages = 0
    let inFlight = 0
    let delayed = 0
    let available = 0
    let lowestTracked: number | undefined
    let oldestUnacked: number | undefined
    for (const seq of this.seqs()) {
      const rec = this.recs.get(seq)
      if (!this.notDone(seq)) continue
      messages++
      oldestUnacked ??= seq
      if (rec?.kind === 'leased') {
        lowestTracked ??= seq
        if (rec.expiresAt > now) inFlight++
        else if (rec.attempts < maxAttempts) available++
      } else if (rec?.kind === 'pending') {
        lowestTracked ??= seq
        if (rec.visibleAt > now) delayed++
        else available++
      } else available++
    }
    const committedOffset = lowestTracked === undefined ? this.frontier : lowestTracked - 1
    return { messages, inFlight, delayed, available, committedOffset, oldestUnacked }
  }

  nextChangeAt(now: number): number | undefined {
    const times = [...this.recs.values()].flatMap((rec) =>
      rec.kind === 'leased' ? [rec.expiresAt] : rec.kind === 'pending' ? [rec.visibleAt] : [],
    )
    const future = times.filter((at) => at > now)
    return future.length === 0 ? undefined : Math.min(...future)
  }

  nextDeadAt(maxAttempts: number): number | undefined {
    const times = [...this.recs.values()].flatMap((rec) =>
      rec.kind === 'leased' && rec.attempts >= maxAttempts ? [rec.expiresAt] : [],
    )
    return times.length === 0 ? undefined : Math.min(...times)
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const field of Object.values(value)) deepFreeze(field)
  }
  return value
}

/** The state, one message at a time, checked canonical (merged runs, no needless override). */
function expandState(state: GroupState): Map<number, Rec> {
  const seqs = new Map<number, Rec>()
  const add = (seq: number, rec: Rec) => {
    expect(seqs.has(seq), `seq ${seq} is tracked twice`).toBe(false)
    expect(seq).toBeLessThanOrEqual(state.frontier)
    seqs.set(seq, rec)
  }
  state.pending.forEach((run, i) => {
    const next = state.pending[i + 1]
    if (next !== undefined) {
      expect(next.from).toBeGreaterThan(run.to)
      const mergeable =
        next.from === run.to + 1 &&
        next.attempts === run.attempts &&
        next.visibleAt === run.visibleAt
      expect(mergeable, 'adjacent equal pending runs are merged').toBe(false)
    }
    for (let seq = run.from; seq <= run.to; seq++) {
      add(seq, { kind: 'pending', attempts: run.attempts, visibleAt: run.visibleAt })
    }
  })
  for (const item of state.leases) {
    expect(item.members.length).toBeGreaterThan(0)
    const expiries = new Set(item.members.map((run) => run.expiresAt ?? item.expiresAt))
    if (expiries.size === 1)
      expect(item.members.every((run) => run.expiresAt === undefined)).toBe(true)
    item.members.forEach((run, i) => {
      if (run.expiresAt !== undefined) expect(run.expiresAt).not.toBe(item.expiresAt)
      const next = item.members[i + 1]
      if (next !== undefined) {
        expect(next.from).toBeGreaterThan(run.to)
        const mergeable =
          next.from === run.to + 1 &&
          next.attempts === run.attempts &&
          next.expiresAt === run.expiresAt
        expect(mergeable, 'adjacent equal members are merged').toBe(false)
      }
      for (let seq = run.from; seq <= run.to; seq++) {
        const expiresAt = run.expiresAt ?? item.expiresAt
        add(seq, { kind: 'leased', lease: item.id, expiresAt, attempts: run.attempts })
      }
    })
  }
  return seqs
}

const opArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({ op: fc.constant('grow' as const), k: fc.integer({ min: 0, max: 12 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('retain' as const), k: fc.integer({ min: 0, max: 6 }) }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('pull' as const),
      max: fc.integer({ min: 0, max: 12 }),
      take: fc.nat(),
      vt: fc.integer({ min: 0, max: 100 }),
      bury: fc.boolean(),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('settle' as const),
      acks: fc.array(fc.nat(), { maxLength: 8 }),
      retries: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 100 })), { maxLength: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('extend' as const),
      items: fc.array(fc.nat(), { maxLength: 6 }),
      vt: fc.integer({ min: 0, max: 150 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('advance' as const),
      ms: fc.integer({ min: 0, max: 150 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('bury' as const) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('redrive' as const),
      picks: fc.array(fc.nat(), { maxLength: 5 }),
      noise: fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 3 }),
    }),
  },
)

const setupArb = fc.record({
  oldest: fc.integer({ min: 1, max: 10 }),
  size: fc.integer({ min: 0, max: 20 }),
  start: fc.oneof(
    fc.constant('earliest' as const),
    fc.constant('latest' as const),
    fc.record({ afterSeq: fc.integer({ min: 0, max: 40 }) }),
  ),
  maxAttempts: fc.integer({ min: 1, max: 4 }),
  leaseIdBase: fc.oneof(fc.nat(1_000), fc.constant(Number.MAX_SAFE_INTEGER - 3)),
})

describe('against a per-message model', () => {
  it('gives the same leases, outcomes, dead letters, lag and counters', () => {
    fc.assert(
      fc.property(setupArb, fc.array(opArb, { minLength: 20, maxLength: 100 }), (setup, ops) => {
        const { maxAttempts } = setup
        let now = 1_000
        const range = () => log(model.oldest, model.newest)
        const model = new Model(log(setup.oldest, setup.oldest - 1 + setup.size), setup.start, 0)
        let state = createGroupState({
          start: setup.start,
          log: range(),
          now,
          leaseIdBase: setup.leaseIdBase,
        })
        model.nextLease = setup.leaseIdBase
        const issued: LeaseRef[] = []
        // Mostly recent ids (likely current), some old ones (likely stale), some made up.
        const pick = (p: number): LeaseRef => {
          if (issued.length === 0 || p % 7 === 0) {
            return { leaseNumber: setup.leaseIdBase + (p % 13), seq: 1 + (p % 40) }
          }
          const back = p % 3 === 0 ? p % issued.length : p % Math.min(issued.length, 16)
          return issued[issued.length - 1 - back] as LeaseRef
        }

        // Every other step goes through the JSON row; every state is frozen, so an operation
        // that wrote to its input would throw.
        let step = 0
        const check = () => {
          const text = encodeGroupState(state)
          if (step++ % 2 === 0) {
            state = decodeGroupState(text)
            expect(encodeGroupState(state)).toBe(text)
          }
          deepFreeze(state)
          expect(state.frontier).toBe(model.frontier)
          expect(state.counters).toEqual(model.counters)
          expect(state.nextLeaseId).toBe(model.nextLease)
          const real = expandState(state)
          for (let seq = model.oldest; seq <= state.frontier; seq++) {
            const rec = model.recs.get(seq)
            const expected = rec?.kind === 'leased' || rec?.kind === 'pending' ? rec : undefined
            expect(real.get(seq), `seq ${seq}`).toEqual(expected)
          }
          expect([...real.keys()].every((seq) => seq >= model.oldest)).toBe(true)
          expect(groupLag(state, range(), now, maxAttempts)).toEqual(model.lag(now, maxAttempts))
          expect(nextChangeAt(state, now)).toBe(model.nextChangeAt(now))
          expect(nextDeadAt(state, maxAttempts)).toBe(model.nextDeadAt(maxAttempts))
        }

        check()
        for (const op of ops) {
          switch (op.op) {
            case 'grow':
              model.newest += op.k
              break
            case 'retain': {
              const oldest = Math.min(model.oldest + op.k, model.newest + 1)
              const result = dropBelow(state, oldest)
              expect(result.dropped).toBe(model.retain(oldest))
              state = result.state
              break
            }
            case 'bury': {
              const result = buryExpired(state, now, maxAttempts)
              expect(result.dead).toEqual(model.bury(now, maxAttempts))
              state = result.state
              break
            }
            case 'pull': {
              if (op.bury) {
                const buried = buryExpired(state, now, maxAttempts)
                expect(buried.dead).toEqual(model.bury(now, maxAttempts))
                state = buried.state
              }
              const offered = candidates(state, { now, maxAttempts, log: range(), max: op.max })
              expect(offered).toEqual(model.candidates(now, maxAttempts, op.max))
              const seqs = offered.available
                .slice(0, op.take % (offered.available.length + 1))
                .map((item) => item.seq)
              const result = lease(state, {
                seqs,
                now,
                visibilityTimeoutMs: op.vt,
                maxAttempts,
                log: range(),
              })
              const expected = model.lease(seqs, now, op.vt, maxAttempts)
              expect(result.leased).toEqual(
                expected.map((item) => ({
                  ...item,
                  leaseId: formatLeaseId(result.leaseNumber as number, item.seq),
                })),
              )
              issued.push(...result.leased.map((item) => refOf(item.leaseId)))
              state = result.state
              break
            }
            case 'settle': {
              const acks = op.acks.map(pick)
              const retries = op.retries.map(([p, delayMs]) => ({ ...pick(p), delayMs }))
              const result = settle(state, { acks, retries, now, maxAttempts })
              const { state: next, ...outcome } = result
              expect(outcome).toEqual(model.settle(acks, retries, now, maxAttempts))
              state = next
              break
            }
            case 'extend': {
              const items = op.items.map(pick)
              const { state: next, ...outcome } = extend(state, {
                items,
                visibilityTimeoutMs: op.vt,
                now,
              })
              expect(outcome).toEqual(model.extend(items, op.vt, now))
              state = next
              break
            }
            case 'advance':
              now += op.ms
              break
            case 'redrive': {
              const dead = [...model.recs.entries()]
                .filter(([, rec]) => rec.kind === 'dead')
                .map(([seq]) => seq)
              // Noise the state must ignore: tracked, new, or gone seqs (never acked ones).
              const noise = op.noise.filter((seq) => {
                const rec = model.recs.get(seq)
                return (
                  seq < model.oldest ||
                  seq > model.frontier ||
                  rec?.kind === 'leased' ||
                  rec?.kind === 'pending'
                )
              })
              const seqs = [
                ...op.picks.flatMap((p) => (dead.length ? [dead[p % dead.length] as number] : [])),
                ...noise,
              ]
              const result = redrive(state, seqs, range())
              expect(result.redriven).toEqual(model.redrive(seqs))
              state = result.state
              break
            }
          }
          check()
        }

        // Time passes: everything not done is offered (or dies at its last attempt).
        const owed = model.seqs().filter((seq) => model.notDone(seq))
        for (const rec of model.recs.values()) {
          if (rec.kind === 'leased') now = Math.max(now, rec.expiresAt)
          if (rec.kind === 'pending') now = Math.max(now, rec.visibleAt)
        }
        const buried = buryExpired(state, now, maxAttempts)
        const drained = pull(buried.state, { now, log: range(), maxAttempts, vt: 10 })
        const seen = [...buried.dead.map((item) => item.seq), ...drained.leased.map((l) => l.seq)]
        expect(seen.sort((a, b) => a - b)).toEqual(owed)
        const acks = drained.leased.map((item) => refOf(item.leaseId))
        state = settle(drained.state, { acks, retries: [], now, maxAttempts }).state
        expect(state.pending).toEqual([])
        expect(state.leases).toEqual([])
        expect(groupLag(state, range(), now, maxAttempts)).toMatchObject({
          messages: 0,
          committedOffset: Math.max(model.newest, model.frontier),
        })
      }),
      { numRuns: 300 },
    )
  })
})
