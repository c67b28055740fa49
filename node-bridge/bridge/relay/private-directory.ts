// The spool's folders: created 0700; an existing one that other users may enter is tightened
// when this process owns it, and reported when it does not (chmod(2) needs the owner).
import { chmodSync, mkdirSync, statSync } from 'node:fs'
import type { Logger } from '../log.ts'

/** Permission bits of the spool's files: the bridge's user alone reads and writes them. */
export const PRIVATE_FILE_MODE = 0o600
export const PRIVATE_DIRECTORY_MODE = 0o700

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`

/**
 * Creates `path` (and missing parents) with mode 0700, or tightens an existing folder of ours to
 * its owner's bits alone; logs what it changed, and warns about a wider folder it cannot change.
 */
export function preparePrivateDirectory(path: string, logger: Logger): void {
  mkdirSync(path, { recursive: true, mode: PRIVATE_DIRECTORY_MODE })
  // Windows has no group and other bits to speak of.
  if (process.platform === 'win32') return
  const { mode, uid } = statSync(path)
  if ((mode & 0o077) === 0) return
  if (uid === process.getuid?.()) {
    chmodSync(path, mode & PRIVATE_DIRECTORY_MODE)
    logger.info(
      { dir: path, mode: octal(mode), now: octal(mode & PRIVATE_DIRECTORY_MODE) },
      'spool folder open to other users: tightened',
    )
  } else {
    logger.warn(
      { dir: path, mode: octal(mode), owner: uid },
      'spool folder open to other users and not ours: left as it is',
    )
  }
}
