// `npm run dev:worker`: the Worker and its Durable Objects under `wrangler dev` on port 8787,
// with local persistence in .wrangler/state and the dev tokens in .dev.vars.
import { spawn } from 'node:child_process'
import { ensureDevVars, wranglerBin, wranglerEnv } from './dev-env.ts'

const root = process.cwd()
ensureDevVars(root)
const child = spawn(
  process.execPath,
  [wranglerBin(root), 'dev', '--ip', '127.0.0.1', '--port', '8787', ...process.argv.slice(2)],
  { stdio: 'inherit', env: wranglerEnv(root) },
)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => child.kill(signal))
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
