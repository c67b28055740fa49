// Which idempotency keys (../shared/idempotency-key.ts) the channel stored a message under
// lately, and that message's seq: a resend with the same sender and key is answered with it and
// not stored again. Like NATS JetStream's duplicate window (Nats-Msg-Id, 2 minutes by default)
// and SQS FIFO's deduplication interval (5 minutes), it holds keys for a time, here
// IDEMPOTENCY_WINDOW_MS after their message was stored, and a bounded number of them: at most
// MAX_KEYS_PER_SENDER of one sender (all NULL senders are one), so that one sender's flood
// cannot push out the others' keys, and MAX_REMEMBERED_KEYS in all.
//
// Kept in memory, and in rows written in the batch's transaction (so memory and storage agree: a
// rolled-back batch reopens the store, which loads this again), each row at most
// MAX_ROW_OCTETS of keys. Rows past the window are deleted at most once a minute. A message
// without a key costs nothing here.
// https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication
// https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/using-messagededuplicationid-property.html

import type { RelayMessage } from '../shared/relay-protocol'
import type { Sql } from './row-meter'

/** How long after its message was stored a key is still recognised, ms. */
export const IDEMPOTENCY_WINDOW_MS = 5 * 60_000

/**
 * Most keys held, all senders together (about 400 octets each in memory with a CURVE sender and
 * a 128-character key: 20 MiB): past it the oldest of the sender holding most go first.
 */
export const MAX_REMEMBERED_KEYS = 50_000

/** Most keys held for one sender (one CURVE public key, or every NULL sender together). */
export const MAX_KEYS_PER_SENDER = 10_000

/**
 * Most octets of keys in one row, well under SQLite's value limit in a Durable Object (2 MB):
 * a batch of many keyed messages writes several rows.
 * https://developers.cloudflare.com/durable-objects/platform/limits/
 */
export const MAX_ROW_OCTETS = 256 * 1024

/** Least time between two deletions of rows past the window, ms. */
const PRUNE_INTERVAL_MS = 60_000

interface Remembered {
  seq: number
  storedAt: number
}

/** A key stored: its message's seq, sender (hex, '' for NULL) and the key. */
export interface StoredKey {
  seq: number
  sender: string
  key: string
}

/** A row's keys as JSON: `[seq, sender, key]` each. */
type KeyRow = Array<[number, string, string]>

function hex(bytes: Uint8Array): string {
  let text = ''
  for (const octet of bytes) text += octet.toString(16).padStart(2, '0')
  return text
}

/**
 * Who a message's key belongs to, and the key: undefined for a message without one. A CURVE
 * sender's keys are its own; NULL senders share the channel's.
 */
export function keyOf(message: RelayMessage): { sender: string; key: string } | undefined {
  const key = message.idempotencyKey
  if (key === undefined) return undefined
  return { sender: message.publicKey ? hex(message.publicKey) : '', key }
}

export class IdempotencyWindow {
  readonly #sql: Sql
  /** Loaded at first use: per sender, its keys in the order stored (the oldest first). */
  #senders: Map<string, Map<string, Remembered>> | undefined
  #size = 0
  #prunedAt = 0

  constructor(sql: Sql) {
    this.#sql = sql
  }

  /** The seq of the message `sender` stored under `key` within the window. */
  lookup(sender: string, key: string, now: number): number | undefined {
    const remembered = this.#loaded(now).get(sender)?.get(key)
    return remembered && remembered.storedAt > now - IDEMPOTENCY_WINDOW_MS
      ? remembered.seq
      : undefined
  }

