// `zmq-edge send` as a user runs it (a real process through the package's bin script) against a
// libzmq PULL (the `zeromq` package) and the bridge's PullSocket: the article's three experiments,
// stdin, multipart, CURVE, and the exit codes.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { derivePublicKey, parseCurveKey } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { z85Decode } from '../../shared/z85'
import { freePort } from '../support/channel-reader'
import { listenPull } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const bin = new URL('../../node-bridge/bin/zmq-edge.mjs', import.meta.url).pathname
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

interface Run {
  code: Promise<number | null>
  stderr: () => string
}

function send(args: string[], stdin?: string): Run {
  const child = spawn(process.execPath, [bin, 'send', ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString()
  })
  if (stdin !== undefined) child.stdin?.end(stdin)
  return {
    code: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    stderr: () => stderr,
  }
}

const pulls: zmq.Pull[] = []
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const pull of pulls.splice(0)) pull.close()
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

async function libzmqPull(port = 0, options: zmq.SocketOptions<zmq.Pull> = {}) {
  const pull = new zmq.Pull({ linger: 0, ...options })
  pulls.push(pull)
  await pull.bind(`tcp://127.0.0.1:${port}`)
  const received: string[][] = []
  void (async () => {
    try {
      for await (const frames of pull) received.push(frames.map(String))
    } catch {
      // closed
    }
  })()
  return { pull, endpoint: String(pull.lastEndpoint), received }
}

describe('zmq-edge send against a libzmq PULL', () => {
  it('experiment 1: sends five numbered messages in order and exits 0', async () => {
    const { endpoint, received } = await libzmqPull()
    const run = send(['--connect', endpoint, '--count', '5', 'message {n}'])
    expect(await run.code).toBe(0)
    await waitFor(() => received.length === 5)
    expect(received).toEqual([1, 2, 3, 4, 5].map((n) => [`message ${n}`]))
    expect(run.stderr()).toContain('5 messages handed to')
  })

  it('experiment 2: started 2 s before the server, it bundles the queue into one TCP write', async () => {
    const port = await freePort()
    const run = send(['--connect', `tcp://127.0.0.1:${port}`, '--count', '5', 'message {n}'])
    await sleep(2000)
    const { received } = await libzmqPull(port)
    expect(await run.code).toBe(0)
    await waitFor(() => received.length === 5)
    expect(received).toEqual([1, 2, 3, 4, 5].map((n) => [`message ${n}`]))
    expect(run.stderr()).toContain('in 1 TCP write')
  })

  it('experiment 3: the server goes away mid-stream and comes back; the sender reconnects and finishes', async () => {
    const port = await freePort()
    const first = await libzmqPull(port)
    const run = send([
      '--connect',
      `tcp://127.0.0.1:${port}`,
      '--count',
      '30',
      '--interval',
      '50',
      '--progress-interval',
      '500',
      '{n}',
    ])
    await waitFor(() => first.received.length >= 5, { what: 'five messages' })
    first.pull.close()
    await sleep(500)
    const second = await libzmqPull(port)
    expect(await run.code).toBe(0)
    await waitFor(() => second.received.at(-1)?.[0] === '30', { what: 'the last message' })
    const numbers = [...first.received, ...second.received].map((message) => Number(message[0]))
    // In order, no duplicates; what was in flight when the server closed may be missing.
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b))
    expect(new Set(numbers).size).toBe(numbers.length)
    expect(second.received.length).toBeGreaterThan(10)
    expect(run.stderr()).toMatch(/handed to a peer, \d+ queued/) // a progress line
  })

  it('reads stdin lines and splits them into frames at the separator', async () => {
    const { endpoint, received } = await libzmqPull()
    const run = send(['--connect', endpoint, '--separator', '|'], 'a|b|\nsingle\n||\n')
    expect(await run.code).toBe(0)
    await waitFor(() => received.length === 3)
    expect(received).toEqual([['a', 'b', ''], ['single'], ['', '', '']])
  })

  it('speaks CURVE to a libzmq CURVE server, with the server key in hex', async () => {
    const keys = zmq.curveKeyPair()
    const { endpoint, received } = await libzmqPull(0, {
      curveServer: true,
      curveSecretKey: keys.secretKey,
    })
    const hex = Buffer.from(z85Decode(keys.publicKey)).toString('hex')
    const run = send(['--connect', endpoint, '--curve-server-key', hex, 'secret', 'hello'])
    expect(await run.code).toBe(0)
    await waitFor(() => received.length === 2)
    expect(received).toEqual([['secret'], ['hello']])
  })

  it('exits 1 when no server appears before the linger runs out', async () => {
    const port = await freePort()
    const run = send(['--connect', `tcp://127.0.0.1:${port}`, '--linger', '300', 'lost'])
    expect(await run.code).toBe(1)
    expect(run.stderr()).toContain('1 of 1 message not handed to a peer (linger of 300 ms ran out)')
  })

  it('exits 2 on a bad endpoint or key, naming the setting', async () => {
    const bad = send(['--connect', 'tcp://nowhere', 'x'])
    expect(await bad.code).toBe(2)
    expect(bad.stderr()).toContain('tcp://HOST:PORT')
    const key = send(['--connect', 'tcp://127.0.0.1:1', '--curve-server-key', 'short', 'x'])
    expect(await key.code).toBe(2)
    expect(key.stderr()).toContain('curve.serverKey')
  })
})

