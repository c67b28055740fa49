// A PullSocket on a free loopback port that collects what it receives and logs in memory, and
// raw TCP peers for it.
import { connect, type Socket } from 'node:net'
import { afterEach } from 'vitest'
import {
  type InboundMessage,
  PullSocket,
  type PullSocketOptions,
} from '../../node-bridge/bridge/pull-socket'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { createMemoryLogger, type MemoryLogger } from './memory-logger'

export interface PullHarness {
  pull: PullSocket
  port: number
  received: InboundMessage[]
  logs: MemoryLogger
  /** Log lines with this `msg`, counted. */
  count(msg: string): number
}

/** Listens with NULL by default; `options` override anything. Close it with `pull.close()`. */
export async function listenPull(options: Partial<PullSocketOptions> = {}): Promise<PullHarness> {
  const received: InboundMessage[] = []
  const logs = createMemoryLogger()
  const pull = new PullSocket({
    host: '127.0.0.1',
    port: 0,
    createMechanism: () => new NullMechanism('PULL'),
    handshakeTimeoutMs: 5000,
    maxMessageSize: 1024 * 1024,
    logger: logs.logger,
    onMessage: (message) => received.push(message),
    ...options,
  })
  const { port } = await pull.listen()
  const count = (msg: string) => logs.lines.filter((line) => line.msg === msg).length
  return { pull, port, received, logs, count }
}

/**
 * For a test file: `listen` starts a harness, which is closed after each test with everything
 * pushed onto `closers` (peers, sockets) before it.
 */
export function pullPerTest(): {
  listen(options?: Partial<PullSocketOptions>): Promise<PullHarness>
  closers: Array<() => void>
} {
  let pull: PullSocket | undefined
  const closers: Array<() => void> = []
  afterEach(async () => {
    for (const close of closers.splice(0)) close()
    await pull?.close()
    pull = undefined
  })
  return {
    closers,
    listen: async (options = {}) => {
      const harness = await listenPull(options)
      pull = harness.pull
      return harness
    },
  }
}

/**
 * A raw TCP connection to `port`, added to `sockets` (to destroy after the test); `read` takes
 * in what the bridge sends, so that its close is seen.
 */
export function rawConnection(
  port: number,
  sockets: { push(socket: Socket): unknown },
  { read = false } = {},
): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve({ socket, closed }))
    const closed = new Promise<void>((done) => socket.once('close', () => done()))
    socket.on('error', () => undefined)
    socket.once('error', reject)
    if (read) socket.resume()
    sockets.push(socket)
  })
}
