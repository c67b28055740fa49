// CURVE key pairs: public keys from secret keys and fresh pairs (NaCl). How keys are written
// and read, and the low-order point check, are the shared rule (../../../shared/curve-key-text.ts),
// re-exported here for the bridge's modules.
import nacl from 'tweetnacl'
import { CURVE_KEY_SIZE } from '../../../shared/curve-key-text.ts'

export {
  CURVE_KEY_SIZE,
  formatKey,
  isLowOrderPoint,
  KeyFormatError,
  parseCurveKey,
} from '../../../shared/curve-key-text.ts'

/**
 * The X25519 public key of a secret key (NaCl `crypto_scalarmult_base`).
 * @throws {RangeError} if the secret key is not 32 octets
 */
export function derivePublicKey(secretKey: Uint8Array): Uint8Array {
  if (secretKey.length !== CURVE_KEY_SIZE) {
    throw new RangeError(
      `a CURVE secret key must be ${CURVE_KEY_SIZE} octets, got ${secretKey.length}`,
    )
  }
  return nacl.scalarMult.base(secretKey)
}

/** A fresh long-term key pair (NaCl `crypto_box_keypair`, as `zmq_curve_keypair`). */
export function generateKeyPair(): { publicKey: Uint8Array; secretKey: Uint8Array } {
  const { publicKey, secretKey } = nacl.box.keyPair()
  return { publicKey, secretKey }
}
