// PullSocket over real TCP with libzmq peers (the `zeromq` package): failures of our own code
// reported as ours, and a message limit lowered while connections are open.
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import type { PullSocket, PullSocketOptions } from '../../node-bridge/pull-socket'
import { listenPull } from '../support/pull-harness'
import { waitFor } from '../support/wait'

let pull: PullSocket | undefined
const closers: Array<() => void> = []

afterEach(async () => {
  for (const close of closers.splice(0)) close()
  await pull?.close()
  pull = undefined
})

async function listen(options: Partial<PullSocketOptions> = {}) {
  const harness = await listenPull(options)
  pull = harness.pull
  return harness
}

function push(port: number): zmq.Push {
  const socket = new zmq.Push({ linger: 0 })
  closers.push(() => socket.close())
  socket.connect(`tcp://127.0.0.1:${port}`)
  return socket
}

describe('a handler of ours that throws', () => {
  it('closes the connection with INTERNAL_ERROR, logged at error level with the stack', async () => {
    function relayThatThrows(): never {
      throw new Error('the relay is broken')
    }
    const { port, logs } = await listen({ onMessage: () => relayThatThrows() })
    await push(port).send('hello')
    const line = await waitFor(() => logs.lines.find((entry) => entry.code === 'INTERNAL_ERROR'))
    expect(line.level).toBe(50) // pino's error
    const err = line.err as { stack?: string; message?: string }
    expect(err.message).toBe('the relay is broken')
    expect(err.stack).toContain('relayThatThrows')
    expect(logs.lines.some((entry) => entry.code === 'MALFORMED_FRAME')).toBe(false)
  })
})
