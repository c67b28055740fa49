// zmq-edge as people install it: `npm pack` (which builds), the tarball installed into an empty
// folder, then used from there with no TypeScript loader: `npx zmq-edge --version`, the bridge
// relaying to `wrangler dev` (given the Worker's http:// URL), `send` and `tail`, the library
// (PushSocket, the client, startBridge) from JavaScript, its types from a TypeScript program
// under Node's own module rules, and the README's two-worker consumer example.

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from '../support/channel-reader'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

const run = promisify(execFile)
const root = new URL('../..', import.meta.url).pathname
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  version: string
}

let folder: string
let app: string
let tarball: string
let worker: WranglerDev
const children: ChildProcess[] = []

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'zmq-edge-pack-'))
  const packed = await run('npm', ['pack', '--pack-destination', folder, '--json'], {
    cwd: root,
    maxBuffer: 16 * 1024 * 1024,
  })
  const [manifest] = JSON.parse(packed.stdout) as Array<{ filename: string }>
  tarball = join(folder, manifest?.filename as string)
  app = join(folder, 'app')
  await run('mkdir', ['-p', app])
  writeFileSync(join(app, 'package.json'), '{"name":"app","private":true,"type":"module"}\n')
  await run('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: app })
  worker = await startWranglerDev()
}, 240_000)

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await worker?.stop()
  if (folder) rmSync(folder, { recursive: true, force: true })
})

