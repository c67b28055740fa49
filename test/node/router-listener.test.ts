// A ROUTER listener (RFC 28): REQ and DEALER senders get one reply per message, the seq it was
// stored under, and only once the Durable Object has acknowledged the batch holding it. pyzmq
// (Debian) and npm `zeromq` peers, the bridge as a process and the Worker under `wrangler dev`.
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { DealerSocket, ReplyError, ReqSocket } from '../../node-bridge/zmtp/sockets/dealer-socket'
import { type BridgeProcess, startBridgeProcess } from '../support/bridge-process'
import { freePort } from '../support/channel-reader'
import { runCli } from '../support/cli-process'
import { waitFor } from '../support/wait'
import {
  startWranglerDev,
  TEST_INGEST_TOKEN,
  TEST_READ_TOKEN,
  type WranglerDev,
} from '../support/wrangler-dev'

const root = new URL('../..', import.meta.url).pathname
const children: ChildProcess[] = []
const closers: Array<() => void> = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill()
  for (const close of closers.splice(0)) close()
})

let worker: WranglerDev
beforeAll(async () => {
  worker = await startWranglerDev({ port: await freePort() })
}, 90_000)
afterAll(async () => {
  await worker?.stop()
})

/**
 * A bridge process with one ROUTER listener for `channel`, relaying to the Worker at
 * `workerPort`; `options` adds listener options (`,routingId=…`) and flags.
 */
async function routerBridge(
  channel: string,
  workerPort = worker.port,
  options: { listener?: string; flags?: string[] } = {},
): Promise<BridgeProcess> {
  const bridge = await startBridgeProcess([
    '--listener',
    `tcp://127.0.0.1:0,socket=router,channel=${channel}${options.listener ?? ''}`,
    '--worker-url',
    `ws://127.0.0.1:${workerPort}`,
    '--ingest-token',
    TEST_INGEST_TOKEN,
    '--batch-delay',
    '5',
    ...(options.flags ?? []),
  ])
  closers.push(() => void bridge.stop('SIGKILL'))
  return bridge
}

