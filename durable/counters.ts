// The channel's counters by name, and where each comes from: the channel's own state
// (./channel-state.ts: batches and events), its consumer groups (summed over the groups), or
// the log's two ends (./segment-store.ts). Nothing here is a row per event.

/** Counters of the channel itself, kept by ./channel-state.ts. */
export const BatchCounter = {
  MESSAGES_STORED: 'messages_stored',
  BATCHES_STORED: 'batches_stored',
} as const
export type BatchCounter = (typeof BatchCounter)[keyof typeof BatchCounter]

/** Counters of events no segment records; persisted at most a minute late. */
export const EventCounter = {
  BATCHES_DUPLICATE: 'batches_duplicate',
  /** Messages not stored, being resends under an idempotency key of a message stored before. */
  MESSAGES_DUPLICATE: 'messages_duplicate',
  /** Retention: messages no group had acked (or in a group's dead letters) deleted. */
  DROPPED: 'dropped',
  /** Retention: messages every group had acked, deleted to make room for a batch. */
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
export type EventCounter = (typeof EventCounter)[keyof typeof EventCounter]

/** Counters of consumer groups: a channel reports their sum over its groups. */
export const GroupCounter = {
  /** Deliveries to leased consumers, redeliveries included. */
  LEASED: 'leased',
  /** Deliveries of a message whose previous lease expired without an ack. */
  REDELIVERED: 'redelivered',
  ACKED: 'acked',
  RETRIED: 'retried',
  DEAD_LETTERED: 'dead_lettered',
  REDRIVEN: 'redriven',
} as const
export type GroupCounter = (typeof GroupCounter)[keyof typeof GroupCounter]

/** Every counter a channel reports. */
export type Counter = BatchCounter | EventCounter | GroupCounter

export const BatchCounters = {
  /** Every channel-state counter at 0. */
  zero(): Record<BatchCounter | EventCounter, number> {
    const names = [...Object.values(BatchCounter), ...Object.values(EventCounter)]
    return Object.fromEntries(names.map((name) => [name, 0])) as Record<
      BatchCounter | EventCounter,
      number
    >
  },
}
