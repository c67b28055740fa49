// `npm start`: the whole gateway locally. wrangler dev (Worker + Durable Objects, port 8787,
// local persistence) and the bridge (127.0.0.1:7777) pointed at it, with the dev tokens.
// Ctrl-C stops both, children included.
import { type ChildProcess, spawn } from 'node:child_process'
import { DEV_BIND, devBridgeEnv, ensureDevVars, wranglerBin, wranglerEnv } from './dev-env.ts'

const WORKER_PORT = 8787
const root = process.cwd()
const vars = ensureDevVars(root)

function log(line: string): void {
  process.stdout.write(`[zmq-edge] ${line}\n`)
}

// Each child leads its own process group, so stopping it also stops what it spawned
// (wrangler runs workerd and esbuild below it).
const children: ChildProcess[] = []
function launch(name: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, args, { stdio: 'inherit', env, detached: true })
  children.push(child)
  child.on('exit', (code, signal) => {
    if (!stopping) {
      log(`${name} exited (${signal ?? code}); stopping`)
      stop(1)
    }
  })
  return child
}

let stopping = false
function stop(code: number): void {
  if (stopping) return
  stopping = true
  for (const child of children) {
    if (child.pid && child.exitCode === null) {
      try {
        process.kill(-child.pid, 'SIGTERM')
      } catch {}
    }
  }
  // Give them a moment to drain, then make sure nothing is left behind.
  setTimeout(() => {
    for (const child of children) {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
    process.exit(code)
  }, 6000).unref()
  Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve(undefined)
          else child.once('exit', resolve)
        }),
    ),
  ).then(() => process.exit(code))
}
process.on('SIGINT', () => stop(0))
process.on('SIGTERM', () => stop(0))

async function waitForWorker(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !stopping) {
    try {
      const response = await fetch(url)
      if (response.ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`the Worker did not answer ${url} within ${timeoutMs} ms`)
}

launch(
  'wrangler dev',
  [
    wranglerBin(root),
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(WORKER_PORT),
    '--inspector-port',
    '0',
  ],
  wranglerEnv(root),
)
await waitForWorker(`http://127.0.0.1:${WORKER_PORT}/v1/health`, 60_000)

const args = process.argv.slice(2)
const bridgeEnv = devBridgeEnv(args, process.env, {
  workerUrl: `ws://127.0.0.1:${WORKER_PORT}`,
  ingestToken: vars.INGEST_TOKEN,
})
launch('bridge', ['--import', 'tsx', 'node-bridge/cli/cli.ts', 'bridge', ...args], bridgeEnv)

const channel = process.env.ZMQ_EDGE_CHANNEL ?? 'default'
log('gateway running; Ctrl-C stops it')
log(
  bridgeEnv.ZMQ_EDGE_BIND === DEV_BIND
    ? `send:  any ZeroMQ PUSH socket connected to ${DEV_BIND} (this machine only)`
    : 'send:  any ZeroMQ PUSH socket connected where your settings bind (the bridge logs it)',
)
log(
  `poll:  curl -H 'Authorization: Bearer ${vars.READ_TOKEN ?? '<READ_TOKEN>'}' 'http://127.0.0.1:${WORKER_PORT}/v1/channels/${channel}/messages'`,
)
log(
  `tokens: curl -H 'Authorization: Bearer ${vars.ADMIN_TOKEN ?? '<ADMIN_TOKEN>'}' 'http://127.0.0.1:${WORKER_PORT}/v1/tokens' (docs/curve-and-keys.md)`,
)
