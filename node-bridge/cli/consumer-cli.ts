// `zmq-edge tail` and `zmq-edge stats`: read a channel through the Worker's HTTP API.
// `tail` follows it by long poll (`GET /v1/channels/:channel/messages?after=&wait=`) or by
// Server-Sent Events (`GET /v1/channels/:channel/events`, `--sse`) and prints each message as a
// text line or a JSON line; `stats` prints `GET /v1/channels/:channel`.
import { EventSourceParserStream } from 'eventsource-parser/stream'
import type { ApiMessage } from '../../shared/api-types.ts'
import { ConfigError } from '../bridge/bridge-config.ts'
import { type RawValues, type SettingInfo, SettingSources } from './config/setting.ts'
import { numberUpTo, oneOf, parseBoolean, parseChannel, parseHttpUrl } from './config/values.ts'

export const DEFAULT_HTTP_URL = 'http://127.0.0.1:8787'
export const DEFAULT_TAIL_WAIT_S = 30
/** Marks a frame that is not valid UTF-8 in text lines. */
export const BINARY_MARK = 'base64:'

/** The settings of every command that reads a channel through the Worker's HTTP API. */
export const READER_SETTINGS = {
  url: {
    flag: '--url',
    env: 'ZMQ_EDGE_URL',
    valueName: '<url>',
    description: `the Worker's base URL`,
    parse: parseHttpUrl,
    fallback: () => DEFAULT_HTTP_URL,
  },
  channel: {
    flag: '--channel',
    env: 'ZMQ_EDGE_CHANNEL',
    valueName: '<name>',
    description: 'the channel',
    parse: parseChannel,
    fallback: () => 'default',
  },
  token: {
    flag: '--token',
    env: 'ZMQ_EDGE_READ_TOKEN',
    valueName: '<token>',
    description: 'the read token',
    secret: { instead: 'the variable' },
  },
  json: {
    flag: '--json',
    boolean: true,
    description: 'print JSON instead of text',
    parse: parseBoolean,
    fallback: () => false,
  },
} as const satisfies Record<string, SettingInfo>

/** The settings of `tail`: the reader's, and how to follow. */
export const TAIL_SETTINGS = {
  ...READER_SETTINGS,
  sse: {
    flag: '--sse',
    boolean: true,
    description: 'follow the Server-Sent Events stream instead of long-polling',
    parse: parseBoolean,
    fallback: () => false,
  },
  after: {
    flag: '--after',
    valueName: '<seq>',
    description: 'start after this sequence number; 0 from the start (default: the newest)',
  },
  encoding: {
    flag: '--encoding',
    valueName: '<encoding>',
    description:
      'utf8: text frames as text, the others base64 marked "base64:"; base64: every frame',
    parse: oneOf(['utf8', 'base64']),
    fallback: () => 'utf8' as const,
  },
  wait: {
    flag: '--wait',
    valueName: '<seconds>',
    description: `long-poll wait per request, 0 to 30`,
    parse: numberUpTo(30),
    fallback: () => DEFAULT_TAIL_WAIT_S,
  },
} as const satisfies Record<string, SettingInfo>

/** Options of `stats`, as commander hands them over (strings), by setting name. */
export type ReaderFlags = RawValues<typeof READER_SETTINGS>
/** Options of `tail`, as commander hands them over (strings), by setting name. */
export type TailFlags = RawValues<typeof TAIL_SETTINGS>

/** Where the commands write; a real process passes its own streams. */
export interface ReaderIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  env: Record<string, string | undefined>
  /** Ctrl-C: `tail` stops following and exits 0. */
  signal?: AbortSignal
}

/** Exit codes: 0 done (or interrupted), 1 the Worker refused or failed, 2 usage. */
export const ReaderExit = { OK: 0, FAILED: 1, USAGE: 2 } as const

/** Ctrl-C while a request or a wait was pending. */
const ABORTED = Symbol('aborted')

