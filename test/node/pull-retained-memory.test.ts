// Messages are views of the TCP reads they arrived in (no copy per message), and the relay keeps
// them until the Worker acknowledges them: a read that messages use only a little of must not
// stay alive for their sake, while reads that messages fill stay shared.
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { encodeReady } from '../../node-bridge/zmtp/codec/command'
import { encodeFrame, encodeFrameHeader } from '../../node-bridge/zmtp/codec/frame'
import { encodeGreeting } from '../../node-bridge/zmtp/codec/greeting'
import { listenPull, type PullHarness } from '../support/pull-harness'
import { waitFor } from '../support/wait'

let harness: PullHarness | undefined
let client: Socket | undefined

afterEach(async () => {
  client?.destroy()
  await harness?.pull.close()
})

/** A NULL PUSH over a raw socket, ready to send frames once the server's READY is in. */
async function rawPush(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1')
  let received = 0
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length
  })
  socket.write(encodeGreeting({ mechanism: 'NULL', asServer: false }))
  socket.write(encodeReady([['Socket-Type', 'PUSH']]))
  // Greeting (64) + the READY command frame.
  await waitFor(() => received > 64 + 20, { what: "the server's READY" })
  return socket
}

/** Writes `bytes` in one call, which loopback TCP delivers as one read at these sizes. */
function writeOnce(socket: Socket, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.write(bytes, (error) => (error ? reject(error) : resolve())),
  )
}

describe('frames and the reads they came in', () => {
  it('copies a small message out of a read that is mostly the start of a large frame', async () => {
    harness = await listenPull()
    client = await rawPush(harness.port)
    const small = encodeFrame(new TextEncoder().encode('tiny'))
    // Then a 200 KiB frame of which 40 KiB arrive now: the decoder copies that part elsewhere.
    const partial = new Uint8Array(40 * 1024).fill(7)
    const write = new Uint8Array(small.length + 9 + partial.length)
    write.set(small)
    write.set(encodeFrameHeader(200 * 1024), small.length)
    write.set(partial, small.length + 9)
    await writeOnce(client, write)
    await waitFor(() => harness?.received.length === 1, { what: 'the small message' })
    const [frame] = harness.received[0]?.frames ?? []
    expect(new TextDecoder().decode(frame)).toBe('tiny')
    // Its own 4 octets, not the 40 KiB read.
    expect(frame?.buffer.byteLength).toBe(4)
  })

  it('leaves messages that fill their read as views of it (no copy)', async () => {
    harness = await listenPull()
    client = await rawPush(harness.port)
    const body = new Uint8Array(100).fill(1)
    const frames = Array.from({ length: 300 }, () => encodeFrame(body))
    const write = new Uint8Array(frames.reduce((size, frame) => size + frame.length, 0))
    let offset = 0
    for (const frame of frames) {
      write.set(frame, offset)
      offset += frame.length
    }
    await writeOnce(client, write)
    await waitFor(() => harness?.received.length === 300, { what: '300 messages' })
    const buffers = new Set(harness.received.map((message) => message.frames[0]?.buffer))
    // Shared reads: far fewer buffers than messages, each larger than one message.
    expect(buffers.size).toBeLessThan(30)
    for (const buffer of buffers) expect(buffer?.byteLength).toBeGreaterThan(100)
  })
})
