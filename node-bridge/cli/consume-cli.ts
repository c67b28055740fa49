// `zmq-edge consume --exec CMD`: a leased consumer for shell users. It runs CMD (through the
// shell) once per message of a consumer group, the message on its stdin and what it is in
// ZMQ_EDGE_* variables; exit 0 acks the message, anything else retries it after a delay. The
// lease is extended while CMD runs; Ctrl-C stops pulling and lets the running commands finish.
// The loop is the client's (../../shared/client/consumer.ts).

import { type ChildProcess, spawn } from 'node:child_process'
import { constants } from 'node:os'
import { consume, HandlerTimeoutError } from '../../shared/client/consumer.ts'
import {
  type LeasedMessage,
  ZmqEdgeApiError,
  ZmqEdgeClient,
} from '../../shared/client/http-client.ts'
import { ConfigError } from '../bridge/bridge-config.ts'
import { type RawValues, type SettingInfo, SettingSources } from './config/setting.ts'
import { integerAtLeast, numberUpTo, parseBoolean, parseChannel } from './config/values.ts'
import { READER_SETTINGS, ReaderExit } from './consumer-cli.ts'

/** Longest visibility timeout and retry delay the API takes, ms (12 hours). */
const MAX_MS = 43_200_000

export const CONSUME_SETTINGS = {
  url: READER_SETTINGS.url,
  channel: READER_SETTINGS.channel,
  token: { ...READER_SETTINGS.token, description: 'a token with the consume scope' },
  group: {
    flag: '--group',
    env: 'ZMQ_EDGE_GROUP',
    valueName: '<name>',
    description: 'the consumer group (others than default: PUT …/groups/:group first)',
    parse: parseChannel,
    fallback: () => 'default',
  },
  exec: {
    flag: '--exec',
    valueName: '<command>',
    description:
      'run this shell command once per message, the message on its stdin; exit 0 acks it, anything else retries it',
  },
  concurrency: {
    flag: '--concurrency',
    valueName: '<n>',
    description: 'commands running at once',
    parse: (raw: string, source: string) => {
      const value = integerAtLeast(1)(raw, source)
      if (value > 1000) throw new ConfigError(source, `expected at most 1000, got "${raw}"`)
      return value
    },
    fallback: () => 1,
  },
  visibilityTimeout: {
    flag: '--visibility-timeout',
    valueName: '<ms>',
    description: "each message's lease, extended while its command runs",
    parse: wholeMs,
    fallback: () => 30_000,
  },
  timeout: {
    flag: '--timeout',
    valueName: '<ms>',
    description:
      'stop a command that runs longer (SIGTERM to it and its children) and retry its message (default: no limit)',
    parse: wholeMs,
  },
  retryDelay: {
    flag: '--retry-delay',
    valueName: '<ms>',
    description:
      'before a failed message comes again (default: 1 s, doubling with each attempt, at most 5 min)',
    parse: numberUpTo(MAX_MS),
  },
  maxMessages: {
    flag: '--max-messages',
    valueName: '<n>',
    description:
      'stop once this many messages were acked, after the commands still running (default: run until Ctrl-C)',
    parse: integerAtLeast(1),
  },
  json: {
    flag: '--json',
    boolean: true,
    description:
      "the message's JSON on stdin (frames base64) instead of its octets (a message of several frames always comes as JSON)",
    parse: parseBoolean,
    fallback: () => false,
  },
} as const satisfies Record<string, SettingInfo>

export type ConsumeFlags = RawValues<typeof CONSUME_SETTINGS>

/** A whole number of ms the API takes: 1 to 12 hours' worth. */
function wholeMs(raw: string, source: string): number {
  const value = integerAtLeast(1)(raw, source)
  if (value > MAX_MS) throw new ConfigError(source, `expected at most ${MAX_MS}, got "${raw}"`)
  return value
}

/** Variables the command is not given: the gateway's secrets. */
const SECRET_VARIABLE = /^ZMQ_EDGE_\w*(TOKEN|SECRET)\w*$/

export interface ConsumeIo {
  stdout: NodeJS.WritableStream
  stderr: { write(text: string): unknown }
  env: Record<string, string | undefined>
  /** Ctrl-C: stop pulling, let the running commands finish, exit 0. */
  signal?: AbortSignal
}

/** What CMD reads: the octets of a one-frame message, else (or with --json) the message's JSON. */
export function stdinOf(message: LeasedMessage, json: boolean): Uint8Array {
  if (!json && message.frames !== null && message.frames.length === 1) {
    return Buffer.from(message.frames[0] as string, 'base64')
  }
  return Buffer.from(`${JSON.stringify(message)}\n`)
}

/** What CMD is told besides its stdin; tokens and secret keys are not passed on. */
export function environmentOf(
  message: LeasedMessage,
  where: { channel: string; group: string },
  env: Record<string, string | undefined>,
): Record<string, string> {
  const inherited = Object.fromEntries(
    Object.entries(env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && !SECRET_VARIABLE.test(entry[0]),
    ),
  )
  const frames = message.frames === null ? message.frameCount : message.frames.length
  return {
    ...inherited,
    ZMQ_EDGE_CHANNEL: where.channel,
    ZMQ_EDGE_GROUP: where.group,
    ZMQ_EDGE_SEQ: String(message.seq),
    ZMQ_EDGE_ATTEMPTS: String(message.attempts),
    ZMQ_EDGE_FRAMES: String(frames),
    ZMQ_EDGE_RECEIVED_AT: message.receivedAt,
    ZMQ_EDGE_PEER_ADDRESS: message.peer.address,
    ...(message.peer.publicKey ? { ZMQ_EDGE_PUBLIC_KEY: message.peer.publicKey } : {}),
    ...(message.peer.keyName !== undefined ? { ZMQ_EDGE_KEY_NAME: message.peer.keyName } : {}),
  }
}