/** An HTTP error answer from the Worker, which no retry fixes. */
class HttpError extends Error {}

interface Target {
  base: string
  channel: string
  token: string
}

function target(settings: SettingSources<typeof READER_SETTINGS>): Target {
  return {
    base: settings.value('url'),
    channel: settings.value('channel'),
    token: settings.value('token'),
  }
}

/** Whether `--json` (or its variable) is set. */
function jsonOutput(settings: SettingSources<typeof READER_SETTINGS>): boolean {
  return settings.value('json')
}

async function getJson(url: string, token: string, signal?: AbortSignal): Promise<Response> {
  return fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    ...(signal ? { signal } : {}),
  })
}

/** The Worker's error (`{"error": {"code", "message"}}`) or the status line. */
export async function describeError(response: Response): Promise<string> {
  const text = await response.text().catch(() => '')
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } }
    if (body.error?.message) {
      return `${response.status} ${body.error.code ?? ''}: ${body.error.message}`.replace(' :', ':')
    }
  } catch {
    // not JSON
  }
  return `${response.status} ${response.statusText}${text ? `: ${text.slice(0, 200)}` : ''}`
}

/** Control characters written as escapes, so a message is always one line. */
export function oneLine(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping them is the point
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => JSON.stringify(char).slice(1, -1))
}

/**
 * One message as a text line: seq, receive time, frames joined by ` | `; frames that are not
 * UTF-8 (with `encoding=utf8`) are base64, marked `base64:`. A large message, which the API
 * lists without its frames, is a note of its size and where its frames are: `<url>/<index>`,
 * the URL resolved against `base` (the Worker's URL).
 */
export function formatMessageLine(message: ApiMessage, base = ''): string {
  if (message.frames === null) {
    const size = message.size ?? 0
    const count = message.frameCount ?? message.frameSizes?.length ?? 0
    const frames = `${count} frame${count === 1 ? '' : 's'}`
    const indexes = count > 1 ? `<0-${count - 1}>` : '0'
    return (
      `${message.seq} ${message.receivedAt} [large message not shown: ${size} octets ` +
      `(${formatBytes(size)}) in ${frames} at ${base}${message.framesUrl ?? ''}/${indexes}]`
    )
  }
  const binary = new Set(message.binaryFrames ?? [])
  const frames = message.frames.map((frame, index) =>
    binary.has(index) ? `${BINARY_MARK}${frame}` : oneLine(frame),
  )
  return `${message.seq} ${message.receivedAt} ${frames.join(' | ')}`
}

