// Parsers of single setting values: each takes the text and the name of where it came from (a
// flag, a variable, a file position) and returns the value or throws a ConfigError naming it.
// As the Worker checks it: names of dots only would be rewritten by URL parsing (`/./`).

import { isIPv4, isIPv6 } from 'node:net'
import { CHANNEL_NAME_RULE, isChannelName } from '../../../shared/channel-name.ts'
import { BRIDGE_ID_PATTERN, type Mechanism } from '../../../shared/relay-protocol.ts'
import {
  type BindAddress,
  ConfigError,
  DEFAULT_BIND,
  DEFAULT_WORKER_URL,
  LISTENER_SOCKETS,
  type ListenerConfig,
  type ListenerSocket,
  MAX_BATCH_BYTES_LIMIT,
} from '../../bridge/bridge-config.ts'
import { SETTINGS } from './settings.ts'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
const MECHANISMS: readonly Mechanism[] = ['NULL', 'CURVE']

export function parseBind(raw: string, name: string): BindAddress {
  const match = /^tcp:\/\/(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(raw.trim())
  const port = match ? Number(match[2]) : Number.NaN
  if (!match || port < 0 || port > 65535) {
    throw new ConfigError(name, `expected tcp://HOST:PORT (e.g. ${DEFAULT_BIND}), got "${raw}"`)
  }
  let host = match[1] as string
  // `*`: every interface, IPv4 and IPv6 (a dual-stack socket; IPv4 alone where IPv6 is off).
  if (host === '*') host = '::'
  if (host.startsWith('[')) host = host.slice(1, -1)
  return { host, port }
}

export function parsePort(raw: string, name: string): number {
  const port = /^\d{1,5}$/.test(raw.trim()) ? Number(raw.trim()) : Number.NaN
  if (!(port >= 0 && port <= 65535)) {
    throw new ConfigError(name, `expected a TCP port, 0 to 65535 (e.g. 9464), got "${raw}"`)
  }
  return port
}

export function parseHost(raw: string, name: string): string {
  const host = raw.trim().replace(/^\[(.*)\]$/, '$1')
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) {
    throw new ConfigError(name, `expected a host name or IP address (e.g. 127.0.0.1), got "${raw}"`)
  }
  return host
}

export function parseChannel(raw: string, name: string): string {
  if (!isChannelName(raw)) {
    throw new ConfigError(name, `expected ${CHANNEL_NAME_RULE}, got "${raw}"`)
  }
  return raw
}

export function parseMechanism(raw: string, name: string): Mechanism {
  const value = raw.toUpperCase()
  if (!(MECHANISMS as readonly string[]).includes(value)) {
    throw new ConfigError(name, `expected mechanism=NULL or mechanism=CURVE, got "${raw}"`)
  }
  return value as Mechanism
}

export function parseListenerSocket(raw: string, name: string): ListenerSocket {
  const value = raw.toLowerCase()
  if (!(LISTENER_SOCKETS as readonly string[]).includes(value)) {
    throw new ConfigError(
      name,
      `expected socket=${LISTENER_SOCKETS.join(' or socket=')}, got "${raw}"`,
    )
  }
  return value as ListenerSocket
}

/**
 * Subscription prefixes: separated by `|`, each percent-encoded (RFC 3986 §2.1) so that any
 * octet can be given (`%7C` for `|`, `%2C` for `,`, `%00`…); an empty one subscribes to all.
 */
export function parseSubscriptions(raw: string, name: string): Uint8Array[] {
  return raw.split('|').map((encoded) => {
    const octets: number[] = []
    const text = new TextEncoder()
    for (let index = 0; index < encoded.length; index++) {
      const char = encoded[index] as string
      if (char !== '%') {
        octets.push(...text.encode(char))
        continue
      }
      const hex = encoded.slice(index + 1, index + 3)
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) {
        throw new ConfigError(name, `subscribe: "%${hex}" is not % and two hex digits`)
      }
      octets.push(Number.parseInt(hex, 16))
      index += 2
    }
    return Uint8Array.from(octets)
  })
}

const LISTENER_FORM =
  'tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE][,socket=pull|sub|router][,subscribe=P1|P2][,routingId=ID]'

