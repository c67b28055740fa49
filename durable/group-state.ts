// One consumer group's leased consumption (SQS / Cloudflare Queues pull semantics) as pure
// functions over a value kept in ONE SQLite row: runs of consecutive seqs, not a row a message.

/**
 * The format {@link encodeGroupState} writes. The row is JSON:
 * ```
 * { "v": 1, "frontier": 120, "nextLeaseId": 8812, "createdAt": ms, "activeAt": ms,
 *   "counters": { "leased": 0, "redelivered": 0, "acked": 0, "retried": 0,
 *                 "deadLettered": 0, "redriven": 0, "dropped": 0 },
 *   "pending": [[from, to, attempts, visibleAt], …],
 *   "leases":  [[id, expiresAt, [[from, to, attempts], [from, to, attempts, expiresAt], …]], …] }
 * ```
 * Runs are inclusive and in seq order; a member's fourth field is its own expiry, present only
 * when a partial extend moved it away from the lease's. Leases are in creation order.
 */
export const GROUP_STATE_VERSION = 1

/**
 * Most messages a group may hold leased (expired leases included) before new seqs wait for
 * acks. Re-leasing expired or pending messages is never refused: it does not grow the state.
 */
export const MAX_IN_FLIGHT = 10_000

/**
 * Most runs (pending plus lease members) the state may hold before new seqs wait: about 40
 * octets of JSON each, so the row stays well under SQLite's ~2 MB value limit. Acks and
 * retries out of the middle of a run still split it, so a state can pass this, but only by
 * splitting messages it already holds: a group whose consumers fail everything stalls here.
 */
export const MAX_RUNS = 10_000

/** The log's seqs now: `oldest` to `newest`, `oldest = newest + 1` when it is empty. */
export interface LogRange {
  readonly oldest: number
  readonly newest: number
}

/**
 * Where a new group starts: before the oldest message, after the newest, or after a seq.
 * `afterSeq` below the oldest starts at the oldest; beyond the newest, the seqs up to it are
 * skipped when they arrive and the first delivered is `afterSeq + 1`.
 */
export type GroupStart = 'earliest' | 'latest' | { readonly afterSeq: number }

/** Seqs `from` to `to` (inclusive) waiting, not leased, with the same attempts and visibility. */
export interface PendingRun {
  readonly from: number
  readonly to: number
  /** Deliveries so far (0: never delivered, or redriven). */
  readonly attempts: number
  /** Available when `visibleAt <= now`; 0 for at once. */
  readonly visibleAt: number
}

/** Seqs `from` to `to` of one lease with the same attempts and expiry. */
export interface MemberRun {
  readonly from: number
  readonly to: number
  /** Deliveries so far, the lease's included (>= 1). */
  readonly attempts: number
  /** Set only when a partial extend gave these members an expiry other than the lease's. */
  readonly expiresAt?: number
}

/** What one pull handed out; members leave as they are acked, retried, buried or re-leased. */
export interface Lease {
  readonly id: number
  readonly expiresAt: number
  readonly members: readonly MemberRun[]
}

/** Totals since the group was created; they only grow. */
export interface GroupCounters {
  /** Deliveries, redeliveries included. */
  readonly leased: number
  /** Deliveries of a message whose previous lease expired without an ack. */
  readonly redelivered: number
  readonly acked: number
  /** Retries that made a message pending again (not those that made a dead letter). */
  readonly retried: number
  readonly deadLettered: number
  readonly redriven: number
  /** Messages retention deleted before the group was done with them (never delivered or not acked). */
  readonly dropped: number
}

/**
 * A group's whole state. Every seq up to `frontier` has entered the group; each of those is
 * pending, a lease member, or done (acked or a dead letter, whose row the caller keeps).
 */
export interface GroupState {
  readonly frontier: number
  readonly pending: readonly PendingRun[]
  readonly leases: readonly Lease[]
  /** The number the next lease gets. */
  readonly nextLeaseId: number
  readonly createdAt: number
  /** Time of the last pull, ack, retry or extend. */
  readonly activeAt: number
  readonly counters: GroupCounters
}

/** A per-message lease id, parsed: the lease's number and the message's seq. */
export interface LeaseRef {
  readonly leaseNumber: number
  readonly seq: number
}

/** Why a message became a dead letter (as lease-queue.ts names it). */
export type DeadReason = 'expired' | 'retried'

/** A message whose last attempt failed: the caller writes its dead-letter row. */
export interface DeadEntry {
  readonly seq: number
  readonly attempts: number
  readonly reason: DeadReason
}

/** A message a pull could lease now. */
export interface Candidate {
  readonly seq: number
  /** Deliveries before this one. */
  readonly attempts: number
  /** Its previous lease expired without an ack (not set for retried or redriven ones). */
  readonly redelivery: boolean
}

const ZERO_COUNTERS: GroupCounters = {
  leased: 0,
  redelivered: 0,
  acked: 0,
  retried: 0,
  deadLettered: 0,
  redriven: 0,
  dropped: 0,
}
const COUNTER_NAMES = Object.keys(ZERO_COUNTERS) as (keyof GroupCounters)[]

export const GroupStateErrorCode = {
  /** The row is not JSON. */
  INVALID_JSON: 'INVALID_JSON',
  /** The row is JSON of a format this module does not know. */
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  /** A field is missing or of the wrong type or range. */
  INVALID_SHAPE: 'INVALID_SHAPE',
  /** Runs overlap, are out of order, or lie beyond the frontier. */
  INVALID_STATE: 'INVALID_STATE',
} as const
export type GroupStateErrorCode = (typeof GroupStateErrorCode)[keyof typeof GroupStateErrorCode]

