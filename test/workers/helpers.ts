// Helpers for the workerd tests: a bridge-side relay socket over a real WebSocket, HTTP reads,
// and byte utilities. Everything goes through the Worker's default export, as a client would.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { expect, vi } from 'vitest'
import { decodeGroupState } from '../../durable/group-state'
import type { ApiInlineMessage, ApiMessage } from '../../shared/api-types'
import {
  BRIDGE_ID_HEADER,
  decodeRelayFrame,
  EPOCH_HEADER,
  encodeBatch,
  RELAY_PROTOCOL_VERSION,
  type RelayFrame,
  type RelayMessage,
  type RelayProtocolVersion,
  type RelaySession,
  type RelayWelcome,
  relaySubprotocol,
} from '../../shared/relay-protocol'
import { app } from '../../worker/app'

export const READ_TOKEN = 'test-read-token'
export const INGEST_TOKEN = 'test-ingest-token'
export const ADMIN_TOKEN = 'test-admin-token'
export const ORIGIN = 'https://edge.test'

/**
 * Calls the Worker's Hono app with this test's bindings, with `token` as the bearer (none when
 * undefined) and a JSON Content-Type when there is a body.
 */
export function appRequest(path: string, token: string | undefined, init: RequestInit = {}) {
  const headers = new Headers(init.headers)
  if (token !== undefined) headers.set('Authorization', `Bearer ${token}`)
  if (init.body !== undefined) headers.set('Content-Type', 'application/json')
  return app.request(`${ORIGIN}${path}`, { ...init, headers }, env)
}

/** The `error.code` of an API error answer. */
export async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { error: { code: string } }).error.code
}

/** A channel name no other test uses. */
export function uniqueChannel(prefix = 't'): string {
  return `${prefix}-${crypto.randomUUID()}`
}

/** `length` octets of a pattern that differs per `seed`, so misplaced bytes show. */
export function pattern(length: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(length)
  for (let index = 0; index < length; index++)
    bytes[index] = (index * 31 + seed + (index >>> 8)) & 0xff
  return bytes
}

export function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text)
}

/** A NULL message from 127.0.0.1:5555 received at 1.7e12 ms, unless overridden. */
export function relayMessage(
  frames: Uint8Array[],
  overrides: Partial<RelayMessage> = {},
): RelayMessage {
  return {
    receivedAt: 1_700_000_000_000,
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:5555',
    frames,
    ...overrides,
  }
}

/** Independent of the Worker's encoder: atob, then one octet per character. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index)
  return bytes
}

/** Asserts equal bytes without a megabyte-long diff: compares lengths and the first mismatch. */
export function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  let firstDifference = -1
  const shorter = Math.min(actual.length, expected.length)
  for (let index = 0; index < shorter; index++) {
    if (actual[index] !== expected[index]) {
      firstDifference = index
      break
    }
  }
  expect({ length: actual.length, firstDifference }).toEqual({
    length: expected.length,
    firstDifference: -1,
  })
}

/** The bridge's end of an ingest WebSocket: send frames, await the decoded replies in order. */
export class RelaySocket {
  readonly socket: WebSocket
  readonly #received: (RelayFrame | Error)[] = []
  #waiter: (() => void) | undefined
  closed = false
  /** The close code and reason the object closed with, once closed. */
  closeCode: number | undefined
  closeReason: string | undefined

  /** The relay protocol version of the socket (the object's confirmed subprotocol). */
  readonly version: RelayProtocolVersion

  constructor(socket: WebSocket, version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION) {
    this.socket = socket
    this.version = version
    socket.addEventListener('message', (event) => {
      try {
        // Not `instanceof ArrayBuffer`: the test runner's realm has its own ArrayBuffer.
        if (typeof event.data === 'string') throw new Error('the object sent text')
        this.#received.push(decodeRelayFrame(new Uint8Array(event.data as ArrayBuffer), version))
      } catch (error) {
        this.#received.push(error as Error)
      }
      this.#waiter?.()
    })
    socket.addEventListener('close', (event) => {
      this.closeCode = event.code
      this.closeReason = event.reason
      this.closed = true
      this.#waiter?.()
    })
    socket.accept()
    // The standard default is 'blob'; relay frames are read as bytes.
    socket.binaryType = 'arraybuffer'
  }

  send(data: Uint8Array | string): void {
    this.socket.send(data)
  }

  sendBatch(batchSeq: number, messages: RelayMessage[]): void {
    this.send(encodeBatch({ batchSeq, messages }, this.version))
  }

  /** The next reply from the Durable Object. */
  async next(timeoutMs = 20_000): Promise<RelayFrame> {
    const deadline = Date.now() + timeoutMs
    while (this.#received.length === 0) {
      if (this.closed) throw new Error('socket closed while waiting for a reply')
      if (Date.now() > deadline) throw new Error('no reply within the timeout')
      await new Promise<void>((resolve) => {
        this.#waiter = resolve
        setTimeout(resolve, 100)
      })
      this.#waiter = undefined
    }
    const item = this.#received.shift() as RelayFrame | Error
    if (item instanceof Error) throw item
    return item
  }

  close(): void {
    if (!this.closed) this.socket.close(1000, 'test done')
    this.closed = true
  }
}

