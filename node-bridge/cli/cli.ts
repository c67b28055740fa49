// The `zmq-edge` command line: `bridge` runs the gateway's bridge, `keygen` makes CURVE keys,
// `send` is a PUSH client, `tail` and `stats` read a channel through the Worker's HTTP API,
// `consume` runs a command per message of a consumer group,
// `keys` manages the Worker's CURVE key registry.
import { Command, CommanderError } from 'commander'
import { startBridge } from '../bridge/bridge.ts'
import { ConfigError } from '../bridge/bridge-config.ts'
import { createLogger } from '../bridge/log.ts'
import { KeyFormatError } from '../zmtp/mechanisms/curve-keys.ts'
import { readConfigFile } from './config/config-file.ts'
import { parseConfig } from './config/parse-config.ts'
import { addSettingOptions, flagValues, type SettingInfo } from './config/setting.ts'
import { SETTINGS } from './config/settings.ts'
import { CONSUME_SETTINGS, runConsume, stopCommands } from './consume-cli.ts'
import { READER_SETTINGS, runStats, runTail, TAIL_SETTINGS } from './consumer-cli.ts'
import { keygen } from './keygen.ts'
import {
  KEYS_ADD_SETTINGS,
  KEYS_ID_SETTINGS,
  KEYS_IMPORT_SETTINGS,
  KEYS_LIST_SETTINGS,
  type KeysAction,
  runKeys,
} from './keys-cli.ts'
import { runSend, SEND_SETTINGS } from './send.ts'
import { packageVersion } from './version.ts'

const program = new Command('zmq-edge')
  .description('Bring ZeroMQ PUSH traffic to Cloudflare: the bridge and its tools')
  .version(packageVersion(), '-V, --version', 'print the version')
  .showHelpAfterError()

const bridge = program
  .command('bridge', { isDefault: true })
  .description('accept ZeroMQ PUSH clients and relay their messages to the Worker')
  .option(
    '--config <path>',
    'a file of settings: .yaml or .yml is read as YAML, .json and any other name as JSON; variables and flags win over it [ZMQ_EDGE_CONFIG]',
  )
  .addHelpText(
    'after',
    '\nEvery option can also be set by the environment variable shown, or in the --config\n' +
      'file under its flag name without the dashes (hwm-messages: 50000) or in camelCase\n' +
      '(hwmMessages: 50000); repeatable ones take a list. docs/zmq-edge.example.yaml shows\n' +
      'every setting with its default.',
  )
addSettingOptions(bridge, SETTINGS)
bridge.action(async (options: Record<string, unknown>) => {
  const flags = flagValues(SETTINGS, options)
  // Precedence: flags, then environment variables, then the config file.
  const configPath = (options.config as string | undefined) ?? process.env.ZMQ_EDGE_CONFIG
  const file = configPath ? readConfigFile(configPath) : undefined
  const config = parseConfig(flags, process.env, file ? { file } : {})
  const logger = createLogger(config.logLevel)
  const running = await startBridge(config, logger)

  let stopping = false
  const shutdown = (signal: string) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'stopping')
    running.stop().then(
      (left) => process.exit(left === 0 ? 0 : 1),
      () => process.exit(1),
    )
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
})

program
  .command('keygen')
  .description('generate a CURVE key pair (Z85, base64 and hex)')
  .option(
    '--secret-file <path>',
    'write the secret key to this file (Z85, mode 0600) instead of printing it',
  )
  .option('--public-file <path>', 'also write the public key to this file (Z85)')
  .action((options: { secretFile?: string; publicFile?: string }) => {
    process.stdout.write(keygen(options))
  })

const send = program
  .command('send')
  .description(
    'send messages as a ZeroMQ PUSH client (NULL or CURVE); lines of stdin when none given',
  )
  .argument('[message...]', 'messages to send ({n} becomes the sequence number)')
