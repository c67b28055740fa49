// The dashboard's charts of a channel's last hour, without a browser: the geometry
// (worker/dashboard/browser/chart-geometry.ts: the value axis, step lines broken at unknown
// minutes) and what each chart shows (history-charts.ts: rates over the seconds a minute covered,
// the lag chart's groups, the summaries read out). The drawing itself is checked in Chromium by
// dashboard-browser.test.ts.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HISTORY_MINUTES } from '../../shared/api/limits'
import { ChannelHistorySchema } from '../../shared/api/schemas'
import type { ChannelHistory } from '../../worker/dashboard/browser/api'
import {
  largest,
  latestPoint,
  PLOT,
  pathData,
  slotX,
  stepSegments,
  valueAxis,
  valueY,
} from '../../worker/dashboard/browser/chart-geometry'
import { formatChartValue } from '../../worker/dashboard/browser/format'
import { historyCharts, MAX_LAG_GROUPS } from '../../worker/dashboard/browser/history-charts'

/** Whether `step` is 1, 2 or 5 times a power of ten (to rounding). */
function isNiceStep(step: number): boolean {
  const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9)
  return [1, 2, 5].some((nice) => Math.abs(mantissa - nice) < 1e-6)
}

describe('valueAxis', () => {
  it('rounds up to a nice maximum with evenly spaced ticks from 0', () => {
    expect(valueAxis(12.5)).toEqual({ max: 15, ticks: [0, 5, 10, 15] })
    expect(valueAxis(100)).toEqual({ max: 100, ticks: [0, 50, 100] })
    expect(valueAxis(101)).toEqual({ max: 150, ticks: [0, 50, 100, 150] })
    // Decimal steps are exact: 0.4, not 0.4000000000000001.
    expect(valueAxis(0.3)).toEqual({ max: 0.4, ticks: [0, 0.2, 0.4] })
    expect(valueAxis(0.017)).toEqual({ max: 0.02, ticks: [0, 0.01, 0.02] })
  })

  it('keeps counts on whole steps', () => {
    expect(valueAxis(1, { integer: true })).toEqual({ max: 1, ticks: [0, 1] })
    expect(valueAxis(3, { integer: true })).toEqual({ max: 4, ticks: [0, 2, 4] })
  })

  it('gives no data, zeros or nonsense an axis above 0, so a zero line sits at the bottom', () => {
    for (const dataMax of [0, -3, Number.NaN, Number.POSITIVE_INFINITY]) {
      const axis = valueAxis(dataMax)
      expect(axis.max).toBeGreaterThan(0)
      expect(axis.ticks[0]).toBe(0)
      expect(valueAxis(dataMax, { integer: true })).toEqual({ max: 1, ticks: [0, 1] })
    }
    // No step finer than a millionth, however small the value.
    expect(valueAxis(Number.MIN_VALUE)).toEqual({ max: 0.000001, ticks: [0, 0.000001] })
  })

  it('always reaches the data, in a few nice steps', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-6, max: 1e12, noNaN: true }),
        fc.boolean(),
        (dataMax, integer) => {
          const { max, ticks } = valueAxis(dataMax, { integer })
          expect(max).toBeGreaterThanOrEqual(dataMax)
          expect(ticks[0]).toBe(0)
          expect(ticks.at(-1)).toBe(max)
          // Not much room wasted: the tick below the max is below the data.
          expect(ticks.at(-2)).toBeLessThan(dataMax)
          expect(ticks.length - 1).toBeGreaterThanOrEqual(1)
          expect(ticks.length - 1).toBeLessThanOrEqual(5)
          const step = ticks[1] as number
          expect(isNiceStep(step)).toBe(true)
          ticks.forEach((tick, index) => {
            expect(tick).toBeCloseTo(index * step, 9)
          })
          if (integer) expect(ticks.every(Number.isInteger)).toBe(true)
        },
      ),
    )
  })
})

