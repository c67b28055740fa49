// What the channel's "Last hour" charts show, from GET /v1/channels/:channel/history: messages in
// and acked per second, depth, and each consumer group's lag, a value a minute, with the summary
// a screen reader reads for each chart. Pure (no DOM), so the node tests check it as it is.

import type { ChannelHistory } from './api'
import { largest, type ValueAxis, valueAxis } from './chart-geometry'
import { formatChartValue, formatCount } from './format'

/** Consumer groups drawn on the lag chart: more lines would not be told apart. */
export const MAX_LAG_GROUPS = 5

/** One line of a chart: its name (in the legend, as text) and a value a minute (null: unknown). */
export interface ChartSeries {
  name: string
  values: (number | null)[]
}

/** A chart, ready to draw: its series are styled by their index (`series-0`, …). */
export interface ChartModel {
  /** What the chart is, by name: the figure's `data-chart`. */
  key: 'rates' | 'depth' | 'lag'
  caption: string
  series: ChartSeries[]
  axis: ValueAxis
  /** Follows the axis maximum's label: `/s` for rates. */
  unit: string
  /** What it shows, for assistive technology (to which the chart is an image). */
  summary: string
  /** Said below the legend: groups left out, or why there is no line. */
  note: string
}

/** The three charts of a channel's history. */
export function historyCharts(history: ChannelHistory): ChartModel[] {
  return [ratesChart(history), depthChart(history), lagChart(history)]
}

const OVER_THE_HOUR = 'over the last hour, by minute'
const NO_HISTORY = 'no history yet'

/** The value of the current minute (the last) as text: 'unknown' for null. */
function latest(values: readonly (number | null)[], format: (value: number) => string): string {
  const value = values.at(-1)
  return typeof value === 'number' ? format(value) : 'unknown'
}

/** Whether any value is known: an hour without one says so rather than "latest unknown". */
function anyKnown(series: readonly ChartSeries[]): boolean {
  return series.some((line) => line.values.some((value) => value !== null))
}

function ratesChart({ minutes }: ChannelHistory): ChartModel {
  // A count over the seconds the minute covered: the current minute has not had all 60.
  const perSecond = (count: number | null, seconds: number) =>
    count === null ? null : count / Math.max(1, seconds)
  const series = [
    { name: 'in', values: minutes.map((minute) => perSecond(minute.messagesIn, minute.seconds)) },
    { name: 'acked', values: minutes.map((minute) => perSecond(minute.acked, minute.seconds)) },
  ]
  const [incoming, acked] = series as [ChartSeries, ChartSeries]
  const title = 'Messages in and acked per second'
  return {
    key: 'rates',
    caption: title,
    series,
    axis: valueAxis(largest(series.map((line) => line.values))),
    unit: '/s',
    summary: anyKnown(series)
      ? `${title} ${OVER_THE_HOUR}: latest ${latest(incoming.values, formatChartValue)} in, ` +
        `${latest(acked.values, formatChartValue)} acked`
      : `${title} ${OVER_THE_HOUR}: ${NO_HISTORY}`,
    note: '',
  }
}

function depthChart({ minutes }: ChannelHistory): ChartModel {
  const series = [{ name: 'depth', values: minutes.map((minute) => minute.depth) }]
  const title = 'Depth (messages in the log)'
  return {
    key: 'depth',
    caption: title,
    series,
    axis: valueAxis(largest(series.map((line) => line.values)), { integer: true }),
    unit: '',
    summary: anyKnown(series)
      ? `${title} ${OVER_THE_HOUR}: latest ${latest(series[0]?.values ?? [], formatCount)}`
      : `${title} ${OVER_THE_HOUR}: ${NO_HISTORY}`,
    note: '',
  }
}

/**
 * A line per consumer group (null in a minute it did not exist), the MAX_LAG_GROUPS of largest
 * lag over the hour first (then by name, so the order is stable); the others are counted in
 * the note.
 */
function lagChart({ minutes }: ChannelHistory): ChartModel {
  const peak = new Map<string, number>()
  for (const minute of minutes) {
    for (const [name, lag] of Object.entries(minute.lag)) {
      peak.set(name, Math.max(lag, peak.get(name) ?? 0))
    }
  }
  const names = [...peak.keys()].sort(
    (a, b) => (peak.get(b) ?? 0) - (peak.get(a) ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
  )
  const shown = names.slice(0, MAX_LAG_GROUPS)
  const series = shown.map((name) => ({
    name,
    values: minutes.map((minute) =>
      Object.hasOwn(minute.lag, name) ? (minute.lag[name] ?? null) : null,
    ),
  }))
  const left = names.length - shown.length
  const title = 'Lag per consumer group (messages not acked)'
  let summary = `${title} ${OVER_THE_HOUR}: no consumer groups`
  if (series.length > 0) {
    const latests = series.map((line) => `${line.name} ${latest(line.values, formatCount)}`)
    summary = `${title} ${OVER_THE_HOUR}: latest ${latests.join(', ')}`
    if (left > 0) summary += ` (and ${left} more ${left === 1 ? 'group' : 'groups'})`
  }
  return {
    key: 'lag',
    caption: 'Lag per consumer group',
    series,
    axis: valueAxis(largest(series.map((line) => line.values)), { integer: true }),
    unit: '',
    summary,
    note:
      series.length === 0
        ? 'No consumer group in the last hour.'
        : left > 0
          ? `${left} more ${left === 1 ? 'group' : 'groups'} with less lag not drawn.`
          : '',
  }
}
