// Which idempotency keys (../shared/idempotency-key.ts) the channel stored a message under
// lately, and that message's seq: a resend with the same sender and key is answered with it and
// not stored again. Like NATS JetStream's duplicate window (Nats-Msg-Id, 2 minutes by default)
// and SQS FIFO's deduplication interval (5 minutes), it holds keys for a time, here
// IDEMPOTENCY_WINDOW_MS after their message was stored, and at most MAX_REMEMBERED_KEYS of them.
//
// Kept in memory, and in one row per batch that stored keyed messages (the row is written in
// the batch's transaction, so memory and storage agree: a rolled-back batch reopens the store and
// loads this again). Rows older than the window are deleted at most once a minute. A message
// without a key costs nothing here.
// https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html

import type { RelayMessage } from '../shared/relay-protocol'
import type { Sql } from './row-meter'

/** How long after its message was stored a key is still recognised, ms. */
export const IDEMPOTENCY_WINDOW_MS = 5 * 60_000

/**
 * Most keys held (at about 250 octets each in memory, 12 MiB): past it the oldest go first, so a
 * channel taking more than this many keyed messages in the window recognises a shorter span.
 */
export const MAX_REMEMBERED_KEYS = 50_000

/** Least time between two deletions of rows past the window, ms. */
const PRUNE_INTERVAL_MS = 60_000

interface Remembered {
  seq: number
  storedAt: number
}

/** A row's keys: `[seq, sender, key]`, sender the CURVE public key in hex or '' under NULL. */
type KeyRow = Array<[number, string, string]>

function hex(bytes: Uint8Array): string {
  let text = ''
  for (const octet of bytes) text += octet.toString(16).padStart(2, '0')
  return text
}

/** Who a key belongs to: a CURVE sender's keys are its own; NULL senders share the channel's. */
function senderOf(message: RelayMessage): string {
  return message.publicKey ? hex(message.publicKey) : ''
}

/** The name a message's key is held under (visible ASCII never holds a space). */
export function keyNameOf(message: RelayMessage): string | undefined {
  const key = message.idempotencyKey
  return key === undefined ? undefined : `${senderOf(message)} ${key}`
}

export class IdempotencyWindow {
  readonly #sql: Sql
  /** Loaded at first use; in the order stored, so the oldest are first. */
  #keys: Map<string, Remembered> | undefined
  #prunedAt = 0

  constructor(sql: Sql) {
    this.#sql = sql
  }

  /** The seq of the message stored under `name` (see {@link keyNameOf}) within the window. */
  lookup(name: string, now: number): number | undefined {
    const remembered = this.#loaded(now).get(name)
    return remembered && remembered.storedAt > now - IDEMPOTENCY_WINDOW_MS
      ? remembered.seq
      : undefined
  }

  /**
   * Remembers the keys of a batch's stored messages; run in the batch's transaction.
   * @param stored each keyed message's name and seq, first seq first.
   */
  remember(stored: ReadonlyArray<{ name: string; seq: number }>, now: number): void {
    const first = stored[0]
    if (!first) return
    const keys = this.#loaded(now)
    const row: KeyRow = []
    for (const { name, seq } of stored) {
      // Set anew at the end (a key past the window may come again), so the oldest stay first.
      keys.delete(name)
      keys.set(name, { seq, storedAt: now })
      const space = name.indexOf(' ')
      row.push([seq, name.slice(0, space), name.slice(space + 1)])
    }
    this.#sql.exec(
      'INSERT INTO idempotency_keys (first_seq, stored_at, keys) VALUES (?, ?, ?)',
      first.seq,
      now,
      JSON.stringify(row),
    )
    this.#evict(keys, now)
    if (now - this.#prunedAt >= PRUNE_INTERVAL_MS) {
      this.#prunedAt = now
      this.#sql.exec(
        'DELETE FROM idempotency_keys WHERE stored_at <= ?',
        now - IDEMPOTENCY_WINDOW_MS,
      )
    }
  }

  #loaded(now: number): Map<string, Remembered> {
    if (this.#keys) return this.#keys
    const keys = new Map<string, Remembered>()
    const rows = this.#sql.exec<{ stored_at: number; keys: string }>(
      'SELECT stored_at, keys FROM idempotency_keys WHERE stored_at > ? ORDER BY first_seq',
      now - IDEMPOTENCY_WINDOW_MS,
    )
    for (const row of rows) {
      for (const [seq, sender, key] of JSON.parse(row.keys) as KeyRow) {
        keys.set(`${sender} ${key}`, { seq, storedAt: row.stored_at })
      }
    }
    this.#evict(keys, now)
    this.#keys = keys
    return keys
  }

  /** Drops the keys past the window, and the oldest past MAX_REMEMBERED_KEYS. */
  #evict(keys: Map<string, Remembered>, now: number): void {
    for (const [name, remembered] of keys) {
      if (keys.size <= MAX_REMEMBERED_KEYS && remembered.storedAt > now - IDEMPOTENCY_WINDOW_MS) {
        break
      }
      keys.delete(name)
    }
  }
}
