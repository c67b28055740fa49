// The dashboard in a real browser: Debian's Chromium (playwright-core) against the real Worker
// under `wrangler dev`, fed through the relay WebSocket as a bridge feeds it. Signs in with a
// wrong token and the right one, watches the rate while messages flow, opens the channel, checks
// text, binary and hostile messages and the connected bridge, then keeps a screenshot.

import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { launchChromium, readPng } from '../support/chromium'
import { feedMessage, RelayFeeder, startFlow } from '../support/relay-feeder'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

const root = new URL('../..', import.meta.url).pathname
const SCREENSHOT = join(root, '.ci-results', 'dashboard.png')
const VIEWPORT = { width: 1280, height: 800 }
const BRIDGE_ID = 'dash-bridge-1'
const HOSTILE = '<img src=x onerror="window.__xss = 1">'

let worker: WranglerDev
let browser: Browser
let context: BrowserContext
let page: Page
let feeder: RelayFeeder
const channel = `dash-${Date.now()}`
/** What the page reported on its own: script errors, CSP violations. */
const pageProblems: string[] = []

beforeAll(async () => {
  // The browser first: when Chromium is missing this fails at once, with the apt-get hint.
  browser = await launchChromium()
  worker = await startWranglerDev()
  feeder = await RelayFeeder.open({
    wsUrl: worker.wsUrl,
    channel,
    ingestToken: TEST_INGEST_TOKEN,
    bridgeId: BRIDGE_ID,
  })
  context = await browser.newContext({ viewport: VIEWPORT })
  page = await context.newPage()
  page.on('pageerror', (error) => pageProblems.push(`pageerror: ${error.message}`))
  page.on('console', (message) => {
    // The 401 of the wrong token is logged as a failed load: expected, not a problem.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      pageProblems.push(`console: ${message.text()}`)
    }
  })
}, 90_000)

afterAll(async () => {
  feeder?.close()
  await context?.close()
  await browser?.close()
  await worker?.stop()
})

const row = () => page.locator(`#channels-body tr[data-channel="${channel}"]`)
const cell = (field: string) => row().locator(`td[data-field="${field}"]`)
const number = (text: string | null) => Number((text ?? '').replace(/,/g, ''))
/** A JavaScript expression's value in the page (as a string: this project has no DOM types). */
const inPage = <T = unknown>(expression: string) => page.evaluate<T>(expression)