describe('zmq-edge send against the bridge', () => {
  it('exits 1 at once when the bridge refuses its key with ERROR 400 (no retry)', async () => {
    const crypto = createCurveCrypto()
    const cookieKeys = new CookieKeyring({ crypto })
    const secretKey = parseCurveKey('JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6', 'test')
    const harness = await listenPull({
      createMechanism: () =>
        new CurveServerMechanism({
          secretKey,
          socketType: 'PULL',
          crypto,
          cookieKeys,
          authorize: () => false,
        }),
    })
    cleanups.push(() => harness.pull.close())
    const started = Date.now()
    const run = send([
      '--connect',
      `tcp://127.0.0.1:${harness.port}`,
      '--curve-server-key',
      'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7',
      '--linger',
      '60000',
      'x',
    ])
    expect(await run.code).toBe(1)
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(run.stderr()).toContain('AUTHENTICATION_FAILED 400')
    expect(run.stderr()).toContain('every server refused us')
    expect(harness.count('connection accepted')).toBe(1)
  })

  it('reads its CURVE secret key from --curve-secret-key-file, as the allow-list expects', async () => {
    const crypto = createCurveCrypto()
    const clientSecret = parseCurveKey('D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs', 'test')
    const clientPublic = derivePublicKey(clientSecret)
    const harness = await listenPull({
      createMechanism: () =>
        new CurveServerMechanism({
          secretKey: parseCurveKey('JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6', 'test'),
          socketType: 'PULL',
          crypto,
          cookieKeys: new CookieKeyring({ crypto }),
          authorize: (key) => Buffer.from(key).equals(clientPublic),
        }),
    })
    cleanups.push(() => harness.pull.close())
    const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-send-'))
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
    const keyFile = join(dir, 'client.key')
    writeFileSync(keyFile, 'D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs\n', { mode: 0o600 })
    const serverKey = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
    const connect = [
      '--connect',
      `tcp://127.0.0.1:${harness.port}`,
      '--curve-server-key',
      serverKey,
    ]
    const run = send([...connect, '--curve-secret-key-file', keyFile, 'from a file'])
    expect(await run.code).toBe(0)
    await waitFor(() => harness.received.length === 1)
    const both = send([
      ...connect,
      '--curve-secret-key-file',
      keyFile,
      '--curve-secret-key',
      'x',
      'y',
    ])
    expect(await both.code).toBe(2)
    expect(both.stderr()).toContain('not both')
  })

  it('delivers to the NULL bridge PullSocket', async () => {
    const harness = await listenPull()
    cleanups.push(() => harness.pull.close())
    const run = send(['--connect', `tcp://127.0.0.1:${harness.port}`, '--count', '3', 'b{n}'])
    expect(await run.code).toBe(0)
    await waitFor(() => harness.received.length === 3)
    expect(harness.received.map((m) => Buffer.from(m.frames[0] as Uint8Array).toString())).toEqual([
      'b1',
      'b2',
      'b3',
    ])
  })
})
