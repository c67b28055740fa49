// How the bridge sets up its listeners: settings every listener shares (the pre-handshake
// budget), per-mechanism limits, and what it warns about at start.
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { type RunningBridge, startBridge } from '../../node-bridge/bridge/bridge'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import type { RawSettings } from '../../node-bridge/cli/config/settings'
import { createMemoryLogger } from '../support/memory-logger'
import { waitFor } from '../support/wait'

let bridge: RunningBridge | undefined

afterEach(async () => {
  await bridge?.stop(100)
  bridge = undefined
})

/** Starts a bridge whose relay points where nothing listens: enough for the listeners. */
async function start(settings: RawSettings) {
  const logs = createMemoryLogger()
  const config = parseConfig(
    { workerUrl: 'ws://127.0.0.1:9', ingestToken: 'unused', ...settings },
    {},
  )
  bridge = await startBridge(config, logs.logger)
  return { bridge, logs }
}

describe('bridge listeners', () => {
  it('share one pre-handshake budget of --preauth-budget octets', async () => {
    const { bridge } = await start({
      listener: ['tcp://127.0.0.1:0', 'tcp://127.0.0.1:0,channel=other'],
      preauthBudgetBytes: '65536',
    })
    const [first, second] = bridge.listeners
    expect(first?.pull.preauthBudget).toBe(second?.pull.preauthBudget)
    expect(first?.pull.preauthBudget.limit).toBe(65536)
  })

  it('limit new connections per IP on NULL listeners too (--null-connection-rate)', async () => {
    const { bridge } = await start({ bind: 'tcp://127.0.0.1:0', nullConnectionRate: '2' })
    const pull = bridge.listeners[0]?.pull
    const sockets = Array.from({ length: 8 }, () => {
      const socket = connect(bridge.address.port, '127.0.0.1')
      socket.on('error', () => undefined)
      return socket
    })
    try {
      // A burst of twice the rate gets in; the others are refused before any ZMTP.
      await waitFor(() => (pull?.refused.TOO_MANY_HANDSHAKES ?? 0) >= 4)
      expect(pull?.connectionCount).toBe(4)
    } finally {
      for (const socket of sockets) socket.destroy()
    }
  })

  it('back off an address after a failed handshake (--handshake-backoff, default 60 s)', async () => {
    const { bridge, logs } = await start({ bind: 'tcp://127.0.0.1:0' })
    const pull = bridge.listeners[0]?.pull
    const attempt = () =>
      new Promise<void>((resolve) => {
        const socket = connect(bridge.address.port, '127.0.0.1', () =>
          socket.write('GET / HTTP/1.1\r\n\r\n'),
        )
        socket.on('error', () => undefined)
        socket.resume()
        socket.once('close', () => resolve())
      })
    await attempt()
    await waitFor(() => logs.lines.find((line) => line.code === 'UNSUPPORTED_VERSION'))
    await attempt()
    expect(pull?.refused.HANDSHAKE_BACKOFF).toBe(1)
  })

  it('warn at start about a NULL listener on a non-loopback interface, not about loopback or CURVE', async () => {
    const { bridge, logs } = await start({
      listener: [
        'tcp://0.0.0.0:0,mechanism=NULL',
        'tcp://127.0.0.1:0,mechanism=NULL',
        'tcp://0.0.0.0:0,mechanism=CURVE',
      ],
      curveSecretKey: 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6', // libzmq doc/zmq_curve.adoc
    })
    const warnings = logs.lines.filter(
      (line) => line.msg === 'NULL listener on a non-loopback interface: no authentication',
    )
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toMatchObject({
      level: 40,
      bind: `0.0.0.0:${bridge.listeners[0]?.address.port}`,
    })
  })
})
