// Churn over real TCP: while a libzmq PUSH (the `zeromq` package) streams 10,000 messages into a
// NULL PullSocket, 2,000 raw connections misbehave around it (vanish, garbage, half handshakes,
// malformed frames, half messages). The good messages all arrive, in order, and nothing else;
// every bad connection ends; the heap comes back to where it was.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { Writable } from 'node:stream'
import v8 from 'node:v8'
import vm from 'node:vm'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { PullSocket } from '../../node-bridge/bridge/pull-socket'
import { ZmtpErrorCode } from '../../node-bridge/zmtp/errors'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { concatBytes } from '../support/curve-client'
import { commandBody, frameBytes, greetingBytes, metadataBytes } from '../support/fuzz-streams'
import { waitFor } from '../support/wait'

const GOOD_MESSAGES = 10_000
const BAD_CONNECTIONS = 2_000
const HANDSHAKE_TIMEOUT_MS = 500

/**
 * Raw connections open at once. Each costs two descriptors (client and server side) in this one
 * process; 100 at a time keeps the 2-core machine responsive and far below `ulimit -n` (checked).
 */
const CONCURRENCY = Math.min(100, Math.floor((openFileLimit() - 200) / 2))

function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((entry) => entry.startsWith('Max open files'))
    const soft = Number(line?.split(/\s+/)[3])
    return Number.isFinite(soft) ? soft : 1024
  } catch {
    return 1024
  }
}

/** A real gc(): exposed by the runtime, or switched on through V8 (vitest does not expose it). */
function garbageCollector(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc
  if (exposed) return exposed
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

const ascii = (text: string) => new TextEncoder().encode(text)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
const GREETING = greetingBytes(
  { minor: 1, padding: new Uint8Array(8), filler: new Uint8Array(31) },
  'NULL',
)
const READY = frameBytes(commandBody('READY', metadataBytes([['Socket-Type', ascii('PUSH')]])), {
  command: true,
})

/** What a bad connection does; `stall` ones stay open until the handshake timeout reaps them. */
const BEHAVIOURS = {
  /** Connect and vanish at once: FIN, or RST before or after the accept. */
  vanish: { stall: false, bytes: () => null },
  /** Random octets, or random octets after a valid signature. */
  garbage: {
    stall: false,
    bytes: () =>
      Math.random() < 0.5
        ? new Uint8Array(randomBytes(1 + Math.floor(Math.random() * 200)))
        : concatBytes(GREETING.subarray(0, 11), randomBytes(Math.floor(Math.random() * 200))),
  },
  'half greeting, vanish': { stall: false, bytes: () => GREETING.subarray(0, 30) },
  'half greeting, stall': { stall: true, bytes: () => GREETING.subarray(0, 30) },
  'greeting and half a READY, vanish': {
    stall: false,
    bytes: () => concatBytes(GREETING, READY.subarray(0, 12)),
  },
  'greeting and half a READY, stall': {
    stall: true,
    bytes: () => concatBytes(GREETING, READY.subarray(0, 12)),
  },
  /** Reserved flag bits set after a good handshake: MALFORMED_FRAME. */
  'handshake, malformed frame': {
    stall: false,
    bytes: () => concatBytes(GREETING, READY, Uint8Array.of(0x08, 0x00)),
  },
  /** Half of a 100-octet frame, then gone: nothing may be delivered. */
  'handshake, half a message, vanish': {
    stall: false,
    bytes: () => concatBytes(GREETING, READY, Uint8Array.of(0x00, 100), new Uint8Array(50)),
  },
  /** A whole frame with MORE, then gone: a multipart message is all or nothing. */
  'handshake, first part of a multipart, vanish': {
    stall: false,
    bytes: () => concatBytes(GREETING, READY, frameBytes(ascii('not whole'), { more: true })),
  },
} as const
type Behaviour = keyof typeof BEHAVIOURS
const BEHAVIOUR_NAMES = Object.keys(BEHAVIOURS) as Behaviour[]

/** Runs one bad connection; resolves when its socket has closed. */
function misbehave(port: number, behaviour: Behaviour, index: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const { stall, bytes } = BEHAVIOURS[behaviour]
    // A safety net only: every connection should end long before.
    const timer = setTimeout(() => socket.destroy(), 15_000)
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      resolve()
    })
    // Read (and drop) what the bridge sends, so its FIN is seen.
    socket.resume()
    if (behaviour === 'vanish') {
      if (index % 3 === 0) socket.destroy()
      else socket.once('connect', () => (index % 3 === 1 ? socket.resetAndDestroy() : socket.end()))
      return
    }
    socket.once('connect', () => {
      const payload = bytes()
      if (payload) socket.write(payload)
      // `stall` and the connections the bridge must close itself wait for it; the others leave.
      if (!stall && behaviour.includes('vanish')) socket.end()
    })
  })
}

