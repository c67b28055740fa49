// Bridge configuration: one typed object, built and validated once from flags, environment
// variables and a JSON or YAML config file (in that order of precedence). Nothing else in the
// bridge reads process.env.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { isIPv4, isIPv6 } from 'node:net'
import { hostname } from 'node:os'
import { extname } from 'node:path'
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from 'yaml'
import { BRIDGE_ID_PATTERN, type Mechanism } from '../durable/relay-protocol'
import { derivePublicKey, parseCurveKey } from './keys'
import {
  DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES,
  DEFAULT_PREAUTH_BUDGET_BYTES,
} from './preauth-budget'
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_IP,
  DEFAULT_MAX_FRAMES_PER_MESSAGE,
} from './pull-socket'
import { isSecretKey, SecretMask } from './secret-mask'

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
const MAX_BATCH_BYTES_LIMIT = 32 * 1024 * 1024
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

// As the Worker checks it: names of dots only would be rewritten by URL parsing (`/./`).
const CHANNEL_PATTERN = /^(?!\.+$)[A-Za-z0-9._-]{1,64}$/
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const MECHANISMS: readonly Mechanism[] = ['NULL', 'CURVE']

export interface BindAddress {
  host: string
  port: number
}

/** One TCP port the bridge binds as a PULL socket, and where its messages go. */
export interface ListenerConfig {
  /** As written, e.g. `tcp://0.0.0.0:7777`. */
  endpoint: string
  bind: BindAddress
  channel: string
  mechanism: Mechanism
}

/** The server's long-term CURVE key pair and the optional client-key allow-list. */
export interface CurveConfig {
  secretKey: Uint8Array
  publicKey: Uint8Array
  /** One client public key per line; when absent, any client that knows the server key may connect. */
  allowFile?: string
}

