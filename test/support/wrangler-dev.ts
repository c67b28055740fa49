// Runs the real Worker under `wrangler dev` (workerd) as a child process for end-to-end tests:
// a free port, its own persistence folder, test tokens, and a clean stop of the whole group.
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { expect } from 'vitest'
import { wranglerBin, wranglerEnv } from '../../node-bridge/dev/dev-env'

export const TEST_READ_TOKEN = 'e2e-read-token'
export const TEST_INGEST_TOKEN = 'e2e-ingest-token'
export const TEST_ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef'

export interface WranglerDev {
  /** `http://127.0.0.1:<port>` */
  httpUrl: string
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string
  port: number
  persistDir: string
  /**
   * Stops the whole process group (SIGTERM, or SIGKILL for a crash); removes the storage folder
   * unless `keepState`.
   */
  stop(options?: { keepState?: boolean; signal?: NodeJS.Signals }): Promise<void>
}

const root = new URL('../..', import.meta.url).pathname

/**
 * The process groups of the `wrangler dev`s running, killed when this process exits however it
 * does (an uncaught error in a script skips its `finally`): `detached` puts them in groups of
 * their own, which would otherwise outlive it, and an orphaned workerd was once seen spinning a
 * CPU for an hour under the tests that came after.
 */
const runningGroups = new Set<number>()
process.once('exit', () => {
  for (const pid of runningGroups) {
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {}
  }
})

/**
 * Calls the Worker's API with TEST_ADMIN_TOKEN (a JSON body when given), asserts a 2xx and
 * returns the JSON answer.
 */
export async function adminCall<T = Record<string, unknown>>(
  worker: Pick<WranglerDev, 'httpUrl'>,
  method: string,
  path: string,
  body?: object,
): Promise<T> {
  const response = await fetch(`${worker.httpUrl}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  })
  expect(response.ok, await response.clone().text()).toBe(true)
  return (await response.json()) as T
}

/**
 * Starts `wrangler dev`; pass `persistDir` and `port` to restart on the same storage and address,
 * `vars` to override wrangler.toml's (retention limits, say).
 */
export async function startWranglerDev(
  options: { persistDir?: string; port?: number; vars?: Record<string, string> } = {},
): Promise<WranglerDev> {
  const persistDir = options.persistDir ?? mkdtempSync(join(root, '.wrangler', 'test-state-'))
  const args = [
    wranglerBin(root),
    'dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port ?? 0),
    '--inspector-port',
    '0',
    '--persist-to',
    persistDir,
    '--show-interactive-dev-session=false',
    '--var',
    `READ_TOKEN:${TEST_READ_TOKEN}`,
    '--var',
    `INGEST_TOKEN:${TEST_INGEST_TOKEN}`,
    '--var',
    `ADMIN_TOKEN:${TEST_ADMIN_TOKEN}`,
    ...Object.entries(options.vars ?? {}).flatMap(([name, value]) => ['--var', `${name}:${value}`]),
  ]
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: wranglerEnv(root),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const group = child.pid
  if (group !== undefined) runningGroups.add(group)
  let output = ''
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      stopGroup(child)
      reject(new Error(`wrangler dev did not start within 60 s:\n${output}`))
    }, 60_000)
    const onData = (data: Buffer) => {
      output += data.toString()
      const match = /Ready on https?:\/\/[^:\s]+:(\d+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(Number(match[1]))
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`wrangler dev exited with ${code}:\n${output}`))
    })
  })
  // Wait until the Worker itself answers, not only wrangler's proxy.
  const httpUrl = `http://127.0.0.1:${port}`
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      if ((await fetch(`${httpUrl}/v1/health`)).ok) break
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    httpUrl,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    persistDir,
    async stop({ keepState = false, signal = 'SIGTERM' } = {}) {
      await stopGroup(child, signal)
      if (group !== undefined) runningGroups.delete(group)
      if (!keepState) rmSync(persistDir, { recursive: true, force: true })
    },
  }
}

/**
 * wrangler runs workerd and esbuild below it: stop the whole process group, which `detached`
 * made (https://nodejs.org/api/child_process.html#optionsdetached).
 */
function stopGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid) {
      resolve()
      return
    }
    const pid = child.pid
    const kill = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {}
    }, 5000)
    child.once('exit', () => {
      clearTimeout(kill)
      // Make sure workerd, a grandchild, is gone too.
      try {
        process.kill(-pid, 'SIGKILL')
      } catch {}
      resolve()
    })
    try {
      process.kill(-pid, signal)
    } catch {
      resolve()
    }
  })
}
