// Bridge observability: Prometheus metrics (prom-client) and health checks over HTTP.
// `/metrics` in the Prometheus text format, `/healthz` (the process runs) and `/readyz` (every
// relay is connected to the Worker and its channel accepts batches). Relay figures are read from
// the relays when scraped; connection events and received bytes are counted as they happen.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import type { InboundMessage, PullSocketEvent } from './pull-socket.ts'
import type { RelayBlock, RelayClient, RelayCounters } from './relay/relay-client.ts'

/** The relay counters exported as Prometheus counters: name, help, and how to read it. */
const RELAY_COUNTERS: ReadonlyArray<[string, string, (counters: RelayCounters) => number]> = [
  [
    'zmq_edge_messages_received_total',
    'Messages received from ZeroMQ clients and handed to the relay',
    (c) => c.received,
  ],
  [
    'zmq_edge_messages_replayed_total',
    'Unacknowledged messages read back from the spool at start',
    (c) => c.replayed,
  ],
  [
    'zmq_edge_messages_acked_total',
    'Messages the Durable Object acknowledged as stored',
    (c) => c.acked,
  ],
  ['zmq_edge_batches_sent_total', 'Relay batches sent to the Worker', (c) => c.batchesSent],
  ['zmq_edge_batches_acked_total', 'Relay batches acknowledged', (c) => c.batchesAcked],
  [
    'zmq_edge_batches_duplicate_total',
    'Batches the Durable Object had stored already (resent after a lost ack)',
    (c) => c.duplicates,
  ],
  ['zmq_edge_batches_resent_total', 'Batches sent again after a reconnect', (c) => c.resent],
  [
    'zmq_edge_batches_split_total',
    'Batches split after the Worker refused one as too big',
    (c) => c.splits,
  ],
  [
    'zmq_edge_relay_reconnects_total',
    'Relay WebSocket closes or failed connects followed by a reconnect',
    (c) => c.reconnects,
  ],
  [
    'zmq_edge_relay_refusals_total',
    'Batches the channel refused (NACK), each kept and sent again after a backoff',
    (c) => c.refusals,
  ],
  [
    'zmq_edge_messages_rejected_total',
    'Messages the channel rejected for good as over its limits (dropped, each logged)',
    (c) => c.rejected,
  ],
  [
    'zmq_edge_receive_times_clamped_total',
    "Receive times ahead of the channel's clock (this clock jumped back) set to now when sent",
    (c) => c.clampedTimes,
  ],
  [
    'zmq_edge_relay_unexpected_duplicates_total',
    'DUPLICATE answers to batches this process sent once: another process in its session',
    (c) => c.unexpectedDuplicates,
  ],
  [
    'zmq_edge_messages_resent_total',
    'Messages the channel did not store, being resends under the idempotency key of one stored before',
    (c) => c.resentMessages,
  ],
]

/** What `/readyz` answers. */
export interface Readiness {
  ready: boolean
  channels: Record<string, { connected: boolean; blocked?: RelayBlock }>
  /** Channels whose relay is not connected to the Worker: the network, or the Worker, is down. */
  notConnected: string[]
  /** Channels whose Durable Object refuses batches (e.g. CHANNEL_FULL): connected, but blocked. */
  blockedByChannel: string[]
}

/**
 * Metrics of one bridge. Create it before the relays start, feed it PULL socket events and
 * received messages, and call {@link listen} to serve them.
 */
export class BridgeMetrics {
  readonly registry = new Registry()
  readonly #relays: ReadonlyMap<string, RelayClient>
  readonly #connections: Gauge<'mechanism'>
  readonly #handshakeFailures: Counter<'code'>
  readonly #refused: Counter<'code'>
  readonly #bytesReceived: Counter<'channel'>
  readonly #replies: Counter<'channel' | 'answer'>
  /** When each full relay became full (ms), for pushback time not yet in its counters. */
  readonly #fullSince = new Map<string, number>()
  #server: Server | undefined

