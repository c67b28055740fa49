// ZMTP 2.0 peers (RFC 15): a real JeroMQ 0.3.6 PUSH (Debian's libjeromq-java) and raw greetings.
// Accepted on NULL listeners with --allow-zmtp2 only; never on CURVE (the downgrade guard).
import { execFile } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import type { PullSocket } from '../../node-bridge/bridge/pull-socket'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import type { Mechanism as ZmtpMechanism } from '../../node-bridge/zmtp/mechanisms/mechanism'
import { listenPull } from '../support/pull-harness'
import { waitFor } from '../support/wait'

const JEROMQ_JAR = '/usr/share/java/jeromq.jar'
const JEROMQ_PUSH = new URL('../peers/JeromqPush.java', import.meta.url).pathname
const run = promisify(execFile)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

let pull: PullSocket | undefined
const sockets: Socket[] = []
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy()
  await pull?.close()
})

async function listen(options: { allowZmtp2: boolean; createMechanism?: () => ZmtpMechanism }) {
  const harness = await listenPull(options)
  pull = harness.pull
  return harness
}

/** A ZMTP 2.0 PUSH by hand: signature, revision 1, PUSH, empty identity, then frames. */
function zmtp2Push(port: number, frames: Uint8Array): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = []
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(Uint8Array.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 0x08, 0x00, 0x00]))
      socket.write(frames)
    })
    sockets.push(socket)
    socket.on('data', (data) => parts.push(data))
    socket.on('error', () => undefined)
    socket.on('close', () => resolve(Buffer.concat(parts)))
    setTimeout(() => socket.end(), 500).unref()
  })
}

const ascii = (value: string) => new TextEncoder().encode(value)

describe('ZMTP 2.0 peers', () => {
  it('delivers 1,000 messages from a JeroMQ 0.3.6 PUSH on a NULL listener with --allow-zmtp2', async () => {
    const { port, received, logs } = await listen({ allowZmtp2: true })
    await run('java', ['-cp', JEROMQ_JAR, JEROMQ_PUSH, `tcp://127.0.0.1:${port}`, '1000'], {
      timeout: 60_000,
    })
    await waitFor(() => received.length === 1000)
    expect(received.map((message) => message.frames.map(text))).toEqual(
      Array.from({ length: 1000 }, (_, index) => ['jeromq', String(index)]),
    )
    expect(logs.lines.find((line) => line.msg === 'handshake succeeded')).toMatchObject({
      zmtp: '2.0',
    })
  }, 90_000)

  it('answers a raw ZMTP 2.0 greeting with PULL and delivers long and multipart frames', async () => {
    const { port, received } = await listen({ allowZmtp2: true })
    const long = new Uint8Array(300).fill(7)
    const reply = await zmtp2Push(
      port,
      Uint8Array.from([
        0x01,
        1,
        ...ascii('a'), // more-short "a"
        0x02,
        0,
        0,
        0,
        0,
        0,
        0,
        0x01,
        0x2c,
        ...long, // final-long, 300 octets
      ]),
    )
    // Our signature and major version, then PULL (%x07) and an empty identity.
    expect([...reply.subarray(0, 14)]).toEqual([0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 3, 0x07, 0, 0])
    await waitFor(() => received.length === 1)
    expect(received[0]?.frames).toEqual([ascii('a'), long])
  })

  it('refuses ZMTP 2.0 on a NULL listener without the option', async () => {
    const { port, received, logs } = await listen({ allowZmtp2: false })
    await zmtp2Push(port, Uint8Array.from([0x00, 1, ...ascii('x')]))
    expect(logs.lines.find((line) => line.code === 'UNSUPPORTED_VERSION')).toBeDefined()
    expect(received).toHaveLength(0)
  })

  it('never accepts ZMTP 2.0 on a CURVE listener, even with the option', async () => {
    const crypto = createCurveCrypto()
    const cookieKeys = new CookieKeyring({ crypto })
    const secretKey = new Uint8Array(32).fill(9)
    const { port, received, logs } = await listen({
      allowZmtp2: true,
      createMechanism: () =>
        new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys }),
    })
    await zmtp2Push(port, Uint8Array.from([0x00, 1, ...ascii('x')]))
    expect(logs.lines.find((line) => line.code === 'UNSUPPORTED_VERSION')).toBeDefined()
    expect(received).toHaveLength(0)
  })

  it('refuses a ZMTP 2.0 peer that is not a PUSH', async () => {
    const { port, received, logs } = await listen({ allowZmtp2: true })
    const socket = connect(port, '127.0.0.1', () => {
      // DEALER (%x05)
      socket.write(
        Uint8Array.from([0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1, 0x05, 0x00, 0x00, 0x00, 1, 0x41]),
      )
    })
    sockets.push(socket)
    socket.on('error', () => undefined)
    await waitFor(() => logs.lines.find((line) => line.code === 'INVALID_SOCKET_TYPE'))
    expect(received).toHaveLength(0)
  })
})
