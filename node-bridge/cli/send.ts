// `zmq-edge send`: a PUSH client on the command line. Sends its arguments (or the lines of stdin)
// to one or more PULL servers, NULL or CURVE, and exits 0 only if every message was handed to a
// peer before the linger ran out.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { KeyFormatError } from '../zmtp/mechanisms/curve-keys'
import { PushSocket, type PushSocketOptions } from '../zmtp/sockets/push-socket'

/** Defaults of the `send` command. */
export const DEFAULT_SEND_LINGER_MS = 10_000
export const DEFAULT_SEND_PROGRESS_MS = 1000

/** The command's options as commander hands them over (strings). */
export interface SendFlags {
  connect: string[]
  count?: string
  interval?: string
  separator?: string
  curveServerKey?: string
  curveSecretKey?: string
  /** A file holding the secret key: unlike the flag, not visible to other users in `ps`. */
  curveSecretKeyFile?: string
  linger?: string
  hwm?: string
  reconnectIvl?: string
  reconnectIvlMax?: string
  progressInterval?: string
}

/** Where the command reads and writes; a real process passes its own streams. */
export interface SendIo {
  stdin: NodeJS.ReadableStream
  stderr: { write(text: string): unknown }
  /** Stops sending (SIGINT); what is queued gets no linger. */
  signal?: AbortSignal
}

/** Exit codes: 0 all handed over, 1 some were not (or every server refused us), 2 usage. */
export const SendExit = { OK: 0, UNSENT: 1, USAGE: 2 } as const

class UsageError extends Error {}

function integer(flag: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback
  const value = Number(text)
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`${flag}: expected an integer >= ${min}, got "${text}"`)
  }
  return value
}

/** The messages to send: the arguments `count` times (`{n}` is the sequence number), or stdin lines. */
async function* messages(args: string[], count: number, stdin: NodeJS.ReadableStream) {
  let n = 0
  if (args.length > 0) {
    for (let round = 0; round < count; round++) {
      for (const arg of args) yield arg.replaceAll('{n}', String(++n))
    }
    return
  }
  for await (const line of createInterface({ input: stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
    yield line.replaceAll('{n}', String(++n))
  }
}

/** The client's secret key from the flag or its file, as text; undefined: a fresh pair. */
function clientSecretKey(flags: SendFlags): string | undefined {
  if (flags.curveSecretKeyFile === undefined) return flags.curveSecretKey
  if (flags.curveSecretKey !== undefined) {
    throw new UsageError(
      '--curve-secret-key / --curve-secret-key-file: give the key or its file, not both',
    )
  }
  try {
    return readFileSync(flags.curveSecretKeyFile, 'utf8').trim()
  } catch (cause) {
    throw new UsageError(
      `--curve-secret-key-file: cannot read ${flags.curveSecretKeyFile}: ${(cause as Error).message}`,
    )
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/**
 * Runs `zmq-edge send`.
 * @returns the exit code ({@link SendExit})
 */
export async function runSend(args: string[], flags: SendFlags, io: SendIo): Promise<number> {
  const say = (text: string) => io.stderr.write(`zmq-edge send: ${text}\n`)
  let push: PushSocket
  let count: number
  let interval: number
  let linger: number
  let progressMs: number
  try {
    count = integer('--count', flags.count, 1, 1)
    interval = integer('--interval', flags.interval, 0, 0)
    linger = integer('--linger', flags.linger, DEFAULT_SEND_LINGER_MS, -1)
    progressMs = integer('--progress-interval', flags.progressInterval, DEFAULT_SEND_PROGRESS_MS, 0)
    const secretKey = clientSecretKey(flags)
    if (secretKey !== undefined && flags.curveServerKey === undefined) {
      throw new UsageError('--curve-secret-key needs --curve-server-key')
    }
    if (flags.separator === '') throw new UsageError('--separator: expected a non-empty string')
    const options: PushSocketOptions = {
      sendHighWaterMark: integer('--hwm', flags.hwm, 1000, 1),
      reconnectIvl: integer('--reconnect-ivl', flags.reconnectIvl, 100, -1),
      reconnectIvlMax: integer('--reconnect-ivl-max', flags.reconnectIvlMax, 0, 0),
      linger,
    }
    if (flags.curveServerKey !== undefined) {
      options.curve = {
        serverKey: flags.curveServerKey,
        ...(secretKey !== undefined ? { secretKey } : {}),
      }
    }
    push = new PushSocket(options)
    for (const endpoint of flags.connect) push.connect(endpoint)
  } catch (error) {
    if (
      error instanceof UsageError ||
      error instanceof KeyFormatError ||
      error instanceof RangeError
    ) {
      say(error.message)
      return SendExit.USAGE
    }
    throw error
  }

  // Every endpoint refused us for good: nothing will ever be delivered, stop at once.
  let refused: (() => void) | undefined
  let everyRefused = false
  const allRefused = new Promise<'refused'>((resolve) => {
    refused = () => {
      everyRefused = true
      resolve('refused')
    }
  })
  push.on('failed', (endpoint, error) => {
    say(
      `${endpoint} refused us (${error.code}${error.reason ? ` ${error.reason}` : ''}); not retrying`,
    )
    if (push.endpoints().every((entry) => entry.state === 'failed')) refused?.()
  })
  const aborted = new Promise<'aborted'>((resolve) => {
    if (io.signal?.aborted) resolve('aborted')
    io.signal?.addEventListener('abort', () => resolve('aborted'), { once: true })
  })

  const started = Date.now()
  let total = 0
  const progress =
    progressMs > 0
      ? setInterval(() => {
          const { sent, queued } = push.stats
          say(
            `${sent}/${total} handed to a peer, ${queued} queued, ${plural(push.readyPeers, 'peer')} ready, ${((Date.now() - started) / 1000).toFixed(1)} s`,
          )
        }, progressMs)
      : undefined
  progress?.unref()

  let stopped: 'refused' | 'aborted' | undefined
  try {
    for await (const text of messages(args, count, io.stdin)) {
      const frames = flags.separator === undefined ? [text] : text.split(flags.separator)
      total++
      const outcome = await Promise.race([push.send(frames), allRefused, aborted])
      if (outcome === 'refused' || outcome === 'aborted') {
        stopped = outcome
        break
      }
      if (interval > 0) {
        const waited = await Promise.race([
          new Promise<'slept'>((resolve) => setTimeout(() => resolve('slept'), interval)),
          allRefused,
          aborted,
        ])
        if (waited !== 'slept') {
          stopped = waited
          break
        }
      }
    }
  } finally {
    clearInterval(progress)
  }

  const { unsent } = await push.close(stopped ? { linger: 0 } : {})
  const { sent, messageWrites } = push.stats
  const endpoints = flags.connect.join(', ')
  if (unsent === 0 && stopped === undefined) {
    say(
      `${plural(sent, 'message')} handed to ${endpoints} in ${plural(messageWrites, 'TCP write')}`,
    )
    return SendExit.OK
  }
  const why =
    stopped === 'refused' || everyRefused
      ? 'every server refused us'
      : stopped === 'aborted'
        ? 'interrupted'
        : `linger of ${linger} ms ran out`
  say(`${unsent || total - sent} of ${plural(total, 'message')} not handed to a peer (${why})`)
  return SendExit.UNSENT
}