/** The channel's messages by seq, each as its frames in UTF-8. */
async function storedBySeq(channel: string): Promise<Map<number, string[]>> {
  const response = await fetch(
    `${worker.httpUrl}/v1/channels/${channel}/messages?after=0&limit=1000&encoding=utf8`,
    { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
  )
  const body = (await response.json()) as { messages: Array<{ seq: number; frames: string[] }> }
  return new Map(body.messages.map((message) => [message.seq, message.frames]))
}

/** Runs test/peers/pyzmq_req.py; resolves with its replies' last frames, in order. */
async function pythonSender(
  endpoint: string,
  args: string[],
): Promise<{ replies: string[]; frames: number[]; envelopes: string[][]; code: number | null }> {
  const child = spawn('/usr/bin/python3', ['test/peers/pyzmq_req.py', endpoint, ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.push(child)
  const replies: string[] = []
  const frames: number[] = []
  const envelopes: string[][] = []
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const entry = JSON.parse(line) as { reply?: string; frames?: number; envelope?: string[] }
    if (entry.reply !== undefined) {
      replies.push(entry.reply)
      frames.push(entry.frames ?? 0)
      envelopes.push(entry.envelope ?? [])
    }
  })
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  return { replies, frames, envelopes, code }
}

describe('a ROUTER listener', () => {
  it('answers a pyzmq REQ with the seq of each message, as GET /messages shows it', async () => {
    const channel = `router-req-${Date.now()}`
    const bridge = await routerBridge(channel)
    const sent = await pythonSender(`tcp://127.0.0.1:${bridge.port}`, ['--count', '5'])
    expect(sent.code).toBe(0)
    expect(sent.replies).toHaveLength(5)
    const seqs = sent.replies.map(Number)
    expect(seqs.every((seq) => Number.isSafeInteger(seq) && seq > 0)).toBe(true)
    // A REQ strips the delimiter: the reply it hands over is the answer alone.
    expect(sent.frames).toEqual([1, 1, 1, 1, 1])
    const stored = await storedBySeq(channel)
    // The envelope (REQ's empty delimiter) is not stored: the body is.
    expect(seqs.map((seq) => stored.get(seq))).toEqual(
      Array.from({ length: 5 }, (_, index) => ['msg', String(index)]),
    )
  }, 60_000)

  it('answers a DEALER with many in flight once each, with or without the delimiter', async () => {
    const channel = `router-dealer-${Date.now()}`
    const bridge = await routerBridge(channel)
    const endpoint = `tcp://127.0.0.1:${bridge.port}`
    const framed = await pythonSender(endpoint, ['--socket', 'dealer', '--count', '200'])
    expect(framed.code).toBe(0)
    // The envelope comes back: the empty delimiter, then the seq.
    expect(new Set(framed.frames)).toEqual(new Set([2]))
    const bare = await pythonSender(endpoint, [
      '--socket',
      'dealer',
      '--no-delimiter',
      '--count',
      '50',
    ])
    expect(bare.code).toBe(0)
    expect(new Set(bare.frames)).toEqual(new Set([1]))
    const seqs = [...framed.replies, ...bare.replies].map(Number)
    expect(new Set(seqs).size).toBe(250)
    const stored = await storedBySeq(channel)
    expect(stored.size).toBe(250)
    for (const [index, seq] of framed.replies.map(Number).entries()) {
      expect(stored.get(seq)).toEqual(['msg', String(index)])
    }
    for (const [index, seq] of bare.replies.map(Number).entries()) {
      expect(stored.get(seq)).toEqual(['msg', String(index)])
    }
  }, 60_000)

  it('answers an npm zeromq Dealer, and says ERR for a request with no body', async () => {
    const channel = `router-zeromq-${Date.now()}`
    const bridge = await routerBridge(channel)
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 20_000 })
    closers.push(() => dealer.close())
    dealer.connect(`tcp://127.0.0.1:${bridge.port}`)
    await dealer.send(['', 'hello'])
    const [delimiter, seq] = await dealer.receive()
    expect(delimiter?.length).toBe(0)
    const stored = await storedBySeq(channel)
    expect(stored.get(Number(seq?.toString()))).toEqual(['hello'])
    await dealer.send([''])
    const [, refused] = await dealer.receive()
    expect(refused?.toString()).toBe('ERR EMPTY_MESSAGE')
    // An envelope over 1 KiB is not kept for a reply: refused, answered without it.
    await dealer.send([Buffer.alloc(1025, 7), '', 'not stored'])
    const [tooLarge] = await dealer.receive()
    expect(tooLarge?.toString()).toBe('ERR ENVELOPE_TOO_LARGE')
    expect([...(await storedBySeq(channel)).values()]).toEqual([['hello']])
  }, 60_000)

  it('answers every message stored across a Worker killed mid-stream, once, with its seq', async () => {
    // A Worker of its own, to kill: batches in flight may be stored without their ACK.
    const port = await freePort()
    let own = await startWranglerDev({ port })
    closers.push(() => void own.stop())
    const channel = `router-kill-${Date.now()}`
    const bridge = await routerBridge(channel, port)
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 60_000 })
    closers.push(() => dealer.close())
    dealer.connect(`tcp://127.0.0.1:${bridge.port}`)
    const total = 400
    const replies = new Map<string, string>()
    const duplicates: string[] = []
    const receiving = (async () => {
      while (replies.size + duplicates.length < total) {
        const [id, delimiter, seq] = await dealer.receive()
        expect(delimiter?.length).toBe(0)
        const key = id?.toString() ?? ''
        if (replies.has(key)) duplicates.push(key)
        else replies.set(key, seq?.toString() ?? '')
      }
    })()
    // The id travels in the envelope (before the delimiter) and comes back with the reply.
    for (let index = 0; index < total; index++) {
      await dealer.send([`id-${index}`, '', 'payload', String(index)])
      if (index === 150) {
        await own.stop({ keepState: true, signal: 'SIGKILL' })
        own = await startWranglerDev({ port, persistDir: own.persistDir })
      }
      if (index % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await receiving
    expect(duplicates).toEqual([])
    expect(replies.size).toBe(total)
    const response = await fetch(
      `${own.httpUrl}/v1/channels/${channel}/messages?after=0&limit=1000&encoding=utf8`,
      { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
    )
    const body = (await response.json()) as { messages: Array<{ seq: number; frames: string[] }> }
    // Every message stored once (the bridge resent what it had no ACK for, deduplicated), and
    // each reply names the seq of its own message.
    expect(body.messages).toHaveLength(total)
    const bySeq = new Map(body.messages.map((message) => [message.seq, message.frames]))
    for (const [id, seq] of replies) {
      expect({ id, frames: bySeq.get(Number(seq)) }).toEqual({
        id,
        frames: ['payload', id.slice('id-'.length)],
      })
    }
  }, 180_000)

  it('is addressed by a libzmq ROUTER through its routingId', async () => {
    const channel = `router-id-${Date.now()}`
    const bridge = await routerBridge(channel, worker.port, { listener: ',routingId=edge%2F1' })
    const router = new zmq.Router({ linger: 0, mandatory: true, receiveTimeout: 20_000 })
    closers.push(() => router.close())
    router.connect(`tcp://127.0.0.1:${bridge.port}`)
    // Mandatory: a send to an id not connected yet fails (EHOSTUNREACH) instead of vanishing.
    await waitFor(
      async () => {
        try {
          await router.send(['edge/1', '', 'routed'])
          return true
        } catch {
          return false
        }
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'the bridge known as edge/1' },
    )
    const [id, delimiter, seq] = await router.receive()
    expect(id?.toString()).toBe('edge/1')
    expect(delimiter?.length).toBe(0)
    const stored = await storedBySeq(channel)
    expect(stored.get(Number(seq?.toString()))).toEqual(['routed'])
  }, 60_000)

  it('answers what is stored while it stops: the relay drains before connections close', async () => {
    const port = await freePort()
    const channel = `router-stop-${Date.now()}`
    const bridge = await routerBridge(channel, port, {
      flags: ['--reconnect-initial', '50', '--reconnect-max', '300', '--drain-timeout', '60000'],
    })
    const request = new zmq.Request({ linger: 0, receiveTimeout: 60_000 })
    closers.push(() => request.close())
    request.connect(`tcp://127.0.0.1:${bridge.port}`)
    await request.send('stored while stopping')
    await waitFor(() => bridge.lines.some((line) => line.msg === 'handshake succeeded'), {
      what: 'the REQ connected',
    })
    // Asked to stop with no Worker to store it; the Worker comes up during the drain.
    bridge.child.kill('SIGTERM')
    const late = await startWranglerDev({ port })
    closers.push(() => void late.stop())
    const [seq] = await request.receive()
    expect(Number(seq?.toString())).toBeGreaterThan(0)
    expect(await bridge.exited).toBe(0)
  }, 120_000)

  it('never answers before the message is stored', async () => {
    const channel = `router-wait-${Date.now()}`
    // No Worker at this port: the batch waits in the relay, and the REQ for its reply.
    const bridge = await routerBridge(channel, await freePort())
    const request = new zmq.Request({ linger: 0, receiveTimeout: 1500 })
    closers.push(() => request.close())
    request.connect(`tcp://127.0.0.1:${bridge.port}`)
    await request.send('waits')
    await expect(request.receive()).rejects.toThrow()
    await waitFor(() => bridge.lines.some((line) => line.msg === 'handshake succeeded'), {
      what: 'the REQ connected',
    })
  }, 60_000)
})

