// Assembly: the bridge's configuration from flags, environment variables and a config file, in
// that order of precedence, built and validated once. Nothing else in the bridge reads
// process.env.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import {
  type BridgeConfig,
  ConfigError,
  type ConfigWarning,
  ConfigWarningCode,
  type CurveConfig,
  DEFAULT_BIND,
  DEFAULT_MAX_IN_FLIGHT_BATCHES,
  HEARTBEAT_TIMEOUT_IVLS,
  type ListenerConfig,
  MAX_BATCH_BYTES_LIMIT,
} from '../../bridge/bridge-config.ts'
import { derivePublicKey, parseCurveKey } from '../../zmtp/mechanisms/curve-keys.ts'
import type { FileSettings } from './config-file.ts'
import { type SettingInfo, SettingSources } from './setting.ts'
import { type RawSettings, SETTINGS, type SettingName } from './settings.ts'
import {
  parseBind,
  parseBridgeId,
  parseDirectory,
  parseListener,
  parsePort,
  parseToken,
  positiveInteger,
  refuseInsecureWorkerUrl,
} from './values.ts'
export interface ParseConfigOptions {
  /** Reads a key file; tests replace it. */
  readTextFile?: (path: string) => string
  /** Settings from a config file (see {@link readConfigFile}); flags and variables win. */
  file?: FileSettings
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

  const sources = new SettingSources(SETTINGS, flags, env, options.file)
  const raw = (key: SettingName) => sources.raw(key)
  const one = <T>(
    key: SettingName,
    parse: (value: string, source: string) => T,
    fallback?: () => T,
  ): T => sources.one(key, parse, fallback)
  const value = <Key extends SettingName>(key: Key) => sources.value(key)

  const curve = parseCurve(
    raw('curveSecretKey'),
    raw('curveSecretKeyFile'),
    raw('curveAllowFile'),
    readTextFile,
  )
  const channel = value('channel')
  const defaults = { channel, mechanism: curve ? ('CURVE' as const) : ('NULL' as const) }
  const listed = raw('listener')
  const connecting = raw('connect')
  const connects = connecting
    ? connecting.values.map((spec) => parseListener(spec, connecting.source, defaults))
    : []
  let listeners: ListenerConfig[]
  if (listed) {
    listeners = listed.values.map((spec) => parseListener(spec, listed.source, defaults))
  } else if (connecting && !raw('bind')) {
    // Only dialling out: no port is bound unless --bind or --listener asks for one.
    listeners = []
  } else {
    const endpoint = one(
      'bind',
      (text) => text.trim(),
      () => DEFAULT_BIND,
    )
    const source = raw('bind')?.source ?? SETTINGS.bind.flag
    listeners = [
      { endpoint, bind: parseBind(endpoint, source), ...defaults, socket: 'pull', subscribe: [] },
    ]
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
    workerUrl: value('workerUrl'),
    allowInsecureWorkerUrl: value('allowInsecureWorkerUrl'),
    ingestToken: one('ingestToken', parseToken),
    bridgeId: one(
      'bridgeId',
      parseBridgeId,
      () => `${hostname().slice(0, 40)}-${randomBytes(6).toString('hex')}`,
    ),
    spoolSegmentBytes: value('spoolSegmentBytes'),
    spoolFsync: value('spoolFsync'),
    handshakeTimeoutMs: value('handshakeTimeoutMs'),
    maxMessageSize: value('maxMessageSize'),
    maxFramesPerMessage: value('maxFramesPerMessage'),
    maxConnections: value('maxConnections'),
    maxConnectionsPerIp: value('maxConnectionsPerIp'),
    preauthBudgetBytes: value('preauthBudgetBytes'),
    partialMessageBudgetBytes: value('partialMessageBudgetBytes'),
    curveHandshakeRate: value('curveHandshakeRate'),
    nullConnectionRate: value('nullConnectionRate'),
    handshakeBackoffMs: value('handshakeBackoffMs'),
    allowZmtp2: value('allowZmtp2'),
    heartbeatIvlMs: value('heartbeatIvlMs'),
    heartbeatTimeoutMs: 0,
    idleTimeoutMs: value('idleTimeoutMs'),
    maxBatchMessages: value('maxBatchMessages'),
    maxBatchBytes: value('maxBatchBytes'),
    flushDelayMs: value('flushDelayMs'),
    maxInFlightBatches: DEFAULT_MAX_IN_FLIGHT_BATCHES,
    hwmMessages: value('hwmMessages'),
    hwmBytes: value('hwmBytes'),
    reconnectInitialMs: value('reconnectInitialMs'),
    reconnectMaxMs: value('reconnectMaxMs'),
    drainTimeoutMs: value('drainTimeoutMs'),
    statsIntervalMs: value('statsIntervalMs'),
    logLevel: value('logLevel'),
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
      host: value('metricsHost'),
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
  if (value('keyRegistry')) {
    const source = raw('keyRegistry')?.source ?? SETTINGS.keyRegistry.flag
    if (!config.curve) {
      throw new ConfigError(
        source,
        'the key registry admits CURVE clients: set the server secret key too',
      )
    }
    if (config.curve.allowFile) {
      throw new ConfigError(
        `${source} / ${raw('curveAllowFile')?.source ?? SETTINGS.curveAllowFile.flag}`,
        'admit keys by the registry or by an allow-list file, not both',
      )
    }
    const stateDir = raw('stateDir')
    config.curve.keyRegistry = stateDir
      ? { stateDir: parseDirectory(stateDir.values.at(-1) as string, stateDir.source) }
      : {}
  }
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
