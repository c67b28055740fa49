// The lock that keeps a second bridge out of a spool folder: a file naming the holder by its pid,
// the start time of that process and the boot it runs in, so a pid the kernel gave to another
// process after the holder crashed does not keep a restarted bridge out.
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { PRIVATE_FILE_MODE } from './private-directory.ts'
import { SpoolError, SpoolErrorCode } from './spool-error.ts'

const LOCK_FILE = 'lock'
/**
 * Clock ticks a second in /proc/<pid>/stat (proc(5): "divide by sysconf(_SC_CLK_TCK)"); Linux
 * exports USER_HZ, which is 100 on every architecture Node runs on. Used only for old locks.
 */
const USER_HZ = 100
/** An old lock counts as stale only when its pid's process started this long after it. */
const OLD_LOCK_MARGIN_MS = 2000

/** Who holds a lock, as the lock file says (JSON, one line). */
export interface LockOwner {
  pid: number
  /** /proc/<pid>/stat field 22: when the process started, in clock ticks since boot. */
  startTime?: number
  /** /proc/sys/kernel/random/boot_id of the boot the process ran in. */
  bootId?: string
}

export interface SpoolLockOptions {
  /** Where procfs is mounted (default /proc); tests point it elsewhere to mimic its absence. */
  procRoot?: string
}

/** Start time of a process in clock ticks since boot, or undefined when /proc has no entry. */
export function processStartTime(pid: number, procRoot = '/proc'): number | undefined {
  let stat: string
  try {
    stat = readFileSync(join(procRoot, String(pid), 'stat'), 'utf8')
  } catch {
    return undefined
  }
  // proc(5): field 2, the command name, is in parentheses and may hold spaces and ')';
  // fields 3 on follow the last ')', so field 22 (starttime) is the 20th after it.
  const value = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
  return Number.isSafeInteger(value) ? value : undefined
}

/** This boot's random id (proc(5), /proc/sys/kernel/random/boot_id), or undefined. */
export function bootId(procRoot = '/proc'): string | undefined {
  try {
    return readFileSync(join(procRoot, 'sys/kernel/random/boot_id'), 'utf8').trim() || undefined
  } catch {
    return undefined
  }
}

/** The lock of one spool folder, held by this process until `release()`. */
export class SpoolLock {
  readonly #path: string
  readonly #content: string

  private constructor(path: string, content: string) {
    this.#path = path
    this.#content = content
  }

  /**
   * Takes the lock in `dir`; a lock whose holder is gone (or is this very process) is taken over.
   * The holder counts as alive when its pid runs, in the same boot, with the start time the lock
   * records; where /proc is absent, when its pid runs. Liveness is judged in this process's pid
   * namespace: two containers must not share one spool folder.
   * @throws SpoolError LOCKED when a live process holds it.
   */
  static acquire(dir: string, options: SpoolLockOptions = {}): SpoolLock {
    const procRoot = options.procRoot ?? '/proc'
    const path = join(dir, LOCK_FILE)
    const me = identify(process.pid, procRoot)
    const content = `${JSON.stringify(me)}\n`
    const temporary = join(dir, `${LOCK_FILE}.${process.pid}.tmp`)
    writeFileSync(temporary, content, { mode: PRIVATE_FILE_MODE })
    try {
      if (create(temporary, path, content)) return new SpoolLock(path, content)
      const holder = readHolder(path)
      if (holder && holder.owner.pid !== process.pid && isAlive(holder, procRoot)) {
        throw new SpoolError(
          SpoolErrorCode.LOCKED,
          `the spool in ${dir} is in use by process ${holder.owner.pid}; two bridges cannot share one`,
        )
      }
      // A lock left by a process that is gone: replaced in one step, then read back, so of two
      // bridges taking it over at once the one whose lock is not there gives way.
      renameSync(temporary, path)
      const after = readHolder(path)
      if (after?.text !== content) {
        throw new SpoolError(
          SpoolErrorCode.LOCKED,
          `the spool in ${dir} was taken by process ${after?.owner.pid} at the same time`,
        )
      }
      return new SpoolLock(path, content)
    } finally {
      try {
        unlinkSync(temporary)
      } catch {}
    }
  }

