// Bridge observability over real HTTP: the metrics settings, /metrics after a libzmq PUSH
// (the `zeromq` package) sent through a bridge, failed handshakes by code, /healthz and /readyz.
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { type RunningBridge, startBridge } from '../../node-bridge/bridge/bridge'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { configErrorOf } from '../support/config-assert'
import { createMemoryLogger } from '../support/memory-logger'
import { startRelayReceiver } from '../support/relay-receiver'
import { waitFor } from '../support/wait'

const token = { ingestToken: 't' }

describe('metrics settings', () => {
  it('are off by default', () => {
    expect(parseConfig(token, {}).metrics).toBeUndefined()
  })

  it('bind 127.0.0.1 unless --metrics-host says otherwise; flags win over variables', () => {
    expect(parseConfig({ ...token, metricsPort: '9464' }, {}).metrics).toEqual({
      host: '127.0.0.1',
      port: 9464,
    })
    const env = { ZMQ_EDGE_METRICS_PORT: '9100', ZMQ_EDGE_METRICS_HOST: '0.0.0.0' }
    expect(parseConfig(token, env).metrics).toEqual({ host: '0.0.0.0', port: 9100 })
    expect(parseConfig({ ...token, metricsPort: '0', metricsHost: '[::1]' }, env).metrics).toEqual({
      host: '::1',
      port: 0,
    })
  })

  it('name the setting of a bad port, and a host without a port', () => {
    const bad = configErrorOf(() => parseConfig({ ...token, metricsPort: '70000' }, {}))
    expect(bad.setting).toBe('--metrics-port')
    expect(bad.message).toMatch(/expected a TCP port/)
    const fromEnv = configErrorOf(() => parseConfig(token, { ZMQ_EDGE_METRICS_PORT: 'x' }))
    expect(fromEnv.setting).toBe('ZMQ_EDGE_METRICS_PORT')
    const hostOnly = configErrorOf(() => parseConfig({ ...token, metricsHost: '0.0.0.0' }, {}))
    expect(hostOnly.setting).toBe('--metrics-host')
    expect(hostOnly.message).toMatch(/--metrics-port/)
  })
})

