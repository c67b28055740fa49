// The bridge: a PULL socket feeding the relay to the Worker. Owns the lifecycle of both.
import type { AddressInfo } from 'node:net'
import type { BridgeConfig } from './config'
import type { Logger } from './log'
import { PullSocket } from './pull-socket'
import { RelayClient } from './relay/relay-client'
import { NullServerMechanism } from './zmtp/null-mechanism'

export interface RunningBridge {
  readonly address: AddressInfo
  readonly relay: RelayClient
  readonly pull: PullSocket
  /** Stops accepting, waits up to `drainTimeoutMs` for acks, then closes. True if all were acked. */
  stop(drainTimeoutMs?: number): Promise<boolean>
}

/** Binds the listener and connects the relay. */
export async function startBridge(config: BridgeConfig, logger: Logger): Promise<RunningBridge> {
  const relay = new RelayClient({ ...config, logger: logger.child({ component: 'relay' }) })
  const pull = new PullSocket({
    host: config.bind.host,
    port: config.bind.port,
    createMechanism: () => new NullServerMechanism('PULL'),
    handshakeTimeoutMs: config.handshakeTimeoutMs,
    maxMessageSize: config.maxMessageSize,
    logger: logger.child({ component: 'zmtp' }),
    onMessage: (message) => relay.enqueue(message),
  })
  relay.start()
  const address = await pull.listen()
  logger.info(
    {
      bind: `${address.address}:${address.port}`,
      channel: config.channel,
      worker: config.workerUrl,
      bridgeId: config.bridgeId,
    },
    'bridge listening',
  )
  return {
    address,
    relay,
    pull,
    async stop(drainTimeoutMs = 5000) {
      await pull.close()
      const drained = await relay.drain(drainTimeoutMs)
      if (!drained) {
        logger.warn(
          { unacknowledged: relay.unacknowledged },
          'stopped with messages not acknowledged',
        )
      }
      relay.stop()
      return drained
    },
  }
}
