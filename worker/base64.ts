// Base64 of binary data in workerd, where there is no Buffer: btoa over pieces of the input.

// A multiple of 3, so the pieces' encodings join without padding in between, and small enough
// to spread into String.fromCharCode without exceeding the call-stack argument limit.
const PIECE = 3 * 8192

/** Standard base64 (RFC 4648 §4, with padding) of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  let text = ''
  for (let offset = 0; offset < bytes.length; offset += PIECE) {
    text += btoa(String.fromCharCode(...bytes.subarray(offset, offset + PIECE)))
  }
  return text
}
