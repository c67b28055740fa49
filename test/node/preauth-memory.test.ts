// Memory held for peers that have not authenticated is bounded by design: a handshake frame may
// be at most MAX_HANDSHAKE_FRAME_SIZE octets (refused from its header), and what connections
// not yet READY hold together is counted against one PreauthBudget shared by every listener.
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { PreauthBudget } from '../../node-bridge/bridge/preauth-budget'
import type { PullSocket } from '../../node-bridge/bridge/pull-socket'
import { encodeReady } from '../../node-bridge/zmtp/codec/command'
import { encodeGreeting } from '../../node-bridge/zmtp/codec/greeting'
import { concatBytes } from '../support/curve-client'
import { listenPull, rawConnection as rawPeer } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const pulls: PullSocket[] = []
const sockets: Socket[] = []

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  for (const pull of pulls.splice(0)) await pull.close()
})

const GREETING = encodeGreeting({ mechanism: 'NULL', asServer: false })

/** NULL READY with Socket-Type PUSH. */
const READY_PUSH = encodeReady([['Socket-Type', 'PUSH']])

/** A long message frame header (flags 0x02) announcing `size` octets. */
function longMessageHeader(size: number): Uint8Array {
  const header = new Uint8Array(9)
  header[0] = 0x02
  new DataView(header.buffer).setBigUint64(1, BigInt(size))
  return header
}

/** Connections closed (after READY) for the partial-message budget, from the log. */
function closedByBudget(harness: { logs: { lines: Array<Record<string, unknown>> } }): number {
  return harness.logs.lines.filter((line) => line.code === 'MESSAGE_BUDGET_EXCEEDED').length
}

/** A long command frame header (flags 0x06) announcing `size` octets. */
function longCommandHeader(size: number): Uint8Array {
  const header = new Uint8Array(9)
  header[0] = 0x06
  new DataView(header.buffer).setBigUint64(1, BigInt(size))
  return header
}

function rawConnection(port: number) {
  return rawPeer(port, sockets, { read: true })
}

function write(socket: Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve) => socket.write(bytes, () => resolve()))
}