/** Runs `count` tasks, at most `limit` at a time; `done` counts the finished ones. */
async function pool(count: number, limit: number, task: (index: number) => Promise<void>) {
  const progress = { done: 0 }
  let next = 0
  const worker = async () => {
    while (next < count) {
      const index = next++
      await task(index)
      progress.done++
    }
  }
  return { progress, run: Promise.all(Array.from({ length: limit }, worker)) }
}

/** A pino logger that keeps only counts: how each connection the bridge closed ended, and who. */
function countingLogger() {
  const codes = new Map<string, number>()
  const peers = new Set<string>()
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) {
        if (!line.trim()) continue
        const entry = JSON.parse(line) as { code?: string; peer?: string }
        if (entry.code) codes.set(entry.code, (codes.get(entry.code) ?? 0) + 1)
        if (entry.peer) peers.add(entry.peer)
      }
      callback()
    },
  })
  return { logger: pino({ level: 'warn' }, stream), codes, peers }
}

describe('churn: thousands of bad connections around one good libzmq PUSH', () => {
  const gc = garbageCollector()
  const logs = countingLogger()
  let pull: PullSocket
  let port: number
  /** The good messages are checked as they come, so the collector itself holds nothing. */
  const received = { count: 0, wrong: [] as string[], peers: new Set<string>() }

  beforeAll(async () => {
    pull = new PullSocket({
      host: '127.0.0.1',
      port: 0,
      createMechanism: () => new NullMechanism('PULL'),
      handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
      maxMessageSize: 1024 * 1024,
      // Every connection here comes from 127.0.0.1, including those the bridge closed, which it
      // no longer reads and lets go a second later: no per-IP limit in the way of the churn.
      maxConnectionsPerIp: 100_000,
      logger: logs.logger,
      onMessage: (message) => {
        const body = text(message.frames[0] as Uint8Array)
        const expected = `good ${received.count}`
        if (message.frames.length !== 1 || body !== expected) {
          received.wrong.push(`${message.peerAddress} ${JSON.stringify(body)}`)
        }
        received.peers.add(message.peerAddress)
        received.count++
      },
    })
    port = (await pull.listen()).port
  })

  afterAll(async () => {
    await pull?.close()
  })

  it('delivers every good message in order, nothing else, ends every bad connection and frees their memory', async () => {
    const push = new zmq.Push({ linger: 0, sendHighWaterMark: GOOD_MESSAGES * 2 })
    push.connect(`tcp://127.0.0.1:${port}`)
    try {
      await waitFor(() => pull.connectionCount === 1, { what: 'the good client' })
      // Warm up every path once (JIT, pino children, socket handles), then take the baseline.
      const warmUp = await pool(BEHAVIOUR_NAMES.length * 4, 20, (index) =>
        misbehave(port, BEHAVIOUR_NAMES[index % BEHAVIOUR_NAMES.length] as Behaviour, index),
      )
      await warmUp.run
      await waitFor(() => pull.connectionCount === 1, { timeoutMs: 10_000, what: 'warm-up' })
      gc()
      const baseline = process.memoryUsage()

      const started = performance.now()
      const stalled = { count: 0 }
      const churn = await pool(BAD_CONNECTIONS, CONCURRENCY, (index) => {
        const behaviour = BEHAVIOUR_NAMES[index % BEHAVIOUR_NAMES.length] as Behaviour
        if (BEHAVIOURS[behaviour].stall) stalled.count++
        return misbehave(port, behaviour, index)
      })
      // The good client sends in 100 slices, each once the churn has moved on, so the two overlap.
      const slice = GOOD_MESSAGES / 100
      for (let part = 0; part < 100; part++) {
        await waitFor(() => churn.progress.done >= (part * BAD_CONNECTIONS) / 100, {
          timeoutMs: 20_000,
          intervalMs: 2,
          what: `churn progress before slice ${part}`,
        })
        for (let index = part * slice; index < (part + 1) * slice; index++) {
          await push.send(`good ${index}`)
        }
      }
      await churn.run
      const churnMs = performance.now() - started

      await waitFor(() => received.count >= GOOD_MESSAGES, {
        timeoutMs: 20_000,
        what: 'the good messages',
      })
      await waitFor(() => pull.connectionCount === 1, {
        timeoutMs: 10_000,
        what: 'every bad connection to end',
      })
      // Nothing else turns up late.
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(received.wrong).toEqual([])
      expect(received.count).toBe(GOOD_MESSAGES)
      expect(received.peers.size).toBe(1)

      // How the bridge closed the connections it closed itself: known codes only; every stalled
      // half-handshake reaped by the timeout; the good client never among them.
      // Handshake failures are counted by the socket (its log samples them), later closes logged.
      const failed = (pull as PullSocket).failed
      const known = new Set<string>(Object.values(ZmtpErrorCode))
      for (const code of [...logs.codes.keys(), ...failed.keys()]) {
        expect(known.has(code), code).toBe(true)
      }
      expect(failed.get(ZmtpErrorCode.HANDSHAKE_TIMEOUT) ?? 0).toBeGreaterThanOrEqual(stalled.count)
      expect(
        (logs.codes.get(ZmtpErrorCode.MALFORMED_FRAME) ?? 0) +
          (failed.get(ZmtpErrorCode.MALFORMED_FRAME) ?? 0),
      ).toBeGreaterThanOrEqual(BAD_CONNECTIONS / BEHAVIOUR_NAMES.length - 1)
      const [goodPeer] = received.peers
      expect(logs.peers.has(goodPeer as string)).toBe(false)

      // Memory: the bridge's closures, decoders and sockets of 2,000 connections must be gone.
      // Let the 1 s destroy timers of closed sockets run out, then collect.
      await new Promise((resolve) => setTimeout(resolve, 1200))
      gc()
      gc()
      const after = process.memoryUsage()
      const grownMiB = (after.heapUsed - baseline.heapUsed) / 2 ** 20
      console.log(
        `churn: ${BAD_CONNECTIONS} bad connections (${CONCURRENCY} at a time, ${stalled.count} stalled) ` +
          `in ${Math.round(churnMs)} ms around ${GOOD_MESSAGES} good messages; ` +
          `closes by code ${JSON.stringify(Object.fromEntries(logs.codes))}, failed handshakes ${JSON.stringify(Object.fromEntries((pull as PullSocket).failed))}; ` +
          `heapUsed ${(baseline.heapUsed / 2 ** 20).toFixed(1)} → ${(after.heapUsed / 2 ** 20).toFixed(1)} MiB, ` +
          `rss ${(baseline.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MiB`,
      )
      // Measured here: an open half-handshake connection holds ~4.7 KiB of the bridge's heap
      // (socket, ZmtpConnection, decoder, timers, logger child), so keeping even a fifth of the
      // 2,000 would exceed 2 MiB; a run without leaks grows by ~0.5 MiB (V8's maps and caches).
      expect(grownMiB).toBeLessThan(2)
    } finally {
      push.close()
    }
    await waitFor(() => pull.connectionCount === 0, { what: 'the good client to go' })
  })
})
