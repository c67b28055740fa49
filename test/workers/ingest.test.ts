// The ingest path over real WebSockets: relay batches into a channel's Durable Object, ACKs and
// NACKs, deduplication, chunked storage of large messages, and the bytes read back over HTTP.

import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { BODY_CHUNK_SIZE } from '../../durable/message-store'
import {
  AckStatus,
  encodeAck,
  encodeBatch,
  NackCode,
  type RelayFrame,
} from '../../durable/relay-protocol'
import {
  closeAllIngest,
  expectBytes,
  fromBase64,
  ingestBatch,
  openIngest,
  pattern,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const MiB = 1024 * 1024

afterEach(() => {
  closeAllIngest()
  vi.restoreAllMocks()
})

function stubOf(channel: string) {
  return env.CHANNEL.get(env.CHANNEL.idFromName(channel))
}

function stored(batchSeq: number, firstSeq: number, lastSeq: number): RelayFrame {
  return { kind: 'ack', batchSeq, status: AckStatus.STORED, firstSeq, lastSeq }
}

function duplicate(batchSeq: number): RelayFrame {
  return { kind: 'ack', batchSeq, status: AckStatus.DUPLICATE, firstSeq: 0, lastSeq: 0 }
}

describe('a batch sent over the ingest WebSocket', () => {
  it('is acknowledged and read back over HTTP byte for byte, large frames included', async () => {
    const channel = uniqueChannel()
    const allOctets = Uint8Array.from({ length: 256 }, (_, index) => index)
    const oneMiB = pattern(MiB, 1)
    const threeMiB = pattern(3 * MiB, 2)
    const sent = [
      [utf8('orders'), utf8('{"id": 1}')], // multipart
      [new Uint8Array(0)], // one empty frame
      [utf8('before'), new Uint8Array(0), allOctets, new Uint8Array(0)], // empty frames inside
      [oneMiB],
      [threeMiB, utf8('tail')], // a body over BODY_CHUNK_SIZE: stored in chunks
    ]
    const relay = await openIngest(channel)
    relay.sendBatch(
      'bridge-a',
      1,
      sent.map((frames) => relayMessage(frames)),
    )
    expect(await relay.next()).toEqual(stored(1, 1, 5))

    const page = await readPage(channel)
    expect(page.channel).toBe(channel)
    expect(page.next).toBe(5)
    expect(page.messages.map((message) => message.seq)).toEqual([1, 2, 3, 4, 5])
    page.messages.forEach((message, index) => {
      const expected = sent[index] as Uint8Array[]
      expect(message.frames).toHaveLength(expected.length)
      message.frames.forEach((frame, frameIndex) => {
        expectBytes(fromBase64(frame), expected[frameIndex] as Uint8Array)
      })
      expect(message.receivedAt).toBe('2023-11-14T22:13:20.000Z')
      expect(message.peer).toEqual({ address: '127.0.0.1:5555', mechanism: 'NULL' })
    })
  })

  it('keeps a large body in 1 MiB chunks and joins them again', async () => {
    const channel = uniqueChannel()
    const frame = pattern(3 * MiB, 7)
    expect(await ingestBatch(channel, [relayMessage([frame])])).toEqual(stored(1, 1, 1))

    const rows = await runInDurableObject(stubOf(channel), (_instance, state) => ({
      message: state.storage.sql
        .exec<{ size: number; frame_count: number; head: number }>(
          'SELECT size, frame_count, length(body) AS head FROM messages',
        )
        .one(),
      chunks: state.storage.sql
        .exec<{ idx: number; bytes: number }>(
          'SELECT idx, length(data) AS bytes FROM message_chunks ORDER BY idx',
        )
        .toArray(),
    }))
    // 4 octets of length prefix + 3 MiB: 1 MiB in the row, then 1 MiB, 1 MiB and 4 octets.
    expect(rows.message).toEqual({ size: 3 * MiB, frame_count: 1, head: BODY_CHUNK_SIZE })
    expect(rows.chunks).toEqual([
      { idx: 1, bytes: MiB },
      { idx: 2, bytes: MiB },
      { idx: 3, bytes: 4 },
    ])
    const [message] = (await readPage(channel)).messages
    expectBytes(fromBase64(message?.frames[0] ?? ''), frame)
  })

  it('carries the peer, its mechanism and a CURVE public key (as Z85)', async () => {
    const channel = uniqueChannel()
    // libzmq's test client key (zmq_curve(7), TEST KEY VALUES).
    const clientKey = Uint8Array.from(
      'BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518'.match(/../g) ?? [],
      (hex) => Number.parseInt(hex, 16),
    )
    const curve = relayMessage([utf8('secret')], {
      mechanism: 'CURVE',
      peerAddress: '[::1]:40000',
      publicKey: clientKey,
      receivedAt: Date.UTC(2026, 10, 27, 3, 10, 0, 123),
    })
    expect(await ingestBatch(channel, [curve, relayMessage([utf8('plain')])])).toEqual(
      stored(1, 1, 2),
    )

    const { messages } = await readPage(channel)
    expect(messages[0]).toEqual({
      seq: 1,
      receivedAt: '2026-11-27T03:10:00.123Z',
      frames: [btoa('secret')],
      peer: {
        address: '[::1]:40000',
        mechanism: 'CURVE',
        publicKey: 'Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID',
      },
    })
    expect(messages[1]?.peer).toEqual({ address: '127.0.0.1:5555', mechanism: 'NULL' })
  })
})

describe('deduplication per bridge', () => {
  it('acknowledges a resent batch as DUPLICATE and stores it once', async () => {
    const channel = uniqueChannel()
    const batch = encodeBatch({
      bridgeId: 'bridge-a',
      batchSeq: 1,
      messages: [relayMessage([utf8('one')]), relayMessage([utf8('two')])],
    })
    const relay = await openIngest(channel)
    relay.send(batch)
    expect(await relay.next()).toEqual(stored(1, 1, 2))
    relay.send(batch)
    expect(await relay.next()).toEqual(duplicate(1))

    // After a reconnect, as a bridge resends everything unacknowledged.
    const again = await openIngest(channel)
    again.send(batch)
    expect(await again.next()).toEqual(duplicate(1))

    const { messages, next } = await readPage(channel)
    expect(messages.map((message) => atob(message.frames[0] ?? ''))).toEqual(['one', 'two'])
    expect(next).toBe(2)
  })

  it('accepts gaps, refuses older batches, and keeps bridges apart', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    const one = [relayMessage([utf8('x')])]
    relay.sendBatch('bridge-a', 1, one)
    expect(await relay.next()).toEqual(stored(1, 1, 1))
    relay.sendBatch('bridge-a', 5, one) // a gap is fine
    expect(await relay.next()).toEqual(stored(5, 2, 2))
    relay.sendBatch('bridge-a', 3, one) // at or below the last stored: already there
    expect(await relay.next()).toEqual(duplicate(3))
    relay.sendBatch('bridge-b', 1, one) // another bridge counts on its own
    expect(await relay.next()).toEqual(stored(1, 3, 3))

    const bridges = await runInDurableObject(stubOf(channel), (_instance, state) =>
      state.storage.sql.exec('SELECT * FROM bridges ORDER BY bridge_id').toArray(),
    )
    expect(bridges).toEqual([
      { bridge_id: 'bridge-a', last_batch_seq: 5 },
      { bridge_id: 'bridge-b', last_batch_seq: 1 },
    ])
  })
})

