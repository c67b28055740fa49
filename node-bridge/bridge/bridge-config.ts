// The bridge's configuration: one typed object, its defaults, and the error and warning types
// of building it. The command line builds it (node-bridge/cli/config/); the bridge only reads it.
import type { Mechanism } from '../../shared/relay-protocol.ts'
import type { RelayClientOptions } from './relay/relay-client.ts'

export const DEFAULT_BIND = 'tcp://0.0.0.0:7777'
export const DEFAULT_CHANNEL = 'default'
export const DEFAULT_WORKER_URL = 'ws://127.0.0.1:8787'
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000 // libzmq ZMQ_HANDSHAKE_IVL
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024 // a batch must fit one 32 MiB WebSocket message
export const DEFAULT_MAX_BATCH_MESSAGES = 1000
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024
export const DEFAULT_FLUSH_DELAY_MS = 5
export const DEFAULT_MAX_IN_FLIGHT_BATCHES = 16
export const DEFAULT_HWM_MESSAGES = 100_000
export const DEFAULT_HWM_BYTES = 256 * 1024 * 1024
export const DEFAULT_RECONNECT_INITIAL_MS = 100 // libzmq's reconnect_ivl
export const DEFAULT_RECONNECT_MAX_MS = 10_000
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000
export const DEFAULT_STATS_INTERVAL_MS = 60_000
export const DEFAULT_SPOOL_SEGMENT_BYTES = 64 * 1024 * 1024
/** The Worker accepts WebSocket messages up to 32 MiB; a batch must fit in one. */
export const MAX_BATCH_BYTES_LIMIT = 32 * 1024 * 1024
export const DEFAULT_LOG_LEVEL = 'info'
export const DEFAULT_METRICS_HOST = '127.0.0.1'
/** CURVE handshakes a second per IP; each costs the server about 0.3 ms of CPU. */
export const DEFAULT_CURVE_HANDSHAKE_RATE = 50
/**
 * New connections a second per IP on NULL listeners, bursts of twice that. A libzmq PUSH
 * reconnects at most every 100-200 ms (reconnect_ivl), so 100/s covers 16 sockets reconnecting
 * as fast as they can, and the burst of 200 a host's every sender starting at once.
 */
export const DEFAULT_NULL_CONNECTION_RATE = 100
/**
 * Longest wait imposed on an address after failed handshakes, ms: 1 s after the first, doubling.
 * A libzmq client the server closes on silently (a CURVE client with a wrong server key) retries
 * every 100-200 ms for ever (reconnect_ivl; reconnect_ivl_max only grows the wait between failed
 * TCP connects, and these connect fine); refused at accept, it costs an accept, not a handshake.
 */
export const DEFAULT_HANDSHAKE_BACKOFF_MS = 60_000
/**
 * PING every ZMTP 3.1 peer after this long without traffic (RFC 37), ms; with the timeout, a
 * half-open connection (a peer gone without a FIN: a NAT timeout, a pulled cable) is dropped
 * within 90 s instead of being kept for ever.
 */
export const DEFAULT_HEARTBEAT_IVL_MS = 30_000
/** A peer silent this long after our PING is dropped: twice the interval unless set. */
export const HEARTBEAT_TIMEOUT_IVLS = 2
/**
 * Close a peer that cannot be PINGed (ZMTP 3.0, 2.0) after this long without traffic, ms. Long:
 * libzmq reconnects at once, but a message it writes as we close would be lost.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 600_000

export interface BindAddress {
  host: string
  port: number
}

/**
 * The socket types a listener can be: PULL for PUSH senders, SUB for publishers, ROUTER for REQ
 * and DEALER senders that get a reply once their message is stored.
 */
export const LISTENER_SOCKETS = ['pull', 'sub', 'router'] as const
export type ListenerSocket = (typeof LISTENER_SOCKETS)[number]

/** One TCP port the bridge binds (or dials, with `--connect`), and where its messages go. */
export interface ListenerConfig {
  /** As written, e.g. `tcp://0.0.0.0:7777`. */
  endpoint: string
  bind: BindAddress
  channel: string
  mechanism: Mechanism
  /** The socket type it speaks (default `pull`). */
  socket: ListenerSocket
  /** For `sub`: the prefixes it subscribes to; empty: everything. */
  subscribe: Uint8Array[]
  /** For `router`: its Identity, by which ROUTER peers address it (`routingId=`). */
  routingId?: Uint8Array
}

