// The Durable Object of one channel (`idFromName(channel)`): accepts its bridges' WebSockets
// with the Hibernation API, stores their relay batches in SQLite, and serves the messages to
// the Worker over RPC.

import { DurableObject } from 'cloudflare:workers'
import { MessageStore, type ReadOptions, type StoredMessage } from './message-store'
import { type IngestSocketState, ingestRelayMessage } from './relay-ingest'
import { migrate } from './schema'

/** One channel: its messages, and the bridges that relay to it. */
export class ChannelObject extends DurableObject<Env> {
  readonly #store: MessageStore

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env)
    this.#store = new MessageStore(ctx.storage)
    // No event reaches the object before the schema is current.
    void ctx.blockConcurrencyWhile(async () => {
      migrate(ctx.storage)
    })
  }

  /**
   * Accepts a bridge's WebSocket (the Worker has checked the token and the upgrade). The
   * socket is hibernatable: the object may leave memory between messages.
   */
  override fetch(request: Request): Response {
    if (request.headers.get('Upgrade')?.toLowerCase() !== 'websocket') {
      return Response.json(
        { error: { code: 'upgrade_required', message: 'expected a WebSocket upgrade' } },
        { status: 426, headers: { Upgrade: 'websocket' } },
      )
    }
    const { 0: client, 1: server } = new WebSocketPair()
    this.ctx.acceptWebSocket(server)
    return new Response(null, { status: 101, webSocket: client })
  }

  /**
   * RPC: the messages after `options.after`, oldest first. The object returns raw bytes and
   * milliseconds; the Worker turns them into the HTTP API's JSON (base64, ISO 8601, Z85), so
   * storage knows nothing of the wire format of readers, and RPC carries 3/4 of the base64 size.
   * @throws RangeError for options out of range.
   */
  readMessages(options: ReadOptions): StoredMessage[] {
    const { after, limit, maxBytes } = options
    if (!Number.isSafeInteger(after) || after < 0) throw new RangeError(`bad after: ${after}`)
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`bad limit: ${limit}`)
    if (!(maxBytes >= 0)) throw new RangeError(`bad maxBytes: ${maxBytes}`)
    return this.#store.read({ after, limit, maxBytes })
  }

  /**
   * One relay frame from a bridge: stored synchronously, then answered with an ACK or NACK.
   * The output gate holds the ACK until the transaction is durable.
   */
  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const state = (ws.deserializeAttachment() ?? {}) as IngestSocketState
    const result = ingestRelayMessage(this.#store, message, state)
    if (result.state !== state) ws.serializeAttachment(result.state)
    ws.send(result.reply)
  }

  /** Completes the close handshake (wrangler dev does not always answer it by itself). */
  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // 1005 (no code) and 1006 (abnormal) may not be sent in a close frame.
    const closeCode = code === 1005 || code === 1006 ? 1000 : code
    try {
      ws.close(closeCode, reason)
    } catch {
      // Already closed: nothing left to answer.
    }
  }

  override webSocketError(_ws: WebSocket, error: unknown): void {
    console.error('bridge WebSocket error', { error: String(error) })
  }
}
