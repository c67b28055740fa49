// Soak: the bridge under a crowd. Runs the real Worker (`wrangler dev`) and the bridge as a child
// process (`zmq-edge bridge`), then holds CONNECTIONS TCP connections to it from many loopback
// source addresses (127.1.x.y), a mix of peers that never authenticate or misbehave:
//   slow      sends its greeting one octet every few seconds (slowloris)
//   garbage   sends random octets
//   oversize  greets, then announces a 16 MiB command and feeds it slowly
//   idle      completes a NULL handshake, then says nothing and answers nothing
// each reconnecting when the bridge closes it, beside GOOD real libzmq PUSH clients (the `zeromq`
// package) that send one numbered message every 100 ms. It prints the bridge's RSS, the
// connections held and refused every few seconds, and at the end the good clients' delivery:
// every message they sent read back from the channel, once each.
//
// Run: npx tsx bench/soak.ts [--connections 10000] [--seconds 60] [--good 20] [--sources 250]
//                            [--mix slow=40,garbage=20,oversize=20,idle=20]
// (holding 10,000 connections needs `ulimit -n` above 10,000 for both processes.)
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { parseArgs } from 'node:util'
import * as zmq from 'zeromq'
import { encodeReady } from '../node-bridge/zmtp/codec/command'
import { encodeGreeting } from '../node-bridge/zmtp/codec/greeting'
import { freePort, readChannel } from '../test/support/channel-reader'
import { startWranglerDev, TEST_INGEST_TOKEN } from '../test/support/wrangler-dev'

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '10000' },
    seconds: { type: 'string', default: '60' },
    good: { type: 'string', default: '20' },
    sources: { type: 'string', default: '250' },
    mix: { type: 'string', default: 'slow=40,garbage=20,oversize=20,idle=20' },
  },
})
const CONNECTIONS = Number(values.connections)
const SECONDS = Number(values.seconds)
const GOOD = Number(values.good)
const SOURCES = Number(values.sources)
const KINDS = ['slow', 'garbage', 'oversize', 'idle'] as const
type Kind = (typeof KINDS)[number]
const mix = new Map<Kind, number>(
  values.mix.split(',').map((part) => {
    const [kind, share] = part.split('=')
    if (!KINDS.includes(kind as Kind)) throw new Error(`unknown peer kind ${kind}`)
    return [kind as Kind, Number(share)]
  }),
)
const SAMPLE_MS = 5000
const DIALS_PER_TICK = 200

const root = new URL('..', import.meta.url).pathname
const channel = `soak-${Date.now()}`
const worker = await startWranglerDev()
const port = await freePort()
const metricsPort = await freePort()

// The bridge with its defaults, but for the total connection limit (above the crowd) and quiet
// logs (a line per connection would be the benchmark).
const bridge: ChildProcess = spawn(
  process.execPath,
  [
    '--import',
    'tsx',
    'node-bridge/cli/cli.ts',
    'bridge',
    '--bind',
    `tcp://127.0.0.1:${port}`,
    '--channel',
    channel,
    '--worker-url',
    worker.wsUrl,
    '--max-connections',
    String(CONNECTIONS + GOOD + 1000),
    '--metrics-port',
    String(metricsPort),
    '--log-level',
    'warn',
    '--stats-interval',
    '0',
  ],
  {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', ZMQ_EDGE_INGEST_TOKEN: TEST_INGEST_TOKEN },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
)
let bridgeLogLines = 0
let bridgeErrors = 0
bridge.stdout?.on('data', (data: Buffer) => {
  for (const line of data.toString().split('\n')) {
    if (!line) continue
    bridgeLogLines++
    if (line.includes('"level":50')) bridgeErrors++
  }
})
const metricsUrl = `http://127.0.0.1:${metricsPort}`
for (let attempt = 0; ; attempt++) {
  try {
    if ((await fetch(`${metricsUrl}/readyz`)).ok) break
  } catch {}
  if (attempt > 300) throw new Error('the bridge did not become ready')
  await new Promise((resolve) => setTimeout(resolve, 100))
}

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

// --- the crowd ---

const NULL_HELLO = Buffer.concat([
  encodeGreeting({ mechanism: 'NULL', asServer: false }),
  encodeReady([['Socket-Type', 'PUSH']]),
])
const GREETING = Buffer.from(encodeGreeting({ mechanism: 'NULL', asServer: false }))
/** A command frame (flags 0x06: long, command) announcing 16 MiB. */
const OVERSIZE_HEADER = Buffer.from([0x06, 0, 0, 0, 0, 0x01, 0, 0, 0])

const open = new Map<Kind, number>(KINDS.map((kind) => [kind, 0]))
const closedByBridge = new Map<Kind, number>(KINDS.map((kind) => [kind, 0]))
let failedDials = 0
let stopping = false
let sourceIndex = 0

function source(): string {
  const index = sourceIndex++ % SOURCES
  return `127.1.${Math.floor(index / 250)}.${(index % 250) + 1}`
}

/** One hostile peer: connects, misbehaves as its kind does, and reconnects once closed. */
function peer(kind: Kind): void {
  if (stopping) return
  const socket = connect({ host: '127.0.0.1', port, localAddress: source() })
  let timer: NodeJS.Timeout | undefined
  let connected = false
  const every = (ms: number, act: () => void) => {
    timer = setInterval(() => {
      if (!socket.destroyed) act()
    }, ms)
  }
  socket.on('connect', () => {
    connected = true
    open.set(kind, (open.get(kind) ?? 0) + 1)
    switch (kind) {
      case 'slow': {
        let offset = 0
        every(3000, () => {
          if (offset < GREETING.length) socket.write(GREETING.subarray(offset, ++offset))
        })
        break
      }
      case 'garbage':
        every(1000, () => socket.write(randomBytes(1024)))
        socket.write(randomBytes(1024))
        break
      case 'oversize':
        socket.write(Buffer.concat([GREETING, OVERSIZE_HEADER]))
        every(100, () => socket.write(Buffer.alloc(64 * 1024, 0x41)))
        break
      case 'idle':
        socket.write(NULL_HELLO)
        break
    }
  })
  // What the bridge sends (greetings, READY, PINGs) is read and ignored.
  socket.on('data', () => {})
  socket.on('error', () => {})
  socket.on('close', () => {
    clearInterval(timer)
    if (connected) {
      open.set(kind, (open.get(kind) ?? 0) - 1)
      closedByBridge.set(kind, (closedByBridge.get(kind) ?? 0) + 1)
    } else {
      failedDials++
    }
    // libzmq-like: try again after 100-200 ms.
    if (!stopping) setTimeout(() => peer(kind), 100 + Math.random() * 100).unref()
  })
}

const total = [...mix.values()].reduce((sum, share) => sum + share, 0)
const plan: Kind[] = []
for (const [kind, share] of mix) {
  const count = Math.round((CONNECTIONS * share) / total)
  for (let index = 0; index < count; index++) plan.push(kind)
}
// Dialled a few hundred at a time, so the bridge's accept queue is not the test.
const dialing = setInterval(() => {
  for (const kind of plan.splice(0, DIALS_PER_TICK)) peer(kind)
  if (plan.length === 0) clearInterval(dialing)
}, 50)

// --- the good clients ---

const pushes: zmq.Push[] = []
const sent: number[] = []
for (let client = 0; client < GOOD; client++) {
  const push = new zmq.Push({ linger: 5000, sendHighWaterMark: 100_000 })
  push.connect(`tcp://127.0.0.1:${port}`)
  pushes.push(push)
  sent.push(0)
}
const sending = setInterval(() => {
  pushes.forEach((push, client) => {
    const seq = sent[client] ?? 0
    sent[client] = seq + 1
    void push.send([`good-${client}`, String(seq)])
  })
}, 100)

// --- samples ---

function sample(text: string, name: string): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) {
      sum += Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return sum
}

