// End to end, run by bench/run.ts in its own process: C libzmq PUSH → the bridge (in this
// process) → WebSocket → Worker + Durable Object under `wrangler dev` → HTTP. Prints one JSON line:
// sustained msg/s of 100 B into one channel (sender start → the channel's count reaches N, read
// from GET /v1/channels/:channel), and p50/p99 send → visible at 1,000 msg/s offered by a
// zeromq.js PUSH, each message carrying its send time, seen through a long poll (`wait=`);
// then HTTP: reading 1,000 messages in one GET, and how soon a parked long poll wakes.
// Run: npx tsx bench/e2e.ts [COUNT] [LATENCY_SECONDS]
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import * as zmq from 'zeromq'
import { startBridge } from '../node-bridge/bridge/bridge'
import { parseConfig } from '../node-bridge/cli/config/parse-config'
import { startWranglerDev, TEST_INGEST_TOKEN, TEST_READ_TOKEN } from '../test/support/wrangler-dev'

const count = Number(process.argv[2] ?? 200_000)
const latencySeconds = Number(process.argv[3] ?? 5)
const SENDER = join(import.meta.dirname, '.build', 'sender')
const auth = { authorization: `Bearer ${TEST_READ_TOKEN}` }
const run = Date.now()
const throughputChannel = `bench-rate-${run}`
const latencyChannel = `bench-latency-${run}`

const worker = await startWranglerDev()
const bridge = await startBridge(
  parseConfig(
    {
      listener: [
        `tcp://127.0.0.1:0,mechanism=NULL,channel=${throughputChannel}`,
        `tcp://127.0.0.1:0,mechanism=NULL,channel=${latencyChannel}`,
      ],
      workerUrl: worker.wsUrl,
      ingestToken: TEST_INGEST_TOKEN,
    },
    {},
  ),
  // Warnings to stderr: stdout carries only the result line.
  pino({ level: 'warn', base: { service: 'zmq-edge-bridge' } }, pino.destination(2)),
)
const [rateListener, latencyListener] = bridge.listeners.map((listener) => listener.address.port)

/** Messages the channel has stored (retention may have dropped the oldest of a long run). */
async function logMessages(channel: string): Promise<number> {
  const response = await fetch(`${worker.httpUrl}/v1/channels/${channel}`, { headers: auth })
  const body = (await response.json()) as { counters: { messagesStored: number } }
  return body.counters.messagesStored
}

/** CPU time (ms) of every workerd process on the machine: the Worker and its Durable Objects. */
function workerdCpuMs(): number {
  let ticks = 0
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const close = stat.lastIndexOf(')')
      if (!stat.slice(0, close).endsWith('(workerd')) continue
      const fields = stat.slice(close + 2).split(' ')
      // utime and stime, fields 14 and 15 of proc(5), counted from after the name.
      ticks += Number(fields[11]) + Number(fields[12])
    } catch {
      // Gone meanwhile.
    }
  }
  return (ticks * 1000) / 100
}

/** CPU per message (µs) of the bridge (this process) and of workerd during the throughput run. */
const cpu = { bridgeUs: Number.NaN, workerdUs: Number.NaN }

