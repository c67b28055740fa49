// IPv6 and dual-stack listeners: `tcp://*:PORT` takes IPv4 and IPv6 clients on one socket, and
// peer addresses read as plain IPv4 or bracketed IPv6.

import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type InboundMessage, PullSocket } from '../../node-bridge/bridge/pull-socket'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { NullMechanism } from '../../node-bridge/zmtp/mechanisms/null-mechanism'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'

const closers: Array<() => unknown> = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
})

async function listen(bind: string) {
  const listener = parseConfig({ bind, ingestToken: 't' }, {}).listeners[0]
  const received: InboundMessage[] = []
  const pull = new PullSocket({
    host: listener?.bind.host ?? '',
    port: listener?.bind.port ?? 0,
    createMechanism: () => new NullMechanism('PULL'),
    handshakeTimeoutMs: 5000,
    maxMessageSize: 1024,
    logger: createMemoryLogger().logger,
    onMessage: (message) => received.push(message),
  })
  const address = await pull.listen()
  closers.push(() => pull.close())
  return { address, received }
}

function push(endpoint: string): zmq.Push {
  const socket = new zmq.Push({ linger: 0, ipv6: true })
  closers.push(() => socket.close())
  socket.connect(endpoint)
  return socket
}

describe('IPv6', () => {
  it('serves IPv4 and IPv6 clients on one tcp://*:PORT listener', async () => {
    const { address, received } = await listen('tcp://*:0')
    expect(address.address).toBe('::')
    await push(`tcp://127.0.0.1:${address.port}`).send('v4')
    await push(`tcp://[::1]:${address.port}`).send('v6')
    await waitFor(() => received.length === 2)
    const byText = new Map(
      received.map((m) => [new TextDecoder().decode(m.frames[0]), m.peerAddress]),
    )
    expect(byText.get('v4')).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(byText.get('v6')).toMatch(/^\[::1\]:\d+$/)
  })

  it('binds an IPv6 address given in brackets', async () => {
    const { address, received } = await listen('tcp://[::1]:0')
    expect(address.address).toBe('::1')
    await push(`tcp://[::1]:${address.port}`).send('hello')
    await waitFor(() => received.length === 1)
  })
})