const started = Date.now()
const rows: Array<Record<string, number>> = []
let peakRss = 0
console.log(
  `soak: ${CONNECTIONS} connections (${values.mix}) from ${SOURCES} addresses, ${GOOD} good libzmq PUSH clients, ${SECONDS} s`,
)
console.log('   s  rss MiB  held  slow garbage oversize idle  ready  refused  closed  good sent')
while (Date.now() - started < SECONDS * 1000) {
  await new Promise((resolve) => setTimeout(resolve, SAMPLE_MS))
  const rss = rssMiB(bridge.pid as number)
  peakRss = Math.max(peakRss, rss)
  const metrics = await (await fetch(`${metricsUrl}/metrics`)).text()
  const row = {
    s: Math.round((Date.now() - started) / 1000),
    rss: Math.round(rss),
    held: [...open.values()].reduce((sum, count) => sum + count, 0),
    slow: open.get('slow') ?? 0,
    garbage: open.get('garbage') ?? 0,
    oversize: open.get('oversize') ?? 0,
    idle: open.get('idle') ?? 0,
    ready: sample(metrics, 'zmq_edge_connections'),
    refused: sample(metrics, 'zmq_edge_connections_refused_total'),
    closed: [...closedByBridge.values()].reduce((sum, count) => sum + count, 0),
    goodSent: sent.reduce((sum, count) => sum + count, 0),
  }
  rows.push(row)
  console.log(
    [
      String(row.s).padStart(4),
      String(row.rss).padStart(8),
      String(row.held).padStart(5),
      String(row.slow).padStart(5),
      String(row.garbage).padStart(7),
      String(row.oversize).padStart(8),
      String(row.idle).padStart(4),
      String(row.ready).padStart(6),
      String(row.refused).padStart(8),
      String(row.closed).padStart(7),
      String(row.goodSent).padStart(10),
    ].join(' '),
  )
}

// --- the end: stop the crowd, let the good clients drain, read the channel back ---

stopping = true
clearInterval(sending)
clearInterval(dialing)
for (const push of pushes) push.close()
const expected = new Set<string>()
sent.forEach((count, client) => {
  for (let seq = 0; seq < count; seq++) expected.add(`good-${client}/${seq}`)
})
let delivered = 0
let duplicates = 0
const deadline = Date.now() + 60_000
for (;;) {
  const seen = new Set<string>()
  duplicates = 0
  for (const frames of await readChannel(worker.httpUrl, channel)) {
    const key = `${frames[0]}/${frames[1]}`
    if (seen.has(key)) duplicates++
    seen.add(key)
  }
  delivered = [...expected].filter((key) => seen.has(key)).length
  if (delivered === expected.size || Date.now() > deadline) break
  await new Promise((resolve) => setTimeout(resolve, 1000))
}
const summary = {
  connections: CONNECTIONS,
  seconds: SECONDS,
  sources: SOURCES,
  mix: Object.fromEntries(mix),
  peakRssMiB: Math.round(peakRss),
  finalRssMiB: rows.at(-1)?.rss,
  closedByBridge: Object.fromEntries(closedByBridge),
  failedDials,
  bridgeLogLines,
  bridgeErrors,
  good: { clients: GOOD, sent: expected.size, delivered, duplicates },
  deliveryPercent: expected.size === 0 ? 100 : (100 * delivered) / expected.size,
}
console.log(JSON.stringify(summary))
bridge.kill('SIGTERM')
await new Promise((resolve) => bridge.once('exit', resolve))
await worker.stop()
process.exit(summary.deliveryPercent === 100 && duplicates === 0 ? 0 : 1)
