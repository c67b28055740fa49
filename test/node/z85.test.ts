// Z85 (RFC 32): the RFC's vector, libzmq's CURVE test keys, round trips and refused input.
import fc from 'fast-check'
import nacl from 'tweetnacl'
import { describe, expect, it } from 'vitest'
import { z85Decode, z85Encode } from '../../shared/z85'

const hex = (value: string) => Uint8Array.from(Buffer.from(value, 'hex'))

// libzmq doc/zmq_curve.adoc §TEST KEY VALUES.
const CLIENT_PUBLIC = 'Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID'
const CLIENT_SECRET = 'D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs'
const SERVER_PUBLIC = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'
const SERVER_SECRET = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'

describe('z85Decode', () => {
  it('decodes the RFC 32 test case: "HelloWorld" ⇔ 86 4F D2 6F B5 59 F7 5B', () => {
    expect(z85Decode('HelloWorld')).toEqual(hex('864FD26FB559F75B'))
    expect(z85Encode(hex('864FD26FB559F75B'))).toBe('HelloWorld')
  })

  it.each([
    ['', ''],
    ['00000', '00000000'],
    ['%nSc0', 'FFFFFFFF'], // the largest group
    [CLIENT_PUBLIC, 'BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518'],
    [CLIENT_SECRET, '7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888'],
    [SERVER_PUBLIC, '54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652'],
    [SERVER_SECRET, '8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7'],
  ])('decodes %s', (text, bytes) => {
    expect(z85Decode(text)).toEqual(hex(bytes))
  })

  it('gives libzmq’s test public keys from their secret keys', () => {
    expect(z85Encode(nacl.scalarMult.base(z85Decode(CLIENT_SECRET)))).toBe(CLIENT_PUBLIC)
    expect(z85Encode(nacl.scalarMult.base(z85Decode(SERVER_SECRET)))).toBe(SERVER_PUBLIC)
  })

  it('round-trips any multiple of 4 octets', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const data = bytes.subarray(0, bytes.length - (bytes.length % 4))
        expect(z85Decode(z85Encode(data))).toEqual(data)
      }),
    )
  })

  it('round-trips any valid text', () => {
    const alphabet =
      '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#'
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 8 }), (words) => {
        const text = words
          .map((word) => {
            let group = ''
            let rest = word
            for (let index = 0; index < 5; index++) {
              group = alphabet[rest % 85] + group
              rest = Math.floor(rest / 85)
            }
            return group
          })
          .join('')
        expect(z85Encode(z85Decode(text))).toBe(text)
      }),
    )
  })

  it.each([
    ['a length that is not a multiple of 5', 'Hello1'],
    ['a character outside the alphabet (space)', 'Hello Worl'],
    ['a character outside the alphabet (quote)', 'Hell"'],
    ['a character outside the alphabet (non-ASCII)', 'Hellö'],
    ['a group above 2^32 - 1', '%nSc1'],
    ['the largest digits everywhere', '#####'],
  ])('refuses %s with a RangeError', (_name, text) => {
    expect(() => z85Decode(text)).toThrow(RangeError)
  })

  it('never repeats the text (it may be a secret key) in its errors', () => {
    try {
      z85Decode(`${SERVER_SECRET.slice(0, 39)} `)
      expect.unreachable()
    } catch (error) {
      expect((error as Error).message).not.toContain(SERVER_SECRET.slice(0, 10))
    }
  })
})
