// The spool: its record format (round trip, torn tails, checksums), replay (batches, numbers,
// 1009 renumbering, acks), segment rotation and deletion, bridge-id pinning, and the RelayClient
// resending after a simulated crash under the same batch numbers.
import { spawn } from 'node:child_process'
import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as zlib from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { startBridge } from '../../node-bridge/bridge/bridge'
import { ConfigError } from '../../node-bridge/bridge/bridge-config'
import { crc32, crc32Table } from '../../node-bridge/bridge/relay/crc32'
import { RelayClient } from '../../node-bridge/bridge/relay/relay-client'
import {
  Spool,
  SpoolError,
  SpoolErrorCode,
  type SpoolOptions,
} from '../../node-bridge/bridge/relay/spool'
import { SpoolLock } from '../../node-bridge/bridge/relay/spool-lock'
import {
  encodeAckRecord,
  encodeHeaderRecord,
  encodeMessageRecord,
  encodeSealRecord,
  scanSegment,
} from '../../node-bridge/bridge/relay/spool-record'
import { parseConfig } from '../../node-bridge/cli/config/parse-config'
import type { RelayMessage } from '../../shared/relay-protocol'
import { createMemoryLogger } from '../support/memory-logger'
import { type RelayReceiver, startRelayReceiver } from '../support/relay-receiver'
import { waitFor } from '../support/wait'

const dirs: string[] = []
const cleanups: Array<() => unknown> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-spool-'))
  dirs.push(dir)
  return dir
}

function message(text: string, padding = 0): RelayMessage {
  return {
    receivedAt: 1_700_000_000_000,
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:5555',
    frames: [new TextEncoder().encode(text), new Uint8Array(padding)],
  }
}

const text = (item: RelayMessage) => new TextDecoder().decode(item.frames[0])

function open(dir: string, options: Partial<SpoolOptions> = {}) {
  const logs = createMemoryLogger()
  const spool = Spool.open({ dir, bridgeId: 'bridge-a', logger: logs.logger, ...options })
  return { spool, logs }
}

/** The segment files, oldest first. */
function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort()
}

/** Appends messages `from..to-1` named by their index, with ids following on. */
function appendRange(spool: Spool, from: number, to: number, padding = 0): void {
  for (let index = from; index < to; index++)
    spool.append(index + 1, message(String(index), padding))
}

const concat = (chunks: Uint8Array[]) => new Uint8Array(Buffer.concat(chunks))

describe('crc32', () => {
  it('gives the standard check value for "123456789", natively and from the table', () => {
    const data = new TextEncoder().encode('123456789')
    expect(crc32Table(data)).toBe(0xcbf43926)
    expect(crc32(data)).toBe(0xcbf43926)
    expect(crc32Table(data.subarray(4), crc32Table(data.subarray(0, 4)))).toBe(0xcbf43926)
    if (typeof zlib.crc32 === 'function') expect(zlib.crc32(data)).toBe(0xcbf43926)
  })
})