/**
 * A ROUTER listener's Identity: percent-encoded like a prefix, 1 to 255 octets (RFC 23), not
 * starting with a zero octet (libzmq keeps those for the routing ids it makes itself).
 */
export function parseRoutingId(raw: string, name: string): Uint8Array {
  const [id] = parseSubscriptions(raw.replaceAll('|', '%7C'), name)
  if (!id || id.length === 0 || id.length > 255 || id[0] === 0) {
    throw new ConfigError(name, 'routingId: expected 1 to 255 octets, the first not zero')
  }
  return id
}

/** `tcp://HOST:PORT[,channel=NAME][,mechanism=NULL|CURVE][,socket=pull|sub][,subscribe=…]` */
export function parseListener(
  raw: string,
  name: string,
  defaults: { channel: string; mechanism: Mechanism },
): ListenerConfig {
  const [endpoint = '', ...options] = raw.trim().split(',')
  const listener: ListenerConfig = {
    endpoint,
    bind: parseBind(endpoint, name),
    ...defaults,
    socket: 'pull',
    subscribe: [],
  }
  const where = `${name} (${raw})`
  let subscriptions: Uint8Array[] | undefined
  for (const option of options) {
    const [key, value = ''] = option.split('=', 2).map((part) => part.trim())
    if (key === 'channel') listener.channel = parseChannel(value, where)
    else if (key === 'mechanism') listener.mechanism = parseMechanism(value, where)
    else if (key === 'socket') listener.socket = parseListenerSocket(value, where)
    else if (key === 'subscribe') subscriptions = parseSubscriptions(value, where)
    else if (key === 'routingId') listener.routingId = parseRoutingId(value, where)
    else
      throw new ConfigError(name, `unknown listener option "${option}"; expected ${LISTENER_FORM}`)
  }
  if (listener.routingId && listener.socket !== 'router') {
    throw new ConfigError(where, 'routingId= is for socket=router listeners only')
  }
  if (subscriptions) {
    if (listener.socket !== 'sub') {
      throw new ConfigError(where, 'subscribe= is for socket=sub listeners only')
    }
    listener.subscribe = subscriptions
  }
  return listener
}

/**
 * The Worker's URL as the bridge dials it, ws:// or wss://: given as wrangler and the dashboard
 * print it (http://, https://) or as ws:// or wss://, with any trailing slash dropped.
 */
export function parseWorkerUrl(raw: string, name: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(
      name,
      `expected the Worker's URL, https:// or http:// (or wss:// or ws://), e.g. ${DEFAULT_WORKER_URL}; got "${raw}"`,
    )
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[url.protocol]
  if (scheme === undefined) {
    throw new ConfigError(name, `expected an https://, http://, wss:// or ws:// URL, got "${raw}"`)
  }
  // An empty `?` or `#` parses as none: the text is checked too.
  if (/[?#]/.test(raw) || url.username || url.password) {
    throw new ConfigError(
      name,
      `expected the Worker's URL without query, fragment or user, got "${raw}"`,
    )
  }
  // Rebuilt from what was parsed (a URL is dialled as parsed, spaces trimmed, host normalised),
  // so the loopback rule judges exactly what is dialled.
  return `${scheme}//${url.host}${url.pathname}`.replace(/\/+$/, '')
}

/** Whether a URL's host is this machine (see refuseInsecureWorkerUrl). */
export function isLoopbackUrl(url: URL): boolean {
  // The URL parser has normalised the host: lower case, IPv4 dotted, IPv6 compressed in [].
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
  return (
    host === 'localhost' ||
    (isIPv4(host) && host.startsWith('127.')) ||
    (isIPv6(host) && (host === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(host)))
  )
}

/**
 * Refuses ws:// to anything but loopback: the token and the messages would cross the network
 * in clear. Loopback: 127.0.0.0/8 (RFC 1122 3.2.1.3), ::1 and its IPv4-mapped 127/8 (RFC 4291
 * 2.5.3, 2.5.5.2), and the name localhost (RFC 6761 6.3).
 * @throws ConfigError naming `name`, the setting the URL came from.
 */
export function refuseInsecureWorkerUrl(workerUrl: string, name: string): void {
  const url = new URL(workerUrl)
  if (url.protocol !== 'ws:') return
  if (isLoopbackUrl(url)) return
  throw new ConfigError(
    name,
    `ws:// (http://) to ${url.host} would send the ingest token and every message unencrypted; use wss:// (https://), ` +
      `or set ${SETTINGS.allowInsecureWorkerUrl.flag} (${SETTINGS.allowInsecureWorkerUrl.env}=true) ` +
      'for a network you trust',
  )
}

export function parseToken(raw: string, name: string): string {
  if (!/^[\x21-\x7e]{1,512}$/.test(raw)) {
    throw new ConfigError(name, 'expected 1-512 printable characters without spaces')
  }
  return raw
}

export function parseBridgeId(raw: string, name: string): string {
  if (!BRIDGE_ID_PATTERN.test(raw)) {
    throw new ConfigError(name, `expected 1-128 characters of A-Z a-z 0-9 . _ : -, got "${raw}"`)
  }
  return raw
}

export function positiveInteger(raw: string, name: string): number {
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(name, `expected a positive whole number, got "${raw}"`)
  }
  return value
}

