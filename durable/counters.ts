// The channel's running counters in SQLite (table `counters`): totals kept up to date in the
// same transactions that change what they count, so stats and retention never scan messages.

/** Every counter, by its row name. The first four are gauges (log, queue, dead letters); the rest only grow. */
export const Counter = {
  /** Messages in the log now. */
  LOG_MESSAGES: 'log_messages',
  /** Frame octets in the log now. */
  LOG_BYTES: 'log_bytes',
  /** Rows in `queue` now (not acked, not dead letters): stats read it instead of counting. */
  QUEUE_MESSAGES: 'queue_messages',
  /** Rows in `dead_letters` now. */
  DEAD_LETTER_MESSAGES: 'dead_letter_messages',
  MESSAGES_STORED: 'messages_stored',
  BATCHES_STORED: 'batches_stored',
  BATCHES_DUPLICATE: 'batches_duplicate',
  /** Deliveries to leased consumers, redeliveries included. */
  LEASED: 'leased',
  /** Deliveries of a message whose previous lease expired without an ack. */
  REDELIVERED: 'redelivered',
  ACKED: 'acked',
  RETRIED: 'retried',
  DEAD_LETTERED: 'dead_lettered',
  REDRIVEN: 'redriven',
  /** Retention: messages not yet acked (queued or dead letters) deleted by drop-oldest. */
  DROPPED: 'dropped',
  /** Retention: acked messages deleted to make room for a batch. */
  TRIMMED: 'trimmed',
  /** Retention: messages deleted for their age, acked or not. */
  EXPIRED: 'expired',
  /** Retention: batches refused with NACK CHANNEL_FULL. */
  BATCHES_REFUSED: 'batches_refused',
  /** Messages over the channel's limits on their own, answered ACK REJECTED: never stored. */
  MESSAGES_REJECTED: 'messages_rejected',
  /** Batches refused with NACK INVALID_MESSAGE (a field the object does not trust). */
  BATCHES_INVALID: 'batches_invalid',
} as const
export type Counter = (typeof Counter)[keyof typeof Counter]

/** Adds `delta` to a counter (creating it at 0). Call inside the transaction that counts. */
export function addCounter(sql: SqlStorage, name: Counter, delta: number): void {
  if (delta === 0) return
  sql.exec(
    `INSERT INTO counters (name, value) VALUES (?, ?)
     ON CONFLICT (name) DO UPDATE SET value = value + excluded.value`,
    name,
    delta,
  )
}

/** Every counter's value; those never touched are 0. */
export function readCounters(sql: SqlStorage): Record<Counter, number> {
  const values = Object.fromEntries(Object.values(Counter).map((name) => [name, 0])) as Record<
    Counter,
    number
  >
  for (const row of sql.exec<{ name: string; value: number }>('SELECT name, value FROM counters')) {
    if (row.name in values) values[row.name as Counter] = row.value
  }
  return values
}