describe('stepSegments and pathData', () => {
  const axis = { max: 10, ticks: [0, 5, 10] }
  const slots = 4
  const x = (index: number) => slotX(index, slots)

  it('scales 0 to the bottom, the axis max to the top, and halfway between', () => {
    expect(valueY(0, axis)).toBe(PLOT.bottom)
    expect(valueY(10, axis)).toBe(PLOT.top)
    expect(valueY(5, axis)).toBe((PLOT.top + PLOT.bottom) / 2)
    expect(x(0)).toBe(PLOT.left)
    expect(x(slots)).toBe(PLOT.right)
  })

  it('draws each value across its minute, and climbs at the boundary', () => {
    const [segment, ...others] = stepSegments([2, 6, 6, 10], axis)
    expect(others).toEqual([])
    expect(segment).toEqual([
      { x: x(0), y: valueY(2, axis) },
      { x: x(1), y: valueY(2, axis) },
      { x: x(1), y: valueY(6, axis) },
      { x: x(2), y: valueY(6, axis) },
      { x: x(2), y: valueY(6, axis) },
      { x: x(3), y: valueY(6, axis) },
      { x: x(3), y: PLOT.top },
      // The last value, the current minute's, reaches the right edge ("now").
      { x: PLOT.right, y: PLOT.top },
    ])
  })

  it('leaves a gap for an unknown minute rather than drawing it as zero', () => {
    const segments = stepSegments([null, 4, null, 0], axis)
    expect(segments).toEqual([
      [
        { x: x(1), y: valueY(4, axis) },
        { x: x(2), y: valueY(4, axis) },
      ],
      // A lone known value shows: a level line across its minute.
      [
        { x: x(3), y: PLOT.bottom },
        { x: x(4), y: PLOT.bottom },
      ],
    ])
    // Nothing is drawn over the unknown minutes 0 and 2.
    const drawnXs = segments.flat().map((point) => point.x)
    expect(drawnXs.some((drawn) => drawn < x(1) || (drawn > x(2) && drawn < x(3)))).toBe(false)
    // One subpath per run: the path moves (M) over each gap instead of drawing (L) across it.
    const d = pathData(segments)
    expect(d.match(/M/g)).toHaveLength(2)
    expect(d).toBe(
      `M${x(1)} ${valueY(4, axis)} L${x(2)} ${valueY(4, axis)} ` +
        `M${x(3)} ${PLOT.bottom} L${x(4)} ${PLOT.bottom}`,
    )
  })

  it('marks the latest value, at the right edge, only when the current minute is known', () => {
    const values = [1, null, 5]
    expect(latestPoint(values, stepSegments(values, axis))).toEqual({
      x: PLOT.right,
      y: valueY(5, axis),
    })
    const unknownNow = [1, 5, null]
    expect(latestPoint(unknownNow, stepSegments(unknownNow, axis))).toBeUndefined()
    expect(latestPoint([], [])).toBeUndefined()
  })

  it('draws nothing for an hour with no known value', () => {
    expect(stepSegments([null, null, null], axis)).toEqual([])
    expect(pathData([])).toBe('')
    expect(largest([[null, null], []])).toBe(0)
  })

  it('keeps every point of the data in the plot area', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.double({ min: 0, max: 1e9, noNaN: true }), { nil: null }), {
          minLength: 1,
          maxLength: HISTORY_MINUTES,
        }),
        (values) => {
          const fitted = valueAxis(largest([values]))
          const segments = stepSegments(values, fitted)
          expect(segments).toHaveLength(
            values.filter(
              (value, index) => value !== null && (index === 0 || values[index - 1] === null),
            ).length,
          )
          for (const point of segments.flat()) {
            expect(point.x).toBeGreaterThanOrEqual(PLOT.left)
            expect(point.x).toBeLessThanOrEqual(PLOT.right)
            expect(point.y).toBeGreaterThanOrEqual(PLOT.top)
            expect(point.y).toBeLessThanOrEqual(PLOT.bottom)
          }
        },
      ),
    )
  })
})

/** A group name with markup in it: the charts keep it as text. */
const MARKUP_GROUP = '<b>billing</b><img src=x onerror="window.__xss = 3">'

/**
 * An hour whose first 50 minutes are unknown (before the channel kept history), then counts;
 * the current minute has run `currentSeconds` seconds. Checked against the API's schema.
 */
function history(
  currentSeconds: number,
  lagOf: (index: number) => Record<string, number> = () => ({}),
): ChannelHistory {
  const now = Date.parse('2026-03-01T12:00:00.000Z') + currentSeconds * 1000
  return ChannelHistorySchema.parse({
    channel: 'orders',
    now: new Date(now).toISOString(),
    minutes: Array.from({ length: HISTORY_MINUTES }, (_, index) => {
      const known = index >= 50
      return {
        start: new Date(Date.parse('2026-03-01T11:01:00.000Z') + index * 60_000).toISOString(),
        seconds: index === HISTORY_MINUTES - 1 ? currentSeconds : 60,
        messagesIn: known ? 60 * index : null,
        acked: known ? 30 : null,
        depth: known ? 1000 + index : null,
        lag: known ? lagOf(index) : {},
      }
    }),
  })
}