/** A stored group state that cannot be decoded. */
export class GroupStateError extends Error {
  override readonly name = 'GroupStateError'
  readonly code: GroupStateErrorCode
  constructor(code: GroupStateErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

const LEASE_ID_PATTERN = /^(0|[1-9][0-9]{0,15})\.([1-9][0-9]{0,15})$/

/** The opaque lease id a consumer gets for one message: `${leaseNumber}.${seq}`. */
export function formatLeaseId(leaseNumber: number, seq: number): string {
  return `${leaseNumber}.${seq}`
}

/**
 * Parses a lease id; `undefined` for anything {@link formatLeaseId} never writes (non-digits,
 * leading zeros, empty parts, extra dots, seq 0, numbers above 2^53 - 1).
 */
export function parseLeaseId(text: string): LeaseRef | undefined {
  if (typeof text !== 'string' || text.length > 33) return undefined
  const match = LEASE_ID_PATTERN.exec(text)
  if (match === null) return undefined
  const leaseNumber = Number(match[1])
  const seq = Number(match[2])
  if (!Number.isSafeInteger(leaseNumber) || !Number.isSafeInteger(seq)) return undefined
  return { leaseNumber, seq }
}

function checkInteger(value: number, name: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${name} must be an integer >= ${min}, got ${value}`)
  }
}

function checkLog(log: LogRange): void {
  checkInteger(log.oldest, 'log.oldest', 1)
  checkInteger(log.newest, 'log.newest', log.oldest - 1)
}

interface Run {
  readonly from: number
  readonly to: number
}

const sizeOf = (run: Run) => run.to - run.from + 1
const expiryOf = (lease: Lease, run: MemberRun) => run.expiresAt ?? lease.expiresAt

function pushPending(out: PendingRun[], run: PendingRun): void {
  const last = out[out.length - 1]
  if (
    last !== undefined &&
    last.to + 1 === run.from &&
    last.attempts === run.attempts &&
    last.visibleAt === run.visibleAt
  ) {
    out[out.length - 1] = { ...last, to: run.to }
  } else {
    out.push(run)
  }
}

/** Two sorted, disjoint lists of pending runs as one, adjacent equal runs merged. */
function mergePending(a: readonly PendingRun[], b: readonly PendingRun[]): PendingRun[] {
  const out: PendingRun[] = []
  let i = 0
  let j = 0
  while (i < a.length || j < b.length) {
    const x = a[i]
    const y = b[j]
    if (y === undefined || (x !== undefined && x.from < y.from)) {
      pushPending(out, x as PendingRun)
      i++
    } else {
      pushPending(out, y)
      j++
    }
  }
  return out
}

/**
 * A lease rebuilt from its members (in seq order): `undefined` when none is left; when all
 * share one expiry it becomes the lease's; adjacent members with equal attempts and expiry merge.
 */
function finishLease(lease: Lease, members: readonly MemberRun[]): Lease | undefined {
  const first = members[0]
  if (first === undefined) return undefined
  const shared = expiryOf(lease, first)
  let expiresAt = shared
  for (const member of members) {
    if (expiryOf(lease, member) !== shared) {
      expiresAt = lease.expiresAt
      break
    }
  }
  const out: MemberRun[] = []
  for (const member of members) {
    const at = expiryOf(lease, member)
    const run: MemberRun =
      at === expiresAt
        ? { from: member.from, to: member.to, attempts: member.attempts }
        : { from: member.from, to: member.to, attempts: member.attempts, expiresAt: at }
    const last = out[out.length - 1]
    if (
      last !== undefined &&
      last.to + 1 === run.from &&
      last.attempts === run.attempts &&
      last.expiresAt === run.expiresAt
    ) {
      out[out.length - 1] = { ...last, to: run.to }
    } else {
      out.push(run)
    }
  }
  return { id: lease.id, expiresAt, members: out }
}

/**
 * Takes the sorted, distinct `seqs` out of sorted `runs`: each seq inside a run that `holds`
 * accepts is replaced by what `onHit` returns (nothing removes it). Returns the runs left and
 * the indexes of the seqs no accepting run holds. Linear in runs plus seqs.
 */
function carve<R extends Run>(
  runs: readonly R[],
  seqs: readonly number[],
  holds: (run: R) => boolean,
  onHit: (run: R, seq: number, at: number) => R | undefined,
): { runs: R[]; misses: number[] } {
  const out: R[] = []
  const misses: number[] = []
  let i = 0
  for (const run of runs) {
    while (i < seqs.length && (seqs[i] as number) < run.from) misses.push(i++)
    if (i === seqs.length || (seqs[i] as number) > run.to) {
      out.push(run)
      continue
    }
    if (!holds(run)) {
      while (i < seqs.length && (seqs[i] as number) <= run.to) misses.push(i++)
      out.push(run)
      continue
    }
    let start = run.from
    while (i < seqs.length && (seqs[i] as number) <= run.to) {
      const seq = seqs[i] as number
      if (seq > start) out.push({ ...run, from: start, to: seq - 1 })
      const replacement = onHit(run, seq, i)
      if (replacement !== undefined) out.push(replacement)
      start = seq + 1
      i++
    }
    if (start <= run.to) out.push({ ...run, from: start, to: run.to })
  }
  while (i < seqs.length) misses.push(i++)
  return { runs: out, misses }
}

/** A lease ref with its position in the caller's list. */
interface Ref {
  leaseNumber: number
  seq: number
  index: number
}

/** Refs sorted by lease, seq, then position, so each lease is visited once. */
function sortRefs(items: readonly LeaseRef[]): Ref[] {
  return items
    .map((item, index) => ({ leaseNumber: item.leaseNumber, seq: item.seq, index }))
    .sort((a, b) => a.leaseNumber - b.leaseNumber || a.seq - b.seq || a.index - b.index)
}

/** Calls `visit` with each lease's refs (refs sorted by {@link sortRefs}). */
function eachLease(refs: readonly Ref[], visit: (leaseNumber: number, refs: Ref[]) => void): void {
  let start = 0
  for (let i = 1; i <= refs.length; i++) {
    const head = refs[start] as Ref
    if (i === refs.length || (refs[i] as Ref).leaseNumber !== head.leaseNumber) {
      visit(head.leaseNumber, refs.slice(start, i))
      start = i
    }
  }
}

/** A call's working copy of the leases, found by id; emptied ones are dropped at the end. */
class LeaseEdit {
  readonly #leases: (Lease | undefined)[]
  readonly #at = new Map<number, number>()
  constructor(leases: readonly Lease[]) {
    this.#leases = leases.slice()
    for (const [at, lease] of leases.entries()) this.#at.set(lease.id, at)
  }
  get(id: number): Lease | undefined {
    const at = this.#at.get(id)
    return at === undefined ? undefined : this.#leases[at]
  }
  set(id: number, lease: Lease | undefined): void {
    const at = this.#at.get(id)
    if (at !== undefined) this.#leases[at] = lease
  }
  result(): Lease[] {
    return this.#leases.filter((lease) => lease !== undefined)
  }
}

function countRuns(state: GroupState): number {
  let runs = state.pending.length
  for (const lease of state.leases) runs += lease.members.length
  return runs
}

function lowestTracked(state: GroupState): number | undefined {
  let lowest = state.pending[0]?.from
  for (const lease of state.leases) {
    const from = (lease.members[0] as MemberRun).from
    if (lowest === undefined || from < lowest) lowest = from
  }
  return lowest
}

const withCounters = (state: GroupState, add: Partial<GroupCounters>): GroupCounters => {
  const counters: Record<keyof GroupCounters, number> = { ...state.counters }
  for (const name of COUNTER_NAMES) counters[name] += add[name] ?? 0
  return counters
}

/**
 * A new group at `start` (see {@link GroupStart}).
 * @param options.leaseIdBase the first lease's number: pick it at random (an integer below
 * 2^53) so a deleted and re-created group never accepts the ids of the old one.
 * @throws RangeError when a number is not a non-negative integer or the log range is invalid.
 */
export function createGroupState(options: {
  start: GroupStart
  log: LogRange
  now: number
  leaseIdBase: number
}): GroupState {
  const { start, log, now, leaseIdBase } = options
  checkLog(log)
  checkInteger(now, 'now', 0)
  checkInteger(leaseIdBase, 'leaseIdBase', 0)
  let frontier: number
  if (start === 'earliest') frontier = log.oldest - 1
  else if (start === 'latest') frontier = log.newest
  else if (typeof start === 'object' && start !== null) {
    checkInteger(start.afterSeq, 'start.afterSeq', 0)
    frontier = Math.max(start.afterSeq, log.oldest - 1)
  } else throw new RangeError(`unknown start ${String(start)}`)
  return {
    frontier,
    pending: [],
    leases: [],
    nextLeaseId: leaseIdBase,
    createdAt: now,
    activeAt: now,
    counters: ZERO_COUNTERS,
  }
}

/**
 * A group taking over lease-queue.ts's `queue` table: every row becomes pending with its
 * attempts and `visibleAt` (for a leased row, its lease's expiry: old lease ids cannot be
 * carried over, so nobody gets it before that lease would have ended); every other message up
 * to the newest is done. Rows below the oldest or beyond the newest are ignored.
 * @throws RangeError on invalid numbers or a seq given twice.
 */
export function importQueue(options: {
  rows: readonly { seq: number; attempts: number; visibleAt: number }[]
  log: LogRange
  now: number
  leaseIdBase: number
}): GroupState {
  const state = createGroupState({ ...options, start: 'latest' })
  const { oldest, newest } = options.log
  const rows = options.rows
    .filter((row) => row.seq >= oldest && row.seq <= newest)
    .sort((a, b) => a.seq - b.seq)
  const pending: PendingRun[] = []
  let previous = 0
  for (const { seq, attempts, visibleAt } of rows) {
    checkInteger(seq, 'seq', 1)
    checkInteger(attempts, 'attempts', 0)
    checkInteger(visibleAt, 'visibleAt', 0)
    if (seq === previous) throw new RangeError(`seq ${seq} is given twice`)
    previous = seq
    pushPending(pending, { from: seq, to: seq, attempts, visibleAt })
  }
  return { ...state, pending }
}

/**
 * Forgets every seq below `oldest` (deleted by retention); those the group was not done with
 * (pending, leased, or never delivered) count as dropped. The frontier moves to `oldest - 1`
 * at least. Returns the same state object when there is nothing to forget.
 * @throws RangeError when `oldest` is not an integer >= 1.
 */
export function dropBelow(
  state: GroupState,
  oldest: number,
): { state: GroupState; dropped: number } {
  checkInteger(oldest, 'oldest', 1)
  const cut = oldest - 1
  const lowest = lowestTracked(state)
  if (state.frontier >= cut && (lowest === undefined || lowest >= oldest)) {
    return { state, dropped: 0 }
  }
  let dropped = Math.max(0, cut - state.frontier)
  const pending: PendingRun[] = []
  for (const run of state.pending) {
    if (run.from >= oldest) pending.push(run)
    else if (run.to <= cut) dropped += sizeOf(run)
    else {
      dropped += oldest - run.from
      pending.push({ ...run, from: oldest })
    }
  }
  const leases: Lease[] = []
  for (const lease of state.leases) {
    if ((lease.members[0] as MemberRun).from >= oldest) {
      leases.push(lease)
      continue
    }
    const members: MemberRun[] = []
    for (const run of lease.members) {
      if (run.from >= oldest) members.push(run)
      else if (run.to <= cut) dropped += sizeOf(run)
      else {
        dropped += oldest - run.from
        members.push({ ...run, from: oldest })
      }
    }
    const kept = finishLease(lease, members)
    if (kept !== undefined) leases.push(kept)
  }
  return {
    state: {
      ...state,
      frontier: Math.max(state.frontier, cut),
      pending,
      leases,
      counters: withCounters(state, { dropped }),
    },
    dropped,
  }
}

/**
 * Turns every lease member whose lease has expired (`expiresAt <= now`) at its last attempt
 * (`attempts >= maxAttempts`) into a dead letter, for the caller to store. Run it before
 * {@link candidates}, and on stats and the alarm. Returns the same state when none dies.
 * @throws RangeError when `now` or `maxAttempts` is not an integer (>= 0, >= 1).
 */
export function buryExpired(
  state: GroupState,
  now: number,
  maxAttempts: number,
): { state: GroupState; dead: DeadEntry[] } {
  checkInteger(now, 'now', 0)
  checkInteger(maxAttempts, 'maxAttempts', 1)
  const dies = (lease: Lease, run: MemberRun) =>
    run.attempts >= maxAttempts && expiryOf(lease, run) <= now
  if (!state.leases.some((lease) => lease.members.some((run) => dies(lease, run)))) {
    return { state, dead: [] }
  }
  const dead: DeadEntry[] = []
  const leases: Lease[] = []
  for (const lease of state.leases) {
    const members: MemberRun[] = []
    for (const run of lease.members) {
      if (!dies(lease, run)) members.push(run)
      else for (let seq = run.from; seq <= run.to; seq++) dead.push(deadAt(seq, run.attempts))
    }
    const kept = members.length === lease.members.length ? lease : finishLease(lease, members)
    if (kept !== undefined) leases.push(kept)
  }
  dead.sort((a, b) => a.seq - b.seq)
  return {
    state: { ...state, leases, counters: withCounters(state, { deadLettered: dead.length }) },
    dead,
  }
}

const deadAt = (seq: number, attempts: number): DeadEntry => ({ seq, attempts, reason: 'expired' })

interface Source extends Run {
  readonly attempts: number
  readonly redelivery: boolean
}

/**
 * What a pull could lease now, oldest first, at most `max`: members of expired leases not at
 * their last attempt, pending messages whose `visibleAt <= now`, then new seqs after the
 * frontier up to `log.newest`. New seqs are offered only while the state holds fewer than
 * {@link MAX_RUNS} runs, and only as many as keep the group's leased messages (expired leases
 * included, with this pull) at most {@link MAX_IN_FLIGHT}. Seqs below `log.oldest` are never
 * offered. `dead` lists the expired members at their last attempt ({@link buryExpired}'s).
 * @throws RangeError on a non-integer `now`, `maxAttempts` < 1, `max` < 0 or an invalid log.
 */
export function candidates(
  state: GroupState,
  options: { now: number; maxAttempts: number; log: LogRange; max: number },
): { dead: DeadEntry[]; available: Candidate[] } {
  const { now, maxAttempts, log, max } = options
  checkInteger(now, 'now', 0)
  checkInteger(maxAttempts, 'maxAttempts', 1)
  checkLog(log)
  if (!(max >= 0)) throw new RangeError(`max must be >= 0, got ${max}`)
  const view = dropBelow(state, log.oldest).state
  const dead: DeadEntry[] = []
  const sources: Source[] = []
  let members = 0
  for (const lease of view.leases) {
    for (const run of lease.members) {
      members += sizeOf(run)
      if (expiryOf(lease, run) > now) continue
      if (run.attempts >= maxAttempts) {
        for (let seq = run.from; seq <= run.to; seq++) dead.push(deadAt(seq, run.attempts))
      } else {
        sources.push({ from: run.from, to: run.to, attempts: run.attempts, redelivery: true })
      }
    }
  }
  for (const run of view.pending) {
    if (run.visibleAt > now) continue
    sources.push({ from: run.from, to: run.to, attempts: run.attempts, redelivery: false })
  }
  sources.sort((a, b) => a.from - b.from)
  dead.sort((a, b) => a.seq - b.seq)
  const available: Candidate[] = []
  let fromPending = 0
  for (const source of sources) {
    const last = Math.min(source.to, source.from + (max - available.length) - 1)
    for (let seq = source.from; seq <= last; seq++) {
      available.push({ seq, attempts: source.attempts, redelivery: source.redelivery })
    }
    if (!source.redelivery) fromPending += Math.max(0, last - source.from + 1)
    if (available.length >= max) return { dead, available }
  }
  if (countRuns(view) < MAX_RUNS) {
    const room = Math.min(
      max - available.length,
      MAX_IN_FLIGHT - members - fromPending,
      log.newest - view.frontier,
    )
    for (let k = 1; k <= room; k++) {
      available.push({ seq: view.frontier + k, attempts: 0, redelivery: false })
    }
  }
  return { dead, available }
}

/** A message handed out by {@link lease}. */
export interface LeasedEntry {
  readonly seq: number
  /** Deliveries so far, this one included (1 on the first). */
  readonly attempts: number
  readonly leaseId: string
}

/**
 * Leases `seqs`, which must be a prefix (in order) of {@link candidates}' `available` for the
 * same state, `now`, `maxAttempts` and `log`: one new lease record expiring at
 * `now + visibilityTimeoutMs`. Seqs below `log.oldest` are forgotten first (as
 * {@link dropBelow}). Expired members at their last attempt stay where they are: run
 * {@link buryExpired} before {@link candidates}. With no seqs, only `activeAt` changes and
 * `leaseNumber` is undefined.
 * @throws RangeError when `seqs` is not such a prefix, or on invalid numbers.
 */
export function lease(
  state: GroupState,
  options: {
    seqs: readonly number[]
    now: number
    visibilityTimeoutMs: number
    maxAttempts: number
    log: LogRange
  },
): {
  state: GroupState
  leaseNumber: number | undefined
  expiresAt: number
  leased: LeasedEntry[]
} {
  const { seqs, now, maxAttempts, log } = options
  checkInteger(options.visibilityTimeoutMs, 'visibilityTimeoutMs', 0)
  const base = dropBelow(state, log.oldest).state
  const { available } = candidates(base, { now, maxAttempts, log, max: seqs.length })
  const expiresAt = now + options.visibilityTimeoutMs
  if (seqs.length === 0) {
    return { state: { ...base, activeAt: now }, leaseNumber: undefined, expiresAt, leased: [] }
  }
  let lastOld = -1
  let lastNew = base.frontier
  let redelivered = 0
  for (let i = 0; i < seqs.length; i++) {
    const candidate = available[i]
    if (candidate === undefined || candidate.seq !== seqs[i]) {
      throw new RangeError(`seq ${seqs[i]} at ${i} is not the next available message`)
    }
    if (candidate.seq > base.frontier) lastNew = candidate.seq
    else lastOld = candidate.seq
    if (candidate.redelivery) redelivered++
  }
  // A prefix takes every available seq up to the last re-leased one: cut the sources there.
  const takes = (lease: Lease, run: MemberRun) =>
    run.from <= lastOld && run.attempts < maxAttempts && expiryOf(lease, run) <= now
  const leases: Lease[] = []
  for (const old of base.leases) {
    if (!old.members.some((run) => takes(old, run))) {
      leases.push(old)
      continue
    }
    const members: MemberRun[] = []
    for (const run of old.members) {
      if (!takes(old, run)) members.push(run)
      else if (run.to > lastOld) members.push({ ...run, from: lastOld + 1 })
    }
    const kept = finishLease(old, members)
    if (kept !== undefined) leases.push(kept)
  }
  const pending: PendingRun[] = []
  for (const run of base.pending) {
    if (run.from > lastOld || run.visibleAt > now) pending.push(run)
    else if (run.to > lastOld) pending.push({ ...run, from: lastOld + 1 })
  }
  const id = base.nextLeaseId
  const members: MemberRun[] = []
  const leased: LeasedEntry[] = []
  for (let i = 0; i < seqs.length; i++) {
    const { seq, attempts: before } = available[i] as Candidate
    const attempts = before + 1
    leased.push({ seq, attempts, leaseId: formatLeaseId(id, seq) })
    const last = members[members.length - 1]
    if (last !== undefined && last.to + 1 === seq && last.attempts === attempts) {
      members[members.length - 1] = { ...last, to: seq }
    } else {
      members.push({ from: seq, to: seq, attempts })
    }
  }
  leases.push({ id, expiresAt, members })
  return {
    state: {
      ...base,
      frontier: lastNew,
      pending,
      leases,
      // Wraps after 2^53 - 1 pulls: by then no lease of the old numbers is alive.
      nextLeaseId: id >= Number.MAX_SAFE_INTEGER ? 0 : id + 1,
      activeAt: now,
      counters: withCounters(base, { leased: seqs.length, redelivered }),
    },
    leaseNumber: id,
    expiresAt,
    leased,
  }
}

/**
 * Takes each ref's seq out of its lease (expired or not) while it is still a member; the
 * others, a second ref to the same message included, go to `unknown`.
 */
function takeMembers(
  edit: LeaseEdit,
  refs: readonly Ref[],
  unknown: number[],
  onTaken: (ref: Ref, attempts: number) => void,
): void {
  eachLease(refs, (leaseNumber, group) => {
    const lease = edit.get(leaseNumber)
    if (lease === undefined) {
      for (const ref of group) unknown.push(ref.index)
      return
    }
    const distinct: Ref[] = []
    for (const ref of group) {
      if (distinct[distinct.length - 1]?.seq === ref.seq) unknown.push(ref.index)
      else distinct.push(ref)
    }
    const { runs, misses } = carve(
      lease.members,
      distinct.map((ref) => ref.seq),
      () => true,
      (run, _seq, at) => {
        onTaken(distinct[at] as Ref, run.attempts)
        return undefined
      },
    )
    for (const at of misses) unknown.push((distinct[at] as Ref).index)
    if (misses.length < distinct.length) edit.set(leaseNumber, finishLease(lease, runs))
  })
}

/** What {@link settle} did. */
export interface SettleResult {
  state: GroupState
  acked: number
  /** Retries that made a message pending again. */
  retried: number
  /** Retries at the last attempt, in seq order: the caller writes their dead-letter rows. */
  deadLettered: DeadEntry[]
  /** Indexes into `acks` and `retries` of the refs that are not current lease members. */
  unknownAcks: number[]
  unknownRetries: number[]
}

/**
 * Acks (done) and retries (pending again at `now + delayMs`, attempts kept; a dead letter
 * when `attempts >= maxAttempts`). A ref counts while its message is still a member of that
 * lease, expired or not: nobody else holds it until it is leased again. Acks are applied
 * before retries; a second ref to the same message in one call is unknown.
 * @throws RangeError on a non-integer `now`, `delayMs` or `maxAttempts` (>= 0, >= 0, >= 1).
 */
export function settle(
  state: GroupState,
  options: {
    acks: readonly LeaseRef[]
    retries: readonly (LeaseRef & { readonly delayMs: number })[]
    now: number
    maxAttempts: number
  },
): SettleResult {
  const { now, maxAttempts, retries } = options
  checkInteger(now, 'now', 0)
  checkInteger(maxAttempts, 'maxAttempts', 1)
  for (const retry of retries) checkInteger(retry.delayMs, 'delayMs', 0)
  const edit = new LeaseEdit(state.leases)
  const unknownAcks: number[] = []
  const unknownRetries: number[] = []
  let acked = 0
  takeMembers(edit, sortRefs(options.acks), unknownAcks, () => {
    acked++
  })
  const back: PendingRun[] = []
  const deadLettered: DeadEntry[] = []
  takeMembers(edit, sortRefs(retries), unknownRetries, ({ seq, index }, attempts) => {
    if (attempts >= maxAttempts) {
      deadLettered.push({ seq, attempts, reason: 'retried' })
    } else {
      const visibleAt = now + (retries[index] as { delayMs: number }).delayMs
      back.push({ from: seq, to: seq, attempts, visibleAt })
    }
  })
  back.sort((a, b) => a.from - b.from)
  deadLettered.sort((a, b) => a.seq - b.seq)
  unknownAcks.sort((a, b) => a - b)
  unknownRetries.sort((a, b) => a - b)
  return {
    state: {
      ...state,
      leases: edit.result(),
      pending: back.length === 0 ? state.pending : mergePending(state.pending, back),
      activeAt: now,
      counters: withCounters(state, {
        acked,
        retried: back.length,
        deadLettered: deadLettered.length,
      }),
    },
    acked,
    retried: back.length,
    deadLettered,
    unknownAcks,
    unknownRetries,
  }
}

/**
 * Moves the expiry of unexpired memberships (expiry > `now`) to `now + visibilityTimeoutMs`.
 * Members of the same lease not named keep their expiry, and their lease ids keep working.
 * As lease-queue.ts, a ref named twice is extended twice (unknown the second time when
 * `visibilityTimeoutMs` is 0, since the first expired it).
 * @returns `unknown`: indexes into `items` of refs that are not unexpired lease members.
 * @throws RangeError on a non-integer `now` or `visibilityTimeoutMs` (>= 0).
 */
export function extend(
  state: GroupState,
  options: { items: readonly LeaseRef[]; visibilityTimeoutMs: number; now: number },
): { state: GroupState; extended: number; unknown: number[] } {
  const { now, visibilityTimeoutMs } = options
  checkInteger(now, 'now', 0)
  checkInteger(visibilityTimeoutMs, 'visibilityTimeoutMs', 0)
  const until = now + visibilityTimeoutMs
  const edit = new LeaseEdit(state.leases)
  const unknown: number[] = []
  let extended = 0
  eachLease(sortRefs(options.items), (leaseNumber, group) => {
    const lease = edit.get(leaseNumber)
    if (lease === undefined) {
      for (const ref of group) unknown.push(ref.index)
      return
    }
    const distinct: Ref[] = []
    const repeats: Ref[][] = []
    for (const ref of group) {
      if (distinct[distinct.length - 1]?.seq === ref.seq) {
        const at = distinct.length - 1
        repeats[at] = [...(repeats[at] ?? []), ref]
      } else distinct.push(ref)
    }
    const hit: boolean[] = []
    const { runs, misses } = carve(
      lease.members,
      distinct.map((ref) => ref.seq),
      (run) => expiryOf(lease, run) > now,
      (run, seq, at) => {
        hit[at] = true
        return { from: seq, to: seq, attempts: run.attempts, expiresAt: until }
      },
    )
    for (const at of misses) unknown.push((distinct[at] as Ref).index)
    extended += distinct.length - misses.length
    repeats.forEach((refs, at) => {
      for (const ref of refs) {
        if (hit[at] === true && until > now) extended++
        else unknown.push(ref.index)
      }
    })
    if (misses.length < distinct.length) edit.set(leaseNumber, finishLease(lease, runs))
  })
  unknown.sort((a, b) => a - b)
  return { state: { ...state, leases: edit.result(), activeAt: now }, extended, unknown }
}

/**
 * Sends dead letters (whose rows the caller keeps) back as pending, attempts 0, available at
 * once. Only done seqs from `log.oldest` up to the frontier are taken: a seq pending, leased,
 * new or gone is ignored (the caller passes dead letters, never acked seqs, which the state
 * cannot tell apart). Consecutive seqs go in whole runs while the state holds fewer than
 * {@link MAX_RUNS} runs; the rest stay dead letters.
 * @returns the seqs redriven, in order: delete their dead-letter rows.
 * @throws RangeError on an invalid log.
 */
export function redrive(
  state: GroupState,
  seqs: readonly number[],
  log: LogRange,
): { state: GroupState; redriven: number[] } {
  checkLog(log)
  const last = Math.min(state.frontier, log.newest)
  const wanted = [...new Set(seqs)]
    .filter((seq) => Number.isSafeInteger(seq) && seq >= log.oldest && seq <= last)
    .sort((a, b) => a - b)
  const tracked: Run[] = [...state.pending]
  for (const lease of state.leases) tracked.push(...lease.members)
  tracked.sort((a, b) => a.from - b.from)
  const runs: PendingRun[] = []
  let room = MAX_RUNS - countRuns(state)
  let t = 0
  for (const seq of wanted) {
    while (t < tracked.length && (tracked[t] as Run).to < seq) t++
    if (t < tracked.length && (tracked[t] as Run).from <= seq) continue
    const previous = runs[runs.length - 1]
    if (previous !== undefined && previous.to + 1 === seq) {
      runs[runs.length - 1] = { ...previous, to: seq }
    } else if (room > 0) {
      room--
      runs.push({ from: seq, to: seq, attempts: 0, visibleAt: 0 })
    } else break
  }
  if (runs.length === 0) return { state, redriven: [] }
  const redriven: number[] = []
  for (const run of runs) for (let seq = run.from; seq <= run.to; seq++) redriven.push(seq)
  return {
    state: {
      ...state,
      pending: mergePending(state.pending, runs),
      counters: withCounters(state, { redriven: redriven.length }),
    },
    redriven,
  }
}

/**
 * The earliest time after `now` at which a lease expires (its members become available or
 * die) or a pending message becomes visible: how long a long poll may wait.
 */
export function nextChangeAt(state: GroupState, now: number): number | undefined {
  let next: number | undefined
  const consider = (at: number) => {
    if (at > now && (next === undefined || at < next)) next = at
  }
  for (const run of state.pending) consider(run.visibleAt)
  for (const lease of state.leases) for (const run of lease.members) consider(expiryOf(lease, run))
  return next
}

/**
 * The earliest expiry of a lease member at its last attempt, past or future: when the alarm
 * should run {@link buryExpired}.
 */
export function nextDeadAt(state: GroupState, maxAttempts: number): number | undefined {
  let next: number | undefined
  for (const lease of state.leases) {
    for (const run of lease.members) {
      const at = expiryOf(lease, run)
      if (run.attempts >= maxAttempts && (next === undefined || at < next)) next = at
    }
  }
  return next
}

/** How far a group is behind the log. */
export interface GroupLag {
  /** Messages the group is not done with: pending, leased, and new up to the newest. */
  messages: number
  /** Leased, the lease not expired. */
  inFlight: number
  /** Pending with a `visibleAt` still ahead. */
  delayed: number
  /** Messages a pull could lease now (what {@link candidates} offers with no `max`). */
  available: number
  /** Every seq up to it is done: the lowest pending or leased seq - 1, else the frontier. */
  committedOffset: number
  /** The lowest seq the group is not done with, if any. */
  oldestUnacked: number | undefined
}

/**
 * The group's lag against `log` at `now` (seqs below `log.oldest` are left out, as by
 * {@link dropBelow}). Expired members at their last attempt (`attempts >= maxAttempts`,
 * default: none) are not available; they still count in `messages` until
 * {@link buryExpired} takes them out, so run it first.
 * @throws RangeError on an invalid log.
 */
export function groupLag(
  state: GroupState,
  log: LogRange,
  now: number,
  maxAttempts = Number.POSITIVE_INFINITY,
): GroupLag {
  checkLog(log)
  const view = dropBelow(state, log.oldest).state
  let pending = 0
  let delayed = 0
  let members = 0
  let inFlight = 0
  let expiredLive = 0
  for (const run of view.pending) {
    pending += sizeOf(run)
    if (run.visibleAt > now) delayed += sizeOf(run)
  }
  for (const lease of view.leases) {
    for (const run of lease.members) {
      members += sizeOf(run)
      if (expiryOf(lease, run) > now) inFlight += sizeOf(run)
      else if (run.attempts < maxAttempts) expiredLive += sizeOf(run)
    }
  }
  const fresh = Math.max(0, log.newest - view.frontier)
  const visible = pending - delayed
  const freshAllowed =
    countRuns(view) < MAX_RUNS ? Math.max(0, Math.min(fresh, MAX_IN_FLIGHT - members - visible)) : 0
  const lowest = lowestTracked(view)
  return {
    messages: pending + members + fresh,
    inFlight,
    delayed,
    available: expiredLive + visible + freshAllowed,
    committedOffset: lowest === undefined ? view.frontier : lowest - 1,
    oldestUnacked: lowest ?? (fresh > 0 ? view.frontier + 1 : undefined),
  }
}

/** The state as its row's JSON (see {@link GROUP_STATE_VERSION} for the shape). */
export function encodeGroupState(state: GroupState): string {
  return JSON.stringify({
    v: GROUP_STATE_VERSION,
    frontier: state.frontier,
    nextLeaseId: state.nextLeaseId,
    createdAt: state.createdAt,
    activeAt: state.activeAt,
    counters: state.counters,
    pending: state.pending.map((run) => [run.from, run.to, run.attempts, run.visibleAt]),
    leases: state.leases.map((lease) => [
      lease.id,
      lease.expiresAt,
      lease.members.map((run) =>
        run.expiresAt === undefined
          ? [run.from, run.to, run.attempts]
          : [run.from, run.to, run.attempts, run.expiresAt],
      ),
    ]),
  })
}

function shapeError(message: string): GroupStateError {
  return new GroupStateError(GroupStateErrorCode.INVALID_SHAPE, message)
}

function readInteger(value: unknown, what: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw shapeError(`${what} must be an integer >= ${min}`)
  }
  return value
}

function readArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw shapeError(`${what} must be an array`)
  return value
}

function readRun(value: unknown, what: string, lengths: readonly number[]): number[] {
  const fields = readArray(value, what)
  if (!lengths.includes(fields.length))
    throw shapeError(`${what} must have ${lengths.join(' or ')} fields`)
  const numbers = fields.map((field, i) => readInteger(field, `${what}[${i}]`))
  if ((numbers[0] as number) < 1 || (numbers[1] as number) < (numbers[0] as number)) {
    throw shapeError(`${what} must run from a seq >= 1 to one not below it`)
  }
  return numbers
}

/**
 * Reads a state written by {@link encodeGroupState}, checking every field and the invariants
 * (runs in order, disjoint, at or before the frontier; lease ids distinct; no empty lease).
 * @throws GroupStateError with code INVALID_JSON, UNSUPPORTED_VERSION, INVALID_SHAPE or
 * INVALID_STATE.
 */
export function decodeGroupState(text: string): GroupState {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    throw new GroupStateError(GroupStateErrorCode.INVALID_JSON, 'group state is not JSON', {
      cause: error,
    })
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw shapeError('group state must be an object')
  }
  const row = data as Record<string, unknown>
  if (row.v !== GROUP_STATE_VERSION) {
    throw new GroupStateError(
      GroupStateErrorCode.UNSUPPORTED_VERSION,
      `group state version ${JSON.stringify(row.v)}; this code reads ${GROUP_STATE_VERSION}`,
    )
  }
  const frontier = readInteger(row.frontier, 'frontier')
  const nextLeaseId = readInteger(row.nextLeaseId, 'nextLeaseId')
  const createdAt = readInteger(row.createdAt, 'createdAt')
  const activeAt = readInteger(row.activeAt, 'activeAt')
  const rawCounters = row.counters
  if (typeof rawCounters !== 'object' || rawCounters === null || Array.isArray(rawCounters)) {
    throw shapeError('counters must be an object')
  }
  const counters: Record<keyof GroupCounters, number> = { ...ZERO_COUNTERS }
  for (const name of COUNTER_NAMES) {
    counters[name] = readInteger((rawCounters as Record<string, unknown>)[name], `counters.${name}`)
  }
  const pending: PendingRun[] = []
  readArray(row.pending, 'pending').forEach((value, i) => {
    const [from, to, attempts, visibleAt] = readRun(value, `pending[${i}]`, [4]) as [
      number,
      number,
      number,
      number,
    ]
    pending.push({ from, to, attempts, visibleAt })
  })
  const leases: Lease[] = []
  const ids = new Set<number>()
  readArray(row.leases, 'leases').forEach((value, i) => {
    const fields = readArray(value, `leases[${i}]`)
    if (fields.length !== 3) throw shapeError(`leases[${i}] must have 3 fields`)
    const id = readInteger(fields[0], `leases[${i}][0]`)
    const expiresAt = readInteger(fields[1], `leases[${i}][1]`)
    const members = readArray(fields[2], `leases[${i}][2]`).map((member, j) => {
      const [from, to, attempts, own] = readRun(member, `leases[${i}][2][${j}]`, [3, 4]) as [
        number,
        number,
        number,
        number | undefined,
      ]
      if (attempts < 1) throw shapeError(`leases[${i}][2][${j}] must have attempts >= 1`)
      return own === undefined ? { from, to, attempts } : { from, to, attempts, expiresAt: own }
    })
    if (members.length === 0) throw invalid(`lease ${id} has no member`)
    if (ids.has(id)) throw invalid(`lease ${id} appears twice`)
    ids.add(id)
    checkOrder(members, frontier, `lease ${id}`)
    leases.push(finishLease({ id, expiresAt, members }, members) as Lease)
  })
  checkOrder(pending, frontier, 'pending')
  const all: Run[] = [...pending]
  for (const lease of leases) all.push(...lease.members)
  all.sort((a, b) => a.from - b.from)
  checkOrder(all, frontier, 'runs')
  const merged: PendingRun[] = []
  for (const run of pending) pushPending(merged, run)
  return { frontier, pending: merged, leases, nextLeaseId, createdAt, activeAt, counters }
}

function invalid(message: string): GroupStateError {
  return new GroupStateError(GroupStateErrorCode.INVALID_STATE, message)
}

function checkOrder(runs: readonly Run[], frontier: number, what: string): void {
  let previous = 0
  for (const run of runs) {
    if (run.from <= previous)
      throw invalid(`${what}: runs overlap or are out of order at ${run.from}`)
    if (run.to > frontier)
      throw invalid(`${what}: seq ${run.to} is beyond the frontier ${frontier}`)
    previous = run.to
  }
}
