// The CURVE primitives (node:crypto X25519 + tweetnacl boxes, and tweetnacl alone) against
// tweetnacl's own crypto_box, and the cookie keyring's rotation.
import fc from 'fast-check'
import nacl from 'tweetnacl'
import { describe, expect, it } from 'vitest'
import { CookieKeyring } from '../../node-bridge/zmtp/mechanisms/curve-cookie'
import { createCurveCrypto } from '../../node-bridge/zmtp/mechanisms/curve-crypto'
import { isLowOrderPoint } from '../../node-bridge/zmtp/mechanisms/curve-keys'

const hex = (value: string) => Uint8Array.from(Buffer.from(value, 'hex'))
const P = 2n ** 255n - 19n
function littleEndian(value: bigint): Uint8Array {
  const out = new Uint8Array(32)
  let rest = value
  for (let index = 0; index < 32; index++) {
    out[index] = Number(rest & 0xffn)
    rest >>= 8n
  }
  return out
}

// u-coordinates of low-order points (cr.yp.to/ecdh.html) and their non-canonical forms.
const ORDER_8A = 325606250916557431795983626356110631294008115727848805560023387167927233504n
const ORDER_8B = 39382357235489614581723060781553021112529911719440698176882885853963445705823n
const BIT_255 = 2n ** 255n
const LOW_ORDER = [0n, 1n, ORDER_8A, ORDER_8B, P - 1n, P, P + 1n].flatMap((value) => [
  value,
  value | BIT_255, // X25519 ignores bit 255
])

const backends = [
  ['sodium', createCurveCrypto({ backend: 'sodium' })],
  ['hybrid', createCurveCrypto({ backend: 'hybrid' })],
  ['tweetnacl', createCurveCrypto({ backend: 'tweetnacl' })],
] as const

describe('createCurveCrypto', () => {
  it('uses libsodium by default on linux-x64 (sodium-native ships its binary in the package)', () => {
    expect(createCurveCrypto().backend).toBe('sodium')
    expect(createCurveCrypto({ backend: 'sodium' }).backend).toBe('sodium')
    expect(createCurveCrypto({ backend: 'hybrid' }).backend).toBe('hybrid')
    expect(createCurveCrypto({ backend: 'tweetnacl' }).backend).toBe('tweetnacl')
  })

  describe.each(backends)('%s backend', (_name, crypto) => {
    it('precomputes exactly crypto_box_beforenm', () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          (theirPublic, mySecret) => {
            const expected = nacl.scalarMult(mySecret, theirPublic).some((octet) => octet !== 0)
              ? nacl.box.before(theirPublic, mySecret)
              : null
            // Fresh arrays: the hybrid backend caches private keys by array identity.
            expect(crypto.precompute(theirPublic, mySecret.slice())).toEqual(expected)
          },
        ),
        { numRuns: 100 },
      )
    })

    it('makes key pairs whose public key belongs to the secret key', () => {
      const pair = crypto.generateKeyPair()
      expect(pair.publicKey).toEqual(nacl.scalarMult.base(pair.secretKey))
      expect(crypto.derivePublicKey(pair.secretKey)).toEqual(pair.publicKey)
      const other = nacl.box.keyPair()
      expect(crypto.derivePublicKey(other.secretKey)).toEqual(other.publicKey)
      expect(crypto.precompute(other.publicKey, pair.secretKey)).toEqual(
        nacl.box.before(pair.publicKey, other.secretKey),
      )
    })

    it('returns null for every low-order public key (tweetnacl alone would return a key)', () => {
      const { secretKey } = nacl.box.keyPair()
      for (const value of LOW_ORDER) {
        expect(crypto.precompute(littleEndian(value), secretKey)).toBeNull()
      }
    })

    it('seals and opens boxes that tweetnacl’s box.after opens, and refuses forgeries', () => {
      const key = crypto.randomBytes(32)
      const nonce = crypto.randomBytes(24)
      const message = new TextEncoder().encode('CurveZMQ')
      const box = crypto.seal(message, nonce, key)
      expect(box).toHaveLength(message.length + 16)
      expect(nacl.box.open.after(box, nonce, key)).toEqual(message)
      expect(crypto.open(box, nonce, key)).toEqual(message)
      const forged = box.slice()
      forged[0] = (forged[0] ?? 0) ^ 1
      expect(crypto.open(forged, nonce, key)).toBeNull()
      expect(crypto.open(new Uint8Array(15), nonce, key)).toBeNull()
    })

    it('agrees with tweetnacl’s secretbox on every length, both ways', () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ maxLength: 2048 }),
          fc.uint8Array({ minLength: 24, maxLength: 24 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          (message, nonce, key) => {
            const box = nacl.secretbox(message, nonce, key)
            expect(crypto.seal(message, nonce, key)).toEqual(box)
            expect(crypto.open(box, nonce, key)).toEqual(message)
          },
        ),
        { numRuns: 100 },
      )
    })

    it('opens in place: the plaintext replaces the ciphertext; a forgery changes nothing', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 1200 }), fc.nat({ max: 40 }), (message, offset) => {
          const key = crypto.randomBytes(32)
          const nonce = crypto.randomBytes(24)
          const box = nacl.secretbox(message, nonce, key)
          const chunk = new Uint8Array(offset + box.length + 7).fill(0x5a)
          chunk.set(box, offset)
          const view = chunk.subarray(offset, offset + box.length)
          const forged = chunk.slice()
          forged[offset + box.length - 1] = (forged[offset + box.length - 1] ?? 0) ^ 0x80
          const before = forged.slice()
          expect(
            crypto.openInPlace(forged.subarray(offset, offset + box.length), nonce, key),
          ).toBeNull()
          expect(forged).toEqual(before)
          const plain = crypto.openInPlace(view, nonce, key)
          expect(plain).toEqual(message)
          expect(plain?.buffer).toBe(chunk.buffer)
          expect(plain?.byteOffset).toBe(offset + 16)
          expect(chunk.subarray(0, offset).every((octet) => octet === 0x5a)).toBe(true)
          expect(chunk.subarray(offset + box.length).every((octet) => octet === 0x5a)).toBe(true)
        }),
        { numRuns: 60 },
      )
    })

    it('seals in place into the box tweetnacl makes', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 1200 }), (message) => {
          const key = crypto.randomBytes(32)
          const nonce = crypto.randomBytes(24)
          const buffer = new Uint8Array(16 + message.length)
          buffer.set(message, 16)
          crypto.sealInPlace(buffer, nonce, key)
          expect(buffer).toEqual(nacl.secretbox(message, nonce, key))
        }),
        { numRuns: 60 },
      )
    })

    it('opens a box held in a view into a larger buffer (frames are views of TCP chunks)', () => {
      const key = crypto.randomBytes(32)
      const nonce = crypto.randomBytes(24)
      const message = crypto.randomBytes(300)
      const box = nacl.secretbox(message, nonce, key)
      const chunk = new Uint8Array(box.length + 50).fill(0xaa)
      chunk.set(box, 17)
      expect(crypto.open(chunk.subarray(17, 17 + box.length), nonce, key)).toEqual(message)
    })

    it('refuses keys that are not 32 octets', () => {
      expect(() => crypto.precompute(new Uint8Array(31), new Uint8Array(32))).toThrow(RangeError)
      expect(() => crypto.derivePublicKey(new Uint8Array(33))).toThrow(RangeError)
    })
  })
})

