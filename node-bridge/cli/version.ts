// The package's version, for `zmq-edge --version` and the bridge's logs: read from the
// package.json above this module, which is two folders up from the sources and four from the
// built package (dist/package/node-bridge/cli).
import { readFileSync } from 'node:fs'

/** The version in the nearest package.json named zmq-edge above this module; '0.0.0' if none. */
export function packageVersion(): string {
  for (let up = 1; up <= 5; up++) {
    const path = new URL(`${'../'.repeat(up)}package.json`, import.meta.url)
    try {
      const manifest = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string }
      if (manifest.name === 'zmq-edge' && typeof manifest.version === 'string') {
        return manifest.version
      }
    } catch {
      // Not there: one folder further up.
    }
  }
  return '0.0.0'
}
