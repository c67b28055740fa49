// The server side of the CURVE-handshakes-over-TCP benchmark, run in its own process by
// bench/run.ts: binds a loopback CURVE PULL, prints `{"port":N}`, then counts COUNT connections
// from bench/handshake-client.c, each of which completes a CURVE handshake and sends one 4-octet
// message (its index, little-endian). Each index must arrive exactly once: a duplicate, an index
// out of range, a failed handshake or a refused connection is an error. On the COUNT-th message it
// prints `{"handshakes":COUNT,"ms":…,"perSec":…,"cpuMs":…,"perCpuSec":…,"wallMs":…}`, exits 0:
// - ms, perSec: wall time from the first message to the last, (COUNT − 1) / that;
// - cpuMs, perCpuSec: this process's CPU time (process.cpuUsage: user + system, every thread,
//   libzmq's I/O thread included) from just after binding to the last message, COUNT / that;
// - wallMs: the wall time of that same span (cpuMs / wallMs: how many cores the server kept busy).
// If COUNT messages have not arrived within TIMEOUT_MS of binding (default 120,000), it prints
// `{"error":…}` with what did arrive and exits 1.
// Run: npx tsx bench/handshake-server.ts pullsocket|zeromq COUNT SERVER_SECRET_KEY_Z85 [TIMEOUT_MS]
import { pino } from 'pino'
import { PullSocket } from '../node-bridge/bridge/pull-socket'
import { CookieKeyring } from '../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { z85Decode } from '../shared/z85'

const [kind, countArg, secretZ85, timeoutArg] = process.argv.slice(2)
const count = Number(countArg)
if (!Number.isSafeInteger(count) || count <= 0) throw new Error('COUNT must be a positive integer')
if (!secretZ85) throw new Error('SERVER_SECRET_KEY_Z85 is required')
const timeoutMs = Number(timeoutArg ?? 120_000)

const seen = new Uint8Array(count)
let received = 0
let started = 0
let cpuAtBind: NodeJS.CpuUsage | undefined
let boundAt = 0
/** Counters that must stay zero (PullSocket reports them; libzmq's Pull does not). */
const problems = { duplicate: 0, outOfRange: 0, badSize: 0, handshakeFailed: 0, refused: 0 }
let extra: Record<string, unknown> = {}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

function fail(message: string): never {
  print({ error: message, received, ...problems, ...extra })
  process.exit(1)
}

/** Counts one message; returns true on the COUNT-th. */
function count1(body: Uint8Array): boolean {
  if (body.byteLength !== 4) {
    problems.badSize++
    return false
  }
  const index =
    (body[0] ?? 0) | ((body[1] ?? 0) << 8) | ((body[2] ?? 0) << 16) | ((body[3] ?? 0) << 24)
  if (index < 0 || index >= count) {
    problems.outOfRange++
    return false
  }
  if (seen[index]) {
    problems.duplicate++
    return false
  }
  seen[index] = 1
  if (received++ === 0) started = performance.now()
  return received === count
}

function finish(): void {
  const end = performance.now()
  const ms = end - started
  const cpu = process.cpuUsage(cpuAtBind)
  const cpuMs = (cpu.user + cpu.system) / 1000
  if (Object.values(problems).some((value) => value > 0)) fail('connections went wrong')
  print({
    handshakes: count,
    ms,
    perSec: (count - 1) / (ms / 1000),
    cpuMs,
    perCpuSec: count / (cpuMs / 1000),
    wallMs: end - boundAt,
    ...extra,
  })
}

function bound(port: number): void {
  cpuAtBind = process.cpuUsage()
  boundAt = performance.now()
  print({ port })
  setTimeout(() => fail(`${received} of ${count} handshakes within ${timeoutMs} ms`), timeoutMs)
}

async function pullSocket(): Promise<void> {
  const crypto = createCurveCrypto()
  const cookieKeys = new CookieKeyring({ crypto })
  const secretKey = z85Decode(secretZ85 as string)
  let ready = 0
  const pull = new PullSocket({
    host: '127.0.0.1',
    port: 0,
    createMechanism: () =>
      new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys }),
    handshakeTimeoutMs: 10_000,
    maxMessageSize: 1024 * 1024,
    // The limits are not what is measured: none may refuse a connection (checked below).
    maxConnections: count + 1000,
    maxConnectionsPerIp: count + 1000,
    logger: pino({ level: 'silent' }),
    onEvent: (event) => {
      if (event.type === 'ready') ready++
      else if (event.type === 'handshake-failed') problems.handshakeFailed++
      else if (event.type === 'refused') problems.refused++
    },
    onMessage: (message) => {
      if (message.frames.length !== 1 || message.mechanism !== 'CURVE') {
        problems.badSize++
        return
      }
      if (!count1(message.frames[0] as Uint8Array)) return
      extra = { ready, backend: crypto.backend }
      if (ready !== count) fail(`${ready} handshakes completed for ${count} messages`)
      finish()
      void pull.close().then(() => process.exit(0))
    },
  })
  const { port } = await pull.listen()
  bound(port)
}

async function zeromqPull(): Promise<void> {
  const zmq = await import('zeromq')
  // libzmq's listen backlog is 100; Node's net.Server (PullSocket) uses 511. The same queue
  // for both, so a window of in-flight connections overflows neither (SYNs dropped by a full
  // queue are retried by the kernel after a second, which would measure the backlog instead).
  const pull = new zmq.Pull({ linger: 0, backlog: 511 })
  pull.curveServer = true
  pull.curveSecretKey = secretZ85 as string
  await pull.bind('tcp://127.0.0.1:0')
  bound(Number(/:(\d+)$/.exec(pull.lastEndpoint ?? '')?.[1]))
  for (;;) {
    const frames = await pull.receive()
    if (frames.length !== 1) {
      problems.badSize++
      continue
    }
    if (count1(frames[0] as Uint8Array)) break
  }
  finish()
  pull.close()
  process.exit(0)
}

if (kind === 'pullsocket') await pullSocket()
else if (kind === 'zeromq') await zeromqPull()
else throw new Error(`unknown server ${kind}`)