describe('spool records', () => {
  const header = {
    bridgeId: 'b1',
    epoch: 2 ** 53 - 1,
    segment: 3,
    nextMessageId: 11,
    nextBatchSeq: 4,
    ackedBelow: 7,
    seals: [{ batchSeq: 3, firstId: 7, count: 4 }],
  }
  const records = () =>
    concat([
      encodeHeaderRecord(header),
      ...encodeMessageRecord(11, message('eleven')),
      encodeSealRecord({ batchSeq: 4, firstId: 11, count: 1 }),
      encodeAckRecord(4),
    ])

  it('round-trips every record kind', () => {
    const scan = scanSegment(records())
    expect(scan.problem).toBeUndefined()
    expect(scan.validBytes).toBe(records().length)
    expect(scan.records).toEqual([
      { type: 'header', ...header },
      { type: 'message', id: 11, message: message('eleven') },
      { type: 'seal', batchSeq: 4, firstId: 11, count: 1 },
      { type: 'ack', batchSeq: 4 },
    ])
  })

  it('keeps a message’s idempotency key, in a layout earlier bridges read only when there is one', () => {
    const keyed = { ...message('keyed'), idempotencyKey: 'order-42' }
    const bytes = concat([
      ...encodeMessageRecord(1, message('plain')),
      ...encodeMessageRecord(2, keyed),
    ])
    const scan = scanSegment(bytes)
    expect(scan.problem).toBeUndefined()
    expect(scan.records).toEqual([
      { type: 'message', id: 1, message: message('plain') },
      { type: 'message', id: 2, message: keyed },
    ])
    // A message without a key: the prefix every earlier bridge reads (version 1 batch header);
    // with one, version 3's.
    const prefix = (record: Uint8Array[]) => Array.from((record[1] as Uint8Array).subarray(0, 2))
    expect(prefix(encodeMessageRecord(1, message('plain')))).toEqual([0x01, 0x01])
    expect(prefix(encodeMessageRecord(2, keyed))).toEqual([0x01, 0x03])
  })

  it('keeps the name of a message’s key, in the layout of relay version 4', () => {
    const publicKey = new Uint8Array(32).fill(7)
    const named = {
      ...message('named'),
      mechanism: 'CURVE' as const,
      publicKey,
      keyName: 'sensor-17',
    }
    const both = { ...named, idempotencyKey: 'k' }
    const scan = scanSegment(
      concat([...encodeMessageRecord(1, named), ...encodeMessageRecord(2, both)]),
    )
    expect(scan.problem).toBeUndefined()
    expect(scan.records).toEqual([
      { type: 'message', id: 1, message: named },
      { type: 'message', id: 2, message: both },
    ])
    const prefix = (record: Uint8Array[]) => Array.from((record[1] as Uint8Array).subarray(0, 2))
    expect(prefix(encodeMessageRecord(1, named))).toEqual([0x01, 0x04])
    // An unnamed CURVE message keeps the oldest layout.
    const { keyName: _, ...unnamed } = named
    expect(prefix(encodeMessageRecord(1, unnamed))).toEqual([0x01, 0x01])
    // A layout this bridge does not know (its checksum right) is a corrupt record, not a guess.
    const [head, layout, body] = encodeMessageRecord(1, named) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ]
    layout[1] = 0x05
    new DataView(head.buffer).setUint32(4, crc32(body, crc32(layout, crc32(head.subarray(8)))))
    expect(scanSegment(concat([head, layout, body])).problem).toBeDefined()
    layout[1] = 0x04
    new DataView(head.buffer).setUint32(4, crc32(body, crc32(layout, crc32(head.subarray(8)))))
    expect(scanSegment(concat([head, layout, body])).problem).toBeUndefined()
  })

  it('frames a SEAL as length, crc32 and body', () => {
    const bytes = encodeSealRecord({ batchSeq: 2, firstId: 5, count: 3 })
    const body = bytes.subarray(8)
    expect([...bytes.subarray(0, 4)]).toEqual([0, 0, 0, 21]) // body length
    expect(new DataView(bytes.buffer).getUint32(4)).toBe(crc32(body)) // checksum of the body
    expect(body[0]).toBe(0x03) // kind SEAL
    expect([...body.subarray(1, 9)]).toEqual([0, 0, 0, 0, 0, 0, 0, 2]) // batchSeq
    expect([...body.subarray(9, 17)]).toEqual([0, 0, 0, 0, 0, 0, 0, 5]) // first message id
    expect([...body.subarray(17)]).toEqual([0, 0, 0, 3]) // message count
  })

  it('frames a HEADER in format 2, the epoch after the counters', () => {
    const bytes = encodeHeaderRecord({ ...header, bridgeId: 'b', seals: [] })
    const body = bytes.subarray(8)
    const u64 = (at: number) => Number(new DataView(body.buffer, body.byteOffset).getBigUint64(at))
    expect(body[0]).toBe(0x01) // kind HEADER
    expect(new TextDecoder().decode(body.subarray(1, 5))).toBe('ZESP') // magic
    expect(body[5]).toBe(2) // format 2: with the epoch
    expect([body[6], body[7]]).toEqual([1, 0x62]) // bridge id length, "b"
    expect([8, 16, 24, 32].map(u64)).toEqual([3, 11, 4, 7]) // segment, next id, next batch, acked
    expect(u64(40)).toBe(2 ** 53 - 1) // epoch
    expect([...body.subarray(48)]).toEqual([0, 0, 0, 0]) // no seals
  })

  it('ignores a torn last record, wherever the write was cut', () => {
    const whole = records()
    const withoutLast = whole.length - encodeAckRecord(4).length
    for (let cut = withoutLast + 1; cut < whole.length; cut++) {
      const scan = scanSegment(whole.subarray(0, cut))
      expect(scan.records).toHaveLength(3)
      expect(scan.validBytes).toBe(withoutLast)
      expect(scan.problem?.kind).toBe('torn')
    }
    const zeros = concat([whole, new Uint8Array(100)])
    expect(scanSegment(zeros).problem?.kind).toBe('torn')
    expect(scanSegment(zeros).records).toHaveLength(4)
  })

  it('stops at a record whose checksum does not match', () => {
    const bytes = records()
    const headerLength = encodeHeaderRecord(header).length
    bytes[headerLength + 20] = (bytes[headerLength + 20] as number) ^ 0xff
    const scan = scanSegment(bytes)
    expect(scan.records.map((record) => record.type)).toEqual(['header'])
    expect(scan.problem).toMatchObject({ kind: 'checksum', offset: headerLength })
  })
})