describe('idempotency keys in the envelope', () => {
  it('store a pyzmq DEALER’s message once however often it is resent, each copy answered with its seq', async () => {
    // The Worker comes up late: every copy waits in the bridge, as resends after timeouts do.
    const port = await freePort()
    const channel = `router-idem-${Date.now()}`
    const bridge = await routerBridge(channel, port)
    const sending = pythonSender(`tcp://127.0.0.1:${bridge.port}`, [
      '--socket',
      'dealer',
      '--count',
      '20',
      '--copies',
      '3',
      '--key-prefix',
      `${channel}-`,
      '--timeout',
      '90',
    ])
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const late = await startWranglerDev({ port })
    closers.push(() => void late.stop())
    const { replies, envelopes, code } = await sending
    expect(code).toBe(0)
    expect(replies).toHaveLength(60)
    // Each key's three copies got one seq, and the seqs of different keys differ.
    const seqOfKey = new Map<string, Set<string>>()
    envelopes.forEach((envelope, index) => {
      const key = envelope[0] ?? ''
      seqOfKey.set(key, (seqOfKey.get(key) ?? new Set()).add(replies[index] ?? ''))
    })
    expect(seqOfKey.size).toBe(20)
    for (const seqs of seqOfKey.values()) expect(seqs.size).toBe(1)
    const response = await fetch(
      `${late.httpUrl}/v1/channels/${channel}/messages?after=0&limit=1000&encoding=utf8`,
      { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
    )
    const body = (await response.json()) as { messages: Array<{ seq: number; frames: string[] }> }
    expect(body.messages).toHaveLength(20)
    const bySeq = new Map(body.messages.map((message) => [message.seq, message.frames]))
    for (const [key, seqs] of seqOfKey) {
      const index = key.slice(`idempotency-key=${channel}-`.length)
      expect(bySeq.get(Number([...seqs][0]))).toEqual(['msg', index])
    }
  }, 180_000)

  it('answer ERR IDEMPOTENCY_KEY_INVALID to a key that breaks the rule, or two keys, storing nothing', async () => {
    const channel = `router-idem-bad-${Date.now()}`
    const metricsPort = await freePort()
    const bridge = await routerBridge(channel, worker.port, {
      flags: ['--metrics-port', String(metricsPort)],
    })
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 20_000 })
    closers.push(() => dealer.close())
    dealer.connect(`tcp://127.0.0.1:${bridge.port}`)
    const cases = [
      ['idempotency-key=has space', '', 'x'],
      ['idempotency-key=', '', 'x'],
      [`idempotency-key=${'k'.repeat(129)}`, '', 'x'],
      ['idempotency-key=one', 'idempotency-key=two', '', 'x'],
    ]
    for (const request of cases) {
      await dealer.send(request)
      const reply = (await dealer.receive()).map((frame) => frame.toString())
      expect(reply).toEqual([...request.slice(0, -1), 'ERR IDEMPOTENCY_KEY_INVALID'])
    }
    // A key of 128 visible characters is taken.
    const longest = `idempotency-key=${'~'.repeat(128)}`
    await dealer.send([longest, '', 'kept'])
    const [, , seq] = await dealer.receive()
    expect((await storedBySeq(channel)).get(Number(seq?.toString()))).toEqual(['kept'])
    expect((await storedBySeq(channel)).size).toBe(1)
    // Each reply counted by its answer.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
    const replies = (answer: string) =>
      metrics.match(
        new RegExp(
          `^zmq_edge_replies_total\\{channel="${channel}",answer="${answer}"\\} (\\d+)$`,
          'm',
        ),
      )?.[1]
    expect([replies('IDEMPOTENCY_KEY_INVALID'), replies('seq')]).toEqual(['4', '1'])
  }, 60_000)

  it('let DealerSocket and zmq-edge send resend after a timeout without storing twice', async () => {
    const port = await freePort()
    const channel = `router-idem-lib-${Date.now()}`
    const bridge = await routerBridge(channel, port)
    const endpoint = `tcp://127.0.0.1:${bridge.port}`
    // Timeouts of 700 ms while the Worker is away: each message goes three or more times.
    const dealer = new DealerSocket({ replyTimeoutMs: 700, resends: 100 })
    closers.push(() => void dealer.close({ linger: 0 }))
    dealer.connect(endpoint)
    const sends = Array.from({ length: 10 }, (_, index) => dealer.send(['lib', String(index)]))
    const named = dealer.send('named', { idempotencyKey: `${channel}-named` })
    const cli = runCli([
      'send',
      '--socket',
      'dealer',
      '--connect',
      endpoint,
      '--reply-timeout',
      '700',
      '--resends',
      '100',
      '--progress-interval',
      '0',
      'cli-a',
      'cli-b',
    ])
    await new Promise((resolve) => setTimeout(resolve, 2500))
    const late = await startWranglerDev({ port })
    closers.push(() => void late.stop())
    const seqs = await Promise.all(sends)
    const namedSeq = await named
    // The same key again later: answered with the first copy's seq, not stored.
    expect(await dealer.send('named again', { idempotencyKey: `${channel}-named` })).toBe(namedSeq)
    expect({ code: await cli.code, stderr: cli.stderr() }).toMatchObject({ code: 0 })
    const cliSeqs = cli.lines().map(Number)
    closers.push(() => cli.child.kill())
    const response = await fetch(
      `${late.httpUrl}/v1/channels/${channel}/messages?after=0&limit=1000&encoding=utf8`,
      { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
    )
    const body = (await response.json()) as { messages: Array<{ seq: number; frames: string[] }> }
    const bySeq = new Map(body.messages.map((message) => [message.seq, message.frames]))
    expect(body.messages).toHaveLength(13)
    expect(seqs.map((seq) => bySeq.get(seq))).toEqual(
      Array.from({ length: 10 }, (_, index) => ['lib', String(index)]),
    )
    expect(bySeq.get(namedSeq)).toEqual(['named'])
    expect(cliSeqs.map((seq) => bySeq.get(seq))).toEqual([['cli-a'], ['cli-b']])
    await expect(dealer.send('x', { idempotencyKey: 'no spaces allowed' })).rejects.toThrow(
      TypeError,
    )
  }, 180_000)
})

