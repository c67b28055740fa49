// Bridge configuration: defaults, precedence of flags over variables, errors that name the setting.
import { describe, expect, it } from 'vitest'
import { ConfigError, DEFAULT_HANDSHAKE_TIMEOUT_MS, parseConfig } from '../../node-bridge/config'

const token = { ingestToken: 'secret' }

function errorOf(action: () => unknown): ConfigError {
  try {
    action()
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a ConfigError')
}

describe('parseConfig', () => {
  it('fills in the documented defaults', () => {
    const config = parseConfig(token, {})
    expect(config.bind).toEqual({ host: '0.0.0.0', port: 7777 })
    expect(config.channel).toBe('default')
    expect(config.workerUrl).toBe('ws://127.0.0.1:8787')
    expect(config.handshakeTimeoutMs).toBe(DEFAULT_HANDSHAKE_TIMEOUT_MS)
    expect(config.bridgeId).toMatch(/^[A-Za-z0-9._:-]+-[0-9a-f]{12}$/)
  })

  it('reads environment variables, and flags win over them', () => {
    const env = {
      ZMQ_EDGE_BIND: 'tcp://127.0.0.1:9000',
      ZMQ_EDGE_CHANNEL: 'from-env',
      ZMQ_EDGE_INGEST_TOKEN: 'env-token',
      ZMQ_EDGE_WORKER_URL: 'wss://edge.example.com/',
    }
    const fromEnv = parseConfig({}, env)
    expect(fromEnv).toMatchObject({
      bind: { host: '127.0.0.1', port: 9000 },
      channel: 'from-env',
      ingestToken: 'env-token',
      workerUrl: 'wss://edge.example.com',
    })
    expect(parseConfig({ channel: 'from-flag' }, env).channel).toBe('from-flag')
  })

  it('understands *, IPv6 and host names in --bind', () => {
    expect(parseConfig({ ...token, bind: 'tcp://*:7000' }, {}).bind).toEqual({
      host: '0.0.0.0',
      port: 7000,
    })
    expect(parseConfig({ ...token, bind: 'tcp://[::]:7000' }, {}).bind).toEqual({
      host: '::',
      port: 7000,
    })
    expect(parseConfig({ ...token, bind: 'tcp://localhost:0' }, {}).bind).toEqual({
      host: 'localhost',
      port: 0,
    })
  })

  it('names the flag and the expected form for a bad value', () => {
    const bind = errorOf(() => parseConfig({ ...token, bind: 'udp://x:1' }, {}))
    expect(bind.setting).toBe('--bind')
    expect(bind.message).toContain('tcp://HOST:PORT')
    expect(errorOf(() => parseConfig({ ...token, bind: 'tcp://x:70000' }, {})).setting).toBe(
      '--bind',
    )
    expect(errorOf(() => parseConfig({ ...token, channel: 'no spaces' }, {})).setting).toBe(
      '--channel',
    )
    expect(errorOf(() => parseConfig({ ...token, workerUrl: 'http://x' }, {})).setting).toBe(
      '--worker-url',
    )
    expect(errorOf(() => parseConfig({ ...token, handshakeTimeoutMs: '-5' }, {})).setting).toBe(
      '--handshake-timeout',
    )
  })

  it('names the variable when the bad value came from the environment', () => {
    const error = errorOf(() => parseConfig(token, { ZMQ_EDGE_CHANNEL: 'x'.repeat(65) }))
    expect(error.setting).toBe('ZMQ_EDGE_CHANNEL')
  })

  it('requires the ingest token and says where to set it', () => {
    const error = errorOf(() => parseConfig({}, {}))
    expect(error.message).toContain('--ingest-token')
    expect(error.message).toContain('ZMQ_EDGE_INGEST_TOKEN')
  })
})
