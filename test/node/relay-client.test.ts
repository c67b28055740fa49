// RelayClient against a relay endpoint in Node that speaks relay protocol v2 with the real codec
// and stages what the Worker cannot: a proxy's smaller message limit (1009), refusals and
// rejections on demand. Split on 1009 and on BATCH_TOO_LARGE, refusals handled on the same
// socket with a backoff, pressure on and off, in-order acks, reconnect with backoff, epochs.
import { afterEach, describe, expect, it } from 'vitest'
import {
  cleartextSeenByNobody,
  type MessageReceipt,
  RelayClient,
  type RelayClientOptions,
} from '../../node-bridge/bridge/relay/relay-client'
import { AckStatus, NackCode, type RelayMessage } from '../../shared/relay-protocol'
import { createMemoryLogger } from '../support/memory-logger'
import {
  type ReceiverVerdict,
  type RelayReceiver,
  startRelayReceiver,
} from '../support/relay-receiver'
import { waitFor } from '../support/wait'

async function startReceiver(maxPayload = 0): Promise<RelayReceiver> {
  const receiver = await startRelayReceiver(maxPayload ? { maxPayload } : {})
  receivers.push(receiver)
  return receiver
}

function message(text: string, padding = 0): RelayMessage {
  return {
    receivedAt: Date.now(),
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:1',
    frames: [new TextEncoder().encode(text), new Uint8Array(padding)],
  }
}

/**
 * A channel whose limit only the message "huge" passes: a batch holding it among others is
 * too large (split it), the message alone is rejected for good.
 */
function overLimitIfHuge(batch: { messages: RelayMessage[] }): ReceiverVerdict {
  const huge = batch.messages.some(
    (item) => Buffer.from(item.frames[0] ?? []).toString() === 'huge',
  )
  if (!huge) return undefined
  return batch.messages.length > 1
    ? { nack: NackCode.BATCH_TOO_LARGE, reason: 'one is over the limit' }
    : { ack: AckStatus.REJECTED }
}

const clients: RelayClient[] = []
const receivers: RelayReceiver[] = []
afterEach(async () => {
  for (const client of clients.splice(0)) client.stop()
  for (const receiver of receivers.splice(0)) await receiver.close()
})

function relay(url: string, options: Partial<RelayClientOptions> = {}) {
  const logs = createMemoryLogger()
  const client = new RelayClient({
    workerUrl: url,
    channel: 'test',
    ingestToken: 't',
    bridgeId: 'bridge-test',
    maxBatchMessages: 1000,
    maxBatchBytes: 4 * 1024 * 1024,
    flushDelayMs: 5,
    maxInFlightBatches: 16,
    hwmMessages: 100_000,
    hwmBytes: 256 * 1024 * 1024,
    reconnectInitialMs: 20,
    reconnectMaxMs: 200,
    logger: logs.logger,
    ...options,
  })
  clients.push(client)
  return { client, logs }
}