export interface BridgeConfig {
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
  maxBatchMessages: number
  maxBatchBytes: number
  flushDelayMs: number
  maxInFlightBatches: number
  hwmMessages: number
  hwmBytes: number
  reconnectInitialMs: number
  reconnectMaxMs: number
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

/** One setting: its flag, its environment variable, and what it means (for --help). */
export interface SettingInfo {
  flag: string
  env: string
  description: string
  /** May be given more than once (flags) or as a list (the variable: separated by `;`). */
  repeatable?: boolean
  /** A switch: the flag takes no value; the variable takes true/false. */
  boolean?: boolean
  /**
   * A secret: as a flag it draws a warning, naming where to put it instead (the variable, and
   * `instead`). Config-file errors mask it either way.
   */
  secret?: { instead: string }
}

export const SETTINGS = {
  bind: {
    flag: '--bind',
    env: 'ZMQ_EDGE_BIND',
    description: `where the PULL socket listens, tcp://HOST:PORT; * for IPv4 and IPv6, [::1] style for IPv6 (default ${DEFAULT_BIND})`,
  },
  channel: {
    flag: '--channel',
    env: 'ZMQ_EDGE_CHANNEL',
    description: `the channel messages go to (default ${DEFAULT_CHANNEL})`,
  },
  listener: {
    flag: '--listener',
    env: 'ZMQ_EDGE_LISTENERS',
    description:
      'a listener, tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE]; repeat for several (replaces --bind)',
    repeatable: true,
  },
  connect: {
    flag: '--connect',
    env: 'ZMQ_EDGE_CONNECT',
    description:
      'dial a PUSH peer that binds, tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE]; repeat for several',
    repeatable: true,
  },
  workerUrl: {
    flag: '--worker-url',
    env: 'ZMQ_EDGE_WORKER_URL',
    description: `the Worker, wss://, or ws:// to loopback (default ${DEFAULT_WORKER_URL})`,
  },
  allowInsecureWorkerUrl: {
    flag: '--allow-insecure-worker-url',
    env: 'ZMQ_EDGE_ALLOW_INSECURE_WORKER_URL',
    description:
      'accept a ws:// Worker URL to a host other than loopback: the ingest token and every message cross the network unencrypted',
    boolean: true,
  },
  ingestToken: {
    flag: '--ingest-token',
    env: 'ZMQ_EDGE_INGEST_TOKEN',
    description: "the Worker's INGEST_TOKEN (required); prefer the variable to the flag",
    secret: { instead: 'ingestToken in a --config file only the bridge can read' },
  },
  curveSecretKey: {
    flag: '--curve-secret-key',
    env: 'ZMQ_EDGE_CURVE_SECRET_KEY',
    description:
      'the server CURVE secret key, Z85 (40), base64 (44) or hex (64); enables CURVE; prefer the file or the variable',
    secret: { instead: '--curve-secret-key-file' },
  },
  curveSecretKeyFile: {
    flag: '--curve-secret-key-file',
    env: 'ZMQ_EDGE_CURVE_SECRET_KEY_FILE',
    description: 'a file holding the server CURVE secret key, in any of those forms',
  },
  curveAllowFile: {
    flag: '--curve-allow-file',
    env: 'ZMQ_EDGE_CURVE_ALLOW_FILE',
    description: 'client public keys allowed to connect, one per line; reloaded on change',
  },
  bridgeId: {
    flag: '--bridge-id',
    env: 'ZMQ_EDGE_BRIDGE_ID',
    description: 'names this bridge in the relay protocol (default <hostname>-<random>)',
  },
  spoolDir: {
    flag: '--spool-dir',
    env: 'ZMQ_EDGE_SPOOL_DIR',
    description:
      'persist each message here before it counts as received; unacknowledged ones are sent after a restart (default: no spool)',
  },
  spoolSegmentBytes: {
    flag: '--spool-segment-bytes',
    env: 'ZMQ_EDGE_SPOOL_SEGMENT_BYTES',
    description: `size at which a spool segment file is closed and a new one started (default ${DEFAULT_SPOOL_SEGMENT_BYTES})`,
  },
  spoolFsync: {
    flag: '--spool-fsync',
    env: 'ZMQ_EDGE_SPOOL_FSYNC',
    description:
      'on: fsync every spool write, so it survives power loss, not only a crash (default off)',
  },
  handshakeTimeoutMs: {
    flag: '--handshake-timeout',
    env: 'ZMQ_EDGE_HANDSHAKE_TIMEOUT',
    description: `ms a client has to finish its handshake (default ${DEFAULT_HANDSHAKE_TIMEOUT_MS})`,
  },
  maxMessageSize: {
    flag: '--max-message-size',
    env: 'ZMQ_EDGE_MAX_MESSAGE_SIZE',
    description: `largest message, all frames, in octets (default ${DEFAULT_MAX_MESSAGE_SIZE})`,
  },
  maxFramesPerMessage: {
    flag: '--max-frames',
    env: 'ZMQ_EDGE_MAX_FRAMES',
    description: `most frames in one message (default ${DEFAULT_MAX_FRAMES_PER_MESSAGE})`,
  },
  maxConnections: {
    flag: '--max-connections',
    env: 'ZMQ_EDGE_MAX_CONNECTIONS',
    description: `open connections per listener, at most (default ${DEFAULT_MAX_CONNECTIONS})`,
  },
  maxConnectionsPerIp: {
    flag: '--max-connections-per-ip',
    env: 'ZMQ_EDGE_MAX_CONNECTIONS_PER_IP',
    description: `open connections from one IP (an IPv6 /64) per listener, at most (default ${DEFAULT_MAX_CONNECTIONS_PER_IP})`,
  },
  preauthBudgetBytes: {
    flag: '--preauth-budget',
    env: 'ZMQ_EDGE_PREAUTH_BUDGET',
    description: `octets that connections still in their handshake may hold, all listeners together; past it a connection is closed (default ${DEFAULT_PREAUTH_BUDGET_BYTES})`,
  },
  partialMessageBudgetBytes: {
    flag: '--partial-message-budget',
    env: 'ZMQ_EDGE_PARTIAL_MESSAGE_BUDGET',
    description: `octets of messages not yet whole that ready connections may hold, all listeners together; past it a connection is closed (default ${DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES})`,
  },
  curveHandshakeRate: {
    flag: '--curve-handshake-rate',
    env: 'ZMQ_EDGE_CURVE_HANDSHAKE_RATE',
    description: `new connections a second per IP on CURVE listeners, bursts of twice that; 0 for no limit (default ${DEFAULT_CURVE_HANDSHAKE_RATE})`,
  },
  nullConnectionRate: {
    flag: '--null-connection-rate',
    env: 'ZMQ_EDGE_NULL_CONNECTION_RATE',
    description: `new connections a second per IP on NULL listeners, bursts of twice that; 0 for no limit (default ${DEFAULT_NULL_CONNECTION_RATE})`,
  },
  handshakeBackoffMs: {
    flag: '--handshake-backoff',
    env: 'ZMQ_EDGE_HANDSHAKE_BACKOFF',
    description: `after a failed handshake, new connections from that IP are refused for 1 s, doubling with each failure up to this many ms, until one succeeds; 0 for none (default ${DEFAULT_HANDSHAKE_BACKOFF_MS})`,
  },
  allowZmtp2: {
    flag: '--allow-zmtp2',
    env: 'ZMQ_EDGE_ALLOW_ZMTP2',
    description:
      'accept ZMTP 2.0 peers (libzmq 3.x, JeroMQ 0.3) on NULL listeners; never on CURVE ones',
    boolean: true,
  },
  heartbeatIvlMs: {
    flag: '--heartbeat-ivl',
    env: 'ZMQ_EDGE_HEARTBEAT_IVL',
    description: `ms without traffic before the bridge PINGs a client that greeted as ZMTP 3.1 or later, to drop half-open connections; 0 for none (default ${DEFAULT_HEARTBEAT_IVL_MS})`,
  },
  heartbeatTimeoutMs: {
    flag: '--heartbeat-timeout',
    env: 'ZMQ_EDGE_HEARTBEAT_TIMEOUT',
    description:
      'ms without traffic after a PING before a client is dropped (default: twice the interval)',
  },
  idleTimeoutMs: {
    flag: '--idle-timeout',
    env: 'ZMQ_EDGE_IDLE_TIMEOUT',
    description: `ms without traffic before a client the bridge does not PING (ZMTP 3.0 or 2.0, or heartbeats off) is closed; 0 for never (default ${DEFAULT_IDLE_TIMEOUT_MS})`,
  },
  hwmMessages: {
    flag: '--hwm-messages',
    env: 'ZMQ_EDGE_HWM_MESSAGES',
    description: `unacknowledged messages at which the bridge stops reading its ZeroMQ sockets (default ${DEFAULT_HWM_MESSAGES})`,
  },
  hwmBytes: {
    flag: '--hwm-bytes',
    env: 'ZMQ_EDGE_HWM_BYTES',
    description: `unacknowledged octets at which it stops reading (default ${DEFAULT_HWM_BYTES})`,
  },
  maxBatchMessages: {
    flag: '--batch-messages',
    env: 'ZMQ_EDGE_BATCH_MESSAGES',
    description: `messages per relay batch, at most (default ${DEFAULT_MAX_BATCH_MESSAGES})`,
  },
  maxBatchBytes: {
    flag: '--batch-bytes',
    env: 'ZMQ_EDGE_BATCH_BYTES',
    description: `octets per relay batch, at most; up to 32 MiB (default ${DEFAULT_MAX_BATCH_BYTES})`,
  },
  flushDelayMs: {
    flag: '--batch-delay',
    env: 'ZMQ_EDGE_BATCH_DELAY',
    description: `ms a batch waits for more messages (default ${DEFAULT_FLUSH_DELAY_MS})`,
  },
  reconnectInitialMs: {
    flag: '--reconnect-initial',
    env: 'ZMQ_EDGE_RECONNECT_INITIAL',
    description: `first delay, ms, before reconnecting to the Worker; doubles with jitter (default ${DEFAULT_RECONNECT_INITIAL_MS})`,
  },
  reconnectMaxMs: {
    flag: '--reconnect-max',
    env: 'ZMQ_EDGE_RECONNECT_MAX',
    description: `longest delay, ms, between reconnects (default ${DEFAULT_RECONNECT_MAX_MS})`,
  },
  drainTimeoutMs: {
    flag: '--drain-timeout',
    env: 'ZMQ_EDGE_DRAIN_TIMEOUT',
    description: `ms to wait for acknowledgements when stopping (default ${DEFAULT_DRAIN_TIMEOUT_MS})`,
  },
  statsIntervalMs: {
    flag: '--stats-interval',
    env: 'ZMQ_EDGE_STATS_INTERVAL',
    description: `ms between counter summaries in the log (default ${DEFAULT_STATS_INTERVAL_MS})`,
  },
  logLevel: {
    flag: '--log-level',
    env: 'ZMQ_EDGE_LOG_LEVEL',
    description: `${LOG_LEVELS.join(', ')} (default ${DEFAULT_LOG_LEVEL})`,
  },
  metricsPort: {
    flag: '--metrics-port',
    env: 'ZMQ_EDGE_METRICS_PORT',
    description:
      'serve Prometheus /metrics, /healthz and /readyz on this HTTP port; 0 any free port (default: off)',
  },
  metricsHost: {
    flag: '--metrics-host',
    env: 'ZMQ_EDGE_METRICS_HOST',
    description: `address the metrics server binds (default ${DEFAULT_METRICS_HOST}; needs --metrics-port)`,
  },
} satisfies Record<string, SettingInfo>

export type SettingName = keyof typeof SETTINGS
/** Raw values as given: strings, or lists of strings for repeatable settings. */
export type RawSettings = Partial<Record<SettingName, string | string[]>>

function parseBind(raw: string, name: string): BindAddress {
  const match = /^tcp:\/\/(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw.trim())
  const port = match ? Number(match[2]) : Number.NaN
  if (!match || port < 0 || port > 65535) {
    throw new ConfigError(name, `expected tcp://HOST:PORT (e.g. ${DEFAULT_BIND}), got "${raw}"`)
  }
  let host = match[1] as string
  // `*`: every interface, IPv4 and IPv6 (a dual-stack socket; IPv4 alone where IPv6 is off).
  if (host === '*') host = '::'
  if (host.startsWith('[')) host = host.slice(1, -1)
  return { host, port }
}

function parsePort(raw: string, name: string): number {
  const port = /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN
  if (!(port >= 0 && port <= 65535)) {
    throw new ConfigError(name, `expected a TCP port, 0 to 65535 (e.g. 9464), got "${raw}"`)
  }
  return port
}

function parseHost(raw: string, name: string): string {
  const host = raw.trim().replace(/^\[(.*)\]$/, '$1')
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) {
    throw new ConfigError(name, `expected a host name or IP address (e.g. 127.0.0.1), got "${raw}"`)
  }
  return host
}

