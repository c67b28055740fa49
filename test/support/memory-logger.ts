// A pino logger that keeps its JSON lines in memory, so tests can assert on log events.
import { Writable } from 'node:stream'
import { pino } from 'pino'
import type { Logger } from '../../node-bridge/bridge/log'

export interface MemoryLogger {
  logger: Logger
  /** Parsed log lines so far. */
  lines: Array<Record<string, unknown>>
}

export function createMemoryLogger(level = 'debug'): MemoryLogger {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write(chunk, _encoding, callback) {
      for (const line of String(chunk).split('\n')) {
        if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>)
      }
      callback()
    },
  })
  return { logger: pino({ level }, stream), lines }
}