/**
 * A HEADER record as bridges wrote it before the relay epoch (spool format 1), encoded here as
 * that code did, so the test does not depend on the encoder under test.
 */
function formatOneHeader(header: {
  bridgeId: string
  segment: number
  nextMessageId: number
  nextBatchSeq: number
  ackedBelow: number
  seals: Array<{ batchSeq: number; firstId: number; count: number }>
}): Uint8Array {
  const id = new TextEncoder().encode(header.bridgeId)
  const body = new Uint8Array(1 + 4 + 1 + 1 + id.length + 32 + 4 + header.seals.length * 20)
  const view = new DataView(body.buffer)
  const u64 = (at: number, value: number) => view.setBigUint64(at, BigInt(value))
  body[0] = 0x01 // kind HEADER
  view.setUint32(1, 0x5a455350) // magic "ZESP"
  body[5] = 1 // format version 1
  body[6] = id.length // bridge id length, then the id
  body.set(id, 7)
  let at = 7 + id.length
  for (const value of [
    header.segment,
    header.nextMessageId,
    header.nextBatchSeq,
    header.ackedBelow,
  ]) {
    u64(at, value) // segment, next message id, next batch number, acked below
    at += 8
  }
  view.setUint32(at, header.seals.length) // seal count, then batchSeq u64, firstId u64, count u32
  at += 4
  for (const seal of header.seals) {
    u64(at, seal.batchSeq)
    u64(at + 8, seal.firstId)
    view.setUint32(at + 16, seal.count)
    at += 20
  }
  const record = new Uint8Array(8 + body.length)
  new DataView(record.buffer).setUint32(0, body.length) // length
  new DataView(record.buffer).setUint32(4, crc32(body)) // crc32 of the body
  record.set(body, 8)
  return record
}

describe('the spool epoch', () => {
  it('is drawn at random, 1 to 2^53-1, for a fresh spool folder, and differs between folders', () => {
    const epochs = [0, 1, 2].map(() => {
      const { spool } = open(tempDir())
      spool.close()
      return spool.epoch
    })
    for (const epoch of epochs) {
      expect(Number.isSafeInteger(epoch)).toBe(true)
      expect(epoch).toBeGreaterThanOrEqual(1)
    }
    expect(new Set(epochs).size).toBe(3)
  })

  it('survives a restart, and every segment header carries it', () => {
    const dir = tempDir()
    const first = open(dir, { segmentBytes: 1024 }).spool
    appendRange(first, 0, 10, 200)
    first.close()
    const second = open(dir).spool
    expect(second.epoch).toBe(first.epoch)
    second.close()
    expect(segments(dir).length).toBeGreaterThan(2)
    for (const name of segments(dir)) {
      const [header] = scanSegment(readFileSync(join(dir, name))).records
      expect(header).toMatchObject({ type: 'header', epoch: first.epoch })
    }
  })

  it('is 0 for a spool written before epochs (format 1), whose messages and batches replay intact', () => {
    const dir = tempDir()
    const old = concat([
      formatOneHeader({
        bridgeId: 'bridge-old',
        segment: 7,
        nextMessageId: 41,
        nextBatchSeq: 9,
        ackedBelow: 41,
        seals: [],
      }),
      ...[41, 42, 43].flatMap((id) => encodeMessageRecord(id, message(`m${id}`))),
      encodeSealRecord({ batchSeq: 9, firstId: 41, count: 2 }),
    ])
    writeFileSync(join(dir, '0000000000000007.seg'), old)

    const { spool } = open(dir)
    expect(spool.epoch).toBe(0)
    expect(spool.bridgeId).toBe('bridge-old')
    expect(spool.recovered).toMatchObject({ nextMessageId: 44, nextBatchSeq: 10, openFirstId: 43 })
    expect(
      spool.recovered.batches.map((batch) => [batch.batchSeq, batch.messages.map(text)]),
    ).toEqual([[9, ['m41', 'm42']]])
    expect(spool.recovered.open.map(text)).toEqual(['m43'])
    spool.close()
    // The bridge's next segment is written in the new format, still under epoch 0: batch 9 was
    // numbered in it and may be stored there.
    const second = open(dir).spool
    expect(second.epoch).toBe(0)
    second.ack(9)
    second.close()
    // Nothing numbered in epoch 0 is held any more: the spool moves to a random epoch (epoch 0
    // is guessable), numbers and messages going on, and keeps it.
    const third = open(dir).spool
    expect(third.epoch).toBeGreaterThan(0)
    expect(third.recovered).toMatchObject({ nextBatchSeq: 10, batches: [], openFirstId: 43 })
    third.close()
    const fourth = open(dir).spool
    expect(fourth.epoch).toBe(third.epoch)
    expect(fourth.recovered.open.map(text)).toEqual(['m43'])
    fourth.close()
  })
})

