// A channel's last hour, minute by minute, for the dashboard's charts: samples of its running
// totals (messages stored, acked) and of its gauges (messages in the log, each group's lag),
// kept in memory and written with the channel's state (./channel-state.ts), so never a row per
// batch. A sample is taken at most once a minute, by the first change of a minute, before that
// change: the values it reads are then those at the end of the previous minute with a change,
// exactly, and unchanged since. A minute's count is the difference of the totals at its two
// ends; between two samples the totals are taken to grow evenly (exact, given how samples are
// taken, except across a restart: what changed after the last state write is spread up to the
// first change after the restart).

import { HISTORY_MINUTES } from '../shared/api/limits'

export const MINUTE_MS = 60_000

/**
 * Groups whose lag a sample records, the first by name: a channel may hold 100, and every sample
 * is written again with the state each minute.
 */
export const HISTORY_GROUPS = 20

/** What a sample records. */
export interface HistoryValues {
  /** Messages ever stored (a running total). */
  stored: number
  /** Acks ever counted, summed over the groups there are (a running total; falls when one goes). */
  acked: number
  /** Messages in the log. */
  depth: number
  /** Each group's `lag.messages`, by name. */
  lags: Record<string, number>
}

/** The values at one time (ms since the epoch). */
export interface HistorySample extends HistoryValues {
  at: number
}

/** One minute as `GET /v1/channels/{channel}/history` reports it (times in ms). */
export interface HistoryMinute {
  start: number
  /** 60, or the seconds of the current minute passed (at least 1). */
  seconds: number
  messagesIn: number | null
  acked: number | null
  depth: number | null
  lag: Record<string, number>
}

/**
 * Samples kept: four a minute at most (two by {@link ChannelHistory.beforeChange}, two by
 * {@link ChannelHistory.written}), and one older.
 */
const MAX_SAMPLES = 4 * (HISTORY_MINUTES + 1) + 1

function minuteOf(time: number): number {
  return Math.floor(time / MINUTE_MS) * MINUTE_MS
}

function sameValues(a: HistoryValues, b: HistoryValues): boolean {
  if (a.stored !== b.stored || a.acked !== b.acked || a.depth !== b.depth) return false
  const names = Object.keys(a.lags)
  return (
    names.length === Object.keys(b.lags).length &&
    names.every((name) => a.lags[name] === b.lags[name])
  )
}

const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0

/** A stored sample as written by {@link ChannelHistory.samples}, or undefined if it is not one. */
function sampleOf(value: unknown): HistorySample | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const { at, stored, acked, depth, lags } = value as Record<string, unknown>
  if (![at, stored, acked, depth].every(isCount)) return undefined
  if (typeof lags !== 'object' || lags === null) return undefined
  const lagEntries = Object.entries(lags)
  if (!lagEntries.every(([, lag]) => isCount(lag))) return undefined
  return {
    at: at as number,
    stored: stored as number,
    acked: acked as number,
    depth: depth as number,
    lags: Object.fromEntries(lagEntries) as Record<string, number>,
  }
}

/** The samples of a channel's last hour, and the minutes drawn from them. */
export class ChannelHistory {
  #samples: HistorySample[] = []
  /**
   * The minute (its start) of the last change seen, whose end has no sample yet; undefined until
   * the first change since the object started (what came before is only known from storage).
   */
  #minute: number | undefined
  /** The sample {@link written} added last, while it is still the last one. */
  #written: HistorySample | undefined

  /** @param stored the samples as last written (anything that is not a sample is left out). */
  constructor(stored: unknown = []) {
    if (!Array.isArray(stored)) return
    for (const value of stored) {
      const sample = sampleOf(value)
      const last = this.#samples.at(-1)
      if (sample && (!last || sample.at >= last.at)) this.#samples.push(sample)
    }
  }

  /** The samples to write, oldest first. */
  get samples(): readonly HistorySample[] {
    return this.#samples
  }

