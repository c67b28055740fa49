// Base64 of binary data in workerd, where there is no Buffer: btoa over pieces of the input.

// A multiple of 3, so the pieces' encodings join without padding in between, and small enough
// to spread into String.fromCharCode without exceeding the call-stack argument limit.
const PIECE = 3 * 8192

/** `Uint8Array.prototype.toBase64` (TC39 "Uint8Array to/from base64"), where the runtime has it. */
type WithBase64 = Uint8Array & { toBase64?: () => string }

const native = typeof (Uint8Array.prototype as WithBase64).toBase64 === 'function'

/** Standard base64 (RFC 4648 §4, with padding) of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  // About 20 times faster than btoa over a string of char codes: reads are this per frame.
  if (native) return (bytes as WithBase64 & { toBase64: () => string }).toBase64()
  let text = ''
  for (let offset = 0; offset < bytes.length; offset += PIECE) {
    text += btoa(String.fromCharCode(...bytes.subarray(offset, offset + PIECE)))
  }
  return text
}
