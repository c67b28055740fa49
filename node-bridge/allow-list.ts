// The CURVE client-key allow-list: a file of public keys (Z85, base64 or hex, one per line,
// `#` comments), reloaded when it changes.
import { readFileSync, unwatchFile, watchFile } from 'node:fs'
import { parseCurveKey } from './keys'
import type { Logger } from './log'

/** How often the file's modification time is checked. Polling survives editors that replace files. */
const WATCH_INTERVAL_MS = 500

const toHex = (key: Uint8Array) =>
  Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')

/**
 * Parses an allow-list file's text into hex-encoded keys.
 * @throws Error naming the file and line of the first bad key.
 */
export function parseAllowList(text: string, path: string): Set<string> {
  const keys = new Set<string>()
  text.split(/\r?\n/).forEach((line, index) => {
    const content = line.replace(/#.*$/, '').trim()
    if (content === '') return
    keys.add(toHex(parseCurveKey(content, `${path} line ${index + 1}`)))
  })
  return keys
}

export class AllowList {
  readonly path: string
  readonly #logger: Logger
  #keys: Set<string>
  #listener: (() => void) | undefined

  /** Loads the file now. @throws when it cannot be read or holds a bad key. */
  constructor(path: string, logger: Logger) {
    this.path = path
    this.#logger = logger
    this.#keys = parseAllowList(readFileSync(path, 'utf8'), path)
    logger.info({ path, keys: this.#keys.size }, 'CURVE allow-list loaded')
  }

  get size(): number {
    return this.#keys.size
  }

  has(publicKey: Uint8Array): boolean {
    return this.#keys.has(toHex(publicKey))
  }

  /**
   * Reloads the file whenever it changes and calls `onChange` after each successful reload. A
   * file that cannot be read or parsed leaves the previous list in force (and is logged), so a
   * half-written edit never locks every client out or lets everyone in.
   */
  watch(onChange: () => void): void {
    this.#listener = () => {
      let keys: Set<string>
      try {
        keys = parseAllowList(readFileSync(this.path, 'utf8'), this.path)
      } catch (error) {
        this.#logger.error(
          { path: this.path, err: (error as Error).message },
          'CURVE allow-list not reloaded; the previous list stays in force',
        )
        return
      }
      const removed = [...this.#keys].filter((key) => !keys.has(key)).length
      const added = [...keys].filter((key) => !this.#keys.has(key)).length
      this.#keys = keys
      this.#logger.info(
        { path: this.path, keys: keys.size, added, removed },
        'CURVE allow-list reloaded',
      )
      onChange()
    }
    watchFile(this.path, { interval: WATCH_INTERVAL_MS }, this.#listener)
  }

  close(): void {
    if (this.#listener) unwatchFile(this.path, this.#listener)
    this.#listener = undefined
  }
}
