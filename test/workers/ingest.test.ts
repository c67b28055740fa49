// The ingest path over real WebSockets: relay batches into a channel's Durable Object, ACKs and
// NACKs, deduplication, chunked storage of large messages, and the bytes read back over HTTP.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import type { RetentionLimits } from '../../durable/channel-config'
import type { ChannelObject } from '../../durable/channel-object'
import { MessageStore } from '../../durable/message-store'
import { migrate } from '../../durable/schema'
import { SEGMENT_PIECE_BYTES } from '../../durable/segment-store'
import {
  AckStatus,
  CLOSE_REPLACED,
  encodeAck,
  encodeBatch,
  NackCode,
  type RelayFrame,
} from '../../shared/relay-protocol'
import {
  countRows,
  expectBytes,
  fromBase64,
  ingestBatch,
  ingestHeaders,
  ORIGIN,
  openIngest,
  pattern,
  readPage,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

const MiB = 1024 * 1024

function stubOf(channel: string) {
  return env.CHANNEL.get(env.CHANNEL.idFromName(channel))
}

/** Gives the channel's object other limits (message size, retention) for this test. */
async function withConfig(
  channel: string,
  limits: Partial<RetentionLimits> & { maxMessageBytes?: number },
): Promise<void> {
  const { maxMessageBytes, ...retention } = limits
  await runInDurableObject(stubOf(channel), (instance: ChannelObject) => {
    instance.config = {
      ...instance.config,
      ...(maxMessageBytes === undefined ? {} : { maxMessageBytes }),
      retention: { ...instance.config.retention, ...retention },
    }
  })
}

function stored(batchSeq: number, firstSeq: number, lastSeq: number): RelayFrame {
  return { kind: 'ack', batchSeq, status: AckStatus.STORED, firstSeq, lastSeq, duplicates: [] }
}

/** The ACK of a resend: with the seqs of the first copy, 0 when the object cannot place it. */
function duplicate(batchSeq: number, firstSeq = 0, lastSeq = 0): RelayFrame {
  return { kind: 'ack', batchSeq, status: AckStatus.DUPLICATE, firstSeq, lastSeq, duplicates: [] }
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

  it('keeps a large message in a segment of its own, in 1 MiB pieces, and joins them again', async () => {
    const channel = uniqueChannel()
    const frame = pattern(3 * MiB, 7)
    expect(await ingestBatch(channel, [relayMessage([frame])])).toEqual(stored(1, 1, 1))

    const rows = await runInDurableObject(stubOf(channel), (_instance, state) => ({
      segment: state.storage.sql
        .exec<{ first_seq: number; last_seq: number; bytes: number; length: number; head: number }>(
          'SELECT first_seq, last_seq, bytes, length, length(data) AS head FROM segments',
        )
        .one(),
      pieces: state.storage.sql
        .exec<{ idx: number; bytes: number }>(
          'SELECT idx, length(data) AS bytes FROM segment_pieces ORDER BY idx',
        )
        .toArray(),
    }))
    // The segment's header and the message's head, then 3 MiB of frame: 1 MiB in the row, then
    // 1 MiB, 1 MiB and what is left.
    expect(rows.segment).toMatchObject({ first_seq: 1, last_seq: 1, bytes: 3 * MiB })
    expect(rows.segment.head).toBe(SEGMENT_PIECE_BYTES)
    expect(rows.pieces.map((piece) => piece.idx)).toEqual([1, 2, 3])
    expect(rows.pieces.map((piece) => piece.bytes)).toEqual([
      MiB,
      MiB,
      rows.segment.length - 3 * MiB,
    ])
    expect(rows.segment.length - 3 * MiB).toBeLessThan(64)
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

  it("keeps the name of a message's key as relayed, and stores a version 3 bridge's as before", async () => {
    const channel = uniqueChannel()
    const key = new Uint8Array(32).fill(5)
    const curve = (text: string, keyName?: string) =>
      relayMessage([utf8(text)], {
        mechanism: 'CURVE',
        peerAddress: '10.0.0.9:1',
        publicKey: key,
        ...(keyName === undefined ? {} : { keyName }),
      })
    // A record renamed between two messages of one key: each keeps the name it was relayed with.
    expect(
      await ingestBatch(channel, [curve('a', 'pump 7'), curve('b', 'pump 7 (hall)'), curve('c')]),
    ).toEqual(stored(1, 1, 3))
    const older = await openIngest(channel, { bridgeId: 'older' }, 3)
    older.sendBatch(1, [curve('d')])
    expect(await older.next()).toEqual(stored(1, 4, 4))
    const { messages } = await readPage(channel)
    expect(messages.map((message) => message.peer.keyName)).toEqual([
      'pump 7',
      'pump 7 (hall)',
      undefined,
      undefined,
    ])
    // And in the same place after the object restarts (read from the segment, not memory).
    const stub = env.CHANNEL.get(env.CHANNEL.idFromName(channel))
    await runInDurableObject(stub, (instance: ChannelObject) => instance.restartForTests())
    const again = await readPage(channel)
    expect(again.messages.map((message) => message.peer.keyName)).toEqual([
      'pump 7',
      'pump 7 (hall)',
      undefined,
      undefined,
    ])
  })
})

describe('deduplication per bridge session', () => {
  it('acknowledges a resent batch as DUPLICATE and stores it once', async () => {
    const channel = uniqueChannel()
    const batch = encodeBatch({
      batchSeq: 1,
      messages: [relayMessage([utf8('one')]), relayMessage([utf8('two')])],
    })
    const relay = await openIngest(channel)
    expect(relay.welcome.lastBatchSeq).toBe(0)
    relay.send(batch)
    expect(await relay.next()).toEqual(stored(1, 1, 2))
    relay.send(batch)
    // With the seqs its first copy got, as a reply to a REQ sender needs them.
    expect(await relay.next()).toEqual(duplicate(1, 1, 2))

    // After a reconnect, as a bridge resends everything unacknowledged; the WELCOME says where
    // the session stands.
    const again = await openIngest(channel)
    expect(again.welcome.lastBatchSeq).toBe(1)
    again.send(batch)
    expect(await again.next()).toEqual(duplicate(1, 1, 2))

    const { messages, next } = await readPage(channel)
    expect(messages.map((message) => atob(message.frames[0] ?? ''))).toEqual(['one', 'two'])
    expect(next).toBe(2)
  })

  it('takes the next number only: a jump is refused and stores nothing', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    const one = [relayMessage([utf8('x')])]
    relay.sendBatch(1, one)
    expect(await relay.next()).toEqual(stored(1, 1, 1))
    relay.sendBatch(5, one)
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 5,
      code: NackCode.OUT_OF_ORDER,
      reason: 'batch 5 after batch 1; expected 2',
    })
    // On a new socket (a bridge resends from its first unacknowledged batch).
    const again = await openIngest(channel)
    again.sendBatch(2, one)
    expect(await again.next()).toEqual(stored(2, 2, 2))
    again.sendBatch(1, one) // at or below the last stored: already there
    expect(await again.next()).toEqual(duplicate(1, 1, 1))
    expect((await readPage(channel)).messages).toHaveLength(2)
  })

  it('places a resend across the segments of its first copy, and never a different batch', async () => {
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch(1, [relayMessage([utf8('first')])])
    expect(await relay.next()).toEqual(stored(1, 1, 1))
    // Over SEGMENT_TARGET_BYTES: the batch is stored in three segments, only the last naming it.
    const large = [
      relayMessage([new Uint8Array(600 * 1024).fill(1)]),
      relayMessage([new Uint8Array(600 * 1024).fill(2)]),
      relayMessage([utf8('small')]),
    ]
    relay.sendBatch(2, large)
    expect(await relay.next()).toEqual(stored(2, 2, 4))
    const segments = await runInDurableObject(stubOf(channel), (_instance, state) =>
      state.storage.sql
        .exec('SELECT first_seq, batch_seq FROM segments ORDER BY first_seq')
        .toArray(),
    )
    expect(segments.length).toBeGreaterThan(2)
    expect(segments.filter((segment) => segment.batch_seq === 2)).toHaveLength(1)
    relay.sendBatch(2, large)
    expect(await relay.next()).toEqual(duplicate(2, 2, 4))
    relay.sendBatch(1, [relayMessage([utf8('first')])])
    expect(await relay.next()).toEqual(duplicate(1, 1, 1))
    // A "resend" of another length is not the batch stored: no seqs rather than wrong ones.
    relay.sendBatch(2, [relayMessage([utf8('forged')])])
    expect(await relay.next()).toEqual(duplicate(2))
    relay.sendBatch(1, [relayMessage([utf8('a')]), relayMessage([utf8('b')])])
    expect(await relay.next()).toEqual(duplicate(1))
  })

  it('numbers each epoch on its own: a restart without a spool stores its batches', async () => {
    // Run 1 of a bridge with a fixed id stores 3 messages; run 2 (a new epoch) starts at
    // batch 1 again. With deduplication per bridge id alone, run 2's batches were "duplicates".
    const channel = uniqueChannel()
    const run1 = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 111 })
    for (const batchSeq of [1, 2, 3]) {
      run1.sendBatch(batchSeq, [relayMessage([utf8(`run1-${batchSeq}`)])])
      expect(await run1.next()).toMatchObject({ kind: 'ack', status: AckStatus.STORED })
    }
    run1.close()
    const run2 = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 222 })
    expect(run2.welcome.lastBatchSeq).toBe(0)
    for (const batchSeq of [1, 2]) {
      run2.sendBatch(batchSeq, [relayMessage([utf8(`run2-${batchSeq}`)])])
      expect(await run2.next()).toMatchObject({ kind: 'ack', status: AckStatus.STORED })
    }
    const { messages } = await readPage(channel)
    expect(messages.map((message) => atob(message.frames[0] ?? ''))).toEqual([
      'run1-1',
      'run1-2',
      'run1-3',
      'run2-1',
      'run2-2',
    ])
    // The numbering is kept in memory and rebuilt from the segments after a restart (a batch
    // writes its segment, not its session's row): each session resumes where it was.
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) =>
      instance.restartForTests(),
    )
    const resumed1 = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 111 })
    expect(resumed1.welcome.lastBatchSeq).toBe(3)
    resumed1.sendBatch(3, [relayMessage([utf8('run1-3 again')])])
    // Its seqs come from SQLite (the segment that records the batch), not from memory.
    expect(await resumed1.next()).toEqual(duplicate(3, 3, 3))
    const resumed2 = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 222 })
    expect(resumed2.welcome.lastBatchSeq).toBe(2)
    expect((await readPage(channel)).messages).toHaveLength(5)
  })

  it('gives a forged session its own numbering: a huge batchSeq makes nothing a duplicate', async () => {
    const channel = uniqueChannel()
    const bridge = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 7 })
    bridge.sendBatch(1, [relayMessage([utf8('real 1')])])
    expect(await bridge.next()).toEqual(stored(1, 1, 1))
    // Someone with the ingest token claims the id with another epoch and a huge number.
    const forger = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 8 })
    forger.sendBatch(2 ** 50, [relayMessage([utf8('forged')])])
    expect(await forger.next()).toEqual(stored(2 ** 50, 2, 2))
    // The bridge comes back (the forger's socket replaced its own) and goes on from batch 2.
    const back = await openIngest(channel, { bridgeId: 'edge-vm-1', epoch: 7 })
    expect(back.welcome.lastBatchSeq).toBe(1)
    back.sendBatch(2, [relayMessage([utf8('real 2')])])
    expect(await back.next()).toEqual(stored(2, 3, 3))
  })

  it('closes the older socket of a bridge id when a newer one opens (4001), storing nothing from it', async () => {
    const channel = uniqueChannel()
    const older = await openIngest(channel, { bridgeId: 'edge-vm-2' })
    const other = await openIngest(channel, { bridgeId: 'edge-vm-3' })
    const newer = await openIngest(channel, { bridgeId: 'edge-vm-2' })
    await vi.waitFor(() => expect(older.closeCode).toBe(CLOSE_REPLACED))
    expect(older.closeReason).toBe('replaced by a newer connection of this bridge id')
    expect(other.closed).toBe(false)
    newer.sendBatch(1, [relayMessage([utf8('newer')])])
    expect(await newer.next()).toEqual(stored(1, 1, 1))
    other.sendBatch(1, [relayMessage([utf8('other')])])
    expect(await other.next()).toEqual(stored(1, 2, 2))
    const connections = await stubOf(channel).stats()
    expect(connections.bridges.connections.map((connection) => connection.bridgeId)).toEqual([
      'edge-vm-3',
      'edge-vm-2',
    ])
  })

  it("keeps version 1's numbering per bridge id as epoch 0 when migrating", async () => {
    const channel = uniqueChannel()
    await openIngest(channel)
    const sessions = await runInDurableObject(stubOf(channel), (_instance, state) => {
      const { sql } = state.storage
      // The schema as version 5 left it, with a bridge's last batch.
      sql.exec('DROP TABLE bridge_sessions')
      sql.exec('CREATE TABLE bridges (bridge_id TEXT PRIMARY KEY, last_batch_seq INTEGER NOT NULL)')
      sql.exec("INSERT INTO bridges VALUES ('old-bridge', 41)")
      for (const table of ['segments', 'segment_pieces', 'channel_state', 'consumer_groups']) {
        sql.exec(`DROP TABLE ${table}`)
      }
      sql.exec('DROP TABLE group_dead_letters')
      sql.exec('DROP TABLE idempotency_keys')
      sql.exec('DELETE FROM schema_migrations WHERE version >= 6')
      expect(migrate(state.storage)).toEqual([6, 7, 8])
      return sql
        .exec('SELECT bridge_id, epoch, last_batch_seq, updated_at FROM bridge_sessions')
        .toArray()
    })
    await runInDurableObject(stubOf(channel), (instance: ChannelObject) =>
      instance.restartForTests(),
    )
    expect(sessions).toEqual([
      { bridge_id: 'old-bridge', epoch: 0, last_batch_seq: 41, updated_at: expect.any(Number) },
    ])
    expect(Math.abs(Date.now() - Number(sessions[0]?.updated_at))).toBeLessThan(60_000)
    // A spool written by version 1 resends batch 41 (stored, its ACK lost) and goes on.
    const upgraded = await openIngest(channel, { bridgeId: 'old-bridge', epoch: 0 })
    expect(upgraded.welcome.lastBatchSeq).toBe(41)
    upgraded.sendBatch(41, [relayMessage([utf8('again')])])
    expect(await upgraded.next()).toEqual(duplicate(41))
    upgraded.sendBatch(42, [relayMessage([utf8('new')])])
    expect(await upgraded.next()).toEqual(stored(42, 1, 1))
  })

  it('refuses epoch 0 to a bridge id it has no version 1 numbering of (anyone could guess it)', async () => {
    const channel = uniqueChannel()
    const response = await exports.default.fetch(`${ORIGIN}/v1/channels/${channel}/ingest`, {
      headers: ingestHeaders({ bridgeId: 'new-bridge', epoch: 0 }),
    })
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({
      error: { code: 'invalid_session', message: expect.stringMatching(/epoch 0/) },
    })
  })

  it('closes epoch 0 for a bridge id once it numbers in an epoch of its own', async () => {
    const channel = uniqueChannel()
    await openIngest(channel)
    await runInDurableObject(stubOf(channel), (_instance, state) => {
      state.storage.sql.exec(
        "INSERT INTO bridge_sessions VALUES ('old-bridge', 0, 41, ?)",
        Date.now(),
      )
    })
    // The upgraded bridge's spool moved on to a random epoch and stored there.
    const moved = await openIngest(channel, { bridgeId: 'old-bridge', epoch: 12345 })
    moved.sendBatch(42, [relayMessage([utf8('new epoch')])])
    expect(await moved.next()).toEqual(stored(42, 1, 1))
    const forged = await exports.default.fetch(`${ORIGIN}/v1/channels/${channel}/ingest`, {
      headers: ingestHeaders({ bridgeId: 'old-bridge', epoch: 0 }),
    })
    expect(forged.status).toBe(400)
  })

  it('keeps at most 16 sessions per bridge id, the most recent', async () => {
    const channel = uniqueChannel()
    for (let epoch = 1; epoch <= 20; epoch++) {
      expect(
        await ingestBatch(channel, [relayMessage([utf8(`run ${epoch}`)])], {
          bridgeId: 'b',
          epoch,
        }),
      ).toMatchObject({ kind: 'ack', status: AckStatus.STORED })
    }
    const epochs = await runInDurableObject(stubOf(channel), (_instance, state) =>
      state.storage.sql
        .exec('SELECT epoch FROM bridge_sessions ORDER BY epoch')
        .toArray()
        .map((row) => row.epoch),
    )
    expect(epochs).toEqual(Array.from({ length: 16 }, (_, index) => index + 5))
  })
})

