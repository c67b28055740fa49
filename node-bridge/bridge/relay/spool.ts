// The relay's optional spool: an append-only log of segment files that persists each message
// before it counts as received, and the batches, their numbers and their acks, so a restarted
// bridge resends exactly what the Durable Object has not stored, under the same bridgeId and
// batchSeq numbers (the Durable Object drops the ones it stored already).

import {
  closeSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
  writevSync,
} from 'node:fs'
import { join } from 'node:path'
import { newEpoch, type RelayMessage } from '../../../shared/relay-protocol.ts'
import { ConfigError, DEFAULT_SPOOL_SEGMENT_BYTES } from '../bridge-config.ts'
import type { Logger } from '../log.ts'
import { PRIVATE_FILE_MODE, preparePrivateDirectory } from './private-directory.ts'
import { SpoolError, SpoolErrorCode } from './spool-error.ts'
import { SpoolLock } from './spool-lock.ts'
import {
  encodeAckRecord,
  encodeHeaderRecord,
  encodeMessageRecord,
  encodeSealRecord,
  type HeaderRecord,
  type SealRange,
  type SpoolRecord,
  scanSegment,
} from './spool-record.ts'

export { SpoolError, SpoolErrorCode } from './spool-error.ts'

/** Buffered records are written at once past this size, without waiting for the microtask. */
const FLUSH_BYTES = 1024 * 1024
const SEGMENT_PATTERN = /^(\d{16})\.seg$/

export interface SpoolOptions {
  /** The folder of this channel's segments; created if missing. */
  dir: string
  /** The bridge id to use when the spool is new. */
  bridgeId: string
  /**
   * The flag or variable the operator set the bridge id with; when given, a spool written by
   * another bridge id is an error instead of the id to keep.
   */
  bridgeIdSource?: string
  /** A segment is closed and a new one started past this size (default 64 MiB). */
  segmentBytes?: number
  /** fsync after every write: survives power loss, not only a killed process (default false). */
  fsync?: boolean
  logger: Logger
}

/** A sealed, unacknowledged batch read back from the spool. */
export interface RecoveredBatch {
  batchSeq: number
  /** The id of its first message; the others follow one by one. */
  firstId: number
  messages: RelayMessage[]
}

/** What the spool held when it was opened: to be sent first, in this order. */
export interface RecoveredRelayState {
  nextMessageId: number
  nextBatchSeq: number
  batches: RecoveredBatch[]
  /** Messages not yet in a batch; the first has id `openFirstId`. */
  openFirstId: number
  open: RelayMessage[]
}

/** The hooks the RelayClient calls; every record is on disk before a batch is sent. */
export interface RelaySpool {
  readonly bridgeId: string
  /**
   * The relay dedup epoch of this spool's batch numbers: drawn at random (1..2^53-1) when the
   * spool is new and kept across restarts, so the numbers continue under it; 0 for a spool
   * written before epochs existed.
   */
  readonly epoch: number
  readonly recovered: RecoveredRelayState
  /** Persists a message (written by the end of the current microtask turn at the latest). */
  append(id: number, message: RelayMessage): void
  /** Records a sealed batch; a number at or below earlier ones replaces them (1009 split). */
  seal(batchSeq: number, firstId: number, count: number): void
  /** Records that the Durable Object stored every batch up to `batchSeq`. */
  ack(batchSeq: number): void
  /** Writes buffered records now. */
  flush(): void
}

/**
 * The log's meaning, kept in memory and rebuilt from the records on start: the same `apply`
 * runs for a record being written and for one being replayed.
 */
class SpoolState {
  nextMessageId = 1
  nextBatchSeq = 1
  /** Every message below this id is acknowledged. */
  ackedBelow = 1
  /** Sealed, unacknowledged batches in order, over consecutive message ids. */
  seals: SealRange[] = []

  static from(header: HeaderRecord): SpoolState {
    const state = new SpoolState()
    state.nextMessageId = header.nextMessageId
    state.nextBatchSeq = header.nextBatchSeq
    state.ackedBelow = header.ackedBelow
    state.seals = header.seals.map((seal) => ({ ...seal }))
    return state
  }

  /** The first message id no batch holds yet. */
  get sealedBelow(): number {
    const last = this.seals.at(-1)
    return last ? last.firstId + last.count : this.ackedBelow
  }

  snapshot(bridgeId: string, epoch: number, segment: number): Omit<HeaderRecord, 'type'> {
    return {
      bridgeId,
      epoch,
      segment,
      nextMessageId: this.nextMessageId,
      nextBatchSeq: this.nextBatchSeq,
      ackedBelow: this.ackedBelow,
      seals: this.seals.map((seal) => ({ ...seal })),
    }
  }