describe('memory before authentication', () => {
  it('holds almost nothing for 20 peers that announce 16 MiB commands and send 2 MiB each', async () => {
    const harness = await listenPull({ maxMessageSize: 16 * 1024 * 1024 })
    pulls.push(harness.pull)
    const feed = new Uint8Array(2 * 1024 * 1024).fill(0x41)
    // ArrayBuffer memory, where frame bodies live: the test's own clients share one feed buffer
    // (allocated above), so what grows is the bridge's (RSS would count the clients' buffers).
    const before = process.memoryUsage().arrayBuffers
    const peers = await Promise.all(Array.from({ length: 20 }, () => rawConnection(harness.port)))
    let peak = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers - before)
    }, 5)
    try {
      await Promise.all(
        peers.map(async ({ socket }) => {
          await write(socket, GREETING)
          await write(socket, longCommandHeader(16 * 1024 * 1024))
          // Feed in slices; the bridge hangs up, so later writes may fail, which is the point.
          for (let offset = 0; offset < feed.length && !socket.destroyed; offset += 256 * 1024) {
            await write(socket, feed.subarray(offset, offset + 256 * 1024))
          }
        }),
      )
      await Promise.all(peers.map(({ closed }) => closed))
    } finally {
      clearInterval(sampler)
    }
    // Buffering what arrived would hold 20 × 2 MiB = 40 MiB; refused from the header, only the
    // reads in flight remain (64 KiB each).
    console.log(
      `20 peers announcing 16 MiB: buffers grew by at most ${(peak / 2 ** 20).toFixed(1)} MiB`,
    )
    expect(peak).toBeLessThan(8 * 1024 * 1024)
    expect(harness.pull.failed.get('FRAME_TOO_LARGE')).toBe(20)
  })

  it('bounds what ready connections hold of messages not yet whole (NULL is ready at once)', async () => {
    const partialMessageBudget = new PreauthBudget(3 * 1024 * 1024)
    const harness = await listenPull({ maxMessageSize: 16 * 1024 * 1024, partialMessageBudget })
    pulls.push(harness.pull)
    // Each peer completes a NULL handshake, then feeds 1 MiB of a 16 MiB message and stops.
    const started = Array.from({ length: 5 }, async () => {
      const peer = await rawConnection(harness.port)
      await write(peer.socket, concatBytes(GREETING, READY_PUSH))
      await write(peer.socket, longMessageHeader(16 * 1024 * 1024))
      await write(peer.socket, new Uint8Array(1024 * 1024))
      return peer
    })
    await Promise.all(started)
    await waitFor(() => closedByBudget(harness) > 0, {
      what: 'a connection closed for the budget',
    })
    expect(closedByBudget(harness)).toBeGreaterThanOrEqual(1)
    expect(partialMessageBudget.peak).toBeLessThanOrEqual(partialMessageBudget.limit)
    for (const socket of sockets) socket.destroy()
    await waitFor(() => harness.pull.connectionCount === 0)
    expect(partialMessageBudget.used).toBe(0)
  })

  it('closes connections that would take the budget past its limit with PREAUTH_BUDGET_EXCEEDED', async () => {
    const budget = new PreauthBudget(32 * 1024)
    const harness = await listenPull({ preauthBudget: budget })
    pulls.push(harness.pull)
    const refused = () => harness.pull.failed.get('PREAUTH_BUDGET_EXCEEDED') ?? 0
    const peers = []
    // Each announces an 8,000-octet command (within the handshake limit) and sends 100 octets:
    // the decoder holds a buffer of the whole body, about 8 KiB, so four fit in 32 KiB.
    for (let index = 0; index < 10; index++) {
      const peer = await rawConnection(harness.port)
      peers.push(peer)
      await write(peer.socket, GREETING)
      await write(peer.socket, longCommandHeader(8000))
      await write(peer.socket, new Uint8Array(100))
      const held = Math.min(index + 1, 4)
      await waitFor(() => budget.used >= held * 8000 && refused() === index + 1 - held, {
        what: `connection ${index} held or refused`,
      })
    }
    expect(harness.pull.connectionCount).toBe(4)
    expect(budget.used).toBeGreaterThan(4 * 8000)
    expect(budget.peak).toBeLessThanOrEqual(budget.limit)
    for (const { socket } of peers) socket.destroy()
    await waitFor(() => harness.pull.connectionCount === 0)
    expect(budget.used).toBe(0)
  })

  it('shares one budget between listeners', async () => {
    const budget = new PreauthBudget(16 * 1024)
    const first = await listenPull({ preauthBudget: budget })
    const second = await listenPull({ preauthBudget: budget })
    pulls.push(first.pull, second.pull)
    for (const port of [first.port, first.port]) {
      const { socket } = await rawConnection(port)
      await write(socket, GREETING)
      await write(socket, longCommandHeader(8000))
      await write(socket, new Uint8Array(10))
    }
    await waitFor(() => budget.used >= 16_000, { what: 'the first listener to fill the budget' })
    const { socket, closed } = await rawConnection(second.port)
    await write(socket, GREETING)
    await write(socket, longCommandHeader(8000))
    await write(socket, new Uint8Array(10))
    await closed
    expect(second.pull.failed.get('PREAUTH_BUDGET_EXCEEDED')).toBe(1)
  })

  it('counts the greeting buffer of a connection until its greeting is read', async () => {
    const budget = new PreauthBudget(1024)
    const harness = await listenPull({ preauthBudget: budget })
    pulls.push(harness.pull)
    await rawConnection(harness.port)
    await waitFor(() => budget.used === 64, { what: 'the greeting buffer counted' })
    const { socket } = await rawConnection(harness.port)
    await waitFor(() => budget.used === 128)
    await write(socket, GREETING)
    await waitFor(() => budget.used === 64, { what: 'the read greeting released' })
  })
})