addSettingOptions(send, SEND_SETTINGS).action(
  async (messages: string[], options: Record<string, unknown>) => {
    const abort = new AbortController()
    process.once('SIGINT', () => abort.abort())
    const code = await runSend(messages, flagValues(SEND_SETTINGS, options), {
      stdin: process.stdin,
      stdout: process.stdout,
      stderr: process.stderr,
      signal: abort.signal,
    })
    process.exit(code)
  },
)

addSettingOptions(
  program
    .command('tail')
    .description(
      'follow a channel by long poll (or SSE), one line per message (frames joined by " | "); Ctrl-C stops',
    ),
  TAIL_SETTINGS,
).action(async (options: Record<string, unknown>) => {
  const abort = new AbortController()
  process.once('SIGINT', () => abort.abort())
  process.once('SIGTERM', () => abort.abort())
  // A closed pipe (`| head`) ends the command quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0)
  })
  const code = await runTail(flagValues(TAIL_SETTINGS, options), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: abort.signal,
  })
  process.exit(code)
})

addSettingOptions(
  program.command('stats').description("print a channel's log, queue, bridges and counters"),
  READER_SETTINGS,
).action(async (options: Record<string, unknown>) => {
  const code = await runStats(flagValues(READER_SETTINGS, options), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
  })
  process.exit(code)
})

addSettingOptions(
  program
    .command('consume')
    .description(
      'run a command once per message of a consumer group (the message on its stdin): exit 0 acks it, anything else retries it; Ctrl-C stops once the running commands finish',
    ),
  CONSUME_SETTINGS,
).action(async (options: Record<string, unknown>) => {
  const abort = new AbortController()
  // The first Ctrl-C lets the running commands finish; a second stops them, and exits.
  const interrupt = () => {
    if (!abort.signal.aborted) return abort.abort()
    stopCommands()
    process.exit(130)
  }
  process.on('SIGINT', interrupt)
  process.on('SIGTERM', interrupt)
  const code = await runConsume(flagValues(CONSUME_SETTINGS, options), {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    signal: abort.signal,
  })
  process.exit(code)
})

// `keys`: the Worker's key registry (admin token from ZMQ_EDGE_ADMIN_TOKEN).
const keys = program
  .command('keys')
  .description("manage the Worker's CURVE key registry (bridges with --key-registry enforce it)")
const keysCommands: Array<[KeysAction, string, string | undefined, Record<string, SettingInfo>]> = [
  ['add', 'register a client key', undefined, KEYS_ADD_SETTINGS],
  ['list', 'list the registered keys', undefined, KEYS_LIST_SETTINGS],
  ['show', 'show one key record', '<id>', KEYS_ID_SETTINGS],
  ['revoke', 'revoke a key: bridges close its connections and refuse it', '<id>', KEYS_ID_SETTINGS],
  ['rm', 'delete a key record', '<id>', KEYS_ID_SETTINGS],
  ['import', "register every key of a bridge's allow-list file", '<file>', KEYS_IMPORT_SETTINGS],
]
for (const [action, description, argument, table] of keysCommands) {
  const command = keys.command(action).description(description)
  if (argument) command.argument(argument)
  addSettingOptions(command, table).action(async (...received: unknown[]) => {
    const options = received.at(argument ? 1 : 0) as Record<string, unknown>
    const code = await runKeys(
      action,
      argument ? [received[0] as string] : [],
      flagValues(table, options),
      { stdout: process.stdout, stderr: process.stderr, env: process.env },
    )
    process.exit(code)
  })
}

program.exitOverride()
try {
  await program.parseAsync(process.argv)
} catch (error) {
  if (error instanceof CommanderError) process.exit(error.exitCode)
  if (error instanceof ConfigError || error instanceof KeyFormatError) {
    process.stderr.write(
      `zmq-edge: ${error.message}\nRun zmq-edge bridge --help for the settings.\n`,
    )
  } else {
    process.stderr.write(`zmq-edge: ${(error as Error).stack ?? String(error)}\n`)
  }
  process.exit(2)
}
