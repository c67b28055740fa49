// `zmq-edge tail` and `zmq-edge stats` as a user runs them (real processes through the package's
// bin script) against the real Worker under `wrangler dev`, fed by a libzmq PUSH (the `zeromq`
// package) through the bridge; and their formatting.
import type { ChildProcess } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type RunningBridge, startBridge } from '../../node-bridge/bridge/bridge'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { formatMessageLine, formatStats } from '../../node-bridge/cli/consumer-cli'
import type { ApiLargeMessage } from '../../shared/api-types'
import { type CliRun, runCli } from '../support/cli-process'
import { createMemoryLogger } from '../support/memory-logger'
import { startTcpProxy } from '../support/tcp-proxy'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

const running: ChildProcess[] = []

function run(args: string[], env: Record<string, string> = {}): CliRun {
  const started = runCli(args, env)
  running.push(started.child)
  return started
}

describe('formatting', () => {
  it('joins frames with " | ", marks base64 frames and keeps a message on one line', () => {
    expect(
      formatMessageLine({
        seq: 7,
        receivedAt: '2026-11-27T04:41:19.123Z',
        frames: ['orders', 'line one\nline two', '/wA='],
        binaryFrames: [2],
        peer: { address: '127.0.0.1:1', mechanism: 'NULL' },
      }),
    ).toBe('7 2026-11-27T04:41:19.123Z orders | line one\\nline two | base64:/wA=')
  })

  it('prints a large message, listed without its frames, as its size and the URL of its frames', () => {
    const large: ApiLargeMessage = {
      seq: 43,
      receivedAt: '2026-11-27T04:41:19.456Z',
      frames: null,
      size: 9_437_188,
      frameCount: 2,
      frameSizes: [4, 9_437_184],
      framesUrl: '/v1/channels/orders/messages/43/frames',
      peer: { address: '127.0.0.1:1', mechanism: 'NULL' },
    }
    expect(formatMessageLine(large, 'http://127.0.0.1:8787')).toBe(
      '43 2026-11-27T04:41:19.456Z [large message not shown: 9437188 octets (9.0 MiB) in 2 ' +
        'frames at http://127.0.0.1:8787/v1/channels/orders/messages/43/frames/<0-1>]',
    )
    expect(formatMessageLine({ ...large, frameCount: 1, frameSizes: [9_437_188] })).toMatch(
      / in 1 frame at \/v1\/channels\/orders\/messages\/43\/frames\/0\]$/,
    )
  })

  it('summarises channel stats', () => {
    const text = formatStats({
      channel: 'default',
      log: {
        messages: 3,
        bytes: 2048,
        oldest: { seq: 1, receivedAt: '2026-11-27T04:00:00.000Z', ageMs: 300_000 },
        newest: null,
      },
      queue: { depth: 3, deadLetters: 0 },
      bridges: {
        connected: 1,
        known: 2,
        connections: [{ bridgeId: 'edge-vm-1', connectedAt: '2026-11-27T04:00:00.000Z' }],
      },
      counters: { messagesStored: 3 },
      config: { maxAttempts: 5, retention: { maxMessages: 10, maxAgeSeconds: 0 } },
    })
    expect(text).toBe(
      [
        'channel  default',
        'log      3 messages, 2.0 KiB; oldest #1 at 2026-11-27T04:00:00.000Z (5 min ago); newest -',
        'queue    depth 3, dead letters 0',
        'bridges  connected 1, known 2, connections edge-vm-1',
        'counters messages stored 3',
        'config   max attempts 5, retention (max messages 10, max age seconds 0)',
        '',
      ].join('\n'),
    )
  })
})

describe('usage errors', () => {
  it('tail without a token exits 2 and names the setting', async () => {
    const tail = run(['tail', '--url', 'http://127.0.0.1:9'])
    expect(await tail.code).toBe(2)
    expect(tail.stderr()).toMatch(/--token \/ ZMQ_EDGE_READ_TOKEN: is required/)
  })

  it('a bad --encoding or --url exits 2', async () => {
    const encoding = run(['tail', '--token', 't', '--encoding', 'latin1'])
    expect(await encoding.code).toBe(2)
    expect(encoding.stderr()).toMatch(/--encoding: expected utf8 or base64/)
    const url = run(['stats', '--token', 't', '--url', 'ftp://x'])
    expect(await url.code).toBe(2)
    expect(url.stderr()).toMatch(/--url: expected an http/)
  })
})