describe('historyCharts', () => {
  it('draws messages in and acked per second of each minute, the current one over its seconds', () => {
    const [rates] = historyCharts(history(20))
    expect(rates?.key).toBe('rates')
    expect(rates?.series.map((series) => series.name)).toEqual(['in', 'acked'])
    const [incoming, acked] = rates?.series ?? []
    // Unknown minutes stay unknown: gaps, not zeros.
    expect(incoming?.values.slice(0, 50)).toEqual(Array(50).fill(null))
    expect(incoming?.values[50]).toBe(50)
    expect(acked?.values[50]).toBe(0.5)
    // The current minute: 3,540 in and 30 acked over 20 s, not over 60.
    expect(incoming?.values.at(-1)).toBe(177)
    expect(acked?.values.at(-1)).toBe(1.5)
    expect(rates?.axis.max).toBeGreaterThanOrEqual(177)
    expect(rates?.unit).toBe('/s')
    expect(rates?.summary).toBe(
      'Messages in and acked per second over the last hour, by minute: latest 177 in, 1.5 acked',
    )
  })

  it('says an hour with nothing known is so, rather than zero', () => {
    const empty = ChannelHistorySchema.parse({
      ...history(1),
      minutes: history(1).minutes.map((minute) => ({
        ...minute,
        messagesIn: null,
        acked: null,
        depth: null,
        lag: {},
      })),
    })
    const [rates, depth, lag] = historyCharts(empty)
    expect(rates?.summary).toMatch(/: no history yet$/)
    expect(depth?.summary).toMatch(/: no history yet$/)
    expect(lag?.series).toEqual([])
    expect(lag?.summary).toMatch(/: no consumer groups$/)
    expect(lag?.note).toBe('No consumer group in the last hour.')
    expect(rates && pathData(stepSegments(rates.series[0]?.values ?? [], rates.axis))).toBe('')
  })

  it('draws the depth at the end of each minute, on a whole-number axis', () => {
    const [, depth] = historyCharts(history(30))
    expect(depth?.series).toHaveLength(1)
    expect(depth?.series[0]?.values.at(-1)).toBe(1059)
    expect(depth?.axis.ticks.every(Number.isInteger)).toBe(true)
    expect(depth?.axis.max).toBeGreaterThanOrEqual(1059)
    expect(depth?.summary).toBe(
      'Depth (messages in the log) over the last hour, by minute: latest 1,059',
    )
  })

  it('draws a line per group, the largest lags first, the names as they are', () => {
    const groups = ['a', 'b', 'c', 'd', 'e', 'f', MARKUP_GROUP]
    const [, , lag] = historyCharts(
      history(10, (index) => {
        const lags: Record<string, number> = {}
        groups.forEach((name, rank) => {
          // Group "f" is created in minute 55: unknown before.
          if (name !== 'f' || index >= 55) lags[name] = rank * 100 + index
        })
        return lags
      }),
    )
    expect(lag?.series.map((series) => series.name)).toEqual([MARKUP_GROUP, 'f', 'e', 'd', 'c'])
    expect(lag?.series).toHaveLength(MAX_LAG_GROUPS)
    const f = lag?.series.find((series) => series.name === 'f')
    expect(f?.values.slice(50, 56)).toEqual([null, null, null, null, null, 555])
    expect(lag?.note).toBe('2 more groups with less lag not drawn.')
    expect(lag?.summary).toBe(
      'Lag per consumer group (messages not acked) over the last hour, by minute: latest ' +
        `${MARKUP_GROUP} 659, f 559, e 459, d 359, c 259 (and 2 more groups)`,
    )
  })
})

describe('historyCharts, given any group name', () => {
  it('charts a group named __proto__ like any other (the answer is JSON, parsed as the page does)', () => {
    const answer = JSON.parse(
      JSON.stringify(history(60)).replaceAll('"lag":{}', '"lag":{"__proto__":7,"default":2}'),
    ) as ChannelHistory
    const [, , lag] = historyCharts(answer)
    expect(lag?.series.map((series) => series.name)).toEqual(['__proto__', 'default'])
    expect(lag?.series[0]?.values.at(-1)).toBe(7)
    expect(lag?.summary).toMatch(/: latest __proto__ 7, default 2$/)
  })

  it('leaves a gap, not an inherited value, where a group named like a property did not exist', () => {
    // Groups `constructor` and `toString` exist in the last minute only: before it, every minute's
    // lag object lacks them (though any object inherits properties of those names).
    const text = JSON.stringify(history(60)).replaceAll('"lag":{}', '"lag":{"default":2}')
    const answer = JSON.parse(text) as ChannelHistory
    const last = answer.minutes.at(-1)
    if (last) last.lag = JSON.parse('{"constructor":4,"toString":5,"__proto__":6,"default":2}')
    const [, , lag] = historyCharts(answer)
    for (const name of ['constructor', 'toString', '__proto__']) {
      const values = lag?.series.find((series) => series.name === name)?.values ?? []
      expect(values.slice(0, -1).every((value) => value === null)).toBe(true)
      expect(typeof values.at(-1)).toBe('number')
    }
  })
})

describe('formatChartValue', () => {
  it('keeps three significant digits, so a small rate is not 0, and shortens large values', () => {
    expect(formatChartValue(0)).toBe('0')
    expect(formatChartValue(0.017)).toBe('0.017')
    expect(formatChartValue(12.5)).toBe('12.5')
    expect(formatChartValue(1500)).toBe('1,500')
    expect(formatChartValue(150_000)).toBe('150K')
    expect(formatChartValue(2_000_000)).toBe('2M')
  })
})
