// The geometry of the dashboard's small charts, pure (no DOM) so the node tests check it as it
// is: a value axis from 0 up to a "nice" maximum at or above the data's, and a series of values,
// one a minute, as a step line (each value spans its minute: it is a count or a level over that
// minute, not a point in time), broken where a value is unknown so a gap is never drawn as zero.

/** The chart's coordinates (its viewBox): the page scales them to the width it has. */
export const VIEW = { width: 300, height: 112 } as const

/**
 * The plot area within VIEW: room above for the axis maximum's label, below for the times, and
 * at the right for the dot on the latest value.
 */
export const PLOT = { left: 2, right: 296, top: 16, bottom: 92 } as const

/** A value axis: from 0 to `max`, with a grid line at each tick (0 and `max` included). */
export interface ValueAxis {
  max: number
  ticks: number[]
}

/** Steps between ticks are 1, 2 or 5 times a power of ten. */
const NICE_MANTISSAS = [1, 2, 5, 10]

/** The finest step's power of ten. */
const MIN_EXPONENT = -6

/**
 * The axis for values up to `dataMax`, in about `intervals` steps of 1, 2 or 5 × 10ⁿ (at least 1
 * when the values are `integer` counts). Its max is at or above `dataMax` and above 0: no data,
 * or only zeros, gives the axis of 1 (0.5 for rates), so a zero line sits at the bottom.
 */
export function valueAxis(dataMax: number, { integer = false, intervals = 2 } = {}): ValueAxis {
  const top = Number.isFinite(dataMax) && dataMax > 0 ? dataMax : 0
  let exponent = Math.floor(Math.log10((top || 1) / intervals))
  const raw = (top || 1) / intervals / 10 ** exponent
  // The nice mantissa nearest the raw step (in ratio): about `intervals` steps, never many more.
  let mantissa = NICE_MANTISSAS.reduce((best, nice) =>
    Math.abs(Math.log(nice / raw)) < Math.abs(Math.log(best / raw)) ? nice : best,
  )
  if (mantissa === 10) {
    mantissa = 1
    exponent++
  }
  // No step finer than a millionth (for counts, than 1): the smallest rate is a count of 1 over
  // 60 s, and toFixed takes at most 100 decimals.
  const finest = integer ? 0 : MIN_EXPONENT
  if (exponent < finest) {
    mantissa = 1
    exponent = finest
  }
  // Ticks are computed as integers times 10ⁿ and rounded to the step's decimals, so 3 × 0.1 is
  // 0.3, not 0.30000000000000004.
  const decimals = Math.max(0, -exponent)
  const tick = (index: number) => Number((index * mantissa * 10 ** exponent).toFixed(decimals))
  let count = 1
  while (tick(count) < top) count++
  return { max: tick(count), ticks: Array.from({ length: count + 1 }, (_, index) => tick(index)) }
}

/** A point in VIEW's coordinates. */
export interface Point {
  x: number
  y: number
}

/** Coordinates are rounded to hundredths: finer than a pixel, and short in the markup. */
const round = (value: number) => Math.round(value * 100) / 100

/** The x of the start of slot `index` of `slots` (slot `slots` is the plot's right edge). */
export function slotX(index: number, slots: number, plot = PLOT): number {
  return round(plot.left + ((plot.right - plot.left) * index) / slots)
}

/** The y of `value` on `axis` (0 at the plot's bottom, `axis.max` at its top). */
export function valueY(value: number, axis: ValueAxis, plot = PLOT): number {
  const share = Math.min(1, Math.max(0, value / axis.max))
  return round(plot.bottom - (plot.bottom - plot.top) * share)
}

/** Whether a value is known: null (and anything not a finite number) is a gap. */
function known(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value)
}

/**
 * The series as step lines, one per run of known values (a null ends a run): value i spans slot
 * i, from its start to the next slot's, and a run climbs or falls to its next value at the slot
 * boundary. A lone known value is a level line across its slot, so it shows.
 */
export function stepSegments(
  values: readonly (number | null)[],
  axis: ValueAxis,
  plot = PLOT,
): Point[][] {
  const segments: Point[][] = []
  let run: Point[] | undefined
  values.forEach((value, index) => {
    if (!known(value)) {
      run = undefined
      return
    }
    const y = valueY(value, axis, plot)
    if (!run) {
      run = []
      segments.push(run)
    }
    run.push(
      { x: slotX(index, values.length, plot), y },
      { x: slotX(index + 1, values.length, plot), y },
    )
  })
  return segments
}

/** Where the latest value is drawn (the end of the last segment), if the last value is known. */
export function latestPoint(
  values: readonly (number | null)[],
  segments: readonly Point[][],
): Point | undefined {
  return known(values.at(-1)) ? segments.at(-1)?.at(-1) : undefined
}

/** An SVG path's `d` for the segments: a move to the start of each, so gaps stay open. */
export function pathData(segments: readonly Point[][]): string {
  return segments
    .filter((segment) => segment.length > 0)
    .map((segment) =>
      segment.map((point, index) => `${index === 0 ? 'M' : 'L'}${point.x} ${point.y}`).join(' '),
    )
    .join(' ')
}

/** The largest known value of the series (0 when none is known). */
export function largest(series: readonly (readonly (number | null)[])[]): number {
  let max = 0
  for (const values of series) {
    for (const value of values) if (known(value) && value > max) max = value
  }
  return max
}
