// Interop over real TCP: libzmq 4.3.5 PUSH sockets (the `zeromq` package) into our PULL socket
// with the NULL mechanism, and peers it must refuse.
import { connect, type Socket } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type InboundMessage, PullSocket } from '../../node-bridge/bridge/pull-socket'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'

let pull: PullSocket
let endpoint: string
let received: InboundMessage[]
let logs: ReturnType<typeof createMemoryLogger>
const zmqSockets: Array<{ close(): void }> = []

beforeEach(async () => {
  received = []
  logs = createMemoryLogger()
  pull = new PullSocket({
    host: '127.0.0.1',
    port: 0,
    createMechanism: () => new NullMechanism('PULL'),
    handshakeTimeoutMs: 2000,
    maxMessageSize: 16 * 1024 * 1024,
    logger: logs.logger,
    onMessage: (message) => received.push(message),
  })
  const address = await pull.listen()
  endpoint = `tcp://127.0.0.1:${address.port}`
})

afterEach(async () => {
  for (const socket of zmqSockets.splice(0)) socket.close()
  await pull.close()
})

function push(options: Partial<zmq.Push> = {}): zmq.Push {
  const socket = new zmq.Push({ linger: 0, ...options } as zmq.SocketOptions<zmq.Push>)
  zmqSockets.push(socket)
  socket.connect(endpoint)
  return socket
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

describe('a libzmq PUSH into the bridge (NULL)', () => {
  it('delivers multipart messages with empty frames, frame for frame', async () => {
    const socket = push()
    await socket.send(['a', '', 'b', ''])
    await socket.send([''])
    await waitFor(() => received.length === 2)
    expect(received[0]?.frames.map(text)).toEqual(['a', '', 'b', ''])
    expect(received[1]?.frames).toEqual([new Uint8Array(0)])
    expect(received[0]).toMatchObject({ mechanism: 'NULL' })
    expect(received[0]?.peerAddress).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(received[0]?.publicKey).toBeUndefined()
  })

  it('keeps every byte value 0-255, in one frame and as single-byte frames', async () => {
    const all = Uint8Array.from({ length: 256 }, (_, index) => index)
    const socket = push()
    await socket.send(all)
    await socket.send(Array.from(all, (value) => Uint8Array.of(value)))
    await waitFor(() => received.length === 2)
    expect(new Uint8Array(received[0]?.frames[0] ?? [])).toEqual(all)
    expect(received[1]?.frames.map((frame) => frame[0])).toEqual(Array.from(all))
    expect(received[1]?.frames.every((frame) => frame.length === 1)).toBe(true)
  })

  it('delivers a 1 MiB frame byte for byte', async () => {
    const big = new Uint8Array(1024 * 1024)
    for (let index = 0; index < big.length; index++) big[index] = (index * 31 + 7) & 0xff
    const socket = push()
    await socket.send(['head', big])
    await waitFor(() => received.length === 1)
    expect(received[0]?.frames[0]).toEqual(new TextEncoder().encode('head'))
    expect(Buffer.compare(received[0]?.frames[1] as Uint8Array, big)).toBe(0)
  })

  it('delivers 10,000 messages in order', async () => {
    const socket = push({ sendHighWaterMark: 100_000 })
    for (let index = 0; index < 10_000; index++) await socket.send(`message ${index}`)
    await waitFor(() => received.length === 10_000, { timeoutMs: 20_000 })
    expect(received.map((message) => text(message.frames[0] as Uint8Array))).toEqual(
      Array.from({ length: 10_000 }, (_, index) => `message ${index}`),
    )
  })

  it('fair-queues several clients at once and keeps each one in order', async () => {
    const clients = Array.from({ length: 5 }, () => push({ sendHighWaterMark: 10_000 }))
    await waitFor(
      () => logs.lines.filter((line) => line.msg === 'handshake succeeded').length === 5,
      { what: 'five handshakes' },
    )
    const padding = 'x'.repeat(1024)
    await Promise.all(
      clients.map(async (socket, client) => {
        for (let index = 0; index < 2000; index++) {
          await socket.send([`c${client}`, String(index), padding])
        }
      }),
    )
    await waitFor(() => received.length === 10_000, { timeoutMs: 20_000 })
    for (let client = 0; client < 5; client++) {
      const sequence = received
        .filter((message) => text(message.frames[0] as Uint8Array) === `c${client}`)
        .map((message) => Number(text(message.frames[1] as Uint8Array)))
      expect(sequence).toEqual(Array.from({ length: 2000 }, (_, index) => index))
    }
    // Served in turn, not one client after another: the first half holds several clients.
    const firstHalf = new Set(
      received.slice(0, 5000).map((message) => text(message.frames[0] as Uint8Array)),
    )
    expect(firstHalf.size).toBeGreaterThan(1)
  })
})

describe('peers a PULL socket must refuse', () => {
  it('refuses a DEALER with INVALID_SOCKET_TYPE and delivers nothing', async () => {
    const dealer = new zmq.Dealer({ linger: 0 })
    zmqSockets.push(dealer)
    dealer.connect(endpoint)
    await dealer.send('should not arrive').catch(() => undefined)
    await waitFor(() => logs.lines.find((line) => line.code === 'INVALID_SOCKET_TYPE'))
    expect(received).toHaveLength(0)
  })

  it('refuses a PUB with INVALID_SOCKET_TYPE', async () => {
    const pub = new zmq.Publisher({ linger: 0 })
    zmqSockets.push(pub)
    pub.connect(endpoint)
    await waitFor(() => logs.lines.find((line) => line.code === 'INVALID_SOCKET_TYPE'))
    await pub.send('nope')
    expect(received).toHaveLength(0)
  })

  it('closes a CURVE client on a NULL listener with MECHANISM_MISMATCH', async () => {
    const server = zmq.curveKeyPair()
    const client = zmq.curveKeyPair()
    const socket = push({
      curveServerKey: server.publicKey,
      curvePublicKey: client.publicKey,
      curveSecretKey: client.secretKey,
    })
    void socket.send('encrypted').catch(() => undefined)
    await waitFor(() => logs.lines.find((line) => line.code === 'MECHANISM_MISMATCH'))
    expect(received).toHaveLength(0)
  })

  it('sends an ERROR command to a raw DEALER before closing', async () => {
    const port = Number(endpoint.split(':').pop())
    const reply = await rawExchange(port, [
      // greeting: signature, version 3.1, NULL, as-server 0, filler
      Uint8Array.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1]),
      Uint8Array.from([
        ...new TextEncoder().encode('NULL'),
        ...new Uint8Array(16),
        0,
        ...new Uint8Array(31),
      ]),
      // READY with Socket-Type DEALER (RFC 23 worked example, without Identity)
      Uint8Array.from([
        0x04,
        0x1c,
        0x05,
        ...new TextEncoder().encode('READY'),
        0x0b,
        ...new TextEncoder().encode('Socket-Type'),
        0,
        0,
        0,
        6,
        ...new TextEncoder().encode('DEALER'),
      ]),
    ])
    expect(reply.subarray(0, 11)).toEqual(Uint8Array.from([0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3]))
    const afterGreeting = reply.subarray(64)
    expect(afterGreeting[0]).toBe(0x04) // a command frame…
    expect(text(afterGreeting.subarray(2, 8))).toBe('\x05ERROR') // …that is ERROR
    expect(text(afterGreeting.subarray(9))).toBe('Invalid socket type')
  })

  it('closes a ZMTP 2.0 or non-ZMTP peer, such as an HTTP request, and delivers nothing', async () => {
    const port = Number(endpoint.split(':').pop())
    await rawExchange(port, [new TextEncoder().encode('GET / HTTP/1.1\r\nHost: x\r\n\r\n')])
    await waitFor(() => logs.lines.find((line) => line.code === 'UNSUPPORTED_VERSION'))
    expect(received).toHaveLength(0)
  })

  it('closes a peer whose mechanism does not match', async () => {
    const port = Number(endpoint.split(':').pop())
    await rawExchange(port, [
      Uint8Array.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1]),
      Uint8Array.from([
        ...new TextEncoder().encode('CURVE'),
        ...new Uint8Array(15),
        0,
        ...new Uint8Array(31),
      ]),
    ])
    await waitFor(() => logs.lines.find((line) => line.code === 'MECHANISM_MISMATCH'))
  })

  it('keeps serving other clients while one sends garbage', async () => {
    const port = Number(endpoint.split(':').pop())
    const socket = push()
    const garbage = rawExchange(port, [
      Uint8Array.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 1]),
      new Uint8Array(52),
      Uint8Array.from([0xff, 0xff, 0xff]),
    ])
    await socket.send('still flowing')
    await garbage
    await waitFor(() => received.length === 1)
    expect(text(received[0]?.frames[0] as Uint8Array)).toBe('still flowing')
  })
})

/** Writes the chunks to a raw TCP connection and collects everything until the server closes. */
function rawExchange(port: number, chunks: Uint8Array[]): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = []
    const socket: Socket = connect(port, '127.0.0.1', () => {
      for (const chunk of chunks) socket.write(chunk)
    })
    socket.on('data', (data) => parts.push(data))
    socket.on('error', reject)
    socket.on('close', () => resolve(new Uint8Array(Buffer.concat(parts))))
    setTimeout(() => socket.destroy(), 5000).unref()
  })
}
