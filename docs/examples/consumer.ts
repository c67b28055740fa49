// A channel's consumer with two workers, on the zmq-edge client: each pulls the consumer group,
// runs `handle` on each message (its lease extended while it runs), acks it on success and
// retries it after a delay on failure. Ctrl-C stops both once what they run is done.
//   READ_TOKEN=dev-read-token npx tsx consumer.ts      (Node 22.6+: node consumer.ts)
import { consume, type LeasedMessage, ZmqEdgeClient } from 'zmq-edge/client'

const client = new ZmqEdgeClient({
  url: process.env.ZMQ_EDGE_URL ?? 'http://127.0.0.1:8787',
  token: process.env.READ_TOKEN ?? 'dev-read-token',
})
const stop = new AbortController()
process.once('SIGINT', () => stop.abort())
process.once('SIGTERM', () => stop.abort())

async function handle(worker: number, message: LeasedMessage): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.WORK_MS ?? 100)))
  const text = message.frames === null ? `(${message.size} octets)` : message.frames.join(' | ')
  console.log(`worker ${worker}: #${message.seq} ${text} (attempt ${message.attempts})`)
}

const workers = [1, 2].map((worker) =>
  consume(client, {
    channel: process.env.CHANNEL ?? 'default',
    concurrency: 4,
    visibilityTimeoutMs: Number(process.env.VISIBILITY_MS ?? 30_000),
    signal: stop.signal,
    handler: (message) => handle(worker, message),
    onError: (error) => console.error(`worker ${worker}:`, error),
  }),
)
console.log('stopped:', JSON.stringify(await Promise.all(workers)))