function parseChannel(raw: string, name: string): string {
  if (!CHANNEL_PATTERN.test(raw)) {
    throw new ConfigError(
      name,
      `expected 1-64 characters of A-Z a-z 0-9 . _ -, not only dots, got "${raw}"`,
    )
  }
  return raw
}

function parseMechanism(raw: string, name: string): Mechanism {
  const value = raw.toUpperCase()
  if (!(MECHANISMS as readonly string[]).includes(value)) {
    throw new ConfigError(name, `expected mechanism=NULL or mechanism=CURVE, got "${raw}"`)
  }
  return value as Mechanism
}

/** `tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE]` */
function parseListener(
  raw: string,
  name: string,
  defaults: { channel: string; mechanism: Mechanism },
): ListenerConfig {
  const [endpoint = '', ...options] = raw.trim().split(',')
  const listener: ListenerConfig = { endpoint, bind: parseBind(endpoint, name), ...defaults }
  for (const option of options) {
    const [key, value = ''] = option.split('=', 2).map((part) => part.trim())
    if (key === 'channel') listener.channel = parseChannel(value, `${name} (${raw})`)
    else if (key === 'mechanism') listener.mechanism = parseMechanism(value, `${name} (${raw})`)
    else {
      throw new ConfigError(
        name,
        `unknown listener option "${option}"; expected tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE]`,
      )
    }
  }
  return listener
}