describe('DealerSocket, ReqSocket and zmq-edge send --socket', () => {
  it('resolve each send with the seq its message was stored under', async () => {
    const channel = `router-lib-${Date.now()}`
    const bridge = await routerBridge(channel)
    const endpoint = `tcp://127.0.0.1:${bridge.port}`
    const dealer = new DealerSocket({ replyTimeoutMs: 20_000 })
    closers.push(() => void dealer.close({ linger: 0 }))
    dealer.connect(endpoint)
    // Many in flight at once: each promise gets its own message's seq.
    const dealt = await Promise.all(
      Array.from({ length: 100 }, (_, index) => dealer.send(['dealer', String(index)])),
    )
    const req = new ReqSocket({ replyTimeoutMs: 20_000 })
    closers.push(() => void req.close({ linger: 0 }))
    req.connect(endpoint)
    const requested = await Promise.all([req.send('one'), req.send(['two', '2'])])
    const stored = await storedBySeq(channel)
    expect(dealt.map((seq) => stored.get(seq))).toEqual(
      Array.from({ length: 100 }, (_, index) => ['dealer', String(index)]),
    )
    expect(requested.map((seq) => stored.get(seq))).toEqual([['one'], ['two', '2']])
    expect(() => dealer.trySend('x')).toThrow(/send\(\)/)
  }, 60_000)

  it('rejects with the bridge’s ERR, and with a timeout while nothing is stored', async () => {
    const bridge = await routerBridge(`router-lib-err-${Date.now()}`, await freePort())
    const req = new ReqSocket({ replyTimeoutMs: 500 })
    closers.push(() => void req.close({ linger: 0 }))
    req.connect(`tcp://127.0.0.1:${bridge.port}`)
    await expect(req.send('waits')).rejects.toThrow(/no reply within 500 ms/)

    // A libzmq ROUTER standing in for a bridge that answers ERR.
    const router = new zmq.Router({ linger: 0 })
    closers.push(() => router.close())
    const port = await freePort()
    await router.bind(`tcp://127.0.0.1:${port}`)
    void (async () => {
      for await (const [identity, id, delimiter] of router) {
        await router.send([identity as Buffer, id as Buffer, delimiter as Buffer, 'ERR REJECTED'])
      }
    })().catch(() => undefined)
    const dealer = new DealerSocket({ replyTimeoutMs: 5000 })
    closers.push(() => void dealer.close({ linger: 0 }))
    dealer.connect(`tcp://127.0.0.1:${port}`)
    const refused = await dealer.send('too big').catch((error: unknown) => error)
    expect(refused).toBeInstanceOf(ReplyError)
    expect((refused as ReplyError).code).toBe('REJECTED')
  }, 60_000)

  it('zmq-edge send --socket req prints the seq of each message', async () => {
    const channel = `router-cli-${Date.now()}`
    const bridge = await routerBridge(channel)
    for (const socket of ['req', 'dealer']) {
      const sent = runCli([
        'send',
        '--socket',
        socket,
        '--connect',
        `tcp://127.0.0.1:${bridge.port}`,
        '--separator',
        '|',
        '--progress-interval',
        '0',
        `${socket}|a`,
        `${socket}|b`,
        `${socket}|c`,
      ])
      children.push(sent.child)
      const code = await sent.code
      const stderr = sent.stderr()
      const stdout = sent.stdout()
      expect({ code, stderr }).toEqual({
        code: 0,
        stderr: expect.stringContaining('3 messages stored'),
      })
      const seqs = stdout.trim().split('\n').map(Number)
      const stored = await storedBySeq(channel)
      expect(seqs.map((seq) => stored.get(seq))).toEqual([
        [socket, 'a'],
        [socket, 'b'],
        [socket, 'c'],
      ])
    }
  }, 60_000)
})
