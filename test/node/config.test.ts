// Bridge configuration: defaults, precedence of flags over variables, errors that name the setting.
import { describe, expect, it } from 'vitest'
import { startBridge } from '../../node-bridge/bridge/bridge'
import {
  ConfigWarningCode,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
} from '../../node-bridge/bridge/bridge-config'
import { readConfigFile } from '../../node-bridge/cli/config/config-file'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { z85Decode, z85Encode } from '../../shared/z85'
import { configErrorOf } from '../support/config-assert'
import { createMemoryLogger } from '../support/memory-logger'

const token = { ingestToken: 'secret' }

describe('parseConfig', () => {
  it('fills in the documented defaults', () => {
    const config = parseConfig(token, {})
    expect(config.listeners).toEqual([
      {
        endpoint: 'tcp://0.0.0.0:7777',
        bind: { host: '0.0.0.0', port: 7777 },
        channel: 'default',
        mechanism: 'NULL',
        socket: 'pull',
        subscribe: [],
      },
    ])
    expect(config.curve).toBeUndefined()
    expect(config.workerUrl).toBe('ws://127.0.0.1:8787')
    expect(config.handshakeTimeoutMs).toBe(DEFAULT_HANDSHAKE_TIMEOUT_MS)
    expect(config.bridgeId).toMatch(/^[A-Za-z0-9._:-]+-[0-9a-f]{12}$/)
  })

  it('PINGs every 30 s, drops after 60 s more without traffic, closes others idle for 10 min', () => {
    const config = parseConfig(token, {})
    expect(config.heartbeatIvlMs).toBe(30_000)
    expect(config.heartbeatTimeoutMs).toBe(60_000)
    expect(config.idleTimeoutMs).toBe(600_000)
    expect(parseConfig({ ...token, heartbeatIvlMs: '5000' }, {}).heartbeatTimeoutMs).toBe(10_000)
    const off = parseConfig({ ...token, heartbeatIvlMs: '0', idleTimeoutMs: '0' }, {})
    expect([off.heartbeatIvlMs, off.idleTimeoutMs]).toEqual([0, 0])
    expect(configErrorOf(() => parseConfig({ ...token, idleTimeoutMs: 'x' }, {})).setting).toBe(
      '--idle-timeout',
    )
  })

  it('limits each IP to 100 connections and, on NULL listeners too, 100 new ones a second', () => {
    const config = parseConfig(token, {})
    expect(config.maxConnections).toBe(10_000)
    expect(config.maxConnectionsPerIp).toBe(100)
    expect(config.nullConnectionRate).toBe(100)
    expect(config.curveHandshakeRate).toBe(50)
    expect(config.handshakeBackoffMs).toBe(60_000)
    expect(parseConfig({ ...token, nullConnectionRate: '0' }, {}).nullConnectionRate).toBe(0)
    expect(
      configErrorOf(() => parseConfig({ ...token, nullConnectionRate: '-1' }, {})).setting,
    ).toBe('--null-connection-rate')
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
      listeners: [{ bind: { host: '127.0.0.1', port: 9000 }, channel: 'from-env' }],
      ingestToken: 'env-token',
      workerUrl: 'wss://edge.example.com',
    })
    expect(parseConfig({ channel: 'from-flag' }, env).listeners[0]?.channel).toBe('from-flag')
  })

  it('understands *, IPv6 and host names in --bind', () => {
    const bindOf = (bind: string) => parseConfig({ ...token, bind }, {}).listeners[0]?.bind
    expect(bindOf('tcp://*:7000')).toEqual({ host: '::', port: 7000 })
    expect(bindOf('tcp://[::]:7000')).toEqual({ host: '::', port: 7000 })
    expect(bindOf('tcp://localhost:0')).toEqual({ host: 'localhost', port: 0 })
  })

  it('names the flag and the expected form for a bad value', () => {
    const bind = configErrorOf(() => parseConfig({ ...token, bind: 'udp://x:1' }, {}))
    expect(bind.setting).toBe('--bind')
    expect(bind.message).toContain('tcp://HOST:PORT')
    expect(configErrorOf(() => parseConfig({ ...token, bind: 'tcp://x:70000' }, {})).setting).toBe(
      '--bind',
    )
    expect(configErrorOf(() => parseConfig({ ...token, channel: 'no spaces' }, {})).setting).toBe(
      '--channel',
    )
    // Dots only: the Worker refuses them (URL parsing would rewrite /./ and /../).
    for (const channel of ['.', '..']) {
      expect(configErrorOf(() => parseConfig({ ...token, channel }, {})).message).toContain(
        'not only dots',
      )
    }
    expect(parseConfig({ ...token, channel: '.hidden..name' }, {}).listeners[0]?.channel).toBe(
      '.hidden..name',
    )
    expect(configErrorOf(() => parseConfig({ ...token, workerUrl: 'http://x' }, {})).setting).toBe(
      '--worker-url',
    )
    expect(
      configErrorOf(() => parseConfig({ ...token, handshakeTimeoutMs: '-5' }, {})).setting,
    ).toBe('--handshake-timeout')
  })

  it('names the variable when the bad value came from the environment', () => {
    const error = configErrorOf(() => parseConfig(token, { ZMQ_EDGE_CHANNEL: 'x'.repeat(65) }))
    expect(error.setting).toBe('ZMQ_EDGE_CHANNEL')
  })

  it('requires the ingest token and says where to set it', () => {
    const error = configErrorOf(() => parseConfig({}, {}))
    expect(error.message).toContain('--ingest-token')
    expect(error.message).toContain('ZMQ_EDGE_INGEST_TOKEN')
  })

  // libzmq doc/zmq_curve.adoc test keys
  const SERVER_SECRET = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'
  const SERVER_PUBLIC = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'

  it('warns when a secret is a command-line flag, naming the variable or file to use instead', () => {
    const flagged = parseConfig(
      { ingestToken: 't', curveSecretKey: z85Encode(new Uint8Array(32).fill(7)) },
      {},
    )
    expect(flagged.warnings).toEqual([
      {
        code: ConfigWarningCode.SECRET_IN_ARGUMENTS,
        setting: '--ingest-token',
        message: expect.stringMatching(/other local users.*ZMQ_EDGE_INGEST_TOKEN/),
      },
      {
        code: ConfigWarningCode.SECRET_IN_ARGUMENTS,
        setting: '--curve-secret-key',
        message: expect.stringContaining('--curve-secret-key-file'),
      },
    ])
    const fromEnv = parseConfig({}, { ZMQ_EDGE_INGEST_TOKEN: 't' })
    expect(fromEnv.warnings).toEqual([])
  })

  it('logs those warnings when the bridge starts', async () => {
    const logs = createMemoryLogger()
    const config = parseConfig(
      { ingestToken: 't', bind: 'tcp://127.0.0.1:0', workerUrl: 'ws://127.0.0.1:9' },
      {},
    )
    const bridge = await startBridge(config, logs.logger)
    await bridge.stop(0)
    expect(logs.lines.find((line) => line.code === 'SECRET_IN_ARGUMENTS')).toMatchObject({
      level: 40,
      setting: '--ingest-token',
    })
  })

  it('refuses a ws:// Worker URL to another host, naming the setting and the switch', () => {
    for (const url of [
      'ws://zmq-edge.example.workers.dev',
      'ws://10.0.0.5:8787',
      'ws://[2001:db8::1]',
    ]) {
      const error = configErrorOf(() => parseConfig({ ...token, workerUrl: url }, {}))
      expect(error.setting).toBe('--worker-url')
      expect(error.message).toContain('wss://')
      expect(error.message).toContain('--allow-insecure-worker-url')
    }
    const fromEnv = configErrorOf(() =>
      parseConfig(token, { ZMQ_EDGE_WORKER_URL: 'ws://worker.internal:8787' }),
    )
    expect(fromEnv.setting).toBe('ZMQ_EDGE_WORKER_URL')
    const fromFile = configErrorOf(() =>
      parseConfig(
        token,
        {},
        {
          file: readConfigFile('/etc/b.yaml', () => 'workerUrl: ws://worker.internal\n'),
        },
      ),
    )
    expect(fromFile.setting).toBe('/etc/b.yaml:1:12: workerUrl')
  })

  it('allows ws:// to loopback: 127.0.0.0/8, ::1 and localhost', () => {
    for (const url of [
      'ws://127.0.0.1:8787',
      'ws://127.200.0.9',
      'ws://[::1]:8787',
      'ws://localhost:8787',
      'ws://LOCALHOST',
      'ws://[::ffff:127.0.0.1]:8787',
    ]) {
      // As parsed: host names in lower case, IPv4-mapped IPv6 in hex.
      const parsed = new URL(url)
      expect(parseConfig({ ...token, workerUrl: url }, {}).workerUrl).toBe(
        `ws://${parsed.host}${parsed.pathname}`.replace(/\/+$/, ''),
      )
    }
  })

  it('takes the Worker URL as wrangler prints it, http:// or https://, and dials it as ws(s)://', () => {
    const worker = (workerUrl: string) => parseConfig({ ...token, workerUrl }, {}).workerUrl
    expect(worker('http://127.0.0.1:8787')).toBe('ws://127.0.0.1:8787')
    expect(worker('http://localhost:8787/')).toBe('ws://localhost:8787')
    expect(worker('HTTPS://edge.example.workers.dev')).toBe('wss://edge.example.workers.dev')
    // http:// to another host is ws:// to it: refused without the switch.
    const error = configErrorOf(() => worker('http://10.0.0.5:8787'))
    expect(error.message).toContain('(https://)')
    // Spaces around it are trimmed, as by the URL parser, and the loopback rule sees that.
    expect(configErrorOf(() => worker(' http://10.0.0.5:8787')).message).toContain('(https://)')
    expect(worker(' http://127.0.0.1:8787 ')).toBe('ws://127.0.0.1:8787')
    const bads = ['ftp://x', 'https://u:p@edge.example', 'https://edge.example/?a=1', 'x']
    for (const bad of [...bads, 'https://edge.example/?', 'https://edge.example/#']) {
      expect(configErrorOf(() => worker(bad)).setting).toBe('--worker-url')
    }
  })

  it('allows ws:// to another host with --allow-insecure-worker-url or its variable', () => {
    const url = 'ws://10.0.0.5:8787'
    const flagged = parseConfig({ ...token, workerUrl: url, allowInsecureWorkerUrl: 'true' }, {})
    expect(flagged).toMatchObject({ workerUrl: url, allowInsecureWorkerUrl: true })
    const env = { ZMQ_EDGE_WORKER_URL: url, ZMQ_EDGE_ALLOW_INSECURE_WORKER_URL: 'true' }
    expect(parseConfig(token, env).workerUrl).toBe(url)
    expect(parseConfig(token, {}).allowInsecureWorkerUrl).toBe(false)
    expect(parseConfig({ ...token, workerUrl: 'wss://edge.example.com' }, {}).workerUrl).toBe(
      'wss://edge.example.com',
    )
  })

  it('speaks CURVE on the default listener once a secret key is configured', () => {
    const config = parseConfig({ ...token, curveSecretKey: ` ${SERVER_SECRET}\n` }, {})
    expect(config.listeners[0]?.mechanism).toBe('CURVE')
    expect(z85Encode(config.curve?.publicKey as Uint8Array)).toBe(SERVER_PUBLIC)
  })

  it('reads the secret key from a file, in base64 as NetMQ stores it', () => {
    const base64 = Buffer.from(z85Decode(SERVER_SECRET)).toString('base64')
    const files: Record<string, string> = { '/keys/server.key': `${base64}\n` }
    const config = parseConfig(
      token,
      { ZMQ_EDGE_CURVE_SECRET_KEY_FILE: '/keys/server.key' },
      { readTextFile: (path) => files[path] ?? '' },
    )
    expect(z85Encode(config.curve?.publicKey as Uint8Array)).toBe(SERVER_PUBLIC)
  })

  it('runs several listeners, each with its channel and mechanism', () => {
    const config = parseConfig(
      {
        ...token,
        curveSecretKey: SERVER_SECRET,
        listener: [
          'tcp://0.0.0.0:7777,mechanism=NULL,channel=public',
          'tcp://[::]:7778,channel=secure',
        ],
      },
      {},
    )
    expect(config.listeners).toEqual([
      {
        endpoint: 'tcp://0.0.0.0:7777',
        bind: { host: '0.0.0.0', port: 7777 },
        channel: 'public',
        mechanism: 'NULL',
        socket: 'pull',
        subscribe: [],
      },
      {
        endpoint: 'tcp://[::]:7778',
        bind: { host: '::', port: 7778 },
        channel: 'secure',
        mechanism: 'CURVE',
        socket: 'pull',
        subscribe: [],
      },
    ])
  })

  it('takes listeners from ZMQ_EDGE_LISTENERS separated by semicolons', () => {
    const config = parseConfig(token, {
      ZMQ_EDGE_LISTENERS: 'tcp://127.0.0.1:1; tcp://127.0.0.1:2,channel=b',
    })
    expect(config.listeners.map((l) => [l.bind.port, l.channel])).toEqual([
      [1, 'default'],
      [2, 'b'],
    ])
  })

  it('refuses a CURVE listener without a key, unknown listener options and an allow-list without CURVE', () => {
    expect(
      configErrorOf(() => parseConfig({ ...token, listener: ['tcp://x:1,mechanism=CURVE'] }, {}))
        .message,
    ).toContain('secret key')
    expect(
      configErrorOf(() => parseConfig({ ...token, listener: ['tcp://x:1,color=red'] }, {})).setting,
    ).toBe('--listener')
    expect(
      configErrorOf(() => parseConfig({ ...token, listener: ['tcp://x:1,mechanism=PLAIN'] }, {}))
        .message,
    ).toContain('mechanism=NULL or mechanism=CURVE')
    expect(configErrorOf(() => parseConfig({ ...token, curveAllowFile: '/x' }, {})).setting).toBe(
      '--curve-allow-file',
    )
  })

  it('names the setting of a malformed key and the forms it accepts', () => {
    let message = ''
    try {
      parseConfig({ ...token, curveSecretKey: 'not-a-key' }, {})
    } catch (error) {
      message = (error as Error).message
    }
    expect(message).toContain('--curve-secret-key')
    expect(message).toMatch(/Z85/)
  })

  describe('config file', () => {
    const file = (json: unknown) =>
      readConfigFile('/etc/zmq-edge/bridge.json', () => JSON.stringify(json))

    it('reads settings by name or by flag, with lists for repeatable ones', () => {
      const config = parseConfig(
        {},
        {},
        {
          file: file({
            'ingest-token': 'from-file',
            hwmMessages: 500,
            listener: ['tcp://127.0.0.1:1,channel=a', 'tcp://127.0.0.1:2,channel=b'],
            'allow-zmtp2': true,
          }),
        },
      )
      expect(config.ingestToken).toBe('from-file')
      expect(config.hwmMessages).toBe(500)
      expect(config.listeners.map((l) => l.channel)).toEqual(['a', 'b'])
      expect(config.allowZmtp2).toBe(true)
    })

    it('gives way to variables, which give way to flags', () => {
      const settings = file({ channel: 'file', ingestToken: 't' })
      expect(parseConfig({}, {}, { file: settings }).listeners[0]?.channel).toBe('file')
      expect(
        parseConfig({}, { ZMQ_EDGE_CHANNEL: 'env' }, { file: settings }).listeners[0]?.channel,
      ).toBe('env')
      expect(
        parseConfig({ channel: 'flag' }, { ZMQ_EDGE_CHANNEL: 'env' }, { file: settings })
          .listeners[0]?.channel,
      ).toBe('flag')
    })

    it('masks the token and the secret key in the JSON line it quotes', () => {
      const secret = 'S3cr3t-T0ken'
      const oneLine = `{"ingestToken": "${secret}", "curveSecretKey": "${secret}", "channel": "a" "b"}`
      const error = configErrorOf(() => readConfigFile('bridge.json', () => oneLine))
      expect(error.message).toContain(
        '{"ingestToken": "****", "curveSecretKey": "****", "channel": "a" "b"}',
      )
      expect(error.message).not.toContain(secret)
      const [, line, caret] = error.message.split('\n')
      expect(caret?.indexOf('^')).toBe(line?.indexOf('"b"'))
      const pretty = `{\n  "ingest-token": "${secret}" "more"\n}`
      const second = configErrorOf(() => readConfigFile('bridge.json', () => pretty))
      expect(second.setting).toMatch(/^bridge\.json:2:\d+$/)
      expect(second.message).toContain('"ingest-token": "****" "more"')
      const [, secondLine, secondCaret] = second.message.split('\n')
      expect(secondCaret?.indexOf('^')).toBe(secondLine?.indexOf('"more"'))
      expect(second.message).not.toContain(secret)
      const broken = configErrorOf(() =>
        readConfigFile('bridge.json', () => `{"ingestToken": "${secret}\u0001"}`),
      )
      expect(broken.message).not.toContain(secret)
    })

    it('names the file and key of a bad value, an unknown key, or broken JSON', () => {
      const bad = configErrorOf(() =>
        parseConfig({}, {}, { file: file({ ingestToken: 't', channel: 'no spaces' }) }),
      )
      expect(bad.setting).toBe('/etc/zmq-edge/bridge.json: channel')
      expect(configErrorOf(() => file({ colour: 'red' })).setting).toBe(
        '/etc/zmq-edge/bridge.json: colour',
      )
      expect(configErrorOf(() => file({ channel: ['a', 'b'] })).message).toContain('one value')
      expect(configErrorOf(() => readConfigFile('x.json', () => '{ nope')).message).toContain(
        'x.json',
      )
    })
  })

  it("refuses a --max-message-size that could not fit the Worker's 32 MiB WebSocket limit", () => {
    expect(() =>
      parseConfig({ ingestToken: 't', maxMessageSize: String(32 * 1024 * 1024) }, {}),
    ).toThrowError(expect.objectContaining({ setting: '--max-message-size' }))
    expect(() =>
      parseConfig(
        {
          ingestToken: 't',
          maxMessageSize: String(31 * 1024 * 1024),
          maxFramesPerMessage: '1000000',
        },
        {},
      ),
    ).toThrow(/32 MiB/)
    expect(
      parseConfig({ ingestToken: 't', maxMessageSize: String(31 * 1024 * 1024) }, {})
        .maxMessageSize,
    ).toBe(31 * 1024 * 1024)
  })
})
