// YAML config files: the same settings and checks as JSON, YAML's surprises reported clearly.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { configFormatOf, readConfigFile } from '../../node-bridge/cli/config/config-file'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import { SETTINGS, type SettingName } from '../../node-bridge/cli/config/settings'
import { z85Decode } from '../../shared/z85'
import { configErrorOf } from '../support/config-assert'

const PATH = '/etc/zmq-edge/bridge.yaml'
const yaml = (text: string, path = PATH) => readConfigFile(path, () => text)
/** Flags that pin what would otherwise be random, so two configs compare equal. */
const pinned = { bridgeId: 'edge-1' }

// libzmq doc/zmq_curve.adoc test key: Z85, and full of characters YAML cares about.
const SERVER_SECRET = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'

describe('YAML config files', () => {
  it('chooses YAML for .yaml and .yml, whatever the case, and JSON for the rest', () => {
    expect(configFormatOf('a.yaml')).toBe('yaml')
    expect(configFormatOf('/etc/zmq-edge/bridge.YML')).toBe('yaml')
    expect(configFormatOf('a.json')).toBe('json')
    expect(configFormatOf('/etc/zmq-edge/bridge.conf')).toBe('json')
    expect(configFormatOf('bridge')).toBe('json')
  })

  it('reads a YAML file into the same settings and config as the equivalent JSON file', () => {
    const json = readConfigFile('/etc/zmq-edge/bridge.json', () =>
      JSON.stringify({
        'ingest-token': 'from-file',
        hwmMessages: 500,
        listener: ['tcp://127.0.0.1:1,channel=a', 'tcp://127.0.0.1:2,channel=b,mechanism=NULL'],
        'allow-zmtp2': true,
        spoolFsync: 'on',
        curveSecretKey: SERVER_SECRET,
        workerUrl: 'wss://edge.example.com',
      }),
    )
    const fromYaml = yaml(
      [
        '# the same settings as bridge.json',
        'ingest-token: from-file',
        'hwmMessages: 500',
        'listener:',
        '  - tcp://127.0.0.1:1,channel=a',
        '  - tcp://127.0.0.1:2,channel=b,mechanism=NULL',
        'allow-zmtp2: true',
        'spoolFsync: on',
        `curveSecretKey: ${SERVER_SECRET}`,
        'workerUrl: wss://edge.example.com',
      ].join('\n'),
    )
    expect(fromYaml.values).toEqual(json.values)
    expect(parseConfig(pinned, {}, { file: fromYaml })).toEqual(
      parseConfig(pinned, {}, { file: json }),
    )
    expect(parseConfig(pinned, {}, { file: fromYaml }).listeners.map((l) => l.channel)).toEqual([
      'a',
      'b',
    ])
  })

  it('keeps YAML 1.2 text as text and takes numbers and booleans as written', () => {
    const allDigits = '1'.repeat(64) // a hex key YAML reads as the number 1.1e63
    const file = yaml(
      [
        'ingestToken: t',
        'channel: yes',
        'bridgeId: 0x1F',
        'spoolFsync: off',
        'allowZmtp2: True',
        'hwmMessages: 0500',
        `curveSecretKey: ${allDigits}`,
      ].join('\n'),
    )
    expect(file.values).toMatchObject({
      channel: 'yes',
      bridgeId: '0x1F',
      spoolFsync: 'off',
      allowZmtp2: 'True',
      hwmMessages: '0500',
      curveSecretKey: allDigits,
    })
    const config = parseConfig({}, {}, { file })
    expect(config).toMatchObject({
      bridgeId: '0x1F',
      allowZmtp2: true,
      spoolFsync: false,
      hwmMessages: 500,
    })
    expect(Buffer.from(config.curve?.secretKey as Uint8Array).toString('hex')).toBe(allDigits)
    // A `%YAML 1.1` directive does not bring back 1.1's booleans.
    expect(yaml('%YAML 1.1\n---\nchannel: on\n').values.channel).toBe('on')
  })

  it('reads an unquoted Z85 key with : # and % inside, and a quoted one that starts with &', () => {
    const inside = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
    expect(yaml(`curveSecretKey: ${inside}`).values.curveSecretKey).toBe(inside)
    expect(yaml('curveSecretKey: abc#def').values.curveSecretKey).toBe('abc#def')
    const ampersand = `&${SERVER_SECRET.slice(1)}`
    expect(yaml(`curveSecretKey: "${ampersand}"`).values.curveSecretKey).toBe(ampersand)
    expect(z85Decode(ampersand)).toHaveLength(32)
  })

  it('reports a syntax error as file:line:col with the line at fault', () => {
    const error = configErrorOf(() => yaml('ingestToken: t\nlistener: [tcp://x:1\nchannel: a\n'))
    expect(error.setting).toBe(`${PATH}:3:1`) // where the unclosed [ should have ended
    expect(error.message).toContain('not valid YAML')
    const tab = configErrorOf(() => yaml('ingestToken: t\nlistener:\n\t- tcp://x:1\n'))
    expect(tab.setting).toBe(`${PATH}:3:1`)
    expect(tab.message).toContain('\t- tcp://x:1')
    expect(tab.message).not.toContain('quote')
  })

  it('names the setting, its line and column, and the expected form of a wrong value', () => {
    const text = 'ingestToken: t\nhwmMessages: lots\n'
    const bad = configErrorOf(() => parseConfig({}, {}, { file: yaml(text) }))
    expect(bad.setting).toBe(`${PATH}:2:14: hwmMessages`)
    expect(bad.message).toContain('expected a positive whole number, got "lots"')
    const flagName = configErrorOf(() =>
      parseConfig({}, {}, { file: yaml('ingestToken: t\n\nbatch-bytes: 99999999999\n') }),
    )
    expect(flagName.setting).toBe(`${PATH}:3:14: batch-bytes`)
    expect(flagName.message).toContain('must be at most 33554432')
    const list = configErrorOf(() => yaml('channel: [a, b]'))
    expect(list.setting).toBe(`${PATH}:1:10: channel`)
    expect(list.message).toContain('takes one value, not a list')
    expect(configErrorOf(() => yaml('channel:\n  name: a')).message).toContain('got a mapping')
    expect(configErrorOf(() => yaml('listener:\n  - {a: 1}')).message).toContain('got a mapping')
    expect(configErrorOf(() => yaml('colour: red')).setting).toBe(`${PATH}:1:9: colour`)
  })

  it('tells the user to quote a value that YAML reads as something other than text', () => {
    // `#` starts a comment: the key is gone and the setting is empty.
    const comment = configErrorOf(() => yaml(`ingestToken: t\ncurveSecretKey: #${SERVER_SECRET}`))
    expect(comment.setting).toBe(`${PATH}:2:17: curveSecretKey`)
    expect(comment.message).toContain('got nothing (null)')
    expect(comment.message).toContain('quote a value')
    // `&` starts an anchor, `*` an alias: the rest of a Z85 key breaks the syntax.
    for (const indicator of ['&', '*']) {
      const error = configErrorOf(() =>
        yaml(`ingestToken: t\ncurveSecretKey: ${indicator}${SERVER_SECRET}`),
      )
      expect(error.setting).toMatch(/^\/etc\/zmq-edge\/bridge\.yaml:2:\d+$/)
      expect(error.message).toContain('quote a value')
      expect(error.message).toContain('curveSecretKey: ****')
      expect(error.message).not.toContain(SERVER_SECRET.slice(4))
    }
    expect(configErrorOf(() => yaml('ingestToken: &anchor')).message).toContain('quote a value')
    expect(configErrorOf(() => yaml('ingestToken: *abc')).message).toContain('quote it')
    expect(configErrorOf(() => yaml('bridgeId: !abc')).message).toContain('quote a value')
    expect(configErrorOf(() => yaml('ingestToken: @abc')).message).toContain('quote a value')
    expect(configErrorOf(() => yaml('ingestToken: [abc]')).message).toContain('quote a value')
  })

  it('masks the token and key values in the lines it quotes, whatever the error', () => {
    const secret = 'S3cr3t-T0ken'
    const cases: Array<[string, string]> = [
      // A colon in an unquoted value: a nested mapping YAML refuses.
      [`ingestToken: ${secret}: more\nchannel: a\n`, 'ingestToken: ****'],
      [`ingest-token: "${secret}" more\n`, 'ingest-token: ****'],
      [`channel: a\ncurve-secret-key: &${secret} x: y\n`, 'curve-secret-key: ****'],
      // A tag, an alias, a block scalar header: the error message itself quotes the value.
      [`ingestToken: !${secret}\n`, 'ingestToken: ****'],
      [`ingestToken: *${secret}\n`, 'ingestToken'],
      [`ingestToken: |${secret}\n  x\n`, 'ingestToken: ****'],
      // A value over several lines, the error on a line without the key.
      [`ingestToken:\n  ${secret}\n  ${secret}: two\n`, '\n    ****\n'],
      // No space after the colon: YAML reads one string, not a key and its value.
      [`ingestToken:${secret}\n`, 'ingestToken:****'],
      [`channel: a\ningestToken:${secret}\n`, 'ingestToken:****'],
      // A flow mapping on one line: the other settings stay readable.
      [`{ingestToken: ${secret}, channel: a b: c}\n`, '{ingestToken: ****, channel: a b: c}'],
    ]
    for (const [text, shown] of cases) {
      const error = configErrorOf(() => yaml(text))
      expect([text, error.message]).toEqual([text, expect.stringContaining(shown)])
      expect([text, error.message]).toEqual([text, expect.not.stringContaining(secret)])
      expect(error.message).not.toContain(secret.slice(0, 6))
    }
  })

  it('shows the path of a secret key file, which is no secret', () => {
    const error = configErrorOf(() => yaml('curveSecretKeyFile: /etc/zmq-edge/server.key x: y\n'))
    expect(error.message).toContain('curveSecretKeyFile: /etc/zmq-edge/server.key x: y')
  })

  it('keeps the caret under the fault when a masked value comes before it', () => {
    const secret = 'S3cr3t-T0ken'
    const text = `{ingestToken: ${secret}, channel: a b: c}\n`
    const error = configErrorOf(() => yaml(text))
    const col = Number(error.setting.split(':').at(-1))
    expect(col).toBeGreaterThan(text.indexOf(secret) + secret.length)
    const [, line, caret] = error.message.split('\n')
    expect(line).toBe('  {ingestToken: ****, channel: a b: c}')
    // Two spaces of indent, then the column less what the mask took out.
    expect(caret?.indexOf('^')).toBe(2 + col - 1 - (secret.length - '****'.length))
  })

  it('follows anchors and aliases that resolve', () => {
    const file = yaml('channel: &ch orders\nlistener:\n  - tcp://x:1,channel=a\nbridgeId: *ch\n')
    expect(file.values).toMatchObject({ channel: 'orders', bridgeId: 'orders' })
  })

  it('refuses nested lists, mappings and alias cycles with a ConfigError, never a crash', () => {
    // A list that contains itself: expanding it would recurse without end.
    const cycle = configErrorOf(() => yaml('listener: &x [*x]\n'))
    expect(cycle.setting).toMatch(/listener/)
    expect(cycle.message).toContain('a list')
    const nested = configErrorOf(() => yaml('listener:\n  - [tcp://x:1]\n'))
    expect(nested.message).toContain('a list')
    const mapping = configErrorOf(() => yaml('listener:\n  - {host: x}\n'))
    expect(mapping.message).toContain('a mapping')
    const aliasToMapping = configErrorOf(() => yaml('channel: &m {a: 1}\nbridgeId: *m\n'))
    expect(aliasToMapping.message).toContain('a mapping')
  })

  it('refuses a key given twice, or one setting under two names', () => {
    const twice = configErrorOf(() => yaml('ingestToken: t\nchannel: a\nchannel: b\n'))
    expect(twice.setting).toBe(`${PATH}:3:1`)
    expect(twice.message).toContain('given twice')
    const twoNames = configErrorOf(() => yaml('hwmMessages: 1\nhwm-messages: 2\n'))
    expect(twoNames.setting).toBe(`${PATH}:2:15: hwm-messages`)
    expect(twoNames.message).toContain('same setting as hwmMessages')
    const json = configErrorOf(() =>
      readConfigFile('bridge.json', () => '{\n  "channel": "a",\n  "channel": "b"\n}'),
    )
    expect(json.setting).toBe('bridge.json:3:3')
  })

  it('reads a file of comments only as no settings, and refuses anything but a mapping', () => {
    expect(yaml('# nothing yet\n').values).toEqual({})
    expect(configErrorOf(() => yaml('- ingestToken: t')).message).toContain(
      'must hold a YAML mapping',
    )
    expect(configErrorOf(() => yaml('a: 1\n---\nb: 2\n')).setting).toBe(`${PATH}:2:1`)
  })

  it('reads other names as JSON, and says how to name a YAML file', () => {
    const path = '/etc/zmq-edge/bridge.conf'
    expect(readConfigFile(path, () => '{"channel": "a"}').values).toEqual({ channel: 'a' })
    const error = configErrorOf(() => readConfigFile(path, () => 'ingestToken: t\nchannel: a\n'))
    expect(error.setting).toBe(path)
    expect(error.message).toContain("not valid JSON: Unexpected token 'i'")
    expect(error.message).toContain('.json, .yaml or .yml')
    const json = configErrorOf(() => readConfigFile('bridge.json', () => '{\n  "channel": "a",\n}'))
    expect(json.setting).toBe('bridge.json:3:1')
    expect(json.message).not.toContain('.yaml or .yml')
  })

  it('names the file it cannot read', () => {
    const error = configErrorOf(() => readConfigFile('/nowhere/bridge.yaml'))
    expect(error.setting).toBe('--config')
    expect(error.message).toContain('/nowhere/bridge.yaml')
  })

  it('gives way to variables, which give way to flags', () => {
    const file = yaml(
      'ingestToken: file\nchannel: file\nlistener:\n  - tcp://127.0.0.1:1\n  - tcp://127.0.0.1:2\n',
    )
    const fromFile = parseConfig({}, {}, { file })
    expect(fromFile.ingestToken).toBe('file')
    expect(fromFile.listeners.map((l) => [l.bind.port, l.channel])).toEqual([
      [1, 'file'],
      [2, 'file'],
    ])
    const env = { ZMQ_EDGE_CHANNEL: 'env', ZMQ_EDGE_LISTENERS: 'tcp://127.0.0.1:3' }
    const fromEnv = parseConfig({}, env, { file })
    expect(fromEnv.listeners.map((l) => [l.bind.port, l.channel])).toEqual([[3, 'env']])
    expect(fromEnv.ingestToken).toBe('file')
    const fromFlags = parseConfig(
      { channel: 'flag', listener: ['tcp://127.0.0.1:4'], ingestToken: 'flag' },
      env,
      { file },
    )
    expect(fromFlags.listeners.map((l) => [l.bind.port, l.channel])).toEqual([[4, 'flag']])
    expect(fromFlags.ingestToken).toBe('flag')
    // A bad value in the file does not matter once a variable or flag replaces it.
    const bad = yaml('ingestToken: t\nhwmMessages: lots\n')
    expect(parseConfig({}, { ZMQ_EDGE_HWM_MESSAGES: '7' }, { file: bad }).hwmMessages).toBe(7)
    expect(parseConfig({ hwmMessages: '8' }, {}, { file: bad }).hwmMessages).toBe(8)
  })
})