describe('Spool', () => {
  it('starts empty, with the configured bridge id', () => {
    const { spool } = open(tempDir())
    expect(spool.bridgeId).toBe('bridge-a')
    expect(spool.recovered).toEqual({
      nextMessageId: 1,
      nextBatchSeq: 1,
      batches: [],
      openFirstId: 1,
      open: [],
    })
    spool.close()
  })

  it('replays unacknowledged batches with their numbers, then the unsealed messages', () => {
    const dir = tempDir()
    const first = open(dir).spool
    appendRange(first, 0, 10)
    first.seal(1, 1, 3)
    first.seal(2, 4, 3)
    first.seal(3, 7, 2)
    first.ack(1)
    first.close()

    const { spool, logs } = open(dir, { bridgeId: 'another-random-id' })
    const { recovered } = spool
    expect(spool.bridgeId).toBe('bridge-a')
    expect(recovered.nextBatchSeq).toBe(4)
    expect(recovered.nextMessageId).toBe(11)
    expect(
      recovered.batches.map((batch) => [batch.batchSeq, batch.firstId, batch.messages.map(text)]),
    ).toEqual([
      [2, 4, ['3', '4', '5']],
      [3, 7, ['6', '7']],
    ])
    expect(recovered.openFirstId).toBe(9)
    expect(recovered.open.map(text)).toEqual(['8', '9'])
    expect(
      logs.lines.find((line) => line.msg?.toString().startsWith('spool replayed')),
    ).toMatchObject({
      batches: 2,
      messages: 7,
    })
    spool.close()
  })

  it('keeps what was written when the process dies without closing (records flush each turn)', async () => {
    const dir = tempDir()
    const first = open(dir).spool
    appendRange(first, 0, 5)
    first.seal(1, 1, 5)
    await Promise.resolve() // the microtask that writes this turn's records
    // No close(): as after kill -9, the lock file and the segment are left as they are.
    const { spool } = open(dir)
    expect(spool.recovered.batches.map((batch) => batch.messages.map(text))).toEqual([
      ['0', '1', '2', '3', '4'],
    ])
    spool.close()
  })

  it('ignores and cuts off a torn final record, and reads the segment whole next time', () => {
    const dir = tempDir()
    const first = open(dir).spool
    appendRange(first, 0, 3)
    first.close()
    const last = join(dir, segments(dir).at(-1) as string)
    const [head, frame] = encodeMessageRecord(4, message('torn'))
    appendFileSync(last, concat([head, frame]).subarray(0, 15))

    const second = open(dir)
    expect(second.spool.recovered.open.map(text)).toEqual(['0', '1', '2'])
    expect(second.logs.lines.some((line) => String(line.msg).includes('torn record'))).toBe(true)
    appendRange(second.spool, 3, 4)
    second.spool.close()

    const third = open(dir)
    expect(third.spool.recovered.open.map(text)).toEqual(['0', '1', '2', '3'])
    expect(third.logs.lines.some((line) => line.level === 40 || line.level === 50)).toBe(false)
    third.spool.close()
  })

  it('stops replay at a corrupt record, logs it and sets the rest aside', () => {
    const dir = tempDir()
    const first = open(dir).spool
    appendRange(first, 0, 6)
    first.close()
    const path = join(dir, segments(dir).at(-1) as string)
    const bytes = readFileSync(path)
    // Flip one octet in the fourth message's frame body ('3').
    const at = bytes.lastIndexOf(Buffer.from('3\0'))
    expect(at).toBeGreaterThan(0)
    bytes[at] = 0x58
    writeFileSync(path, bytes)

    const { spool, logs } = open(dir)
    expect(spool.recovered.open.map(text)).toEqual(['0', '1', '2'])
    expect(
      logs.lines.find((line) => line.msg === 'spool record corrupt: replay stops here'),
    ).toMatchObject({
      level: 50,
      reason: 'checksum mismatch',
    })
    expect(readdirSync(dir).some((name) => name.endsWith('.corrupt'))).toBe(true)
    // New messages follow the ones that were read, with the next ids.
    expect(spool.recovered.nextMessageId).toBe(4)
    spool.close()
  })

  it('rotates segments at the size limit and deletes those whose messages are all acknowledged', () => {
    const dir = tempDir()
    const { spool } = open(dir, { segmentBytes: 2048 })
    // 40 messages of ~300 octets: about six segments.
    appendRange(spool, 0, 40, 256)
    for (let batch = 0; batch < 8; batch++) spool.seal(batch + 1, batch * 5 + 1, 5)
    spool.flush()
    const before = segments(dir).length
    expect(before).toBeGreaterThanOrEqual(5)
    spool.ack(4) // messages 1..20 stored
    spool.flush()
    const middle = segments(dir).length
    expect(middle).toBeLessThan(before)
    expect(middle).toBeGreaterThan(1)
    spool.close()

    // What is left still replays: batches 5..8, messages 20..39.
    const reopened = open(dir, { segmentBytes: 2048 }).spool
    expect(reopened.recovered.batches.map((batch) => batch.batchSeq)).toEqual([5, 6, 7, 8])
    expect(reopened.recovered.batches.flatMap((batch) => batch.messages.map(text))).toEqual(
      Array.from({ length: 20 }, (_, index) => String(index + 20)),
    )
    reopened.ack(8)
    reopened.flush()
    // Everything is stored: only the active segment remains, holding just its header.
    expect(segments(dir)).toHaveLength(1)
    expect(reopened.diskBytes).toBeLessThan(200)
    reopened.close()
    const empty = open(dir).spool
    expect(empty.recovered).toMatchObject({
      nextBatchSeq: 9,
      nextMessageId: 41,
      batches: [],
      open: [],
    })
    empty.close()
  })

  it('pins the bridge id: a different --bridge-id is refused, naming both', () => {
    const dir = tempDir()
    open(dir, { bridgeId: 'bridge-a', bridgeIdSource: '--bridge-id' }).spool.close()
    let error: unknown
    try {
      open(dir, { bridgeId: 'bridge-b', bridgeIdSource: '--bridge-id' })
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ConfigError)
    expect((error as ConfigError).setting).toBe('--bridge-id')
    expect((error as Error).message).toContain('"bridge-b"')
    expect((error as Error).message).toContain('"bridge-a"')
    // The refused open did not keep the lock.
    open(dir, { bridgeId: 'bridge-a', bridgeIdSource: 'ZMQ_EDGE_BRIDGE_ID' }).spool.close()
  })

  it('replays a 1009 renumbering: the new SEALs replace the old batches from the refused one', () => {
    const dir = tempDir()
    const first = open(dir).spool
    appendRange(first, 0, 8)
    first.seal(1, 1, 2)
    first.seal(2, 3, 2)
    first.seal(3, 5, 2)
    first.seal(4, 7, 2)
    // Batch 2 was refused: 2..4 are split into smaller ones, numbered again from 2.
    for (let index = 0; index < 6; index++) first.seal(2 + index, 3 + index, 1)
    first.close()
    const split = open(dir).spool
    expect(
      split.recovered.batches.map((batch) => [batch.batchSeq, batch.messages.map(text)]),
    ).toEqual([
      [1, ['0', '1']],
      [2, ['2']],
      [3, ['3']],
      [4, ['4']],
      [5, ['5']],
      [6, ['6']],
      [7, ['7']],
    ])
    expect(split.recovered.nextBatchSeq).toBe(8)
    // A split into fewer batches lowers the next number (none of them was stored).
    split.seal(3, 4, 5)
    split.close()
    const merged = open(dir).spool
    expect(merged.recovered.batches.map((batch) => [batch.batchSeq, batch.firstId])).toEqual([
      [1, 1],
      [2, 3],
      [3, 4],
    ])
    expect(merged.recovered.nextBatchSeq).toBe(4)
    merged.close()
  })

  it('refuses records that cannot follow: a gap in the batches', () => {
    const { spool } = open(tempDir())
    appendRange(spool, 0, 4)
    spool.seal(1, 1, 2)
    expect(() => spool.seal(2, 4, 1)).toThrowError(
      expect.objectContaining({ code: SpoolErrorCode.INCONSISTENT }),
    )
    expect(() => spool.seal(3, 3, 1)).toThrow(SpoolError)
    spool.close()
  })

  it('is locked against a second live process', () => {
    const dir = tempDir()
    const { spool } = open(dir)
    spool.close()
    writeFileSync(join(dir, 'lock'), `${process.ppid}\n`)
    expect(() => open(dir)).toThrowError(expect.objectContaining({ code: SpoolErrorCode.LOCKED }))
  })
})

