// The channel's SQLite schema: the one place that defines it, as numbered migrations applied in
// order, each in its own transaction. Durable Objects refuse `PRAGMA user_version`, so the
// applied versions live in a table of their own.

/** One schema change. Versions start at 1 and increase by 1; a released one never changes. */
export interface Migration {
  readonly version: number
  readonly description: string
  readonly statements: readonly string[]
}

/** Every migration, oldest first. Append; never edit one that has shipped. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'messages, their overflow chunks, and the last batch stored per bridge',
    statements: [
      // One row per ZeroMQ message. `body` holds the frames (u32 BE length + octets each), at
      // most the first BODY_CHUNK_SIZE octets of it; the rest is in message_chunks. `size` is
      // the frames' total octets (without the length prefixes). AUTOINCREMENT: a seq is never
      // reused, even after a delete, so a reader's `after` cursor stays valid.
      `CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        mechanism TEXT NOT NULL,
        peer_address TEXT NOT NULL,
        public_key BLOB,
        frame_count INTEGER NOT NULL,
        size INTEGER NOT NULL,
        body BLOB NOT NULL
      )`,
      // The rest of a body over BODY_CHUNK_SIZE: one SQLite value holds about 2 MB at most.
      `CREATE TABLE message_chunks (
        seq INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (seq, idx)
      )`,
      // Relay deduplication: the highest batchSeq stored per bridge, written in the same
      // transaction as the batch's messages.
      `CREATE TABLE bridges (
        bridge_id TEXT PRIMARY KEY,
        last_batch_seq INTEGER NOT NULL
      )`,
    ],
  },
  {
    version: 2,
    description: 'leased consumption (queue, dead letters) and running counters',
    statements: [
      // The leased-consumer view of the log: one row per message not yet acked. Available when
      // visible_at <= now; leased while lease_id is set and visible_at (the lease's expiry) is
      // in the future; an expired lease makes the message available again. `attempts` counts
      // deliveries. A message leaves on ack, or to dead_letters after its last attempt.
      `CREATE TABLE queue (
        seq INTEGER PRIMARY KEY,
        visible_at INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_id TEXT
      )`,
      'CREATE UNIQUE INDEX queue_by_lease ON queue (lease_id) WHERE lease_id IS NOT NULL',
      'CREATE INDEX queue_lease_expiry ON queue (visible_at) WHERE lease_id IS NOT NULL',
      // Messages whose every attempt failed; the message itself stays in `messages`.
      `CREATE TABLE dead_letters (
        seq INTEGER PRIMARY KEY,
        attempts INTEGER NOT NULL,
        dead_at INTEGER NOT NULL,
        reason TEXT NOT NULL
      )`,
      // Running totals (the log's size, and what happened to messages), so stats and
      // retention never scan the messages table.
      `CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      )`,
      // Messages stored before this migration are not consumed yet: they join the queue.
      'INSERT INTO queue (seq) SELECT seq FROM messages',
      "INSERT INTO counters (name, value) SELECT 'log_messages', COUNT(*) FROM messages",
      "INSERT INTO counters (name, value) SELECT 'log_bytes', COALESCE(SUM(size), 0) FROM messages",
    ],
  },
  {
    version: 3,
    description: 'the time each message was stored, for retention by age',
    statements: [
      // Milliseconds since the epoch when the Durable Object stored the message: retention by
      // age uses it, not the bridge's receive time (another clock, maybe a backlog). Rows from
      // before take their receive time.
      'ALTER TABLE messages ADD COLUMN stored_at INTEGER NOT NULL DEFAULT 0',
      'UPDATE messages SET stored_at = received_at',
    ],
  },
  {
    version: 4,
    description: 'queue rows with a visibility time, so stats do not scan the whole queue',
    statements: [
      // Leased and delayed rows (visible_at > 0) are few beside the messages never leased
      // (visible_at = 0): in-flight and delayed counts and the next visibility time become
      // range reads of this index instead of scans of a queue that may hold millions.
      'CREATE INDEX queue_by_visible_at ON queue (visible_at) WHERE visible_at > 0',
    ],
  },
  {
    version: 5,
    description: 'queue and dead-letter sizes as running counters',
    statements: [
      // Counted once here; from now on kept in the transactions that insert and delete rows.
      // (`WHERE true`: SQLite would read ON CONFLICT after a bare FROM as a join constraint.)
      `INSERT INTO counters (name, value) SELECT 'queue_messages', COUNT(*) FROM queue WHERE true
       ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
      `INSERT INTO counters (name, value) SELECT 'dead_letter_messages', COUNT(*) FROM dead_letters WHERE true
       ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
    ],
  },
  {
    version: 6,
    description: 'batch deduplication per bridge session (bridge id and epoch)',
    statements: [
      // Relay protocol v2 numbers batches per session: a bridge id and an epoch drawn at each
      // start without a spool, so a restart never reuses the numbers of the run before.
      // `updated_at`: when the session last stored a batch (ms), so idle sessions can go.
      `CREATE TABLE bridge_sessions (
        bridge_id TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        last_batch_seq INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (bridge_id, epoch)
      ) WITHOUT ROWID`,
      // Version 1 numbered per bridge id alone: that numbering is epoch 0, which spools written
      // before version 2 keep, so their unacknowledged batches are still recognised.
      `INSERT INTO bridge_sessions (bridge_id, epoch, last_batch_seq, updated_at)
       SELECT bridge_id, 0, last_batch_seq,
              CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
       FROM bridges`,
      'DROP TABLE bridges',
    ],
  },
  {
    version: 7,
    description:
      'segments: a row per stored batch, not per message; consumer groups in one row each',
    statements: [
      // A run of consecutive messages (a relay batch, or a part of one) in one value, encoded by
      // ./segment-codec.ts: Cloudflare bills per row, so a row per message made a message cost
      // more than the row it is in. `first_seq` is the rowid: no index to write. `count` and
      // `bytes`: its messages and their frame octets; `log_messages` and `log_bytes`: the same
      // for the log up to and including it, so the log's size is two rows, whatever its length
      // (seqs alone would not do: rows of versions 1 to 6 may have gaps in them);
      // `length`: the encoded octets, of which
      // `data` holds at most SEGMENT_PIECE_BYTES, the rest in segment_pieces. The batch's session
      // and number rebuild the deduplication state that is written to bridge_sessions lazily;
      // `rows_read` and `rows_written`, the channel's billed rows so far, what its row meter
      // would otherwise lose when the object is evicted between two writes of its state.
      `CREATE TABLE segments (
        first_seq INTEGER PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        stored_at INTEGER NOT NULL,
        count INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        log_messages INTEGER NOT NULL,
        log_bytes INTEGER NOT NULL,
        length INTEGER NOT NULL,
        bridge_id TEXT,
        epoch INTEGER,
        batch_seq INTEGER,
        rows_read INTEGER,
        rows_written INTEGER,
        data BLOB NOT NULL
      )`,
      `CREATE TABLE segment_pieces (
        first_seq INTEGER NOT NULL,
        idx INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (first_seq, idx)
      ) WITHOUT ROWID`,
      // The channel's running totals and where they were last written (./channel-state.ts):
      // one row, rewritten at most once a minute, not at each batch.
      `CREATE TABLE channel_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        data TEXT NOT NULL
      )`,
      // A consumer group's whole state (./group-state.ts), rewritten once per pull, ack or extend.
      // (A rowid table: its state may be large, and an update leaves the name's index alone.)
      `CREATE TABLE consumer_groups (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL
      )`,
      // Messages whose every attempt in a group failed: a row each, the rare path.
      `CREATE TABLE group_dead_letters (
        group_name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        dead_at INTEGER NOT NULL,
        reason TEXT NOT NULL,
        PRIMARY KEY (group_name, seq)
      ) WITHOUT ROWID`,
      // The per-message tables of versions 1 to 6 (messages, message_chunks, queue,
      // dead_letters, counters) stay until ./legacy-log.ts has moved their rows, a slice per
      // alarm; it drops them.
    ],
  },
  {
    version: 8,
    description: 'idempotency keys of the messages stored lately',
    statements: [
      // ./idempotency-window.ts: one row per batch that stored messages with idempotency keys
      // (their seqs, senders and keys as JSON), deleted once past the window.
      `CREATE TABLE idempotency_keys (
        first_seq INTEGER PRIMARY KEY,
        stored_at INTEGER NOT NULL,
        keys TEXT NOT NULL
      )`,
    ],
  },
]

/** The version the code expects: the last migration's. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)?.version ?? 0

/**
 * Brings the object's database up to {@link SCHEMA_VERSION}. Run it under
 * `blockConcurrencyWhile` in the constructor, before any request sees the storage.
 * @param upTo the last version to apply (tests build the schema an older object had).
 * @returns the versions applied now (empty when the schema was current).
 * @throws the SQLite error of a failing statement; that migration is rolled back whole.
 */
export function migrate(storage: DurableObjectStorage, upTo = SCHEMA_VERSION): number[] {
  const { sql } = storage
  sql.exec(
    `CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      applied_at INTEGER NOT NULL
    )`,
  )
  const current =
    sql
      .exec<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations')
      .one().version ?? 0
  const applied: number[] = []
  for (const migration of MIGRATIONS) {
    if (migration.version <= current || migration.version > upTo) continue
    storage.transactionSync(() => {
      for (const statement of migration.statements) sql.exec(statement)
      sql.exec(
        'INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)',
        migration.version,
        Date.now(),
      )
    })
    applied.push(migration.version)
  }
  return applied
}
