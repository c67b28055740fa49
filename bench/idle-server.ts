// The server side of the idle-connection memory benchmark, run by bench/run.ts with an IPC
// channel and --expose-gc: a NULL PullSocket whose RSS and heap are measured before and after
// the client process (bench/idle-clients.ts) holds its connections open.
// Messages: → {port}; ← 'measure' → {rss, heapUsed, external, arrayBuffers, connections}.
import { pino } from 'pino'
import { PullSocket } from '../node-bridge/bridge/pull-socket'
import { NullMechanism } from '../node-bridge/zmtp/mechanisms/null-mechanism'

const maxConnections = Number(process.argv[2] ?? 10_000) + 100

function measure(connections: number) {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc')
  gc()
  gc()
  const usage = process.memoryUsage()
  return {
    rss: usage.rss,
    heapUsed: usage.heapUsed,
    external: usage.external,
    arrayBuffers: usage.arrayBuffers,
    connections,
  }
}

const pull = new PullSocket({
  host: '127.0.0.1',
  port: 0,
  createMechanism: () => new NullMechanism('PULL'),
  handshakeTimeoutMs: 600_000,
  maxMessageSize: 1024 * 1024,
  maxConnections,
  maxConnectionsPerIp: maxConnections,
  logger: pino({ level: 'silent' }),
  onMessage: () => {},
})
const { port } = await pull.listen()
const send = (message: unknown) => process.send?.(message)
send({ port, before: measure(0) })
process.on('message', (message) => {
  if (message === 'measure') send({ after: measure(pull.connectionCount) })
  if (message === 'exit') void pull.close().then(() => process.exit(0))
})