  /**
   * Call before anything changes the values. The first change of a minute samples them (once):
   * at the end of the minute of the previous change and, after minutes without one, at the start
   * of this one; the first change since the object started, at its own time.
   * @param values read only when a sample is taken.
   * @returns whether a sample was added (the state has something new to write).
   */
  beforeChange(now: number, values: () => HistoryValues): boolean {
    const minute = minuteOf(now)
    if (this.#minute !== undefined && minute <= this.#minute) return false
    this.#dropFuture(now)
    const added = this.#pending(now, values())
    this.#minute = minute
    for (const sample of added) this.#push(sample)
    this.#prune(now)
    return added.length > 0
  }

  /**
   * Records `values` as they are at `now` when the state is written, so an object that starts
   * again counts from there. Only within the minute of the last change (or before any since the
   * start): a later minute's first change samples the end of that one first.
   */
  written(now: number, values: HistoryValues): void {
    if (this.#minute !== undefined && minuteOf(now) !== this.#minute) return
    this.#dropFuture(now)
    const sample = { at: now, ...values }
    // One a minute: writes may come more often (retention writing the state before a drop).
    const last = this.#samples.at(-1)
    if (last && last === this.#written && minuteOf(last.at) === minuteOf(now)) {
      this.#samples[this.#samples.length - 1] = sample
      this.#written = sample
    } else {
      const count = this.#samples.length
      this.#push(sample)
      // Only a sample of its own may be replaced: one merged into another (same values) may be
      // the end of a minute, which the next write must not move.
      this.#written = this.#samples.length > count ? sample : undefined
    }
    this.#prune(now)
  }

  /** Forgets samples from after `now`: a clock set back, or a row from a machine ahead of it. */
  #dropFuture(now: number): void {
    while ((this.#samples.at(-1)?.at ?? now) > now) this.#samples.pop()
  }

  /** The samples {@link beforeChange} would add at `now` with `values`. */
  #pending(now: number, values: HistoryValues): HistorySample[] {
    const minute = minuteOf(now)
    // The first change since the start: the values before it, at its time (even when they are
    // the last sample's: the idle stretch ends here, and the change belongs after it).
    if (this.#minute === undefined) return [{ at: now, ...values }]
    if (minute <= this.#minute) return []
    const end = this.#minute + MINUTE_MS
    return end < minute
      ? [
          { at: end, ...values },
          { at: minute, ...values },
        ]
      : [{ at: end, ...values }]
  }

  #push(sample: HistorySample): void {
    appendSample(this.#samples, sample)
  }

  /** Forgets samples before the hour shown, but the last of them (the hour's first minute needs it). */
  #prune(now: number): void {
    const from = minuteOf(now) - (HISTORY_MINUTES - 1) * MINUTE_MS
    let drop = 0
    while (
      drop + 1 < this.#samples.length &&
      (this.#samples[drop + 1] as HistorySample).at <= from
    ) {
      drop++
    }
    if (this.#samples.length - drop > MAX_SAMPLES) drop = this.#samples.length - MAX_SAMPLES
    if (drop > 0) this.#samples.splice(0, drop)
  }

  /**
   * The last {@link HISTORY_MINUTES} minutes, oldest first, the last being the current one.
   * @param live the values now.
   */
  minutes(now: number, live: HistoryValues): HistoryMinute[] {
    const points = [...this.#samples]
    for (const sample of this.#pending(now, live)) appendSample(points, sample)
    appendSample(points, { at: now, ...live })
    const current = minuteOf(now)
    const minutes: HistoryMinute[] = []
    for (let index = HISTORY_MINUTES - 1; index >= 0; index--) {
      const start = current - index * MINUTE_MS
      const end = Math.min(start + MINUTE_MS, now)
      const first = points[0]
      const from = valuesAt(points, start, 'before')
      // Changes at a minute's end belong to the next; the current minute ends now, after them.
      const to = valuesAt(points, end, start === current ? 'after' : 'before')
      // A minute that ended before history began is unknown, not quiet.
      const known = first !== undefined && end >= first.at
      const gauges = to?.gauges
      minutes.push({
        start,
        seconds: Math.max(1, Math.round((end - start) / 1000)),
        messagesIn: known ? grewBy(from?.stored, to?.stored) : null,
        acked: known ? grewBy(from?.acked, to?.acked) : null,
        depth: gauges ? gauges.depth : null,
        lag: gauges ? { ...gauges.lags } : {},
      })
    }
    return minutes
  }
}

/**
 * Adds `sample` after the others. Two may share a time (the values before and after a change at
 * that instant); one with the last one's time and values, or after two holding its values already
 * (a flat run needs only its two ends), takes the last one's place; an earlier one is dropped.
 */
function appendSample(samples: HistorySample[], sample: HistorySample): void {
  const last = samples.at(-1)
  if (!last) {
    samples.push(sample)
    return
  }
  if (sample.at < last.at) return
  const before = samples.at(-2)
  const repeat =
    sameValues(last, sample) && (sample.at === last.at || (before && sameValues(before, sample)))
  if (repeat) samples[samples.length - 1] = sample
  else samples.push(sample)
}

/**
 * Which of the points at one instant: `before` the changes made then (a minute's start, or its
 * end when the changes belong to the next minute), or `after` them (now).
 */
type Side = 'before' | 'after'

/**
 * The values at `time`: a point's, or running totals growing evenly between the points around it
 * with the gauges of the one before. Before the first point: the first point's totals (history
 * counts from there) and no gauges; after the last: undefined.
 */
function valuesAt(
  points: readonly HistorySample[],
  time: number,
  side: Side,
): { stored: number; acked: number; gauges?: HistorySample } | undefined {
  const first = points[0]
  if (!first) return undefined
  if (time < first.at) return { stored: first.stored, acked: first.acked }
  let index = points.findIndex((point) => point.at >= time)
  if (index < 0) return undefined
  const found = points[index] as HistorySample
  if (found.at === time) {
    if (side === 'after') {
      while ((points[index + 1] as HistorySample | undefined)?.at === time) index++
    }
    const point = points[index] as HistorySample
    return { stored: point.stored, acked: point.acked, gauges: point }
  }
  const before = points[index - 1] as HistorySample
  const share = (time - before.at) / (found.at - before.at)
  return {
    stored: before.stored + share * (found.stored - before.stored),
    acked: before.acked + share * (found.acked - before.acked),
    gauges: before,
  }
}

/**
 * What a running total grew by between two values (rounded at both ends, so minutes add up to
 * the whole); null when either is unknown. A total that fell (a group deleted) counts 0.
 */
function grewBy(from: number | undefined, to: number | undefined): number | null {
  if (from === undefined || to === undefined) return null
  return Math.max(0, Math.round(to) - Math.round(from))
}
