// The dashboard in a real browser: Debian's Chromium (playwright-core) against the real Worker
// under `wrangler dev`, fed through the relay WebSocket as a bridge feeds it. Signs in with a
// wrong token and the right one, watches the rate while messages flow, opens the channel, checks
// text, binary and hostile messages and the connected bridge, its charts of the last hour (in a
// screenshot of the chart too), then keeps a screenshot of the page.

import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Browser, BrowserContext, Page, Route } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { generateKeyPair } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { HISTORY_MINUTES } from '../../shared/api/limits'
import { ChannelHistorySchema, ChannelStatsSchema } from '../../shared/api/schemas'
import { formatKey } from '../../shared/curve-key-text'
import { PLOT, slotX, VIEW } from '../../worker/dashboard/browser/chart-geometry'
import { launchChromium, readPng } from '../support/chromium'
import { feedMessage, RelayFeeder, startFlow } from '../support/relay-feeder'
import { waitFor } from '../support/wait'
import {
  adminCall,
  startWranglerDev,
  TEST_ADMIN_TOKEN,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

const root = new URL('../..', import.meta.url).pathname
const SCREENSHOT = join(root, '.ci-results', 'dashboard.png')
const CHART_SCREENSHOT = join(root, '.ci-results', 'dashboard-chart.png')
const VIEWPORT = { width: 1280, height: 800 }
const BRIDGE_ID = 'dash-bridge-1'
const HOSTILE = '<img src=x onerror="window.__xss = 1">'
/** A key record's name with markup in it: an admin's text, shown as text. */
const HOSTILE_NAME = 'pump <b>7</b> <svg onload="window.__xss = 2">'
const PUMP = generateKeyPair().publicKey
const PUMP_KEY = formatKey(PUMP).z85

let worker: WranglerDev
let browser: Browser
let context: BrowserContext
let page: Page
let feeder: RelayFeeder
let cleanupFeed: (() => void) | undefined
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
  cleanupFeed?.()
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

/** An element's aria-label. */
const label = async (locator: ReturnType<Page['locator']>) =>
  (await locator.getAttribute('aria-label')) ?? ''

/** `POST /v1/channels/<channel>/<action>` (group default) with the read token. */
async function readCall<T = unknown>(action: 'pull' | 'ack', body: object): Promise<T> {
  const response = await fetch(`${worker.httpUrl}/v1/channels/${channel}/${action}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_READ_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(response.status, await response.clone().text()).toBe(200)
  return (await response.json()) as T
}

/** The computed stroke colour of the page's element `selector`, as [r, g, b]. */
async function strokeOf(selector: string): Promise<Rgb> {
  const stroke = await inPage<string>(
    `getComputedStyle(document.querySelector(${JSON.stringify(selector)})).stroke`,
  )
  const match = /^rgb\((\d+), (\d+), (\d+)\)$/.exec(stroke)
  if (!match) throw new Error(`${selector} has no plain stroke colour: ${stroke}`)
  return [Number(match[1]), Number(match[2]), Number(match[3])]
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('base64')
}

describe('the page, as wrangler serves it from the static assets', () => {
  it('allows only its own inline script and style, by their hashes, in a strict CSP', async () => {
    const response = await fetch(`${worker.httpUrl}/`)
    expect(response.status).toBe(200)
    expect(response.headers.get('Content-Type')).toBe('text/html; charset=utf-8')
    expect(response.headers.get('X-Content-Type-Options')).toBe('nosniff')
    expect(response.headers.get('X-Frame-Options')).toBe('DENY')
    expect(response.headers.get('Referrer-Policy')).toBe('no-referrer')
    expect(response.headers.get('Cache-Control')).toBe('no-store, no-transform')
    const html = await response.text()
    expect(html).toMatch(/^<!doctype html>/)
    expect(html).toContain('<label for="token">Read token</label>')
    // Were the script blocked, Enter would post a form without fields: no token in a URL.
    expect(html).toMatch(/<form id="sign-in-form"[^>]* method="post"/)
    expect(html).not.toMatch(/<(input|select|textarea|button)[^>]*\sname=/)
    // Focus goes to the channels heading after sign-in.
    expect(html).toContain('<h2 id="channels-title" tabindex="-1">')

    const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((match) => match[1])
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((match) => match[1])
    expect(scripts).toHaveLength(1)
    expect(styles).toHaveLength(1)
    expect(html.match(/<script/g)).toHaveLength(1)
    // No address to load anything from: the SVG namespace (an XML name the charts' elements
    // are made in, never fetched) is the one URL the page may hold.
    const withoutSvgNamespace = html.replaceAll(/(["'])http:\/\/www\.w3\.org\/2000\/svg\1/g, '""')
    expect(withoutSvgNamespace).not.toMatch(/<script[^>]+src=|<link[^>]+stylesheet|https?:\/\//)
    const [script = '', style = ''] = [scripts[0], styles[0]]
    // Message content reaches the page only through textContent (and Trusted Types, below).
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/)
    // The channel-name rule came with the bundle, from shared/channel-name.ts.
    expect(script).toContain('[A-Za-z0-9._-]{0,64}')

    const csp = response.headers.get('Content-Security-Policy') ?? ''
    const directives = Object.fromEntries(
      csp.split(';').map((directive) => {
        const [name, ...values] = directive.trim().split(/\s+/)
        return [name, values.join(' ')]
      }),
    )
    expect(directives).toEqual({
      'default-src': "'none'",
      'script-src': `'sha256-${sha256(script)}'`,
      'style-src': `'sha256-${sha256(style)}'`,
      'connect-src': "'self'",
      'img-src': 'data:',
      'base-uri': "'none'",
      'form-action': "'none'",
      'frame-ancestors': "'none'",
      'require-trusted-types-for': "'script'",
      'trusted-types': "'none'",
    })
  })

  it('serves no build file, and leaves the API to the Worker', async () => {
    // _headers configures the asset server; it is not served.
    const headersFile = await fetch(`${worker.httpUrl}/_headers`)
    expect(headersFile.status).toBe(404)
    expect(await headersFile.json()).toMatchObject({ error: { code: 'not_found' } })
    const health = await fetch(`${worker.httpUrl}/v1/health`)
    expect(health.status).toBe(200)
    expect(health.headers.get('Content-Security-Policy')).toBeNull()
  })

  it('carries every security header the Worker’s answers carry, though it never runs the Worker', async () => {
    const [page, health] = await Promise.all([
      fetch(`${worker.httpUrl}/`),
      fetch(`${worker.httpUrl}/v1/health`),
    ])
    const notSecurity = new Set(['content-type', 'content-length', 'date', 'cache-control'])
    const security = [...health.headers].filter(([name]) => !notSecurity.has(name))
    expect(security.map(([name]) => name)).toEqual(
      expect.arrayContaining(['cross-origin-opener-policy', 'strict-transport-security']),
    )
    for (const [name, value] of security) {
      expect({ name, value: page.headers.get(name) }).toEqual({ name, value })
    }
  })
})

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
      // Focus moves from the gone form to the channels heading.
      expect(await inPage('document.activeElement && document.activeElement.id')).toBe(
        'channels-title',
      )
      // A rate needs two polls (5 s apart) of a growing counter.
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
      feedMessage(['from the pump'], {
        mechanism: 'CURVE',
        publicKey: PUMP,
        keyName: HOSTILE_NAME,
      }),
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
    // A registered key's message names its sender, as text.
    const pumped = messages.filter({ hasText: 'from the pump' })
    expect(await pumped.locator('.key-name').textContent()).toBe(HOSTILE_NAME)
    expect(await pumped.locator('code[title]').getAttribute('title')).toBe(PUMP_KEY)
    expect(await page.locator('#messages-body b').count()).toBe(0)
    const multipart = messages.filter({ hasText: 'orders' }).locator('li[data-kind="text"]')
    expect(await multipart.allTextContents()).toEqual(['orders', '{"id": 1}'])
    // Newest first: the hostile message was the last sent.
    expect(await messages.first().getAttribute('data-seq')).toBe(String(feeder.stored))

    const bridge = page.locator(`#bridges li[data-bridge-id="${BRIDGE_ID}"]`)
    expect(await bridge.locator('code').textContent()).toBe(BRIDGE_ID)
    expect(await bridge.textContent()).toMatch(/connected \d{4}-\d\d-\d\d .*last batch #\d+/)

    // No consumer group yet; what the channel costs in billed rows, from its stats.
    expect(await page.locator('#groups').textContent()).toMatch(/none/)
    expect(await page.locator('#cost').textContent()).toMatch(
      /^SQLite rows billed: [\d,]+ read, [\d,]+ written \(\d+\.\d{3} written a message stored\); database [\d,]+ bytes\.$/,
    )
    // A first pull creates group "default": the next poll lists it with what it holds.
    const pulled = await fetch(`${worker.httpUrl}/v1/channels/${channel}/pull`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_READ_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ batchSize: 2 }),
    })
    expect(pulled.status).toBe(200)
    const group = page.locator('#groups li[data-group="default"]')
    await group.waitFor({ timeout: 15_000 })
    expect(await group.textContent()).toMatch(/^default — [\d,]+ behind, 2 leased, 0 dead letters/)
  })

  it('charts the channel’s last hour: messages in and acked this minute, depth and lag', async () => {
    const charts = page.locator('#history figure.chart')
    const rates = page.locator('#history figure[data-chart="rates"]').getByRole('img')
    // Read when the channel was opened.
    await rates.waitFor()
    expect(await charts.count()).toBe(3)
    const kinds = [0, 1, 2].map((index) => charts.nth(index).getAttribute('data-chart'))
    expect(await Promise.all(kinds)).toEqual(['rates', 'depth', 'lag'])

    // Messages in, and half as many acked by a consumer of group "default", in the minute the
    // history is then read (opening the channel again reads it at once). Should a minute turn
    // in between, the current minute holds none of them: again.
    const summary = /latest ([\d.,]+) in, ([\d.,]+) acked$/
    await waitFor(
      async () => {
        for (let batch = 0; batch < 4; batch++) {
          await feeder.send(
            Array.from({ length: 50 }, (_, index) => feedMessage([`chart ${index}`])),
          )
        }
        const leased = await readCall<{ messages: { leaseId: string }[] }>('pull', {
          batchSize: 100,
        })
        await readCall('ack', { acks: leased.messages.map((message) => message.leaseId) })
        const shown = await page.locator('#history').getAttribute('data-now')
        await row().getByRole('button', { name: channel }).click()
        await waitFor(
          async () => {
            const now = await page.locator('#history').getAttribute('data-now')
            return now !== null && now !== shown
          },
          { what: 'the history read again' },
        )
        const [, incoming = '0', acked = '0'] = summary.exec(await label(rates)) ?? []
        return number(incoming) > 0 && number(acked) > 0
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'messages in and acked in the current minute' },
    )
    expect(await label(rates)).toMatch(
      /^Messages in and acked per second over the last hour, by minute: latest [\d.,]+ in, [\d.,]+ acked$/,
    )
    // The depth now: every message stored is still in the log.
    const depth = page.locator('#history figure[data-chart="depth"]').getByRole('img')
    expect(await label(depth)).toBe(
      `Depth (messages in the log) over the last hour, by minute: latest ${feeder.stored.toLocaleString('en')}`,
    )
    // Group "default", created by the pull above, is behind by what it has not acked.
    const lag = page.locator('#history figure[data-chart="lag"]')
    expect(await lag.locator('.legend li').allTextContents()).toEqual(['default'])
    expect(await label(lag.getByRole('img'))).toMatch(/: latest default [1-9][\d,]*$/)

    // The chart as drawn: each series' colour (from the style sheet) in the plot, in the
    // current minute's slot at the right, above the zero line, and nowhere in the minutes before
    // the channel kept history (this test's channel is minutes old: the left is a gap).
    const png = await rates.screenshot({ type: 'png' })
    mkdirSync(join(root, '.ci-results'), { recursive: true })
    writeFileSync(CHART_SCREENSHOT, png)
    const image = readPng(png)
    const box = await rates.boundingBox()
    expect(box).not.toBeNull()
    expect(Math.abs(image.width - (box?.width ?? 0))).toBeLessThanOrEqual(1)
    expect(Math.abs(image.height - (box?.height ?? 0))).toBeLessThanOrEqual(1)
    // Drawn, not blank: lines and text on the background.
    expect(image.colours).toBeGreaterThan(8)
    expect(image.dominantShare).toBeLessThan(0.97)
    // The viewBox is scaled to the element's width, its height in proportion.
    const scale = image.width / VIEW.width
    expect(image.height / VIEW.height).toBeCloseTo(scale, 1)
    const pixels = await decodePng(png)
    const at = (minute: number) => Math.round(slotX(minute, HISTORY_MINUTES) * scale)
    const plotArea = {
      top: Math.floor(PLOT.top * scale) - 2,
      // Clear of the zero line, and of a line or dot drawn on it: a value here is not zero.
      bottom: Math.round(PLOT.bottom * scale) - 5,
    }
    // The current minute's slot, and the dot on its value beyond.
    const currentMinute = { ...plotArea, left: at(HISTORY_MINUTES - 1) + 1, right: image.width }
    const longAgo = { left: 0, right: at(HISTORY_MINUTES - 10), top: 0, bottom: image.height }
    const wholePlot = { ...plotArea, left: 0, right: image.width }
    for (const series of ['series-0', 'series-1']) {
      const colour = await strokeOf(`#history figure[data-chart="rates"] path.${series}`)
      expect(pixels.count(colour, wholePlot), `${series} in the plot`).toBeGreaterThan(10)
      expect(pixels.count(colour, currentMinute), `${series} now`).toBeGreaterThan(4)
      expect(pixels.count(colour, longAgo), `${series} before the channel began`).toBe(0)
    }
  })

  it('lists the key registry with an admin token, with its refusals, and revokes a key', async () => {
    const admin = (method: string, path: string, body?: object) =>
      adminCall<{ id: string; status: string }>(worker, method, path, body)
    const pump = await admin('POST', '/v1/keys', {
      publicKey: PUMP_KEY,
      name: HOSTILE_NAME,
      channels: [channel],
      labels: { site: 'paris' },
      rateLimit: { messagesPerSecond: 100 },
    })
    const old = await admin('POST', '/v1/keys', {
      publicKey: formatKey(generateKeyPair().publicKey).z85,
      name: 'old sensor',
      channels: ['sensors-*'],
    })
    await admin('POST', `/v1/keys/${old.id}/revoke`)
    // What a bridge with --key-registry reports over its feed: refusals counted per key and reason.
    const feed = new WebSocket(`${worker.wsUrl}/v1/keys/feed`, {
      headers: { authorization: `Bearer ${TEST_INGEST_TOKEN}` },
    })
    cleanupFeed = () => feed.close()
    await new Promise((resolve, reject) => {
      feed.once('open', resolve)
      feed.once('error', reject)
    })
    feed.send(
      JSON.stringify({
        type: 'report',
        bridgeId: BRIDGE_ID,
        keys: [],
        refusals: [
          { publicKey: PUMP_KEY, reason: 'channel_not_allowed', count: 3 },
          { publicKey: '', reason: 'bad_box', count: 2 },
        ],
      }),
    )
    await waitFor(
      async () => {
        const response = await fetch(`${worker.httpUrl}/v1/keys/refusals`, {
          headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
        })
        return ((await response.json()) as { refusals: unknown[] }).refusals.length === 2
      },
      { what: 'the report stored' },
    )

    const keys = page.locator('#keys')
    await page.getByLabel('Admin token').fill('not-the-admin-token')
    await page.getByRole('button', { name: 'Show keys' }).click()
    await keys.getByText('The keys could not be read').waitFor()
    expect(await page.locator('#keys-note').textContent()).toMatch(/HTTP 401\)$/)
    expect(await page.locator('#keys-panel').isHidden()).toBe(true)

    await page.getByLabel('Admin token').fill(TEST_ADMIN_TOKEN)
    await page.getByRole('button', { name: 'Show keys' }).click()
    const pumpRow = page.locator(`#keys-body tr[data-key-id="${pump.id}"]`)
    await pumpRow.waitFor()
    const cells = async (row: typeof pumpRow) => row.locator('th, td').allTextContents()
    expect(await cells(pumpRow)).toEqual([
      HOSTILE_NAME,
      `${PUMP_KEY.slice(0, 10)}… `,
      'active',
      channel,
      'site=paris',
      '100 msg/s',
      '–',
      'Revoke',
    ])
    const oldRow = page.locator(`#keys-body tr[data-key-id="${old.id}"]`)
    expect((await cells(oldRow)).slice(2, 4)).toEqual(['revoked', 'sensors-*'])
    expect(await oldRow.getByRole('button').count()).toBe(0)
    expect(await page.locator('#keys-note').textContent()).toBe('2 key records.')

    const refusals = page.locator('#refusals-body tr')
    expect(await refusals.count()).toBe(2)
    const refusalCells = await Promise.all(
      [0, 1].map((index) => refusals.nth(index).locator('td').allTextContents()),
    )
    const named = refusalCells.find((cells) => cells[3] === 'channel not allowed')
    const unknown = refusalCells.find((cells) => cells[3] === 'bad box')
    expect(named?.slice(0, 5)).toEqual([
      `${PUMP_KEY.slice(0, 10)}…`,
      HOSTILE_NAME,
      BRIDGE_ID,
      'channel not allowed',
      '3',
    ])
    expect(unknown?.slice(0, 5)).toEqual([
      'not learnt',
      'not registered',
      BRIDGE_ID,
      'bad box',
      '2',
    ])
    // The names are text: no markup of theirs became an element.
    expect(await page.locator('#keys b').count()).toBe(0)
    expect(await inPage('window.__xss')).toBeUndefined()

    // Revoke asks first, then the row shows the registry's answer.
    page.once('dialog', (dialog) => void dialog.accept())
    await pumpRow.getByRole('button', { name: 'Revoke' }).click()
    await pumpRow.locator('td[data-field="status"]', { hasText: 'revoked' }).waitFor()
    expect((await admin('GET', `/v1/keys/${pump.id}`)).status).toBe('revoked')
    // A failure that is not a refusal keeps the token: Refresh tries again.
    const unavailable = (route: Route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ error: { code: 'unavailable', message: 'try again' } }),
      })
    await page.route('**/v1/keys?*', unavailable)
    await page.getByRole('button', { name: 'Refresh' }).click()
    await keys.getByText('The keys could not be read: try again (unavailable, HTTP 503)').waitFor()
    expect(await page.locator('#keys-panel').isVisible()).toBe(true)
    await page.unroute('**/v1/keys?*', unavailable)
    await page.getByRole('button', { name: 'Refresh' }).click()
    await keys.getByText('2 key records.').waitFor()
    // The admin token is kept nowhere but the page's memory.
    expect(await inPage<number>('localStorage.length')).toBe(0)
    expect(await inPage("sessionStorage.getItem('zmq-edge.read-token')")).toBe(TEST_READ_TOKEN)
    expect(await inPage<number>('sessionStorage.length')).toBe(1)
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
    expect(await page.locator('#keys-body tr').count()).toBe(0)
    expect(await page.locator('#keys-panel').isHidden()).toBe(true)
    expect(await page.locator('#history figure').count()).toBe(0)
    expect(pageProblems).toEqual([])
  })
})

