// Structured JSON logs (pino). One logger per process; modules take it as a parameter.
import { pino } from 'pino'

export type Logger = pino.Logger

/** Creates the bridge's logger. `level` is a pino level (`info`, `debug`, `silent`, …). */
export function createLogger(level = 'info'): Logger {
  return pino({ level, base: { service: 'zmq-edge-bridge' } })
}
