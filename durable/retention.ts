// Retention of a channel's log: a maximum age, and maximum messages and bytes enforced when a
// batch arrives. Whole segments leave, from the head of the log (the oldest first), so the log
// stays one contiguous range of seqs. Synchronous, inside the caller's transaction.
//
// - Age: segments leave once the time they were stored (the Durable Object's clock, not the
//   bridge's receive time) is past the limit, whatever any group has acked.
// - Count and bytes, policy `block`, with an active consumer group: only segments every active
//   group is done with (acked or dead-lettered... dead letters excepted) may leave; when that is
//   not enough the batch is refused and nothing changes.
// - Count and bytes, policy `drop-oldest`, or a channel no active group reads (a log read by
//   cursors): the oldest segments leave, whatever their state, as Kafka's retention and
//   JetStream's limits policy do.
//
// Cursor readers read the log as it is: seqs are never reused, so a reader whose cursor falls
// before the oldest message kept simply gets the oldest one next, and sees the gap in seqs.

import type { RetentionLimits } from './channel-config'

/** A run of the log's head that retention may drop whole. */
export interface HeadRun {
  firstSeq: number
  lastSeq: number
  /** Frame octets. */
  bytes: number
  storedAt: number
}

/** The log as retention sees it. */
export interface RetainedLog {
  messageCount: number
  byteCount: number
  /** The oldest run (a segment), if any. */
  head(): HeadRun | undefined
  /** Deletes {@link head}. */
  dropHead(): void
  /**
   * Frame octets and messages of the whole runs before the one holding `seq` (what dropping
   * up to it frees), without deleting anything.
   */
  before(seq: number): { messages: number; bytes: number }
}

/** What the consumer groups say about retention. */
export interface GroupFloor {
  /** The lowest seq an active group is not done with (or holds as a dead letter), if any. */
  protectedFrom: number | undefined
  /** How many of the seqs `[from, through]` some group is not done with. */
  notDone(from: number, through: number): number
}

/** What retention deleted, by why. */
export interface Dropped {
  /** For their age. */
  expired: number
  /** To make room, every group done with them. */
  trimmed: number
  /** To make room, some group not done with them. */
  dropped: number
}

/** What making room for a batch did: room made (maybe by deleting), or refused with why. */
export type RoomOutcome = ({ ok: true } & Dropped) | { ok: false; reason: string }

/**
 * Deletes the runs at the head of the log stored at or before `now - maxAgeSeconds`.
 * @returns how many messages left.
 */
export function expireByAge(log: RetainedLog, limits: RetentionLimits, now: number): number {
  if (limits.maxAgeSeconds === 0) return 0
  const cutoff = now - limits.maxAgeSeconds * 1000
  let expired = 0
  for (let head = log.head(); head; head = log.head()) {
    // At exactly its expiry time a run goes: the alarm set for that time must delete it.
    if (head.storedAt > cutoff) break
    log.dropHead()
    expired += head.lastSeq - head.firstSeq + 1
  }
  return expired
}

/** When the run at the head of the log expires, if there is an age limit and a run. */
export function nextExpiryAt(log: RetainedLog, limits: RetentionLimits): number | undefined {
  if (limits.maxAgeSeconds === 0) return undefined
  const head = log.head()
  return head === undefined ? undefined : head.storedAt + limits.maxAgeSeconds * 1000
}

/**
 * Makes room for `count` more messages of `bytes` frame octets under the count and byte
 * limits, by the overflow policy; changes nothing when it refuses.
 */
export function makeRoom(
  log: RetainedLog,
  limits: RetentionLimits,
  incoming: { count: number; bytes: number },
  groups: GroupFloor,
): RoomOutcome {
  const { maxMessages, maxBytes, overflowPolicy } = limits
  if (
    (maxMessages > 0 && incoming.count > maxMessages) ||
    (maxBytes > 0 && incoming.bytes > maxBytes)
  ) {
    return {
      ok: false,
      reason: `a batch of ${incoming.count} messages, ${incoming.bytes} bytes exceeds the channel's limits`,
    }
  }
  let excessMessages = maxMessages > 0 ? log.messageCount + incoming.count - maxMessages : 0
  let excessBytes = maxBytes > 0 ? log.byteCount + incoming.bytes - maxBytes : 0
  const outcome: RoomOutcome = { ok: true, expired: 0, trimmed: 0, dropped: 0 }
  if (excessMessages <= 0 && excessBytes <= 0) return outcome
  const floor = overflowPolicy === 'block' ? groups.protectedFrom : undefined
  if (floor !== undefined) {
    // Decided before anything is deleted, in two lookups: a full channel refuses every resend
    // of a bridge, and must not read its whole log each time.
    const free = log.before(floor)
    if (free.messages < excessMessages || free.bytes < excessBytes) {
      return {
        ok: false,
        reason:
          'the channel is full of messages a consumer group has not acked (overflow policy block)',
      }
    }
  }
  while (excessMessages > 0 || excessBytes > 0) {
    const head = log.head()
    if (!head) break
    log.dropHead()
    const count = head.lastSeq - head.firstSeq + 1
    const notDone = groups.notDone(head.firstSeq, head.lastSeq)
    outcome.dropped += notDone
    outcome.trimmed += count - notDone
    excessMessages -= count
    excessBytes -= head.bytes
  }
  return outcome
}
