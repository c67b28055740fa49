// Z85 (ZeroMQ RFC 32): binary as printable text, 4 octets → 5 characters. Used to show CURVE
// public keys the way every ZeroMQ tool prints them. Platform-neutral: no Buffer.

// RFC 32: the 85 characters, value 0 to 84 in order.
const ALPHABET =
  '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'

/**
 * Encodes `data` as Z85.
 * @throws RangeError when `data.length` is not a multiple of 4 (RFC 32: the application pads).
 */
export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0) {
    throw new RangeError(`Z85 needs a multiple of 4 octets, got ${data.length}`)
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let text = ''
  for (let offset = 0; offset < data.length; offset += 4) {
    // RFC 32: four octets as a big-endian u32, printed most significant digit first.
    let value = view.getUint32(offset)
    const digits = new Array<string>(5)
    for (let index = 4; index >= 0; index--) {
      digits[index] = ALPHABET[value % 85] as string
      value = Math.floor(value / 85)
    }
    text += digits.join('')
  }
  return text
}
