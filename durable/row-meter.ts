// Counts the SQLite rows a channel's statements read and write: the two figures Cloudflare bills
// a SQLite-backed Durable Object for (every cursor reports them as `rowsRead` and `rowsWritten`).
// Kept in memory; the channel persists the totals with its other counters (./channel-state.ts).
// https://developers.cloudflare.com/durable-objects/platform/pricing/#sqlite-storage-backend

/** Cursors whose counts may still grow (being iterated) are summed late; older ones are folded. */
const OPEN_CURSORS = 16

/** What the channel's modules need of `SqlStorage`: statements. */
export type Sql = Pick<SqlStorage, 'exec'>

/** Rows read and written. */
export interface RowCounts {
  rowsRead: number
  rowsWritten: number
}

/**
 * A `SqlStorage` whose every cursor is counted. Every module of the channel runs its SQL through
 * {@link RowMeter.sql}, so no statement escapes the count.
 */
export class RowMeter {
  readonly sql: Sql
  #read = 0
  #written = 0
  /** Cursors of the latest statements: one being iterated counts the rows it has stepped so far. */
  readonly #open: SqlStorageCursor<Record<string, SqlStorageValue>>[] = []

  constructor(sql: SqlStorage) {
    const exec = sql.exec.bind(sql)
    this.sql = {
      exec: <T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]) => {
        const cursor = exec<T>(query, ...bindings)
        this.#track(cursor as unknown as SqlStorageCursor<Record<string, SqlStorageValue>>)
        return cursor
      },
    }
  }

  #track(cursor: SqlStorageCursor<Record<string, SqlStorageValue>>): void {
    this.#open.push(cursor)
    if (this.#open.length <= OPEN_CURSORS) return
    const done = this.#open.shift() as SqlStorageCursor<Record<string, SqlStorageValue>>
    this.#read += done.rowsRead
    this.#written += done.rowsWritten
  }

  /** Rows read and written since the meter was made (or since the base it was given). */
  totals(): RowCounts {
    let rowsRead = this.#read
    let rowsWritten = this.#written
    for (const cursor of this.#open) {
      rowsRead += cursor.rowsRead
      rowsWritten += cursor.rowsWritten
    }
    return { rowsRead, rowsWritten }
  }

  /** Starts the counts from persisted totals (when the object wakes up). */
  restore(base: RowCounts): void {
    this.#read += base.rowsRead
    this.#written += base.rowsWritten
  }
}
