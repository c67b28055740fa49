// The bridge: listeners (PULL for PUSH senders, SUB for publishers, ROUTER for REQ and DEALER
// senders, answered once stored) feeding one relay per channel to the Worker. Owns the lifecycle of both, the CURVE key and the allow-list.
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { z85Encode } from '../../shared/z85.ts'
import { ZmtpError, ZmtpErrorCode } from '../zmtp/errors.ts'
import { CookieKeyring } from '../zmtp/mechanisms/curve-cookie.ts'
import { createCurveCrypto } from '../zmtp/mechanisms/curve-crypto.ts'
import { CurveServerMechanism } from '../zmtp/mechanisms/curve-server-mechanism.ts'
import type { Mechanism as ZmtpMechanism } from '../zmtp/mechanisms/mechanism.ts'
import { NullMechanism } from '../zmtp/mechanisms/null-mechanism.ts'
import { ROUTER } from '../zmtp/sockets/router.ts'
import { PULL } from '../zmtp/sockets/socket-type.ts'
import { createSub } from '../zmtp/sockets/sub.ts'
import { AllowList } from './allow-list.ts'
import { type BridgeConfig, ConfigError, type ListenerConfig } from './bridge-config.ts'
import { KeyRateLimiter } from './key-rate-limit.ts'
import { KeyRegistry } from './key-registry.ts'
import type { Logger } from './log.ts'
import { BridgeMetrics } from './metrics.ts'
import { PreauthBudget } from './preauth-budget.ts'
import { type InboundMessage, PullSocket, type PullSocketEvent } from './pull-socket.ts'
import { preparePrivateDirectory } from './relay/private-directory.ts'
import { RelayClient } from './relay/relay-client.ts'
import { Spool } from './relay/spool.ts'

/** The socket type of a listener that takes no options (a SUB takes its subscriptions). */
const SOCKET_TYPES = { pull: PULL, router: ROUTER } as const

export interface RunningListener {
  config: ListenerConfig
  address: AddressInfo
  pull: PullSocket
}

/** A PULL (or SUB) that dials a binding PUSH (or PUB) peer (`--connect`). */
export interface RunningConnector {
  config: ListenerConfig
  pull: PullSocket
}

export interface RunningBridge {
  readonly listeners: RunningListener[]
  readonly connectors: RunningConnector[]
  /** The first listener's bound address (handy with port 0); port 0 when the bridge only dials. */
  readonly address: AddressInfo
  /** One relay per channel. */
  readonly relays: Map<string, RelayClient>
  /** The relay of the first listener's channel. */
  readonly relay: RelayClient
  /** Where `/metrics`, `/healthz` and `/readyz` are served; absent without `--metrics-port`. */
  readonly metricsAddress?: AddressInfo
  /**
   * Graceful stop: stops accepting, reads what the open connections still deliver for a
   * moment, closes them, flushes and waits up to `drainTimeoutMs` for acknowledgements.
   * Resolves with the messages left unacknowledged (0 when everything was stored).
   */
  stop(drainTimeoutMs?: number): Promise<number>
}

/** How long open connections keep being read after the bridge stops accepting. */
const STOP_READ_GRACE_MS = 250

