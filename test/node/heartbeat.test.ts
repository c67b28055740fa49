// ZMTP 3.1 heartbeats (RFC 37) with real libzmq peers and raw sockets: we answer PINGs, honour
// the peer's TTL, and with --heartbeat-ivl send our own PINGs to drop half-open connections.
import { connect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { z85Decode } from '../../shared/z85'
import { pullPerTest } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const ascii = (text: string) => new TextEncoder().encode(text)
/** Greeting 3.1 NULL, then READY with Socket-Type PUSH. */
const NULL_HANDSHAKE = Uint8Array.from([
  0xff,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  1,
  0x7f,
  3,
  1,
  ...ascii('NULL'),
  ...new Uint8Array(16),
  0,
  ...new Uint8Array(31),
  0x04,
  0x1a,
  0x05,
  ...ascii('READY'),
  0x0b,
  ...ascii('Socket-Type'),
  0,
  0,
  0,
  4,
  ...ascii('PUSH'),
])

/** The same handshake from a ZMTP 3.0 peer (libzmq 4.1, NetMQ): greeting minor 0. */
const NULL_HANDSHAKE_30 = NULL_HANDSHAKE.slice()
NULL_HANDSHAKE_30[11] = 0
/** RFC 15: a ZMTP 2.0 PUSH's greeting (revision 1, socket type 8), then an empty identity. */
const ZMTP2_HANDSHAKE = Uint8Array.of(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 8, 0x00, 0x00)
const PING = Buffer.from('PING')

const { listen, closers } = pullPerTest()

function raw(
  port: number,
  options: { allowHalfOpen?: boolean } = {},
): Promise<{ socket: Socket; data: Buffer[]; closed: Promise<void> }> {
  return new Promise((resolve) => {
    const data: Buffer[] = []
    const socket = connect({ port, host: '127.0.0.1', ...options }, () =>
      resolve({ socket, data, closed }),
    )
    const closed = new Promise<void>((done) => socket.once('close', () => done()))
    socket.on('data', (chunk) => data.push(chunk))
    socket.on('error', () => undefined)
    closers.push(() => socket.destroy())
  })
}

describe('heartbeats', () => {
  it('keeps a libzmq PUSH with heartbeats (200 ms, timeout 600 ms) connected for 10 s, ours on too', async () => {
    const { port, received, count } = await listen({ heartbeatIvlMs: 200, heartbeatTimeoutMs: 600 })
    const push = new zmq.Push({
      linger: 0,
      heartbeatInterval: 200,
      heartbeatTimeout: 600,
      heartbeatTimeToLive: 2000,
    })
    closers.push(() => push.close())
    push.connect(`tcp://127.0.0.1:${port}`)
    // Mostly idle: one message a second, so only heartbeats keep the link alive in between.
    for (let index = 0; index < 10; index++) {
      await push.send(String(index))
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
    await waitFor(() => received.length === 10)
    expect(received.map((message) => new TextDecoder().decode(message.frames[0]))).toEqual(
      Array.from({ length: 10 }, (_, index) => String(index)),
    )
    expect(count('connection accepted')).toBe(1)
    expect(count('connection closed')).toBe(0)
  }, 20_000)

  it('drops a peer that completed the handshake and then went silent', async () => {
    const { port, logs } = await listen({ heartbeatIvlMs: 100, heartbeatTimeoutMs: 200 })
    const peer = await raw(port)
    peer.socket.write(NULL_HANDSHAKE)
    await peer.closed
    expect(logs.lines.find((line) => line.code === 'HEARTBEAT_TIMEOUT')).toBeDefined()
    // It was sent a PING first: `04 07 04 PING 00 00` (TTL 0) after the greeting and READY.
    const bytes = Buffer.concat(peer.data)
    expect(bytes.includes(Buffer.from([0x04, 0x07, 0x04, ...ascii('PING'), 0, 0]))).toBe(true)
  })

  it('honours the TTL of the peer’s PING even with our heartbeats off', async () => {
    const { port, logs } = await listen()
    const peer = await raw(port)
    const started = Date.now()
    // PING with TTL 3 deciseconds and context "hi", then silence.
    peer.socket.write(
      Buffer.concat([
        NULL_HANDSHAKE,
        Buffer.from([0x04, 0x09, 0x04, ...ascii('PING'), 0, 3, ...ascii('hi')]),
      ]),
    )
    await peer.closed
    expect(Date.now() - started).toBeGreaterThanOrEqual(300)
    expect(logs.lines.find((line) => line.code === 'HEARTBEAT_TIMEOUT')).toBeDefined()
    expect(
      Buffer.concat(peer.data).includes(
        Buffer.from([0x04, 0x07, 0x04, ...ascii('PONG'), ...ascii('hi')]),
      ),
    ).toBe(true)
  })

  it('stops reading a peer that sends PINGs but never reads its PONGs', async () => {
    const { port, pull: server } = await listen()
    const peer = await raw(port)
    peer.socket.pause() // never reads: our PONGs pile up on its side, then on ours
    const ping = Buffer.from([0x04, 0x07, 0x04, ...ascii('PING'), 0, 0])
    const burst = Buffer.concat(Array.from({ length: 100_000 }, () => ping)) // 900 kB a write
    peer.socket.write(NULL_HANDSHAKE)
    let written = 0
    // Without the guard the bridge answers every PING, and its buffer of PONGs grows with the
    // input; with it, it stops reading, so TCP pushes back and our own writes stall.
    while (written < 64 * 1024 * 1024) {
      if (!peer.socket.write(burst)) {
        const drained = await Promise.race([
          new Promise((resolve) => peer.socket.once('drain', () => resolve(true))),
          new Promise((resolve) => setTimeout(() => resolve(false), 1000)),
        ])
        if (!drained) break
      }
      written += burst.length
    }
    expect(written).toBeLessThan(64 * 1024 * 1024)
    expect(server.connectionCount).toBe(1)
  })

  it('sends its PINGs inside CURVE MESSAGE boxes, which libzmq answers', async () => {
    const server = zmq.curveKeyPair()
    const client = zmq.curveKeyPair()
    const crypto = createCurveCrypto()
    const cookieKeys = new CookieKeyring({ crypto })
    const secretKey = z85Decode(server.secretKey)
    const { port, received, count } = await listen({
      heartbeatIvlMs: 100,
      heartbeatTimeoutMs: 300,
      createMechanism: () =>
        new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys }),
    })
    const push = new zmq.Push({
      linger: 0,
      curveServerKey: server.publicKey,
      curvePublicKey: client.publicKey,
      curveSecretKey: client.secretKey,
    })
    closers.push(() => push.close())
    push.connect(`tcp://127.0.0.1:${port}`)
    await push.send('first')
    await new Promise((resolve) => setTimeout(resolve, 1500))
    await push.send('after 15 heartbeats')
    await waitFor(() => received.length === 2)
    expect(count('connection accepted')).toBe(1)
    expect(count('connection closed')).toBe(0)
  })
})

