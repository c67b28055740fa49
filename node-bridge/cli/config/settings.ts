// The bridge's settings table: every setting's flag, environment variable and help text. It
// drives the flags, the variables, `--help` and the config file's keys (./setting.ts).

import {
  DEFAULT_BIND,
  DEFAULT_CHANNEL,
  DEFAULT_CURVE_HANDSHAKE_RATE,
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_FLUSH_DELAY_MS,
  DEFAULT_HANDSHAKE_BACKOFF_MS,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_IVL_MS,
  DEFAULT_HWM_BYTES,
  DEFAULT_HWM_MESSAGES,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_LOG_LEVEL,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_BATCH_MESSAGES,
  DEFAULT_MAX_MESSAGE_SIZE,
  DEFAULT_METRICS_HOST,
  DEFAULT_NULL_CONNECTION_RATE,
  DEFAULT_RECONNECT_INITIAL_MS,
  DEFAULT_RECONNECT_MAX_MS,
  DEFAULT_SPOOL_SEGMENT_BYTES,
  DEFAULT_STATS_INTERVAL_MS,
  DEFAULT_WORKER_URL,
} from '../../bridge/bridge-config.ts'
import {
  DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES,
  DEFAULT_PREAUTH_BUDGET_BYTES,
} from '../../bridge/preauth-budget.ts'
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_IP,
  DEFAULT_MAX_FRAMES_PER_MESSAGE,
} from '../../bridge/pull-socket.ts'
import type { RawValues, SettingInfo } from './setting.ts'
import {
  batchBytes,
  LOG_LEVELS,
  parseBoolean,
  parseChannel,
  parseHost,
  parseLogLevel,
  parseSwitch,
  parseWorkerUrl,
  positiveInteger,
  wholeNumber,
} from './values.ts'
export const SETTINGS = {
  bind: {
    flag: '--bind',
    env: 'ZMQ_EDGE_BIND',
    description: `where the PULL socket listens, tcp://HOST:PORT; * for IPv4 and IPv6, [::1] style for IPv6 (default ${DEFAULT_BIND})`,
  },
  channel: {
    flag: '--channel',
    env: 'ZMQ_EDGE_CHANNEL',
    description: `the channel messages go to`,
    parse: parseChannel,
    fallback: () => DEFAULT_CHANNEL,
  },
  listener: {
    flag: '--listener',
    env: 'ZMQ_EDGE_LISTENERS',
    description:
      'a listener, tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE][,socket=pull|sub|router][,subscribe=P1|P2][,routingId=ID]; repeat for several (replaces --bind)',
    repeatable: true,
  },
  connect: {
    flag: '--connect',
    env: 'ZMQ_EDGE_CONNECT',
    description:
      'dial a PUSH peer that binds (a PUB with socket=sub, a REQ or DEALER with socket=router), same form as --listener; repeat for several',
    repeatable: true,
  },
  workerUrl: {
    flag: '--worker-url',
    env: 'ZMQ_EDGE_WORKER_URL',
    description: `the Worker's URL: https:// (or wss://), or http:// (ws://) to loopback`,
    parse: parseWorkerUrl,
    fallback: () => DEFAULT_WORKER_URL,
  },
  allowInsecureWorkerUrl: {
    flag: '--allow-insecure-worker-url',
    env: 'ZMQ_EDGE_ALLOW_INSECURE_WORKER_URL',
    description:
      'accept a ws:// Worker URL to a host other than loopback: the ingest token and every message cross the network unencrypted',
    boolean: true,
    parse: parseBoolean,
    fallback: () => false,
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
  keyRegistry: {
    flag: '--key-registry',
    env: 'ZMQ_EDGE_KEY_REGISTRY',
    description:
      "admit on CURVE listeners exactly the keys the Worker's key registry allows on their channel, following its changes (instead of --curve-allow-file)",
    boolean: true,
    parse: parseBoolean,
    fallback: () => false,
  },
  stateDir: {
    flag: '--state-dir',
    env: 'ZMQ_EDGE_STATE_DIR',
    description:
      'keep state here across restarts: the key registry, so a restart while the Worker is unreachable still admits the keys known',
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
    description: `size at which a spool segment file is closed and a new one started`,
    parse: positiveInteger,
    fallback: () => DEFAULT_SPOOL_SEGMENT_BYTES,
  },
  spoolFsync: {
    flag: '--spool-fsync',
    env: 'ZMQ_EDGE_SPOOL_FSYNC',
    description: 'on: fsync every spool write, so it survives power loss, not only a crash',
    parse: parseSwitch,
    fallback: () => false,
  },
  handshakeTimeoutMs: {
    flag: '--handshake-timeout',
    env: 'ZMQ_EDGE_HANDSHAKE_TIMEOUT',
    description: `ms a client has to finish its handshake`,
    parse: positiveInteger,
    fallback: () => DEFAULT_HANDSHAKE_TIMEOUT_MS,
  },
  maxMessageSize: {
    flag: '--max-message-size',
    env: 'ZMQ_EDGE_MAX_MESSAGE_SIZE',
    description: `largest message, all frames, in octets`,
    parse: positiveInteger,
    fallback: () => DEFAULT_MAX_MESSAGE_SIZE,
  },
  maxFramesPerMessage: {
    flag: '--max-frames',
    env: 'ZMQ_EDGE_MAX_FRAMES',
    description: `most frames in one message`,
    parse: positiveInteger,
    fallback: () => DEFAULT_MAX_FRAMES_PER_MESSAGE,
  },
  maxConnections: {
    flag: '--max-connections',
    env: 'ZMQ_EDGE_MAX_CONNECTIONS',
    description: `open connections per listener, at most`,
    parse: positiveInteger,
    fallback: () => DEFAULT_MAX_CONNECTIONS,
  },
  maxConnectionsPerIp: {
    flag: '--max-connections-per-ip',
    env: 'ZMQ_EDGE_MAX_CONNECTIONS_PER_IP',
    description: `open connections from one IP (an IPv6 /64) per listener, at most`,
    parse: positiveInteger,
    fallback: () => DEFAULT_MAX_CONNECTIONS_PER_IP,
  },
  preauthBudgetBytes: {
    flag: '--preauth-budget',
    env: 'ZMQ_EDGE_PREAUTH_BUDGET',
    description: `octets that connections still in their handshake may hold, all listeners together; past it a connection is closed`,
    parse: positiveInteger,
    fallback: () => DEFAULT_PREAUTH_BUDGET_BYTES,
  },
  partialMessageBudgetBytes: {
    flag: '--partial-message-budget',
    env: 'ZMQ_EDGE_PARTIAL_MESSAGE_BUDGET',
    description: `octets of messages not yet whole that ready connections may hold, all listeners together; past it a connection is closed`,
    parse: positiveInteger,
    fallback: () => DEFAULT_PARTIAL_MESSAGE_BUDGET_BYTES,
  },
  curveHandshakeRate: {
    flag: '--curve-handshake-rate',
    env: 'ZMQ_EDGE_CURVE_HANDSHAKE_RATE',
    description: `new connections a second per IP on CURVE listeners, bursts of twice that; 0 for no limit`,
    parse: wholeNumber,
    fallback: () => DEFAULT_CURVE_HANDSHAKE_RATE,
  },
  nullConnectionRate: {
    flag: '--null-connection-rate',
    env: 'ZMQ_EDGE_NULL_CONNECTION_RATE',
    description: `new connections a second per IP on NULL listeners, bursts of twice that; 0 for no limit`,
    parse: wholeNumber,
    fallback: () => DEFAULT_NULL_CONNECTION_RATE,
  },
  handshakeBackoffMs: {
    flag: '--handshake-backoff',
    env: 'ZMQ_EDGE_HANDSHAKE_BACKOFF',
    description: `after a failed handshake, new connections from that IP are refused for 1 s, doubling with each failure up to this many ms, until one succeeds; 0 for none`,
    parse: wholeNumber,
    fallback: () => DEFAULT_HANDSHAKE_BACKOFF_MS,
  },
  allowZmtp2: {
    flag: '--allow-zmtp2',
    env: 'ZMQ_EDGE_ALLOW_ZMTP2',
    description:
      'accept ZMTP 2.0 peers (libzmq 3.x, JeroMQ 0.3) on NULL listeners; never on CURVE ones',
    boolean: true,
    parse: parseBoolean,
    fallback: () => false,
  },
  heartbeatIvlMs: {
    flag: '--heartbeat-ivl',
    env: 'ZMQ_EDGE_HEARTBEAT_IVL',
    description: `ms without traffic before the bridge PINGs a client that greeted as ZMTP 3.1 or later, to drop half-open connections; 0 for none`,
    parse: wholeNumber,
    fallback: () => DEFAULT_HEARTBEAT_IVL_MS,
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
    description: `ms without traffic before a client the bridge does not PING (ZMTP 3.0 or 2.0, or heartbeats off) is closed; 0 for never`,
    parse: wholeNumber,
    fallback: () => DEFAULT_IDLE_TIMEOUT_MS,
  },
  hwmMessages: {
    flag: '--hwm-messages',
    env: 'ZMQ_EDGE_HWM_MESSAGES',
    description: `unacknowledged messages at which the bridge stops reading its ZeroMQ sockets`,
    parse: positiveInteger,
    fallback: () => DEFAULT_HWM_MESSAGES,
  },
  hwmBytes: {
    flag: '--hwm-bytes',
    env: 'ZMQ_EDGE_HWM_BYTES',
    description: `unacknowledged octets at which it stops reading`,
    parse: positiveInteger,
    fallback: () => DEFAULT_HWM_BYTES,
  },
  maxBatchMessages: {
    flag: '--batch-messages',
    env: 'ZMQ_EDGE_BATCH_MESSAGES',
    description: `messages per relay batch, at most`,
    parse: positiveInteger,
    fallback: () => DEFAULT_MAX_BATCH_MESSAGES,
  },
  maxBatchBytes: {
    flag: '--batch-bytes',
    env: 'ZMQ_EDGE_BATCH_BYTES',
    description: `octets per relay batch, at most; up to 32 MiB`,
    parse: batchBytes,
    fallback: () => DEFAULT_MAX_BATCH_BYTES,
  },
  flushDelayMs: {
    flag: '--batch-delay',
    env: 'ZMQ_EDGE_BATCH_DELAY',
    description: `ms a batch waits for more messages`,
    parse: wholeNumber,
    fallback: () => DEFAULT_FLUSH_DELAY_MS,
  },
  reconnectInitialMs: {
    flag: '--reconnect-initial',
    env: 'ZMQ_EDGE_RECONNECT_INITIAL',
    description: `first delay, ms, before reconnecting to the Worker; doubles with jitter`,
    parse: positiveInteger,
    fallback: () => DEFAULT_RECONNECT_INITIAL_MS,
  },
  reconnectMaxMs: {
    flag: '--reconnect-max',
    env: 'ZMQ_EDGE_RECONNECT_MAX',
    description: `longest delay, ms, between reconnects`,
    parse: positiveInteger,
    fallback: () => DEFAULT_RECONNECT_MAX_MS,
  },
  drainTimeoutMs: {
    flag: '--drain-timeout',
    env: 'ZMQ_EDGE_DRAIN_TIMEOUT',
    description: `ms to wait for acknowledgements when stopping`,
    parse: wholeNumber,
    fallback: () => DEFAULT_DRAIN_TIMEOUT_MS,
  },
  statsIntervalMs: {
    flag: '--stats-interval',
    env: 'ZMQ_EDGE_STATS_INTERVAL',
    description: `ms between counter summaries in the log`,
    parse: wholeNumber,
    fallback: () => DEFAULT_STATS_INTERVAL_MS,
  },
  logLevel: {
    flag: '--log-level',
    env: 'ZMQ_EDGE_LOG_LEVEL',
    description: `${LOG_LEVELS.join(', ')}`,
    parse: parseLogLevel,
    fallback: () => DEFAULT_LOG_LEVEL,
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
    description: 'address the metrics server binds (needs --metrics-port)',
    parse: parseHost,
    fallback: () => DEFAULT_METRICS_HOST,
  },
} satisfies Record<string, SettingInfo>

export type SettingName = keyof typeof SETTINGS
/** Raw values as given: strings, or lists of strings for repeatable settings. */
export type RawSettings = RawValues<typeof SETTINGS>