const modeOf = (path: string) => statSync(path).mode & 0o777
const isRoot = process.getuid?.() === 0

describe.skipIf(process.platform === 'win32')('spool files and folders', () => {
  it('are created 0600 in folders 0700: segments, lock, the channel folder and the ones above', () => {
    const root = join(tempDir(), 'spool')
    const dir = join(root, 'default')
    const first = open(dir).spool
    appendRange(first, 0, 6)
    first.close()
    // A corrupt record: the rest is set aside in a file of its own.
    const path = join(dir, segments(dir).at(-1) as string)
    const bytes = readFileSync(path)
    bytes[bytes.lastIndexOf(Buffer.from('3\0'))] = 0x58
    writeFileSync(path, bytes)
    const { spool } = open(dir)
    expect(modeOf(root)).toBe(0o700)
    expect(modeOf(dir)).toBe(0o700)
    const files = readdirSync(dir)
    expect(files).toContain('lock')
    expect(files.some((name) => name.endsWith('.corrupt'))).toBe(true)
    for (const name of files) expect([name, modeOf(join(dir, name))]).toEqual([name, 0o600])
    spool.close()
  })

  it('tightens an existing folder of its own that others may enter, and says so', () => {
    const dir = tempDir()
    chmodSync(dir, 0o755)
    const { spool, logs } = open(dir)
    expect(modeOf(dir)).toBe(0o700)
    expect(
      logs.lines.find((line) => line.msg === 'spool folder open to other users: tightened'),
    ).toMatchObject({
      dir,
      mode: '0755',
    })
    spool.close()
  })

  it.skipIf(!isRoot)('warns about a wider folder owned by another user, and leaves it', () => {
    const dir = tempDir()
    chmodSync(dir, 0o755)
    chownSync(dir, 65534, 65534)
    const { spool, logs } = open(dir)
    expect(modeOf(dir)).toBe(0o755)
    expect(
      logs.lines.find(
        (line) => line.msg === 'spool folder open to other users and not ours: left as it is',
      ),
    ).toMatchObject({ level: 40, dir, mode: '0755', owner: 65534 })
    spool.close()
  })

  it('tightens the --spool-dir folder the bridge is given', async () => {
    const root = tempDir()
    chmodSync(root, 0o755)
    const logs = createMemoryLogger()
    const config = parseConfig(
      {
        ingestToken: 't',
        bind: 'tcp://127.0.0.1:0',
        spoolDir: root,
        workerUrl: 'ws://127.0.0.1:9',
      },
      {},
    )
    const bridge = await startBridge(config, logs.logger)
    await bridge.stop(0)
    expect(modeOf(root)).toBe(0o700)
    expect(modeOf(join(root, 'default'))).toBe(0o700)
  })
})

