// `zmq-edge send`: a PUSH client on the command line. Sends its arguments (or the lines of stdin)
// to one or more PULL servers, NULL or CURVE, and exits 0 only if every message was handed to a
// peer before the linger ran out. With `--socket req` or `dealer` it sends to a bridge's ROUTER
// listener instead, prints the seq each message was stored under, and exits 0 only if every
// message got one.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { ConfigError } from '../bridge/bridge-config.ts'
import { KeyFormatError } from '../zmtp/mechanisms/curve-keys.ts'
import { DEFAULT_RECONNECT_IVL_MAX_MS, DEFAULT_RECONNECT_IVL_MS } from '../zmtp/reconnect.ts'
import { DEFAULT_REPLY_TIMEOUT_MS, DealerSocket, ReqSocket } from '../zmtp/sockets/dealer-socket.ts'
import { DEFAULT_SEND_HWM } from '../zmtp/sockets/push-options.ts'
import { PushSocket, type PushSocketOptions } from '../zmtp/sockets/push-socket.ts'
import { type RawValues, type SettingInfo, SettingSources } from './config/setting.ts'
import { integerAtLeast } from './config/values.ts'

/** Defaults of the `send` command. */
export const DEFAULT_SEND_LINGER_MS = 10_000
export const DEFAULT_SEND_PROGRESS_MS = 1000

/** The settings of `send`: flags only (a sender is a one-off command, not a service). */
export const SEND_SETTINGS = {
  connect: {
    flag: '--connect',
    valueName: '<endpoint>',
    repeatable: true,
    description: 'a PULL server, tcp://HOST:PORT; repeat for several (round-robin)',
  },
  socket: {
    flag: '--socket',
    valueName: '<type>',
    description:
      'push; or req or dealer, to a bridge listener with socket=router: prints each seq once stored',
    parse: (raw: string, source: string) => {
      const value = raw.toLowerCase()
      if (value !== 'push' && value !== 'req' && value !== 'dealer') {
        throw new ConfigError(source, `expected push, req or dealer, got "${raw}"`)
      }
      return value
    },
    fallback: () => 'push' as const,
  },
  replyTimeout: {
    flag: '--reply-timeout',
    valueName: '<ms>',
    description: 'req, dealer: how long each message waits for its seq; 0 forever',
    parse: integerAtLeast(0),
    fallback: () => DEFAULT_REPLY_TIMEOUT_MS,
  },
  resends: {
    flag: '--resends',
    valueName: '<n>',
    description:
      'req, dealer: send a message whose seq did not come in time again, this many times, under one idempotency key (stored once)',
    parse: integerAtLeast(0),
    fallback: () => 0,
  },
  count: {
    flag: '--count',
    valueName: '<n>',
    description: 'send the messages this many times',
    parse: integerAtLeast(1),
    fallback: () => 1,
  },
  interval: {
    flag: '--interval',
    valueName: '<ms>',
    description: 'pause between messages',
    parse: integerAtLeast(0),
    fallback: () => 0,
  },
  separator: {
    flag: '--separator',
    valueName: '<text>',
    description: 'split each message into frames (multipart) at this text',
  },
  curveServerKey: {
    flag: '--curve-server-key',
    valueName: '<key>',
    description: "the server's CURVE public key (Z85, base64 or hex)",
  },
  curveSecretKey: {
    flag: '--curve-secret-key',
    valueName: '<key>',
    description:
      'our CURVE secret key (default: a fresh key pair); other local users can read it in ps: prefer the file',
    secret: { instead: '--curve-secret-key-file' },
  },
  curveSecretKeyFile: {
    flag: '--curve-secret-key-file',
    valueName: '<path>',
    description: 'a file holding our CURVE secret key (Z85, base64 or hex)',
  },
  linger: {
    flag: '--linger',
    valueName: '<ms>',
    description: `how long to wait for a peer at the end; -1 forever`,
    parse: integerAtLeast(-1),
    fallback: () => DEFAULT_SEND_LINGER_MS,
  },
  hwm: {
    flag: '--hwm',
    valueName: '<n>',
    description: `messages queued before sending waits`,
    parse: integerAtLeast(1),
    fallback: () => DEFAULT_SEND_HWM,
  },
  reconnectIvl: {
    flag: '--reconnect-ivl',
    valueName: '<ms>',
    description: `reconnect interval, plus jitter; -1 never`,
    parse: integerAtLeast(-1),
    fallback: () => DEFAULT_RECONNECT_IVL_MS,
  },
  reconnectIvlMax: {
    flag: '--reconnect-ivl-max',
    valueName: '<ms>',
    description: `back off, doubling up to this`,
    parse: integerAtLeast(0),
    fallback: () => DEFAULT_RECONNECT_IVL_MAX_MS,
  },
  progressInterval: {
    flag: '--progress-interval',
    valueName: '<ms>',
    description: `progress line on stderr this often; 0 none`,
    parse: integerAtLeast(0),
    fallback: () => DEFAULT_SEND_PROGRESS_MS,
  },
} as const satisfies Record<string, SettingInfo>

/** The command's options as commander hands them over (strings), by setting name. */
export type SendFlags = RawValues<typeof SEND_SETTINGS>

