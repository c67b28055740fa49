// The bridge's copy of the Worker's CURVE key registry (--key-registry): kept up to date over the
// key feed (../../shared/key-feed.ts, a WebSocket of its own to the Worker: relay sockets end at
// channel objects, the registry is one object), and on disk under --state-dir, so a restart while
// the Worker is unreachable still admits the keys known, and nobody else. Before any snapshot
// (none on disk, the Worker not reached yet) it admits nobody.
import { mkdirSync, readFileSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import WebSocket from 'ws'
import {
  type BridgeReport,
  type FeedKey,
  feedAdmission,
  MAX_REPORT_ENTRIES,
  parseFeedMessage,
  REPORT_INTERVAL_MS,
  type RefusalReason,
} from '../../shared/key-feed.ts'
import { isKeyName } from '../../shared/key-name.ts'
import { z85Encode } from '../../shared/z85.ts'
import type { Logger } from './log.ts'

/** The file under --state-dir that holds the last snapshot. */
export const KEY_REGISTRY_FILE = 'key-registry.json'

/** How often the feed is pinged, and how long a pong may take before it counts as dead, ms. */
const PING_INTERVAL_MS = 30_000
const PONG_TIMEOUT_MS = 10_000
/** Longest a feed's upgrade may take. */
const HANDSHAKE_TIMEOUT_MS = 10_000
/** Least time between a report and one sent early for a refusal, ms. */
const REFUSAL_REPORT_SPACING_MS = 10_000
/** Saves are written at most this often (a burst of changes is one write). */
const SAVE_DELAY_MS = 200

/** What the file holds. */
interface SavedRegistry {
  version: number
  savedAt: string
  keys: FeedKey[]
}

export interface KeyRegistryOptions {
  /** The Worker's base URL, ws:// or wss://. */
  workerUrl: string
  ingestToken: string
  /** Names this bridge in its reports. */
  bridgeId?: string
  /**
   * The public keys (Z85) connected now, for the reports (the bridge's CURVE listeners' ready
   * peers).
   */
  connectedKeys?: () => string[]
  /** Where the snapshot is kept; none: not kept (a restart admits nobody until the Worker answers). */
  stateDir?: string
  logger: Logger
  /** Reconnect backoff, ms. */
  reconnectInitialMs?: number
  reconnectMaxMs?: number
}

export class KeyRegistry {
  readonly #options: KeyRegistryOptions
  /** Entries by each of their public keys (Z85). */
  #byKey = new Map<string, FeedKey>()
  #byId = new Map<string, FeedKey>()
  #version = 0
  #loaded = false
  /** Pages of a snapshot being received. */
  #pending: FeedKey[] | undefined
  #socket: WebSocket | undefined
  #timer: NodeJS.Timeout | undefined
  #attempt = 0
  #stopped = false
  #saveTimer: NodeJS.Timeout | undefined
  #saving: Promise<void> = Promise.resolve()
  #pingTimer: NodeJS.Timeout | undefined
  #reportTimer: NodeJS.Timeout | undefined
  /** Since the last report: what each key sent, and the refusals by key and reason. */
  #sent = new Map<string, { messages: number; bytes: number; lastSeenAt: number }>()
  #refusals = new Map<string, number>()
  /** Each key's connections as last reported (a key is named again only when they change). */
  #reportedConnections = new Map<string, number>()
  #reportedAt = 0
  #earlyReport: NodeJS.Timeout | undefined
  readonly #listeners: Array<() => void> = []

  constructor(options: KeyRegistryOptions) {
    this.#options = options
    this.#loadFile()
  }

  /** Whether a snapshot is held (from the Worker, or from disk). */
  get loaded(): boolean {
    return this.#loaded
  }

  get version(): number {
    return this.#version
  }

  get size(): number {
    return this.#byId.size
  }

  /** Whether `publicKey` may send to `channel` now. */
  admits(publicKey: Uint8Array, channel: string, now = Date.now()): boolean {
    return this.admission(publicKey, channel, now) === 'admitted'
  }

  /** Whether `publicKey` may send to `channel` now, or why not. */
  admission(publicKey: Uint8Array, channel: string, now = Date.now()): 'admitted' | RefusalReason {
    return feedAdmission(this.#byKey.get(z85Encode(publicKey)), channel, now)
  }

  /** Counts a refused handshake for the next report (`publicKey` undefined: never learnt). */
  refused(publicKey: Uint8Array | undefined, reason: RefusalReason): void {
    const name = `${publicKey ? z85Encode(publicKey) : ''} ${reason}`
    if (!this.#refusals.has(name) && this.#refusals.size >= MAX_REPORT_ENTRIES) return
    this.#refusals.set(name, (this.#refusals.get(name) ?? 0) + 1)
    // A refusal is told within seconds, not at the next minute, but reports stay 10 s apart.
    if (!this.#earlyReport) {
      const delay = Math.max(1000, this.#reportedAt + REFUSAL_REPORT_SPACING_MS - Date.now())
      this.#earlyReport = setTimeout(() => {
        this.#earlyReport = undefined
        this.#report()
      }, delay)
      this.#earlyReport.unref()
    }
  }

  /** Counts a message a key sent, for the next report. */
  accepted(publicKey: Uint8Array, bytes: number, now = Date.now()): void {
    const key = this.#z85(publicKey)
    const sent = this.#sent.get(key)
    if (sent) {
      sent.messages++
      sent.bytes += bytes
      sent.lastSeenAt = now
    } else if (this.#sent.size < MAX_REPORT_ENTRIES) {
      this.#sent.set(key, { messages: 1, bytes, lastSeenAt: now })
    }
  }

  /** Sends the report, if the feed is open; counts start over once sent. */
  #report(): void {
    const socket = this.#socket
    if (!socket || socket.readyState !== WebSocket.OPEN) return
    const now = Date.now()
    const connections = new Map<string, number>()
    for (const key of this.#options.connectedKeys?.() ?? []) {
      connections.set(key, (connections.get(key) ?? 0) + 1)
    }
    // Only the keys whose connections changed or that sent something: a row each is written.
    const keys: BridgeReport['keys'] = []
    for (const key of new Set([
      ...connections.keys(),
      ...this.#reportedConnections.keys(),
      ...this.#sent.keys(),
    ])) {
      const sent = this.#sent.get(key)
      const connected = connections.get(key) ?? 0
      if (!sent && connected === (this.#reportedConnections.get(key) ?? 0)) continue
      keys.push({
        publicKey: key,
        connections: connected,
        messages: sent?.messages ?? 0,
        bytes: sent?.bytes ?? 0,
        lastSeenAt: sent?.lastSeenAt ?? now,
      })
    }
    // The busiest first, when there are more than a report takes.
    keys.sort((a, b) => b.messages - a.messages)
    keys.length = Math.min(keys.length, MAX_REPORT_ENTRIES)
    for (const key of keys) {
      if (key.connections > 0) this.#reportedConnections.set(key.publicKey, key.connections)
      else this.#reportedConnections.delete(key.publicKey)
    }
    this.#reportedAt = now
    const refusals: BridgeReport['refusals'] = [...this.#refusals].map(([name, count]) => {
      const space = name.indexOf(' ')
      return {
        publicKey: name.slice(0, space),
        reason: name.slice(space + 1) as RefusalReason,
        count,
      }
    })
    const report: BridgeReport = {
      type: 'report',
      bridgeId: this.#options.bridgeId ?? 'unnamed',
      keys,
      refusals,
    }
    socket.send(JSON.stringify(report))
    this.#sent = new Map()
    this.#refusals = new Map()
  }

  /** The rate limit of `publicKey`'s record, if it has one. */
  rateLimitOf(publicKey: Uint8Array): FeedKey['rateLimit'] {
    return this.#byKey.get(z85Encode(publicKey))?.rateLimit
  }

  /**
   * The record's name of `publicKey`, if it has one that messages can carry (the registry checks
   * names; a saved or relayed registry is not trusted to have).
   */
  nameOf(publicKey: Uint8Array): string | undefined {
    const name = this.#byKey.get(this.#z85(publicKey))?.name
    return name !== undefined && isKeyName(name) ? name : undefined
  }

  // A connection's messages share its key's array: its Z85 is remembered for the next message.
  #lastKey: Uint8Array | undefined
  #lastZ85 = ''

  #z85(publicKey: Uint8Array): string {
    if (publicKey !== this.#lastKey) {
      this.#lastZ85 = z85Encode(publicKey)
      this.#lastKey = publicKey
    }
    return this.#lastZ85
  }

  /** Calls `listener` after every change (so live connections can be checked again). */
  onChange(listener: () => void): void {
    this.#listeners.push(listener)
  }

  start(): void {
    this.#connect()
    this.#reportTimer = setInterval(() => this.#report(), REPORT_INTERVAL_MS)
    this.#reportTimer.unref()
  }

  close(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
    clearInterval(this.#pingTimer)
    clearInterval(this.#reportTimer)
    clearTimeout(this.#earlyReport)
    this.#socket?.terminate()
  }

  #loadFile(): void {
    const { stateDir, logger } = this.#options
    if (!stateDir) return
    let text: string
    try {
      text = readFileSync(join(stateDir, KEY_REGISTRY_FILE), 'utf8')
    } catch {
      return
    }
    try {
      const saved = JSON.parse(text) as SavedRegistry
      const message = parseFeedMessage(
        JSON.stringify({ type: 'snapshot', version: saved.version, keys: saved.keys, last: true }),
      )
      if (message?.type !== 'snapshot') throw new Error('not a saved registry')
      this.#replace(message.keys, message.version)
      logger.info(
        { keys: this.#byId.size, version: this.#version, savedAt: saved.savedAt },
        'key registry loaded from the state directory (the Worker may be unreachable)',
      )
    } catch (error) {
      logger.error(
        { err: String(error) },
        'the saved key registry cannot be read: nobody is admitted until the Worker answers',
      )
    }
  }

  /**
   * Saves the registry soon: a burst of changes is one write, off the event loop (a large
   * registry takes a while to serialise; the connections it admits must not wait on a disk).
   */
  #save(): void {
    if (!this.#options.stateDir || this.#saveTimer) return
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = undefined
      this.#writeNow()
    }, SAVE_DELAY_MS)
  }

  #writeNow(): void {
    const { stateDir, logger } = this.#options
    if (!stateDir) return
    const saved: SavedRegistry = {
      version: this.#version,
      savedAt: new Date().toISOString(),
      keys: [...this.#byId.values()],
    }
    const path = join(stateDir, KEY_REGISTRY_FILE)
    // One write at a time, each whole, then renamed: a crash leaves the old file or the new.
    this.#saving = this.#saving.then(async () => {
      try {
        mkdirSync(stateDir, { recursive: true, mode: 0o700 })
        await writeFile(`${path}.tmp`, JSON.stringify(saved), { mode: 0o600 })
        await rename(`${path}.tmp`, path)
      } catch (error) {
        logger.error({ err: String(error) }, 'the key registry could not be saved')
      }
    })
  }

  /** Resolves once every change so far is on disk (a bridge stopping, tests). */
  async flushed(): Promise<void> {
    if (this.#saveTimer) {
      clearTimeout(this.#saveTimer)
      this.#saveTimer = undefined
      this.#writeNow()
    }
    await this.#saving
  }

  #replace(keys: FeedKey[], version: number): void {
    this.#byId = new Map(keys.map((key) => [key.id, key]))
    this.#byKey = new Map()
    for (const key of keys) for (const publicKey of key.publicKeys) this.#byKey.set(publicKey, key)
    this.#version = version
    this.#loaded = true
  }

  #put(key: FeedKey): void {
    this.#remove(key.id)
    this.#byId.set(key.id, key)
    for (const publicKey of key.publicKeys) this.#byKey.set(publicKey, key)
  }

  #remove(id: string): void {
    const old = this.#byId.get(id)
    if (!old) return
    this.#byId.delete(id)
    for (const publicKey of old.publicKeys) {
      if (this.#byKey.get(publicKey) === old) this.#byKey.delete(publicKey)
    }
  }

  #changed(): void {
    this.#save()
    for (const listener of this.#listeners) {
      try {
        listener()
      } catch (error) {
        this.#options.logger.error({ err: String(error) }, 'a key registry listener failed')
      }
    }
  }

  #connect(): void {
    if (this.#stopped) return
    const { workerUrl, ingestToken, logger } = this.#options
    const socket = new WebSocket(`${workerUrl.replace(/\/+$/, '')}/v1/keys/feed`, {
      headers: { authorization: `Bearer ${ingestToken}` },
      perMessageDeflate: false,
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    })
    this.#socket = socket
    this.#pending = undefined
    // An idle feed would not notice a connection a NAT dropped: ping it, and give up on it when
    // a pong does not come (the reconnect brings the registry again).
    let pongDue = 0
    socket.on('open', () => {
      clearInterval(this.#pingTimer)
      this.#pingTimer = setInterval(() => {
        if (pongDue > 0 && Date.now() > pongDue) {
          logger.warn('the key feed stopped answering pings: reconnecting')
          socket.terminate()
          return
        }
        pongDue = Date.now() + PONG_TIMEOUT_MS
        socket.ping()
      }, PING_INTERVAL_MS)
      this.#pingTimer.unref()
    })
    socket.on('pong', () => {
      pongDue = 0
    })
    socket.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      if (isBinary) return
      const message = parseFeedMessage(data.toString())
      if (!message) {
        // A page dropped would install a registry with keys missing: start over instead.
        logger.error('a key feed message could not be read: reconnecting for the whole registry')
        socket.terminate()
        return
      }
      if (message.type === 'snapshot') {
        this.#pending = [...(this.#pending ?? []), ...message.keys]
        if (!message.last) return
        const fresh = !this.#loaded
        this.#replace(this.#pending, message.version)
        this.#pending = undefined
        // The backoff starts over only once a whole registry came: a feed that opens and
        // fails does not make a fast loop.
        this.#attempt = 0
        logger.info(
          { keys: this.#byId.size, version: this.#version },
          fresh ? 'key registry received' : 'key registry received again',
        )
      } else if (message.type === 'change') {
        this.#put(message.key)
        this.#version = message.version
        logger.info(
          { id: message.key.id, name: message.key.name, revoked: message.key.revoked },
          'key registry changed',
        )
      } else {
        this.#remove(message.id)
        this.#version = message.version
        logger.info({ id: message.id }, 'key record deleted')
      }
      this.#changed()
    })
    socket.on('unexpected-response', (_request, response) => {
      logger.error(
        { status: response.statusCode },
        'the Worker refused the key feed (is the ingest token right?)',
      )
      socket.terminate()
    })
    socket.on('error', (error) => {
      logger.warn({ err: String(error) }, 'key feed error')
    })
    socket.on('close', (code: number) => {
      if (this.#socket !== socket) return
      clearInterval(this.#pingTimer)
      if (this.#stopped) return
      if (code === 4003) {
        logger.error(
          'the Worker closed the key feed: its ingest token was deleted or expired (the registry held is kept)',
        )
      }
      const { reconnectInitialMs = 500, reconnectMaxMs = 30_000 } = this.#options
      const delay = Math.min(reconnectMaxMs, reconnectInitialMs * 2 ** this.#attempt)
      this.#attempt = Math.min(this.#attempt + 1, 16)
      this.#timer = setTimeout(() => this.#connect(), delay / 2 + Math.random() * (delay / 2))
      this.#timer.unref()
    })
  }
}
