// A model-based property test of a channel's storage inside workerd (real SQLite): random
// interleavings of ingest (resends and numbers out of order included), cursor reads, pulls in
// two consumer groups, acks, retries, extends, lease expiry, dead letters, redrive, retention
// and restarts of the object (its memory dropped, everything rebuilt from storage), each step
// checked against a small reference model kept a message at a time: nothing lost, nothing
// leased twice within a group, every ack honoured, cursor reads identical to the model's.
import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { type ChannelConfig, parseChannelConfig } from '../../durable/channel-config'
import { ConsumerGroups } from '../../durable/consumer-groups'
import { MessageStore } from '../../durable/message-store'
import { RowMeter } from '../../durable/row-meter'
import type { RelaySession } from '../../shared/relay-protocol'
import { relayMessage, uniqueChannel, utf8 } from './helpers'

const MAX_ATTEMPTS = 3
const GROUPS = ['default', 'audit'] as const
type GroupName = (typeof GROUPS)[number]
const SESSIONS: RelaySession[] = [
  { bridgeId: 'edge-a', epoch: 11 },
  { bridgeId: 'edge-b', epoch: 22 },
]

type Op =
  | { kind: 'ingest'; session: number; offset: -2 | -1 | 0 | 1 | 2; size: number }
  | { kind: 'read'; after: number; limit: number }
  | { kind: 'pull'; group: number; max: number; visibility: number }
  | { kind: 'ack'; group: number; pick: number[] }
  | { kind: 'retry'; group: number; pick: number[]; delay: number }
  | { kind: 'extend'; group: number; pick: number[]; visibility: number }
  | { kind: 'redrive'; group: number }
  | { kind: 'create'; group: number; latest: boolean }
  | { kind: 'tick'; ms: number }
  | { kind: 'restart' }