function parseWorkerUrl(raw: string, name: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(
      name,
      `expected a ws:// or wss:// URL (e.g. ${DEFAULT_WORKER_URL}), got "${raw}"`,
    )
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new ConfigError(name, `expected a ws:// or wss:// URL, got "${raw}"`)
  }
  return raw.replace(/\/+$/, '')
}

/**
 * Refuses ws:// to anything but loopback: the token and the messages would cross the network
 * in clear. Loopback: 127.0.0.0/8 (RFC 1122 3.2.1.3), ::1 and its IPv4-mapped 127/8 (RFC 4291
 * 2.5.3, 2.5.5.2), and the name localhost (RFC 6761 6.3).
 * @throws ConfigError naming `name`, the setting the URL came from.
 */
function refuseInsecureWorkerUrl(workerUrl: string, name: string): void {
  const url = new URL(workerUrl)
  if (url.protocol !== 'ws:') return
  // The URL parser has normalised the host: lower case, IPv4 dotted, IPv6 compressed in [].
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const loopback =
    host === 'localhost' ||
    (isIPv4(host) && host.startsWith('127.')) ||
    (isIPv6(host) && (host === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host)))
  if (loopback) return
  throw new ConfigError(
    name,
    `ws:// to ${url.host} would send the ingest token and every message unencrypted; use wss://, ` +
      `or set ${SETTINGS.allowInsecureWorkerUrl.flag} (${SETTINGS.allowInsecureWorkerUrl.env}=true) ` +
      'for a network you trust',
  )
}

function parseToken(raw: string, name: string): string {
  if (!/^[\x21-\x7e]{1,512}$/.test(raw)) {
    throw new ConfigError(name, 'expected 1-512 printable characters without spaces')
  }
  return raw
}

function parseBridgeId(raw: string, name: string): string {
  if (!BRIDGE_ID_PATTERN.test(raw)) {
    throw new ConfigError(name, `expected 1-128 characters of A-Z a-z 0-9 . _ : -, got "${raw}"`)
  }
  return raw
}

function positiveInteger(raw: string, name: string): number {
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(name, `expected a positive whole number, got "${raw}"`)
  }
  return value
}

function parseBoolean(raw: string, name: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(value)) return true
  if (['false', '0', 'no', 'off'].includes(value)) return false
  throw new ConfigError(name, `expected true or false, got "${raw}"`)
}

function wholeNumber(raw: string, name: string): number {
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value)) {
    throw new ConfigError(name, `expected a whole number (0 or more), got "${raw}"`)
  }
  return value
}

function batchBytes(raw: string, name: string): number {
  const value = positiveInteger(raw, name)
  if (value > MAX_BATCH_BYTES_LIMIT) {
    throw new ConfigError(
      name,
      `must be at most ${MAX_BATCH_BYTES_LIMIT} (the Worker's 32 MiB WebSocket limit), got ${value}`,
    )
  }
  return value
}

function parseSwitch(raw: string, name: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['on', 'true', 'yes', '1'].includes(value)) return true
  if (['off', 'false', 'no', '0'].includes(value)) return false
  throw new ConfigError(name, `expected on or off, got "${raw}"`)
}

function parseDirectory(raw: string, name: string): string {
  if (raw.trim() === '') throw new ConfigError(name, 'expected a directory')
  return raw
}

function parseLogLevel(raw: string, name: string): string {
  if (!LOG_LEVELS.includes(raw)) {
    throw new ConfigError(name, `expected one of ${LOG_LEVELS.join(', ')}, got "${raw}"`)
  }
  return raw
}

export interface ParseConfigOptions {
  /** Reads a key file; tests replace it. */
  readTextFile?: (path: string) => string
  /** Settings from a config file (see {@link readConfigFile}); flags and variables win. */
  file?: FileSettings
}

/** Settings read from a config file, with where they came from. */
export interface FileSettings {
  path: string
  values: RawSettings
  /**
   * What errors call each setting: `path: key` (JSON) or `path:line:col: key` (YAML), with the
   * key as the file spells it. When absent, `path: name`.
   */
  sources?: Partial<Record<SettingName, string>>
}

/** How a config file is read. */
export type ConfigFormat = 'json' | 'yaml'

/** Extensions read as YAML; `.json` and every other name are read as JSON. */
export const YAML_EXTENSIONS = ['.yaml', '.yml'] as const

/** The format a config file is read in, by its extension (case-insensitive). */
export function configFormatOf(path: string): ConfigFormat {
  const extension = extname(path).toLowerCase()
  return (YAML_EXTENSIONS as readonly string[]).includes(extension) ? 'yaml' : 'json'
}

/** Appended to YAML errors where an unquoted value is the likely cause. */
const YAML_QUOTE_HINT =
  'quote a value ("…") that starts with # & * ! | > % @ ` [ ] { } , \' " or holds ": " or " #": YAML reads it as something other than text'