/** The server's long-term CURVE key pair and the optional client-key allow-list. */
export interface CurveConfig {
  secretKey: Uint8Array
  publicKey: Uint8Array
  /** One client public key per line; when absent, any client that knows the server key may connect. */
  allowFile?: string
  /**
   * Admit the keys of the Worker's key registry instead (./key-registry.ts), its last snapshot
   * kept under `stateDir` when given.
   */
  keyRegistry?: { stateDir?: string }
}

/** The relay's settings, documented where the relay takes them. */
type RelaySettings = Pick<
  RelayClientOptions,
  | 'maxBatchMessages'
  | 'maxBatchBytes'
  | 'flushDelayMs'
  | 'maxInFlightBatches'
  | 'hwmMessages'
  | 'hwmBytes'
  | 'reconnectInitialMs'
  | 'reconnectMaxMs'
>

export interface BridgeConfig extends RelaySettings {
  listeners: ListenerConfig[]
  /** PUSH peers that bind, which the bridge dials (`--connect`), each with its channel and mechanism. */
  connects: ListenerConfig[]
  curve?: CurveConfig
  workerUrl: string
  /** Accept a ws:// Worker URL to a host other than loopback (token and messages in clear). */
  allowInsecureWorkerUrl: boolean
  ingestToken: string
  bridgeId: string
  /** The flag or variable that set `bridgeId`; absent when it was generated. */
  bridgeIdSource?: string
  /** Persist messages here before they count as received; one sub-folder per channel. */
  spoolDir?: string
  spoolSegmentBytes: number
  /** fsync the spool after every write (power loss), not only write it (process crash). */
  spoolFsync: boolean
  handshakeTimeoutMs: number
  maxMessageSize: number
  maxFramesPerMessage: number
  maxConnections: number
  maxConnectionsPerIp: number
  /** Octets that connections not yet READY may hold, all listeners together. */
  preauthBudgetBytes: number
  /** Octets of messages under way on ready connections, all listeners together. */
  partialMessageBudgetBytes: number
  /** New connections a second per IP on CURVE listeners; 0: no limit. */
  curveHandshakeRate: number
  /** New connections a second per IP on NULL listeners; 0: no limit. */
  nullConnectionRate: number
  /** Longest refusal of an address after failed handshakes, ms (1 s, doubling); 0: off. */
  handshakeBackoffMs: number
  /** Accept ZMTP 2.0 peers on NULL listeners. */
  allowZmtp2: boolean
  /** PING every ready ZMTP 3.1 peer this often, ms; 0: only answer the peers' PINGs. */
  heartbeatIvlMs: number
  /** Drop a peer silent this long after our PING, ms. */
  heartbeatTimeoutMs: number
  /** Close a peer we do not PING after this long without traffic, ms; 0: never. */
  idleTimeoutMs: number
  drainTimeoutMs: number
  statsIntervalMs: number
  logLevel: string
  /** Serve Prometheus metrics, /healthz and /readyz over HTTP here; absent: off. */
  metrics?: MetricsAddress
  /** What is allowed but unwise in these settings; the bridge logs them at start. */
  warnings: ConfigWarning[]
}

export const ConfigWarningCode = {
  /** A secret was given as a flag: other local users can read process arguments. */
  SECRET_IN_ARGUMENTS: 'SECRET_IN_ARGUMENTS',
} as const
export type ConfigWarningCode = (typeof ConfigWarningCode)[keyof typeof ConfigWarningCode]

/** A setting that works but should change; `setting` names where it came from. */
export interface ConfigWarning {
  code: ConfigWarningCode
  setting: string
  message: string
}

/** Where the bridge serves `/metrics`, `/healthz` and `/readyz`. */
export interface MetricsAddress {
  host: string
  /** 0: any free port. */
  port: number
}

/** A configuration value that is missing or malformed; the message names the setting. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly setting: string
  constructor(setting: string, message: string, options?: ErrorOptions) {
    super(`${setting}: ${message}`, options)
    this.setting = setting
  }
}