describe('RelayClient', () => {
  it('splits batches the receiver refuses as too big (1009) instead of looping', async () => {
    const receiver = await startReceiver(64 * 1024)
    const { client } = relay(receiver.url)
    // 100 messages of 4 KiB: one 400 KiB batch, over the 64 KiB limit.
    for (let index = 0; index < 100; index++) client.enqueue(message(String(index), 4096))
    client.start()
    await waitFor(() => receiver.stored.length === 100, { what: 'every message stored' })
    expect(receiver.stored).toEqual(Array.from({ length: 100 }, (_, index) => String(index)))
    expect(client.counters.splits).toBeGreaterThan(0)
    expect(Math.max(...receiver.batchSizes)).toBeLessThanOrEqual(64 * 1024)
    await waitFor(() => client.unacknowledged === 0, { what: 'all acked' })
  })

  it('reports pressure at the high-water mark and relief below half of it', async () => {
    const changes: boolean[] = []
    const receiver = await startReceiver(1024 * 1024)
    const live = relay(receiver.url, { hwmMessages: 10, onPressure: (full) => changes.push(full) })
    for (let index = 0; index < 9; index++) live.client.enqueue(message(String(index)))
    expect(live.client.full).toBe(false)
    live.client.enqueue(message('9'))
    expect(live.client.full).toBe(true)
    expect(changes).toEqual([true])
    live.client.start()
    await waitFor(() => changes.length === 2, { what: 'relief' })
    expect(changes).toEqual([true, false])
    expect(live.client.counters.pushbackMs).toBeGreaterThanOrEqual(0)
  })

  it('backs off between failed connection attempts, up to the maximum', async () => {
    const { client, logs } = relay('ws://127.0.0.1:9', {
      reconnectInitialMs: 20,
      reconnectMaxMs: 160,
    })
    client.start()
    await waitFor(() => client.counters.reconnects >= 6, { timeoutMs: 5000, what: 'six attempts' })
    const times = logs.lines
      .filter((line) => line.msg === 'relay socket error')
      .map((line) => Number(line.time))
    const gaps = times.slice(1).map((time, index) => time - (times[index] as number))
    // Steps 20, 40, 80, 160, 160 ms, each waited at least half: the later gaps are longer.
    expect(gaps.length).toBeGreaterThanOrEqual(5)
    expect(Math.max(...gaps.slice(-2))).toBeGreaterThanOrEqual(80)
    expect(Math.max(...gaps)).toBeLessThan(1000)
  })
  it('keeps its socket when the channel refuses a batch, backs off, and says so once', async () => {
    const receiver = await startReceiver()
    let refusals = 0
    // The channel is full for its first five answers to batch 1.
    receiver.verdict = (batch) =>
      batch.batchSeq === 1 && refusals++ < 5
        ? { nack: NackCode.CHANNEL_FULL, reason: 'the channel is full' }
        : undefined
    const { client, logs } = relay(receiver.url, { reconnectInitialMs: 20, reconnectMaxMs: 160 })
    client.start()
    for (let index = 0; index < 30; index++) client.enqueue(message(String(index)))
    await waitFor(() => client.blocked !== undefined, { what: 'the refusal' })
    expect(client.blocked).toMatchObject({ code: 'CHANNEL_FULL', reason: 'the channel is full' })
    expect(client.connected).toBe(true)
    await waitFor(() => client.unacknowledged === 0, { what: 'everything stored' })
    expect(receiver.stored).toEqual(Array.from({ length: 30 }, (_, index) => String(index)))
    // One socket all along: a refusal is not a broken connection.
    expect(receiver.connections).toBe(1)
    expect(client.counters.reconnects).toBe(0)
    expect(client.counters.refusals).toBe(5)
    expect(client.blocked).toBeUndefined()
    const errors = logs.lines.filter((line) => line.level === 50)
    expect(errors.map((line) => line.msg)).toEqual([
      'the channel refused a batch; it stays queued and is sent again after a backoff',
    ])
    expect(logs.lines.filter((line) => line.msg === 'the channel accepts batches again')).toEqual([
      expect.objectContaining({ code: 'CHANNEL_FULL', refusals: 5 }),
    ])
    // Backed off between tries: five refusals took at least the halves of 20+40+80+160+160 ms.
    const refused = logs.lines.find((line) => line.level === 50)
    const accepted = logs.lines.find((line) => line.msg === 'the channel accepts batches again')
    expect(Number(accepted?.time) - Number(refused?.time)).toBeGreaterThanOrEqual(230)
  })

  it('splits a batch the channel refuses as too large, and stores every message once', async () => {
    const receiver = await startReceiver()
    receiver.verdict = (batch) =>
      batch.messages.length > 3
        ? { nack: NackCode.BATCH_TOO_LARGE, reason: 'at most 3' }
        : undefined
    const { client } = relay(receiver.url)
    for (let index = 0; index < 20; index++) client.enqueue(message(String(index)))
    client.start()
    await waitFor(() => client.unacknowledged === 0, { what: 'everything stored' })
    expect(receiver.stored).toEqual(Array.from({ length: 20 }, (_, index) => String(index)))
    expect(client.counters.splits).toBeGreaterThan(0)
    expect(receiver.connections).toBe(1)
  })

  it('drops a message the channel rejects for good, says which, and goes on', async () => {
    const receiver = await startReceiver()
    receiver.verdict = overLimitIfHuge
    const { client, logs } = relay(receiver.url)
    for (const text of ['a', 'b', 'huge', 'c', 'd']) client.enqueue(message(text))
    client.start()
    await waitFor(() => client.unacknowledged === 0, { what: 'everything answered' })
    expect(receiver.stored).toEqual(['a', 'b', 'c', 'd'])
    expect(client.counters).toMatchObject({ rejected: 1, acked: 4 })
    const rejected = logs.lines.filter((line) =>
      String(line.msg).startsWith('the channel rejected'),
    )
    expect(rejected).toEqual([
      expect.objectContaining({ messages: [{ peer: '127.0.0.1:1', octets: 4, frames: 2 }] }),
    ])
  })

  it('sizes its batches by the limits the channel announces, and passes them on', async () => {
    const receiver = await startReceiver()
    receiver.limits.maxBatchMessages = 3
    receiver.limits.maxMessageBytes = 12_345
    const announced: number[] = []
    const { client } = relay(receiver.url, {
      onLimits: (limits) => announced.push(limits.maxMessageBytes),
    })
    client.start()
    await waitFor(() => client.connected, { what: 'welcomed' })
    for (let index = 0; index < 10; index++) client.enqueue(message(String(index)))
    await waitFor(() => client.unacknowledged === 0, { what: 'everything stored' })
    expect(receiver.replies).toEqual(['stored', 'stored', 'stored', 'stored'])
    expect(announced).toEqual([12_345])
  })

  it('numbers each run under a new epoch, so a restart is never taken for the run before', async () => {
    const receiver = await startReceiver()
    const first = relay(receiver.url, { bridgeId: 'edge-vm-1' })
    first.client.start()
    for (const text of ['one', 'two', 'three']) first.client.enqueue(message(text))
    await waitFor(() => first.client.unacknowledged === 0, { what: 'run 1 stored' })
    first.client.stop()
    const second = relay(receiver.url, { bridgeId: 'edge-vm-1' })
    expect(second.client.epoch).not.toBe(first.client.epoch)
    second.client.start()
    for (const text of ['four', 'five']) second.client.enqueue(message(text))
    await waitFor(() => second.client.unacknowledged === 0, { what: 'run 2 stored' })
    expect(receiver.stored).toEqual(['one', 'two', 'three', 'four', 'five'])
    expect(second.client.counters).toMatchObject({ duplicates: 0, acked: 2 })
  })

  it('says so, as an error, when its session holds batches it never sent', async () => {
    const receiver = await startReceiver()
    const first = relay(receiver.url, { bridgeId: 'edge-vm-1', epoch: 42 })
    first.client.start()
    first.client.enqueue(message('first'))
    await waitFor(() => first.client.unacknowledged === 0, { what: 'stored' })
    first.client.stop()
    // Another process in the same session (a copied spool would do it).
    const clone = relay(receiver.url, { bridgeId: 'edge-vm-1', epoch: 42 })
    clone.client.start()
    clone.client.enqueue(message('clone'))
    await waitFor(() => clone.client.unacknowledged === 0, { what: 'answered' })
    expect(clone.client.counters.unexpectedDuplicates).toBe(1)
    expect(clone.logs.lines.filter((line) => line.level === 50).map((line) => line.msg)).toEqual([
      'the channel has batches of this session that this process never sent: another process uses this bridge id and epoch (a copied spool?)',
      'the channel says a batch that only this process sent, and was answered each time, was stored before: another process writes under this bridge id and epoch',
    ])
  })

  it('resends only the refused batch while refused, not its whole window', async () => {
    const receiver = await startReceiver()
    let refusals = 0
    receiver.verdict = (batch) =>
      batch.batchSeq === 1 && refusals++ < 5 ? { nack: NackCode.CHANNEL_FULL } : undefined
    const { client } = relay(receiver.url, { maxBatchMessages: 1, reconnectMaxMs: 80 })
    for (let index = 0; index < 30; index++) client.enqueue(message(String(index)))
    client.start()
    await waitFor(() => client.unacknowledged === 0, { what: 'everything stored' })
    expect(receiver.stored).toEqual(Array.from({ length: 30 }, (_, index) => String(index)))
    // The first refusal finds 15 batches behind it on the wire; the four retries send one each.
    const outOfOrder = receiver.replies.filter((reply) => reply === String(NackCode.OUT_OF_ORDER))
    expect(outOfOrder).toHaveLength(15)
  })

  it('splits only the batch refused as too large: the batches behind it stay whole', async () => {
    const receiver = await startReceiver()
    receiver.verdict = overLimitIfHuge
    const { client } = relay(receiver.url)
    client.enqueue(message('huge'))
    for (let index = 0; index < 4999; index++) client.enqueue(message(String(index)))
    client.start()
    await waitFor(() => client.unacknowledged === 0, { timeoutMs: 20_000, what: 'all answered' })
    expect(receiver.stored).toHaveLength(4999)
    // 1,000 halved about ten times down to the one message (a few pieces each time), plus the
    // four batches behind: a few dozen batches, not 4,999.
    expect(receiver.replies.filter((reply) => reply === 'stored').length).toBeLessThan(40)
  })

  it('blocks on a single message larger than the path carries (1009), backing off, losing nothing', async () => {
    const receiver = await startReceiver(8 * 1024)
    const { client, logs } = relay(receiver.url, { reconnectInitialMs: 20, reconnectMaxMs: 1000 })
    client.enqueue(message('big', 16 * 1024))
    await new Promise((resolve) => setTimeout(resolve, 20)) // its own batch
    client.enqueue(message('small'))
    client.start()
    await new Promise((resolve) => setTimeout(resolve, 2500))
    expect(client.blocked).toMatchObject({ code: 'MESSAGE_TOO_BIG' })
    expect(client.unacknowledged).toBe(2)
    expect(receiver.stored).toEqual([])
    // Backing off from 20 ms to 1 s, not reconnecting every few milliseconds.
    expect(receiver.connections).toBeLessThan(15)
    expect(logs.lines.filter((line) => line.level === 50)).toHaveLength(1)
  })

  it('reconnects, dropping nothing, when a channel acknowledges a batch after refusing one', async () => {
    const receiver = await startReceiver()
    receiver.forgetRefusals = true
    let refused = false
    receiver.verdict = (batch) => {
      if (batch.batchSeq !== 1 || refused) return undefined
      refused = true
      return { nack: NackCode.STORAGE_FAILED }
    }
    const { client, logs } = relay(receiver.url, { maxBatchMessages: 1 })
    for (let index = 0; index < 3; index++) client.enqueue(message(String(index)))
    client.start()
    await waitFor(
      () =>
        logs.lines.some((line) =>
          String(line.msg).startsWith('the channel acknowledged a batch after refusing'),
        ),
      { what: 'the broken ACK seen' },
    )
    // Batch 1 was not taken for stored by that ACK of batch 2.
    expect(client.counters.acked).toBe(0)
    await waitFor(() => receiver.connections >= 2, { what: 'a reconnect' })
  })

  it("sets a receive time ahead of the channel's clock to now, once told the clock", async () => {
    const receiver = await startReceiver()
    const times: number[] = []
    receiver.verdict = (batch) => {
      for (const item of batch.messages) times.push(item.receivedAt)
      return undefined
    }
    const { client, logs } = relay(receiver.url)
    client.enqueue({ ...message('from the future'), receivedAt: Date.now() + 3_600_000 })
    client.enqueue({ ...message('now'), receivedAt: Date.now() })
    client.start()
    await waitFor(() => client.unacknowledged === 0, { what: 'stored' })
    expect(Math.max(...times)).toBeLessThanOrEqual(Date.now())
    expect(client.counters.clampedTimes).toBe(1)
    expect(logs.lines.filter((line) => line.level === 50)).toHaveLength(1)
  })
})

