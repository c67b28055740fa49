// What a message costs on Cloudflare, run by bench/run.ts in its own process: the real Worker
// under `wrangler dev`, driven through the relay protocol (the `ws` package, so each batch holds
// exactly the messages asked) and the HTTP API. Rows read and written come from the Durable
// Object's own row meter (`cost` in GET /v1/channels/:channel): each figure is the difference
// between two stats calls around the work, less what one stats call costs (two stats calls in a
// row). Prints one JSON line: rows per message for ingest in steady state (retention dropping a
// segment per batch) at batch sizes 1, 10, 100 and 1,000, cursor reads, pull + ack in batches of
// 100, bytes stored per message, and US dollars per million messages for one named scenario
// beside Cloudflare Queues.
// Run: npx tsx bench/cost.ts [SCALE]   (SCALE 10: counts ÷ 10, a smoke test)
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import WebSocket from 'ws'
import {
  AckStatus,
  BRIDGE_ID_HEADER,
  decodeRelayFrame,
  EPOCH_HEADER,
  encodeBatch,
  newEpoch,
  RELAY_SUBPROTOCOL,
  type RelayMessage,
} from '../shared/relay-protocol'
import { welcomed } from '../test/support/relay-feeder'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../test/support/wrangler-dev'

const scale = Number(process.argv[2] ?? 1)
const MESSAGE_BYTES = 100
/** Relay batches in flight on one socket: enough to keep the object busy, a few MB at most. */
const WINDOW = 64
/** Retention's message limit while ingest is measured: the log is full, each batch drops one. */
const RETENTION_LIMIT = 20_000 / scale
/**
 * Messages measured per batch size, once the log is full: 10,000, and a whole log's worth for the
 * larger batches, so the window holds about one of the state writes retention forces (see
 * docs/performance.md, "What a message costs").
 */
const INGEST_MEASURED: Record<number, number> = {
  1: 10_000 / scale,
  10: 10_000 / scale,
  100: 20_000 / scale,
  1000: 20_000 / scale,
}
const STORED_MESSAGES = 50_000 / scale
const PULLED_MESSAGES = 10_000 / scale
const GROUP_BATCH = 100
const auth = { authorization: `Bearer ${TEST_READ_TOKEN}` }
const run = Date.now()

const log = (line: string) => process.stderr.write(`  ${line}\n`)

// --- the relay protocol ---------------------------------------------------------------------------

/** One bridge session on one channel's ingest socket: batches 1, 2, 3, …, pipelined. */
class Relay {
  readonly #socket: WebSocket
  #sent = 0
  #acked = 0
  #failure: Error | undefined
  #onAck: (() => void) | undefined

  private constructor(socket: WebSocket) {
    this.#socket = socket
    socket.on('message', (data: Buffer) => {
      const frame = decodeRelayFrame(new Uint8Array(data))
      if (frame.kind === 'ack' && frame.status === AckStatus.STORED) this.#acked++
      else if (frame.kind === 'nack') {
        this.#failure = new Error(`batch ${frame.batchSeq} refused: ${frame.reason}`)
      } else this.#failure = new Error(`unexpected ${frame.kind} (status ${JSON.stringify(frame)})`)
      this.#onAck?.()
    })
    socket.on('close', (code) => {
      this.#failure ??= new Error(`ingest socket closed (${code})`)
      this.#onAck?.()
    })
  }

  static async open(worker: WranglerDev, channel: string): Promise<Relay> {
    const socket = new WebSocket(
      `${worker.wsUrl}/v1/channels/${channel}/ingest`,
      [RELAY_SUBPROTOCOL],
      {
        headers: {
          Authorization: `Bearer ${TEST_INGEST_TOKEN}`,
          [BRIDGE_ID_HEADER]: 'bench-cost',
          [EPOCH_HEADER]: String(newEpoch()),
        },
      },
    )
    await welcomed(socket)
    return new Relay(socket)
  }