describe('the dashboard in Chromium', () => {
  it('loads without a token and refuses a wrong one with the API’s message', async () => {
    await feeder.send([feedMessage(['warm-up'])])
    const response = await page.goto(`${worker.httpUrl}/`)
    expect(response?.status()).toBe(200)
    await expect(page.title()).resolves.toBe('zmq-edge dashboard')
    await page.getByLabel('Read token').fill('not-the-token')
    await page.getByRole('button', { name: 'Sign in' }).click()
    const alert = page.getByRole('alert')
    await alert.getByText('Sign-in failed').waitFor()
    expect(await alert.textContent()).toBe(
      'Sign-in failed: the bearer token is not valid here (unauthorized, HTTP 401)',
    )
    expect(await page.locator('#dashboard').isHidden()).toBe(true)
    expect(await inPage<number>('sessionStorage.length')).toBe(0)
  })

  it('signs in with the read token and shows a nonzero rate while messages flow', async () => {
    const flow = startFlow(feeder, (index) => feedMessage(['tick', String(index)]))
    try {
      await page.getByLabel('Read token').fill(TEST_READ_TOKEN)
      await page.getByRole('button', { name: 'Sign in' }).click()
      await row().waitFor()
      expect(await page.getByRole('alert').textContent()).toBe('')
      expect(await page.locator('#sign-in').isHidden()).toBe(true)
      // The token stays in this tab only.
      expect(await inPage("sessionStorage.getItem('zmq-edge.read-token')")).toBe(TEST_READ_TOKEN)
      expect(await inPage<number>('localStorage.length')).toBe(0)
      // A rate needs two polls (2 s apart) of a growing counter.
      await waitFor(async () => number(await cell('in-rate').textContent()) > 0, {
        timeoutMs: 15_000,
        intervalMs: 200,
        what: 'a nonzero In/s',
      })
      expect(await cell('bridges').textContent()).toBe(BRIDGE_ID)
    } finally {
      await flow.stop()
    }
  })

  it('shows the channel’s depth once the flow stops', async () => {
    // The last messages: what the channel view shows first.
    await feeder.send([
      feedMessage(['hello dashboard']),
      feedMessage([new Uint8Array([0x00, 0xff, 0xfe, 0x01])]),
      feedMessage(['orders', '{"id": 1}']),
      feedMessage([HOSTILE]),
    ])
    await waitFor(async () => number(await cell('depth').textContent()) === feeder.stored, {
      timeoutMs: 10_000,
      intervalMs: 200,
      what: `depth ${feeder.stored}`,
    })
    expect(number(await cell('available').textContent())).toBe(feeder.stored)
    expect(await cell('dead-letters').textContent()).toBe('0')
  })

  it('opens the channel: text as text, binary marked, hostile markup as literal text', async () => {
    await row().getByRole('button', { name: channel }).click()
    await page.getByRole('heading', { name: `Channel ${channel}` }).waitFor()
    const messages = page.locator('#messages-body tr')
    await messages.filter({ hasText: 'onerror' }).waitFor()

    const hostile = page.locator('#messages-body li[data-kind="text"]', { hasText: 'onerror' })
    expect(await hostile.textContent()).toBe(HOSTILE)
    expect(await page.locator('#messages-body img').count()).toBe(0)
    expect(await page.locator('img').count()).toBe(0)
    expect(await inPage('window.__xss')).toBeUndefined()

    const text = page.locator('#messages-body li[data-kind="text"]', { hasText: 'hello' })
    expect(await text.textContent()).toBe('hello dashboard')
    const binary = page.locator('#messages-body li[data-kind="binary"]')
    expect(await binary.count()).toBe(1)
    expect(await binary.textContent()).toBe('binary4 bytes: 00 ff fe 01')
    expect(await binary.locator('.kind').isVisible()).toBe(true)
    const multipart = messages.filter({ hasText: 'orders' }).locator('li[data-kind="text"]')
    expect(await multipart.allTextContents()).toEqual(['orders', '{"id": 1}'])
    // Newest first: the hostile message was the last sent.
    expect(await messages.first().getAttribute('data-seq')).toBe(String(feeder.stored))

    const bridge = page.locator(`#bridges li[data-bridge-id="${BRIDGE_ID}"]`)
    expect(await bridge.locator('code').textContent()).toBe(BRIDGE_ID)
    expect(await bridge.textContent()).toMatch(/connected \d{4}-\d\d-\d\d .*last batch #\d+/)
  })

  it('keeps a screenshot of the dashboard', async () => {
    const png = await page.screenshot({ type: 'png' })
    mkdirSync(join(root, '.ci-results'), { recursive: true })
    writeFileSync(SCREENSHOT, png)
    const image = readPng(png)
    expect({ width: image.width, height: image.height }).toEqual(VIEWPORT)
    // A page with tables and text: many colours, no one colour (a blank page) almost everywhere.
    expect(image.colours).toBeGreaterThan(16)
    expect(image.dominantShare).toBeLessThan(0.97)
  })

  it('fits a narrow window without scrolling the page sideways', async () => {
    await page.setViewportSize({ width: 380, height: 800 })
    const widths = await inPage<{ page: number; window: number }>(
      '({ page: document.documentElement.scrollWidth, window: window.innerWidth })',
    )
    expect(widths.page).toBeLessThanOrEqual(widths.window)
    await page.setViewportSize(VIEWPORT)
  })

  it('signs out: the token is forgotten and the data hidden', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.locator('#sign-in').waitFor()
    expect(await inPage<number>('sessionStorage.length')).toBe(0)
    expect(await page.locator('#dashboard').isHidden()).toBe(true)
    expect(await page.locator('#channels-body tr').count()).toBe(0)
    expect(pageProblems).toEqual([])
  })
})
