// `zmq-edge keys`: the Worker's CURVE key registry from the command line (POST/GET/PATCH/DELETE
// /v1/keys), with the admin token from ZMQ_EDGE_ADMIN_TOKEN. `import` registers every key of a
// bridge's allow-list file, so a fleet can move from files to the registry.
import { readFileSync } from 'node:fs'
import type { ApiKey } from '../../shared/api-types.ts'
import { isChannelPattern } from '../../shared/channel-pattern.ts'
import { parseAllowListEntries } from '../bridge/allow-list.ts'
import { ConfigError } from '../bridge/bridge-config.ts'
import { KeyFormatError } from '../zmtp/mechanisms/curve-keys.ts'
import { type RawValues, type SettingInfo, SettingSources } from './config/setting.ts'
import { integerAtLeast, isLoopbackUrl } from './config/values.ts'
import { describeError, oneLine, READER_SETTINGS } from './consumer-cli.ts'

/** Exit codes: 0 done, 1 the Worker refused or failed, 2 a bad setting. */
export const KeysExit = { OK: 0, FAILED: 1, USAGE: 2 } as const

const CONNECTION = {
  url: READER_SETTINGS.url,
  token: {
    flag: '--token',
    env: 'ZMQ_EDGE_ADMIN_TOKEN',
    valueName: '<token>',
    description: 'the admin token (ADMIN_TOKEN, or a token with the admin scope)',
    secret: { instead: 'the variable' },
  },
  json: READER_SETTINGS.json,
} as const satisfies Record<string, SettingInfo>

function parsePattern(raw: string, source: string): string {
  if (!isChannelPattern(raw)) {
    throw new ConfigError(source, `expected a channel name or prefix* (sensors-*), got "${raw}"`)
  }
  return raw
}

const RECORD = {
  name: {
    flag: '--name',
    valueName: '<name>',
    description: 'what the key is (a device, a client)',
  },
  channel: {
    flag: '--channel',
    valueName: '<pattern>',
    repeatable: true,
    description: 'a channel the key may send to, or a prefix followed by * (repeat for more)',
  },
  label: {
    flag: '--label',
    valueName: '<name=value>',
    repeatable: true,
    description: 'a label to find the key by (repeat for more)',
  },
  messagesPerSecond: {
    flag: '--messages-per-second',
    valueName: '<n>',
    description: "rate limit: the bridge pauses reading the key's connections past it",
    parse: integerAtLeast(1),
  },
  bytesPerSecond: {
    flag: '--bytes-per-second',
    valueName: '<n>',
    description: 'rate limit in frame octets a second',
    parse: integerAtLeast(1),
  },
  expiresAt: {
    flag: '--expires-at',
    valueName: '<iso-time>',
    description: 'when the key stops being admitted (ISO 8601)',
  },
  secondPublicKey: {
    flag: '--second-public-key',
    valueName: '<key>',
    description: 'a second key admitted as this one, while a client rotates to it',
  },
} as const satisfies Record<string, SettingInfo>

export const KEYS_ADD_SETTINGS = {
  ...CONNECTION,
  publicKey: {
    flag: '--public-key',
    valueName: '<key>',
    description: "the client's CURVE public key (Z85, base64 or hex)",
  },
  ...RECORD,
} as const satisfies Record<string, SettingInfo>

const STATUS = {
  status: {
    flag: '--status',
    valueName: '<status>',
    description: 'only active, revoked or expired keys',
  },
} as const satisfies Record<string, SettingInfo>

export const KEYS_LIST_SETTINGS = {
  ...CONNECTION,
  ...STATUS,
  label: { ...RECORD.label, description: 'only keys with this label' },
} as const satisfies Record<string, SettingInfo>

/** Every setting of the subcommands (each takes some: see the tables above). */
const KEYS_SETTINGS = { ...KEYS_ADD_SETTINGS, ...STATUS } as const

