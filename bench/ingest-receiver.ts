// One ingest receiver, run in its own process by bench/run.ts: binds a loopback PULL, prints
// `{"port":N}`, counts COUNT messages and prints `{"msgPerSec":…,"ms":…}` (timed from the first
// message to the last), then exits.
// Run: npx tsx bench/ingest-receiver.ts pullsocket|zeromq COUNT [SERVER_SECRET_KEY_Z85]
import { pino } from 'pino'
import { PullSocket } from '../node-bridge/bridge/pull-socket'
import { CookieKeyring } from '../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { NullMechanism } from '../node-bridge/zmtp/mechanisms/null-mechanism'
import { z85Decode } from '../shared/z85'

const [kind, countArg, secretZ85] = process.argv.slice(2)
const count = Number(countArg)
if (!Number.isSafeInteger(count) || count <= 0) throw new Error('COUNT must be a positive integer')

function report(started: number): void {
  const ms = performance.now() - started
  process.stdout.write(`${JSON.stringify({ msgPerSec: count / (ms / 1000), ms })}\n`)
}

async function pullSocket(): Promise<void> {
  let received = 0
  let started = 0
  const crypto = createCurveCrypto()
  const cookieKeys = new CookieKeyring({ crypto })
  const secretKey = secretZ85 ? z85Decode(secretZ85) : undefined
  const pull = new PullSocket({
    host: '127.0.0.1',
    port: 0,
    createMechanism: () =>
      secretKey
        ? new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys })
        : new NullMechanism('PULL'),
    handshakeTimeoutMs: 10_000,
    maxMessageSize: 1024 * 1024,
    logger: pino({ level: 'silent' }),
    // The counting sink: what the bridge's relay would be handed, message by message.
    onMessage: () => {
      if (received++ === 0) started = performance.now()
      if (received === count) {
        report(started)
        void pull.close().then(() => process.exit(0))
      }
    },
  })
  const { port } = await pull.listen()
  process.stdout.write(`${JSON.stringify({ port })}\n`)
}

async function zeromqPull(): Promise<void> {
  const zmq = await import('zeromq')
  const pull = new zmq.Pull({ linger: 0, receiveHighWaterMark: 1_000_000 })
  if (secretZ85) {
    pull.curveServer = true
    pull.curveSecretKey = secretZ85
  }
  await pull.bind('tcp://127.0.0.1:0')
  const port = Number(/:(\d+)$/.exec(pull.lastEndpoint ?? '')?.[1])
  process.stdout.write(`${JSON.stringify({ port })}\n`)
  await pull.receive()
  const started = performance.now()
  for (let received = 1; received < count; received++) await pull.receive()
  report(started)
  pull.close()
  process.exit(0)
}

if (kind === 'pullsocket') await pullSocket()
else if (kind === 'zeromq') await zeromqPull()
else throw new Error(`unknown receiver ${kind}`)