/**
 * Reads a config file: a JSON object or a YAML mapping whose keys are setting names
 * (`hwmMessages`) or flag names without dashes (`hwm-messages`), and whose values are
 * strings, numbers, booleans or, for repeatable settings such as `listener`, lists of them.
 *
 * `.yaml` and `.yml` files are YAML 1.2 (core schema: `on`, `off`, `yes` and `no` are text);
 * `.json` files and files with any other name are JSON. A YAML number or boolean is taken as
 * written (`0x1F` stays `0x1F`, a hex key of digits keeps its digits), so every value is
 * checked exactly as the same text given to the flag would be.
 * @throws ConfigError naming the file and the key at fault, or the file, line and column of a
 *   syntax error or a key given twice.
 */
export function readConfigFile(
  path: string,
  readTextFile: (path: string) => string = (file) => readFileSync(file, 'utf8'),
): FileSettings {
  let text: string
  try {
    text = readTextFile(path)
  } catch (cause) {
    throw new ConfigError('--config', `cannot read ${path}: ${(cause as Error).message}`, {
      cause,
    })
  }
  text = text.replace(/^\uFEFF/, '') // a byte order mark, as some Windows editors write
  return configFormatOf(path) === 'yaml' ? readYaml(path, text) : readJson(path, text)
}

/** One top-level key of a config file, before it is checked against {@link SETTINGS}. */
interface FileEntry {
  key: string
  /** Names the key in errors. */
  label: string
  /** Plain data: YAML numbers and booleans already turned back into the text as written. */
  value: unknown
}

function readJson(path: string, text: string): FileSettings {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    // V8 gives the offset for most errors; for an unexpected token it quotes the text instead.
    let message = (cause as Error).message
      .replace(/^(Unexpected token '.*?'), .*is not valid JSON$/s, '$1')
      .replace(/ \(line \d+ column \d+\)/, '')
    const at = /at position (\d+)/.exec(message)
    const offset = at ? Number(at[1]) : /end of JSON input/.test(message) ? text.length : undefined
    const where = offset === undefined ? undefined : linePosition(text, offset)
    const secrets = new SecretMask(text, 'json')
    // The token V8 quotes is the character at the offset: inside a secret, it is not shown.
    if (where && secrets.covers(where.line, where.col)) {
      message = message.replace(/^(Unexpected token) '.*?'/s, '$1')
    }
    const named =
      extname(path).toLowerCase() === '.json'
        ? ''
        : '\n  read as JSON because the name does not end in .json, .yaml or .yml; name a YAML file .yaml or .yml'
    throw new ConfigError(
      where ? `${path}:${where.line}:${where.col}` : path,
      `not valid JSON: ${secrets.scrub(message.replace(/ at position \d+/, ''))}${where ? excerpt(text, where.line, where.col, 'json') : ''}${named}`,
      { cause },
    )
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('--config', `${path} must hold a JSON object of settings`)
  }
  // JSON.parse keeps the last of two equal keys; YAML 1.2 reads JSON and reports them.
  const duplicate = parseDocument(text, { schema: 'core', prettyErrors: false }).errors.find(
    (error) => error.code === 'DUPLICATE_KEY',
  )
  if (duplicate) {
    const { line, col } = linePosition(text, duplicate.pos[0])
    throw new ConfigError(
      `${path}:${line}:${col}`,
      `this key is given twice; give each setting once${excerpt(text, line, col, 'json')}`,
    )
  }
  const entries = Object.entries(parsed).map(([key, value]) => ({
    key,
    label: `${path}: ${key}`,
    value,
  }))
  return settingsOf(path, entries, '')
}

function readYaml(path: string, text: string): FileSettings {
  const lineCounter = new LineCounter()
  // `schema: 'core'` holds even under a `%YAML 1.1` directive, so `on` and `yes` stay text.
  const doc = parseDocument(text, {
    schema: 'core',
    version: '1.2',
    uniqueKeys: true,
    prettyErrors: false,
    lineCounter,
  })
  const position = (offset: number) => lineCounter.linePos(offset)
  // Warnings (an unknown tag such as `!abc`) change what a value means: errors too.
  const [problem] = [...doc.errors, ...doc.warnings]
  if (problem) {
    const { line, col } = position(problem.pos[0])
    const message =
      problem.code === 'DUPLICATE_KEY'
        ? 'this key is given twice; give each setting once'
        : problem.message
    const hint = ['DUPLICATE_KEY', 'MULTIPLE_DOCS', 'TAB_AS_INDENT'].includes(problem.code)
      ? ''
      : `\n  ${YAML_QUOTE_HINT}`
    throw new ConfigError(
      `${path}:${line}:${col}`,
      `not valid YAML: ${new SecretMask(text, 'yaml').scrub(message)}${excerpt(text, line, col, 'yaml')}${hint}`,
      { cause: problem },
    )
  }
  // A file of comments only holds no settings.
  if (doc.contents === null) return { path, values: {}, sources: {} }
  if (!isMap(doc.contents)) {
    throw new ConfigError(
      '--config',
      new SecretMask(text, 'yaml').scrub(
        `${path} must hold a YAML mapping of settings (name: value), got ${describe(doc.contents.toJS(doc))}`,
      ),
    )
  }
  const entries: FileEntry[] = []
  for (const pair of doc.contents.items) {
    const keyNode = pair.key as Node | null
    const keyAt = position(keyNode?.range?.[0] ?? 0)
    if (!isScalar(keyNode) || typeof keyNode.value === 'object') {
      throw new ConfigError(`${path}:${keyAt.line}:${keyAt.col}`, 'expected a setting name')
    }
    const key = keyNode.source ?? String(keyNode.value)
    const valueNode = pair.value as Node | null
    const at = valueNode?.range ? position(valueNode.range[0]) : keyAt
    const label = `${path}:${at.line}:${at.col}: ${key}`
    entries.push({ key, label, value: yamlValue(valueNode, doc, label, isSecretKey(key)) })
  }
  return settingsOf(path, entries, `; ${YAML_QUOTE_HINT}`)
}