/** Field 22 of /proc/<pid>/stat, read here independently of the code under test (proc(5)). */
function startTimeOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19])
}

const hasProc = existsSync('/proc/self/stat')
const bootId = hasProc ? readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() : ''

/** A live process of another kind, as a pid reused after the bridge that held it crashed. */
async function otherProcess(): Promise<number> {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  cleanups.push(() => child.kill('SIGKILL'))
  await new Promise((resolve, reject) => child.once('spawn', resolve).once('error', reject))
  return child.pid as number
}

const lockOf = (owner: object) => `${JSON.stringify(owner)}\n`

describe.skipIf(!hasProc)('the spool lock', () => {
  it('is taken over from a crashed bridge whose pid now belongs to another live process', async () => {
    const pid = await otherProcess()
    const dir = tempDir()
    // The lock a crashed bridge left, naming the pid with its own start time.
    writeFileSync(join(dir, 'lock'), lockOf({ pid, startTime: startTimeOf(pid) - 1, bootId }))
    const { spool } = open(dir)
    expect(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8'))).toEqual({
      pid: process.pid,
      startTime: startTimeOf(process.pid),
      bootId,
    })
    spool.close()
  })

  it('is taken over when an old, pid-only lock is older than the process that has the pid now', async () => {
    const pid = await otherProcess()
    const dir = tempDir()
    writeFileSync(join(dir, 'lock'), `${pid}\n`)
    const minuteAgo = Date.now() / 1000 - 60
    utimesSync(join(dir, 'lock'), minuteAgo, minuteAgo) // written before `sleep` started
    open(dir).spool.close()
  })

  it('stays with a live holder whose pid and start time match, and names it', async () => {
    const pid = await otherProcess()
    const dir = tempDir()
    writeFileSync(join(dir, 'lock'), lockOf({ pid, startTime: startTimeOf(pid), bootId }))
    expect(() => open(dir)).toThrowError(
      expect.objectContaining({
        code: SpoolErrorCode.LOCKED,
        message: expect.stringContaining(`process ${pid}`),
      }),
    )
  })

  it('is taken over when it was written before the machine last booted', async () => {
    const pid = await otherProcess()
    const dir = tempDir()
    const earlierBoot = '00000000-0000-4000-8000-000000000000'
    writeFileSync(
      join(dir, 'lock'),
      lockOf({ pid, startTime: startTimeOf(pid), bootId: earlierBoot }),
    )
    open(dir).spool.close()
  })

  it('judges by the pid alone where /proc is absent', async () => {
    const pid = await otherProcess()
    const dir = tempDir()
    writeFileSync(join(dir, 'lock'), lockOf({ pid, startTime: startTimeOf(pid) - 1, bootId }))
    expect(() => SpoolLock.acquire(dir, { procRoot: join(dir, 'no-proc') })).toThrowError(
      expect.objectContaining({ code: SpoolErrorCode.LOCKED }),
    )
    rmSync(join(dir, 'lock'))
    const lock = SpoolLock.acquire(dir, { procRoot: join(dir, 'no-proc') })
    expect(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8'))).toEqual({ pid: process.pid })
    lock.release()
  })

  it('is released only by its holder', () => {
    const dir = tempDir()
    const lock = SpoolLock.acquire(dir)
    writeFileSync(join(dir, 'lock'), lockOf({ pid: process.ppid }))
    lock.release()
    expect(existsSync(join(dir, 'lock'))).toBe(true)
  })
})

