// CRC-32 (IEEE 802.3, the one zlib and gzip use) for the spool's record checksums: Node's native
// zlib.crc32 where it exists (Node 20.15+, 22.2+), else a table-driven fallback.
import * as zlib from 'node:zlib'

const TABLE = (() => {
  const table = new Uint32Array(256)
  for (let byte = 0; byte < 256; byte++) {
    let value = byte
    for (let bit = 0; bit < 8; bit++) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1
    table[byte] = value >>> 0
  }
  return table
})()

/** The table-driven CRC-32, exported for tests; `value` continues an earlier checksum. */
export function crc32Table(data: Uint8Array, value = 0): number {
  let crc = ~value >>> 0
  for (let index = 0; index < data.length; index++) {
    crc = (TABLE[(crc ^ (data[index] as number)) & 0xff] as number) ^ (crc >>> 8)
  }
  return ~crc >>> 0
}

const native: ((data: Uint8Array, value?: number) => number) | undefined =
  typeof zlib.crc32 === 'function' ? zlib.crc32 : undefined

/** CRC-32 of `data`; pass an earlier result as `value` to checksum several pieces as one. */
export const crc32: (data: Uint8Array, value?: number) => number = native ?? crc32Table
