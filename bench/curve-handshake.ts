// Server-side CURVE handshakes per second (HELLO → WELCOME, INITIATE → READY) and MESSAGE opens
// per second, for tweetnacl alone and for node:crypto X25519 + tweetnacl boxes.
// Run: npx tsx bench/curve-handshake.ts [handshakes]
// Only the server's work is timed; the test client (tweetnacl) runs outside the clock.
import nacl from 'tweetnacl'
import { decodeCommand } from '../node-bridge/zmtp/codec/command'
import { FrameDecoder } from '../node-bridge/zmtp/codec/frame-decoder'
import { CookieKeyring } from '../node-bridge/zmtp/mechanisms/curve-cookie'
import { type CurveCrypto, createCurveCrypto } from '../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { CurveTestClient } from '../test/support/curve-client'

const rounds = Number(process.argv[2] ?? 1000)
const server = nacl.box.keyPair()
const clientLongTerm = nacl.box.keyPair()

function body(frameBytes: Uint8Array): Uint8Array {
  const [frame] = new FrameDecoder().push(frameBytes)
  if (!frame) throw new Error('no frame')
  return frame.body
}

function handshakes(crypto: CurveCrypto, count: number): number {
  const cookieKeys = new CookieKeyring({ crypto })
  let elapsed = 0
  for (let round = 0; round < count; round++) {
    const client = new CurveTestClient({
      serverPublicKey: server.publicKey,
      longTerm: clientLongTerm,
    })
    const hello = decodeCommand(body(client.hello()))
    let start = performance.now()
    const mechanism = new CurveServerMechanism({
      secretKey: server.secretKey,
      publicKey: server.publicKey,
      socketType: 'PULL',
      crypto,
      cookieKeys,
    })
    const welcome = mechanism.onCommand(hello).output[0] as Uint8Array
    elapsed += performance.now() - start
    client.readWelcome(body(welcome))
    const initiate = decodeCommand(body(client.initiate()))
    start = performance.now()
    const step = mechanism.onCommand(initiate)
    elapsed += performance.now() - start
    if (!step.done) throw new Error('handshake did not complete')
  }
  return count / (elapsed / 1000)
}

function messages(crypto: CurveCrypto, size: number, count: number): number {
  const cookieKeys = new CookieKeyring({ crypto })
  const client = new CurveTestClient({ serverPublicKey: server.publicKey })
  const mechanism = new CurveServerMechanism({
    secretKey: server.secretKey,
    socketType: 'PULL',
    crypto,
    cookieKeys,
  })
  client.readWelcome(
    body(mechanism.onCommand(decodeCommand(body(client.hello()))).output[0] as Uint8Array),
  )
  mechanism.onCommand(decodeCommand(body(client.initiate())))
  const payload = new Uint8Array(size)
  const frames = Array.from({ length: count }, () => ({
    more: false,
    command: false,
    body: client.messageBody(payload),
  }))
  const start = performance.now()
  for (const frame of frames) mechanism.decodeFrame(frame)
  return count / ((performance.now() - start) / 1000)
}

const format = (value: number) => Math.round(value).toLocaleString('en-US')
const backends = [
  ['tweetnacl only', createCurveCrypto({ backend: 'tweetnacl' })],
  ['node:crypto X25519 + tweetnacl', createCurveCrypto({ backend: 'hybrid' })],
  ['libsodium (sodium-native)', createCurveCrypto({ backend: 'sodium' })],
] as const

console.log(`Node ${process.version}, ${rounds} handshakes per backend (server CPU time only)`)
for (const [name, crypto] of backends) {
  // tweetnacl alone is ~15× slower and only a reference: a tenth of the rounds is enough.
  const count = crypto.backend === 'tweetnacl' ? Math.max(50, Math.round(rounds / 10)) : rounds
  handshakes(crypto, Math.min(50, count)) // warm-up
  console.log(`${name.padEnd(32)} ${format(handshakes(crypto, count)).padStart(8)} handshakes/s`)
}
for (const [name, crypto] of backends.slice(1)) {
  for (const size of [100, 10_240]) {
    messages(crypto, size, 1000) // warm-up
    const label = `MESSAGE open, ${String(size).padStart(5)} B, ${name}`
    console.log(
      `${label.padEnd(52)} ${format(messages(crypto, size, 20_000)).padStart(9)} messages/s`,
    )
  }
}