/** Follows a channel until interrupted. */
export async function runTail(flags: TailFlags, io: ReaderIo): Promise<number> {
  let where: Target
  let after: number | undefined
  let wait: number
  let encoding: string
  let json: boolean
  let sse: boolean
  try {
    const settings = new SettingSources(TAIL_SETTINGS, flags, io.env)
    where = target(settings)
    json = jsonOutput(settings)
    sse = settings.value('sse')
    after = settings.one(
      'after',
      (raw, source) => {
        const seq = numberUpTo(Number.MAX_SAFE_INTEGER)(raw, source)
        if (!Number.isInteger(seq))
          throw new ConfigError(source, `expected a sequence number, got "${raw}"`)
        return seq
      },
      () => undefined,
    )
    wait = settings.value('wait')
    encoding = settings.value('encoding')
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    io.stderr.write(`zmq-edge tail: ${error.message}\n`)
    return ReaderExit.USAGE
  }
  const { base, channel, token } = where
  const channelUrl = `${base}/v1/channels/${encodeURIComponent(channel)}`
  const { signal } = io
  const aborted = () => signal?.aborted === true
  let failures = 0

  /** Waits before a retry; false when interrupted meanwhile. */
  const pause = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (aborted()) return resolve(false)
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort)
        resolve(true)
      }, ms)
      const onAbort = () => {
        clearTimeout(timer)
        resolve(false)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
    })

  /** Says why, waits (Retry-After, else exponential backoff); false when interrupted. */
  const retry = (why: string, retryAfterS = 0) => {
    failures++
    io.stderr.write(`zmq-edge tail: ${why}; retrying\n`)
    return pause(
      retryAfterS > 0 ? retryAfterS * 1000 : Math.min(10_000, 250 * 2 ** Math.min(failures, 6)),
    )
  }

  /**
   * GET with the read token. Network errors, 5xx and 429 are retried (null after the wait);
   * other HTTP errors throw {@link HttpError}.
   */
  const request = async (
    url: string,
    accept: string,
    resetBackoff = true,
  ): Promise<Response | null | typeof ABORTED> => {
    let response: Response
    try {
      response = await fetch(url, {
        headers: { authorization: `Bearer ${token}`, accept },
        ...(signal ? { signal } : {}),
      })
    } catch (error) {
      if (aborted()) return ABORTED
      const why = String((error as Error).cause ?? (error as Error).message)
      return (await retry(why)) ? null : ABORTED
    }
    if (response.ok) {
      if (resetBackoff) failures = 0
      return response
    }
    const description = await describeError(response)
    if (response.status < 500 && response.status !== 429) throw new HttpError(description)
    const retryAfter = Number(response.headers.get('retry-after'))
    return (await retry(description, retryAfter)) ? null : ABORTED
  }

  try {
    // By default, only what arrives from now on: start after the newest stored message.
    while (after === undefined) {
      const response = await getJson(channelUrl, token, signal)
      if (response.ok) {
        const stats = (await response.json()) as { log?: { newest?: { seq: number } | null } }
        after = stats.log?.newest?.seq ?? 0
      } else if (response.status >= 500 || response.status === 429) {
        io.stderr.write(`zmq-edge tail: ${await describeError(response)}; retrying\n`)
        if (!(await pause(1000))) return ReaderExit.OK
      } else {
        throw new HttpError(await describeError(response))
      }
    }
    const print = (message: ApiMessage) =>
      json ? `${JSON.stringify(message)}\n` : `${formatMessageLine(message, base)}\n`
    for (;;) {
      if (sse) {
        // One stream for as long as it lasts; reconnect after the last message printed.
        const query = new URLSearchParams({ after: String(after), encoding })
        const response = await request(`${channelUrl}/events?${query}`, 'text/event-stream', false)
        if (response === ABORTED) return ReaderExit.OK
        if (!response) continue
        if (!response.body) {
          if (!(await retry('event stream without a body'))) return ReaderExit.OK
          continue
        }
        try {
          const events = response.body
            .pipeThrough(new TextDecoderStream())
            .pipeThrough(new EventSourceParserStream())
          for await (const event of events) {
            if (event.event !== 'message') continue
            const message = JSON.parse(event.data) as ApiMessage
            io.stdout.write(print(message))
            after = message.seq
            // Only a stream that delivered resets the backoff: one cut at once keeps growing it.
            failures = 0
          }
        } catch (error) {
          if (aborted()) return ReaderExit.OK
          if (!(await retry(`event stream failed: ${(error as Error).message}`))) {
            return ReaderExit.OK
          }
          continue
        }
        if (!(await retry('event stream ended'))) return ReaderExit.OK
        continue
      }
      const query = new URLSearchParams({
        after: String(after),
        wait: String(wait),
        limit: '1000',
        encoding,
      })
      const response = await request(`${channelUrl}/messages?${query}`, 'application/json')
      if (response === ABORTED) return ReaderExit.OK
      if (!response) continue
      const page = (await response.json()) as { messages: ApiMessage[]; next: number }
      let text = ''
      for (const message of page.messages) text += print(message)
      if (text) io.stdout.write(text)
      after = page.next
    }
  } catch (error) {
    if (aborted()) return ReaderExit.OK
    const message = error instanceof HttpError ? error.message : (error as Error).message
    io.stderr.write(`zmq-edge tail: ${message}\n`)
    return ReaderExit.FAILED
  }
}