const openSockets = new Set<RelaySocket>()

/** The upgrade headers of a bridge's ingest socket in `session`. */
export function ingestHeaders(
  session: Partial<RelaySession> = {},
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): Record<string, string> {
  return {
    Upgrade: 'websocket',
    Authorization: `Bearer ${INGEST_TOKEN}`,
    'Sec-WebSocket-Protocol': relaySubprotocol(version),
    [BRIDGE_ID_HEADER]: session.bridgeId ?? 'bridge-1',
    [EPOCH_HEADER]: String(session.epoch ?? 1),
  }
}

/** A relay socket with the WELCOME it opened with. */
export type IngestSocket = RelaySocket & { welcome: RelayWelcome }

/**
 * Opens the ingest WebSocket of `channel` through the Worker, as a bridge does (session
 * `bridge-1`, epoch 1 unless given; the current protocol version unless given), and reads its
 * WELCOME.
 */
export async function openIngest(
  channel: string,
  session: Partial<RelaySession> = {},
  version: RelayProtocolVersion = RELAY_PROTOCOL_VERSION,
): Promise<IngestSocket> {
  const response = await exports.default.fetch(`${ORIGIN}/v1/channels/${channel}/ingest`, {
    headers: ingestHeaders(session, version),
  })
  expect(response.status).toBe(101)
  expect(response.headers.get('Sec-WebSocket-Protocol')).toBe(relaySubprotocol(version))
  if (!response.webSocket) throw new Error('no WebSocket in the 101 response')
  const relay = new RelaySocket(response.webSocket, version)
  openSockets.add(relay)
  const welcome = await relay.next()
  if (welcome.kind !== 'welcome') throw new Error(`expected a WELCOME, got ${welcome.kind}`)
  return Object.assign(relay, { welcome })
}

/** Closes every socket `openIngest` opened (call it in afterEach). */
export function closeAllIngest(): void {
  for (const relay of openSockets) relay.close()
  openSockets.clear()
}

/** Sends one batch on a fresh socket and returns the Durable Object's reply. */
export async function ingestBatch(
  channel: string,
  messages: RelayMessage[],
  options: Partial<RelaySession> & { batchSeq?: number } = {},
): Promise<RelayFrame> {
  const relay = await openIngest(channel, options)
  relay.sendBatch(options.batchSeq ?? 1, messages)
  return relay.next()
}

/** A messages page; most tests store small messages only, which all come with their frames. */
export interface MessagesPage<Message extends ApiMessage = ApiInlineMessage> {
  channel: string
  messages: Message[]
  next: number
}

/** GET a raw path with an optional bearer token. */
export function get(path: string, token?: string, headers: Record<string, string> = {}) {
  const all = token === undefined ? headers : { ...headers, Authorization: `Bearer ${token}` }
  return exports.default.fetch(`${ORIGIN}${path}`, { headers: all })
}

/** Reads one page of a channel's messages and asserts a 200 (see {@link MessagesPage}). */
export async function readPage(channel: string, query = ''): Promise<MessagesPage> {
  const response = await get(`/v1/channels/${channel}/messages${query}`, READ_TOKEN)
  expect(response.status).toBe(200)
  return (await response.json()) as MessagesPage
}

/**
 * Group `default`'s numbers in the channel's stats agree with its rows: its dead letters are
 * counted in memory (stats read no dead-letter rows), so every path that inserts or deletes
 * them must keep the count exact; and its state row decodes.
 */
export async function expectQueueCountersExact(channel: string): Promise<void> {
  const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
  const rows = await runInDurableObject(stub, (_instance, state) => {
    const { sql } = state.storage
    return {
      deadLetters: Number(
        sql.exec("SELECT COUNT(*) AS n FROM group_dead_letters WHERE group_name = 'default'").one()
          .n,
      ),
      state: sql.exec("SELECT state FROM consumer_groups WHERE name = 'default'").toArray()[0]
        ?.state as string | undefined,
    }
  })
  const report = (await (await get(`/v1/channels/${channel}`, READ_TOKEN)).json()) as {
    queue: { deadLetters: number }
  }
  expect(report.queue.deadLetters).toBe(rows.deadLetters)
  if (rows.state !== undefined) expect(() => decodeGroupState(rows.state as string)).not.toThrow()
}

/**
 * Counts the rows every SQL statement of `storage` reads and writes from now on (what Cloudflare
 * bills), for code run inside the object (`runInDurableObject`).
 */
export function countRows(storage: DurableObjectStorage): {
  reset(): void
  read(): number
  written(): number
} {
  const cursors: SqlStorageCursor<Record<string, SqlStorageValue>>[] = []
  const exec = storage.sql.exec.bind(storage.sql)
  vi.spyOn(storage.sql, 'exec').mockImplementation((query, ...bindings) => {
    const cursor = exec(query, ...bindings)
    cursors.push(cursor)
    return cursor
  })
  return {
    reset: () => {
      cursors.length = 0
    },
    read: () => cursors.reduce((sum, cursor) => sum + cursor.rowsRead, 0),
    written: () => cursors.reduce((sum, cursor) => sum + cursor.rowsWritten, 0),
  }
}
