// Messages per second into the relay spool (append + seal + ack, segments rotated and deleted),
// for 100 B and 10 KiB messages, with and without fsync, as one TCP read delivers them: `turn`
// messages per event-loop turn, whose records are written together.
// Run: npx tsx bench/spool.ts [seconds per case]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Spool } from '../node-bridge/bridge/relay/spool'
import type { RelayMessage } from '../shared/relay-protocol'

const seconds = Number(process.argv[2] ?? 2)
const BATCH = 1000

async function run(size: number, fsync: boolean, turn: number) {
  const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-spool-bench-'))
  const spool = Spool.open({
    dir,
    bridgeId: 'bench',
    fsync,
    segmentBytes: 64 * 1024 * 1024,
    logger: pino({ level: 'silent' }),
  })
  const message: RelayMessage = {
    receivedAt: Date.now(),
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:40000',
    frames: [new Uint8Array(size).fill(0x61)],
  }
  let id = 1
  let sealedBelow = 1
  let seq = 1
  const started = performance.now()
  const deadline = started + seconds * 1000
  while (performance.now() < deadline) {
    for (let index = 0; index < turn; index++) {
      spool.append(id++, message)
      if (id - sealedBelow === BATCH) {
        spool.seal(seq, sealedBelow, BATCH)
        // The Durable Object keeps up: each batch is acknowledged a few batches later.
        if (seq > 4) spool.ack(seq - 4)
        seq++
        sealedBelow = id
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve)) // the turn ends: records written
  }
  const elapsed = (performance.now() - started) / 1000
  spool.close()
  rmSync(dir, { recursive: true, force: true })
  const messages = id - 1
  return {
    size: size >= 1024 ? `${size / 1024} KiB` : `${size} B`,
    fsync,
    'messages/turn': turn,
    'messages/s': Math.round(messages / elapsed),
    'MB/s': Math.round((messages * size) / elapsed / 1e6),
  }
}

const rows = []
for (const fsync of [false, true]) {
  for (const size of [100, 10 * 1024]) {
    for (const turn of [1, 100]) rows.push(await run(size, fsync, turn))
  }
}
console.log(`node ${process.version}, ${seconds} s per case, dir ${tmpdir()}`)
console.table(rows)