describe('frames that are refused', () => {
  it('answers garbage with NACK MALFORMED_FRAME and keeps the socket usable', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.send(Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x00))
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 0,
      code: NackCode.MALFORMED_FRAME,
      reason: 'unknown frame kind 222',
    })
    // A batch cut short.
    const whole = encodeBatch({ bridgeId: 'b', batchSeq: 1, messages: [relayMessage([utf8('x')])] })
    relay.send(whole.subarray(0, whole.length - 1))
    const truncated = await relay.next()
    expect(truncated).toMatchObject({ kind: 'nack', batchSeq: 0, code: NackCode.MALFORMED_FRAME })
    expect(truncated.kind === 'nack' && truncated.reason).toMatch(/^frame ends inside/)

    relay.send(whole)
    expect(await relay.next()).toEqual(stored(1, 1, 1))
    expect((await readPage(channel)).messages).toHaveLength(1)
  })

  it('answers text, an ACK frame and another protocol version with a NACK', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.send('hello')
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 0,
      code: NackCode.MALFORMED_FRAME,
      reason: 'relay frames are binary',
    })
    relay.send(encodeAck({ batchSeq: 1, status: AckStatus.STORED, firstSeq: 1, lastSeq: 1 }))
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 0,
      code: NackCode.MALFORMED_FRAME,
      reason: 'expected a BATCH, got ack',
    })
    const future = encodeBatch({
      bridgeId: 'b',
      batchSeq: 1,
      messages: [relayMessage([utf8('x')])],
    })
    future[1] = 2 // version
    relay.send(future)
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 0,
      code: NackCode.UNSUPPORTED_VERSION,
      reason: 'relay protocol version 2; this end speaks 1',
    })
    expect((await readPage(channel)).messages).toEqual([])
  })

  it('refuses a receive time that is no date', async () => {
    const channel = uniqueChannel()
    const reply = await ingestBatch(channel, [relayMessage([utf8('x')], { receivedAt: 1e300 })])
    expect(reply).toEqual({
      kind: 'nack',
      batchSeq: 1,
      code: NackCode.MALFORMED_FRAME,
      reason: 'message 0: receivedAt is not a valid time',
    })
  })
})

