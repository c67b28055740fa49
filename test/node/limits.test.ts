// Limits that keep one host from exhausting the bridge: connections in total and per IP,
// handshakes a second per IP, frames per message. A violation closes that connection only.
import type { Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { ConnectionLimits, hostKey } from '../../node-bridge/bridge/connection-limits'
import type { PullSocket, PullSocketOptions } from '../../node-bridge/bridge/pull-socket'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { CurveServerMechanism } from '../../node-bridge/zmtp/mechanisms/curve-server-mechanism'
import { z85Decode } from '../../shared/z85'
import { listenPull, rawConnection as rawPeer } from '../support/pull-harness'
import { waitFor } from '../support/wait'

describe('ConnectionLimits', () => {
  it('caps connections per host and in total, and frees a place on release', () => {
    const limits = new ConnectionLimits({
      maxConnections: 3,
      maxConnectionsPerIp: 2,
      handshakesPerSecondPerIp: 0,
    })
    expect(limits.admit('a')).toBeUndefined()
    expect(limits.admit('a')).toBeUndefined()
    expect(limits.admit('a')).toBe('TOO_MANY_CONNECTIONS')
    expect(limits.admit('b')).toBeUndefined()
    expect(limits.admit('c')).toBe('TOO_MANY_CONNECTIONS') // 3 in total
    limits.release('a')
    expect(limits.admit('c')).toBeUndefined()
  })

  it('lets a burst of twice the rate through, then one per 1/rate seconds', () => {
    let now = 0
    const limits = new ConnectionLimits({
      maxConnections: 100,
      maxConnectionsPerIp: 100,
      handshakesPerSecondPerIp: 5,
      now: () => now,
    })
    const admitted = () =>
      Array.from({ length: 20 }, () => limits.admit('h')).filter((r) => r === undefined).length
    expect(admitted()).toBe(10)
    now += 1000
    expect(admitted()).toBe(5)
    expect(limits.admit('other')).toBeUndefined() // per host
  })

  it('forgets idle hosts once their bucket has refilled', () => {
    let now = 0
    const limits = new ConnectionLimits({
      maxConnections: 100,
      maxConnectionsPerIp: 100,
      handshakesPerSecondPerIp: 10,
      now: () => now,
    })
    for (let index = 0; index < 50; index++) {
      const host = `10.0.0.${index}`
      limits.admit(host)
      limits.release(host)
    }
    expect(limits.trackedHosts).toBe(50)
    now += 2000
    limits.sweep()
    expect(limits.trackedHosts).toBe(0)
  })
})

describe('ConnectionLimits backoff after failed handshakes', () => {
  function clocked(handshakeBackoffMaxMs = 60_000) {
    const clock = { now: 0 }
    const limits = new ConnectionLimits({
      maxConnections: 100,
      maxConnectionsPerIp: 100,
      handshakesPerSecondPerIp: 0,
      handshakeBackoffMaxMs,
      now: () => clock.now,
    })
    return { clock, limits }
  }

  it('refuses an address for 1 s after a failed handshake, doubling with each failure up to 60 s', () => {
    const { clock, limits } = clocked()
    const waits: number[] = []
    for (let failure = 0; failure < 9; failure++) {
      expect(limits.admit('10.0.0.1')).toBeUndefined()
      limits.handshakeFailed('10.0.0.1')
      limits.release('10.0.0.1')
      const start = clock.now
      while (limits.admit('10.0.0.1') === 'HANDSHAKE_BACKOFF') clock.now += 100
      limits.release('10.0.0.1')
      waits.push(clock.now - start)
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000])
    expect(limits.admit('10.0.0.2')).toBeUndefined() // per address
  })

  it('starts again from 1 s after a successful handshake', () => {
    const { clock, limits } = clocked()
    for (let failure = 0; failure < 4; failure++) {
      limits.handshakeFailed('10.0.0.1')
      clock.now += 60_000
    }
    limits.handshakeSucceeded('10.0.0.1')
    limits.handshakeFailed('10.0.0.1')
    expect(limits.admit('10.0.0.1')).toBe('HANDSHAKE_BACKOFF')
    clock.now += 1000
    expect(limits.admit('10.0.0.1')).toBeUndefined()
  })

  it("backs off the failing address only, not its /64 or a NAT's others, and not at all when the maximum is 0", () => {
    const { limits } = clocked()
    limits.handshakeFailed('2001:db8:1:2::a')
    expect(limits.admit('2001:db8:1:2::a')).toBe('HANDSHAKE_BACKOFF')
    expect(limits.admit('2001:db8:1:2::b')).toBeUndefined()
    limits.handshakeFailed('::ffff:10.0.0.9')
    expect(limits.admit('10.0.0.9')).toBe('HANDSHAKE_BACKOFF')
    // Another client's success does not lift the offender's backoff.
    limits.handshakeSucceeded('2001:db8:1:2::b')
    expect(limits.admit('2001:db8:1:2::a')).toBe('HANDSHAKE_BACKOFF')
    const off = clocked(0).limits
    off.handshakeFailed('10.0.0.1')
    expect(off.admit('10.0.0.1')).toBeUndefined()
  })

  it('forgets an address once it has been quiet for the longest backoff', () => {
    const { clock, limits } = clocked(4000)
    limits.handshakeFailed('10.0.0.1')
    limits.handshakeFailed('10.0.0.1')
    expect(limits.trackedHosts).toBe(1)
    // Many addresses failing once each: the map stays bounded.
    for (let index = 0; index < 70_000; index++)
      limits.handshakeFailed(`2001:db8::${index.toString(16)}`)
    expect(limits.trackedHosts).toBeLessThanOrEqual(65_536)
    clock.now += 1
    clock.now += 2000 + 4000
    limits.sweep()
    expect(limits.trackedHosts).toBe(0)
  })
})