/** Binds every listener and connects a relay per channel. */
export async function startBridge(config: BridgeConfig, logger: Logger): Promise<RunningBridge> {
  const relays = new Map<string, RelayClient>()
  const spools: Spool[] = []
  const listeners: RunningListener[] = []
  const spoolDir = config.spoolDir
  const connectors: RunningConnector[] = []
  const metrics = config.metrics ? new BridgeMetrics(relays) : undefined
  for (const { code, setting, message } of config.warnings) logger.warn({ code, setting }, message)
  // The channels' folders are private; so is the one that holds them.
  if (spoolDir) preparePrivateDirectory(spoolDir, logger.child({ component: 'spool' }))
  for (const { channel } of [...config.listeners, ...config.connects]) {
    if (relays.has(channel)) continue
    let spool: Spool | undefined
    if (spoolDir) {
      if (channel === '.' || channel === '..') {
        throw new ConfigError('--spool-dir', `channel "${channel}" cannot name a spool folder`)
      }
      try {
        spool = Spool.open({
          dir: join(spoolDir, channel),
          bridgeId: config.bridgeId,
          ...(config.bridgeIdSource ? { bridgeIdSource: config.bridgeIdSource } : {}),
          segmentBytes: config.spoolSegmentBytes,
          fsync: config.spoolFsync,
          logger: logger.child({ component: 'spool', channel }),
        })
      } catch (error) {
        for (const opened of spools) opened.close()
        throw error
      }
      spools.push(spool)
    }
    relays.set(
      channel,
      new RelayClient({
        ...config,
        channel,
        ...(spool ? { spool } : {}),
        logger: logger.child({ component: 'relay', channel }),
        // A full relay pauses the listeners that feed it; TCP pushes back on their clients.
        onPressure: (full) => {
          metrics?.onPressure(channel, full)
          for (const { config: fed, pull } of [...listeners, ...connectors]) {
            if (fed.channel === channel) pull.setPaused(full)
          }
        },
        // The channel says how large a message it stores: a larger one closes its ZeroMQ
        // connection at once (as libzmq past ZMQ_MAXMSGSIZE), so it never makes the channel
        // refuse a batch that holds others.
        onLimits: ({ maxMessageBytes }) => {
          if (maxMessageBytes < config.maxMessageSize) {
            logger.info(
              { channel, maxMessageBytes, configured: config.maxMessageSize },
              'the channel stores smaller messages than --max-message-size: larger ones are refused',
            )
          }
          for (const { config: fed, pull } of [...listeners, ...connectors]) {
            if (fed.channel === channel) pull.setMaxMessageSize(maxMessageBytes)
          }
        },
      }),
    )
  }

  let metricsAddress: AddressInfo | undefined
  if (metrics && config.metrics) {
    try {
      metricsAddress = await metrics.listen(config.metrics.host, config.metrics.port)
    } catch (error) {
      for (const opened of spools) opened.close()
      throw error
    }
    logger.info(
      { metrics: `http://${formatHost(metricsAddress.address)}:${metricsAddress.port}/metrics` },
      'serving metrics, /healthz and /readyz',
    )
  }

  let allowList: AllowList | undefined
  let keyRegistry: KeyRegistry | undefined
  const rateLimiter = new KeyRateLimiter()
  let expiryTimer: NodeJS.Timeout | undefined
  const curve = config.curve
  let createCurve:
    | ((socketType: string, channel: string, identity?: Uint8Array) => ZmtpMechanism)
    | undefined
  if (curve) {
    logger.info(
      {
        z85: z85Encode(curve.publicKey),
        base64: Buffer.from(curve.publicKey).toString('base64'),
      },
      'CURVE server public key (give it to clients)',
    )
    if (curve.keyRegistry) {
      keyRegistry = new KeyRegistry({
        workerUrl: config.workerUrl,
        ingestToken: config.ingestToken,
        bridgeId: config.bridgeId,
        connectedKeys: () =>
          [...listeners, ...connectors].flatMap(({ config: listener, pull }) =>
            listener.mechanism === 'CURVE'
              ? pull
                  .readyPeers()
                  .flatMap((peer) => (peer.publicKey ? [z85Encode(peer.publicKey)] : []))
              : [],
          ),
        ...(curve.keyRegistry.stateDir ? { stateDir: curve.keyRegistry.stateDir } : {}),
        logger: logger.child({ component: 'key-registry' }),
      })
      if (!curve.keyRegistry.stateDir) {
        logger.warn(
          'key registry without --state-dir: a restart while the Worker is unreachable admits no CURVE client until it answers',
        )
      }
    } else if (curve.allowFile) {
      allowList = new AllowList(curve.allowFile, logger.child({ component: 'allow-list' }))
    } else {
      logger.warn(
        'CURVE without an allow-list: any client that knows the server public key may connect',
      )
    }
    const crypto = createCurveCrypto()
    // libsodium unless sodium-native has no binary for this platform: then a slower fallback.
    if (crypto.backend === 'sodium') logger.info({ backend: crypto.backend }, 'CURVE crypto')
    else logger.warn({ backend: crypto.backend }, 'CURVE crypto: libsodium unavailable, slower')
    const cookieKeys = new CookieKeyring({ crypto })
    const list = allowList
    const registry = keyRegistry
    createCurve = (socketType, channel, identity) =>
      new CurveServerMechanism({
        secretKey: curve.secretKey,
        publicKey: curve.publicKey,
        socketType,
        ...(identity ? { identity } : {}),
        crypto,
        cookieKeys,
        ...(registry
          ? {
              authorize: (key: Uint8Array) => {
                const verdict = registry.admission(key, channel)
                if (verdict !== 'admitted') registry.refused(key, verdict)
                return verdict === 'admitted'
              },
            }
          : list
            ? { authorize: (key: Uint8Array) => list.has(key) }
            : {}),
      })
  }

  // One budget for every listener: unauthenticated peers cannot add up to more than this.
  const preauthBudget = new PreauthBudget(config.preauthBudgetBytes)
  const partialMessageBudget = new PreauthBudget(config.partialMessageBudgetBytes)
  const createPull = (listener: ListenerConfig, dialled: boolean) => {
    const relay = relays.get(listener.channel) as RelayClient
    const socketType =
      listener.socket === 'sub' ? createSub(listener.subscribe) : SOCKET_TYPES[listener.socket]
    const curveFor = createCurve
    const identity = listener.routingId
    const createMechanism =
      listener.mechanism === 'CURVE' && curveFor
        ? () => curveFor(socketType.name, listener.channel, identity)
        : () => new NullMechanism(socketType.name, { dialled, ...(identity ? { identity } : {}) })
    const pull = new PullSocket({
      host: listener.bind.host,
      port: listener.bind.port,
      createMechanism,
      socketType,
      handshakeTimeoutMs: config.handshakeTimeoutMs,
      maxMessageSize: config.maxMessageSize,
      maxFramesPerMessage: config.maxFramesPerMessage,
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      preauthBudget,
      partialMessageBudget,
      handshakesPerSecondPerIp:
        listener.mechanism === 'CURVE' ? config.curveHandshakeRate : config.nullConnectionRate,
      handshakeBackoffMaxMs: config.handshakeBackoffMs,
      allowZmtp2: listener.mechanism === 'NULL' && config.allowZmtp2,
      heartbeatIvlMs: config.heartbeatIvlMs,
      heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      logger: logger.child({
        component: 'zmtp',
        [dialled ? 'connect' : 'listener']: listener.endpoint,
      }),
      onMessage: (message, onReceipt) => {
        metrics?.onMessage(listener.channel, message)
        if (keyRegistry && message.publicKey) {
          let bytes = 0
          for (const frame of message.frames) bytes += frame.length
          keyRegistry.accepted(message.publicKey, bytes, message.receivedAt)
          const keyName = keyRegistry.nameOf(message.publicKey)
          if (keyName !== undefined) message.keyName = keyName
        }
        relay.enqueue(message, onReceipt)
      },
      ...(metrics || keyRegistry
        ? {
            onEvent: (event: PullSocketEvent) => {
              metrics?.onPullEvent(event, listener.channel)
              // A CURVE handshake that failed its crypto (a bad box): reported without a key.
              if (
                keyRegistry &&
                listener.mechanism === 'CURVE' &&
                event.type === 'handshake-failed' &&
                event.code === ZmtpErrorCode.CRYPTOGRAPHIC
              ) {
                keyRegistry.refused(undefined, 'bad_box')
              }
            },
          }
        : {}),
      ...(keyRegistry && listener.mechanism === 'CURVE'
        ? { throttle: throttleBy(keyRegistry, rateLimiter) }
        : {}),
    })
    pull.setPaused(relay.full)
    return pull
  }

  for (const listener of config.listeners) {
    const pull = createPull(listener, false)
    const address = await pull.listen()
    listeners.push({ config: listener, address, pull })
    logger.info(
      {
        bind: `${address.address}:${address.port}`,
        mechanism: listener.mechanism,
        socket: listener.socket,
        channel: listener.channel,
      },
      'listening',
    )
    if (listener.mechanism === 'NULL' && !isLoopback(address.address)) {
      // RFC 23: NULL has no authentication; whoever reaches the port writes to the channel.
      logger.warn(
        {
          bind: `${formatHost(address.address)}:${address.port}`,
          channel: listener.channel,
          hint: 'bind 127.0.0.1 (behind a tunnel or proxy), firewall the port, or use CURVE',
        },
        'NULL listener on a non-loopback interface: no authentication',
      )
    }
  }

  for (const target of config.connects) {
    const pull = createPull(target, true)
    pull.connect(target.bind.host, target.bind.port)
    connectors.push({ config: target, pull })
    logger.info(
      {
        connect: target.endpoint,
        mechanism: target.mechanism,
        socket: target.socket,
        channel: target.channel,
      },
      'dialling',
    )
  }

  // Clients whose key leaves the allow-list are disconnected at once: an allow-list is a
  // security control, and a removed key should not keep a session open.
  allowList?.watch(() => {
    const list = allowList as AllowList
    for (const { pull } of [...listeners, ...connectors]) {
      const closed = pull.closeWhere(
        (peer) => peer.publicKey !== undefined && !list.has(peer.publicKey),
        new ZmtpError(
          ZmtpErrorCode.AUTHENTICATION_FAILED,
          'client key removed from the allow-list',
        ),
      )
      if (closed > 0) logger.info({ closed }, 'disconnected clients removed from the allow-list')
    }
  })

  // With the key registry, a client whose key is revoked, expired, deleted or no longer allowed
  // on its listener's channel is disconnected once the change arrives (and expiries are checked
  // every second): its later sends are never read.
  if (keyRegistry) {
    const registry = keyRegistry
    const enforce = () => {
      const now = Date.now()
      for (const { config: listener, pull } of [...listeners, ...connectors]) {
        if (listener.mechanism !== 'CURVE') continue
        const closed = pull.closeWhere(
          (peer) =>
            peer.publicKey !== undefined && !registry.admits(peer.publicKey, listener.channel, now),
          new ZmtpError(
            ZmtpErrorCode.AUTHENTICATION_FAILED,
            'client key no longer admitted by the key registry',
          ),
        )
        if (closed > 0) {
          logger.info(
            { closed, channel: listener.channel },
            'disconnected clients the key registry no longer admits',
          )
        }
      }
    }
    registry.onChange(enforce)
    expiryTimer = setInterval(enforce, 1000).unref()
    registry.start()
  }

  for (const relay of relays.values()) relay.start()
  const statsTimer =
    config.statsIntervalMs > 0
      ? setInterval(() => logStats(logger, relays), config.statsIntervalMs).unref()
      : undefined
  logger.info(
    {
      worker: config.workerUrl,
      // With a spool, each channel keeps the bridge id its spool was written with.
      bridgeId: relays.values().next().value?.bridgeId ?? config.bridgeId,
      channels: [...relays.keys()],
      ...(spoolDir ? { spoolDir } : {}),
    },
    'bridge started',
  )
  const firstChannel = (listeners[0] ?? connectors[0])?.config.channel as string
  return {
    listeners,
    connectors,
    address: listeners[0]?.address ?? { address: '', family: '', port: 0 },
    relays,
    relay: relays.get(firstChannel) as RelayClient,
    ...(metricsAddress ? { metricsAddress } : {}),
    async stop(drainTimeoutMs = config.drainTimeoutMs) {
      clearInterval(statsTimer)
      allowList?.close()
      keyRegistry?.close()
      await keyRegistry?.flushed()
      clearInterval(expiryTimer)
      for (const { pull } of listeners) pull.stopAccepting()
      // Messages already on their way in are read, unless the relay is full.
      await new Promise((resolve) => setTimeout(resolve, STOP_READ_GRACE_MS))
      // Then nothing more is read, but the connections stay open while the relay drains: a
      // ROUTER listener's senders get the replies to what is stored meanwhile.
      for (const { pull } of [...listeners, ...connectors]) pull.stopReading()
      await Promise.all([...relays.values()].map((relay) => relay.drain(drainTimeoutMs)))
      await Promise.all([...listeners, ...connectors].map(({ pull }) => pull.close()))
      const left = [...relays.values()].reduce((sum, relay) => sum + relay.unacknowledged, 0)
      logStats(logger, relays)
      if (left > 0 && spoolDir) {
        logger.warn(
          { unacknowledged: left, spoolDir },
          'stopped with messages the Worker has not acknowledged; they stay in the spool and are sent after a restart',
        )
      } else if (left > 0) {
        logger.error(
          { unacknowledged: left },
          'stopped with messages the Worker has not acknowledged; they are lost',
        )
      } else {
        logger.info('stopped; every message was acknowledged')
      }
      for (const relay of relays.values()) relay.stop()
      for (const spool of spools) spool.close()
      await metrics?.close()
      return left
    },
  }
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms: reachable from this host only. */
function isLoopback(address: string): boolean {
  return /^(::ffff:)?127\.\d+\.\d+\.\d+$/i.test(address) || address === '::1'
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host
}

/** One log line per channel with the relay's counters. */
function logStats(logger: Logger, relays: Map<string, RelayClient>): void {
  for (const [channel, relay] of relays) {
    logger.info(
      {
        channel,
        ...relay.counters,
        queued: relay.unacknowledged,
        queuedBytes: relay.unacknowledgedBytes,
        inFlight: relay.inFlight,
        connected: relay.connected,
      },
      'relay stats',
    )
  }
}

/** The `throttle` of a CURVE listener: its sender's key's rate limit, when its record has one. */
function throttleBy(registry: KeyRegistry, limiter: KeyRateLimiter) {
  return (message: InboundMessage): number => {
    const { publicKey } = message
    if (!publicKey) return 0
    const limit = registry.rateLimitOf(publicKey)
    if (!limit) return 0
    let bytes = 0
    for (const frame of message.frames) bytes += frame.length
    return limiter.take(Buffer.from(publicKey).toString('hex'), bytes, limit)
  }
}