  /** Removes the lock file, unless another process has taken it over since. */
  release(): void {
    try {
      if (readFileSync(this.#path, 'utf8') === this.#content) unlinkSync(this.#path)
    } catch {}
  }
}

function identify(pid: number, procRoot: string): LockOwner {
  const owner: LockOwner = { pid }
  const startTime = processStartTime(pid, procRoot)
  const boot = bootId(procRoot)
  if (startTime !== undefined) owner.startTime = startTime
  if (boot !== undefined) owner.bootId = boot
  return owner
}

/**
 * Creates the lock file whole, or returns false when one exists: a hard link of the written
 * file, or an exclusive create where the file system has no hard links.
 */
function create(temporary: string, path: string, content: string): boolean {
  try {
    linkSync(temporary, path)
    return true
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return false
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOSYS') throw error
  }
  let fd: number
  try {
    fd = openSync(path, 'wx', PRIVATE_FILE_MODE)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw error
  }
  try {
    writeSync(fd, content)
  } finally {
    closeSync(fd)
  }
  return true
}

interface Holder {
  owner: LockOwner
  text: string
  /** When the lock was written, ms since the epoch. */
  writtenAt: number
}

/** The lock's holder; undefined when there is no lock or it names nobody (then it is stale). */
function readHolder(path: string): Holder | undefined {
  let text: string
  let writtenAt: number
  try {
    text = readFileSync(path, 'utf8')
    writtenAt = statSync(path).mtimeMs
  } catch {
    return undefined
  }
  const trimmed = text.trim()
  // Bridges before this one wrote the pid alone.
  if (/^\d+$/.test(trimmed)) return { owner: { pid: Number(trimmed) }, text, writtenAt }
  try {
    const parsed = JSON.parse(trimmed) as Partial<LockOwner>
    if (!Number.isSafeInteger(parsed.pid) || (parsed.pid as number) <= 0) return undefined
    const owner: LockOwner = { pid: parsed.pid as number }
    if (Number.isSafeInteger(parsed.startTime)) owner.startTime = parsed.startTime as number
    if (typeof parsed.bootId === 'string') owner.bootId = parsed.bootId
    return { owner, text, writtenAt }
  } catch {
    return undefined
  }
}

function isAlive({ owner, writtenAt }: Holder, procRoot: string): boolean {
  const boot = bootId(procRoot)
  if (owner.bootId !== undefined && boot !== undefined && owner.bootId !== boot) return false
  if (processStartTime(process.pid, procRoot) === undefined) return pidRuns(owner.pid)
  // With /proc: a pid without an entry is gone (or another user's, hidden: not a bridge of ours).
  const startTime = processStartTime(owner.pid, procRoot)
  if (startTime === undefined) return false
  if (owner.startTime !== undefined) return startTime === owner.startTime
  // A pid-only lock: the process with that pid now cannot have written it if it started after.
  return !startedAfter(startTime, writtenAt + OLD_LOCK_MARGIN_MS, procRoot)
}

/** Whether a process that started `startTime` ticks after boot started after `time` (ms). */
function startedAfter(startTime: number, time: number, procRoot: string): boolean {
  let bootSeconds: number
  try {
    // proc(5), /proc/stat: "btime: boot time, in seconds since the Epoch".
    const stat = readFileSync(join(procRoot, 'stat'), 'utf8')
    bootSeconds = Number(/^btime (\d+)$/m.exec(stat)?.[1])
  } catch {
    return false
  }
  if (!Number.isFinite(bootSeconds)) return false
  return bootSeconds * 1000 + (startTime / USER_HZ) * 1000 > time
}

function pidRuns(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