/** Where the command reads and writes; a real process passes its own streams. */
export interface SendIo {
  stdin: NodeJS.ReadableStream
  stderr: { write(text: string): unknown }
  /** Where `--socket req|dealer` prints the seqs, one line each, in the order sent. */
  stdout?: { write(text: string): unknown }
  /** Stops sending (SIGINT); what is queued gets no linger. */
  signal?: AbortSignal
}

/**
 * Exit codes: 0 all handed over (req, dealer: all stored, each seq printed), 1 some were not (or
 * every server refused us), 2 usage.
 */
export const SendExit = { OK: 0, UNSENT: 1, USAGE: 2 } as const

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
function clientSecretKey(settings: SettingSources<typeof SEND_SETTINGS>): string | undefined {
  const key = settings.raw('curveSecretKey')
  const file = settings.raw('curveSecretKeyFile')
  if (!file) return key?.values.at(-1)
  if (key) {
    throw new ConfigError(`${key.source} / ${file.source}`, 'give the key or its file, not both')
  }
  const path = file.values.at(-1) as string
  try {
    return readFileSync(path, 'utf8').trim()
  } catch (cause) {
    throw new ConfigError(file.source, `cannot read ${path}: ${(cause as Error).message}`)
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

/**
 * Runs `zmq-edge send`.
 * @returns the exit code ({@link SendExit})
 */
export async function runSend(args: string[], flags: SendFlags, io: SendIo): Promise<number> {
  const say = (text: string) => io.stderr.write(`zmq-edge send: ${text}\n`)
  let push: PushSocket | ReqSocket | DealerSocket
  let kind: 'push' | 'req' | 'dealer'
  let count: number
  let hwm: number
  let interval: number
  let linger: number
  let progressMs: number
  let separator: string | undefined
  let endpoints: string[]
  try {
    const settings = new SettingSources(SEND_SETTINGS, flags, {})
    kind = settings.value('socket')
    count = settings.value('count')
    interval = settings.value('interval')
    linger = settings.value('linger')
    progressMs = settings.value('progressInterval')
    endpoints = settings.raw('connect')?.values ?? []
    if (endpoints.length === 0) throw new ConfigError('--connect', 'is required')
    const secretKey = clientSecretKey(settings)
    const serverKey = settings.raw('curveServerKey')?.values.at(-1)
    if (secretKey !== undefined && serverKey === undefined) {
      throw new ConfigError('--curve-secret-key', 'needs --curve-server-key')
    }
    separator = settings.one(
      'separator',
      (raw, source) => {
        if (raw === '') throw new ConfigError(source, 'expected a non-empty string')
        return raw
      },
      () => undefined,
    )
    hwm = settings.value('hwm')
    const options: PushSocketOptions = {
      sendHighWaterMark: hwm,
      reconnectIvl: settings.value('reconnectIvl'),
      reconnectIvlMax: settings.value('reconnectIvlMax'),
      linger,
    }
    if (serverKey !== undefined) {
      options.curve = { serverKey, ...(secretKey !== undefined ? { secretKey } : {}) }
    }
    const requests = {
      ...options,
      replyTimeoutMs: settings.value('replyTimeout'),
      resends: settings.value('resends'),
    }
    push =
      kind === 'req'
        ? new ReqSocket(requests)
        : kind === 'dealer'
          ? new DealerSocket(requests)
          : new PushSocket(options)
    for (const endpoint of endpoints) push.connect(endpoint)
  } catch (error) {
    if (
      error instanceof ConfigError ||
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
  // The replies of a REQ or DEALER, in the order sent: printed as they come, in that order.
  const replies: Array<Promise<string>> = []
  let printed = Promise.resolve()
  let answered = 0
  const request = async (sent: Promise<number>) => {
    const number = replies.length + 1
    const line = sent.then(
      (seq) => {
        answered++
        return String(seq)
      },
      (error: Error) => {
        say(`message ${number}: ${error.message}`)
        return ''
      },
    )
    replies.push(line)
    printed = printed.then(async () => {
      const text = await line
      if (text) io.stdout?.write(`${text}\n`)
    })
    // A REQ waits for each reply; a DEALER goes on, with at most --hwm replies awaited (their
    // timers run from when they were queued, so an unbounded queue would time them out).
    if (kind === 'req') await line
    else if (replies.length > hwm) await replies[replies.length - 1 - hwm]
  }
  try {
    for await (const text of messages(args, count, io.stdin)) {
      const frames = separator === undefined ? [text] : text.split(separator)
      total++
      const sending = push instanceof PushSocket ? push.send(frames) : request(push.send(frames))
      const outcome = await Promise.race([sending, allRefused, aborted])
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

  if (!(push instanceof PushSocket) && stopped === undefined) {
    // Every reply (or its timeout) before closing: closing drops the ones still awaited.
    await Promise.race([Promise.all(replies), allRefused, aborted])
    await printed
  }
  const { unsent } = await push.close(stopped ? { linger: 0 } : {})
  const { sent, messageWrites } = push.stats
  if (!(push instanceof PushSocket)) {
    await printed
    if (answered === total && stopped === undefined) {
      say(`${plural(answered, 'message')} stored, each seq on stdout`)
      return SendExit.OK
    }
    say(`${total - answered} of ${plural(total, 'message')} not known to be stored`)
    return SendExit.UNSENT
  }
  if (unsent === 0 && stopped === undefined) {
    say(
      `${plural(sent, 'message')} handed to ${endpoints.join(', ')} in ${plural(messageWrites, 'TCP write')}`,
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