describe('whom the bridge PINGs, and idle connections', () => {
  const options = { heartbeatIvlMs: 100, heartbeatTimeoutMs: 200, idleTimeoutMs: 800 }

  it('PINGs no ZMTP 3.0 peer (libzmq 4.1 has no PING); closes it after the idle timeout', async () => {
    const { port, logs } = await listen(options)
    const peer = await raw(port)
    const started = Date.now()
    peer.socket.write(NULL_HANDSHAKE_30)
    await peer.closed
    expect(Date.now() - started).toBeGreaterThanOrEqual(800)
    expect(Buffer.concat(peer.data).includes(PING)).toBe(false)
    expect(logs.lines.find((line) => line.code === 'IDLE_TIMEOUT')).toBeDefined()
    expect(logs.lines.find((line) => line.code === 'HEARTBEAT_TIMEOUT')).toBeUndefined()
  })

  it('never sends a command to a ZMTP 2.0 peer, which has none; closes it when idle', async () => {
    const { port, logs } = await listen({ ...options, allowZmtp2: true })
    const peer = await raw(port)
    peer.socket.write(ZMTP2_HANDSHAKE)
    await peer.closed
    expect(Buffer.concat(peer.data).includes(PING)).toBe(false)
    expect(logs.lines.find((line) => line.code === 'IDLE_TIMEOUT')).toBeDefined()
  })

  it('keeps reading what the peer sent until it closes: a message racing the idle close is kept', async () => {
    const { port, received } = await listen(options)
    const peer = await raw(port, { allowHalfOpen: true })
    peer.socket.write(NULL_HANDSHAKE_30)
    // The bridge's FIN arrives; the peer, as a libzmq PUSH might, had one more message on its
    // way, then closes its side.
    peer.socket.once('end', () => {
      peer.socket.end(Uint8Array.of(0x00, 0x04, ...ascii('late')))
    })
    await peer.closed
    await waitFor(() => received.length === 1)
    expect(new TextDecoder().decode(received[0]?.frames[0])).toBe('late')
  })

  it('still PINGs a ZMTP 3.1 peer and leaves it open while it answers', async () => {
    const { port, count } = await listen(options)
    const push = new zmq.Push({ linger: 0 })
    closers.push(() => push.close())
    push.connect(`tcp://127.0.0.1:${port}`)
    await push.send('first')
    // Far past the idle timeout: libzmq answers our PINGs, so it is not idle.
    await new Promise((resolve) => setTimeout(resolve, 1500))
    expect(count('connection accepted')).toBe(1)
    expect(count('connection closed')).toBe(0)
  })
})