describe('what a channel accepts from a bridge', () => {
  it('announces its limits and clock in the WELCOME', async () => {
    const channel = uniqueChannel()
    const before = Date.now()
    const relay = await openIngest(channel)
    expect(relay.welcome).toEqual({
      kind: 'welcome',
      lastBatchSeq: 0,
      maxMessageBytes: 16 * MiB,
      maxBatchBytes: 32 * MiB,
      maxBatchMessages: 1_000_000,
      now: expect.any(Number),
      maxClockSkewMs: 300_000,
    })
    expect(relay.welcome.now).toBeGreaterThanOrEqual(before)
    expect(relay.welcome.now).toBeLessThanOrEqual(Date.now())
  })

  it('announces retention limits smaller than its own as batch and message limits', async () => {
    const channel = uniqueChannel()
    await withConfig(channel, { maxMessages: 10, maxBytes: 1000 })
    const relay = await openIngest(channel)
    expect(relay.welcome).toMatchObject({
      maxMessageBytes: 1000,
      maxBatchBytes: 1000,
      maxBatchMessages: 10,
    })
  })

  it.each([
    [
      'a public key on a NULL message',
      { mechanism: 'NULL' as const, publicKey: new Uint8Array(32) },
    ],
    ['a CURVE message without its key', { mechanism: 'CURVE' as const }],
    ['a receive time 10 minutes ahead', { receivedAt: Date.now() + 10 * 60_000 }],
  ])('refuses %s with NACK INVALID_MESSAGE, storing nothing', async (_, overrides) => {
    const channel = uniqueChannel()
    const reply = await ingestBatch(channel, [
      relayMessage([utf8('fine')]),
      relayMessage([utf8('suspect')], overrides),
    ])
    expect(reply).toMatchObject({ kind: 'nack', batchSeq: 1, code: NackCode.INVALID_MESSAGE })
    expect(reply.kind === 'nack' && reply.reason).toMatch(/^message 1: /)
    expect((await readPage(channel)).messages).toEqual([])
    expect((await stubOf(channel).stats()).counters.batches_invalid).toBe(1)
  })

  it('stores old receive times (a spool replayed after an outage) and a minute of skew', async () => {
    const channel = uniqueChannel()
    const reply = await ingestBatch(channel, [
      relayMessage([utf8('last year')], { receivedAt: Date.now() - 365 * 86_400_000 }),
      relayMessage([utf8('a bit ahead')], { receivedAt: Date.now() + 60_000 }),
    ])
    expect(reply).toEqual(stored(1, 1, 2))
  })

  it('rejects for good one message over the limit (ACK REJECTED), using its number up', async () => {
    const channel = uniqueChannel()
    await withConfig(channel, { maxMessageBytes: 100 })
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const relay = await openIngest(channel)
    relay.sendBatch(1, [relayMessage([pattern(101)])])
    expect(await relay.next()).toEqual({
      kind: 'ack',
      batchSeq: 1,
      status: AckStatus.REJECTED,
      firstSeq: 0,
      lastSeq: 0,
      duplicates: [],
    })
    expect(log).toHaveBeenCalledWith(
      'relay message rejected: over the channel limits on its own',
      expect.anything(),
    )
    relay.sendBatch(2, [relayMessage([pattern(100)])])
    expect(await relay.next()).toEqual(stored(2, 1, 1))
    relay.sendBatch(1, [relayMessage([pattern(101)])])
    expect(await relay.next()).toEqual(duplicate(1))
    const stats = await stubOf(channel).stats()
    expect(stats.counters).toMatchObject({ messages_rejected: 1, messages_stored: 1 })
  })

  it.each([
    ['a message over the limit among others', { maxMessageBytes: 100 }, [101, 1]],
    ['more messages than the channel keeps', { maxMessages: 2 }, [1, 1, 1]],
    ['more octets than the channel keeps', { maxBytes: 150 }, [100, 100]],
  ])(
    'refuses a batch with %s as BATCH_TOO_LARGE, until a smaller batch comes',
    async (_, limits, sizes) => {
      const channel = uniqueChannel()
      await withConfig(channel, limits)
      const relay = await openIngest(channel)
      relay.sendBatch(
        1,
        sizes.map((size) => relayMessage([pattern(size)])),
      )
      expect(await relay.next()).toMatchObject({
        kind: 'nack',
        batchSeq: 1,
        code: NackCode.BATCH_TOO_LARGE,
      })
      // Later batches wait for the refused one (split, it is sent again under its number).
      relay.sendBatch(2, [relayMessage([pattern(1)])])
      expect(await relay.next()).toMatchObject({ kind: 'nack', code: NackCode.OUT_OF_ORDER })
      relay.sendBatch(1, [relayMessage([pattern(1)])])
      expect(await relay.next()).toEqual(stored(1, 1, 1))
      expect((await readPage(channel)).messages).toHaveLength(1)
    },
  )
})

