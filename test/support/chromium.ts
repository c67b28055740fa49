// Debian's Chromium for browser tests, driven by playwright-core (which downloads no browser),
// and a PNG reader that tells a real screenshot from an empty one.

import { existsSync } from 'node:fs'
import { inflateSync } from 'node:zlib'
import { type Browser, chromium } from 'playwright-core'

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium'

/** Headless, offline, no first-run chores: nothing reaches the network but the page's own. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/**
 * Launches Debian's Chromium (Playwright gives it a fresh temporary profile).
 * @throws when it is not installed: the test fails, it is not skipped.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}: apt-get install chromium (bash .ci/run installs it)`,
    )
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: CHROMIUM_ARGS,
    headless: true,
    timeout: 30_000,
  })
}

/** What {@link readPng} found in a PNG. */
export interface PngSummary {
  width: number
  height: number
  /** Distinct colours among the pixels (RGB, alpha ignored). */
  colours: number
  /** The most common colour's share of the pixels, from 0 to 1. */
  dominantShare: number
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

/**
 * Decodes an 8-bit RGB or RGBA PNG without interlacing (what Chromium writes) far enough to
 * count its colours.
 * @throws for anything else, or a file that is not a PNG.
 */
export function readPng(png: Uint8Array): PngSummary {
  if (!SIGNATURE.every((byte, index) => png[index] === byte)) throw new Error('not a PNG')
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength)
  let offset = 8
  let header: { width: number; height: number; channels: number } | undefined
  const data: Uint8Array[] = []
  while (offset + 8 <= png.length) {
    const length = view.getUint32(offset)
    const type = String.fromCharCode(...png.subarray(offset + 4, offset + 8))
    const body = png.subarray(offset + 8, offset + 8 + length)
    if (type === 'IHDR') {
      const [bitDepth, colourType, , , interlace] = body.subarray(8, 13)
      if (bitDepth !== 8 || (colourType !== 2 && colourType !== 6) || interlace !== 0) {
        throw new Error(`unsupported PNG: depth ${bitDepth}, colour type ${colourType}`)
      }
      header = {
        width: view.getUint32(offset + 8),
        height: view.getUint32(offset + 12),
        channels: colourType === 6 ? 4 : 3,
      }
    } else if (type === 'IDAT') {
      data.push(body)
    } else if (type === 'IEND') {
      break
    }
    offset += 12 + length
  }
  if (!header) throw new Error('PNG without IHDR')
  const { width, height, channels } = header
  const raw = inflateSync(Buffer.concat(data))
  const stride = width * channels
  if (raw.length !== height * (stride + 1)) throw new Error('PNG data of the wrong size')
  // Undo the per-row filters (PNG §9), then count colours.
  const pixels = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]
    const source = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))
    const row = pixels.subarray(y * stride, (y + 1) * stride)
    const above = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride)
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? (row[x - channels] as number) : 0
      const b = above[x] as number
      const c = x >= channels ? (above[x - channels] as number) : 0
      let predictor = 0
      if (filter === 1) predictor = a
      else if (filter === 2) predictor = b
      else if (filter === 3) predictor = (a + b) >>> 1
      else if (filter === 4) {
        const p = a + b - c
        const pa = Math.abs(p - a)
        const pb = Math.abs(p - b)
        const pc = Math.abs(p - c)
        predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c
      }
      row[x] = ((source[x] as number) + predictor) & 0xff
    }
  }
  const counts = new Map<number, number>()
  for (let index = 0; index < pixels.length; index += channels) {
    const colour =
      ((pixels[index] as number) << 16) |
      ((pixels[index + 1] as number) << 8) |
      (pixels[index + 2] as number)
    counts.set(colour, (counts.get(colour) ?? 0) + 1)
  }
  const dominant = Math.max(...counts.values())
  return { width, height, colours: counts.size, dominantShare: dominant / (width * height) }
}