describe('a storage failure', () => {
  it('stores nothing of the batch, NACKs it, and holds later batches until it is stored', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch('bridge-a', 1, [relayMessage([utf8('warm-up')])])
    expect(await relay.next()).toEqual(stored(1, 1, 1))

    // Break chunk storage: the message row goes in, its overflow cannot.
    const stub = stubOf(channel)
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec('ALTER TABLE message_chunks RENAME TO chunks_away')
    })
    const big = [relayMessage([utf8('small')]), relayMessage([pattern(2 * MiB, 3)])]
    relay.sendBatch('bridge-a', 2, big)
    const refused = await relay.next()
    expect(refused).toMatchObject({ kind: 'nack', batchSeq: 2, code: NackCode.STORAGE_FAILED })
    expect(refused.kind === 'nack' && refused.reason).toMatch(/message_chunks/)
    expect(log).toHaveBeenCalledWith('relay batch not stored', expect.anything())

    // Storing batch 3 now would make the resent batch 2 a "duplicate" and lose it.
    relay.sendBatch('bridge-a', 3, [relayMessage([utf8('three')])])
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 3,
      code: NackCode.OUT_OF_ORDER,
      reason: 'batch 2 was not stored; resend from it',
    })

    const afterFailure = await runInDurableObject(stub, (_instance, state) => {
      const counts = state.storage.sql
        .exec(
          'SELECT (SELECT COUNT(*) FROM messages) AS messages, (SELECT last_batch_seq FROM bridges) AS last',
        )
        .one()
      state.storage.sql.exec('ALTER TABLE chunks_away RENAME TO message_chunks')
      return counts
    })
    expect(afterFailure).toEqual({ messages: 1, last: 1 })

    relay.sendBatch('bridge-a', 2, big)
    expect(await relay.next()).toEqual(stored(2, 2, 3))
    relay.sendBatch('bridge-a', 3, [relayMessage([utf8('three')])])
    expect(await relay.next()).toEqual(stored(3, 4, 4))
    const { messages } = await readPage(channel)
    expect(messages.map((message) => message.seq)).toEqual([1, 2, 3, 4])
    expectBytes(fromBase64(messages[2]?.frames[0] ?? ''), pattern(2 * MiB, 3))
  })
})

describe('channels', () => {
  it('are isolated: each reads only its own messages', async () => {
    const red = uniqueChannel('red')
    const blue = uniqueChannel('blue')
    expect(await ingestBatch(red, [relayMessage([utf8('for red')])])).toEqual(stored(1, 1, 1))
    expect(await ingestBatch(blue, [relayMessage([utf8('for blue')])])).toEqual(stored(1, 1, 1))
    // Same bridge id and batchSeq in another channel is not a duplicate there.
    const redPage = await readPage(red)
    const bluePage = await readPage(blue)
    expect(redPage.messages.map((message) => atob(message.frames[0] ?? ''))).toEqual(['for red'])
    expect(bluePage.messages.map((message) => atob(message.frames[0] ?? ''))).toEqual(['for blue'])
  })
})
