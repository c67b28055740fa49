#!/usr/bin/env node
// `zmq-edge` command (package.json bin). Installed from the package, it runs the built command
// line (dist/package, `npm run build`) with no TypeScript loader. In a checkout of the sources,
// with their dev dependencies, it runs the TypeScript itself through tsx, so an edit counts
// without a build.
import { existsSync } from 'node:fs'

const source = new URL('../cli/cli.ts', import.meta.url)
const built = new URL('../../dist/package/node-bridge/cli/cli.js', import.meta.url)

async function tsxLoader() {
  if (!existsSync(source)) return undefined
  try {
    return await import('tsx/esm/api')
  } catch {
    return undefined
  }
}

const tsx = await tsxLoader()
if (tsx) {
  tsx.register()
  await import(source.href)
} else if (existsSync(built)) {
  await import(built.href)
} else {
  process.stderr.write('zmq-edge: no built command line; run `npm run build` first\n')
  process.exit(1)
}
