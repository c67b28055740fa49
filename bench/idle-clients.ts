// The client side of the idle-connection memory benchmark: opens COUNT raw TCP connections to a
// PULL on 127.0.0.1:PORT, completes a NULL handshake on each (greeting + READY with Socket-Type
// PUSH, until the server's READY has arrived), prints `{"ready":COUNT}` and then holds them idle
// until killed. Run: npx tsx bench/idle-clients.ts PORT COUNT
import { connect, type Socket } from 'node:net'
import { encodeReady } from '../node-bridge/zmtp/codec/command'
import { encodeGreeting } from '../node-bridge/zmtp/codec/greeting'

const port = Number(process.argv[2])
const count = Number(process.argv[3] ?? 10_000)
const CONCURRENT_DIALS = 500
const hello = Buffer.concat([
  encodeGreeting({ mechanism: 'NULL', asServer: false }),
  encodeReady([['Socket-Type', 'PUSH']]),
])
const held: Socket[] = []

/** Resolves once the server's greeting (64 octets) and one whole short command frame arrived. */
function handshake(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    let received = Buffer.alloc(0)
    socket.once('error', reject)
    socket.once('connect', () => socket.write(hello))
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length >= 66 && received.length >= 66 + (received[65] ?? 0)) {
        socket.off('data', onData)
        held.push(socket)
        resolve()
      }
    }
    socket.on('data', onData)
  })
}

let next = 0
async function dialer(): Promise<void> {
  while (next < count) {
    next++
    await handshake()
  }
}
await Promise.all(Array.from({ length: CONCURRENT_DIALS }, dialer))
process.stdout.write(`${JSON.stringify({ ready: held.length })}\n`)
setInterval(() => {}, 60_000)