  #nextAck(): Promise<void> {
    return new Promise((resolve) => {
      this.#onAck = () => {
        this.#onAck = undefined
        resolve()
      }
    })
  }

  /** Sends `batches` batches of `size` messages of {@link MESSAGE_BYTES}; resolves once all are stored. */
  async send(batches: number, size: number): Promise<void> {
    const target = this.#sent + batches
    while (this.#acked < target) {
      if (this.#failure) throw this.#failure
      if (this.#sent < target && this.#sent - this.#acked < WINDOW) {
        this.#sent++
        this.#socket.send(encodeBatch({ batchSeq: this.#sent, messages: messages(size) }))
        continue
      }
      await this.#nextAck()
    }
    if (this.#failure) throw this.#failure
  }

  close(): void {
    this.#socket.close()
  }
}

function messages(count: number): RelayMessage[] {
  const now = Date.now()
  const payload = randomBytes(count * MESSAGE_BYTES)
  return Array.from({ length: count }, (_, index) => ({
    receivedAt: now,
    mechanism: 'NULL' as const,
    peerAddress: '127.0.0.1:5555',
    frames: [payload.subarray(index * MESSAGE_BYTES, (index + 1) * MESSAGE_BYTES)],
  }))
}

// --- HTTP -----------------------------------------------------------------------------------------

interface Stats {
  log: { messages: number }
  counters: { messagesStored: number; dropped: number; trimmed: number; expired: number }
  cost: { rowsRead: number; rowsWritten: number }
  storageBytes: number
}

async function call<T>(worker: WranglerDev, path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${worker.httpUrl}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const json = (await response.json()) as T
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${JSON.stringify(json)}`)
  return json
}

const stats = (worker: WranglerDev, channel: string) =>
  call<Stats>(worker, `/v1/channels/${channel}`)

/** Rows read and written per message by `work`, less the stats calls that measure it. */
interface Measured {
  rowsRead: number
  rowsWritten: number
  /** Rows one stats call costs (subtracted). */
  statsCall: { rowsRead: number; rowsWritten: number }
  before: Stats
  after: Stats
}

/**
 * Runs `work` between two stats calls, then makes a third: the rows between the first two are the
 * work's plus one stats call's, those between the last two one stats call's.
 */
async function measure(
  worker: WranglerDev,
  channel: string,
  work: () => Promise<void>,
): Promise<Measured> {
  const before = await stats(worker, channel)
  await work()
  const after = await stats(worker, channel)
  const again = await stats(worker, channel)
  const statsCall = {
    rowsRead: again.cost.rowsRead - after.cost.rowsRead,
    rowsWritten: again.cost.rowsWritten - after.cost.rowsWritten,
  }
  return {
    rowsRead: after.cost.rowsRead - before.cost.rowsRead - statsCall.rowsRead,
    rowsWritten: after.cost.rowsWritten - before.cost.rowsWritten - statsCall.rowsWritten,
    statsCall,
    before,
    after,
  }
}

// --- workerd's CPU time, for the Worker CPU estimate ------------------------------------------------

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100

/**
 * CPU seconds used so far by the workerd that runs the Worker and the Durable Object: the one below
 * this process started with an inspector (wrangler dev runs a second workerd, its proxy, without).
 * All of them when none has one.
 */
function workerdCpuSeconds(): number {
  const parents = new Map<number, number>()
  const workerds: { pid: number; ticks: number; inspected: boolean }[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // The fields after the command, which is in parentheses and may hold spaces.
      const close = text.lastIndexOf(')')
      const fields = text.slice(close + 2).split(' ')
      parents.set(Number(entry), Number(fields[1]))
      if (text.slice(text.indexOf('(') + 1, close) !== 'workerd') continue
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      // utime and stime: fields 14 and 15 of /proc/PID/stat (the state, field 3, is fields[0]).
      const ticks = Number(fields[11]) + Number(fields[12])
      workerds.push({ pid: Number(entry), ticks, inspected: commandLine.includes('--inspector') })
    } catch {}
  }
  const mine = workerds.filter(({ pid }) => {
    for (let up = parents.get(pid); up !== undefined && up > 1; up = parents.get(up)) {
      if (up === process.pid) return true
    }
    return false
  })
  const runtime = mine.some((workerd) => workerd.inspected)
    ? mine.filter((workerd) => workerd.inspected)
    : mine
  return runtime.reduce((sum, workerd) => sum + workerd.ticks, 0) / CLOCK_TICKS
}

// --- 1: ingest in steady state ----------------------------------------------------------------------

interface IngestResult {
  batchSize: number
  messages: number
  writtenPerMessage: number
  readPerMessage: number
  writtenPerBatch: number
  dropped: number
  seconds: number
}

async function ingestSteadyState(worker: WranglerDev, batchSize: number): Promise<IngestResult> {
  const channel = `cost-ingest-${batchSize}-${run}`
  const relay = await Relay.open(worker, channel)
  try {
    const filled = performance.now()
    await relay.send(RETENTION_LIMIT / batchSize, batchSize)
    const measured = INGEST_MEASURED[batchSize] as number
    const started = performance.now()
    log(
      `batch ${batchSize}: ${RETENTION_LIMIT} messages filled in ${((started - filled) / 1000).toFixed(1)} s`,
    )
    const result = await measure(worker, channel, () => relay.send(measured / batchSize, batchSize))
    const seconds = (performance.now() - started) / 1000
    const stored = result.after.counters.messagesStored - result.before.counters.messagesStored
    if (stored !== measured) {
      throw new Error(`batch ${batchSize}: ${stored} stored, not ${measured}`)
    }
    const gone = (s: Stats) => s.counters.dropped + s.counters.trimmed + s.counters.expired
    const dropped = gone(result.after) - gone(result.before)
    if (result.after.log.messages !== RETENTION_LIMIT) {
      throw new Error(
        `batch ${batchSize}: the log holds ${result.after.log.messages}, not ${RETENTION_LIMIT}`,
      )
    }
    const ingest = {
      batchSize,
      messages: measured,
      writtenPerMessage: result.rowsWritten / measured,
      readPerMessage: result.rowsRead / measured,
      writtenPerBatch: (result.rowsWritten / measured) * batchSize,
      dropped,
      seconds,
    }
    log(
      `batch ${batchSize}: ${measured} messages in ${seconds.toFixed(1)} s, ${result.rowsWritten} rows written, ${result.rowsRead} read, ${dropped} dropped by retention (stats call: ${JSON.stringify(result.statsCall)})`,
    )
    return ingest
  } finally {
    relay.close()
  }
}

// --- 2, 3, 4: storage at rest, cursor reads, pull + ack ---------------------------------------------

async function storageAndReads(worker: WranglerDev) {
  const channel = `cost-store-${run}`
  const relay = await Relay.open(worker, channel)
  // The object exists (the socket made it), its schema in place, nothing stored yet.
  const empty = await stats(worker, channel)
  await relay.send(STORED_MESSAGES / 100, 100)
  relay.close()
  const stored = await stats(worker, channel)
  if (stored.log.messages !== STORED_MESSAGES) {
    throw new Error(`storage: the log holds ${stored.log.messages}, not ${STORED_MESSAGES}`)
  }
  const storage = {
    messages: stored.log.messages,
    storageBytes: stored.storageBytes,
    emptyBytes: empty.storageBytes,
    bytesPerMessage: stored.storageBytes / stored.log.messages,
  }
  log(
    `storage: ${storage.storageBytes} B for ${storage.messages} messages (${storage.emptyBytes} B before the first)`,
  )

  let read = 0
  const reads = await measure(worker, channel, async () => {
    let after = 0
    for (;;) {
      const page = await call<{ messages: unknown[]; next: number }>(
        worker,
        `/v1/channels/${channel}/messages?after=${after}&limit=1000`,
      )
      if (page.messages.length === 0) break
      read += page.messages.length
      after = page.next
    }
  })
  if (read !== STORED_MESSAGES) {
    throw new Error(`cursor reads: read ${read}, not ${STORED_MESSAGES}`)
  }
  log(`cursor reads: ${read} messages, ${reads.rowsRead} rows read, ${reads.rowsWritten} written`)
  return {
    storage,
    cursor: {
      messages: read,
      readPerMessage: reads.rowsRead / read,
      writtenPerMessage: reads.rowsWritten / read,
    },
  }
}

async function pullAndAck(worker: WranglerDev) {
  const channel = `cost-group-${run}`
  const relay = await Relay.open(worker, channel)
  // One batch more than measured: the first pull creates the group (a one-time row).
  await relay.send(PULLED_MESSAGES / 100 + 1, 100)
  relay.close()
  const cycle = async () => {
    const { messages } = await call<{ messages: { leaseId: string }[] }>(
      worker,
      `/v1/channels/${channel}/pull`,
      { batchSize: GROUP_BATCH },
    )
    if (messages.length !== GROUP_BATCH) throw new Error(`pulled ${messages.length}`)
    const outcome = await call<{ acked: number }>(worker, `/v1/channels/${channel}/ack`, {
      acks: messages.map((message) => message.leaseId),
    })
    if (outcome.acked !== GROUP_BATCH) throw new Error(`acked ${outcome.acked}`)
  }
  await cycle()
  const cycles = PULLED_MESSAGES / GROUP_BATCH
  const cpuBefore = workerdCpuSeconds()
  const started = performance.now()
  const result = await measure(worker, channel, async () => {
    for (let index = 0; index < cycles; index++) await cycle()
  })
  const seconds = (performance.now() - started) / 1000
  // Three stats calls ran beside the 2 × cycles requests: a slight overestimate.
  const cpuMsPerRequest = ((workerdCpuSeconds() - cpuBefore) * 1000) / (2 * cycles)
  log(
    `pull + ack: ${PULLED_MESSAGES} messages in ${seconds.toFixed(1)} s, ${result.rowsWritten} rows written, ${result.rowsRead} read; workerd ${cpuMsPerRequest.toFixed(2)} ms CPU per request`,
  )
  return {
    messages: PULLED_MESSAGES,
    writtenPerMessage: result.rowsWritten / PULLED_MESSAGES,
    readPerMessage: result.rowsRead / PULLED_MESSAGES,
    cpuMsPerRequest,
  }
}

// --- 5: dollars -------------------------------------------------------------------------------------

/** Cloudflare's list prices (USD), free allowances left out. Sources in docs/performance.md. */
const PRICE = {
  rowWritten: 1.0 / 1e6,
  rowRead: 0.001 / 1e6,
  storageGbMonth: 0.2,
  doRequest: 0.15 / 1e6,
  /** Incoming WebSocket messages are billed as DO requests at 20:1. */
  webSocketRatio: 20,
  gbSecond: 12.5 / 1e6,
  workerRequest: 0.3 / 1e6,
  workerCpuMs: 0.02 / 1e6,
  queuesOperation: 0.4 / 1e6,
}

/**
 * US dollars per million messages: 100 B at 1,000 msg/s in relay batches of 100, one consumer
 * group pulling and acking in batches of 100, each message kept 7 days.
 */
function dollars(
  ingest: IngestResult,
  pulled: Awaited<ReturnType<typeof pullAndAck>>,
  storage: { bytesPerMessage: number },
) {
  const million = 1e6
  const batch = 100
  const rate = 1000
  const keptDays = 7
  const rowsWritten = (ingest.writtenPerMessage + pulled.writtenPerMessage) * million
  const rowsRead = (ingest.readPerMessage + pulled.readPerMessage) * million
  const httpRequests = (2 * million) / batch
  const items = {
    rowsWritten: rowsWritten * PRICE.rowWritten,
    rowsRead: rowsRead * PRICE.rowRead,
    // A GB-month is 30 days here; 1 GB = 10^9 octets.
    storage: ((storage.bytesPerMessage * million) / 1e9) * (keptDays / 30) * PRICE.storageGbMonth,
    doRequests: (million / batch / PRICE.webSocketRatio + httpRequests) * PRICE.doRequest,
    workerRequests: httpRequests * PRICE.workerRequest,
    workerCpu: httpRequests * pulled.cpuMsPerRequest * PRICE.workerCpuMs,
    // Active the whole time at this rate, at 128 MB (Cloudflare counts 128 MB as 0.128 GB).
    duration: (million / rate) * 0.128 * PRICE.gbSecond,
  }
  const total = Object.values(items).reduce((sum, value) => sum + value, 0)
  const queues = 3 * million * PRICE.queuesOperation
  return {
    quantities: { rowsWritten, rowsRead, httpRequests, webSocketMessages: million / batch },
    items,
    total,
    queues,
    ratio: queues / total,
  }
}

// --- main ---------------------------------------------------------------------------------------------

const ingest: IngestResult[] = []
{
  const worker = await startWranglerDev({
    vars: { RETENTION_MAX_MESSAGES: String(RETENTION_LIMIT) },
  })
  try {
    for (const batchSize of [1, 10, 100, 1000])
      ingest.push(await ingestSteadyState(worker, batchSize))
  } finally {
    await worker.stop()
  }
}
const worker = await startWranglerDev()
try {
  const { storage, cursor } = await storageAndReads(worker)
  const pulled = await pullAndAck(worker)
  const hundred = ingest.find((result) => result.batchSize === 100) as IngestResult
  const cost = dollars(hundred, pulled, storage)
  process.stdout.write(`${JSON.stringify({ ingest, cursor, pulled, storage, dollars: cost })}\n`)
} finally {
  await worker.stop()
}
