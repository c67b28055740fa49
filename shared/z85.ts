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

/** RFC 32: the largest value five characters may stand for is 2^32 - 1. */
const U32_MAX = 0xffffffff

// Character code → digit value (0..84), or -1 for characters outside the alphabet.
const DIGITS = (() => {
  const table = new Int8Array(128).fill(-1)
  for (let index = 0; index < ALPHABET.length; index++) table[ALPHABET.charCodeAt(index)] = index
  return table
})()

/**
 * Decodes Z85 text into octets.
 * @throws RangeError when the length is not a multiple of 5 (RFC 32), a character is outside the
 *   Z85 alphabet, or a group of five stands for more than 2^32 - 1. The message never repeats
 *   the text (it may be a secret key); it gives the offending position.
 */
export function z85Decode(text: string): Uint8Array {
  if (text.length % 5 !== 0) {
    throw new RangeError(`Z85 needs a multiple of 5 characters, got ${text.length}`)
  }
  const out = new Uint8Array((text.length / 5) * 4)
  const view = new DataView(out.buffer)
  for (let offset = 0; offset < text.length; offset += 5) {
    // RFC 32: five digits, most significant first, accumulated by multiplication by 85.
    let value = 0
    for (let index = offset; index < offset + 5; index++) {
      const code = text.charCodeAt(index)
      const digit = code < 128 ? (DIGITS[code] ?? -1) : -1
      if (digit < 0) throw new RangeError(`invalid Z85 character at position ${index}`)
      value = value * 85 + digit
    }
    if (value > U32_MAX) {
      throw new RangeError(`Z85 group at position ${offset} exceeds 32 bits`)
    }
    view.setUint32((offset / 5) * 4, value)
  }
  return out
}
