// Idempotency keys in the channel's Durable Object: a message whose sender and key were stored
// lately is not stored again, and its ACK gives the first copy's seq, in a fresh batch and in
// the resend of one; the keys outlive the object's restarts, leave after the window, and cost
// a row per keyed batch, none for other batches. Relay protocol version 2 is still taken.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { ChannelObject } from '../../durable/channel-object'
import {
  IDEMPOTENCY_WINDOW_MS,
  IdempotencyWindow,
  keyNameOf,
  MAX_REMEMBERED_KEYS,
} from '../../durable/idempotency-window'
import { MessageStore } from '../../durable/message-store'
import { AckStatus, type RelayFrame, type RelayMessage } from '../../shared/relay-protocol'
import {
  countRows,
  fromBase64,
  get,
  INGEST_TOKEN,
  ORIGIN,
  openIngest,
  READ_TOKEN,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

function stubOf(channel: string) {
  return env.CHANNEL.get(env.CHANNEL.idFromName(channel))
}

function keyed(text: string, idempotencyKey: string, publicKey?: Uint8Array): RelayMessage {
  return relayMessage([utf8(text)], {
    idempotencyKey,
    ...(publicKey ? { mechanism: 'CURVE' as const, publicKey } : {}),
  })
}

function ack(
  status: AckStatus,
  batchSeq: number,
  firstSeq: number,
  lastSeq: number,
  duplicates: Array<[index: number, seq: number]> = [],
): RelayFrame {
  return {
    kind: 'ack',
    batchSeq,
    status,
    firstSeq,
    lastSeq,
    duplicates: duplicates.map(([index, seq]) => ({ index, seq })),
  }
}

const text = (frame: string | undefined) => new TextDecoder().decode(fromBase64(frame ?? ''))

describe('idempotency keys', () => {
  it('store a message once per sender and key, and answer every copy with its seq', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch(1, [keyed('one', 'a'), relayMessage([utf8('two')])])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 1, 1, 2))
    // A resend of "one", a new key twice in the batch, and a message without a key.
    relay.sendBatch(2, [
      keyed('one again', 'a'),
      keyed('three', 'b'),
      keyed('three again', 'b'),
      relayMessage([utf8('four')]),
    ])
    expect(await relay.next()).toEqual(
      ack(AckStatus.STORED, 2, 3, 4, [
        [0, 1],
        [2, 3],
      ]),
    )
    // Another sender's key "a" is its own: a CURVE client's keys are per public key.
    const publicKey = new Uint8Array(32).fill(7)
    relay.sendBatch(3, [keyed('five', 'a', publicKey), keyed('five again', 'a', publicKey)])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 3, 5, 5, [[1, 5]]))

    const { messages } = await readPage(channel)
    expect(messages.map((message) => [message.seq, text(message.frames[0])])).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'three'],
      [4, 'four'],
      [5, 'five'],
    ])
    const stats = await get(`/v1/channels/${channel}`, READ_TOKEN)
    expect(((await stats.json()) as { counters: object }).counters).toMatchObject({
      messagesStored: 5,
      messagesDuplicate: 3,
    })
  })

  it('answer a resent batch with each message’s seq, and a batch of resends only', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch(1, [relayMessage([utf8('x')]), keyed('a', 'a')])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 1, 1, 2))
    const second = [keyed('a', 'a'), relayMessage([utf8('y')]), keyed('b', 'b'), keyed('b', 'b')]
    relay.sendBatch(2, second)
    const placed = ack(AckStatus.STORED, 2, 3, 4, [
      [0, 2],
      [3, 4],
    ])
    expect(await relay.next()).toEqual(placed)
    // Its ACK lost: the bridge sends it again, and gets the same seqs as a DUPLICATE.
    relay.sendBatch(2, second)
    expect(await relay.next()).toEqual({ ...placed, status: AckStatus.DUPLICATE })
    // Resends only: nothing stored, the batch's number used, and the same again when resent.
    relay.sendBatch(3, [keyed('b', 'b'), keyed('a', 'a')])
    const resends = ack(AckStatus.STORED, 3, 0, 0, [
      [0, 4],
      [1, 2],
    ])
    expect(await relay.next()).toEqual(resends)
    relay.sendBatch(3, [keyed('b', 'b'), keyed('a', 'a')])
    expect(await relay.next()).toEqual({ ...resends, status: AckStatus.DUPLICATE })
    relay.sendBatch(4, [relayMessage([utf8('z')])])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 4, 5, 5))
    expect((await readPage(channel)).messages.map((message) => message.seq)).toEqual([
      1, 2, 3, 4, 5,
    ])
  })

  it('outlive a restart of the object (read back from storage)', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch(1, [keyed('a', 'key-a'), keyed('b', 'key-b')])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 1, 1, 2))
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) =>
      instance.restartForTests(),
    )
    const again = await openIngest(channel)
    again.sendBatch(2, [keyed('b', 'key-b'), keyed('c', 'key-c')])
    expect(await again.next()).toEqual(ack(AckStatus.STORED, 2, 3, 3, [[0, 2]]))
  })

  it('are forgotten after the window, at most MAX_REMEMBERED_KEYS held, rows deleted', async () => {
    const channel = uniqueChannel()
    const outcome = await runInDurableObject(stubOf(channel), (_instance, state) => {
      const sql = state.storage.sql
      const window = new IdempotencyWindow(sql)
      const t0 = 1_800_000_000_000
      const name = (key: string) => keyNameOf(keyed('m', key)) as string
      window.remember([{ name: name('early'), seq: 1 }], t0)
      window.remember([{ name: name('late'), seq: 2 }], t0 + 2 * 60_000)
      const inWindow = window.lookup(name('early'), t0 + IDEMPOTENCY_WINDOW_MS - 1)
      const pastWindow = window.lookup(name('early'), t0 + IDEMPOTENCY_WINDOW_MS)
      // Another object (a restart) loads only the keys still in the window.
      const reloaded = new IdempotencyWindow(sql)
      const afterRestart = {
        early: reloaded.lookup(name('early'), t0 + IDEMPOTENCY_WINDOW_MS),
        late: reloaded.lookup(name('late'), t0 + IDEMPOTENCY_WINDOW_MS),
      }
      // The next batch deletes the rows past the window.
      window.remember([{ name: name('next'), seq: 3 }], t0 + IDEMPOTENCY_WINDOW_MS + 1)
      const rows = sql
        .exec<{ first_seq: number }>('SELECT first_seq FROM idempotency_keys ORDER BY first_seq')
        .toArray()
        .map((row) => row.first_seq)
      // Past MAX_REMEMBERED_KEYS the oldest go first.
      const crowded = new IdempotencyWindow(sql)
      const t1 = t0 + 2 * IDEMPOTENCY_WINDOW_MS
      const many = Array.from({ length: MAX_REMEMBERED_KEYS }, (_, index) => ({
        name: name(`bulk-${index}`),
        seq: 100 + index,
      }))
      crowded.remember([{ name: name('oldest'), seq: 10 }], t1)
      crowded.remember(many.slice(0, MAX_REMEMBERED_KEYS / 2), t1 + 1)
      const beforeFull = crowded.lookup(name('oldest'), t1 + 2)
      crowded.remember(many.slice(MAX_REMEMBERED_KEYS / 2), t1 + 2)
      return {
        inWindow,
        pastWindow,
        afterRestart,
        rows,
        beforeFull,
        afterFull: crowded.lookup(name('oldest'), t1 + 3),
        newest: crowded.lookup(name(`bulk-${MAX_REMEMBERED_KEYS - 1}`), t1 + 3),
      }
    })
    expect(outcome).toEqual({
      inWindow: 1,
      pastWindow: undefined,
      afterRestart: { early: undefined, late: 2 },
      rows: [2, 3],
      beforeFull: 10,
      afterFull: undefined,
      newest: 100 + MAX_REMEMBERED_KEYS - 1,
    })
  })

  it('cost one row written per batch with keys, none for a batch without', async () => {
    const channel = uniqueChannel('rows')
    await openIngest(channel)
    const costs = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      const rows = countRows(state.storage)
      const store = new MessageStore(state.storage, () => instance.config)
      const session = { bridgeId: 'rows', epoch: 3 }
      const batch = (batchSeq: number, key?: string) => ({
        batchSeq,
        messages: Array.from({ length: 100 }, (_, index) =>
          key === undefined
            ? relayMessage([utf8(`m${index}`)])
            : keyed(`m${index}`, `${key}-${index}`),
        ),
      })
      const cost = (run: () => unknown) => {
        rows.reset()
        const outcome = run() as { status: string }
        return { status: outcome.status, read: rows.read(), written: rows.written() }
      }
      store.storeBatch(session, batch(1))
      return {
        plain: cost(() => store.storeBatch(session, batch(2))),
        keyed: cost(() => store.storeBatch(session, batch(3, 'k'))),
        keyedAgain: cost(() => store.storeBatch(session, batch(4, 'j'))),
        // 100 resends: answered from memory, nothing written but the session's number.
        resends: cost(() => store.storeBatch(session, batch(5, 'k'))),
      }
    })
    console.log(`rows per batch of 100 messages with and without keys: ${JSON.stringify(costs)}`)
    expect(costs.plain).toMatchObject({ status: 'stored', written: 1 })
    // Its segment and its keys' row. The object's first keyed batch also loads the window and
    // deletes the rows past it (a read each); later ones within the minute do neither.
    expect(costs.keyed).toMatchObject({ status: 'stored', written: 2 })
    expect(costs.keyed.read).toBeLessThanOrEqual(4)
    expect(costs.keyedAgain).toMatchObject({ status: 'stored', written: 2 })
    expect(costs.keyedAgain.read).toBeLessThanOrEqual(2)
    expect(costs.resends).toMatchObject({ status: 'stored', read: 0 })
    expect(costs.resends.written).toBeLessThanOrEqual(1)
  })
})