  /** @throws SpoolError INCONSISTENT for a record that cannot follow the ones before it. */
  apply(record: SpoolRecord): void {
    switch (record.type) {
      case 'message':
        if (record.id !== this.nextMessageId) {
          throw inconsistent(`message ${record.id} where ${this.nextMessageId} was next`)
        }
        this.nextMessageId++
        return
      case 'seal': {
        // Numbers follow on, except that a 1009 split numbers the batches again from the refused
        // one: its new SEAL replaces every batch from that number on, none of them stored.
        const lowest = this.seals[0]?.batchSeq ?? this.nextBatchSeq
        if (record.batchSeq < lowest || record.batchSeq > this.nextBatchSeq) {
          throw inconsistent(
            `batch ${record.batchSeq} sealed where ${lowest}..${this.nextBatchSeq} may be`,
          )
        }
        while ((this.seals.at(-1)?.batchSeq ?? 0) >= record.batchSeq) this.seals.pop()
        if (record.firstId !== this.sealedBelow || record.count < 1) {
          throw inconsistent(
            `batch ${record.batchSeq} starts at message ${record.firstId}; expected ${this.sealedBelow}`,
          )
        }
        if (record.firstId + record.count > this.nextMessageId) {
          throw inconsistent(`batch ${record.batchSeq} holds messages not written yet`)
        }
        this.seals.push({ batchSeq: record.batchSeq, firstId: record.firstId, count: record.count })
        this.nextBatchSeq = record.batchSeq + 1
        return
      }
      case 'ack':
        // Acks come in order: everything up to the acked number is stored.
        while (this.seals.length > 0 && (this.seals[0] as SealRange).batchSeq <= record.batchSeq) {
          const seal = this.seals.shift() as SealRange
          this.ackedBelow = seal.firstId + seal.count
        }
        return
      case 'header':
        if (record.nextMessageId !== this.nextMessageId) {
          throw inconsistent(
            `segment ${record.segment} starts at message ${record.nextMessageId}; expected ${this.nextMessageId}`,
          )
        }
        return
    }
  }
}

function inconsistent(message: string): SpoolError {
  return new SpoolError(SpoolErrorCode.INCONSISTENT, message)
}

/** What the segments an earlier process left say. */
interface Replayed {
  bridgeId: string
  epoch: number
  state: SpoolState
  recovered: RecoveredRelayState
}

interface Segment {
  number: number
  path: string
  /** The id its first message has (or would have). */
  firstMessageId: number
}

function segmentName(number: number): string {
  return `${String(number).padStart(16, '0')}.seg`
}

/**
 * One channel's spool. Open it with `Spool.open()`, which replays what an earlier process left.
 * Not safe for two processes: a lock file naming the holder (see SpoolLock) keeps a second
 * bridge out.
 */
export class Spool implements RelaySpool {
  readonly dir: string
  readonly bridgeId: string
  readonly epoch: number
  readonly recovered: RecoveredRelayState
  readonly #logger: Logger
  readonly #segmentBytes: number
  readonly #fsync: boolean
  readonly #state: SpoolState
  readonly #segments: Segment[] = []
  readonly #lock: SpoolLock
  #fd = -1
  /** Octets written to the active segment. */
  #activeBytes = 0
  #pending: Uint8Array[] = []
  #pendingBytes = 0
  #flushQueued = false
  #closed = false
  #diskBytes = 0

  /**
   * Opens (or creates) the spool in `options.dir` and replays it.
   * @throws ConfigError when `bridgeIdSource` is set and the spool belongs to another bridge id.
   * @throws SpoolError LOCKED when a live process holds it, INCONSISTENT when its records
   * contradict each other.
   */
  static open(options: SpoolOptions): Spool {
    return new Spool(options)
  }