describe('WebSocket masking', () => {
  it('is skipped (all-zero key) only where no intermediary can read the relay: TLS or loopback', () => {
    expect(cleartextSeenByNobody('wss://zmq-edge.example.workers.dev/v1/channels/a/ingest')).toBe(
      true,
    )
    expect(cleartextSeenByNobody('ws://127.0.0.1:8787/v1/channels/a/ingest')).toBe(true)
    expect(cleartextSeenByNobody('ws://[::1]:8787/x')).toBe(true)
    expect(cleartextSeenByNobody('ws://localhost:8787/x')).toBe(true)
    expect(cleartextSeenByNobody('ws://10.0.0.5:8787/x')).toBe(false)
    expect(cleartextSeenByNobody('ws://127.0.0.1.example.com/x')).toBe(false)
    expect(cleartextSeenByNobody('ws://worker.example.com/x')).toBe(false)
  })
})

describe('RelayClient receipts (a REQ or DEALER sender waiting for its reply)', () => {
  /** Enqueues `count` messages, each with a receipt; returns the receipts by message index. */
  function send(client: RelayClient, from: number, count: number) {
    const receipts = new Map<number, MessageReceipt[]>()
    for (let index = from; index < from + count; index++) {
      client.enqueue(message(String(index)), (receipt) => {
        receipts.set(index, [...(receipts.get(index) ?? []), receipt])
      })
    }
    return receipts
  }

  it('relays key names as they are, and a message whose name breaks the rule without it', async () => {
    const receiver = await startReceiver()
    const { client } = relay(receiver.url)
    client.start()
    const publicKey = new Uint8Array(32).fill(3)
    const named = (text: string, keyName: string): RelayMessage => ({
      ...message(text),
      mechanism: 'CURVE',
      publicKey,
      keyName,
    })
    // A name no batch could carry would fail every batch holding it: the message goes unnamed.
    client.enqueue(named('ok', 'pump 7 · 🚰'))
    client.enqueue(named('empty', ''))
    client.enqueue(named('long', 'x'.repeat(101)))
    client.enqueue(named('lone surrogate', '\ud800'))
    client.enqueue({ ...message('no key'), keyName: 'pump 7' })
    client.enqueue(named('after', 'pump 7 · 🚰'))
    await waitFor(() => receiver.stored.length === 6, { what: 'six stored' })
    expect(receiver.stored).toEqual(['ok', 'empty', 'long', 'lone surrogate', 'no key', 'after'])
    expect(receiver.keyNames).toEqual([
      'pump 7 · 🚰',
      undefined,
      undefined,
      undefined,
      undefined,
      'pump 7 · 🚰',
    ])
  })

  it('tells each message its seq once its batch is acknowledged, not before', async () => {
    const receiver = await startReceiver()
    receiver.dropAcks = true
    const { client } = relay(receiver.url, { maxBatchMessages: 7 })
    client.start()
    const receipts = send(client, 0, 30)
    await waitFor(() => receiver.stored.length === 30, { what: 'stored, unacknowledged' })
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(receipts.size).toBe(0)
    receiver.dropAcks = false
    // The socket ends: the new one's WELCOME says every batch is stored, but their senders
    // wait, so they go again and their DUPLICATEs bring the seqs.
    receiver.disconnect()
    await waitFor(() => receipts.size === 30, { timeoutMs: 10_000, what: 'every receipt' })
    for (const [index, told] of receipts) {
      expect({ index, told }).toEqual({ index, told: [{ status: 'stored', seq: index + 1 }] })
    }
    // Stored once: the resends were DUPLICATEs.
    expect(receiver.stored).toHaveLength(30)
    expect(receiver.duplicates).toBeGreaterThan(0)
  })

  it('takes batches nobody waits for as acknowledged from the WELCOME, without a resend', async () => {
    const receiver = await startReceiver()
    receiver.dropAcks = true
    const { client } = relay(receiver.url, { maxBatchMessages: 7 })
    client.start()
    for (let index = 0; index < 30; index++) client.enqueue(message(String(index)))
    await waitFor(() => receiver.stored.length === 30, { what: 'stored, unacknowledged' })
    receiver.dropAcks = false
    receiver.disconnect()
    await waitFor(() => client.unacknowledged === 0, { what: 'acknowledged by the WELCOME' })
    expect(receiver.duplicates).toBe(0)
  })

  it('says rejected for a message the channel rejects, and stored for the others', async () => {
    const receiver = await startReceiver()
    receiver.verdict = overLimitIfHuge
    const { client } = relay(receiver.url)
    client.start()
    const receipts = new Map<string, MessageReceipt>()
    for (const text of ['a', 'huge', 'b']) {
      client.enqueue(message(text), (receipt) => receipts.set(text, receipt))
    }
    await waitFor(() => receipts.size === 3, { what: 'three receipts' })
    expect(receipts.get('huge')).toEqual({ status: 'rejected' })
    expect(receipts.get('a')).toEqual({ status: 'stored', seq: 1 })
    expect(receipts.get('b')).toEqual({ status: 'stored', seq: 2 })
  })

  it('gives a resend under an idempotency key the first copy’s seq, its ACK lost or not', async () => {
    const receiver = await startReceiver()
    const { client } = relay(receiver.url, { maxBatchMessages: 4 })
    client.start()
    const receipts = new Map<string, MessageReceipt[]>()
    const enqueue = (text: string, idempotencyKey?: string) =>
      client.enqueue(
        { ...message(text), ...(idempotencyKey ? { idempotencyKey } : {}) },
        (receipt) => receipts.set(text, [...(receipts.get(text) ?? []), receipt]),
      )
    // Batches of 4: [a(k1) b a'(k1) c(k2)], then [c'(k2) d a''(k1) e].
    enqueue('a', 'k1')
    enqueue('b')
    enqueue('a1', 'k1')
    enqueue('c', 'k2')
    await waitFor(() => receipts.size === 4, { what: 'the first batch' })
    // The next batch is stored but its ACK lost with the socket: its DUPLICATE places each.
    receiver.dropAcks = true
    enqueue('c1', 'k2')
    enqueue('d')
    enqueue('a2', 'k1')
    enqueue('e')
    await waitFor(() => receiver.stored.length === 5, { what: 'the second batch stored' })
    receiver.dropAcks = false
    receiver.disconnect()
    await waitFor(() => receipts.size === 8, { timeoutMs: 10_000, what: 'every receipt' })
    const seqOf = (text: string) => receipts.get(text)
    expect(
      Object.fromEntries(['a', 'b', 'a1', 'c', 'c1', 'd', 'a2', 'e'].map((t) => [t, seqOf(t)])),
    ).toEqual({
      a: [{ status: 'stored', seq: 1 }],
      b: [{ status: 'stored', seq: 2 }],
      a1: [{ status: 'stored', seq: 1 }],
      c: [{ status: 'stored', seq: 3 }],
      c1: [{ status: 'stored', seq: 3 }],
      d: [{ status: 'stored', seq: 4 }],
      a2: [{ status: 'stored', seq: 1 }],
      e: [{ status: 'stored', seq: 5 }],
    })
    expect(receiver.stored).toEqual(['a', 'b', 'c', 'd', 'e'])
    expect(receiver.duplicates).toBe(1)
  })
})