type Rgb = [number, number, number]

/** A rectangle of pixels: left and top included, right and bottom not. */
interface Area {
  left: number
  right: number
  top: number
  bottom: number
}

/**
 * The pixels of a PNG, decoded by the browser in a blank page of its own (readPng counts colours
 * only): how many in an area are of a colour (each channel within `tolerance`, for the line's
 * anti-aliased edge).
 */
async function decodePng(png: Uint8Array) {
  const scratch = await browser.newPage()
  let decoded: { width: number; height: number; rgba: number[] }
  try {
    decoded = await scratch.evaluate(`(async () => {
      const image = new Image()
      image.src = 'data:image/png;base64,${Buffer.from(png).toString('base64')}'
      await image.decode()
      const canvas = document.createElement('canvas')
      canvas.width = image.naturalWidth
      canvas.height = image.naturalHeight
      const context = canvas.getContext('2d')
      context.drawImage(image, 0, 0)
      const { data } = context.getImageData(0, 0, canvas.width, canvas.height)
      return { width: canvas.width, height: canvas.height, rgba: Array.from(data) }
    })()`)
  } finally {
    await scratch.close()
  }
  const { width, height, rgba } = decoded
  return {
    width,
    height,
    count(colour: Rgb, area: Area, tolerance = 24): number {
      let found = 0
      for (let y = Math.max(0, area.top); y < Math.min(height, area.bottom); y++) {
        for (let x = Math.max(0, area.left); x < Math.min(width, area.right); x++) {
          const index = (y * width + x) * 4
          if (
            colour.every(
              (value, channel) => Math.abs((rgba[index + channel] ?? -999) - value) <= tolerance,
            )
          ) {
            found++
          }
        }
      }
      return found
    },
  }
}