export const KEYS_ID_SETTINGS = CONNECTION

export const KEYS_IMPORT_SETTINGS = {
  ...CONNECTION,
  channel: RECORD.channel,
  label: RECORD.label,
} as const satisfies Record<string, SettingInfo>

export type KeysAction = 'add' | 'list' | 'show' | 'revoke' | 'rm' | 'import'

export interface KeysIo {
  stdout: { write(text: string): unknown }
  stderr: { write(text: string): unknown }
  env: Readonly<Record<string, string | undefined>>
}

class Refused extends Error {}

function labelsOf(values: readonly string[], source: string): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const value of values) {
    const split = value.indexOf('=')
    if (split < 1) throw new ConfigError(source, `expected name=value, got "${value}"`)
    labels[value.slice(0, split)] = value.slice(split + 1)
  }
  return labels
}

function describe(key: ApiKey): string {
  const lines = [
    `id:         ${key.id}`,
    `name:       ${oneLine(key.name)}`,
    `status:     ${key.status}`,
    `public key: ${key.publicKey}`,
    ...(key.secondPublicKey ? [`second key: ${key.secondPublicKey}`] : []),
    `channels:   ${key.channels.join(', ')}`,
    ...(Object.keys(key.labels).length
      ? [
          `labels:     ${Object.entries(key.labels)
            .map(([name, value]) => `${oneLine(name)}=${oneLine(value)}`)
            .join(', ')}`,
        ]
      : []),
    ...(key.rateLimit
      ? [
          `rate limit: ${[
            key.rateLimit.messagesPerSecond && `${key.rateLimit.messagesPerSecond} messages/s`,
            key.rateLimit.bytesPerSecond && `${key.rateLimit.bytesPerSecond} B/s`,
          ]
            .filter(Boolean)
            .join(', ')}`,
        ]
      : []),
    ...(key.expiresAt ? [`expires:    ${key.expiresAt}`] : []),
  ]
  return `${lines.join('\n')}\n`
}

/**
 * Runs `zmq-edge keys <action>`; `args` holds the id (show, revoke, rm) or the file (import).
 * @returns the exit code ({@link KeysExit}).
 */