  private constructor(options: SpoolOptions) {
    this.dir = options.dir
    this.#logger = options.logger
    this.#segmentBytes = options.segmentBytes ?? DEFAULT_SPOOL_SEGMENT_BYTES
    this.#fsync = options.fsync ?? false
    preparePrivateDirectory(this.dir, this.#logger)
    this.#lock = SpoolLock.acquire(this.dir)
    let replayed: Replayed | undefined
    try {
      replayed = this.#replay()
    } catch (error) {
      this.#lock.release()
      throw error
    }
    const bridgeId = replayed?.bridgeId ?? options.bridgeId
    if (replayed && options.bridgeIdSource && replayed.bridgeId !== options.bridgeId) {
      this.#lock.release()
      throw new ConfigError(
        options.bridgeIdSource,
        `is "${options.bridgeId}", but the spool in ${this.dir} was written by bridge "${replayed.bridgeId}" ` +
          'and holds its unacknowledged batches; use that id, or move the spool away to start afresh',
      )
    }
    this.bridgeId = bridgeId
    // Epoch 0 (a spool written before epochs) is guessable: leave it as soon as no batch the
    // spool holds was numbered in it. Numbers go on; the channel takes a new session from any.
    const movesOn = replayed?.epoch === 0 && replayed.recovered.batches.length === 0
    this.epoch = replayed && !movesOn ? replayed.epoch : newEpoch()
    if (movesOn) {
      this.#logger.info(
        { dir: this.dir },
        'spool written before epochs: its numbering moves to a random epoch of its own',
      )
    }
    this.#state = replayed?.state ?? new SpoolState()
    this.recovered = replayed?.recovered ?? {
      nextMessageId: 1,
      nextBatchSeq: 1,
      batches: [],
      openFirstId: 1,
      open: [],
    }
    // Never append after what an earlier process wrote: a fresh segment starts every run.
    this.#startSegment((this.#segments.at(-1)?.number ?? 0) + 1)
    this.#deleteAcknowledgedSegments()
    if (replayed) {
      const messages =
        this.recovered.open.length +
        this.recovered.batches.reduce((sum, batch) => sum + batch.messages.length, 0)
      this.#logger.info(
        {
          dir: this.dir,
          bridgeId,
          batches: this.recovered.batches.length,
          messages,
          nextBatchSeq: this.recovered.nextBatchSeq,
        },
        'spool replayed: unacknowledged messages are sent first',
      )
    }
  }

  /** Octets the spool's segments take on disk, written or buffered. */
  get diskBytes(): number {
    return this.#diskBytes + this.#pendingBytes
  }

  /** How many segment files the spool has. */
  get segmentCount(): number {
    return this.#segments.length
  }

  append(id: number, message: RelayMessage): void {
    this.#write({ type: 'message', id, message }, encodeMessageRecord(id, message))
  }

  seal(batchSeq: number, firstId: number, count: number): void {
    const seal = { batchSeq, firstId, count }
    this.#write({ type: 'seal', ...seal }, [encodeSealRecord(seal)])
  }

  ack(batchSeq: number): void {
    this.#write({ type: 'ack', batchSeq }, [encodeAckRecord(batchSeq)])
  }

  flush(): void {
    if (this.#pending.length === 0 || this.#closed) return
    const chunks = this.#pending
    const total = this.#pendingBytes
    this.#pending = []
    this.#pendingBytes = 0
    let written = 0
    while (written < total) {
      // writev may write less than asked; go on from where it stopped.
      const rest = written === 0 ? chunks : remainder(chunks, written)
      written += writevSync(this.#fd, rest)
    }
    if (this.#fsync) fsyncSync(this.#fd)
    this.#activeBytes += total
    this.#diskBytes += total
    // Only now, with the ACK that allows it written, may segments go.
    this.#deleteAcknowledgedSegments()
  }

  /** Writes what is buffered and releases the lock; the segments stay for the next start. */
  close(): void {
    if (this.#closed) return
    this.flush()
    this.#closed = true
    closeSync(this.#fd)
    this.#lock.release()
  }

  #write(record: SpoolRecord, chunks: Uint8Array[]): void {
    if (this.#closed) throw new Error('the spool is closed')
    if (this.#activeBytes + this.#pendingBytes >= this.#segmentBytes) {
      this.flush()
      closeSync(this.#fd)
      this.#startSegment((this.#segments.at(-1)?.number ?? 0) + 1)
    }
    this.#state.apply(record)
    for (const chunk of chunks) {
      this.#pending.push(chunk)
      this.#pendingBytes += chunk.length
    }
    // One TCP read delivers many messages in one synchronous run: their records are written
    // together once it ends, before any timer or I/O callback, so before anything else happens.
    if (this.#pendingBytes >= FLUSH_BYTES) this.flush()
    else if (!this.#flushQueued) {
      this.#flushQueued = true
      queueMicrotask(() => {
        this.#flushQueued = false
        this.flush()
      })
    }
  }

  /** Opens a new active segment whose header is a snapshot of the state so far. */
  #startSegment(number: number): void {
    const path = join(this.dir, segmentName(number))
    const header = encodeHeaderRecord(this.#state.snapshot(this.bridgeId, this.epoch, number))
    this.#fd = openSync(path, 'wx', PRIVATE_FILE_MODE)
    writevSync(this.#fd, [header])
    if (this.#fsync) {
      fsyncSync(this.#fd)
      syncDirectory(this.dir)
    }
    this.#activeBytes = header.length
    this.#diskBytes += header.length
    this.#segments.push({ number, path, firstMessageId: this.#state.nextMessageId })
  }

  /** A segment goes once the next one starts at or below the first unacknowledged message. */
  #deleteAcknowledgedSegments(): void {
    while (this.#segments.length > 1) {
      const [oldest, next] = this.#segments as [Segment, Segment]
      if (next.firstMessageId > this.#state.ackedBelow) return
      const size = statSync(oldest.path, { throwIfNoEntry: false })?.size ?? 0
      unlinkSync(oldest.path)
      this.#diskBytes -= size
      this.#segments.shift()
      this.#logger.debug({ segment: oldest.path }, 'spool segment acknowledged: deleted')
    }
  }

  /** Reads every segment in order; undefined when there are none. */
  #replay(): Replayed | undefined {
    const names = readdirSync(this.dir)
      .filter((name) => SEGMENT_PATTERN.test(name))
      .sort()
    let state: SpoolState | undefined
    let bridgeId: string | undefined
    let epoch = 0
    /** Messages from `baseId` on, as read; acknowledged ones are dropped as acks come. */
    let messages: RelayMessage[] = []
    let baseId = 1
    let stopped = false
    for (const name of names) {
      const path = join(this.dir, name)
      if (stopped) {
        // After a corrupt record nothing later can be trusted to follow on.
        renameSync(path, `${path}.corrupt`)
        this.#logger.error({ segment: path }, 'spool segment after a corrupt one set aside')
        continue
      }
      const bytes = readFileSync(path)
      const scan = scanSegment(bytes)
      const number = Number(SEGMENT_PATTERN.exec(name)?.[1])
      const first = scan.records[0]
      if (first?.type !== 'header') {
        // A crash while starting the segment: nothing of it was written yet.
        if (scan.records.length > 0 || (scan.problem && scan.problem.kind !== 'torn')) {
          throw inconsistent(`${path} does not start with a header record`)
        }
        this.#logger.warn({ segment: path }, 'spool segment without a header (torn): removed')
        unlinkSync(path)
        continue
      }
      if (!state) {
        state = SpoolState.from(first)
        bridgeId = first.bridgeId
        epoch = first.epoch
        baseId = first.nextMessageId
      } else if (first.bridgeId !== bridgeId) {
        throw inconsistent(`${path} belongs to bridge "${first.bridgeId}", not "${bridgeId}"`)
      } else if (first.epoch !== epoch) {
        // The one change allowed: from epoch 0 to a random one, with no batch held over.
        if (epoch !== 0 || first.seals.length > 0) {
          throw inconsistent(`${path} numbers batches in epoch ${first.epoch}, not ${epoch}`)
        }
        epoch = first.epoch
      }
      this.#segments.push({ number, path, firstMessageId: first.nextMessageId })
      for (const record of scan.records) {
        state.apply(record)
        if (record.type === 'message') messages.push(record.message)
        else if (record.type === 'ack' && state.ackedBelow - baseId > messages.length / 2) {
          messages = messages.slice(state.ackedBelow - baseId)
          baseId = state.ackedBelow
        }
      }
      this.#diskBytes += scan.validBytes
      if (scan.problem) {
        const { kind, offset, reason } = scan.problem
        const details = { segment: path, offset, reason, discarded: bytes.length - offset }
        if (kind === 'torn') {
          this.#logger.warn(details, 'spool ends in a torn record (a crash mid-write): ignored')
        } else {
          this.#logger.error(details, 'spool record corrupt: replay stops here')
          writeFileSync(`${path}.corrupt`, bytes.subarray(offset), { mode: PRIVATE_FILE_MODE })
          stopped = true
        }
        // The good part stays, so the next start reads this segment as whole.
        truncateSync(path, offset)
      }
    }
    if (!state || bridgeId === undefined) return undefined

    const take = (firstId: number, count: number): RelayMessage[] => {
      const from = firstId - baseId
      if (from < 0 || from + count > messages.length) {
        throw inconsistent(`messages ${firstId}..${firstId + count - 1} are not in the spool`)
      }
      return messages.slice(from, from + count)
    }
    const batches = state.seals.map((seal) => ({
      batchSeq: seal.batchSeq,
      firstId: seal.firstId,
      messages: take(seal.firstId, seal.count),
    }))
    const openFirstId = state.sealedBelow
    return {
      bridgeId,
      epoch,
      state,
      recovered: {
        nextMessageId: state.nextMessageId,
        nextBatchSeq: state.nextBatchSeq,
        batches,
        openFirstId,
        open: take(openFirstId, state.nextMessageId - openFirstId),
      },
    }
  }
}

/** The chunks past the first `skip` octets. */
function remainder(chunks: Uint8Array[], skip: number): Uint8Array[] {
  const out: Uint8Array[] = []
  let left = skip
  for (const chunk of chunks) {
    if (left >= chunk.length) {
      left -= chunk.length
      continue
    }
    out.push(left > 0 ? chunk.subarray(left) : chunk)
    left = 0
  }
  return out
}

/** Makes a new or removed file name durable (power loss); a no-op where directories cannot be opened. */
function syncDirectory(dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