/** A channel of a mocked listing, as GET /v1/channels lists it. */
/** A channel of a mocked listing, as the API's schema says one is (checked, so it cannot drift). */
function listed(channel: string, newest: number, stored = newest) {
  return ChannelStatsSchema.parse({
    channel,
    log: {
      messages: newest,
      bytes: newest,
      newest: newest ? { seq: newest, receivedAt: '2026-12-01T00:00:00.000Z', ageMs: 1000 } : null,
    },
    queue: { depth: newest, available: newest, inFlight: 0, deadLetters: 0 },
    groups: [],
    bridges: { connected: 0, known: 0, connections: [] },
    counters: { messagesStored: stored, acked: 0 },
    cost: { rowsRead: 3, rowsWritten: 2, perMessage: { rowsRead: 0.5, rowsWritten: 0.25 } },
    storageBytes: 8192,
    migrating: false,
    config: {},
  })
}

/**
 * The page's timing and its reads, against a mocked API: the page's clock is Playwright's, paused,
 * so each poll happens only when the test moves the clock on.
 */
describe('the dashboard’s polling, against a mocked API', () => {
  let mocked: BrowserContext
  let view: Page
  /** Answers of GET /v1/channels not yet given, in order; then `listing`. */
  const answers: { status: number; headers?: Record<string, string> }[] = []
  let listing: unknown
  const listCalls: URL[] = []
  const messageCalls: { url: URL; route: Route }[] = []
  /** The history reads: answered by mockHistory, or held while `holdHistory`. */
  const historyCalls: { url: URL; route: Route; authorization: string | undefined }[] = []
  let holdHistory = false
  /** While set, the history reads fail with 503. */
  let historyFails = false
  /** Reads the page gave up (aborted), by URL path. */
  const abandoned: string[] = []

  beforeAll(async () => {
    mocked = await browser.newContext({ viewport: VIEWPORT })
    view = await mocked.newPage()
    view.on('pageerror', (error) => pageProblems.push(`pageerror: ${error.message}`))
    await view.route(
      (url) => url.pathname === '/v1/channels',
      async (route) => {
        listCalls.push(new URL(route.request().url()))
        const answer = answers.shift()
        if (answer && answer.status !== 200) {
          await route.fulfill({
            status: answer.status,
            headers: answer.headers,
            json: { error: { code: 'internal', message: 'mocked failure' } },
          })
          return
        }
        await route.fulfill({ json: listing })
      },
    )
    await view.route(
      (url) => url.pathname.endsWith('/messages'),
      (route) => {
        // Held until the test answers it.
        messageCalls.push({ url: new URL(route.request().url()), route })
      },
    )
    await view.route(
      (url) => url.pathname.endsWith('/history'),
      async (route) => {
        const url = new URL(route.request().url())
        const authorization = (await route.request().headerValue('authorization')) ?? undefined
        historyCalls.push({ url, route, authorization })
        if (holdHistory) return
        if (historyFails) {
          await route.fulfill({
            status: 503,
            json: { error: { code: 'unavailable', message: 'mocked failure' } },
          })
          return
        }
        const channel = decodeURIComponent(url.pathname.split('/')[3] ?? '')
        await route.fulfill({ json: mockHistory(channel, 40) })
      },
    )
    view.on('requestfailed', (request) => {
      if (request.failure()?.errorText === 'net::ERR_ABORTED') {
        abandoned.push(new URL(request.url()).pathname)
      }
    })
    await view.clock.install({ time: new Date('2026-01-01T00:00:00Z') })
    await view.goto(`${worker.httpUrl}/`)
    await view.clock.pauseAt(new Date('2026-01-01T00:01:00Z'))
  })

  afterAll(async () => {
    await mocked?.close()
  })

  const calls = (count: number) =>
    waitFor(() => listCalls.length >= count, { timeoutMs: 5_000, what: `${count} list calls` })
  /** How many polls the page has scheduled: one more once it has handled a list answer. */
  const schedules = async () =>
    Number(await view.locator('#dashboard').getAttribute('data-schedules'))
  const scheduledCount = (count: number) =>
    waitFor(async () => (await schedules()) >= count, {
      timeoutMs: 5_000,
      what: `the page to schedule poll ${count}`,
    })
  /**
   * Checks that the page's next poll is due exactly `ms` from now on its clock (paused, so
   * nothing else moves it), moves the clock there, and waits for that poll and for the page to
   * handle its answer. Nothing races: the page's state says when it polls, not a real timer.
   */
  async function expectPollAfter(ms: number) {
    const before = listCalls.length
    const scheduledBefore = await schedules()
    const dueIn = await view.evaluate<number>(
      "Number(document.getElementById('dashboard').dataset.nextPollAt) - Date.now()",
    )
    expect(dueIn).toBe(ms)
    await view.clock.runFor(ms)
    await calls(before + 1)
    await scheduledCount(scheduledBefore + 1)
    expect(listCalls.length).toBe(before + 1)
  }

  it('polls every 5 s, backs off 10, 20, 40, 60 s after failures, honours Retry-After, resets', async () => {
    listing = { channels: [listed('mock-a', 0, 0)], total: 1, truncated: false }
    await view.getByLabel('Read token').fill('any-token')
    await view.getByRole('button', { name: 'Sign in' }).click()
    await calls(1)
    await scheduledCount(1)
    await view.locator('#channels-body tr[data-channel="mock-a"]').waitFor()
    expect(listCalls[0]?.searchParams.get('order')).toBe('recent')

    // The rate is over the time between the samples: 50 messages in 5 s.
    listing = { channels: [listed('mock-a', 50, 50)], total: 1, truncated: false }
    await expectPollAfter(5_000)
    const rate = view.locator('#channels-body tr[data-channel="mock-a"] td[data-field="in-rate"]')
    expect(await rate.textContent()).toBe('10')

    answers.push(
      { status: 503 },
      { status: 500 },
      { status: 429, headers: { 'Retry-After': '90' } },
      { status: 503 },
      { status: 503 },
    )
    await expectPollAfter(5_000) // 503
    expect(await view.getByRole('alert').textContent()).toMatch(/^Update failed, retrying in 10 s/)
    await expectPollAfter(10_000) // 500
    await expectPollAfter(20_000) // 429, Retry-After: 90 (more than the 40 s of the backoff)
    await expectPollAfter(90_000) // 503
    await expectPollAfter(60_000) // 503: at most 60 s
    await expectPollAfter(60_000) // 200: back to 5 s
    expect(await view.getByRole('alert').textContent()).toBe('')
    await expectPollAfter(5_000)
    await expectPollAfter(5_000)
  })

  it('lists by prefix as soon as one is typed, and polls 5 s after that answer', async () => {
    const before = listCalls.length
    const scheduledBefore = await schedules()
    await view.getByLabel('Filter by prefix').fill('mock-')
    await calls(before + 1)
    await scheduledCount(scheduledBefore + 1)
    expect(listCalls.at(-1)?.searchParams.get('prefix')).toBe('mock-')
    await view.getByLabel('Filter by prefix').fill('')
    await calls(before + 2)
    await scheduledCount(scheduledBefore + 2)
    expect(listCalls.at(-1)?.searchParams.has('prefix')).toBe(false)
    // The poll that was due before the filter was typed does not also run.
    await expectPollAfter(5_000)
    expect(listCalls).toHaveLength(before + 3)
  })

  it('reads one channel’s messages one request at a time, only the last 25', async () => {
    listing = { channels: [listed('mock-a', 100)], total: 1, truncated: false }
    await expectPollAfter(5_000)
    await view.getByRole('button', { name: 'mock-a' }).click()
    await waitFor(() => messageCalls.length === 1, { what: 'the first messages read' })
    const first = messageCalls[0] as { url: URL; route: Route }
    expect(first.url.searchParams.get('after')).toBe('75')
    expect(first.url.searchParams.get('limit')).toBe('25')

    // New messages arrive while the read is slow: no second read meanwhile.
    listing = { channels: [listed('mock-a', 130)], total: 1, truncated: false }
    await expectPollAfter(5_000)
    await expectPollAfter(5_000)
    expect(messageCalls).toHaveLength(1)

    await first.route.fulfill({ json: { channel: 'mock-a', messages: [], next: 75 } })
    await view.locator('#messages-body[aria-busy="false"]').waitFor({ state: 'attached' })
    // The next poll reads the newer messages.
    await expectPollAfter(5_000)
    await waitFor(() => messageCalls.length === 2, { what: 'the second messages read' })
    expect(messageCalls[1]?.url.searchParams.get('after')).toBe('105')
    expect(messageCalls[1]?.url.searchParams.get('limit')).toBe('25')
    await messageCalls[1]?.route.fulfill({ json: { channel: 'mock-a', messages: [], next: 105 } })
  })

  it('never shows a failed read of one channel in another’s panel', async () => {
    const broken = {
      channel: 'mock-b',
      error: { code: 'internal', message: 'the channel did not answer' },
    }
    listing = { channels: [listed('mock-a', 200), broken], total: 2, truncated: false }
    await expectPollAfter(5_000)
    await waitFor(() => messageCalls.length === 3, { what: 'the third messages read' })
    await view.getByRole('button', { name: 'mock-b' }).click()
    await view.getByRole('heading', { name: 'Channel mock-b' }).waitFor()
    const note = view.locator('#messages-note')
    expect(await note.textContent()).toBe('The channel did not answer: the channel did not answer')
    // Nothing of mock-a stays beside mock-b's name: its cost, groups, charts, messages, a busy
    // table.
    expect(await view.locator('#cost').textContent()).toBe('')
    expect(await view.locator('#history figure').count()).toBe(0)
    expect(await view.locator('#groups li').count()).toBe(0)
    expect(await view.locator('#messages-body tr').count()).toBe(0)
    expect(await view.locator('#messages-body').getAttribute('aria-busy')).not.toBe('true')
    // The read of mock-a fails now (if the page has not dropped it already).
    await messageCalls[2]?.route
      .fulfill({ status: 500, json: { error: { code: 'internal', message: 'boom' } } })
      .catch(() => {})
    // Whether the page handles that answer or dropped the read before it, mock-b's note stays.
    // (A real pause, as the page's timers are frozen: it can only miss a bug, never fail.)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await note.textContent()).toBe('The channel did not answer: the channel did not answer')
    expect(pageProblems).toEqual([])
  })

  it('shows a large message (frames null) as its size, and downloads a frame with the token', async () => {
    const frameAsked: { authorization?: string; path: string }[] = []
    await view.route(
      (url) => url.pathname.includes('/frames/'),
      async (route) => {
        const request = route.request()
        frameAsked.push({
          authorization: await request.headerValue('authorization').then((v) => v ?? undefined),
          path: new URL(request.url()).pathname,
        })
        await route.fulfill({
          contentType: 'application/octet-stream',
          body: Buffer.from([0, 1, 2, 0xff]),
        })
      },
    )
    listing = { channels: [listed('mock-c', 7)], total: 1, truncated: false }
    await expectPollAfter(5_000)
    await view.getByRole('button', { name: 'mock-c' }).click()
    const read = () => messageCalls.find((call) => call.url.pathname.includes('/mock-c/'))
    await waitFor(() => read() !== undefined, { what: 'the read of mock-c' })
    const framesUrl = '/v1/channels/mock-c/messages/7/frames'
    await read()?.route.fulfill({
      json: {
        channel: 'mock-c',
        messages: [
          {
            seq: 7,
            receivedAt: '2026-01-01T00:00:00.000Z',
            frames: null,
            size: 9_437_188,
            frameCount: 2,
            frameSizes: [4, 9_437_184],
            framesUrl,
            peer: { address: '10.0.0.5:40122', mechanism: 'NULL' },
          },
        ],
        next: 7,
      },
    })
    const large = view.locator('#messages-body tr[data-seq="7"]')
    await large.locator('p.large').waitFor()
    expect(await large.locator('p.large').textContent()).toBe(
      'Large message, not shown: 9.0 MiB (9,437,188 bytes) in 2 frames.',
    )
    const frames = large.locator('li[data-kind="large"]')
    expect(await frames.allTextContents()).toEqual(['4 bytes download', '9,437,184 bytes download'])
    const link = frames.nth(0).getByRole('link', { name: 'download' })
    expect(await link.getAttribute('href')).toBe(`${framesUrl}/0`)

    const saved = view.waitForEvent('download')
    await link.click()
    const download = await saved
    expect(download.suggestedFilename()).toBe('message-7-frame-0.bin')
    const path = await download.path()
    expect([...readFileSync(path)]).toEqual([0, 1, 2, 0xff])
    expect(frameAsked).toEqual([{ authorization: 'Bearer any-token', path: `${framesUrl}/0` }])
    expect(pageProblems).toEqual([])
  })

  it('charts a channel’s history when it is opened: gaps for unknown minutes, names as text', async () => {
    listing = { channels: [listed('mock-h', 10)], total: 1, truncated: false }
    await expectPollAfter(5_000)
    const before = historyCalls.length
    await view.getByRole('button', { name: 'mock-h' }).click()
    await waitFor(() => historyCalls.length === before + 1, { what: 'the history read' })
    const call = historyCalls.at(-1)
    expect(call?.url.pathname).toBe('/v1/channels/mock-h/history')
    expect(call?.authorization).toBe('Bearer any-token')
    const history = view.locator('#history')
    await history.locator('figure[data-chart="lag"]').waitFor()
    expect(await history.getAttribute('aria-busy')).toBe('false')

    const rates = history.locator('figure[data-chart="rates"]')
    // 120 in and 60 acked a minute; the current minute has run 30 s of its 60.
    expect(await rates.getByRole('img').getAttribute('aria-label')).toBe(
      'Messages in and acked per second over the last hour, by minute: latest 4 in, 2 acked',
    )
    expect(await rates.locator('figcaption').textContent()).toBe('Messages in and acked per second')
    expect(await rates.locator('.legend li').allTextContents()).toEqual(['in', 'acked'])
    // The axis goes up to the largest rate; the time axis ends now.
    expect(await rates.locator('text').allTextContents()).toEqual([
      '4/s',
      '−60 min',
      '−30 min',
      'now',
    ])
    // Minutes 0 to 49 and 54 are unknown: two runs (50–53, 55–59), nothing drawn over the gaps.
    const incoming = (await rates.locator('path.series-0').getAttribute('d')) ?? ''
    expect(incoming.match(/M/g)).toHaveLength(2)
    const xs = [...incoming.matchAll(/[ML]([\d.]+) /g)].map((match) => Number(match[1]))
    expect(Math.min(...xs)).toBe(slotX(50, HISTORY_MINUTES))
    expect(Math.max(...xs)).toBe(PLOT.right)
    const inGap = (x: number) => x > slotX(54, HISTORY_MINUTES) && x < slotX(55, HISTORY_MINUTES)
    expect(xs.some(inGap)).toBe(false)

    // A group name with markup in it is text, in the legend and in the summary.
    const lag = history.locator('figure[data-chart="lag"]')
    expect(await lag.locator('.legend li').allTextContents()).toEqual([HOSTILE_GROUP, 'default'])
    expect(await lag.getByRole('img').getAttribute('aria-label')).toBe(
      'Lag per consumer group (messages not acked) over the last hour, by minute: latest ' +
        `${HOSTILE_GROUP} 25, default 3`,
    )
    expect(await history.locator('b, img').count()).toBe(0)
    expect(await view.evaluate('window.__xss')).toBeUndefined()
    expect(await view.locator('#history-note').textContent()).toMatch(/^A value a minute, up to /)
    expect(pageProblems).toEqual([])
  })

  it('reads the history again once a minute, half a minute in, not at every poll', async () => {
    const read = historyCalls.length
    // The page's clock is paused: its polls come when the test moves it on, 5 s at a time.
    let untilNextRead = untilHalfPast(await view.evaluate<number>('Date.now()'))
    while (untilNextRead > 5_000) {
      await expectPollAfter(5_000)
      untilNextRead -= 5_000
      expect(historyCalls).toHaveLength(read)
    }
    // The first poll past the next half minute reads it, and the polls after it do not.
    await expectPollAfter(5_000)
    await waitFor(() => historyCalls.length === read + 1, { what: 'the next minute’s read' })
    expect(historyCalls.at(-1)?.url.pathname).toBe('/v1/channels/mock-h/history')
    await view.locator('#history[aria-busy="false"]').waitFor({ state: 'attached' })
    await expectPollAfter(5_000)
    expect(historyCalls).toHaveLength(read + 1)
  })

  it('gives up a history read when another channel is opened, and never shows its answer', async () => {
    listing = { channels: [listed('mock-h', 10), listed('mock-i', 3)], total: 2, truncated: false }
    await expectPollAfter(5_000)
    holdHistory = true
    const before = historyCalls.length
    await view.getByRole('button', { name: 'mock-i' }).click()
    await waitFor(() => historyCalls.length === before + 1, { what: 'the read of mock-i' })
    const held = historyCalls.at(-1)
    expect(held?.url.pathname).toBe('/v1/channels/mock-i/history')
    expect(await view.locator('#history').getAttribute('aria-busy')).toBe('true')
    holdHistory = false
    await view.getByRole('button', { name: 'mock-h' }).click()
    const depth = view.locator('#history figure[data-chart="depth"]').getByRole('img')
    await depth.waitFor()
    expect(await depth.getAttribute('aria-label')).toMatch(/: latest 40$/)
    await waitFor(() => abandoned.includes('/v1/channels/mock-i/history'), {
      what: 'the read of mock-i aborted',
    })
    // mock-i's answer, were the page not to drop it, would show depth 999.
    await held?.route.fulfill({ json: mockHistory('mock-i', 999) }).catch(() => {})
    // (A real pause, as the page's timers are frozen: it can only miss a bug, never fail.)
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await depth.getAttribute('aria-label')).toMatch(/: latest 40$/)
    expect(await view.locator('#channel-title').textContent()).toBe('Channel mock-h')
    expect(pageProblems).toEqual([])
  })

  it('says when the history cannot be read, and keeps the charts it has until the next read', async () => {
    const note = view.locator('#history-note')
    const figures = view.locator('#history figure')
    expect(await figures.count()).toBe(3)
    historyFails = true
    try {
      // The next read, at the first poll past the next half minute, fails: the charts stay, dated.
      const read = historyCalls.length
      const now = await view.evaluate<number>('Date.now()')
      for (let waited = 0; waited < untilHalfPast(now); waited += 5_000) {
        await expectPollAfter(5_000)
      }
      await waitFor(() => historyCalls.length === read + 1, { what: 'the failing read' })
      await view.locator('#history[aria-busy="false"]').waitFor({ state: 'attached' })
      expect(await note.textContent()).toMatch(
        /^The last hour could not be updated \(mocked failure \(unavailable, HTTP 503\)\); shown as of \d{4}-/,
      )
      expect(await figures.count()).toBe(3)
      // A channel opened while the reads fail shows no chart, and says why.
      await view.getByRole('button', { name: 'mock-i' }).click()
      await waitFor(() => historyCalls.length === read + 2, { what: 'the read of mock-i' })
      await note.getByText('The last hour could not be read').waitFor()
      expect(await note.textContent()).toBe(
        'The last hour could not be read: mocked failure (unavailable, HTTP 503)',
      )
      expect(await figures.count()).toBe(0)
    } finally {
      historyFails = false
    }
    expect(pageProblems).toEqual([])
  })
})

