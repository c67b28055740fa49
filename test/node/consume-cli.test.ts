// Consumers for shell and Python users, against the real Worker under `wrangler dev`:
// `zmq-edge consume --exec CMD` runs CMD once per message (its octets or JSON on stdin, what it
// is in ZMQ_EDGE_* variables), acks on exit 0, retries otherwise, stops cleanly on Ctrl-C; and
// docs/examples/consume.py, standard library only, consumes a channel.

import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ZmqEdgeClient } from '../../shared/client/http-client'
import { runCli } from '../support/cli-process'
import { fedChannel, type RelayFeeder } from '../support/relay-feeder'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

let worker: WranglerDev
const feeders: RelayFeeder[] = []
const folder = mkdtempSync(join(tmpdir(), 'zmq-edge-consume-'))
const root = new URL('../..', import.meta.url).pathname

beforeAll(async () => {
  worker = await startWranglerDev()
}, 90_000)
afterAll(async () => {
  for (const feeder of feeders) feeder.close()
  await worker?.stop()
})

async function channelWith(messages: Array<Array<string | Uint8Array>>): Promise<string> {
  const fed = await fedChannel(worker.wsUrl, TEST_INGEST_TOKEN, messages, 'consume')
  feeders.push(fed.feeder)
  return fed.channel
}

const consumeCli = (channel: string, args: string[]) =>
  runCli(['consume', '--url', worker.httpUrl, '--channel', channel, ...args], {
    ZMQ_EDGE_READ_TOKEN: TEST_READ_TOKEN,
  })

async function queueOf(channel: string) {
  const client = new ZmqEdgeClient({ url: worker.httpUrl, token: TEST_READ_TOKEN })
  return (await client.stats(channel)).queue
}

