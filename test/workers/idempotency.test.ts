// Idempotency keys in the channel's Durable Object: a message whose sender and key were stored
// lately is not stored again, and its ACK gives the first copy's seq, in a fresh batch and in
// the resend of one; the keys outlive the object's restarts, leave after the window, and cost
// a row per keyed batch, none for other batches. Relay protocol version 2 is still taken.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import type { ChannelObject } from '../../durable/channel-object'
import {
  IDEMPOTENCY_WINDOW_MS,
  IdempotencyWindow,
  MAX_KEYS_PER_SENDER,
  MAX_REMEMBERED_KEYS,
  MAX_ROW_OCTETS,
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
  pattern,
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

  it('are forgotten after the window, rows past it deleted', async () => {
    const outcome = await runInDurableObject(stubOf(uniqueChannel()), (_instance, state) => {
      const sql = state.storage.sql
      const window = new IdempotencyWindow(sql)
      const t0 = 1_800_000_000_000
      window.remember([{ sender: '', key: 'early', seq: 1 }], t0)
      window.remember([{ sender: '', key: 'late', seq: 2 }], t0 + 2 * 60_000)
      const inWindow = window.lookup('', 'early', t0 + IDEMPOTENCY_WINDOW_MS - 1)
      const pastWindow = window.lookup('', 'early', t0 + IDEMPOTENCY_WINDOW_MS)
      // Another object (a restart) loads only the keys still in the window.
      const reloaded = new IdempotencyWindow(sql)
      const afterRestart = {
        early: reloaded.lookup('', 'early', t0 + IDEMPOTENCY_WINDOW_MS),
        late: reloaded.lookup('', 'late', t0 + IDEMPOTENCY_WINDOW_MS),
      }
      // The next batch deletes the rows past the window.
      window.remember([{ sender: '', key: 'next', seq: 3 }], t0 + IDEMPOTENCY_WINDOW_MS + 1)
      const rows = sql
        .exec<{ first_seq: number }>('SELECT first_seq FROM idempotency_keys ORDER BY first_seq')
        .toArray()
        .map((row) => row.first_seq)
      return { inWindow, pastWindow, afterRestart, rows }
    })
    expect(outcome).toEqual({
      inWindow: 1,
      pastWindow: undefined,
      afterRestart: { early: undefined, late: 2 },
      rows: [2, 3],
    })
  })

  it('are bounded per sender, so one sender’s flood keeps the others’ keys, and in all', async () => {
    const outcome = await runInDurableObject(stubOf(uniqueChannel()), (_instance, state) => {
      const window = new IdempotencyWindow(state.storage.sql)
      const t0 = 1_800_000_000_000
      const curve = 'ab'.repeat(32)
      window.remember([{ sender: curve, key: 'mine', seq: 1 }], t0)
      // An anonymous NULL sender floods: its own oldest keys go, the CURVE sender's stay.
      const flood = Array.from({ length: MAX_KEYS_PER_SENDER + 100 }, (_, index) => ({
        sender: '',
        key: `flood-${index}`,
        seq: 10 + index,
      }))
      window.remember(flood, t0 + 1)
      const afterFlood = {
        mine: window.lookup(curve, 'mine', t0 + 2),
        floodFirst: window.lookup('', 'flood-0', t0 + 2),
        floodLast: window.lookup('', `flood-${MAX_KEYS_PER_SENDER + 99}`, t0 + 2),
      }
      // Many senders together: past MAX_REMEMBERED_KEYS the sender holding most loses its oldest.
      const senders = Math.ceil(MAX_REMEMBERED_KEYS / MAX_KEYS_PER_SENDER) + 1
      for (let sender = 0; sender < senders; sender++) {
        window.remember(
          Array.from({ length: MAX_KEYS_PER_SENDER }, (_, index) => ({
            sender: String(sender).padStart(64, '0'),
            key: `k${index}`,
            seq: 1_000_000 * (sender + 1) + index,
          })),
          t0 + 3 + sender,
        )
      }
      const now = t0 + 3 + senders
      let held = 0
      for (let sender = -1; sender < senders; sender++) {
        const name = sender < 0 ? '' : String(sender).padStart(64, '0')
        for (let index = 0; index < MAX_KEYS_PER_SENDER; index++) {
          if (window.lookup(name, sender < 0 ? `flood-${index}` : `k${index}`, now) !== undefined) {
            held++
          }
        }
      }
      const lastSender = String(senders - 1).padStart(64, '0')
      return {
        afterFlood,
        held,
        newest: window.lookup(lastSender, `k${MAX_KEYS_PER_SENDER - 1}`, now),
      }
    })
    expect(outcome.afterFlood).toEqual({
      mine: 1,
      floodFirst: undefined,
      floodLast: 10 + MAX_KEYS_PER_SENDER + 99,
    })
    expect(outcome.held).toBeLessThanOrEqual(MAX_REMEMBERED_KEYS)
    expect(outcome.held).toBeGreaterThanOrEqual(MAX_REMEMBERED_KEYS * 0.9 - MAX_KEYS_PER_SENDER)
    expect(outcome.newest).toBeDefined()
  })

  it('of a large batch are spread over rows SQLite takes, and all read back', async () => {
    const channel = uniqueChannel()
    // 8,000 keys of 128 backslashes (each escaped in JSON): 2 MB, too much for one value.
    const count = 8000
    const relay = await openIngest(channel)
    relay.sendBatch(
      1,
      Array.from({ length: count }, (_, index) =>
        keyed(`m${index}`, `${'\\'.repeat(120)}${String(index).padStart(8, '0')}`),
      ),
    )
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 1, 1, count))
    const rows = await runInDurableObject(
      stubOf(channel),
      async (instance: ChannelObject, state) => {
        const sizes = state.storage.sql
          .exec<{ octets: number }>('SELECT length(keys) AS octets FROM idempotency_keys')
          .toArray()
          .map((row) => row.octets)
        await instance.restartForTests()
        return sizes
      },
    )
    expect(rows.length).toBeGreaterThan(1)
    expect(Math.max(...rows)).toBeLessThanOrEqual(MAX_ROW_OCTETS)
    // After the restart every key is known again: the copies are answered, not stored.
    const again = await openIngest(channel)
    again.sendBatch(2, [
      keyed('again', `${'\\'.repeat(120)}${String(0).padStart(8, '0')}`),
      keyed('again', `${'\\'.repeat(120)}${String(count - 1).padStart(8, '0')}`),
    ])
    expect(await again.next()).toEqual(
      ack(AckStatus.STORED, 2, 0, 0, [
        [0, 1],
        [1, count],
      ]),
    )
  })

  it('place a resent batch whose first segment holds only keyed messages', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    // Two 300 KiB keyed messages and a small one: segments [k1] and [k2, plain].
    const batch = [
      relayMessage([pattern(300 * 1024, 1)], { idempotencyKey: 'k1' }),
      relayMessage([pattern(300 * 1024, 2)], { idempotencyKey: 'k2' }),
      relayMessage([utf8('plain')]),
    ]
    relay.sendBatch(1, batch)
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 1, 1, 3))
    const segments = await runInDurableObject(stubOf(channel), (_instance, state) =>
      state.storage.sql.exec('SELECT first_seq, last_seq FROM segments').toArray(),
    )
    expect(segments).toEqual([
      { first_seq: 1, last_seq: 1 },
      { first_seq: 2, last_seq: 3 },
    ])
    relay.sendBatch(1, batch)
    expect(await relay.next()).toEqual(ack(AckStatus.DUPLICATE, 1, 1, 3))
  })

  it('of a batch whose storing failed are not remembered: its resend is stored', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch(1, [relayMessage([utf8('warm-up')])])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 1, 1, 1))
    const stub = stubOf(channel)
    // Break piece storage: the keys' row and the segment's go in, the 2 MiB message's rest not.
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec('ALTER TABLE segment_pieces RENAME TO pieces_away')
    })
    const batch = [keyed('keyed', 'order-1'), relayMessage([pattern(2 * 1024 * 1024, 3)])]
    relay.sendBatch(2, batch)
    expect(await relay.next()).toMatchObject({ kind: 'nack', batchSeq: 2 })
    expect(log).toHaveBeenCalled()
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec('ALTER TABLE pieces_away RENAME TO segment_pieces')
    })
    // Were its key still in memory, the keyed message would be taken for a copy and lost.
    relay.sendBatch(2, batch)
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 2, 2, 3))
    relay.sendBatch(3, [keyed('keyed again', 'order-1')])
    expect(await relay.next()).toEqual(ack(AckStatus.STORED, 3, 0, 0, [[0, 2]]))
    expect(text((await readPage(channel)).messages[1]?.frames[0])).toBe('keyed')
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
    expect(body.error.message).toContain('zmq-edge.relay.v4, zmq-edge.relay.v3, zmq-edge.relay.v2')
  })
})
