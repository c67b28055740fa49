// How one stored message's frames become bytes and back: each frame as a u32 big-endian length
// and its octets, the same framing the relay batch uses; and how a body's frame sizes are read
// from its length prefixes alone, a window at a time. Pure functions over Uint8Array.

const LENGTH_SIZE = 4

/** The length of the body of `frameCount` frames of `frameOctets` octets in all. */
export function bodyLength(frameOctets: number, frameCount: number): number {
  return frameOctets + LENGTH_SIZE * frameCount
}

/** Encodes frames into one body: per frame a u32 big-endian length, then its octets. */
export function encodeBody(frames: readonly Uint8Array[]): Uint8Array {
  let size = 0
  for (const frame of frames) size += LENGTH_SIZE + frame.length
  const body = new Uint8Array(size)
  const view = new DataView(body.buffer)
  let offset = 0
  for (const frame of frames) {
    view.setUint32(offset, frame.length)
    body.set(frame, offset + LENGTH_SIZE)
    offset += LENGTH_SIZE + frame.length
  }
  return body
}

/**
 * Decodes a body into exactly `frameCount` frames. The frames are views into `body`.
 * @throws RangeError when the body does not hold exactly that many frames (corrupt storage).
 */
export function decodeBody(body: Uint8Array, frameCount: number): Uint8Array[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const frames: Uint8Array[] = []
  let offset = 0
  for (let index = 0; index < frameCount; index++) {
    if (offset + LENGTH_SIZE > body.length) {
      throw new RangeError(`stored body ends before frame ${index} of ${frameCount}`)
    }
    const length = view.getUint32(offset)
    offset += LENGTH_SIZE
    if (offset + length > body.length) {
      throw new RangeError(`stored frame ${index} runs past the end of its body`)
    }
    frames.push(body.subarray(offset, offset + length))
    offset += length
  }
  if (offset !== body.length) {
    throw new RangeError(`stored body has ${body.length - offset} octets after its frames`)
  }
  return frames
}

/** Cuts `bytes` into views of at most `size` octets each (at least one, possibly empty). */
export function splitChunks(bytes: Uint8Array, size: number): Uint8Array[] {
  if (bytes.length <= size) return [bytes]
  const chunks: Uint8Array[] = []
  for (let offset = 0; offset < bytes.length; offset += size) {
    chunks.push(bytes.subarray(offset, offset + size))
  }
  return chunks
}

/** Joins chunks back into one array (no copy when there is only one). */
export function joinChunks(chunks: readonly Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array
  let size = 0
  for (const chunk of chunks) size += chunk.length
  const joined = new Uint8Array(size)
  let offset = 0
  for (const chunk of chunks) {
    joined.set(chunk, offset)
    offset += chunk.length
  }
  return joined
}

/**
 * Octets {@link frameSizesOf} reads at a time: a window holds the length prefixes of all the
 * frames that start in it, so a body is read in at most about one window per frame or per
 * window of body, whichever is fewer, and never whole at once.
 */
export const LENGTH_WINDOW_BYTES = 64 * 1024

/**
 * The size of each frame of a body, read from its length prefixes only: the frames' octets
 * between them are skipped, not read.
 * @param readAt returns exactly the body's octets `[offset, offset + length)`.
 * @param bodyLength the body's length: the frames' octets plus 4 per frame.
 * @param window octets asked of `readAt` at a time (default {@link LENGTH_WINDOW_BYTES}).
 * @throws RangeError when the prefixes do not describe exactly `frameCount` frames filling
 * `bodyLength` octets (corrupt storage), or `readAt`'s own error.
 */
export function frameSizesOf(
  readAt: (offset: number, length: number) => Uint8Array,
  bodyLength: number,
  frameCount: number,
  window = LENGTH_WINDOW_BYTES,
): number[] {
  const sizes: number[] = []
  let offset = 0
  // The octets read last, which start at body offset `start`.
  let start = 0
  let view: DataView = new DataView(new ArrayBuffer(0))
  for (let index = 0; index < frameCount; index++) {
    if (offset + LENGTH_SIZE > bodyLength) {
      throw new RangeError(`stored body ends before frame ${index} of ${frameCount}`)
    }
    if (offset + LENGTH_SIZE > start + view.byteLength) {
      const bytes = readAt(offset, Math.min(Math.max(window, LENGTH_SIZE), bodyLength - offset))
      view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      start = offset
    }
    const length = view.getUint32(offset - start)
    offset += LENGTH_SIZE + length
    if (offset > bodyLength) {
      throw new RangeError(`stored frame ${index} runs past the end of its body`)
    }
    sizes.push(length)
  }
  if (offset !== bodyLength) {
    throw new RangeError(`stored body has ${bodyLength - offset} octets after its frames`)
  }
  return sizes
}

/**
 * Where the octets of frame `index` start in a body with these frame sizes: past the frames
 * before it and their length prefixes, and its own prefix.
 */
export function frameOffset(frameSizes: readonly number[], index: number): number {
  let offset = LENGTH_SIZE
  for (let before = 0; before < index; before++) {
    offset += (frameSizes[before] as number) + LENGTH_SIZE
  }
  return offset
}

/**
 * Octets `[offset, offset + length)` of a body stored in pieces of `pieceBytes` octets, each part
 * cut out of its piece by `readPiece(idx, start, count)` (SQLite's `substr` on a BLOB counts
 * octets, so only the range reaches JavaScript).
 * @throws RangeError naming `what` when a piece is missing or shorter than asked.
 */
export function readPieceRange(
  readPiece: (idx: number, start: number, count: number) => ArrayBuffer | null | undefined,
  pieceBytes: number,
  offset: number,
  length: number,
  what: string,
): Uint8Array {
  const parts: Uint8Array[] = []
  for (let done = 0; done < length; ) {
    const at = offset + done
    const idx = Math.floor(at / pieceBytes)
    const start = at - idx * pieceBytes
    const count = Math.min(length - done, pieceBytes - start)
    const data = readPiece(idx, start, count)
    if (!data || data.byteLength !== count) {
      throw new RangeError(`${what} has no octets ${at} to ${at + count}`)
    }
    parts.push(new Uint8Array(data))
    done += count
  }
  if (parts.length === 0) return new Uint8Array(0)
  return parts.length === 1 ? (parts[0] as Uint8Array) : joinChunks(parts)
}