describe('zmq-edge consume --exec', () => {
  it('runs the command once per message, its octets on stdin and what it is in variables', async () => {
    const binary = new Uint8Array([0, 255, 10, 1])
    const channel = await channelWith([['first'], [binary], ['a', 'b']])
    const out = join(folder, `${channel}.out`)
    const run = consumeCli(channel, [
      '--exec',
      `cat > "${out}.$ZMQ_EDGE_SEQ"; echo "$ZMQ_EDGE_SEQ $ZMQ_EDGE_ATTEMPTS $ZMQ_EDGE_FRAMES $ZMQ_EDGE_CHANNEL $ZMQ_EDGE_GROUP [$ZMQ_EDGE_READ_TOKEN]"`,
      '--max-messages',
      '3',
    ])
    expect(await run.code).toBe(0)
    expect(run.lines().sort()).toEqual([
      `1 1 1 ${channel} default []`,
      `2 1 1 ${channel} default []`,
      `3 1 2 ${channel} default []`,
    ])
    expect(readFileSync(`${out}.1`, 'utf8')).toBe('first')
    expect(new Uint8Array(readFileSync(`${out}.2`))).toEqual(binary)
    // Several frames: the message's JSON, frames in base64.
    const several = JSON.parse(readFileSync(`${out}.3`, 'utf8')) as {
      seq: number
      frames: string[]
    }
    expect(several).toMatchObject({ seq: 3, frames: [btoa('a'), btoa('b')], attempts: 1 })
    expect(run.stderr()).toContain('stopped: 3 acked, 0 failed')
    expect(await queueOf(channel)).toMatchObject({ available: 0, inFlight: 0 })
  })

  it('retries a message whose command fails, and gives --json on stdin when asked', async () => {
    const channel = await channelWith([['flaky']])
    const run = consumeCli(channel, [
      '--exec',
      '[ "$ZMQ_EDGE_ATTEMPTS" -ge 2 ] || exit 3; cat',
      '--json',
      '--retry-delay',
      '200',
      '--max-messages',
      '1',
    ])
    expect(await run.code).toBe(0)
    expect(JSON.parse(run.stdout())).toMatchObject({ seq: 1, attempts: 2, frames: [btoa('flaky')] })
    expect(run.stderr()).toMatch(/#1: the command exited with 3; retrying/)
    expect(run.stderr()).toContain('stopped: 1 acked, 1 failed')
  })

  it('stops on Ctrl-C at the terminal: the running command finishes and its message is acked', async () => {
    const channel = await channelWith([['slow'], ['never']])
    // As a terminal does: SIGINT to the whole foreground process group.
    const child = spawn(
      process.execPath,
      [
        join(root, 'node-bridge', 'bin', 'zmq-edge.mjs'),
        'consume',
        '--url',
        worker.httpUrl,
        '--channel',
        channel,
        '--exec',
        'echo started; sleep 1; echo done',
      ],
      {
        detached: true,
        env: { PATH: process.env.PATH ?? '', ZMQ_EDGE_READ_TOKEN: TEST_READ_TOKEN },
      },
    )
    let out = ''
    let err = ''
    child.stdout.on('data', (chunk: Buffer) => (out += chunk))
    child.stderr.on('data', (chunk: Buffer) => (err += chunk))
    const code = new Promise((resolve) => child.once('exit', resolve))
    await waitFor(() => out.includes('started'), { what: 'the command started' })
    process.kill(-(child.pid as number), 'SIGINT')
    expect(await code).toBe(0)
    expect(out.trim().split('\n')).toEqual(['started', 'done'])
    expect(err).toContain('stopped: 1 acked, 0 failed')
    // The other message was never leased.
    expect(await queueOf(channel)).toMatchObject({ available: 1, inFlight: 0 })
  })

  it('stops a command over --timeout and retries its message; passes on no secret', async () => {
    const channel = await channelWith([['hangs once']])
    const run = runCli(
      [
        'consume',
        '--url',
        worker.httpUrl,
        '--channel',
        channel,
        '--exec',
        'env | grep -c "TOKEN\\|SECRET"; [ "$ZMQ_EDGE_ATTEMPTS" -ge 2 ] || sleep 30',
        '--timeout',
        '500',
        '--retry-delay',
        '0',
        '--max-messages',
        '1',
      ],
      {
        ZMQ_EDGE_READ_TOKEN: TEST_READ_TOKEN,
        ZMQ_EDGE_ADMIN_TOKEN: 'admin-secret',
        ZMQ_EDGE_INGEST_TOKEN: 'ingest-secret',
        ZMQ_EDGE_CURVE_SECRET_KEY: 'curve-secret',
      },
    )
    expect(await run.code).toBe(0)
    // Two runs, neither saw a token or a secret key.
    expect(run.lines()).toEqual(['0', '0'])
    expect(run.stderr()).toMatch(/ran over 500 ms/)
    expect(run.stderr()).toContain('stopped: 1 acked, 1 failed')
  })

  it('says why it cannot start (exit 2) or cannot consume (exit 1)', async () => {
    const missing = runCli(['consume', '--url', worker.httpUrl], {
      ZMQ_EDGE_READ_TOKEN: TEST_READ_TOKEN,
    })
    expect(await missing.code).toBe(2)
    expect(missing.stderr()).toMatch(/--exec/)
    const refused = runCli(['consume', '--url', worker.httpUrl, '--exec', 'true'], {
      ZMQ_EDGE_READ_TOKEN: TEST_INGEST_TOKEN,
    })
    expect(await refused.code).toBe(1)
    expect(refused.stderr()).toMatch(/403 forbidden/)
  })
})

describe('docs/examples/consume.py (Python, standard library only)', () => {
  it('consumes a channel: each message printed and acked', async () => {
    const channel = await channelWith([['one'], ['two', 'parts'], ['three']])
    const python = spawn(
      '/usr/bin/python3',
      [join(root, 'docs', 'examples', 'consume.py'), '--channel', channel, '--count', '3'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          ZMQ_EDGE_URL: worker.httpUrl,
          READ_TOKEN: TEST_READ_TOKEN,
        },
      },
    )
    let out = ''
    let err = ''
    python.stdout.on('data', (chunk: Buffer) => (out += chunk))
    python.stderr.on('data', (chunk: Buffer) => (err += chunk))
    const code = await new Promise((resolve) => python.on('exit', resolve))
    expect({ code, err }).toEqual({ code: 0, err: '' })
    expect(out.trim().split('\n')).toEqual(['1 one', '2 two | parts', '3 three'])
    expect(await queueOf(channel)).toMatchObject({ available: 0, inFlight: 0 })
  })
})
