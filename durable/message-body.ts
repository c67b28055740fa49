// How one stored message's frames become bytes and back: each frame as a u32 big-endian length
// and its octets, the same framing the relay batch uses. Pure functions over Uint8Array.

const LENGTH_SIZE = 4

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