/**
 * A YAML node as plain data, numbers and booleans as the text written. Settings are scalars or
 * lists of scalars, so nothing deeper is expanded: a nested list or a mapping stands as an empty
 * one (refused by the checks with its kind named), and an alias cycle (`&x [*x]`) cannot recurse.
 */
function yamlValue(
  node: Node | null,
  doc: Document,
  label: string,
  secret: boolean,
  depth = 0,
): unknown {
  if (node === null) return null
  if (isAlias(node)) {
    const target = node.resolve(doc)
    if (!target) {
      // A secret that starts with `*` is not repeated in the message.
      const alias = secret ? 'this alias' : `*${node.source}`
      const anchor = secret ? 'its anchor' : `&${node.source}`
      throw new ConfigError(
        label,
        `${alias} refers to no anchor ${anchor}; if it is a value, quote it ("*…")`,
      )
    }
    return yamlValue(target, doc, label, secret, depth)
  }
  if (isScalar(node)) {
    const { value } = node
    if (typeof value === 'number' || typeof value === 'boolean') return node.source ?? String(value)
    return value
  }
  if (isSeq(node)) {
    if (depth > 0) return []
    return node.items.map((item) => yamlValue(item as Node | null, doc, label, secret, depth + 1))
  }
  return {}
}

/** What a value is, for an error message. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)'
  if (Array.isArray(value)) return 'a list'
  if (value instanceof Uint8Array) return 'binary data'
  if (value instanceof Date) return 'a date'
  if (typeof value === 'object') return 'a mapping'
  return `the ${typeof value} ${JSON.stringify(value)}`
}

/** Checks a file's keys and value shapes; `hint` is appended to errors about a value's type. */
function settingsOf(path: string, entries: FileEntry[], hint: string): FileSettings {
  const byFlag = new Map<string, SettingName>()
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[SettingName, SettingInfo]>) {
    byFlag.set(name, name)
    byFlag.set(setting.flag.slice(2), name)
  }
  const values: RawSettings = {}
  const sources: Partial<Record<SettingName, string>> = {}
  const keys: Partial<Record<SettingName, string>> = {}
  for (const { key, label, value } of entries) {
    const name = byFlag.get(key)
    if (!name) {
      throw new ConfigError(
        label,
        `unknown setting; expected one of ${Object.keys(SETTINGS).join(', ')}`,
      )
    }
    if (keys[name] !== undefined) {
      throw new ConfigError(
        label,
        `the same setting as ${keys[name]} above; give each setting once`,
      )
    }
    keys[name] = key
    const setting: SettingInfo = SETTINGS[name]
    const asText = (item: unknown): string => {
      if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean')
        return String(item)
      throw new ConfigError(
        label,
        `expected a string, a number or a boolean, got ${describe(item)}${hint}`,
      )
    }
    if (Array.isArray(value)) {
      if (!setting.repeatable) throw new ConfigError(label, `takes one value, not a list${hint}`)
      values[name] = value.map(asText)
    } else {
      values[name] = asText(value)
    }
    sources[name] = label
  }
  return { path, values, sources }
}

/** 1-based line and column of an offset. */
function linePosition(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset).split('\n')
  return { line: before.length, col: (before.at(-1)?.length ?? 0) + 1 }
}

/** The line at fault, its secret values masked, with a caret under the column. */
function excerpt(text: string, line: number, col: number, format: ConfigFormat): string {
  const masked = new SecretMask(text, format).line(line, col)
  if (masked.text.trim() === '') return ''
  const pad = masked.text.slice(0, masked.col - 1).replace(/[^\t]/g, ' ')
  return `\n  ${masked.text}\n  ${pad}^`
}

/**
 * Builds the bridge configuration from flags (keyed by setting name) and the environment.
 * @throws ConfigError naming the flag or variable of the first bad or missing setting.
 */
