// PullSocket over real TCP with libzmq peers (the `zeromq` package): failures of our own code
// reported as ours, and a message limit lowered while connections are open.
import { describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { pullPerTest } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const { listen, closers } = pullPerTest()

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

describe('PullSocket.setMaxMessageSize', () => {
  it('lowers the limit of open and new connections; a larger message closes its connection with FRAME_TOO_LARGE', async () => {
    const { port, received, logs, pull: server } = await listen({ maxMessageSize: 4096 })
    const first = push(port)
    await first.send(Buffer.alloc(1000, 1))
    await waitFor(() => received.length === 1)

    server.setMaxMessageSize(500)
    expect(server.maxMessageSize).toBe(500)
    await first.send(Buffer.alloc(1000, 2)) // over the new limit on an open connection
    await waitFor(() => logs.lines.find((line) => line.code === 'FRAME_TOO_LARGE'))
    // libzmq reconnects after the close; what it sends next within the limit gets through.
    await first.send(Buffer.alloc(400, 3))
    await waitFor(() => received.length === 2)
    expect(received[1]?.frames[0]?.length).toBe(400)

    // A connection opened after the change has the lower limit from the start.
    const second = push(port)
    await second.send(Buffer.alloc(501, 4))
    await waitFor(() => logs.lines.filter((line) => line.code === 'FRAME_TOO_LARGE').length === 2)
    expect(received.map((message) => message.frames[0]?.[0])).toEqual([1, 3])
  })

  it('never raises the limit above the configured one, and refuses a value that is no size', async () => {
    const { pull: server } = await listen({ maxMessageSize: 4096 })
    server.setMaxMessageSize(1 << 20)
    expect(server.maxMessageSize).toBe(4096)
    server.setMaxMessageSize(100)
    server.setMaxMessageSize(2048) // the Worker's limit went up again: back up to it
    expect(server.maxMessageSize).toBe(2048)
    expect(() => server.setMaxMessageSize(0)).toThrow(RangeError)
    expect(() => server.setMaxMessageSize(1.5)).toThrow(RangeError)
  })
})

describe('a paused socket (the relay is full)', () => {
  it('still completes handshakes (not blamed on the peer), and reads ready peers once resumed', async () => {
    const { port, pull: socket, received, logs } = await listen({ handshakeTimeoutMs: 1000 })
    socket.setPaused(true)
    const sender = push(port)
    await sender.send('while paused')
    await waitFor(() => logs.lines.find((line) => line.msg === 'handshake succeeded'), {
      what: 'the handshake, though reading is paused',
    })
    // Past the handshake timeout: nothing failed.
    await new Promise((resolve) => setTimeout(resolve, 1200))
    expect(socket.failed.size).toBe(0)
    socket.setPaused(false)
    await waitFor(() => received.length === 1, { what: 'the message after resuming' })
  })
})