/** Stores batches as the Durable Object does: once per (session, batchSeq). */
async function startReceiver(options: { maxPayload?: number } = {}): Promise<RelayReceiver> {
  const receiver = await startRelayReceiver(options)
  cleanups.push(() => receiver.close())
  return receiver
}

function relay(url: string, spool: Spool) {
  const client = new RelayClient({
    workerUrl: url,
    channel: 'test',
    ingestToken: 't',
    bridgeId: 'ignored-with-a-spool',
    maxBatchMessages: 10,
    maxBatchBytes: 4 * 1024 * 1024,
    flushDelayMs: 5,
    maxInFlightBatches: 4,
    hwmMessages: 100_000,
    hwmBytes: 256 * 1024 * 1024,
    reconnectInitialMs: 20,
    reconnectMaxMs: 100,
    logger: createMemoryLogger('silent').logger,
    spool,
  })
  cleanups.push(() => client.stop())
  return client
}

describe('RelayClient with a spool', () => {
  it('sends what an earlier process left unacknowledged, first and once', async () => {
    const dir = tempDir()
    const receiver = await startReceiver()
    // The first process reads 95 messages while the Worker is away, then dies.
    const first = relay('ws://127.0.0.1:9', open(dir).spool)
    for (let index = 0; index < 95; index++) first.enqueue(message(String(index)))
    await new Promise((resolve) => setTimeout(resolve, 20)) // some batches sealed by the timer
    first.stop()

    const spool = open(dir).spool
    cleanups.push(() => spool.close())
    const second = relay(receiver.url, spool)
    expect(second.counters.replayed).toBe(95)
    expect(second.unacknowledged).toBe(95)
    second.start()
    for (let index = 95; index < 120; index++) second.enqueue(message(String(index)))
    await waitFor(() => second.unacknowledged === 0, { what: 'everything acked' })
    expect(receiver.stored).toEqual(Array.from({ length: 120 }, (_, index) => String(index)))
  })

  it('takes stored but unacknowledged batches as acknowledged from the WELCOME, never storing them twice', async () => {
    const dir = tempDir()
    const receiver = await startReceiver()
    receiver.dropAcks = true
    const first = relay(receiver.url, open(dir).spool)
    first.start()
    for (let index = 0; index < 50; index++) first.enqueue(message(String(index)))
    await waitFor(() => receiver.stored.length === 40, { what: 'four batches stored, unacked' })
    first.stop() // the window is full: the last batch waits, unsent

    receiver.dropAcks = false
    const spool = open(dir, { bridgeId: 'a-new-random-id' }).spool
    cleanups.push(() => spool.close())
    const second = relay(receiver.url, spool)
    expect(second.bridgeId).toBe('bridge-a')
    second.start()
    await waitFor(() => second.unacknowledged === 0, { what: 'everything acked' })
    expect(receiver.stored).toEqual(Array.from({ length: 50 }, (_, index) => String(index)))
    // The WELCOME said batch 4 was the session's last: 1-4 acknowledged without a resend.
    expect(receiver.duplicates).toBe(0)
    expect(second.counters).toMatchObject({ batchesSent: 1, acked: 50, unexpectedDuplicates: 0 })
  })

  it('splits refused batches (1009) and records the new numbering', async () => {
    const dir = tempDir()
    const receiver = await startReceiver({ maxPayload: 16 * 1024 })
    const spool = open(dir).spool
    const client = relay(receiver.url, spool)
    // Ten messages of 4 KiB: one 40 KiB batch, over the 16 KiB limit.
    for (let index = 0; index < 10; index++) client.enqueue(message(String(index), 4096))
    client.start()
    await waitFor(() => client.unacknowledged === 0, { what: 'everything acked' })
    expect(receiver.stored).toEqual(Array.from({ length: 10 }, (_, index) => String(index)))
    expect(client.counters.splits).toBeGreaterThan(0)
    client.stop()
    spool.close()
    const reopened = open(dir).spool
    expect(reopened.recovered).toMatchObject({ batches: [], open: [], nextMessageId: 11 })
    expect(reopened.recovered.nextBatchSeq).toBe(Math.max(...receiver.lastBatchSeqs.values()) + 1)
    reopened.close()
  })
})

