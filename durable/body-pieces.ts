// Reads a range of a body stored in pieces, as the segments (and the old schema's messages) keep
// large ones: piece 0 in the row's own column, pieces 1… in a table of pieces. SQLite cuts each
// part out (`substr` on a BLOB counts octets, from 1), so only the range reaches JavaScript.

import { readPieceRange } from './message-body'
import type { Sql } from './row-meter'

/** The two queries: each takes `substr`'s start and count, the body's key, then (rest) the idx. */
export interface PieceQueries {
  first: string
  rest: string
}

/**
 * Octets `[offset, offset + length)` of body `key`, in pieces of `pieceBytes` octets.
 * @throws RangeError naming `what` when a piece is missing or shorter than asked.
 */
export function readBodyPieces(
  sql: Sql,
  queries: PieceQueries,
  key: number,
  range: { pieceBytes: number; offset: number; length: number },
  what: string,
): Uint8Array {
  const readPiece = (idx: number, start: number, count: number) =>
    (idx === 0
      ? sql.exec<{ data: ArrayBuffer | null }>(queries.first, start + 1, count, key)
      : sql.exec<{ data: ArrayBuffer | null }>(queries.rest, start + 1, count, key, idx)
    ).toArray()[0]?.data
  return readPieceRange(readPiece, range.pieceBytes, range.offset, range.length, what)
}
