// Local development helpers shared by `npm start` and `npm run dev:worker`: dev tokens in
// .dev.vars, and the environment that keeps wrangler offline and its files inside the project.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { readConfigFile } from '../cli/config/config-file.ts'
import { SETTINGS } from '../cli/config/settings.ts'

export const DEV_VARS_FILE = '.dev.vars'
export const DEV_READ_TOKEN = 'dev-read-token'
export const DEV_INGEST_TOKEN = 'dev-ingest-token'
export const DEV_ADMIN_TOKEN = 'dev-admin-token'
/** Where `npm start`'s bridge listens unless told otherwise: this machine only. */
export const DEV_BIND = 'tcp://127.0.0.1:7777'

/**
 * Creates .dev.vars with the dev tokens when it does not exist; returns its variables. One made
 * before ADMIN_TOKEN existed is left as it is (it may hold tokens of the developer's own): how
 * to add it is said instead.
 */
export function ensureDevVars(root: string): Record<string, string> {
  const path = join(root, DEV_VARS_FILE)
  if (!existsSync(path)) {
    writeFileSync(
      path,
      `READ_TOKEN=${DEV_READ_TOKEN}\nINGEST_TOKEN=${DEV_INGEST_TOKEN}\nADMIN_TOKEN=${DEV_ADMIN_TOKEN}\n`,
      { mode: 0o600 },
    )
    process.stdout.write(`created ${DEV_VARS_FILE} with the dev tokens\n`)
  }
  const vars = readVars(readFileSync(path, 'utf8'))
  if (vars.ADMIN_TOKEN === undefined) {
    process.stdout.write(
      `${DEV_VARS_FILE} has no ADMIN_TOKEN: add a line ADMIN_TOKEN=<a secret> to manage scoped tokens\n`,
    )
  }
  return vars
}

function readVars(text: string): Record<string, string> {
  const vars: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line)
    if (match) vars[match[1] as string] = (match[2] as string).replace(/^(["'])(.*)\1$/, '$2')
  }
  return vars
}

/**
 * wrangler settings for offline, quiet runs, its files inside the project:
 * https://developers.cloudflare.com/workers/wrangler/system-environment-variables/
 */
export function wranglerEnv(root: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: 'false',
    CLOUDFLARE_CF_FETCH_ENABLED: 'false',
    WRANGLER_HIDE_BANNER: 'true',
    WRANGLER_SEND_ERROR_REPORTS: 'false',
    XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME ?? join(root, '.wrangler', 'xdg-config'),
    WRANGLER_LOG_PATH: process.env.WRANGLER_LOG_PATH ?? join(root, '.wrangler', 'logs'),
  }
}

/** The wrangler CLI script inside node_modules, run with this Node. */
export function wranglerBin(root: string): string {
  return join(root, 'node_modules', 'wrangler', 'bin', 'wrangler.js')
}

/** The settings that decide where the bridge listens (or that it only dials out). */
const PLACEMENT = [SETTINGS.bind, SETTINGS.listener, SETTINGS.connect]

/**
 * The environment of the bridge `npm start` runs: the local Worker and the dev token, and
 * {@link DEV_BIND} (loopback, where the bridge itself defaults to every interface) unless the
 * arguments, the environment or the config file say where to listen. Variables win over the
 * config file, so the bind is set only when the file is silent too.
 */
export function devBridgeEnv(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  defaults: { workerUrl: string; ingestToken: string | undefined },
  readTextFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): NodeJS.ProcessEnv {
  const bridgeEnv: NodeJS.ProcessEnv = {
    ...env,
    ZMQ_EDGE_WORKER_URL: env.ZMQ_EDGE_WORKER_URL ?? defaults.workerUrl,
  }
  const token = env.ZMQ_EDGE_INGEST_TOKEN ?? defaults.ingestToken
  if (token !== undefined) bridgeEnv.ZMQ_EDGE_INGEST_TOKEN = token
  const given = (flag: string) => argv.some((arg) => arg === flag || arg.startsWith(`${flag}=`))
  const configPath = flagValue(argv, '--config') ?? env.ZMQ_EDGE_CONFIG
  const placed =
    PLACEMENT.some((setting) => given(setting.flag) || Boolean(env[setting.env])) ||
    (configPath !== undefined && configPlaces(configPath, readTextFile))
  if (!placed) bridgeEnv[SETTINGS.bind.env] = DEV_BIND
  return bridgeEnv
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  for (const [index, arg] of argv.entries()) {
    if (arg === flag) return argv[index + 1]
    if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1)
  }
  return undefined
}

/** Whether a config file sets where to listen; a file that cannot be read is the bridge's to report. */
function configPlaces(path: string, readTextFile: (path: string) => string): boolean {
  try {
    const { values } = readConfigFile(path, readTextFile)
    return (
      values.bind !== undefined || values.listener !== undefined || values.connect !== undefined
    )
  } catch {
    return true
  }
}