/** Runs the installed bin, as `npx zmq-edge` does, from the app's folder. */
function zmqEdge(args: string[], options: { input?: string } = {}) {
  const child = spawn(join(app, 'node_modules', '.bin', 'zmq-edge'), args, {
    cwd: app,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  child.stdin.end(options.input ?? '')
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, exited, out: () => stdout, err: () => stderr }
}

/** The installed bridge on a free port for `channel`, relaying to the Worker's http:// URL. */
async function installedBridge(channel: string) {
  const port = await freePort()
  const bridge = zmqEdge([
    'bridge',
    '--listener',
    `tcp://127.0.0.1:${port},channel=${channel}`,
    '--worker-url',
    worker.httpUrl,
    '--ingest-token',
    TEST_INGEST_TOKEN,
  ])
  await waitFor(() => bridge.out().includes('relay connected'), {
    timeoutMs: 20_000,
    what: `the bridge relaying (${bridge.err()})`,
  })
  return { bridge, port }
}

describe('the packed package', () => {
  it('holds the built code, its types, the bin, the LICENSE and the docs, and no sources or tests', async () => {
    const listed = await run('tar', ['tzf', tarball])
    const files = listed.stdout.trim().split('\n')
    expect(files).toContain('package/LICENSE')
    expect(files).toContain('package/node-bridge/bin/zmq-edge.mjs')
    expect(files).toContain('package/dist/package/node-bridge/cli/cli.js')
    expect(files).toContain('package/dist/package/shared/client/index.d.ts')
    const stray = files.filter(
      (file) =>
        /\/test\/|\/bench\/|\.test\./.test(file) ||
        (file.endsWith('.ts') && !file.endsWith('.d.ts')),
    )
    expect(stray).toEqual([])
    expect(files.length).toBeLessThan(200)
  })

  it('runs its bin with no TypeScript loader: --version and keygen', async () => {
    const shown = zmqEdge(['--version'])
    expect(await shown.exited).toBe(0)
    expect(shown.out().trim()).toBe(version)
    // No tsx in the app: the installed package brings none.
    await expect(run('node', ['-e', "import('tsx')"], { cwd: app })).rejects.toThrow()
    const keys = zmqEdge(['keygen'])
    expect(await keys.exited).toBe(0)
    expect(keys.out()).toMatch(/^public key {2}Z85 {5}\S{40}$/m)
  })

  it('bridges to the Worker given as http://, sends with `send` and reads back with `tail`', async () => {
    const channel = `pack-${Date.now()}`
    const { bridge, port } = await installedBridge(channel)
    const sent = zmqEdge([
      'send',
      '--connect',
      `tcp://127.0.0.1:${port}`,
      'hello {n}',
      '--count',
      '3',
    ])
    expect(await sent.exited).toBe(0)
    const tail = zmqEdge([
      'tail',
      '--url',
      worker.httpUrl,
      '--channel',
      channel,
      '--token',
      TEST_READ_TOKEN,
      '--after',
      '0',
    ])
    await waitFor(() => tail.out().trim().split('\n').length >= 3, {
      timeoutMs: 20_000,
      what: `three lines from tail (${tail.err()})`,
    })
    expect(
      tail
        .out()
        .trim()
        .split('\n')
        .map((line) => line.split(' ').slice(2).join(' ')),
    ).toEqual(['hello 1', 'hello 2', 'hello 3'])
    tail.child.kill('SIGINT')
    expect(await tail.exited).toBe(0)
    bridge.child.kill('SIGTERM')
    expect(await bridge.exited).toBe(0)
  }, 60_000)

  it('serves the library to JavaScript, and its types to TypeScript under nodenext', async () => {
    writeFileSync(
      join(app, 'use.mjs'),
      [
        "import { PushSocket, generateKeyPair } from 'zmq-edge'",
        "import { ZmqEdgeClient, consume } from 'zmq-edge/client'",
        "import { startBridge, parseConfig } from 'zmq-edge/bridge'",
        'const client = new ZmqEdgeClient({ url: process.argv[2], token: process.argv[3] })',
        "const health = await fetch(process.argv[2] + '/v1/health').then((r) => r.json())",
        'console.log(JSON.stringify({ kinds: [PushSocket, generateKeyPair, consume, startBridge, parseConfig].map((f) => typeof f), health: health.status, read: (await client.read("nothing-yet")).messages.length }))',
      ].join('\n'),
    )
    const used = await run('node', ['use.mjs', worker.httpUrl, TEST_READ_TOKEN], { cwd: app })
    expect(JSON.parse(used.stdout)).toEqual({
      kinds: ['function', 'function', 'function', 'function', 'function'],
      health: 'ok',
      read: 0,
    })
    copyFileSync(join(root, 'docs', 'examples', 'consumer.ts'), join(app, 'consumer.ts'))
    writeFileSync(
      join(app, 'typed.ts'),
      [
        "import { PushSocket } from 'zmq-edge'",
        "import { consume, ZmqEdgeClient } from 'zmq-edge/client'",
        "const client = new ZmqEdgeClient({ url: 'http://127.0.0.1:8787', token: 't' })",
        'void new PushSocket({})',
        '// @ts-expect-error: a misspelt option is a type error',
        "void consume(client, { channel: 'c', handler: () => {}, concurency: 2 })",
      ].join('\n'),
    )
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          typeRoots: [join(root, 'node_modules', '@types')],
          types: ['node'],
        },
        files: ['typed.ts', 'consumer.ts'],
      }),
    )
    const checked = await run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', '.'], {
      cwd: app,
    }).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true }))
    expect(checked.stdout).toBe('')
  })

  it('runs the README’s consumer example: two workers, handlers longer than the lease, each message once', async () => {
    const channel = `pack-consume-${Date.now()}`
    const { bridge, port } = await installedBridge(channel)
    const sent = zmqEdge([
      'send',
      '--connect',
      `tcp://127.0.0.1:${port}`,
      'job {n}',
      '--count',
      '6',
    ])
    expect(await sent.exited).toBe(0)
    // The example as a user runs it (tsx from this checkout, the package from the app's folder).
    const example = spawn(join(root, 'node_modules', '.bin', 'tsx'), ['consumer.ts'], {
      cwd: app,
      env: {
        ...process.env,
        ZMQ_EDGE_URL: worker.httpUrl,
        READ_TOKEN: TEST_READ_TOKEN,
        CHANNEL: channel,
        WORK_MS: '2500',
        VISIBILITY_MS: '2000',
      },
    })
    children.push(example)
    let out = ''
    example.stdout.on('data', (chunk: Buffer) => (out += chunk))
    example.stderr.on('data', (chunk: Buffer) => (out += chunk))
    const lines = () => out.split('\n').filter((line) => line.startsWith('worker '))
    await waitFor(() => lines().length >= 6, { timeoutMs: 30_000, what: `six handled (${out})` })
    example.kill('SIGTERM')
    await waitFor(() => out.includes('stopped:'), { what: 'the example stopping' })
    const handled = lines().map((line) =>
      /^worker (\d): #\d+ (job \d) \(attempt (\d)\)$/.exec(line),
    )
    expect(handled.map((match) => match?.[2]).sort()).toEqual([
      'job 1',
      'job 2',
      'job 3',
      'job 4',
      'job 5',
      'job 6',
    ])
    // Leases extended: every message handled once, at its first attempt, by one of two workers.
    expect(new Set(handled.map((match) => match?.[3]))).toEqual(new Set(['1']))
    expect(new Set(handled.map((match) => match?.[1]))).toEqual(new Set(['1', '2']))
    expect(out).toContain('stopped: [{"acked":')
    bridge.child.kill('SIGTERM')
  }, 90_000)
})