describe('relay protocol version 2', () => {
  it('is still taken: a bridge of version 2 stores, with ACKs of version 2', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel, { bridgeId: 'old-bridge' }, 2)
    relay.sendBatch(1, [relayMessage([utf8('from v2')])])
    expect(await relay.next()).toEqual({
      kind: 'ack',
      batchSeq: 1,
      status: AckStatus.STORED,
      firstSeq: 1,
      lastSeq: 1,
    })
    const { messages } = await readPage(channel)
    expect(text(messages[0]?.frames[0])).toBe('from v2')
  })

  it('and a version 1 bridge is refused at the upgrade, naming the versions taken', async () => {
    const response = await exports.default.fetch(
      `${ORIGIN}/v1/channels/${uniqueChannel()}/ingest`,
      {
        headers: {
          Upgrade: 'websocket',
          Authorization: `Bearer ${INGEST_TOKEN}`,
          'Sec-WebSocket-Protocol': 'zmq-edge.relay.v1',
          'X-Zmq-Edge-Bridge-Id': 'b',
          'X-Zmq-Edge-Epoch': '1',
        },
      },
    )
    expect(response.status).toBe(400)
    const body = (await response.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('unsupported_relay_version')
    expect(body.error.message).toContain('zmq-edge.relay.v3, zmq-edge.relay.v2')
  })
})