export function parseConfig(
  flags: RawSettings,
  env: Record<string, string | undefined>,
  options: ParseConfigOptions = {},
): BridgeConfig {
  const readTextFile = options.readTextFile ?? ((path: string) => readFileSync(path, 'utf8'))

  /** The raw value and the name of where it came from, or undefined. */
  const raw = (key: SettingName): { values: string[]; source: string } | undefined => {
    const setting: SettingInfo = SETTINGS[key]
    const fromFlag = flags[key]
    if (fromFlag !== undefined) {
      return { values: Array.isArray(fromFlag) ? fromFlag : [fromFlag], source: setting.flag }
    }
    const fromEnv = env[setting.env]
    if (fromEnv === undefined || fromEnv === '') {
      const fromFile = options.file?.values[key]
      if (fromFile === undefined) return undefined
      return {
        values: Array.isArray(fromFile) ? fromFile : [fromFile],
        source: options.file?.sources?.[key] ?? `${options.file?.path}: ${key}`,
      }
    }
    const values = setting.repeatable
      ? fromEnv
          .split(';')
          .map((value) => value.trim())
          .filter(Boolean)
      : [fromEnv]
    return { values, source: setting.env }
  }
  const one = <T>(
    key: SettingName,
    parse: (value: string, source: string) => T,
    fallback?: () => T,
  ): T => {
    const found = raw(key)
    if (found) return parse(found.values.at(-1) as string, found.source)
    if (fallback) return fallback()
    throw new ConfigError(`${SETTINGS[key].flag} / ${SETTINGS[key].env}`, 'is required')
  }

  const curve = parseCurve(
    raw('curveSecretKey'),
    raw('curveSecretKeyFile'),
    raw('curveAllowFile'),
    readTextFile,
  )
  const channel = one('channel', parseChannel, () => DEFAULT_CHANNEL)
  const defaults = { channel, mechanism: curve ? ('CURVE' as const) : ('NULL' as const) }
  const listed = raw('listener')
  const connecting = raw('connect')
  const connects = connecting
    ? connecting.values.map((value) => parseListener(value, connecting.source, defaults))
    : []
  let listeners: ListenerConfig[]
  if (listed) {
    listeners = listed.values.map((value) => parseListener(value, listed.source, defaults))
  } else if (connecting && !raw('bind')) {
    // Only dialling out: no port is bound unless --bind or --listener asks for one.
    listeners = []
  } else {
    const endpoint = one(
      'bind',
      (value) => value.trim(),
      () => DEFAULT_BIND,
    )
    const source = raw('bind')?.source ?? SETTINGS.bind.flag
    listeners = [{ endpoint, bind: parseBind(endpoint, source), ...defaults }]
  }
  for (const listener of [...listeners, ...connects]) {
    if (listener.mechanism === 'CURVE' && !curve) {
      throw new ConfigError(
        `${SETTINGS.curveSecretKey.flag} / ${SETTINGS.curveSecretKeyFile.flag}`,
        `listener ${listener.endpoint} speaks CURVE and needs the server secret key`,
      )
    }
  }

  const config: BridgeConfig = {
    listeners,
    connects,
    workerUrl: one('workerUrl', parseWorkerUrl, () => DEFAULT_WORKER_URL),
    allowInsecureWorkerUrl: one('allowInsecureWorkerUrl', parseBoolean, () => false),
    ingestToken: one('ingestToken', parseToken),
    bridgeId: one(
      'bridgeId',
      parseBridgeId,
      () => `${hostname().slice(0, 40)}-${randomBytes(6).toString('hex')}`,
    ),
    spoolSegmentBytes: one('spoolSegmentBytes', positiveInteger, () => DEFAULT_SPOOL_SEGMENT_BYTES),
    spoolFsync: one('spoolFsync', parseSwitch, () => false),
    handshakeTimeoutMs: one(
      'handshakeTimeoutMs',
      positiveInteger,
      () => DEFAULT_HANDSHAKE_TIMEOUT_MS,
    ),
    maxMessageSize: one('maxMessageSize', positiveInteger, () => DEFAULT_MAX_MESSAGE_SIZE),
    maxFramesPerMessage: one(
      'maxFramesPerMessage',
      positiveInteger,
      () => DEFAULT_MAX_FRAMES_PER_MESSAGE,
    ),
    maxConnections: one('maxConnections', positiveInteger, () => DEFAULT_MAX_CONNECTIONS),
    maxConnectionsPerIp: one(
      'maxConnectionsPerIp',
      positiveInteger,
      () => DEFAULT_MAX_CONNECTIONS_PER_IP,
    ),
    preauthBudgetBytes: one(
      'preauthBudgetBytes',
      positiveInteger,
      () => DEFAULT_PREAUTH_BUDGET_BYTES,
    ),
    partialMessageBudgetBytes: one(
      'partialMessageBudgetBytes',
      positiveInteger,
      () => DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES,
    ),
    curveHandshakeRate: one('curveHandshakeRate', wholeNumber, () => DEFAULT_CURVE_HANDSHAKE_RATE),
    nullConnectionRate: one('nullConnectionRate', wholeNumber, () => DEFAULT_NULL_CONNECTION_RATE),
    handshakeBackoffMs: one('handshakeBackoffMs', wholeNumber, () => DEFAULT_HANDSHAKE_BACKOFF_MS),
    allowZmtp2: one('allowZmtp2', parseBoolean, () => false),
    heartbeatIvlMs: one('heartbeatIvlMs', wholeNumber, () => DEFAULT_HEARTBEAT_IVL_MS),
    heartbeatTimeoutMs: 0,
    idleTimeoutMs: one('idleTimeoutMs', wholeNumber, () => DEFAULT_IDLE_TIMEOUT_MS),
    maxBatchMessages: one('maxBatchMessages', positiveInteger, () => DEFAULT_MAX_BATCH_MESSAGES),
    maxBatchBytes: one('maxBatchBytes', batchBytes, () => DEFAULT_MAX_BATCH_BYTES),
    flushDelayMs: one('flushDelayMs', wholeNumber, () => DEFAULT_FLUSH_DELAY_MS),
    maxInFlightBatches: DEFAULT_MAX_IN_FLIGHT_BATCHES,
    hwmMessages: one('hwmMessages', positiveInteger, () => DEFAULT_HWM_MESSAGES),
    hwmBytes: one('hwmBytes', positiveInteger, () => DEFAULT_HWM_BYTES),
    reconnectInitialMs: one(
      'reconnectInitialMs',
      positiveInteger,
      () => DEFAULT_RECONNECT_INITIAL_MS,
    ),
    reconnectMaxMs: one('reconnectMaxMs', positiveInteger, () => DEFAULT_RECONNECT_MAX_MS),
    drainTimeoutMs: one('drainTimeoutMs', wholeNumber, () => DEFAULT_DRAIN_TIMEOUT_MS),
    statsIntervalMs: one('statsIntervalMs', wholeNumber, () => DEFAULT_STATS_INTERVAL_MS),
    logLevel: one('logLevel', parseLogLevel, () => DEFAULT_LOG_LEVEL),
    warnings: secretFlagWarnings(flags),
  }
  config.heartbeatTimeoutMs = one(
    'heartbeatTimeoutMs',
    positiveInteger,
    () => HEARTBEAT_TIMEOUT_IVLS * config.heartbeatIvlMs,
  )
  if (!config.allowInsecureWorkerUrl) {
    refuseInsecureWorkerUrl(config.workerUrl, raw('workerUrl')?.source ?? SETTINGS.workerUrl.flag)
  }
  if (config.reconnectMaxMs < config.reconnectInitialMs) {
    throw new ConfigError(
      SETTINGS.reconnectMaxMs.flag,
      `must be at least --reconnect-initial (${config.reconnectInitialMs} ms), got ${config.reconnectMaxMs}`,
    )
  }
  // A message travels alone in a batch at worst: with its framing (4 octets a frame, its peer's
  // address and key) it must fit one WebSocket message, or no split could ever send it.
  const worstMessage = config.maxMessageSize + 4 * config.maxFramesPerMessage + 512
  if (worstMessage > MAX_BATCH_BYTES_LIMIT) {
    throw new ConfigError(
      raw('maxMessageSize')?.source ?? SETTINGS.maxMessageSize.flag,
      `a message of ${config.maxMessageSize} octets in ${config.maxFramesPerMessage} frames would not fit the Worker's 32 MiB WebSocket limit; lower --max-message-size or --max-frames`,
    )
  }
  if (curve) config.curve = curve
  const metricsPort = raw('metricsPort')
  if (metricsPort) {
    config.metrics = {
      host: one('metricsHost', parseHost, () => DEFAULT_METRICS_HOST),
      port: parsePort(metricsPort.values.at(-1) as string, metricsPort.source),
    }
  } else if (raw('metricsHost')) {
    throw new ConfigError(
      SETTINGS.metricsHost.flag,
      `needs ${SETTINGS.metricsPort.flag} (or ${SETTINGS.metricsPort.env}) to be set`,
    )
  }
  const bridgeIdSource = raw('bridgeId')?.source
  if (bridgeIdSource) config.bridgeIdSource = bridgeIdSource
  const spoolDir = raw('spoolDir')
  if (spoolDir) config.spoolDir = parseDirectory(spoolDir.values.at(-1) as string, spoolDir.source)
  return config
}