describe('frames that are refused', () => {
  it.each([
    [
      'garbage',
      Uint8Array.of(0xde, 0xad, 0xbe, 0xef, 0x00),
      NackCode.MALFORMED_FRAME,
      /^unknown frame kind 222$/,
    ],
    [
      'a batch cut short',
      (() => {
        const whole = encodeBatch({ batchSeq: 1, messages: [relayMessage([utf8('x')])] })
        return whole.subarray(0, whole.length - 1)
      })(),
      NackCode.MALFORMED_FRAME,
      /^frame ends inside/,
    ],
    ['text', 'hello', NackCode.MALFORMED_FRAME, /^relay frames are binary$/],
    [
      'an ACK frame',
      encodeAck({ batchSeq: 1, status: AckStatus.STORED, firstSeq: 1, lastSeq: 1 }),
      NackCode.MALFORMED_FRAME,
      /^expected a BATCH, got ack$/,
    ],
    [
      'a frame of protocol version 1',
      (() => {
        const older = encodeBatch({ batchSeq: 1, messages: [relayMessage([utf8('x')])] })
        older[1] = 1 // version
        return older
      })(),
      NackCode.UNSUPPORTED_VERSION,
      /^relay protocol version 1; this socket speaks 4$/,
    ],
  ])(
    'answers %s with a NACK of no batch, then closes the socket (1007)',
    async (_, frame, code, reason) => {
      const channel = uniqueChannel()
      const relay = await openIngest(channel)
      relay.send(frame)
      const reply = await relay.next()
      expect(reply).toMatchObject({ kind: 'nack', batchSeq: 0, code })
      expect(reply.kind === 'nack' && reply.reason).toMatch(reason)
      // Nothing after an unreadable frame could be taken in order on that socket.
      await vi.waitFor(() => expect(relay.closeCode).toBe(1007))
      const again = await openIngest(channel)
      again.sendBatch(1, [relayMessage([utf8('x')])])
      expect(await again.next()).toEqual(stored(1, 1, 1))
      expect((await readPage(channel)).messages).toHaveLength(1)
    },
  )

  it('holds later batches behind one refused as malformed, even in a session it does not know', async () => {
    // Batch 1 of a new session refused; batch 2 must not start the session past it.
    const channel = uniqueChannel()
    const relay = await openIngest(channel)
    relay.sendBatch(1, [relayMessage([utf8('x')], { receivedAt: -9e15 })])
    expect(await relay.next()).toMatchObject({
      kind: 'nack',
      batchSeq: 1,
      code: NackCode.MALFORMED_FRAME,
    })
    relay.sendBatch(2, [relayMessage([utf8('second')])])
    expect(await relay.next()).toMatchObject({
      kind: 'nack',
      batchSeq: 2,
      code: NackCode.OUT_OF_ORDER,
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
    relay.sendBatch(1, [relayMessage([utf8('warm-up')])])
    expect(await relay.next()).toEqual(stored(1, 1, 1))

    // Break piece storage: the segment's row goes in, the rest of a 2 MiB message cannot.
    const stub = stubOf(channel)
    await runInDurableObject(stub, (_instance, state) => {
      state.storage.sql.exec('ALTER TABLE segment_pieces RENAME TO pieces_away')
    })
    const big = [relayMessage([utf8('small')]), relayMessage([pattern(2 * MiB, 3)])]
    relay.sendBatch(2, big)
    const refused = await relay.next()
    expect(refused).toMatchObject({ kind: 'nack', batchSeq: 2, code: NackCode.STORAGE_FAILED })
    expect(refused.kind === 'nack' && refused.reason).toMatch(/segment_pieces/)
    expect(log).toHaveBeenCalledWith('relay batch not stored', expect.anything())

    // Storing batch 3 now would make the resent batch 2 a "duplicate" and lose it.
    relay.sendBatch(3, [relayMessage([utf8('three')])])
    expect(await relay.next()).toEqual({
      kind: 'nack',
      batchSeq: 3,
      code: NackCode.OUT_OF_ORDER,
      reason: 'batch 2 was not stored; resend from it',
    })

    const afterFailure = await runInDurableObject(stub, (_instance, state) => {
      const counts = state.storage.sql
        .exec(
          'SELECT (SELECT COUNT(*) FROM segments) AS segments, (SELECT last_batch_seq FROM bridge_sessions) AS last',
        )
        .one()
      state.storage.sql.exec('ALTER TABLE pieces_away RENAME TO segment_pieces')
      return counts
    })
    expect(afterFailure).toEqual({ segments: 1, last: 1 })

    relay.sendBatch(2, big)
    expect(await relay.next()).toEqual(stored(2, 2, 3))
    relay.sendBatch(3, [relayMessage([utf8('three')])])
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

describe('deduplication state written lazily', () => {
  it('keeps a session whose last segment retention dropped: a restarted object still knows its number', async () => {
    const channel = uniqueChannel('lazy')
    await openIngest(channel)
    const statuses = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      instance.config = {
        ...instance.config,
        retention: { ...instance.config.retention, maxMessages: 7, overflowPolicy: 'drop-oldest' },
      }
      const open = () => new MessageStore(state.storage, () => instance.config)
      const batch = (batchSeq: number, count: number) => ({
        batchSeq,
        messages: Array.from({ length: count }, () => relayMessage([utf8('x')])),
      })
      const quiet = { bridgeId: 'quiet', epoch: 1 }
      const busy = { bridgeId: 'busy', epoch: 2 }
      let store = open()
      const seen = [
        store.storeBatch(quiet, batch(1, 1)).status,
        // Batch 2's number is only in memory and in its segment...
        store.storeBatch(quiet, batch(2, 1)).status,
        store.storeBatch(busy, batch(1, 2)).status,
        // ...which this batch's room deletes.
        store.storeBatch(busy, batch(2, 5)).status,
      ]
      store = open()
      seen.push(
        store.storeBatch(quiet, batch(2, 1)).status,
        store.storeBatch(busy, batch(2, 1)).status,
      )
      return seen
    })
    expect(statuses).toEqual(['stored', 'stored', 'stored', 'stored', 'duplicate', 'duplicate'])
  })
})

describe('what a batch costs in billed rows (Cloudflare bills rows read and written)', () => {
  it('writes one row a batch, and refuses a full channel in a few reads', async () => {
    const channel = uniqueChannel('rows')
    await openIngest(channel)
    const costs = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      const rows = countRows(state.storage)
      const store = new MessageStore(state.storage, () => instance.config)
      const session = { bridgeId: 'rows', epoch: 9 }
      const batch = (batchSeq: number, count: number) => ({
        batchSeq,
        messages: Array.from({ length: count }, (_, index) => relayMessage([utf8(`m${index}`)])),
      })
      const cost = (run: () => unknown) => {
        rows.reset()
        const outcome = run() as { status: string }
        return { status: outcome.status, read: rows.read(), written: rows.written() }
      }
      const first = cost(() => store.storeBatch(session, batch(1, 100)))
      const next = cost(() => store.storeBatch(session, batch(2, 100)))
      const duplicate = cost(() => store.storeBatch(session, batch(2, 100)))
      // A channel of 1,000 messages a consumer group has not acked, at its limit.
      cost(() => store.storeBatch(session, batch(3, 800)))
      store.groups = () => ({ protectedFrom: 1, notDone: (from, through) => through - from + 1 })
      instance.config = {
        ...instance.config,
        retention: { ...instance.config.retention, maxMessages: 1000 },
      }
      const full = cost(() => store.storeBatch(session, batch(4, 10)))
      // Without a group, the channel is a log that drops its oldest segment instead.
      store.groups = () => ({ protectedFrom: undefined, notDone: () => 0 })
      const dropping = cost(() => store.storeBatch(session, batch(4, 10)))
      return { first, next, duplicate, full, dropping }
    })
    console.log(`rows per batch of 100 messages: ${JSON.stringify(costs)}`)
    // A session's first batch writes its row too; later ones only their segment.
    expect(costs.first).toMatchObject({ status: 'stored', written: 2 })
    expect(costs.next).toMatchObject({ status: 'stored', written: 1 })
    expect(costs.next.read).toBeLessThanOrEqual(1)
    // Finding its seqs: the newest segment records it, the one before ends another batch.
    expect(costs.duplicate).toEqual({ status: 'duplicate', read: 2, written: 0 })
    expect(costs.full).toMatchObject({ status: 'full', written: 0 })
    expect(costs.full.read).toBeLessThanOrEqual(2)
    // Its segment and the oldest one's deletion: nothing else, though the state was not
    // written since that segment was stored (later segments record its session's numbers).
    expect(costs.dropping).toMatchObject({ status: 'stored', written: 2 })
  })

  it('finds a resent batch’s seqs reading only the segments back to it', async () => {
    const channel = uniqueChannel()
    const costs = await runInDurableObject(stubOf(channel), (instance: ChannelObject, state) => {
      const rows = countRows(state.storage)
      const store = new MessageStore(state.storage, () => instance.config)
      const session = { bridgeId: 'rows', epoch: 10 }
      const batch = (batchSeq: number) => ({ batchSeq, messages: [relayMessage([utf8('m')])] })
      for (let batchSeq = 1; batchSeq <= 60; batchSeq++) store.storeBatch(session, batch(batchSeq))
      const resend = (batchSeq: number) => {
        rows.reset()
        const outcome = store.storeBatch(session, batch(batchSeq))
        return { outcome, read: rows.read() }
      }
      return { newest: resend(60), middle: resend(31), first: resend(1) }
    })
    // Its segment, the one before it, and the one the cursor has read ahead.
    expect(costs.newest).toEqual({
      outcome: { status: 'duplicate', seqs: { firstSeq: 60, lastSeq: 60 } },
      read: 3,
    })
    // 29 newer segments stepped over, then the same three.
    expect(costs.middle).toEqual({
      outcome: { status: 'duplicate', seqs: { firstSeq: 31, lastSeq: 31 } },
      read: 32,
    })
    // The log's first batch: nothing before it to check.
    expect(costs.first).toEqual({
      outcome: { status: 'duplicate', seqs: { firstSeq: 1, lastSeq: 1 } },
      read: 60,
    })
  })
})