describe('against wrangler dev', () => {
  let worker: WranglerDev
  let bridge: RunningBridge
  let push: zmq.Push
  const channel = `tail-${Date.now()}`

  beforeAll(async () => {
    worker = await startWranglerDev()
    const config = parseConfig(
      {
        bind: [`tcp://127.0.0.1:0`],
        channel,
        workerUrl: worker.wsUrl,
        ingestToken: TEST_INGEST_TOKEN,
        statsIntervalMs: '0',
      },
      {},
    )
    bridge = await startBridge(config, createMemoryLogger('warn').logger)
    push = new zmq.Push({ linger: 0 })
    push.connect(`tcp://127.0.0.1:${bridge.address.port}`)
  }, 90_000)

  afterAll(async () => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL')
    push?.close()
    await bridge?.stop(2000)
    await worker?.stop()
  })

  const stored = (count: number) =>
    waitFor(() => bridge.relay.counters.acked >= count, { what: `${count} acknowledged` })

  it('tail prints stored messages as text lines, keeps following, and exits 0 on Ctrl-C', async () => {
    await push.send('hello')
    await push.send(['orders', '{"id":1}'])
    await push.send([Buffer.from('raw'), Buffer.from([0xff, 0x00])])
    await stored(3)

    const tail = run([
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
    await waitFor(() => tail.lines().length >= 3, { what: 'three lines', timeoutMs: 20_000 })
    const iso = '\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z'
    expect(tail.lines()[0]).toMatch(new RegExp(`^1 ${iso} hello$`))
    expect(tail.lines()[1]).toMatch(new RegExp(`^2 ${iso} orders \\| \\{"id":1\\}$`))
    expect(tail.lines()[2]).toMatch(new RegExp(`^3 ${iso} raw \\| base64:/wA=$`))

    // It keeps following: new messages show up as they are stored.
    await push.send('fourth')
    await push.send(['fifth', 'frame'])
    await waitFor(() => tail.lines().length >= 5, { what: 'five lines', timeoutMs: 20_000 })
    expect(tail.lines()[3]).toMatch(/^4 \S+ fourth$/)
    expect(tail.lines()[4]).toMatch(/^5 \S+ fifth \| frame$/)

    tail.child.kill('SIGINT')
    expect(await tail.code).toBe(0)
    expect(tail.stderr()).toBe('')
  })

  it('tail --json reads the environment and starts at the newest message by default', async () => {
    const tail = run(['tail', '--json'], {
      ZMQ_EDGE_URL: worker.httpUrl,
      ZMQ_EDGE_READ_TOKEN: TEST_READ_TOKEN,
      ZMQ_EDGE_CHANNEL: channel,
    })
    // Send until the tail (which starts after the newest stored message) shows one.
    let sent = 0
    await waitFor(
      async () => {
        if (tail.lines().length > 0) return true
        await push.send(['json', String(++sent)])
        await new Promise((resolve) => setTimeout(resolve, 300))
        return false
      },
      { what: 'a JSON line', timeoutMs: 20_000 },
    )
    const first = JSON.parse(tail.lines()[0] as string) as {
      seq: number
      frames: string[]
      binaryFrames: number[]
      peer: { mechanism: string }
    }
    // Nothing from before the start: the five messages of the previous test are not printed.
    expect(first.seq).toBeGreaterThan(5)
    expect(first.frames[0]).toBe('json')
    expect(first.binaryFrames).toEqual([])
    expect(first.peer.mechanism).toBe('NULL')
    tail.child.kill('SIGINT')
    expect(await tail.code).toBe(0)
  })

  it('tail --encoding base64 prints frames as the API stores them', async () => {
    const tail = run([
      'tail',
      `--url=${worker.httpUrl}`,
      `--channel=${channel}`,
      `--token=${TEST_READ_TOKEN}`,
      '--after=0',
      '--encoding=base64',
    ])
    await waitFor(() => tail.lines().length >= 1, { what: 'a line', timeoutMs: 20_000 })
    expect(tail.lines()[0]).toMatch(/^1 \S+ aGVsbG8=$/)
    tail.child.kill('SIGTERM')
    expect(await tail.code).toBe(0)
  })

  it('tail --sse follows the event stream and resumes after a cut without repeating', async () => {
    const workerPort = Number(new URL(worker.httpUrl).port)
    let proxy = await startTcpProxy(0, workerPort)
    const proxyPort = proxy.port
    const sseChannel = `${channel}-sse`
    const ssePush = new zmq.Push({ linger: 0 })
    const sseBridge = await startBridge(
      parseConfig(
        {
          bind: ['tcp://127.0.0.1:0'],
          channel: sseChannel,
          workerUrl: worker.wsUrl,
          ingestToken: TEST_INGEST_TOKEN,
          statsIntervalMs: '0',
        },
        {},
      ),
      createMemoryLogger('warn').logger,
    )
    try {
      ssePush.connect(`tcp://127.0.0.1:${sseBridge.address.port}`)
      await ssePush.send('one')
      await ssePush.send(['two', 'frames'])
      const tail = run([
        'tail',
        '--sse',
        '--url',
        `http://127.0.0.1:${proxyPort}`,
        '--channel',
        sseChannel,
        '--token',
        TEST_READ_TOKEN,
        '--after',
        '0',
      ])
      await waitFor(() => tail.lines().length >= 2, { what: 'two lines', timeoutMs: 20_000 })
      expect(tail.lines()[0]).toMatch(/^1 \S+ one$/)
      expect(tail.lines()[1]).toMatch(/^2 \S+ two \| frames$/)
      // A live message arrives on the open stream.
      await ssePush.send('three')
      await waitFor(() => tail.lines().length >= 3, { what: 'three lines', timeoutMs: 20_000 })

      // The network drops the stream; messages keep arriving meanwhile.
      await proxy.close()
      await ssePush.send('four')
      await ssePush.send('five')
      await waitFor(() => sseBridge.relay.counters.acked >= 5, { what: 'five stored' })
      proxy = await startTcpProxy(proxyPort, workerPort)
      await waitFor(() => tail.lines().length >= 5, { what: 'five lines', timeoutMs: 20_000 })
      await ssePush.send('six')
      await waitFor(() => tail.lines().length >= 6, { what: 'six lines', timeoutMs: 20_000 })
      expect(tail.lines().map((line) => line.split(' ')[0])).toEqual(['1', '2', '3', '4', '5', '6'])
      expect(tail.lines()[5]).toMatch(/^6 \S+ six$/)
      expect(tail.stderr()).toMatch(/retrying/)
      tail.child.kill('SIGINT')
      expect(await tail.code).toBe(0)
    } finally {
      ssePush.close()
      await sseBridge.stop(2000)
      await proxy.close()
    }
  })

  it('tail with a wrong token exits 1 with the Worker error', async () => {
    const tail = run(['tail', '--url', worker.httpUrl, '--channel', channel, '--token', 'wrong'])
    expect(await tail.code).toBe(1)
    expect(tail.stderr()).toMatch(/401/)
  })

  it('stats prints a summary, or the JSON with --json', async () => {
    const acked = bridge.relay.counters.acked
    const stats = run(['stats', '--url', worker.httpUrl, '--channel', channel], {
      ZMQ_EDGE_READ_TOKEN: TEST_READ_TOKEN,
    })
    expect(await stats.code).toBe(0)
    const lines = stats.lines()
    expect(lines[0]).toBe(`channel  ${channel}`)
    expect(lines[1]).toMatch(
      new RegExp(`^log      ${acked} messages, .*; oldest #1 at .*; newest #${acked} at `),
    )
    expect(lines.find((line) => line.startsWith('queue '))).toMatch(/depth \d+/)
    expect(lines.find((line) => line.startsWith('bridges '))).toMatch(/connected 1/)
    expect(lines.find((line) => line.startsWith('counters '))).toMatch(
      new RegExp(`messages stored ${acked}`),
    )

    const json = run(['stats', '--json', '--channel', channel, '--token', TEST_READ_TOKEN], {
      ZMQ_EDGE_URL: worker.httpUrl,
    })
    expect(await json.code).toBe(0)
    const body = JSON.parse(json.stdout()) as { channel: string; log: { messages: number } }
    expect(body.channel).toBe(channel)
    expect(body.log.messages).toBe(acked)

    const denied = run(['stats', '--url', worker.httpUrl, '--token', 'wrong'])
    expect(await denied.code).toBe(1)
    expect(denied.stderr()).toMatch(/^zmq-edge stats: 401/)
  })
})
