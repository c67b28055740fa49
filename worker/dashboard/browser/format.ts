// The dashboard's text for numbers, sizes, rates, chart values, ages, times and binary frames: pure
// (no DOM), so the node tests check them as they are.

/** Octets of a binary frame shown in hex; the rest is cut, marked ' …'. */
export const MAX_HEX = 64

const MIB = 1024 * 1024
const integer = new Intl.NumberFormat('en')

/** A count with thousands separators; '–' when there is none (a field the answer lacks). */
export function formatCount(value: number | null | undefined): string {
  return typeof value === 'number' ? integer.format(value) : '–'
}

/** Octets: the count below 1 MiB, else MiB with one decimal and the exact count. */
export function formatBytes(value: number | null | undefined): string {
  if (typeof value !== 'number') return '– bytes'
  if (value < MIB) return `${formatCount(value)} bytes`
  return `${(value / MIB).toFixed(1)} MiB (${formatCount(value)} bytes)`
}

/** Messages a second: one decimal below 10, whole above; '–' before there are two samples. */
export function formatRate(value: number | undefined): string {
  if (value === undefined) return '–'
  if (value === 0) return '0'
  if (value < 10) return value.toFixed(1)
  return integer.format(Math.round(value))
}

const significant = new Intl.NumberFormat('en', { maximumSignificantDigits: 3 })
const compact = new Intl.NumberFormat('en', { notation: 'compact', maximumSignificantDigits: 3 })

/**
 * A chart's value (an axis maximum, a latest rate): three significant digits, so a small rate
 * such as 0.017/s is not written 0, and 100,000 and up compact (150K).
 */
export function formatChartValue(value: number): string {
  return Math.abs(value) >= 100_000 ? compact.format(value) : significant.format(value)
}

/** An age in its largest useful unit: s, min, h and min (up to 2 days), then d. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000))
  if (seconds < 60) return `${seconds} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return `${hours} h ${minutes % 60} min`
  return `${Math.floor(hours / 24)} d`
}

/** An ISO time as the browser's local time, to the millisecond: `YYYY-MM-DD hh:mm:ss.mmm`. */
export function formatTime(iso: string): string {
  const date = new Date(iso)
  const pad = (value: number, width = 2) => String(value).padStart(width, '0')
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  return `${day} ${time}.${pad(date.getMilliseconds(), 3)}`
}

/** A binary frame (base64): its size and its first {@link MAX_HEX} octets in hex. */
export interface HexView {
  size: number
  hex: string
}

/** The hex of a base64 frame; size 0 and no hex when it is not base64. */
export function hexOf(base64: string): HexView {
  let binary: string
  try {
    binary = atob(base64)
  } catch {
    return { size: 0, hex: '' }
  }
  const parts: string[] = []
  for (let index = 0; index < Math.min(binary.length, MAX_HEX); index++) {
    parts.push(binary.charCodeAt(index).toString(16).padStart(2, '0'))
  }
  return { size: binary.length, hex: parts.join(' ') + (binary.length > MAX_HEX ? ' …' : '') }
}
