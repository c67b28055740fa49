// ZMTP connection metadata (RFC 23 §The NULL Security Mechanism): name/value properties.
import { ZmtpError, ZmtpErrorCode } from '../errors.ts'

/** RFC 23: a value is 0 to 2^31-1 octets. */
export const METADATA_VALUE_MAX = 0x7fffffff
/** RFC 23: a name is 1 to 255 characters. */
export const METADATA_NAME_MAX = 255
/**
 * Largest metadata value we accept, in octets. RFC 23 allows 2^31-1, but real peers send
 * Socket-Type, Identity (at most 255 octets, RFC 23), Resource (RFC 37) and a few short X-
 * properties; a larger value is a peer trying to make us hold memory before it is authenticated.
 */
export const METADATA_VALUE_LIMIT = 1024
/** Largest metadata block (all properties, encoded) we accept, in octets. */
export const METADATA_TOTAL_LIMIT = 4096

/** Caps applied by {@link decodeMetadata}; both default to the limits above. */
export interface MetadataLimits {
  maxValueSize?: number
  maxTotalSize?: number
}

const textEncoder = new TextEncoder()

// RFC 23: name-char = ALPHA | DIGIT | "-" | "_" | "." | "+"
function isNameChar(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x2e ||
    c === 0x2b
  )
}

function invalid(message: string): ZmtpError {
  return new ZmtpError(ZmtpErrorCode.INVALID_METADATA, message)
}

/**
 * RFC 23 metadata: name-length octet (1..255) + name (ALPHA DIGIT - _ . +) + 4-octet BE value
 * length + value. Strict: trailing bytes or lengths past the end are errors (as libzmq's
 * `parse_metadata`). Values are views of `data`. Returned map keys are lower-cased (names are
 * case-insensitive), insertion order kept.
 * @param limits caps on one value and on the whole block (default {@link METADATA_VALUE_LIMIT},
 *   {@link METADATA_TOTAL_LIMIT})
 * @throws {ZmtpError} INVALID_METADATA on any malformed property, a duplicate name, or a value
 *   or block over its cap
 */
export function decodeMetadata(
  data: Uint8Array,
  limits: MetadataLimits = {},
): Map<string, Uint8Array> {
  const maxValueSize = limits.maxValueSize ?? METADATA_VALUE_LIMIT
  const maxTotalSize = limits.maxTotalSize ?? METADATA_TOTAL_LIMIT
  if (data.length > maxTotalSize) {
    throw invalid(`metadata of ${data.length} octets exceeds the limit of ${maxTotalSize}`)
  }
  const properties = new Map<string, Uint8Array>()
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const end = data.length
  let pos = 0
  while (pos < end) {
    const nameLength = data[pos++] ?? 0
    // RFC 23: the name SHALL be 1 to 255 characters; zero-sized names are not valid.
    if (nameLength === 0) throw invalid(`zero-length property name at offset ${pos - 1}`)
    if (pos + nameLength > end) throw invalid('property name runs past the end of the metadata')
    let name = ''
    for (let i = pos; i < pos + nameLength; i++) {
      const c = data[i] ?? 0
      if (!isNameChar(c)) {
        throw invalid(`invalid octet 0x${c.toString(16).padStart(2, '0')} in a property name`)
      }
      // RFC 23: the case of names SHALL NOT be significant.
      name += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c + 0x20 : c)
    }
    pos += nameLength
    if (pos + 4 > end) throw invalid(`property ${name} has no complete value length`)
    const valueLength = view.getUint32(pos)
    pos += 4
    // RFC 23: the value SHALL be 0 to 2^31-1 octets.
    if (valueLength > METADATA_VALUE_MAX) throw invalid(`property ${name} value length too large`)
    if (valueLength > maxValueSize) {
      throw invalid(`property ${name} value of ${valueLength} octets exceeds ${maxValueSize}`)
    }
    if (pos + valueLength > end) throw invalid(`property ${name} value runs past the end`)
    if (properties.has(name)) throw invalid(`duplicate property ${name}`)
    properties.set(name, data.subarray(pos, pos + valueLength))
    pos += valueLength
  }
  return properties
}

const textDecoder = new TextDecoder()

/**
 * The Socket-Type property as text ('' when absent): all a connection keeps of the peer's
 * metadata once its handshake is done. Identity is ignored, as RFC 23 says it shall be for
 * every socket type but REQ, DEALER and ROUTER; the rest is not used after the handshake.
 */
export function socketTypeOf(metadata: ReadonlyMap<string, Uint8Array>): string {
  const value = metadata.get('socket-type')
  return value ? textDecoder.decode(value) : ''
}

/**
 * Encodes properties in order, names as given (string values as UTF-8).
 * @throws {RangeError} on a name that is empty, longer than 255 or has characters outside
 *   `ALPHA DIGIT - _ . +`, a name repeated (ignoring case), or a value longer than 2^31-1 octets
 */
export function encodeMetadata(
  properties: ReadonlyArray<readonly [string, Uint8Array | string]>,
): Uint8Array {
  const values: Uint8Array[] = []
  const seen = new Set<string>()
  let size = 0
  for (const [name, value] of properties) {
    if (name.length === 0 || name.length > METADATA_NAME_MAX) {
      throw new RangeError(`property name must be 1..${METADATA_NAME_MAX} characters`)
    }
    for (let i = 0; i < name.length; i++) {
      if (!isNameChar(name.charCodeAt(i))) {
        throw new RangeError(`invalid property name ${JSON.stringify(name)}`)
      }
    }
    // decodeMetadata rejects duplicates (names are case-insensitive), so never send them.
    const key = name.toLowerCase()
    if (seen.has(key)) throw new RangeError(`duplicate property name ${JSON.stringify(name)}`)
    seen.add(key)
    const bytes = typeof value === 'string' ? textEncoder.encode(value) : value
    if (bytes.length > METADATA_VALUE_MAX) throw new RangeError(`property ${name} value too large`)
    values.push(bytes)
    size += 1 + name.length + 4 + bytes.length
  }
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let pos = 0
  for (let index = 0; index < properties.length; index++) {
    const name = properties[index]?.[0] ?? ''
    const value = values[index] ?? new Uint8Array(0)
    out[pos++] = name.length
    for (let i = 0; i < name.length; i++) out[pos++] = name.charCodeAt(i)
    view.setUint32(pos, value.length)
    pos += 4
    out.set(value, pos)
    pos += value.length
  }
  return out
}

/**
 * What our READY (or INITIATE) says of us: the Socket-Type, and the Identity a ROUTER peer
 * addresses us by when we have one (RFC 23 §Connection Metadata; libzmq sends it when set).
 */
export function readyProperties(
  socketType: string,
  identity?: Uint8Array,
): Array<[string, Uint8Array | string]> {
  return identity && identity.length > 0
    ? [
        ['Socket-Type', socketType],
        ['Identity', identity],
      ]
    : [['Socket-Type', socketType]]
}
