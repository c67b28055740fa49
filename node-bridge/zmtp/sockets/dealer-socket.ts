// DEALER and REQ sockets for zmq-edge's ROUTER listeners: they send as PushSocket does
// (queue, high-water mark, round robin, reconnect), and each `send()` resolves with the seq the
// channel stored the message under, from the bridge's reply, or rejects with the bridge's
// `ERR <code>`. Both put a request id before the empty delimiter (the envelope, which the bridge
// sends back unchanged, RFC 28), as libzmq's REQ does with ZMQ_REQ_CORRELATE, so a reply that
// comes after its request timed out is never taken for the next one's. A DEALER may have many
// requests in flight; a REQ has one at a time. A request may carry an idempotency key, so that
// a resend after its reply timed out is stored once (../../../shared/idempotency-key.ts).

import { idempotencyFrame } from '../../../shared/idempotency-key.ts'
import type { PushSocketOptions } from './push-options.ts'
import { type OutgoingMessage, SendingSocket, SocketClosedError } from './push-socket.ts'
import { DEALER, REQ, type SocketType } from './socket-type.ts'

/** How long a request waits for its reply by default, ms. */
export const DEFAULT_REPLY_TIMEOUT_MS = 60_000

export interface RequestSocketOptions extends PushSocketOptions {
  /**
   * How long a request waits for its reply, ms (0: forever). Past it `send()` rejects with a
   * {@link ReplyTimeoutError}: the message may still be stored (do not assume it was not).
   */
  replyTimeoutMs?: number
  /**
   * Times a request whose reply timed out is sent again (default 0), each time under the same
   * idempotency key, a random UUID unless `send()` names one: the channel stores it once and
   * answers every copy with its seq, if the copies come within its idempotency window.
   */
  resends?: number
}

/** What one `send()` of a request socket may say besides its message. */
export interface RequestOptions {
  /**
   * Names the message so that a copy sent again (by this process or another) is stored once:
   * 1 to 128 characters of visible ASCII, unique per message, a UUID typically.
   */
  idempotencyKey?: string
}

/** The bridge answered `ERR <code>`: not stored (SEQ_UNKNOWN: see docs/sending.md, the replies). */
export class ReplyError extends Error {
  readonly code: string
  constructor(code: string) {
    super(`the bridge answered ERR ${code}`)
    this.name = 'ReplyError'
    this.code = code
  }
}

/** No reply within `replyTimeoutMs`: the message may or may not be stored. */
export class ReplyTimeoutError extends Error {
  constructor(ms: number) {
    super(`no reply within ${ms} ms: the message may or may not be stored`)
    this.name = 'ReplyTimeoutError'
  }
}

interface PendingRequest {
  resolve(seq: number): void
  reject(error: Error): void
  timer: NodeJS.Timeout | undefined
}

const EMPTY = new Uint8Array(0)
const text = new TextDecoder()

/** A request's frames as bytes (what PushSocket queues). */
function framesOf(message: OutgoingMessage): Array<Uint8Array | string> {
  return typeof message === 'string' || message instanceof Uint8Array ? [message] : [...message]
}

/** What `send()` of a request socket does: shared by DEALER (ids) and REQ (one at a time). */
abstract class RequestSocket extends SendingSocket {
  readonly #replyTimeoutMs: number
  readonly #resends: number
  readonly #pending = new Map<string, PendingRequest>()

  constructor(options: RequestSocketOptions = {}) {
    const { replyTimeoutMs, resends, ...push } = options
    if (resends !== undefined && (!Number.isSafeInteger(resends) || resends < 0)) {
      throw new RangeError(`resends must be an integer >= 0, got ${resends}`)
    }
    super(push)
    this.#replyTimeoutMs = replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS
    this.#resends = resends ?? 0
  }

  #nextId = 1