describe('hostKey: what the per-IP limits count as one address', () => {
  it('takes an IPv6 /64 as one address', () => {
    expect(hostKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(hostKey('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64')
    expect(hostKey('2001:DB8:1:2:ffff::1')).toBe('2001:db8:1:2::/64')
    expect(hostKey('2001:0db8:0001:0002::1')).toBe('2001:db8:1:2::/64')
    expect(hostKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(hostKey('2001:db8:1:3::1')).not.toBe(hostKey('2001:db8:1:2::1'))
    expect(hostKey('::1')).toBe('0:0:0:0::/64')
    expect(hostKey('2001:db8::1.2.3.4')).toBe('2001:db8:0:0::/64')
  })

  it('takes an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(hostKey('::ffff:10.0.0.1')).toBe('10.0.0.1')
    expect(hostKey('::FFFF:10.0.0.1')).toBe('10.0.0.1')
    expect(hostKey('10.0.0.1')).toBe('10.0.0.1')
  })

  it('counts the addresses of one /64, and an IPv4 client mapped or not, against one limit', () => {
    const limits = new ConnectionLimits({
      maxConnections: 100,
      maxConnectionsPerIp: 2,
      handshakesPerSecondPerIp: 0,
    })
    expect(limits.admit('2001:db8:1:2::a')).toBeUndefined()
    expect(limits.admit('2001:db8:1:2::b')).toBeUndefined()
    expect(limits.admit('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('TOO_MANY_CONNECTIONS')
    expect(limits.admit('2001:db8:1:3::a')).toBeUndefined()
    limits.release('2001:db8:1:2::a')
    expect(limits.admit('2001:db8:1:2::c')).toBeUndefined()
    expect(limits.admit('10.0.0.1')).toBeUndefined()
    expect(limits.admit('::ffff:10.0.0.1')).toBeUndefined()
    expect(limits.admit('10.0.0.1')).toBe('TOO_MANY_CONNECTIONS')
  })
})

describe('PullSocket limits over TCP', () => {
  let pull: PullSocket | undefined
  const sockets: Array<{ close(): void } | Socket> = []

  afterEach(async () => {
    for (const socket of sockets.splice(0)) {
      if ('destroy' in socket) socket.destroy()
      else socket.close()
    }
    await pull?.close()
  })

  async function listen(options: Partial<PullSocketOptions>) {
    const harness = await listenPull(options)
    pull = harness.pull
    return harness
  }

  const rawConnection = (port: number) => rawPeer(port, sockets)

  it('refuses a connection over the per-IP limit and admits one when a place frees', async () => {
    const { port, logs } = await listen({ maxConnectionsPerIp: 3 })
    const open = await Promise.all([1, 2, 3].map(() => rawConnection(port)))
    await waitFor(() => pull?.connectionCount === 3)
    const fourth = await rawConnection(port)
    await fourth.closed
    expect(logs.lines.filter((line) => line.code === 'TOO_MANY_CONNECTIONS')).toHaveLength(1)
    expect(pull?.refused.TOO_MANY_CONNECTIONS).toBe(1)
    open[0]?.socket.destroy()
    await waitFor(() => pull?.connectionCount === 2)
    await rawConnection(port)
    await waitFor(() => pull?.connectionCount === 3)
  })

  it('logs the first refusal of each reason, then one summary per interval: never a line per refusal', async () => {
    const { port, logs } = await listen({ maxConnectionsPerIp: 1, refusalLogIntervalMs: 300 })
    await rawConnection(port)
    await waitFor(() => pull?.connectionCount === 1)
    const refused = await Promise.all(Array.from({ length: 20 }, () => rawConnection(port)))
    await Promise.all(refused.map(({ closed }) => closed))
    expect(pull?.refused.TOO_MANY_CONNECTIONS).toBe(20)
    const summary = await waitFor(() =>
      logs.lines.find((line) => line.msg === 'connections refused'),
    )
    expect(logs.lines.filter((line) => line.msg === 'connection refused')).toHaveLength(1)
    expect(summary).toMatchObject({
      level: 40,
      refused: { TOO_MANY_CONNECTIONS: 20 },
      top: [{ address: '127.0.0.1', count: 20 }],
    })
    // One summary for the interval, not one per refusal.
    await new Promise((resolve) => setTimeout(resolve, 400))
    expect(logs.lines.filter((line) => line.msg === 'connections refused')).toHaveLength(1)
  })

  it('logs failed handshakes as the first of each code, then one summary per interval', async () => {
    const { port, logs } = await listen({ refusalLogIntervalMs: 300 })
    // Twenty peers that speak no ZMTP at all: each fails its handshake.
    const peers = await Promise.all(Array.from({ length: 20 }, () => rawConnection(port)))
    for (const { socket } of peers) {
      socket.resume() // read, so the bridge's close is seen
      socket.write('GET / HTTP/1.1\r\n\r\n')
    }
    await Promise.all(peers.map(({ closed }) => closed))
    const summary = await waitFor(() => logs.lines.find((line) => line.msg === 'handshakes failed'))
    expect(logs.lines.filter((line) => line.msg === 'handshake failed')).toEqual([
      expect.objectContaining({ code: 'UNSUPPORTED_VERSION', err: 'peer does not speak ZMTP 3.x' }),
    ])
    expect(summary).toMatchObject({
      level: 40,
      refused: { UNSUPPORTED_VERSION: 20 },
      top: [{ address: '127.0.0.1', count: 20 }],
    })
  })

  it('refuses new connections from a host over its handshake rate', async () => {
    const { port } = await listen({ handshakesPerSecondPerIp: 2 })
    const attempts = await Promise.all(Array.from({ length: 8 }, () => rawConnection(port)))
    await waitFor(() => (pull?.refused.TOO_MANY_HANDSHAKES ?? 0) >= 4)
    expect(pull?.connectionCount).toBe(4) // a burst of twice the rate
    expect(attempts).toHaveLength(8)
  })

  it('makes a libzmq CURVE client with a wrong server key cost a handshake a second, then fewer', async () => {
    const server = zmq.curveKeyPair()
    const wrong = zmq.curveKeyPair()
    const client = zmq.curveKeyPair()
    const crypto = createCurveCrypto()
    const cookieKeys = new CookieKeyring({ crypto })
    const secretKey = z85Decode(server.secretKey)
    const { port, logs } = await listen({
      handshakeBackoffMaxMs: 60_000,
      createMechanism: () =>
        new CurveServerMechanism({ secretKey, socketType: 'PULL', crypto, cookieKeys }),
    })
    const push = new zmq.Push({
      linger: 0,
      curveServerKey: wrong.publicKey,
      curvePublicKey: client.publicKey,
      curveSecretKey: client.secretKey,
    })
    sockets.push(push)
    push.connect(`tcp://127.0.0.1:${port}`)
    // libzmq retries every 100-200 ms after a plain close (reconnect_ivl), for ever.
    await new Promise((resolve) => setTimeout(resolve, 2500))
    push.close()
    const failed = logs.lines.filter((line) => line.code === 'CRYPTOGRAPHIC').length
    // Opened at 0 s and after 1 s; 3 s would be next. Without the backoff: 12 to 25.
    expect(failed).toBeGreaterThanOrEqual(1)
    expect(failed).toBeLessThanOrEqual(2)
    expect(pull?.refused.HANDSHAKE_BACKOFF).toBeGreaterThan(5)
  })

  it('closes a client whose message has too many frames, and keeps serving another', async () => {
    const { port, received, logs } = await listen({ maxFramesPerMessage: 10 })
    const greedy = new zmq.Push({ linger: 0 })
    const modest = new zmq.Push({ linger: 0 })
    sockets.push(greedy, modest)
    greedy.connect(`tcp://127.0.0.1:${port}`)
    modest.connect(`tcp://127.0.0.1:${port}`)
    await greedy.send(Array.from({ length: 11 }, (_, index) => String(index)))
    await modest.send(Array.from({ length: 10 }, (_, index) => String(index)))
    await waitFor(() => logs.lines.find((line) => line.code === 'TOO_MANY_FRAMES'))
    await waitFor(() => received.length === 1)
    expect(received[0]?.frames).toHaveLength(10)
  })
})
