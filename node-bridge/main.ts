// Command-line entry of the bridge: `npm run bridge -- [--bind tcp://0.0.0.0:7777] …`.
import { parseArgs } from 'node:util'
import { startBridge } from './bridge'
import { ConfigError, parseConfig, SETTINGS, type SettingName } from './config'
import { createLogger } from './log'

function usage(): string {
  const lines = Object.values(SETTINGS).map(
    (setting) => `  ${setting.flag.padEnd(22)} ${setting.env}`,
  )
  return `Usage: zmq-edge bridge [options]\n\nOptions (flag, then environment variable):\n${lines.join('\n')}\n`
}

async function main(): Promise<void> {
  const names = Object.keys(SETTINGS) as SettingName[]
  const { values } = parseArgs({
    options: {
      ...Object.fromEntries(
        names.map((name) => [SETTINGS[name].flag.slice(2), { type: 'string' as const }]),
      ),
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  })
  if (values.help) {
    process.stdout.write(usage())
    return
  }
  const flags: Partial<Record<SettingName, string>> = {}
  for (const name of names) {
    const value = values[SETTINGS[name].flag.slice(2) as keyof typeof values]
    if (typeof value === 'string') flags[name] = value
  }
  const config = parseConfig(flags, process.env)
  const logger = createLogger(config.logLevel)
  const bridge = await startBridge(config, logger)

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'stopping')
    bridge.stop().then(
      (drained) => process.exit(drained ? 0 : 1),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
}

main().catch((error: unknown) => {
  if (
    error instanceof ConfigError ||
    (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
  ) {
    process.stderr.write(`zmq-edge bridge: ${(error as Error).message}\n\n${usage()}`)
  } else {
    process.stderr.write(`zmq-edge bridge: ${(error as Error).stack ?? String(error)}\n`)
  }
  process.exit(2)
})