/** From `now` to the next half minute past (hh:mm:30), when the page reads the history again. */
function untilHalfPast(now: number): number {
  return (90_000 - (now % 60_000)) % 60_000 || 60_000
}

/** A consumer group's name with markup in it: the API's names cannot hold any, the page must not care. */
const HOSTILE_GROUP = '<b>billing</b><img src=x onerror="window.__xss = 3">'

/**
 * A channel's last hour as the API's schema says it is (checked, so it cannot drift): unknown
 * before minute 50 and in minute 54; 120 in and 60 acked a minute, the current minute 30 s in;
 * the depth `depth`; two groups behind.
 */
function mockHistory(channel: string, depth: number) {
  const now = Date.parse('2026-01-01T01:00:30.000Z')
  const minuteStart = (index: number) => now - 30_000 - (HISTORY_MINUTES - 1 - index) * 60_000
  return ChannelHistorySchema.parse({
    channel,
    now: new Date(now).toISOString(),
    minutes: Array.from({ length: HISTORY_MINUTES }, (_, index) => {
      const known = index >= 50 && index !== 54
      return {
        start: new Date(minuteStart(index)).toISOString(),
        seconds: index === HISTORY_MINUTES - 1 ? 30 : 60,
        messagesIn: known ? 120 : null,
        acked: known ? 60 : null,
        depth: known ? depth : null,
        lag: known ? { default: 3, [HOSTILE_GROUP]: 25 } : {},
      }
    }),
  })
}