interface LogEnd {
  seq: number
  receivedAt: string
  ageMs: number
}

/** The channel's stats (see docs/openapi.json, `ChannelStats`), as far as `stats` reads them. */
interface ChannelStats {
  channel: string
  log?: { messages?: number; bytes?: number; oldest?: LogEnd | null; newest?: LogEnd | null }
  queue?: Record<string, number>
  bridges?: Record<string, unknown>
  counters?: Record<string, number>
  config?: Record<string, unknown>
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = -1
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${units[unit]}`
}

function formatAge(ms: number): string {
  if (ms < 1000) return `${ms} ms`
  const s = Math.round(ms / 1000)
  if (s < 120) return `${s} s`
  if (s < 7200) return `${Math.round(s / 60)} min`
  if (s < 172_800) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86_400)} d`
}

/** Words from a camelCase key: `deadLetters` → `dead letters`. */
function words(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => ` ${letter.toLowerCase()}`)
}

/** A stats value for people: nested objects in parentheses, lists by their items' names. */
function describe(value: unknown): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return '-'
    return value
      .map((item) =>
        item && typeof item === 'object' && 'bridgeId' in item
          ? String(item.bridgeId)
          : describe(item),
      )
      .join(' ')
  }
  if (value && typeof value === 'object') return `(${list(value as Record<string, unknown>)})`
  return String(value)
}

function list(values: Record<string, unknown> | undefined): string {
  if (!values) return '-'
  const entries = Object.entries(values)
  return entries.length === 0
    ? '-'
    : entries.map(([key, value]) => `${words(key)} ${describe(value)}`).join(', ')
}

/** `GET /v1/channels/:channel` as lines for people. */
export function formatStats(stats: ChannelStats): string {
  const end = (label: string, point: LogEnd | null | undefined) =>
    point
      ? `${label} #${point.seq} at ${point.receivedAt} (${formatAge(point.ageMs)} ago)`
      : `${label} -`
  const log = stats.log ?? {}
  const lines = [
    ['channel', stats.channel],
    [
      'log',
      `${log.messages ?? 0} messages, ${formatBytes(log.bytes ?? 0)}; ${end('oldest', log.oldest)}; ${end('newest', log.newest)}`,
    ],
    ['queue', list(stats.queue)],
    ['bridges', list(stats.bridges)],
    ['counters', list(stats.counters)],
    ['config', list(stats.config)],
  ]
  return `${lines.map(([label, value]) => `${(label as string).padEnd(9)}${value}`).join('\n')}\n`
}

/** Prints a channel's stats once. */
export async function runStats(flags: ReaderFlags, io: ReaderIo): Promise<number> {
  let where: Target
  let json: boolean
  try {
    const settings = new SettingSources(READER_SETTINGS, flags, io.env)
    where = target(settings)
    json = jsonOutput(settings)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    io.stderr.write(`zmq-edge stats: ${error.message}\n`)
    return ReaderExit.USAGE
  }
  try {
    const response = await getJson(
      `${where.base}/v1/channels/${encodeURIComponent(where.channel)}`,
      where.token,
      io.signal,
    )
    if (!response.ok) throw new HttpError(await describeError(response))
    const stats = (await response.json()) as ChannelStats
    io.stdout.write(json ? `${JSON.stringify(stats, null, 2)}\n` : formatStats(stats))
    return ReaderExit.OK
  } catch (error) {
    if (io.signal?.aborted) return ReaderExit.OK
    const cause = (error as Error).cause
    io.stderr.write(
      `zmq-edge stats: ${(error as Error).message}${cause ? ` (${String(cause)})` : ''}\n`,
    )
    return ReaderExit.FAILED
  }
}
