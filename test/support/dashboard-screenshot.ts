// Takes the README's screenshot of the dashboard (docs/dashboard.png): the real Worker under
// `wrangler dev` with sample traffic from two bridges on three channels, a leased consumer
// acking on one, in Debian's Chromium, after three minutes so the charts of the last hour have
// some. Run: npx tsx test/support/dashboard-screenshot.ts [out]

import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { launchChromium, readPng } from './chromium'
import { feedMessage, RelayFeeder, startFlow } from './relay-feeder'
import { startWranglerDev, TEST_INGEST_TOKEN, TEST_READ_TOKEN } from './wrangler-dev'

const root = new URL('../..', import.meta.url).pathname
const out = process.argv[2] ?? join(root, 'docs', 'dashboard.png')
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const worker = await startWranglerDev()
const browser = await launchChromium()
try {
  const open = (channel: string, bridgeId: string) =>
    RelayFeeder.open({ wsUrl: worker.wsUrl, channel, ingestToken: TEST_INGEST_TOKEN, bridgeId })
  const orders = await open('orders', 'edge-vm-1')
  const sensors = await open('sensors', 'edge-vm-1')
  const sensorsToo = await open('sensors', 'edge-vm-2')
  const logs = await open('logs', 'edge-vm-2')

  await logs.send([
    feedMessage(['INFO', 'bridge started, 2 listeners']),
    feedMessage(['WARN', 'peer 10.0.4.17:53122 reconnected']),
  ])
  const skus = ['A-1001', 'B-2040', 'C-0007', 'D-3300']
  const order = (index: number) =>
    feedMessage(
      [
        'orders.created',
        JSON.stringify({
          id: 41_000 + index,
          sku: skus[index % skus.length],
          qty: (index % 3) + 1,
        }),
      ],
      { peerAddress: '10.0.4.17:53122' },
    )
  const reading = (index: number) => {
    const payload = new Uint8Array(12)
    new DataView(payload.buffer).setFloat64(0, 20 + Math.sin(index / 5))
    new DataView(payload.buffer).setUint32(8, index)
    return feedMessage([`sensor/${index % 4}`, payload], {
      peerAddress: '[fd00::12]:40011',
      mechanism: 'CURVE',
      publicKey: new Uint8Array(32).fill(7),
    })
  }
  const flows = [
    startFlow(orders, order, { size: 4, intervalMs: 120 }),
    startFlow(sensors, reading, { size: 10, intervalMs: 100 }),
    startFlow(sensorsToo, (index) => reading(10_000 + index), { size: 5, intervalMs: 150 }),
  ]

  // A leased consumer on orders: pulls and acks, and keeps one lease open.
  const pull = (batchSize: number) =>
    fetch(`${worker.httpUrl}/v1/channels/orders/pull`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TEST_READ_TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ batchSize, visibilityTimeoutMs: 600_000 }),
    }).then(async (response) => (await response.json()) as { messages: { leaseId: string }[] })
  await sleep(600)
  await pull(3)
  let consuming = true
  const consumer = (async () => {
    while (consuming) {
      const { messages } = await pull(10)
      await fetch(`${worker.httpUrl}/v1/channels/orders/ack`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${TEST_READ_TOKEN}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ acks: messages.map((message) => message.leaseId) }),
      })
      await sleep(400)
    }
  })()

  const page = await browser.newPage({ viewport: { width: 1200, height: 1180 } })
  await page.goto(`${worker.httpUrl}/`)
  await page.getByLabel('Read token').fill(TEST_READ_TOKEN)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.locator('#channels-body tr[data-channel="orders"]').waitFor()
  await page.getByRole('button', { name: 'orders' }).click()
  // Two samples (sign-in, then the poll 5 s later), so every rate is known; and the last hour
  // with three minutes in it (the page reads it again at the first poll of each minute).
  await page.locator('#history figure[data-chart="rates"]').waitFor()
  const started = Date.now()
  await sleep(Math.max(6_500, 3 * 60_000 - (started % 60_000) + 8_000))
  await page.mouse.move(0, 0)
  const png = await page.screenshot({ type: 'png' })
  consuming = false
  await consumer
  for (const flow of flows) await flow.stop()

  const image = readPng(png)
  writeFileSync(out, png)
  process.stdout.write(
    `${out}: ${image.width}×${image.height}, ${Math.round(png.length / 1024)} KiB, ${image.colours} colours\n`,
  )
  for (const feeder of [orders, sensors, sensorsToo, logs]) feeder.close()
} finally {
  await browser.close()
  await worker.stop()
}