/** The value of one sample in a Prometheus text exposition, or undefined. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const found: Record<string, string> = {}
    for (const pair of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) {
      found[pair[1] as string] = pair[2] as string
    }
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) {
      return Number(match[3])
    }
  }
  return undefined
}

let bridge: RunningBridge | undefined
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  await bridge?.stop(0)
  bridge = undefined
})

async function startWithMetrics(workerUrl: string) {
  const config = parseConfig(
    {
      bind: ['tcp://127.0.0.1:0'],
      workerUrl,
      ingestToken: 't',
      metricsPort: '0',
      statsIntervalMs: '0',
      drainTimeoutMs: '0',
    },
    {},
  )
  bridge = await startBridge(config, createMemoryLogger('warn').logger)
  const address = bridge.metricsAddress
  if (!address) throw new Error('no metrics address')
  expect(address.address).toBe('127.0.0.1')
  return `http://127.0.0.1:${address.port}`
}

describe('metrics server', () => {
  it('counts messages, bytes, connections and failed handshakes; not ready without the Worker', async () => {
    const base = await startWithMetrics('ws://127.0.0.1:9') // nothing listens: never connected
    const port = (bridge as RunningBridge).address.port

    const health = await fetch(`${base}/healthz`)
    expect(health.status).toBe(200)
    const ready = await fetch(`${base}/readyz`)
    expect(ready.status).toBe(503)
    expect(await ready.json()).toEqual({
      ready: false,
      channels: { default: { connected: false } },
      notConnected: ['default'],
      blockedByChannel: [],
    })
    expect((await fetch(`${base}/nope`)).status).toBe(404)

    const push = new zmq.Push({ linger: 0 })
    cleanups.push(() => push.close())
    push.connect(`tcp://127.0.0.1:${port}`)
    await push.send('hello') // 5 octets
    await push.send(['ab', 'cde']) // 5 octets, two frames
    await push.send(Buffer.alloc(1000, 1))
    await waitFor(() => bridge?.relay.counters.received === 3, { what: 'three messages' })

    // A ZMTP 3.0 peer that asks for CURVE on this NULL listener: the bridge hangs up.
    const greeting = Buffer.alloc(64)
    greeting[0] = 0xff
    greeting[9] = 0x7f
    greeting[10] = 3
    greeting.write('CURVE', 12, 'ascii')
    const garbage = connect({ host: '127.0.0.1', port })
    garbage.on('error', () => {})
    garbage.resume() // read the bridge's greeting, so its close arrives
    garbage.write(greeting)
    await new Promise((resolve) => garbage.once('close', resolve))

    const metrics = await waitFor(
      async () => {
        const text = await (await fetch(`${base}/metrics`)).text()
        const failures = text
          .split('\n')
          .filter((line) => line.startsWith('zmq_edge_handshake_failures_total{'))
        return failures.length > 0 ? text : undefined
      },
      { what: 'a handshake failure in /metrics' },
    )
    const response = await fetch(`${base}/metrics`)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
    const channel = { channel: 'default' }
    expect(sample(metrics, 'zmq_edge_messages_received_total', channel)).toBe(3)
    expect(sample(metrics, 'zmq_edge_bytes_received_total', channel)).toBe(1010)
    expect(sample(metrics, 'zmq_edge_queue_messages', channel)).toBe(3)
    expect(sample(metrics, 'zmq_edge_queue_bytes', channel)).toBeGreaterThan(1010)
    expect(sample(metrics, 'zmq_edge_batches_in_flight', channel)).toBe(0)
    expect(sample(metrics, 'zmq_edge_messages_acked_total', channel)).toBe(0)
    expect(sample(metrics, 'zmq_edge_relay_connected', channel)).toBe(0)
    expect(sample(metrics, 'zmq_edge_relay_full', channel)).toBe(0)
    expect(sample(metrics, 'zmq_edge_pushback_seconds_total', channel)).toBe(0)
    expect(sample(metrics, 'zmq_edge_relay_reconnects_total', channel)).toBeGreaterThanOrEqual(1)
    expect(sample(metrics, 'zmq_edge_batches_resent_total', channel)).toBe(0)
    expect(sample(metrics, 'zmq_edge_connections', { mechanism: 'NULL' })).toBe(1)
    expect(sample(metrics, 'zmq_edge_connections', { mechanism: 'CURVE' })).toBe(0)
    const failureLines = metrics
      .split('\n')
      .filter((line) => line.startsWith('zmq_edge_handshake_failures_total{'))
    expect(failureLines).toHaveLength(1)
    expect(failureLines[0]).toBe('zmq_edge_handshake_failures_total{code="MECHANISM_MISMATCH"} 1')
    expect(metrics).toMatch(/^# TYPE zmq_edge_handshake_failures_total counter$/m)
    expect(metrics).toMatch(/^process_cpu_seconds_total /m)

    // The PUSH goes away: the connection gauge follows.
    push.close()
    await waitFor(
      async () =>
        sample(await (await fetch(`${base}/metrics`)).text(), 'zmq_edge_connections', {
          mechanism: 'NULL',
        }) === 0,
      { what: 'the connection gauge back to 0' },
    )
  })

  it('is ready once every relay is connected to the Worker', async () => {
    // A relay endpoint that welcomes the relay: connected is enough.
    const receiver = await startRelayReceiver()
    cleanups.push(() => receiver.close())
    const port = Number(new URL(receiver.url).port)
    const base = await startWithMetrics(`ws://127.0.0.1:${port}`)
    const readiness = await waitFor(
      async () => {
        const response = await fetch(`${base}/readyz`)
        return response.status === 200 ? ((await response.json()) as unknown) : undefined
      },
      { what: '/readyz 200' },
    )
    expect(readiness).toEqual({
      ready: true,
      channels: { default: { connected: true } },
      notConnected: [],
      blockedByChannel: [],
    })
    const text = await (await fetch(`${base}/metrics`)).text()
    expect(sample(text, 'zmq_edge_relay_connected', { channel: 'default' })).toBe(1)

    // The bridge stops: so does the metrics server.
    await (bridge as RunningBridge).stop(0)
    bridge = undefined
    await expect(fetch(`${base}/healthz`)).rejects.toThrow()
  })
})