/** The commands running, each in a process group of its own. */
const running = new Set<ChildProcess>()

/** Stops every running command (their groups): on a second Ctrl-C, or a closed output. */
export function stopCommands(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const child of running) {
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, signal)
      } catch {
        // Gone already.
      }
    }
  }
}

/**
 * Runs `command` through the shell with `input` on its stdin; resolves with its exit code
 * (128 + the signal's number when a signal ended it). It runs in a process group of its own, so
 * the terminal's Ctrl-C reaches this consumer only, which lets it finish (a second Ctrl-C stops
 * it). When it runs over --timeout, it and its children get SIGTERM. Its end is its exit,
 * not the close of its output: a child it left in the background holding that output does not
 * hold the message.
 */
function runCommand(
  command: string,
  input: Uint8Array,
  env: Record<string, string>,
  io: ConsumeIo,
  signal: AbortSignal,
): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, {
      shell: true,
      env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    running.add(child)
    child.stdout.on('data', (chunk: Buffer) => io.stdout.write(chunk))
    child.stderr.on('data', (chunk: Buffer) => io.stderr.write(chunk.toString()))
    // A command that does not read its stdin is not a failure.
    child.stdin.on('error', () => undefined)
    child.stdin.end(input)
    // Killed for running over --timeout only: on Ctrl-C it finishes.
    const onAbort = () => {
      if (signal.reason instanceof HandlerTimeoutError && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGTERM')
        } catch {
          // Gone already.
        }
      }
    }
    signal.addEventListener('abort', onAbort, { once: true })
    let done = false
    const finish = (code: number) => {
      if (done) return
      done = true
      running.delete(child)
      signal.removeEventListener('abort', onAbort)
      resolve(code)
    }
    child.on('error', () => finish(127))
    child.on('exit', (code, killedBy) => {
      const status = code ?? 128 + (killedBy ? (constants.signals[killedBy] ?? 0) : 0)
      // What it wrote before it ended is passed on; a background child's pipe is let go.
      const grace = setTimeout(() => {
        child.stdout.destroy()
        child.stderr.destroy()
        finish(status)
      }, 500)
      child.once('close', () => {
        clearTimeout(grace)
        finish(status)
      })
    })
  })
}

/** Consumes until interrupted (or --max-messages). */
export async function runConsume(flags: ConsumeFlags, io: ConsumeIo): Promise<number> {
  let settings: SettingSources<typeof CONSUME_SETTINGS>
  let command: string
  try {
    settings = new SettingSources(CONSUME_SETTINGS, flags, io.env)
    command = settings.value('exec')
    settings.value('token')
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    io.stderr.write(`zmq-edge consume: ${error.message}\n`)
    return ReaderExit.USAGE
  }
  const channel = settings.value('channel')
  const group = settings.value('group')
  const json = settings.value('json')
  const maxMessages = settings.one('maxMessages', integerAtLeast(1), () => undefined)
  const retryDelay = settings.one('retryDelay', numberUpTo(MAX_MS), () => undefined)
  const timeout = settings.one('timeout', wholeMs, () => undefined)
  const client = new ZmqEdgeClient({ url: settings.value('url'), token: settings.value('token') })
  const stop = new AbortController()
  const onStop = () => stop.abort()
  io.signal?.addEventListener('abort', onStop, { once: true })
  // A closed output (`| head`): no more messages; the running commands finish and settle.
  const onOutputError = () => stop.abort()
  io.stdout.on('error', onOutputError)
  let acked = 0
  try {
    const result = await consume(client, {
      channel,
      group,
      concurrency: settings.value('concurrency'),
      visibilityTimeoutMs: settings.value('visibilityTimeout'),
      ...(retryDelay !== undefined ? { retryDelayMs: retryDelay } : {}),
      ...(timeout !== undefined ? { handlerTimeoutMs: timeout } : {}),
      encoding: 'base64',
      signal: stop.signal,
      onError: (error, message) => {
        const what = message ? `#${message.seq}` : 'the Worker'
        io.stderr.write(`zmq-edge consume: ${what}: ${(error as Error).message ?? error}\n`)
      },
      handler: async (message, context) => {
        const env = environmentOf(message, { channel, group }, io.env)
        const code = await runCommand(command, stdinOf(message, json), env, io, context.signal)
        if (code !== 0) throw new Error(`the command exited with ${code}; retrying`)
        acked++
        if (maxMessages !== undefined && acked >= maxMessages) stop.abort()
      },
    })
    io.stderr.write(`zmq-edge consume: stopped: ${result.acked} acked, ${result.failed} failed\n`)
    return ReaderExit.OK
  } catch (error) {
    if (!(error instanceof ZmqEdgeApiError)) throw error
    io.stderr.write(`zmq-edge consume: ${error.status} ${error.code}: ${error.message}\n`)
    return ReaderExit.FAILED
  } finally {
    io.signal?.removeEventListener('abort', onStop)
    io.stdout.off('error', onOutputError)
  }
}