  /**
   * Queues `message` behind a fresh request id, its idempotency key if any, and the delimiter;
   * resolves with its seq once the reply comes, sending it again after a timeout as `resends`
   * allows. The reply's wait starts once the message is queued.
   */
  protected async request(message: OutgoingMessage, options: RequestOptions = {}): Promise<number> {
    const key = options.idempotencyKey ?? (this.#resends > 0 ? crypto.randomUUID() : undefined)
    // Checked before anything is queued: a key that breaks the rule throws here.
    const keyFrames = key === undefined ? [] : [idempotencyFrame(key)]
    const body = framesOf(message)
    for (let attempt = 0; ; attempt++) {
      // A new id each time: a late reply to an earlier copy is not taken for this one's.
      const id = `r${this.#nextId++}`
      await this.queueMessage([id, ...keyFrames, EMPTY, ...body])
      try {
        return await this.#awaitReply(id)
      } catch (error) {
        if (!(error instanceof ReplyTimeoutError) || attempt >= this.#resends) throw error
      }
    }
  }

  protected override onPeerMessage(frames: Uint8Array[]): void {
    // [id, (key,) '', answer]: the envelope we sent, then the bridge's answer.
    const delimiter = frames.findIndex((frame) => frame.length === 0)
    if (delimiter < 1 || delimiter > 2 || frames.length !== delimiter + 2) return
    this.#settle(text.decode(frames[0]), frames[delimiter + 1])
  }

  /** Waits for the reply to the request `key`. */
  #awaitReply(key: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const ms = this.#replyTimeoutMs
      const timer =
        ms > 0
          ? setTimeout(() => {
              this.#pending.delete(key)
              reject(new ReplyTimeoutError(ms))
            }, ms)
          : undefined
      this.#pending.set(key, { resolve, reject, timer })
    })
  }

  /** Settles the request `key` with the answer frame: a seq, or `ERR <code>`. */
  #settle(key: string, answer: Uint8Array | undefined): void {
    const request = this.#pending.get(key)
    if (!request) return // a reply after its timeout, or to another client's id
    this.#pending.delete(key)
    clearTimeout(request.timer)
    const value = text.decode(answer ?? EMPTY)
    const seq = /^[1-9][0-9]*$/.test(value) ? Number(value) : undefined
    if (seq !== undefined && Number.isSafeInteger(seq)) request.resolve(seq)
    else request.reject(new ReplyError(value.startsWith('ERR ') ? value.slice(4) : value))
  }

  override async close(options: { linger?: number } = {}): Promise<{ unsent: number }> {
    const closed = await super.close(options)
    const error = new SocketClosedError('the socket closed before the reply came')
    for (const request of this.#pending.values()) {
      clearTimeout(request.timer)
      request.reject(error)
    }
    this.#pending.clear()
    return closed
  }

  /** Not for requests: use `send()`, whose promise carries the reply. */
  override trySend(_message: OutgoingMessage): boolean {
    throw new TypeError('a request socket sends with send(), which resolves with the seq')
  }
}

/**
 * A DEALER (RFC 28) for a zmq-edge ROUTER listener: many requests in flight, each `send()`
 * resolving with its message's seq once the channel has stored it.
 */
export class DealerSocket extends RequestSocket {
  protected override socketType(): SocketType {
    return DEALER
  }

  /**
   * Sends one message and resolves with the seq it was stored under.
   * @throws {ReplyError} the bridge answered ERR; {@link ReplyTimeoutError}; {@link SocketClosedError}
   */
  send(message: OutgoingMessage, options?: RequestOptions): Promise<number> {
    return this.request(message, options)
  }
}

/**
 * A REQ (RFC 28) for a zmq-edge ROUTER listener: one request at a time (a `send()` waits for
 * the one before it), each resolving with its message's seq.
 */
export class ReqSocket extends RequestSocket {
  #last: Promise<unknown> = Promise.resolve()

  protected override socketType(): SocketType {
    return REQ
  }

  /**
   * Sends one message once the request before it has its reply (or its error); resolves with
   * its seq.
   * @throws {ReplyError} the bridge answered ERR; {@link ReplyTimeoutError}; {@link SocketClosedError}
   */
  send(message: OutgoingMessage, options?: RequestOptions): Promise<number> {
    const turn = this.#last.then(() => this.request(message, options))
    this.#last = turn.catch(() => undefined)
    return turn
  }
}
