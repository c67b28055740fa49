// The CURVE client-key allow-list: a file of public keys (Z85, base64 or hex, one per line,
// `#` comments), reloaded when it changes.
import { readFileSync, type Stats, statSync } from 'node:fs'
import { KeyFormatError, parseCurveKey } from '../zmtp/mechanisms/curve-keys.ts'
import type { Logger } from './log.ts'

/** How often the file's modification time is checked. Polling survives editors that replace files. */
const WATCH_INTERVAL_MS = 500
const MISSING = 'missing'

const toHex = (key: Uint8Array) =>
  Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')

/** One key of an allow-list file: as written, its line, and the comment after it, if any. */
export interface AllowListEntry {
  key: string
  line: number
  comment: string
}

/**
 * Reads an allow-list file's text: one key per line, optionally followed by whitespace and a
 * `#` comment; a line starting with `#` is a comment. Each key is checked.
 * @throws KeyFormatError naming the file and line of the first bad key.
 */
export function parseAllowListEntries(text: string, path: string): AllowListEntry[] {
  const entries: AllowListEntry[] = []
  text.split(/\r?\n/).forEach((line, index) => {
    const [token = '', ...rest] = line.trim().split(/\s+/)
    if (token === '') return
    // Z85 uses `#` too, but never first: a key's first digit is at most 82 of 84.
    if (token.startsWith('#')) return
    const setting = `${path} line ${index + 1}`
    if (rest.length > 0 && !rest[0]?.startsWith('#')) {
      throw new KeyFormatError(
        setting,
        'expected one key per line, then optionally # and a comment',
      )
    }
    parseCurveKey(token, setting)
    const comment = rest.join(' ').replace(/^#\s*/, '').trim()
    entries.push({ key: token, line: index + 1, comment })
  })
  return entries
}

/** Parses an allow-list file's text into hex-encoded keys (see {@link parseAllowListEntries}). */
export function parseAllowList(text: string, path: string): Set<string> {
  return new Set(
    parseAllowListEntries(text, path).map((entry) => toHex(parseCurveKey(entry.key, path))),
  )
}

/** What identifies one version of the file; any change means "reload". */
function versionOf(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}`
}

export class AllowList {
  readonly path: string
  readonly #logger: Logger
  #keys: Set<string>
  /** The file version the keys were read from (taken before reading, so no edit is missed). */
  #version: string
  #timer: NodeJS.Timeout | undefined

  /** Loads the file now. @throws when it cannot be read or holds a bad key. */
  constructor(path: string, logger: Logger) {
    this.path = path
    this.#logger = logger
    this.#version = versionOf(statSync(path))
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
   * half-written edit never locks every client out or lets everyone in. Polling the file's
   * version survives editors and tools that replace the file instead of writing into it.
   */
  watch(onChange: () => void): void {
    this.#timer = setInterval(() => {
      let version: string
      try {
        version = versionOf(statSync(this.path))
      } catch (error) {
        // A missing file is reported once, not every poll.
        if (this.#version !== MISSING) this.#reportFailure(error)
        this.#version = MISSING
        return
      }
      if (version === this.#version) return
      this.#version = version
      let keys: Set<string>
      try {
        keys = parseAllowList(readFileSync(this.path, 'utf8'), this.path)
      } catch (error) {
        this.#reportFailure(error)
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
    }, WATCH_INTERVAL_MS)
    this.#timer.unref()
  }

  #reportFailure(error: unknown): void {
    this.#logger.error(
      { path: this.path, err: (error as Error).message },
      'CURVE allow-list not reloaded; the previous list stays in force',
    )
  }

  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