describe('isLowOrderPoint', () => {
  it('knows the low-order points, with bit 255 ignored as X25519 ignores it', () => {
    for (const value of LOW_ORDER) {
      const key = littleEndian(value)
      expect(isLowOrderPoint(key)).toBe(true)
      expect(nacl.scalarMult(nacl.randomBytes(32), key).every((octet) => octet === 0)).toBe(true)
    }
    // ORDER_8A + p does not fit in 255 bits: with bit 255 dropped it is ORDER_8A - 19, a fine key.
    const wrapped = littleEndian(ORDER_8A + P)
    expect(isLowOrderPoint(wrapped)).toBe(false)
    expect(nacl.scalarMult(nacl.randomBytes(32), wrapped).some((octet) => octet !== 0)).toBe(true)
  })

  it('agrees with X25519 on random keys', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        const zero = nacl.scalarMult(nacl.randomBytes(32), key).every((octet) => octet === 0)
        expect(isLowOrderPoint(key)).toBe(zero)
      }),
      { numRuns: 50 },
    )
    expect(
      isLowOrderPoint(hex('54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652')),
    ).toBe(false)
  })
})

describe('CookieKeyring', () => {
  function keyring(rotationMs = 1000) {
    let now = 0
    let serial = 0
    const ring = new CookieKeyring({
      rotationMs,
      now: () => now,
      crypto: { randomBytes: (n) => new Uint8Array(n).fill(++serial) },
    })
    return { ring, at: (ms: number) => (now = ms) }
  }

  it('keeps one key within an interval', () => {
    const { ring, at } = keyring()
    const first = ring.current()
    at(999)
    expect(ring.current()).toEqual(first)
    expect(ring.accepted()).toEqual([first])
  })

  it('accepts the previous key for one more interval after a rotation, then drops and wipes it', () => {
    const { ring, at } = keyring()
    const first = ring.current()
    const copy = first.slice()
    at(1000)
    const second = ring.current()
    expect(second).not.toEqual(copy)
    expect(ring.accepted()).toEqual([second, copy])
    at(1999)
    expect(ring.accepted()).toEqual([second, copy])
    at(2000)
    const third = ring.current()
    expect(ring.accepted()).toEqual([third, second])
    expect(first.every((octet) => octet === 0)).toBe(true) // wiped
  })

  it('drops a key older than two intervals even when nobody asked in between', () => {
    const { ring, at } = keyring()
    const first = ring.current().slice()
    at(5000)
    const accepted = ring.accepted()
    expect(accepted).toHaveLength(1)
    expect(accepted[0]).not.toEqual(first)
  })

  it('refuses a rotation interval that is not positive', () => {
    expect(() => new CookieKeyring({ rotationMs: 0 })).toThrow(RangeError)
    expect(() => new CookieKeyring({ rotationMs: Number.NaN })).toThrow(RangeError)
  })
})
