// Bridges enforcing the Worker's key registry (--key-registry), as a fleet runs them: two bridge
// processes and `wrangler dev`, libzmq CURVE PUSH clients (npm zeromq). A registered key is
// delivered; revoked through the API, both bridges close its connections within a second and
// nothing it sends later is stored; a key is refused outside its channels; a bridge restarted
// while the Worker is down admits the keys it knew and nobody else.
import { spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { derivePublicKey, generateKeyPair } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { formatKey } from '../../shared/curve-key-text'
import { type BridgeProcess, startBridgeProcess } from '../support/bridge-process'
import { freePort } from '../support/channel-reader'
import { waitFor } from '../support/wait'
import {
  adminCall,
  startWranglerDev,
  TEST_ADMIN_TOKEN,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

const server = generateKeyPair()
const SERVER_SECRET = formatKey(server.secretKey).z85
const SERVER_PUBLIC = formatKey(derivePublicKey(server.secretKey)).z85

let worker: WranglerDev
let port: number
beforeAll(async () => {
  port = await freePort()
  worker = await startWranglerDev({ port })
}, 90_000)
afterAll(async () => {
  await worker?.stop()
})

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
})

const admin = (method: string, path: string, body?: object) => adminCall(worker, method, path, body)

async function registryBridge(channel: string, stateDir: string): Promise<BridgeProcess> {
  const bridge = await startBridgeProcess([
    '--listener',
    `tcp://127.0.0.1:0,channel=${channel},mechanism=CURVE`,
    '--curve-secret-key',
    SERVER_SECRET,
    '--key-registry',
    '--state-dir',
    stateDir,
    '--worker-url',
    `ws://127.0.0.1:${port}`,
    '--ingest-token',
    TEST_INGEST_TOKEN,
    '--batch-delay',
    '5',
  ])
  cleanups.push(() => bridge.stop('SIGKILL'))
  return bridge
}

function client(keys: { publicKey: string; secretKey: string }, ...ports: number[]): zmq.Push {
  const socket = new zmq.Push({
    linger: 0,
    curveServerKey: SERVER_PUBLIC,
    curvePublicKey: keys.publicKey,
    curveSecretKey: keys.secretKey,
    reconnectInterval: 100,
  } as zmq.SocketOptions<zmq.Push>)
  for (const bridgePort of ports) socket.connect(`tcp://127.0.0.1:${bridgePort}`)
  cleanups.push(() => socket.close())
  return socket
}

type StoredMessage = { frames: string[]; peer: { publicKey?: string; keyName?: string } }