describe('spool settings', () => {
  it('reads --spool-dir, --spool-segment-bytes and --spool-fsync, flags over variables', () => {
    const config = parseConfig(
      { ingestToken: 't', spoolDir: '/var/spool/zmq-edge', spoolFsync: 'on' },
      { ZMQ_EDGE_SPOOL_DIR: '/elsewhere', ZMQ_EDGE_SPOOL_SEGMENT_BYTES: '1048576' },
    )
    expect(config).toMatchObject({
      spoolDir: '/var/spool/zmq-edge',
      spoolSegmentBytes: 1048576,
      spoolFsync: true,
    })
    expect(config.bridgeIdSource).toBeUndefined()
  })

  it('has no spool by default, and remembers where an explicit bridge id came from', () => {
    const config = parseConfig({ ingestToken: 't' }, { ZMQ_EDGE_BRIDGE_ID: 'edge-1' })
    expect(config.spoolDir).toBeUndefined()
    expect(config.spoolFsync).toBe(false)
    expect(config).toMatchObject({ bridgeId: 'edge-1', bridgeIdSource: 'ZMQ_EDGE_BRIDGE_ID' })
  })

  it('names --spool-fsync when its value is not on or off', () => {
    expect(() => parseConfig({ ingestToken: 't', spoolFsync: 'sometimes' }, {})).toThrowError(
      expect.objectContaining({ setting: '--spool-fsync' }),
    )
  })
})
