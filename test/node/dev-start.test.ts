// `npm start`: the bridge it launches listens on loopback unless the developer says otherwise.
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it, vi } from 'vitest'
import { readConfigFile } from '../../node-bridge/cli/config/config-file'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { DEV_BIND, devBridgeEnv, ensureDevVars } from '../../node-bridge/dev/dev-env'

const launch = { workerUrl: 'ws://127.0.0.1:8787', ingestToken: 'dev-ingest-token' }

/** Where the bridge would listen with these arguments and this environment. */
function hosts(argv: string[], env: NodeJS.ProcessEnv, files: Record<string, string> = {}) {
  const read = (path: string) => files[path] ?? ''
  const bridgeEnv = devBridgeEnv(argv, env, launch, read)
  const flags = argv[0] === '--bind' ? { bind: argv[1] as string } : {}
  const configPath = bridgeEnv.ZMQ_EDGE_CONFIG
  const file = configPath ? { file: readConfigFile(configPath, read) } : {}
  return parseConfig(flags, bridgeEnv, file).listeners.map((listener) => listener.bind.host)
}

describe('npm start', () => {
  it('binds the bridge to 127.0.0.1, the address it prints', () => {
    expect(DEV_BIND).toBe('tcp://127.0.0.1:7777')
    expect(hosts([], {})).toEqual(['127.0.0.1'])
    expect(devBridgeEnv([], {}, launch)).toMatchObject({
      ZMQ_EDGE_WORKER_URL: 'ws://127.0.0.1:8787',
      ZMQ_EDGE_INGEST_TOKEN: 'dev-ingest-token',
    })
  })

  it('binds where the developer says: a flag, a variable or the config file', () => {
    expect(hosts(['--bind', 'tcp://0.0.0.0:7777'], {})).toEqual(['0.0.0.0'])
    expect(hosts([], { ZMQ_EDGE_BIND: 'tcp://[::1]:7777' })).toEqual(['::1'])
    const files = { '/tmp/dev.yaml': 'bind: tcp://192.0.2.1:7777\n' }
    expect(hosts([], { ZMQ_EDGE_CONFIG: '/tmp/dev.yaml' }, files)).toEqual(['192.0.2.1'])
    // Only dialling out: no port is bound at all.
    expect(hosts([], { ZMQ_EDGE_CONNECT: 'tcp://127.0.0.1:5555' })).toEqual([])
  })
})

describe('.dev.vars', () => {
  it('is made with the three dev tokens; an older one without ADMIN_TOKEN is left alone', () => {
    const fresh = mkdtempSync(join(tmpdir(), 'zmq-edge-devvars-'))
    const output = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
    try {
      expect(ensureDevVars(fresh)).toEqual({
        READ_TOKEN: 'dev-read-token',
        INGEST_TOKEN: 'dev-ingest-token',
        ADMIN_TOKEN: 'dev-admin-token',
      })
      expect(statSync(join(fresh, '.dev.vars')).mode & 0o777).toBe(0o600)
      const older = mkdtempSync(join(tmpdir(), 'zmq-edge-devvars-'))
      writeFileSync(join(older, '.dev.vars'), 'READ_TOKEN=mine\nINGEST_TOKEN=ours')
      expect(ensureDevVars(older)).toEqual({ READ_TOKEN: 'mine', INGEST_TOKEN: 'ours' })
      expect(readFileSync(join(older, '.dev.vars'), 'utf8')).toBe(
        'READ_TOKEN=mine\nINGEST_TOKEN=ours',
      )
      expect(output).toHaveBeenCalledWith(expect.stringContaining('has no ADMIN_TOKEN'))
    } finally {
      output.mockRestore()
    }
  })
})