async function stored(channel: string): Promise<StoredMessage[]> {
  const response = await fetch(
    `${worker.httpUrl}/v1/channels/${channel}/messages?after=0&limit=1000&encoding=utf8`,
    { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
  )
  return ((await response.json()) as { messages: StoredMessage[] }).messages
}

/** The channel's messages as NDJSON lines, and the first event of its live tail. */
async function streamed(
  channel: string,
): Promise<{ lines: StoredMessage[]; event: StoredMessage }> {
  const headers = { authorization: `Bearer ${TEST_READ_TOKEN}` }
  const ndjson = await fetch(`${worker.httpUrl}/v1/channels/${channel}/messages?after=0`, {
    headers: { ...headers, accept: 'application/x-ndjson' },
  })
  const lines = (await ndjson.text())
    .split('\n')
    .filter((line) => line.startsWith('{"seq"'))
    .map((line) => JSON.parse(line) as StoredMessage)
  const abort = new AbortController()
  const sse = await fetch(`${worker.httpUrl}/v1/channels/${channel}/events?after=0`, {
    headers,
    signal: abort.signal,
  })
  const reader = (sse.body as ReadableStream<Uint8Array>).getReader()
  let text = ''
  let data: string | undefined
  while (data === undefined) {
    const { value, done } = await reader.read()
    if (done) break
    text += new TextDecoder().decode(value)
    data = /^data: (\{"seq".*)$/m.exec(text)?.[1]
  }
  abort.abort()
  return { lines, event: JSON.parse(data as string) as StoredMessage }
}

/** Sends `count` messages from a pyzmq CURVE PUSH (Debian's python3-zmq) and waits till they left. */
function pythonSend(keys: { publicKey: string; secretKey: string }, port: number, count: number) {
  const script = `
import sys, zmq
socket = zmq.Context.instance().socket(zmq.PUSH)
socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = (k.encode() for k in sys.argv[1:4])
socket.setsockopt(zmq.LINGER, 10000)
socket.connect(f"tcp://127.0.0.1:{sys.argv[4]}")
for index in range(int(sys.argv[5])):
    socket.send_string(f"py{index}")
socket.close()
# The linger applies while the context terminates: exiting without it can drop what is unsent.
zmq.Context.instance().term()
`
  const result = spawnSync(
    '/usr/bin/python3',
    ['-c', script, SERVER_PUBLIC, keys.publicKey, keys.secretKey, String(port), String(count)],
    { encoding: 'utf8', timeout: 20_000 },
  )
  expect(result.status, result.stderr).toBe(0)
}

/** Resolves with the status of the first authentication failure libzmq reports for `socket`. */
async function authFailure(socket: zmq.Push): Promise<number> {
  for await (const event of socket.events) {
    if (event.type === 'handshake:error:auth') return event.error.status as number
  }
  return 0
}

const logged = (bridge: BridgeProcess, msg: string) =>
  bridge.lines.filter((line) => line.msg === msg)
const received = (bridge: BridgeProcess) =>
  waitFor(() => logged(bridge, 'key registry received').length > 0, { what: 'the key registry' })

describe('bridges with --key-registry', () => {
  it('deliver a registered key, and close its connections on both within a second of its revocation', async () => {
    const channel = `keys-${Date.now()}`
    const keys = zmq.curveKeyPair()
    const record = await admin('POST', '/v1/keys', {
      publicKey: keys.publicKey,
      name: 'pump 7',
      channels: ['keys-*'],
    })
    const [one, two] = await Promise.all([
      registryBridge(channel, mkdtempSync(join(tmpdir(), 'zmq-edge-state-'))),
      registryBridge(channel, mkdtempSync(join(tmpdir(), 'zmq-edge-state-'))),
    ])
    await Promise.all([received(one), received(two)])
    const push = client(keys, one.port, two.port)
    for (let index = 0; index < 20; index++) await push.send(`m${index}`)
    await waitFor(async () => (await stored(channel)).length === 20, { what: '20 stored' })
    const messages = await stored(channel)
    expect(new Set(messages.map((message) => message.peer.publicKey))).toEqual(
      new Set([keys.publicKey]),
    )
    // Each says who sent it, by its record's name: in JSON, NDJSON and the live tail.
    expect(new Set(messages.map((message) => message.peer.keyName))).toEqual(new Set(['pump 7']))
    const { lines, event } = await streamed(channel)
    expect(lines).toHaveLength(20)
    expect(new Set(lines.map((line) => line.peer.keyName))).toEqual(new Set(['pump 7']))
    expect(event.peer).toMatchObject({ publicKey: keys.publicKey, keyName: 'pump 7' })
    // A pyzmq sender's messages carry its own record's name.
    const boiler = zmq.curveKeyPair()
    await admin('POST', '/v1/keys', {
      publicKey: boiler.publicKey,
      name: 'boiler 3 · ünïcode',
      channels: [channel],
    })
    await waitFor(() => logged(two, 'key registry changed').length > 0, { what: 'the change' })
    pythonSend(boiler, two.port, 5)
    // Should this wait time out, what was stored and what the bridge logged say why.
    let count = 0
    await waitFor(
      async () => {
        count = (await stored(channel)).length
        return count === 25
      },
      {
        what: () =>
          `25 stored (${count} are); bridge two logged ${JSON.stringify(two.lines.slice(-15))}`,
      },
    )
    const fromPython = (await stored(channel)).filter((m) => m.peer.publicKey === boiler.publicKey)
    expect(fromPython.map((message) => message.frames[0])).toEqual([
      'py0',
      'py1',
      'py2',
      'py3',
      'py4',
    ])
    expect(new Set(fromPython.map((m) => m.peer.keyName))).toEqual(new Set(['boiler 3 · ünïcode']))
    // Both bridges had a connection from it.
    for (const bridge of [one, two]) {
      expect(
        logged(bridge, 'handshake succeeded').some((line) => line.publicKey === keys.publicKey),
      ).toBe(true)
    }

    const revokedAt = Date.now()
    await admin('POST', `/v1/keys/${record.id}/revoke`)
    for (const bridge of [one, two]) {
      await waitFor(
        () => logged(bridge, 'disconnected clients the key registry no longer admits').length > 0,
        { what: 'the revoked client disconnected' },
      )
      const line = logged(bridge, 'disconnected clients the key registry no longer admits')[0]
      expect(Number(line?.time) - revokedAt).toBeLessThan(1000)
    }
    // Its later sends are never read: its reconnects are refused at the handshake.
    for (let index = 20; index < 30; index++) await push.send(`m${index}`).catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(await stored(channel)).toHaveLength(25)
    const again = client(keys, one.port)
    const refused = authFailure(again)
    await again.send('after the revocation').catch(() => undefined)
    expect(await refused).toBe(400)
  }, 120_000)

  it('refuse an unregistered key, and a key outside its channels', async () => {
    const channel = `other-${Date.now()}`
    const outside = zmq.curveKeyPair()
    await admin('POST', '/v1/keys', {
      publicKey: outside.publicKey,
      name: 'sensors only',
      channels: ['sensors-*'],
    })
    const bridge = await registryBridge(channel, mkdtempSync(join(tmpdir(), 'zmq-edge-state-')))
    await received(bridge)
    const unknown = zmq.curveKeyPair()
    for (const keys of [outside, unknown]) {
      const push = client(keys, bridge.port)
      // libzmq reports the server's ERROR "400" as an authentication failure (ZAP status 400).
      const refused = authFailure(push)
      await push.send('not stored').catch(() => undefined)
      expect(await refused).toBe(400)
    }
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(await stored(channel)).toHaveLength(0)
    // The bridge reports them in aggregate (within seconds of a refusal, 10 s apart).
    await waitFor(
      async () => {
        const response = await fetch(`${worker.httpUrl}/v1/keys/refusals?limit=1000`, {
          headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
        })
        const { refusals } = (await response.json()) as {
          refusals: Array<{ publicKey: string; reason: string; keyName?: string }>
        }
        return (
          refusals.some(
            (row) =>
              row.publicKey === outside.publicKey &&
              row.reason === 'channel_not_allowed' &&
              row.keyName === 'sensors only',
          ) &&
          refusals.some(
            (row) => row.publicKey === unknown.publicKey && row.reason === 'unknown_key',
          )
        )
      },
      { what: 'the refusals reported', timeoutMs: 25_000, intervalMs: 250 },
    )
  }, 90_000)

  it("slow a key to its record's rate limit by not reading it, and lose nothing", async () => {
    const channel = `rate-${Date.now()}`
    const keys = zmq.curveKeyPair()
    const bytesPerSecond = 100_000
    await admin('POST', '/v1/keys', {
      publicKey: keys.publicKey,
      name: 'chatty',
      channels: [channel],
      rateLimit: { bytesPerSecond },
    })
    const bridge = await registryBridge(channel, mkdtempSync(join(tmpdir(), 'zmq-edge-state-')))
    await received(bridge)
    const push = client(keys, bridge.port)
    const count = 300
    const payload = (index: number) => `${String(index).padStart(4, '0')}${'x'.repeat(996)}`
    const started = Date.now()
    for (let index = 0; index < count; index++) await push.send(payload(index))
    await waitFor(async () => (await stored(channel)).length === count, {
      what: `${count} stored`,
      timeoutMs: 30_000,
    })
    const elapsed = Date.now() - started
    // A second's burst and what one read holds (64 KiB) pass at once; the rest goes at the rate.
    const atLeast = ((count * 1000 - bytesPerSecond - 65_536) / bytesPerSecond) * 1000
    expect(elapsed).toBeGreaterThanOrEqual(atLeast - 100)
    const frames = (await stored(channel)).map((message) => message.frames[0])
    expect(frames).toEqual(Array.from({ length: count }, (_, index) => payload(index)))
  }, 60_000)

  it('admit the keys they knew after a restart while the Worker is down, and nobody else', async () => {
    const channel = `restart-${Date.now()}`
    const known = zmq.curveKeyPair()
    await admin('POST', '/v1/keys', {
      publicKey: known.publicKey,
      name: 'known',
      channels: [channel],
    })
    const stateDir = mkdtempSync(join(tmpdir(), 'zmq-edge-state-'))
    const first = await registryBridge(channel, stateDir)
    await received(first)
    await first.stop()
    await worker.stop({ keepState: true })
    try {
      const second = await registryBridge(channel, stateDir)
      await waitFor(
        () =>
          logged(
            second,
            'key registry loaded from the state directory (the Worker may be unreachable)',
          ).length > 0,
        { what: 'the saved registry' },
      )
      const stranger = zmq.curveKeyPair()
      const pushKnown = client(known, second.port)
      const pushStranger = client(stranger, second.port)
      const strangerRefused = authFailure(pushStranger)
      await pushKnown.send('queued while the Worker is down')
      await pushStranger.send('never read').catch(() => undefined)
      expect(await strangerRefused).toBe(400)
      await waitFor(
        () =>
          logged(second, 'handshake succeeded').some((line) => line.publicKey === known.publicKey),
        { what: 'the known key admitted' },
      )
      expect(
        logged(second, 'handshake succeeded').some((line) => line.publicKey === stranger.publicKey),
      ).toBe(false)
    } finally {
      worker = await startWranglerDev({ port, persistDir: worker.persistDir })
    }
  }, 120_000)
})