export function parseBoolean(raw: string, name: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['true', '1', 'yes', 'on'].includes(value)) return true
  if (['false', '0', 'no', 'off'].includes(value)) return false
  throw new ConfigError(name, `expected true or false, got "${raw}"`)
}

export function wholeNumber(raw: string, name: string): number {
  const value = Number(raw)
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(value)) {
    throw new ConfigError(name, `expected a whole number (0 or more), got "${raw}"`)
  }
  return value
}

export function batchBytes(raw: string, name: string): number {
  const value = positiveInteger(raw, name)
  if (value > MAX_BATCH_BYTES_LIMIT) {
    throw new ConfigError(
      name,
      `must be at most ${MAX_BATCH_BYTES_LIMIT} (the Worker's 32 MiB WebSocket limit), got ${value}`,
    )
  }
  return value
}

export function parseSwitch(raw: string, name: string): boolean {
  const value = raw.trim().toLowerCase()
  if (['on', 'true', 'yes', '1'].includes(value)) return true
  if (['off', 'false', 'no', '0'].includes(value)) return false
  throw new ConfigError(name, `expected on or off, got "${raw}"`)
}

export function parseDirectory(raw: string, name: string): string {
  if (raw.trim() === '') throw new ConfigError(name, 'expected a directory')
  return raw
}

export function parseLogLevel(raw: string, name: string): string {
  if (!LOG_LEVELS.includes(raw)) {
    throw new ConfigError(name, `expected one of ${LOG_LEVELS.join(', ')}, got "${raw}"`)
  }
  return raw
}

/** A parser of integers of at least `min` (-1 and 0 mean something for some settings). */
export function integerAtLeast(min: number): (raw: string, name: string) => number {
  return (raw, name) => {
    const value = Number(raw)
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(value) || value < min) {
      throw new ConfigError(name, `expected an integer >= ${min}, got "${raw}"`)
    }
    return value
  }
}

/** A parser of numbers from 0 to `max`, fractions allowed (seconds). */
export function numberUpTo(max: number): (raw: string, name: string) => number {
  return (raw, name) => {
    const value = Number(raw)
    if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(value <= max)) {
      throw new ConfigError(name, `expected a number from 0 to ${max}, got "${raw}"`)
    }
    return value
  }
}

/** A parser of one of `choices`, as written. */
export function oneOf<const T extends string>(
  choices: readonly T[],
): (raw: string, name: string) => T {
  return (raw, name) => {
    if (!(choices as readonly string[]).includes(raw)) {
      throw new ConfigError(name, `expected ${choices.join(' or ')}, got "${raw}"`)
    }
    return raw as T
  }
}

/** The Worker's HTTP base URL, without a trailing slash; its ws:// or wss:// URL works too. */
export function parseHttpUrl(raw: string, name: string): string {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new ConfigError(name, `expected an http:// or https:// URL, got "${raw}"`)
  }
  if (url.protocol === 'ws:') url.protocol = 'http:'
  else if (url.protocol === 'wss:') url.protocol = 'https:'
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(name, `expected an http:// or https:// URL, got "${raw}"`)
  }
  return url.href.replace(/\/+$/, '')
}