  /**
   * Remembers the keys of a batch's stored messages; run in the batch's transaction.
   * @param stored in seq order.
   */
  remember(stored: readonly StoredKey[], now: number): void {
    if (stored.length === 0) return
    this.#loaded(now)
    let row: KeyRow = []
    let octets = 0
    const write = () => {
      this.#sql.exec(
        'INSERT INTO idempotency_keys (first_seq, stored_at, keys) VALUES (?, ?, ?)',
        (row[0] as [number, string, string])[0],
        now,
        JSON.stringify(row),
      )
      row = []
      octets = 0
    }
    for (const { seq, sender, key } of stored) {
      this.#add(sender, key, { seq, storedAt: now }, now)
      // JSON of an entry: the seq, the sender's hex, the key (a character escapes to at most 2).
      const size = 24 + sender.length + 2 * key.length
      if (octets + size > MAX_ROW_OCTETS && row.length > 0) write()
      row.push([seq, sender, key])
      octets += size
    }
    write()
    if (now - this.#prunedAt >= PRUNE_INTERVAL_MS) {
      this.#prunedAt = now
      this.#prune(now)
    }
  }

  /**
   * Deletes the rows past the window: reads them (rows are in seq order, which is the order
   * stored) and the first one still in it, not the whole table.
   */
  #prune(now: number): void {
    let keepFrom: number | undefined
    const rows = this.#sql.exec<{ first_seq: number; stored_at: number }>(
      'SELECT first_seq, stored_at FROM idempotency_keys ORDER BY first_seq',
    )
    let expired = false
    for (const row of rows) {
      if (row.stored_at > now - IDEMPOTENCY_WINDOW_MS) {
        keepFrom = row.first_seq
        break
      }
      expired = true
    }
    if (!expired) return
    if (keepFrom === undefined) this.#sql.exec('DELETE FROM idempotency_keys')
    else this.#sql.exec('DELETE FROM idempotency_keys WHERE first_seq < ?', keepFrom)
  }

  #add(sender: string, key: string, remembered: Remembered, now: number): void {
    let keys = this.#senders?.get(sender)
    if (!keys) {
      keys = new Map()
      this.#senders?.set(sender, keys)
    }
    // Set anew at the end (a key past the window may come again), so the oldest stay first.
    if (keys.delete(key)) this.#size--
    keys.set(key, remembered)
    this.#size++
    if (keys.size > MAX_KEYS_PER_SENDER) this.#dropOldest(sender, keys)
    if (this.#size > MAX_REMEMBERED_KEYS) this.#shrink(now)
  }

  #dropOldest(sender: string, keys: Map<string, Remembered>): void {
    const oldest = keys.keys().next()
    if (oldest.done) return
    keys.delete(oldest.value)
    this.#size--
    if (keys.size === 0) this.#senders?.delete(sender)
  }

  /**
   * Drops every key past the window, then the oldest of the sender holding most, down to 90% of
   * MAX_REMEMBERED_KEYS: a scan of the senders once per many keys, not at each.
   */
  #shrink(now: number): void {
    const senders = this.#senders
    if (!senders) return
    for (const [sender, keys] of senders) {
      for (const [key, remembered] of keys) {
        if (remembered.storedAt > now - IDEMPOTENCY_WINDOW_MS) break
        keys.delete(key)
        this.#size--
      }
      if (keys.size === 0) senders.delete(sender)
    }
    const target = Math.floor(MAX_REMEMBERED_KEYS * 0.9)
    while (this.#size > target) {
      let largest: [string, Map<string, Remembered>] | undefined
      for (const entry of senders) if (!largest || entry[1].size > largest[1].size) largest = entry
      if (!largest) return
      // A batch of them at once: one scan of the senders for many keys.
      const excess = Math.min(this.#size - target, largest[1].size)
      for (let index = 0; index < excess; index++) this.#dropOldest(largest[0], largest[1])
    }
  }

  /**
   * The keys in memory, loaded at first use: the rows in the window, the newest first, until
   * MAX_REMEMBERED_KEYS are read (rows read: those, and one more).
   */
  #loaded(now: number): Map<string, Map<string, Remembered>> {
    if (this.#senders) return this.#senders
    const rows: Array<{ storedAt: number; keys: KeyRow }> = []
    let count = 0
    const cursor = this.#sql.exec<{ stored_at: number; keys: string }>(
      'SELECT stored_at, keys FROM idempotency_keys ORDER BY first_seq DESC',
    )
    for (const row of cursor) {
      if (row.stored_at <= now - IDEMPOTENCY_WINDOW_MS || count >= MAX_REMEMBERED_KEYS) break
      const keys = JSON.parse(row.keys) as KeyRow
      rows.push({ storedAt: row.stored_at, keys })
      count += keys.length
    }
    this.#senders = new Map()
    this.#size = 0
    for (const { storedAt, keys } of rows.reverse()) {
      for (const [seq, sender, key] of keys) this.#add(sender, key, { seq, storedAt }, now)
    }
    return this.#senders
  }
}