/**
 * A warning for each secret given as a flag: any local user can read a process's arguments
 * (ps(1), /proc/<pid>/cmdline in proc(5)), but not its environment or a private file.
 */
function secretFlagWarnings(flags: RawSettings): ConfigWarning[] {
  const warnings: ConfigWarning[] = []
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[SettingName, SettingInfo]>) {
    if (!setting.secret || flags[name] === undefined) continue
    warnings.push({
      code: ConfigWarningCode.SECRET_IN_ARGUMENTS,
      setting: setting.flag,
      message:
        `${setting.flag} puts a secret in the process arguments, which other local users can read ` +
        `(ps, /proc/<pid>/cmdline); set ${setting.env} (e.g. from a systemd EnvironmentFile) or use ${setting.secret.instead}`,
    })
  }
  return warnings
}

type Raw = { values: string[]; source: string } | undefined

function parseCurve(
  key: Raw,
  keyFile: Raw,
  allowFile: Raw,
  readTextFile: (path: string) => string,
): CurveConfig | undefined {
  if (key && keyFile) {
    throw new ConfigError(
      `${key.source} / ${keyFile.source}`,
      'give the secret key or its file, not both',
    )
  }
  let secretKey: Uint8Array | undefined
  if (key) secretKey = parseCurveKey(key.values.at(-1) as string, key.source)
  if (keyFile) {
    const path = keyFile.values.at(-1) as string
    let text: string
    try {
      text = readTextFile(path)
    } catch (cause) {
      throw new ConfigError(keyFile.source, `cannot read ${path}: ${(cause as Error).message}`, {
        cause,
      })
    }
    secretKey = parseCurveKey(text, `${keyFile.source} (${path})`)
  }
  if (!secretKey) {
    if (allowFile) {
      throw new ConfigError(
        allowFile.source,
        'an allow-list needs CURVE: set the server secret key too',
      )
    }
    return undefined
  }
  const curve: CurveConfig = { secretKey, publicKey: derivePublicKey(secretKey) }
  if (allowFile) curve.allowFile = allowFile.values.at(-1) as string
  return curve
}
