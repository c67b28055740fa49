// Bridge configuration: one typed object, built and validated once from flags and environment
// variables (flags win). Nothing else in the bridge reads process.env.

import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'

export const DEFAULT_BIND = 'tcp://0.0.0.0:7777'
export const DEFAULT_CHANNEL = 'default'
export const DEFAULT_WORKER_URL = 'ws://127.0.0.1:8787'
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000 // libzmq ZMQ_HANDSHAKE_IVL
export const DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024 // a batch must fit one 32 MiB WebSocket message
export const DEFAULT_MAX_BATCH_MESSAGES = 1000
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024
export const DEFAULT_FLUSH_DELAY_MS = 5
export const DEFAULT_MAX_IN_FLIGHT_BATCHES = 16
export const DEFAULT_RECONNECT_DELAY_MS = 500
export const DEFAULT_LOG_LEVEL = 'info'

const CHANNEL_PATTERN = /^[A-Za-z0-9._-]{1,64}$/
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface BindAddress {
  host: string
  port: number
}

export interface BridgeConfig {
  bind: BindAddress
  channel: string
  workerUrl: string
  ingestToken: string
  bridgeId: string
  handshakeTimeoutMs: number
  maxMessageSize: number
  maxBatchMessages: number
  maxBatchBytes: number
  flushDelayMs: number
  maxInFlightBatches: number
  reconnectDelayMs: number
  logLevel: string
}

/** A configuration value that is missing or malformed; the message names the setting. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly setting: string
  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`)
    this.setting = setting
  }
}

/** One setting: its flag, its environment variable, and how to read it. */
interface Setting<T> {
  flag: string
  env: string
  parse(raw: string, name: string): T
  fallback?: () => T
}

export const SETTINGS = {
  bind: {
    flag: '--bind',
    env: 'ZMQ_EDGE_BIND',
    parse: parseBind,
    fallback: () => parseBind(DEFAULT_BIND, ''),
  },
  channel: {
    flag: '--channel',
    env: 'ZMQ_EDGE_CHANNEL',
    parse: parseChannel,
    fallback: () => DEFAULT_CHANNEL,
  },
  workerUrl: {
    flag: '--worker-url',
    env: 'ZMQ_EDGE_WORKER_URL',
    parse: parseWorkerUrl,
    fallback: () => DEFAULT_WORKER_URL,
  },
  ingestToken: { flag: '--ingest-token', env: 'ZMQ_EDGE_INGEST_TOKEN', parse: parseToken },
  bridgeId: {
    flag: '--bridge-id',
    env: 'ZMQ_EDGE_BRIDGE_ID',
    parse: parseBridgeId,
    fallback: () => `${hostname().slice(0, 40)}-${randomBytes(6).toString('hex')}`,
  },
  handshakeTimeoutMs: {
    flag: '--handshake-timeout',
    env: 'ZMQ_EDGE_HANDSHAKE_TIMEOUT',
    parse: positiveInteger,
    fallback: () => DEFAULT_HANDSHAKE_TIMEOUT_MS,
  },
  maxMessageSize: {
    flag: '--max-message-size',
    env: 'ZMQ_EDGE_MAX_MESSAGE_SIZE',
    parse: positiveInteger,
    fallback: () => DEFAULT_MAX_MESSAGE_SIZE,
  },
  logLevel: {
    flag: '--log-level',
    env: 'ZMQ_EDGE_LOG_LEVEL',
    parse: parseLogLevel,
    fallback: () => DEFAULT_LOG_LEVEL,
  },
} satisfies Record<string, Setting<unknown>>

export type SettingName = keyof typeof SETTINGS

function parseBind(raw: string, name: string): BindAddress {
  const match = /^tcp:\/\/(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw.trim())
  const port = match ? Number(match[2]) : Number.NaN
  if (!match || port < 0 || port > 65535) {
    throw new ConfigError(name, `expected tcp://HOST:PORT (e.g. ${DEFAULT_BIND}), got "${raw}"`)
  }
  let host = match[1] as string
  if (host === '*') host = '0.0.0.0'
  if (host.startsWith('[')) host = host.slice(1, -1)
  return { host, port }
}

function parseChannel(raw: string, name: string): string {
  if (!CHANNEL_PATTERN.test(raw)) {
    throw new ConfigError(name, `expected 1-64 characters of A-Z a-z 0-9 . _ -, got "${raw}"`)
  }
  return raw
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

function parseToken(raw: string, name: string): string {
  if (!/^[\x21-\x7e]{1,512}$/.test(raw)) {
    throw new ConfigError(name, 'expected 1-512 printable characters without spaces')
  }
  return raw
}

function parseBridgeId(raw: string, name: string): string {
  if (!/^[A-Za-z0-9._:-]{1,128}$/.test(raw)) {
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

function parseLogLevel(raw: string, name: string): string {
  if (!LOG_LEVELS.includes(raw)) {
    throw new ConfigError(name, `expected one of ${LOG_LEVELS.join(', ')}, got "${raw}"`)
  }
  return raw
}

/**
 * Builds the bridge configuration from parsed flags (keyed by setting name) and the environment.
 * @throws ConfigError naming the flag and variable of the first bad or missing setting.
 */
export function parseConfig(
  flags: Partial<Record<SettingName, string>>,
  env: Record<string, string | undefined>,
): BridgeConfig {
  const read = <T>(key: SettingName): T => {
    const setting = SETTINGS[key] as Setting<T>
    const fromFlag = flags[key]
    if (fromFlag !== undefined) return setting.parse(fromFlag, setting.flag)
    const fromEnv = env[setting.env]
    if (fromEnv !== undefined && fromEnv !== '') return setting.parse(fromEnv, setting.env)
    if (setting.fallback) return setting.fallback()
    throw new ConfigError(`${setting.flag} / ${setting.env}`, 'is required')
  }
  return {
    bind: read('bind'),
    channel: read('channel'),
    workerUrl: read('workerUrl'),
    ingestToken: read('ingestToken'),
    bridgeId: read('bridgeId'),
    handshakeTimeoutMs: read('handshakeTimeoutMs'),
    maxMessageSize: read('maxMessageSize'),
    maxBatchMessages: DEFAULT_MAX_BATCH_MESSAGES,
    maxBatchBytes: DEFAULT_MAX_BATCH_BYTES,
    flushDelayMs: DEFAULT_FLUSH_DELAY_MS,
    maxInFlightBatches: DEFAULT_MAX_IN_FLIGHT_BATCHES,
    reconnectDelayMs: DEFAULT_RECONNECT_DELAY_MS,
    logLevel: read('logLevel'),
  }
}