async function throughput(): Promise<number> {
  const bridgeBefore = process.cpuUsage()
  const workerdBefore = workerdCpuMs()
  const started = performance.now()
  const sender = spawn(SENDER, [`tcp://127.0.0.1:${rateListener}`, String(count), '100'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const deadline = started + 300_000
  // The warm-up message is already in the channel.
  while ((await logMessages(throughputChannel)) < count + 1) {
    if (performance.now() > deadline) throw new Error('end-to-end throughput: timed out')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const elapsed = (performance.now() - started) / 1000
  const bridgeUsed = process.cpuUsage(bridgeBefore)
  cpu.bridgeUs = (bridgeUsed.user + bridgeUsed.system) / count
  cpu.workerdUs = ((workerdCpuMs() - workerdBefore) * 1000) / count
  if (sender.exitCode === null) sender.kill()
  return count / elapsed
}

async function latency(): Promise<{ p50: number; p99: number; samples: number }> {
  const push = new zmq.Push({ linger: 0, sendHighWaterMark: 100_000 })
  push.connect(`tcp://127.0.0.1:${latencyListener}`)
  const padding = 'x'.repeat(80)
  const latencies: number[] = []
  const total = latencySeconds * 1000
  let reading = true
  const reader = (async () => {
    let after = 1 // the warm-up message
    while (reading || latencies.length < total) {
      const response = await fetch(
        `${worker.httpUrl}/v1/channels/${latencyChannel}/messages?after=${after}&limit=1000&wait=2`,
        { headers: auth },
      )
      const body = (await response.json()) as { messages: { frames: string[] }[]; next: number }
      const now = performance.now()
      for (const message of body.messages) {
        const text = Buffer.from(message.frames[0] ?? '', 'base64').toString()
        latencies.push(now - Number(text.split(' ')[0]))
      }
      after = body.next
      if (!reading && body.messages.length === 0) break
    }
  })()
  // 1,000 msg/s offered: one message per millisecond, caught up in bursts when timers are late.
  const started = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(performance.now() - started))
    for (; sent < due; sent++) await push.send(`${performance.now().toFixed(3)} ${padding}`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  await new Promise((resolve) => setTimeout(resolve, 3000))
  reading = false
  await reader
  push.close()
  latencies.sort((a, b) => a - b)
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
  return { p50: at(0.5), p99: at(0.99), samples: latencies.length }
}

/** Median and largest of a few timings, in ms. */
function summary(samples: number[]): { median: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b)
  return { median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN, max: sorted.at(-1) ?? 0 }
}

async function timedGet(path: string): Promise<{ ms: number; body: unknown }> {
  const started = performance.now()
  const response = await fetch(`${worker.httpUrl}${path}`, { headers: auth })
  const body = await response.json()
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${JSON.stringify(body)}`)
  return { ms: performance.now() - started, body }
}

/**
 * HTTP consumers: one GET of 1,000 messages (100 B each, base64 JSON) beside one GET of the
 * channel's stats (the same Worker → Durable Object round trip with almost nothing to read), and
 * long-poll wake: a GET parked with `wait=` until a message sent through the bridge arrives.
 */
async function http(rounds = Math.min(20, Math.floor(count / 1000))) {
  const read1000: number[] = []
  const stats: number[] = []
  for (let round = 0; round < rounds; round++) {
    const after = 1 + round * 1000
    const { ms, body } = await timedGet(
      `/v1/channels/${throughputChannel}/messages?after=${after}&limit=1000`,
    )
    const { messages } = body as { messages: unknown[] }
    if (messages.length !== 1000) throw new Error(`read ${messages.length} messages, not 1,000`)
    read1000.push(ms)
    stats.push((await timedGet(`/v1/channels/${throughputChannel}`)).ms)
  }
  const push = new zmq.Push({ linger: 0 })
  push.connect(`tcp://127.0.0.1:${latencyListener}`)
  const wake: number[] = []
  for (let round = 0; round < rounds; round++) {
    const next = (await logMessages(latencyChannel)) + 1
    let sentAt = 0
    const waiting = timedGet(
      `/v1/channels/${latencyChannel}/messages?after=${next - 1}&limit=10&wait=10`,
    ).then(() => performance.now() - sentAt)
    // Let the request reach the Durable Object and park before the message exists.
    await new Promise((resolve) => setTimeout(resolve, 100))
    sentAt = performance.now()
    await push.send(`wake ${round}`)
    wake.push(await waiting)
  }
  push.close()
  return {
    read1000: summary(read1000),
    stats: summary(stats),
    wake: summary(wake),
    drain: await medianOf(3, () => drain(1)),
    drainParallel: await medianOf(3, () => drain(4)),
  }
}

/** The run with the median rate of `runs` (this machine's rates wander by a fifth). */
async function medianOf(
  runs: number,
  run: () => Promise<{ msgPerSec: number; readers: number }>,
): Promise<{ msgPerSec: number; readers: number; runs: number[] }> {
  const results: { msgPerSec: number; readers: number }[] = []
  for (let index = 0; index < runs; index++) results.push(await run())
  const sorted = [...results].sort((a, b) => a.msgPerSec - b.msgPerSec)
  const middle = sorted[Math.floor(sorted.length / 2)] as { msgPerSec: number; readers: number }
  return { ...middle, runs: results.map((result) => Math.round(result.msgPerSec)) }
}

/** Messages each draining reader reads (from the start of the throughput channel). */
const DRAIN_MESSAGES = Math.min(count, 200_000)

/**
 * Readers draining the throughput channel from the start in NDJSON pages of up to 10,000 (the
 * `Zmq-Edge-Next` header is the cursor), each reading DRAIN_MESSAGES: msg/s for all together.
 * A reader counts the lines of each page without parsing them.
 */
async function drain(readers: number): Promise<{ msgPerSec: number; readers: number }> {
  const started = performance.now()
  const counts = await Promise.all(
    Array.from({ length: readers }, async () => {
      let after = 0
      let read = 0
      for (;;) {
        const response = await fetch(
          `${worker.httpUrl}/v1/channels/${throughputChannel}/messages?after=${after}&limit=10000`,
          { headers: { ...auth, accept: 'application/x-ndjson' } },
        )
        // Lines counted in the octets, not parsed: the figure is the Worker's, not a JSON
        // parser's (Node's UTF-8 decoding alone took as long as the request).
        const body = new Uint8Array(await response.arrayBuffer())
        let lines = 0
        for (let at = body.indexOf(10); at !== -1; at = body.indexOf(10, at + 1)) lines++
        if (lines === 0 || read >= DRAIN_MESSAGES) return read
        read += lines
        after = Number(response.headers.get('zmq-edge-next'))
      }
    }),
  )
  const total = counts.reduce((sum, count) => sum + count, 0)
  if (counts.some((read) => read < DRAIN_MESSAGES)) {
    throw new Error(`the readers read ${counts} of ${DRAIN_MESSAGES}`)
  }
  return { msgPerSec: total / ((performance.now() - started) / 1000), readers }
}

try {
  await warmUp()
  const latencyResult = await latency()
  const msgPerSec = await throughput()
  const httpResult = await http()
  process.stdout.write(
    `${JSON.stringify({ msgPerSec, cpu, ...latencyResult, http: httpResult })}\n`,
  )
} finally {
  await bridge.stop(2000)
  await worker.stop()
}

/** One message into each channel, so both Durable Objects exist and both relays are connected. */
async function warmUp(): Promise<void> {
  for (const [port, channel] of [
    [rateListener, throughputChannel],
    [latencyListener, latencyChannel],
  ] as const) {
    const push = new zmq.Push({ linger: 1000 })
    push.connect(`tcp://127.0.0.1:${port}`)
    await push.send(`${performance.now().toFixed(3)} warm-up`)
    const deadline = Date.now() + 30_000
    while ((await logMessages(channel)) < 1) {
      if (Date.now() > deadline) throw new Error('end-to-end: warm-up message never became visible')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    push.close()
  }
}
