// What the deployment files promise: the systemd unit's memory cap leaves room for the relay's
// high-water mark (backpressure, not out-of-memory kills), and no document puts a secret on a
// command line, where other local users can read it.
import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_HWM_BYTES,
  DEFAULT_MAX_BATCH_BYTES,
  DEFAULT_MAX_IN_FLIGHT_BATCHES,
} from '../../node-bridge/bridge/bridge-config'

const root = new URL('../..', import.meta.url).pathname
const read = (path: string) => readFileSync(`${root}${path}`, 'utf8')
const unit = read('docs/deploy/zmq-edge-bridge.service')

/** The value of a `Key=` line of the [Service] section, or undefined. */
function directive(key: string): string | undefined {
  return new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1]?.trim()
}

/** systemd.resource-control(5): bytes, with K, M, G or T for 1024-based multiples. */
function bytes(value: string): number {
  const match = /^(\d+)([KMGT]?)$/.exec(value)
  if (!match) throw new Error(`not a byte size: ${value}`)
  return Number(match[1]) * 1024 ** ' KMGT'.indexOf(match[2] || ' ')
}

describe('docs/deploy/zmq-edge-bridge.service', () => {
  it('caps memory well above what the relay may hold at its high-water mark', () => {
    const memoryMax = directive('MemoryMax')
    expect(memoryMax).toBeDefined()
    // The queue at --hwm-bytes, plus a full window of encoded batches on their way out.
    const relay = DEFAULT_HWM_BYTES + DEFAULT_MAX_IN_FLIGHT_BATCHES * DEFAULT_MAX_BATCH_BYTES
    expect(bytes(memoryMax as string)).toBeGreaterThanOrEqual(2 * relay)
  })

  it('reads its settings and secrets from an EnvironmentFile, never from ExecStart', () => {
    expect(directive('EnvironmentFile')).toBe('/etc/zmq-edge/bridge.env')
    expect(directive('ExecStart')).not.toMatch(/--(ingest-token|curve-secret-key)\b(?!-file)/)
  })
})

describe('the documentation', () => {
  const documents = [
    'README.md',
    ...readdirSync(`${root}docs`)
      .filter((name) => name.endsWith('.md'))
      .map((name) => `docs/${name}`),
    ...readdirSync(`${root}docs/deploy`).map((name) => `docs/deploy/${name}`),
  ]

  it('passes secrets in variables or files, never as a flag with a value', () => {
    const secretFlag = /--(ingest-token|curve-secret-key|token)[ =](?!-)\S/
    for (const path of documents) {
      const lines = read(path).split('\n')
      const offending = lines.filter((line) => secretFlag.test(line))
      expect([path, offending]).toEqual([path, []])
    }
  })
})