describe('docs/zmq-edge.example.yaml', () => {
  const examplePath = new URL('../../docs/zmq-edge.example.yaml', import.meta.url).pathname
  const exampleText = readFileSync(examplePath, 'utf8')
  /** The example with its commented-out settings (`#key: value`, `#  - item`) switched on. */
  const uncommented = exampleText.replace(/^#(?=[A-Za-z]|\s+- )/gm, '')
  /** Settings the example shows with an example value, not their default. */
  const EXAMPLE_VALUES: SettingName[] = [
    'listener',
    'connect',
    'ingestToken',
    'bridgeId',
    'curveSecretKey',
    'curveSecretKeyFile',
    'curveAllowFile',
    'heartbeatTimeoutMs',
    'spoolDir',
    'metricsPort',
    'metricsHost',
  ]

  it('parses as it ships, every setting commented out', () => {
    const file = readConfigFile(examplePath)
    expect(file.values).toEqual({})
    expect(() => parseConfig({ ingestToken: 't' }, {}, { file })).not.toThrow()
  })

  it('shows every setting, under its setting name, in a form the bridge reads', () => {
    const file = readConfigFile(
      examplePath.replace(/\.yaml$/, '.uncommented.yaml'),
      () => uncommented,
    )
    expect(Object.keys(file.values).sort()).toEqual(Object.keys(SETTINGS).sort())
    expect(file.values.listener).toHaveLength(2)
  })

  it('shows the defaults the bridge uses', () => {
    const file = readConfigFile('defaults.yaml', () => uncommented)
    for (const name of EXAMPLE_VALUES) delete file.values[name]
    const flags = { ingestToken: 't', bridgeId: 'edge-1' }
    expect(parseConfig(flags, {}, { file })).toEqual(parseConfig(flags, {}))
  })
})