const pick = fc.array(fc.nat(40), { maxLength: 6 })
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('ingest' as const),
      session: fc.nat(1),
      offset: fc.constantFrom(
        -2 as const,
        -1 as const,
        0 as const,
        0 as const,
        1 as const,
        2 as const,
      ),
      size: fc.integer({ min: 1, max: 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      after: fc.nat(60),
      limit: fc.integer({ min: 1, max: 8 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('pull' as const),
      group: fc.nat(1),
      max: fc.integer({ min: 1, max: 5 }),
      visibility: fc.integer({ min: 1, max: 50 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('ack' as const), group: fc.nat(1), pick }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('retry' as const),
      group: fc.nat(1),
      pick,
      delay: fc.integer({ min: 0, max: 30 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('extend' as const),
      group: fc.nat(1),
      pick,
      visibility: fc.integer({ min: 0, max: 50 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('redrive' as const), group: fc.nat(1) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('create' as const),
      group: fc.nat(1),
      latest: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('tick' as const),
      ms: fc.integer({ min: 1, max: 40 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) },
)

/** One message of a group in the model. */
interface Delivery {
  status: 'available' | 'leased' | 'done' | 'dead'
  attempts: number
  visibleAt: number
  lease?: string
  expiresAt?: number
}

/** The reference: the log a message at a time, and per group a record per message. */
class Model {
  /** Seq → text, for the seqs in the log. */
  readonly log = new Map<number, string>()
  /** The log's segments (one per batch), oldest first. */
  segments: { first: number; last: number }[] = []
  lastSeq = 0
  readonly sessions = new Map<number, number>()
  readonly groups = new Map<GroupName, Map<number, Delivery>>()

  constructor(
    readonly maxMessages: number,
    readonly policy: 'block' | 'drop-oldest',
  ) {}

  get oldest(): number {
    return this.segments[0]?.first ?? this.lastSeq + 1
  }

  /** The lowest seq an existing group is not done with (dead letters count as not done). */
  floor(): number | undefined {
    let lowest: number | undefined
    for (const group of this.groups.values()) {
      for (let seq = this.oldest; seq <= this.lastSeq; seq++) {
        const delivery = group.get(seq)
        if (delivery && delivery.status !== 'done') {
          if (lowest === undefined || seq < lowest) lowest = seq
          break
        }
      }
    }
    return lowest
  }

  addGroup(name: GroupName, latest: boolean): void {
    if (this.groups.has(name)) return
    const group = new Map<number, Delivery>()
    for (const seq of this.log.keys()) {
      group.set(seq, { status: latest ? 'done' : 'available', attempts: 0, visibleAt: 0 })
    }
    this.groups.set(name, group)
  }

  dropHead(): void {
    const head = this.segments.shift()
    if (!head) return
    for (let seq = head.first; seq <= head.last; seq++) {
      this.log.delete(seq)
      for (const group of this.groups.values()) group.delete(seq)
    }
  }

  /** What storing `texts` as `batchSeq` of session `index` does. */
  ingest(index: number, batchSeq: number, texts: string[]): string {
    const last = this.sessions.get(index)
    if (last !== undefined && batchSeq <= last) return 'duplicate'
    if (last !== undefined && batchSeq !== last + 1) return 'out_of_order'
    let excess = this.log.size + texts.length - this.maxMessages
    if (texts.length > this.maxMessages) return 'full'
    const floor = this.policy === 'block' ? this.floor() : undefined
    if (excess > 0 && floor !== undefined) {
      let freed = 0
      for (const segment of this.segments) {
        if (segment.last >= floor) break
        freed += segment.last - segment.first + 1
      }
      if (freed < excess) return 'full'
    }
    while (excess > 0 && this.segments.length > 0) {
      const head = this.segments[0] as { first: number; last: number }
      excess -= head.last - head.first + 1
      this.dropHead()
    }
    const first = this.lastSeq + 1
    texts.forEach((text, index) => {
      this.log.set(first + index, text)
      for (const group of this.groups.values()) {
        group.set(first + index, { status: 'available', attempts: 0, visibleAt: 0 })
      }
    })
    this.lastSeq = first + texts.length - 1
    this.segments.push({ first, last: this.lastSeq })
    this.sessions.set(index, batchSeq)
    return 'stored'
  }

  /** Expired leases at their last attempt become dead letters. */
  bury(group: Map<number, Delivery>, now: number): void {
    for (const delivery of group.values()) {
      if (
        delivery.status === 'leased' &&
        (delivery.expiresAt ?? 0) <= now &&
        delivery.attempts >= MAX_ATTEMPTS
      ) {
        delivery.status = 'dead'
      }
    }
  }

  available(group: Map<number, Delivery>, now: number): number[] {
    return [...group.entries()]
      .filter(
        ([, d]) =>
          (d.status === 'available' && d.visibleAt <= now) ||
          (d.status === 'leased' && (d.expiresAt ?? 0) <= now),
      )
      .map(([seq]) => seq)
      .sort((a, b) => a - b)
  }
}

describe('a channel against a reference model', () => {
  it('agrees at every step, through restarts, retention and lease expiry', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { minLength: 20, maxLength: 120 }),
        fc.constantFrom('block' as const, 'drop-oldest' as const),
        fc.integer({ min: 6, max: 16 }),
        async (ops, policy, maxMessages) => {
          const stub = env.CHANNEL.get(env.CHANNEL.idFromName(uniqueChannel('model')))
          await runInDurableObject(stub, (_instance, state) => {
            const config: ChannelConfig = {
              ...parseChannelConfig({}),
              maxAttempts: MAX_ATTEMPTS,
              groupInactiveMs: 0,
              retention: { maxMessages, maxBytes: 0, maxAgeSeconds: 0, overflowPolicy: policy },
            }
            const open = () => {
              const meter = new RowMeter(state.storage.sql)
              const store = new MessageStore(state.storage, () => config, meter)
              const groups = new ConsumerGroups(meter.sql, store, () => config)
              store.groups = () => groups.floor(now)
              return { store, groups }
            }
            let now = 1_000_000
            let { store, groups } = open()
            const model = new Model(maxMessages, policy)
            /** Every lease id a pull returned, by group, with its seq. */
            const issued: Record<GroupName, { id: string; seq: number }[]> = {
              default: [],
              audit: [],
            }
            const tx = <T>(run: () => T) => state.storage.transactionSync(run)
            const ids = (group: GroupName, picks: number[]) =>
              picks
                .map((index) => issued[group][index % Math.max(1, issued[group].length)])
                .filter((entry): entry is { id: string; seq: number } => entry !== undefined)

            for (const step of ops) {
              switch (step.kind) {
                case 'ingest': {
                  const session = SESSIONS[step.session] as RelaySession
                  const last = model.sessions.get(step.session) ?? 0
                  const batchSeq = Math.max(1, last + 1 + step.offset)
                  const texts = Array.from(
                    { length: step.size },
                    (_, i) => `${session.bridgeId}:${batchSeq}:${i}:${now}`,
                  )
                  const expected = model.ingest(step.session, batchSeq, texts)
                  const outcome = store.storeBatch(session, {
                    batchSeq,
                    messages: texts.map((text) => relayMessage([utf8(text)])),
                  })
                  expect(outcome.status).toBe(expected)
                  if (outcome.status === 'stored') {
                    expect(outcome.lastSeq).toBe(model.lastSeq)
                  }
                  break
                }
                case 'read': {
                  const page = store.read({
                    after: step.after,
                    limit: step.limit,
                    maxBytes: 1 << 20,
                  })
                  const expected = [...model.log.keys()]
                    .filter((seq) => seq > step.after)
                    .sort((a, b) => a - b)
                    .slice(0, step.limit)
                  expect(page.map((message) => message.seq)).toEqual(expected)
                  expect(
                    page.map((message) => new TextDecoder().decode(message.frames?.[0])),
                  ).toEqual(expected.map((seq) => model.log.get(seq)))
                  break
                }
                case 'create': {
                  const name = GROUPS[step.group] as GroupName
                  tx(() => groups.create(name, step.latest ? 'latest' : 'earliest', now))
                  model.addGroup(name, step.latest)
                  break
                }
                case 'pull': {
                  const name = GROUPS[step.group] as GroupName
                  if (name !== 'default' && !model.groups.has(name)) {
                    expect(() =>
                      groups.pull(name, { batchSize: 1, visibilityTimeoutMs: 1, maxBytes: 1, now }),
                    ).toThrow(/no consumer group/)
                    break
                  }
                  model.addGroup(name, false)
                  const group = model.groups.get(name) as Map<number, Delivery>
                  model.bury(group, now)
                  const expected = model.available(group, now).slice(0, step.max)
                  const leased = tx(() =>
                    groups.pull(name, {
                      batchSize: step.max,
                      visibilityTimeoutMs: step.visibility,
                      maxBytes: 1 << 20,
                      now,
                    }),
                  )
                  expect(leased.map((message) => message.seq)).toEqual(expected)
                  for (const message of leased) {
                    const delivery = group.get(message.seq) as Delivery
                    delivery.attempts++
                    expect(message.attempts).toBe(delivery.attempts)
                    expect(new TextDecoder().decode(message.frames?.[0])).toBe(
                      model.log.get(message.seq),
                    )
                    delivery.status = 'leased'
                    delivery.lease = message.leaseId
                    delivery.expiresAt = now + step.visibility
                    issued[name].push({ id: message.leaseId, seq: message.seq })
                  }
                  break
                }
                case 'ack':
                case 'retry': {
                  const name = GROUPS[step.group] as GroupName
                  const group = model.groups.get(name)
                  const chosen = ids(name, step.pick)
                  if (!group) break
                  model.bury(group, now)
                  let acked = 0
                  let retried = 0
                  let dead = 0
                  const unknown: string[] = []
                  for (const { id, seq } of chosen) {
                    const delivery = group.get(seq)
                    if (delivery?.status !== 'leased' || delivery.lease !== id) {
                      unknown.push(id)
                    } else if (step.kind === 'ack') {
                      delivery.status = 'done'
                      acked++
                    } else if (delivery.attempts >= MAX_ATTEMPTS) {
                      delivery.status = 'dead'
                      dead++
                    } else {
                      delivery.status = 'available'
                      delivery.visibleAt = now + step.delay
                      retried++
                    }
                  }
                  const outcome = tx(() =>
                    groups.settle(
                      name,
                      step.kind === 'ack'
                        ? { acks: chosen.map((entry) => entry.id), retries: [] }
                        : {
                            acks: [],
                            retries: chosen.map((entry) => ({
                              leaseId: entry.id,
                              delayMs: step.delay,
                            })),
                          },
                      now,
                    ),
                  )
                  expect(outcome).toEqual({ acked, retried, deadLettered: dead, unknown })
                  break
                }
                case 'extend': {
                  const name = GROUPS[step.group] as GroupName
                  const group = model.groups.get(name)
                  if (!group) break
                  const chosen = ids(name, step.pick)
                  model.bury(group, now)
                  let extended = 0
                  const unknown: string[] = []
                  for (const { id, seq } of chosen) {
                    const delivery = group.get(seq)
                    if (
                      delivery?.status === 'leased' &&
                      delivery.lease === id &&
                      (delivery.expiresAt ?? 0) > now
                    ) {
                      delivery.expiresAt = now + step.visibility
                      extended++
                    } else unknown.push(id)
                  }
                  const outcome = tx(() =>
                    groups.extend(
                      name,
                      chosen.map((entry) => entry.id),
                      step.visibility,
                      now,
                    ),
                  )
                  expect(outcome).toEqual({ extended, unknown })
                  break
                }
                case 'redrive': {
                  const name = GROUPS[step.group] as GroupName
                  const group = model.groups.get(name)
                  if (!group) break
                  model.bury(group, now)
                  const expected = [...group.entries()]
                    .filter(([, d]) => d.status === 'dead')
                    .map(([seq]) => seq)
                    .sort((a, b) => a - b)
                  const letters = tx(() =>
                    groups.deadLetters(name, { after: 0, limit: 1000, maxBytes: 1 << 20 }, now),
                  )
                  expect(letters.map((letter) => letter.seq)).toEqual(expected)
                  expect(tx(() => groups.redrive(name, undefined, now))).toEqual(expected)
                  for (const seq of expected) {
                    group.set(seq, { status: 'available', attempts: 0, visibleAt: 0 })
                  }
                  break
                }
                case 'tick':
                  now += step.ms
                  break
                case 'restart':
                  ;({ store, groups } = open())
                  break
              }
              // After every step: the log's size and ends as the model has them.
              expect(store.messageCount).toBe(model.log.size)
              expect(store.newestSeq).toBe(model.lastSeq)
              if (model.log.size > 0) expect(store.oldestSeq).toBe(model.oldest)
            }
          })
        },
      ),
      { numRuns: 400 },
    )
  }, 120_000)
})
