// Local development helpers shared by `npm start` and `npm run dev:worker`: dev tokens in
// .dev.vars, and the environment that keeps wrangler offline and its files inside the project.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export const DEV_VARS_FILE = '.dev.vars'
export const DEV_READ_TOKEN = 'dev-read-token'
export const DEV_INGEST_TOKEN = 'dev-ingest-token'

/** Creates .dev.vars with the dev tokens when it does not exist; returns its variables. */
export function ensureDevVars(root: string): Record<string, string> {
  const path = join(root, DEV_VARS_FILE)
  if (!existsSync(path)) {
    writeFileSync(path, `READ_TOKEN=${DEV_READ_TOKEN}\nINGEST_TOKEN=${DEV_INGEST_TOKEN}\n`, {
      mode: 0o600,
    })
    process.stdout.write(`created ${DEV_VARS_FILE} with the dev tokens\n`)
  }
  const vars: Record<string, string> = {}
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line)
    if (match) vars[match[1] as string] = (match[2] as string).replace(/^(["'])(.*)\1$/, '$2')
  }
  return vars
}

/** wrangler settings for offline, quiet runs (../shared/TOOLCHAIN.md §5.2). */
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