export async function runKeys(
  action: KeysAction,
  args: readonly string[],
  flags: RawValues<typeof KEYS_SETTINGS>,
  io: KeysIo,
): Promise<number> {
  let base: string
  let token: string
  let json: boolean
  let settings: SettingSources<typeof KEYS_SETTINGS>
  try {
    settings = new SettingSources(KEYS_SETTINGS, flags, io.env)
    base = settings.value('url')
    // The admin token must not cross a network in clear.
    if (base.startsWith('http:') && !isLoopbackUrl(new URL(base))) {
      throw new ConfigError(
        settings.raw('url')?.source ?? '--url',
        `http:// to ${new URL(base).host} would send the admin token unencrypted; use https://`,
      )
    }
    token = settings.value('token')
    json = settings.value('json')
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    io.stderr.write(`zmq-edge keys ${action}: ${error.message}\n`)
    return KeysExit.USAGE
  }
  const call = async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    if (!response.ok) throw new Refused(await describeError(response))
    return response.status === 204 ? undefined : response.json()
  }
  const print = (key: ApiKey) =>
    io.stdout.write(json ? `${JSON.stringify(key, null, 2)}\n` : describe(key))
  try {
    switch (action) {
      case 'add': {
        const channels = (settings.raw('channel')?.values ?? []).map((value) =>
          parsePattern(value, '--channel'),
        )
        if (channels.length === 0) throw new ConfigError('--channel', 'give at least one')
        const messages = settings.raw('messagesPerSecond') && settings.value('messagesPerSecond')
        const bytes = settings.raw('bytesPerSecond') && settings.value('bytesPerSecond')
        const second = settings.raw('secondPublicKey')?.values.at(-1)
        const expiresAt = settings.raw('expiresAt')?.values.at(-1)
        print(
          (await call('POST', '/v1/keys', {
            publicKey: settings.value('publicKey'),
            name: settings.value('name'),
            channels,
            labels: labelsOf(settings.raw('label')?.values ?? [], '--label'),
            ...(messages || bytes
              ? {
                  rateLimit: {
                    ...(messages ? { messagesPerSecond: messages } : {}),
                    ...(bytes ? { bytesPerSecond: bytes } : {}),
                  },
                }
              : {}),
            ...(second ? { secondPublicKey: second } : {}),
            ...(expiresAt ? { expiresAt } : {}),
          })) as ApiKey,
        )
        return KeysExit.OK
      }
      case 'list': {
        const query = new URLSearchParams({ limit: '1000' })
        const status = settings.raw('status')?.values.at(-1)
        const label = settings.raw('label')?.values.at(-1)
        if (status) query.set('status', status)
        if (label) query.set('label', label)
        const keys: ApiKey[] = []
        for (;;) {
          const page = (await call('GET', `/v1/keys?${query}`)) as { keys: ApiKey[]; next?: string }
          keys.push(...page.keys)
          if (!page.next) break
          query.set('after', page.next)
        }
        if (json) io.stdout.write(`${JSON.stringify(keys, null, 2)}\n`)
        else {
          for (const key of keys) {
            io.stdout.write(
              `${key.id}  ${key.status.padEnd(7)}  ${key.publicKey}  ${oneLine(key.name)}  ${key.channels.join(',')}\n`,
            )
          }
        }
        return KeysExit.OK
      }
      case 'show':
      case 'revoke':
      case 'rm': {
        const id = args[0]
        if (!id || !/^[A-Za-z0-9_-]{16}$/.test(id)) {
          throw new ConfigError('<id>', 'give the key record id (zmq-edge keys list shows them)')
        }
        const path = `/v1/keys/${id}`
        if (action === 'rm') {
          await call('DELETE', path)
          io.stderr.write(`deleted ${id}\n`)
        } else {
          print(
            (await (action === 'show'
              ? call('GET', path)
              : call('POST', `${path}/revoke`))) as ApiKey,
          )
        }
        return KeysExit.OK
      }
      case 'import': {
        const file = args[0]
        if (!file) throw new ConfigError('<file>', 'give the allow-list file')
        const channels = (settings.raw('channel')?.values ?? []).map((value) =>
          parsePattern(value, '--channel'),
        )
        if (channels.length === 0) throw new ConfigError('--channel', 'give at least one')
        const labels = labelsOf(settings.raw('label')?.values ?? [], '--label')
        const entries = parseAllowListEntries(readFileSync(file, 'utf8'), file)
        let added = 0
        let existed = 0
        for (const [index, entry] of entries.entries()) {
          try {
            await call('POST', '/v1/keys', {
              publicKey: entry.key,
              // The record's name is at most 100 characters.
              name: (entry.comment || `${file.split('/').at(-1)} line ${entry.line}`).slice(0, 100),
              channels,
              labels: { ...labels, imported: file.split('/').at(-1) ?? file },
            })
            added++
          } catch (error) {
            if (error instanceof Refused && error.message.includes('key_exists')) existed++
            else
              throw new Refused(
                `key ${index + 1} (line ${entry.line}): ${(error as Error).message}`,
              )
          }
        }
        io.stderr.write(`${added} key(s) registered, ${existed} already were\n`)
        return KeysExit.OK
      }
    }
  } catch (error) {
    if (error instanceof ConfigError || error instanceof KeyFormatError) {
      io.stderr.write(`zmq-edge keys ${action}: ${error.message}\n`)
      return KeysExit.USAGE
    }
    const cause = (error as Error).cause
    io.stderr.write(
      `zmq-edge keys ${action}: ${(error as Error).message}${cause ? ` (${String(cause)})` : ''}\n`,
    )
    return KeysExit.FAILED
  }
}
