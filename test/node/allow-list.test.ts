// The CURVE allow-list: its file format, and reloading it under a running bridge with real
// libzmq clients (a removed key is disconnected and refused; an added key gets in).
import { randomBytes } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { parseAllowList } from '../../node-bridge/bridge/allow-list'
import { type RunningBridge, startBridge } from '../../node-bridge/bridge/bridge'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { KeyFormatError } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { z85Decode, z85Encode } from '../../shared/z85'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'

const hex = (z85: string) => Buffer.from(z85Decode(z85)).toString('hex')

describe('parseAllowList', () => {
  it('reads keys in Z85, base64 and hex with comments and blank lines', () => {
    const [a, b, c] = [zmq.curveKeyPair(), zmq.curveKeyPair(), zmq.curveKeyPair()]
    const text = [
      '# production clients',
      '',
      `${a.publicKey}   # sensor 1`,
      `  ${Buffer.from(z85Decode(b.publicKey)).toString('base64')}`,
      hex(c.publicKey),
      '',
    ].join('\n')
    expect(parseAllowList(text, 'clients.txt')).toEqual(
      new Set([hex(a.publicKey), hex(b.publicKey), hex(c.publicKey)]),
    )
  })

  it('keeps a # inside a Z85 key and reads # after whitespace as a comment', () => {
    let key = ''
    while (!key.includes('#')) key = z85Encode(randomBytes(32))
    const text = `# ${'x'.repeat(40)} is commented out\n${key} # with a comment\n`
    expect(parseAllowList(text, 'f')).toEqual(new Set([hex(key)]))
  })

  it('names the file and line of a bad key', () => {
    let error: unknown
    try {
      parseAllowList(`${zmq.curveKeyPair().publicKey}\nnot a key\n`, 'clients.txt')
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(KeyFormatError)
    expect((error as KeyFormatError).setting).toBe('clients.txt line 2')
  })
})

describe('allow-list reload under a running bridge', () => {
  let bridge: RunningBridge | undefined
  const sockets: zmq.Push[] = []

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close()
    await bridge?.stop(100)
  })

  type KeyPair = { publicKey: string; secretKey: string }

  /**
   * A CURVE bridge whose allow-list file lists `allowed`; `connect` dials it as a libzmq PUSH
   * with a client key pair. Nothing listens at the Worker URL: messages wait in the relay,
   * which is all these tests need.
   */
  async function allowListBridge(allowed: string) {
    const server = zmq.curveKeyPair()
    const allowFile = join(mkdtempSync(join(tmpdir(), 'zmq-edge-allow-')), 'clients.txt')
    writeFileSync(allowFile, `${allowed}\n`)
    const logs = createMemoryLogger()
    const config = parseConfig(
      {
        bind: 'tcp://127.0.0.1:0',
        curveSecretKey: server.secretKey,
        curveAllowFile: allowFile,
        workerUrl: 'ws://127.0.0.1:9',
        ingestToken: 'unused',
      },
      {},
    )
    const running = await startBridge(config, logs.logger)
    bridge = running
    const connect = (client: KeyPair) => {
      const socket = new zmq.Push({
        linger: 0,
        curveServerKey: server.publicKey,
        curvePublicKey: client.publicKey,
        curveSecretKey: client.secretKey,
      })
      sockets.push(socket)
      socket.connect(`tcp://127.0.0.1:${running.address.port}`)
      return socket
    }
    return { running, allowFile, logs, connect }
  }

  it('disconnects and refuses a removed key, and admits an added one', async () => {
    const first = zmq.curveKeyPair()
    const second = zmq.curveKeyPair()
    const { allowFile, logs, connect } = await allowListBridge(first.publicKey)
    const handshakes = (key: string) =>
      logs.lines.filter((line) => line.msg === 'handshake succeeded' && line.publicKey === key)
        .length
    const refusals = () => logs.lines.filter((line) => line.code === 'AUTHENTICATION_FAILED').length

    const firstSocket = connect(first)
    await firstSocket.send('before')
    await waitFor(() => handshakes(first.publicKey) === 1, { what: 'first client handshake' })
    const secondSocket = connect(second)
    await waitFor(() => refusals() === 1, { what: 'second client refused' })

    // Swap the keys: the first client is cut off at once, the second may now connect.
    writeFileSync(allowFile, `# rotated\n${second.publicKey}\n`)
    await waitFor(() => logs.lines.find((line) => line.msg === 'CURVE allow-list reloaded'), {
      what: 'reload',
    })
    await waitFor(
      () =>
        logs.lines.find((line) => line.msg === 'disconnected clients removed from the allow-list'),
      { what: 'removed client disconnected' },
    )
    // libzmq reconnects the dropped client; its new handshake is refused with ERROR 400.
    await waitFor(() => refusals() >= 2, { what: 'removed client refused on reconnect' })
    // The second client gave up after its 400 (libzmq semantics), so connect it again.
    secondSocket.close()
    const again = connect(second)
    await again.send('after')
    await waitFor(() => handshakes(second.publicKey) === 1, { what: 'second client admitted' })
    expect(handshakes(first.publicKey)).toBe(1)
  })

  it('keeps the previous list when the file stops parsing', async () => {
    const client = zmq.curveKeyPair()
    const { running, allowFile, logs, connect } = await allowListBridge(client.publicKey)
    writeFileSync(allowFile, 'garbage that is no key\n')
    await waitFor(() => logs.lines.find((line) => line.msg?.toString().includes('not reloaded')), {
      what: 'reload failure logged',
    })
    await connect(client).send('still allowed')
    await waitFor(() => running.relay.counters.received === 1, { what: 'message received' })
  })
})
