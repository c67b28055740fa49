// The dashboard's formatting (worker/dashboard/browser/format.ts), pure functions checked at
// their thresholds: bytes at 1 MiB, rates at 0 and 10, ages at each unit, hex at its cut.
import { describe, expect, it } from 'vitest'
import {
  formatAge,
  formatBytes,
  formatCount,
  formatRate,
  formatTime,
  hexOf,
  MAX_HEX,
} from '../../worker/dashboard/browser/format'

const MIB = 1024 * 1024
const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE

/** Base64 of the octets 0, 1, 2, … (mod 256), `length` of them. */
const counting = (length: number) =>
  Buffer.from(Array.from({ length }, (_, index) => index % 256)).toString('base64')
/** Their hex as the dashboard writes it: two digits each, spaced. */
const countingHex = (length: number) =>
  Array.from({ length }, (_, index) => (index % 256).toString(16).padStart(2, '0')).join(' ')

describe('formatCount', () => {
  it('writes thousands separators', () => {
    expect(formatCount(0)).toBe('0')
    expect(formatCount(999)).toBe('999')
    expect(formatCount(1234)).toBe('1,234')
    expect(formatCount(1_234_567)).toBe('1,234,567')
  })

  it('writes a dash for a count the answer lacks', () => {
    expect(formatCount(undefined)).toBe('–')
    expect(formatCount(null)).toBe('–')
  })
})

describe('formatBytes', () => {
  it('counts octets below 1 MiB', () => {
    expect(formatBytes(0)).toBe('0 bytes')
    expect(formatBytes(1023)).toBe('1,023 bytes')
    expect(formatBytes(MIB - 1)).toBe('1,048,575 bytes')
  })

  it('writes MiB with one decimal, and the exact count, from 1 MiB', () => {
    expect(formatBytes(MIB)).toBe('1.0 MiB (1,048,576 bytes)')
    expect(formatBytes(9_437_188)).toBe('9.0 MiB (9,437,188 bytes)')
    expect(formatBytes(1.25 * MIB)).toBe('1.3 MiB (1,310,720 bytes)')
  })

  it('writes a dash for a size the answer lacks', () => {
    expect(formatBytes(undefined)).toBe('– bytes')
  })
})

describe('formatRate', () => {
  it('writes a dash before there are two samples, and 0 as 0', () => {
    expect(formatRate(undefined)).toBe('–')
    expect(formatRate(0)).toBe('0')
  })

  it('writes one decimal below 10', () => {
    expect(formatRate(0.04)).toBe('0.0')
    expect(formatRate(0.25)).toBe('0.3')
    expect(formatRate(9.94)).toBe('9.9')
    // Still below 10, so one decimal, even when it rounds up to 10.
    expect(formatRate(9.96)).toBe('10.0')
  })

  it('writes a whole number from 10, with separators', () => {
    expect(formatRate(10)).toBe('10')
    expect(formatRate(12.5)).toBe('13')
    expect(formatRate(1234.4)).toBe('1,234')
  })
})

describe('formatAge', () => {
  it('writes seconds below a minute (none below 0)', () => {
    expect(formatAge(-5 * SECOND)).toBe('0 s')
    expect(formatAge(0)).toBe('0 s')
    expect(formatAge(499)).toBe('0 s')
    expect(formatAge(500)).toBe('1 s')
    expect(formatAge(59 * SECOND)).toBe('59 s')
    expect(formatAge(59_499)).toBe('59 s')
  })

  it('writes whole minutes below an hour', () => {
    // 59.5 s rounds to 60 s: a minute.
    expect(formatAge(59_500)).toBe('1 min')
    expect(formatAge(MINUTE)).toBe('1 min')
    expect(formatAge(MINUTE + 59 * SECOND)).toBe('1 min')
    expect(formatAge(HOUR - SECOND)).toBe('59 min')
  })

  it('writes hours and minutes below 48 hours', () => {
    expect(formatAge(HOUR)).toBe('1 h 0 min')
    expect(formatAge(HOUR + 30 * MINUTE)).toBe('1 h 30 min')
    expect(formatAge(48 * HOUR - MINUTE)).toBe('47 h 59 min')
  })

  it('writes whole days from 48 hours', () => {
    expect(formatAge(48 * HOUR)).toBe('2 d')
    expect(formatAge(72 * HOUR - MINUTE)).toBe('2 d')
    expect(formatAge(72 * HOUR)).toBe('3 d')
    expect(formatAge(400 * 24 * HOUR)).toBe('400 d')
  })
})

describe('formatTime', () => {
  it('writes the local time to the millisecond, zero-padded', () => {
    // Built from local fields, so the expected text holds in every time zone.
    expect(formatTime(new Date(2026, 0, 2, 3, 4, 5, 6).toISOString())).toBe(
      '2026-01-02 03:04:05.006',
    )
    expect(formatTime(new Date(2026, 10, 27, 14, 41, 19, 123).toISOString())).toBe(
      '2026-11-27 14:41:19.123',
    )
  })
})

describe('hexOf', () => {
  it('writes each octet as two hex digits, spaced, with the frame’s size', () => {
    expect(hexOf('AP/+AQ==')).toEqual({ size: 4, hex: '00 ff fe 01' })
    expect(hexOf('')).toEqual({ size: 0, hex: '' })
  })

  it('shows the first MAX_HEX octets whole, and cuts a longer frame with " …"', () => {
    expect(MAX_HEX).toBe(64)
    expect(hexOf(counting(MAX_HEX))).toEqual({ size: MAX_HEX, hex: countingHex(MAX_HEX) })
    expect(hexOf(counting(MAX_HEX + 1))).toEqual({
      size: MAX_HEX + 1,
      hex: `${countingHex(MAX_HEX)} …`,
    })
    const large = hexOf(counting(1000))
    expect(large.size).toBe(1000)
    expect(large.hex).toBe(`${countingHex(MAX_HEX)} …`)
  })

  it('shows nothing of a frame that is not base64', () => {
    expect(hexOf('!!')).toEqual({ size: 0, hex: '' })
    expect(hexOf('A')).toEqual({ size: 0, hex: '' })
  })
})
