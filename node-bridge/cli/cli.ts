// The `zmq-edge` command line: `bridge` runs the gateway's bridge, `keygen` makes CURVE keys,
// `send` is a PUSH client, `tail` and `stats` read a channel through the Worker's HTTP API.
import { Command, CommanderError, Option } from 'commander'
import { startBridge } from '../bridge/bridge'
import { ConfigError } from '../bridge/bridge-config'
import { createLogger } from '../bridge/log'
import { KeyFormatError } from '../zmtp/mechanisms/curve-keys'
import { readConfigFile } from './config/config-file'
import { parseConfig } from './config/parse-config'
import { type RawSettings, SETTINGS, type SettingName } from './config/settings'
import {
  DEFAULT_HTTP_URL,
  type ReaderFlags,
  runStats,
  runTail,
  type TailFlags,
} from './consumer-cli'
import { keygen } from './keygen'
import { runSend, type SendFlags } from './send'

const program = new Command('zmq-edge')
  .description('Bring ZeroMQ PUSH traffic to Cloudflare: the bridge and its tools')
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
for (const setting of Object.values(SETTINGS)) {
  const value = 'boolean' in setting ? '' : 'repeatable' in setting ? ' <spec>' : ' <value>'
  const option = new Option(`${setting.flag}${value}`, `${setting.description} [${setting.env}]`)
  if ('repeatable' in setting && setting.repeatable) {
    option.argParser((item: string, previous: string[] | undefined) => [...(previous ?? []), item])
  }
  bridge.addOption(option)
}
bridge.action(async (options: Record<string, string | string[] | boolean | undefined>) => {
  const flags: RawSettings = {}
  for (const [name, setting] of Object.entries(SETTINGS) as Array<
    [SettingName, { flag: string }]
  >) {
    const key = new Option(`${setting.flag} <value>`).attributeName()
    const value = options[key] as string | string[] | boolean | undefined
    if (value === true) flags[name] = 'true'
    else if (value !== undefined && value !== false) flags[name] = value
  }
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

program
  .command('send')
  .description(
    'send messages as a ZeroMQ PUSH client (NULL or CURVE); lines of stdin when none given',
  )
  .argument('[message...]', 'messages to send ({n} becomes the sequence number)')
  .requiredOption(
    '--connect <endpoint>',
    'a PULL server, tcp://HOST:PORT; repeat for several (round-robin)',
    (item: string, previous: string[] | undefined) => [...(previous ?? []), item],
  )
  .option('--count <n>', 'send the messages this many times (default 1)')
  .option('--interval <ms>', 'pause between messages (default 0)')
  .option('--separator <text>', 'split each message into frames (multipart) at this text')
  .option('--curve-server-key <key>', "the server's CURVE public key (Z85, base64 or hex)")
  .option(
    '--curve-secret-key <key>',
    'our CURVE secret key (default: a fresh key pair); other local users can read it in ps: prefer the file',
  )
  .option(
    '--curve-secret-key-file <path>',
    'a file holding our CURVE secret key (Z85, base64 or hex)',
  )
  .option('--linger <ms>', 'how long to wait for a peer at the end; -1 forever (default 10000)')
  .option('--hwm <n>', 'messages queued before sending waits (default 1000)')
  .option('--reconnect-ivl <ms>', 'reconnect interval, plus jitter; -1 never (default 100)')
  .option('--reconnect-ivl-max <ms>', 'back off, doubling up to this (default 0: no backoff)')
  .option('--progress-interval <ms>', 'progress line on stderr this often; 0 none (default 1000)')
  .action(async (messages: string[], options: SendFlags) => {
    const abort = new AbortController()
    process.once('SIGINT', () => abort.abort())
    const code = await runSend(messages, options, {
      stdin: process.stdin,
      stderr: process.stderr,
      signal: abort.signal,
    })
    process.exit(code)
  })

/** Options of the commands that read a channel through the Worker's HTTP API. */
function readerCommand(name: string, description: string): Command {
  return program
    .command(name)
    .description(description)
    .option('--url <url>', `the Worker's base URL [ZMQ_EDGE_URL] (default ${DEFAULT_HTTP_URL})`)
    .option('--channel <name>', 'the channel [ZMQ_EDGE_CHANNEL] (default default)')
    .option('--token <token>', 'the read token [ZMQ_EDGE_READ_TOKEN]')
    .option('--json', 'print JSON instead of text')
}

readerCommand(
  'tail',
  'follow a channel by long poll (or SSE), one line per message (frames joined by " | "); Ctrl-C stops',
)
  .option('--sse', 'follow the Server-Sent Events stream instead of long-polling')
  .option(
    '--after <seq>',
    'start after this sequence number; 0 from the start (default: the newest)',
  )
  .option(
    '--encoding <encoding>',
    'utf8: text frames as text, the others base64 marked "base64:"; base64: every frame (default utf8)',
  )
  .option('--wait <seconds>', 'long-poll wait per request, 0 to 30 (default 30)')
  .action(async (options: TailFlags) => {
    const abort = new AbortController()
    process.once('SIGINT', () => abort.abort())
    process.once('SIGTERM', () => abort.abort())
    // A closed pipe (`| head`) ends the command quietly.
    process.stdout.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(0)
    })
    const code = await runTail(options, {
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
      signal: abort.signal,
    })
    process.exit(code)
  })

readerCommand('stats', "print a channel's log, queue, bridges and counters").action(
  async (options: ReaderFlags) => {
    const code = await runStats(options, {
      stdout: process.stdout,
      stderr: process.stderr,
      env: process.env,
    })
    process.exit(code)
  },
)

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