  constructor(relays: ReadonlyMap<string, RelayClient>) {
    this.#relays = relays
    const registers = [this.registry]
    collectDefaultMetrics({ register: this.registry })
    this.#connections = new Gauge({
      name: 'zmq_edge_connections',
      help: 'ZeroMQ connections open with a completed handshake, by security mechanism',
      labelNames: ['mechanism'],
      registers,
    })
    for (const mechanism of ['NULL', 'CURVE']) this.#connections.set({ mechanism }, 0)
    this.#handshakeFailures = new Counter({
      name: 'zmq_edge_handshake_failures_total',
      help: 'ZeroMQ connections closed with an error before their handshake completed, by code',
      labelNames: ['code'],
      registers,
    })
    this.#refused = new Counter({
      name: 'zmq_edge_connections_refused_total',
      help: 'Connections refused by the connection limits before any ZMTP, by reason',
      labelNames: ['code'],
      registers,
    })
    this.#bytesReceived = new Counter({
      name: 'zmq_edge_bytes_received_total',
      help: 'Frame octets of the messages received from ZeroMQ clients',
      labelNames: ['channel'],
      registers,
    })
    for (const channel of relays.keys()) this.#bytesReceived.inc({ channel }, 0)
    this.#replies = new Counter({
      name: 'zmq_edge_replies_total',
      help: 'Replies to REQ and DEALER senders (socket=router listeners), by channel and answer: seq, or the ERR code',
      labelNames: ['channel', 'answer'],
      registers,
    })

    const perRelay = (read: (relay: RelayClient, channel: string) => number) =>
      function (this: Counter<'channel'> | Gauge<'channel'>) {
        this.reset()
        for (const [channel, relay] of relays) {
          if (this instanceof Counter) this.inc({ channel }, read(relay, channel))
          else this.set({ channel }, read(relay, channel))
        }
      }
    for (const [name, help, read] of RELAY_COUNTERS) {
      new Counter({
        name,
        help,
        labelNames: ['channel'],
        registers,
        collect: perRelay((relay) => read(relay.counters)),
      })
    }
    new Counter({
      name: 'zmq_edge_pushback_seconds_total',
      help: 'Time the relay was full and the bridge stopped reading its ZeroMQ clients',
      labelNames: ['channel'],
      registers,
      collect: perRelay((relay, channel) => {
        const since = this.#fullSince.get(channel)
        return (relay.counters.pushbackMs + (since ? Date.now() - since : 0)) / 1000
      }),
    })
    const gauges: Array<[string, string, (relay: RelayClient) => number]> = [
      [
        'zmq_edge_queue_messages',
        'Messages received and not yet acknowledged by the Worker (queue depth)',
        (r) => r.unacknowledged,
      ],
      ['zmq_edge_queue_bytes', 'Encoded octets not yet acknowledged', (r) => r.unacknowledgedBytes],
      [
        'zmq_edge_batches_in_flight',
        'Relay batches sent and not yet acknowledged',
        (r) => r.inFlight,
      ],
      [
        'zmq_edge_relay_connected',
        '1 when the relay is connected to the Worker',
        (r) => (r.connected ? 1 : 0),
      ],
      [
        'zmq_edge_relay_full',
        '1 while the relay is full and pushing back on the ZeroMQ clients',
        (r) => (r.full ? 1 : 0),
      ],
      [
        'zmq_edge_relay_blocked',
        '1 while the channel refuses batches (the code is in /readyz and the log)',
        (r) => (r.blocked ? 1 : 0),
      ],
    ]
    for (const [name, help, read] of gauges) {
      new Gauge({
        name,
        help,
        labelNames: ['channel'],
        registers,
        collect: perRelay(read),
      })
    }
  }

  /** Counts one PULL socket event (pass as `PullSocketOptions.onEvent`). */
  onPullEvent(event: PullSocketEvent, channel: string): void {
    switch (event.type) {
      case 'replied':
        this.#replies.inc({ channel, answer: event.answer })
        break
      case 'ready':
        this.#connections.inc({ mechanism: event.mechanism })
        break
      case 'closed':
        this.#connections.dec({ mechanism: event.mechanism })
        break
      case 'handshake-failed':
        this.#handshakeFailures.inc({ code: event.code })
        break
      case 'refused':
        this.#refused.inc({ code: event.code })
        break
    }
  }

  /** Counts the octets of one message received for `channel`. */
  onMessage(channel: string, message: InboundMessage): void {
    let bytes = 0
    for (const frame of message.frames) bytes += frame.byteLength
    this.#bytesReceived.inc({ channel }, bytes)
  }

  /** Follows a relay's pressure (its `onPressure`), so pushback time counts while it lasts. */
  onPressure(channel: string, full: boolean): void {
    if (full) this.#fullSince.set(channel, Date.now())
    else this.#fullSince.delete(channel)
  }

  readiness(): Readiness {
    const channels: Readiness['channels'] = {}
    const notConnected: string[] = []
    const blockedByChannel: string[] = []
    for (const [channel, relay] of this.#relays) {
      const { blocked } = relay
      channels[channel] = { connected: relay.connected, ...(blocked ? { blocked } : {}) }
      if (!relay.connected) notConnected.push(channel)
      else if (blocked) blockedByChannel.push(channel)
    }
    const ready = notConnected.length === 0 && blockedByChannel.length === 0
    return { ready, channels, notConnected, blockedByChannel }
  }

  /** Serves `/metrics`, `/healthz` and `/readyz`; resolves with the bound address. */
  listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) response.writeHead(500, { 'content-type': 'text/plain' })
        response.end(`${(error as Error).message}\n`)
      })
    })
    this.#server = server
    return new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ host, port }, () => {
        server.off('error', reject)
        resolve(server.address() as AddressInfo)
      })
    })
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' })
      response.end('method not allowed\n')
      return
    }
    if (path === '/metrics') {
      const body = await this.registry.metrics()
      response.writeHead(200, { 'content-type': this.registry.contentType })
      response.end(body)
    } else if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' })
      response.end('ok\n')
    } else if (path === '/readyz') {
      const readiness = this.readiness()
      response.writeHead(readiness.ready ? 200 : 503, { 'content-type': 'application/json' })
      response.end(`${JSON.stringify(readiness)}\n`)
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' })
      response.end('not found: try /metrics, /healthz or /readyz\n')
    }
  }

  /** Stops the HTTP server (open scrapes are cut). */
  close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (!server?.listening) return Promise.resolve()
    return new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
}
