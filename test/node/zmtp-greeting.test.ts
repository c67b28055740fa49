// Annotated greeting vectors (RFC 23/37): decode, encode, round trip, early version detection.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  classifyGreetingPrefix,
  decodeGreeting,
  encodeGreeting,
  encodeGreetingRest,
  encodeGreetingStart,
  GREETING_SIZE,
  type Greeting,
  SIGNATURE_SIZE,
} from '../../node-bridge/zmtp/codec/greeting'
import { ZmtpError, ZmtpErrorCode } from '../../node-bridge/zmtp/errors'
import { codeOf } from '../support/zmtp-assert'

type Part = number | string | Uint8Array | readonly number[]

/** Builds bytes from octets, ASCII strings and byte arrays, so vectors read field by field. */
function bytes(...parts: Part[]): Uint8Array {
  const out: number[] = []
  for (const part of parts) {
    if (typeof part === 'number') out.push(part)
    else if (typeof part === 'string') for (const c of part) out.push(c.charCodeAt(0))
    else out.push(...part)
  }
  return Uint8Array.from(out)
}

const zeros = (n: number) => new Uint8Array(n)
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ')

interface GreetingVector {
  title: string
  wire: Uint8Array
  greeting: Greeting
  /** False when our encoder writes different (but equivalent) bytes, e.g. zero padding. */
  canonical: boolean
}

const vectors: GreetingVector[] = [
  {
    title: 'NULL, ZMTP 3.1 (what libzmq 4.3 sends)',
    wire: bytes(
      0xff, // signature start
      zeros(8), // padding
      0x7f, // signature end
      0x03, // version-major 3
      0x01, // version-minor 1 (RFC 37)
      'NULL', // mechanism
      zeros(16), // mechanism NUL padding to 20 octets
      0x00, // as-server: RFC 23, MUST be zero for NULL
      zeros(31), // filler
    ),
    greeting: { major: 3, minor: 1, mechanism: 'NULL', asServer: false },
    canonical: true,
  },
  {
    title: 'NULL, ZMTP 3.0 (what NetMQ sends)',
    wire: bytes(
      0xff, // signature start
      zeros(8), // padding
      0x7f, // signature end
      0x03, // version-major 3
      0x00, // version-minor 0 (RFC 23)
      'NULL', // mechanism
      zeros(16), // mechanism NUL padding
      0x00, // as-server
      zeros(31), // filler
    ),
    greeting: { major: 3, minor: 0, mechanism: 'NULL', asServer: false },
    canonical: true,
  },
  {
    title: 'CURVE server, ZMTP 3.1',
    wire: bytes(
      0xff, // signature start
      zeros(8), // padding
      0x7f, // signature end
      0x03, // version-major 3
      0x01, // version-minor 1
      'CURVE', // mechanism
      zeros(15), // mechanism NUL padding
      0x01, // as-server: we are the CURVE server
      zeros(31), // filler
    ),
    greeting: { major: 3, minor: 1, mechanism: 'CURVE', asServer: true },
    canonical: true,
  },
  {
    title: "libzmq's signature with non-zero padding (src/zmtp_engine.cpp)",
    wire: bytes(
      0xff, // signature start
      [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], // padding ...
      0x01, // ... whose last octet is identity-length + 1 (RFC 23 pseudo-signature)
      0x7f, // signature end
      0x03, // version-major 3
      0x01, // version-minor 1
      'CURVE', // mechanism
      zeros(15), // mechanism NUL padding
      0x00, // as-server: libzmq never sets it, even as a CURVE client
      zeros(31), // filler
    ),
    greeting: { major: 3, minor: 1, mechanism: 'CURVE', asServer: false },
    canonical: false,
  },
  {
    title: 'a future ZMTP 4.2 peer with a 20-octet mechanism and non-zero filler',
    wire: bytes(
      0xff, // signature start
      zeros(8), // padding
      0x7f, // signature end
      0x04, // version-major 4: RFC 23, higher versions MUST be accepted
      0x02, // version-minor 2
      'X-MECH_1.0+ABCDEFGHI', // mechanism using all 20 octets and every allowed symbol
      0x01, // as-server
      0x5a, // filler octet a later version might use: not validated
      zeros(30), // rest of the filler
    ),
    greeting: { major: 4, minor: 2, mechanism: 'X-MECH_1.0+ABCDEFGHI', asServer: true },
    canonical: false,
  },
]

describe('greeting vectors', () => {
  it('every vector is 64 octets', () => {
    for (const v of vectors) expect(v.wire.length, v.title).toBe(GREETING_SIZE)
  })

  for (const v of vectors) {
    describe(v.title, () => {
      it('decodes', () => {
        expect(decodeGreeting(v.wire)).toEqual(v.greeting)
      })

      it('decodes from a longer buffer, reading only the first 64 octets', () => {
        const longer = bytes(v.wire, 0x04, 0x1a, 0x05, 'READY')
        expect(decodeGreeting(longer)).toEqual(v.greeting)
      })

      it(v.canonical ? 'encodes to the same bytes' : 'encodes an equivalent greeting', () => {
        const encoded = encodeGreeting(v.greeting)
        expect(encoded.length).toBe(GREETING_SIZE)
        if (v.canonical) expect(hex(encoded)).toBe(hex(v.wire))
        else expect(hex(encoded)).not.toBe(hex(v.wire))
      })

      it('round-trips', () => {
        expect(decodeGreeting(encodeGreeting(decodeGreeting(v.wire)))).toEqual(v.greeting)
      })

      it('encodes as an 11-octet start and a 53-octet rest', () => {
        const start = encodeGreetingStart(v.greeting.major)
        const rest = encodeGreetingRest(v.greeting)
        expect(start.length).toBe(11)
        expect(rest.length).toBe(53)
        expect(hex(bytes(start, rest))).toBe(hex(encodeGreeting(v.greeting)))
      })

      it('is classified as ZMTP 3 exactly once the major version (octet 11) arrives', () => {
        for (let n = 0; n <= v.wire.length; n++) {
          const expected = n < 11 ? 'need-more' : 'zmtp3'
          expect(classifyGreetingPrefix(v.wire.subarray(0, n)), `prefix of ${n}`).toBe(expected)
        }
      })
    })
  }

  it('encodeGreetingStart defaults to FF 00*8 7F 03', () => {
    expect(hex(encodeGreetingStart())).toBe('ff 00 00 00 00 00 00 00 00 7f 03')
  })

  it('encodeGreetingRest defaults to minor 1', () => {
    const rest = encodeGreetingRest({ mechanism: 'NULL', asServer: false })
    expect(rest[0]).toBe(1)
    expect(hex(rest.subarray(1, 5))).toBe(hex(bytes('NULL')))
    expect(rest.subarray(5).every((b) => b === 0)).toBe(true)
  })
})

describe('greeting errors', () => {
  const good = vectors[0]?.wire ?? zeros(64)
  const patched = (offset: number, ...values: number[]) => {
    const copy = good.slice()
    copy.set(values, offset)
    return copy
  }

  const errorVectors: Array<{ title: string; wire: Uint8Array; code: ZmtpErrorCode }> = [
    {
      title: 'byte 0 is not 0xFF (a ZMTP 1.0 short identity length)',
      wire: patched(0, 0x01),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
    {
      title: 'bit 0 of byte 9 is clear (a ZMTP 1.0 long identity length)',
      wire: patched(9, 0x7e),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
    {
      title: 'major version 2 (ZMTP 2.0)',
      wire: patched(10, 0x02),
      code: ZmtpErrorCode.UNSUPPORTED_VERSION,
    },
    {
      title: 'major version 1 (ZMTP 2.0 revision 1)',
      wire: patched(10, 0x01),
      code: ZmtpErrorCode.UNSUPPORTED_VERSION,
    },
    {
      title: 'lower-case mechanism "null"',
      wire: patched(12, ...bytes('null')),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
    {
      title: 'a space in the mechanism',
      wire: patched(12, ...bytes('NU L')),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
    {
      title: 'a non-NUL octet after the NUL padding starts',
      wire: patched(12, ...bytes('NULL', 0x00, 'X')),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
    {
      title: 'an octet above 0x7F in the mechanism',
      wire: patched(12, 0xce),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
    {
      title: 'only 63 octets',
      wire: good.subarray(0, 63),
      code: ZmtpErrorCode.MALFORMED_GREETING,
    },
  ]

  for (const v of errorVectors) {
    it(`rejects ${v.title} with ${v.code}`, () => {
      expect(codeOf(() => decodeGreeting(v.wire))).toBe(v.code)
    })
  }

  it('accepts an empty (all-NUL) mechanism, leaving the mismatch to the caller', () => {
    expect(decodeGreeting(patched(12, 0, 0, 0, 0)).mechanism).toBe('')
  })

  it('checks only bit 0 of byte 9, as libzmq does (src/zmtp_engine.cpp)', () => {
    for (const octet of [0x01, 0x7f, 0x81, 0xff]) {
      expect(decodeGreeting(patched(9, octet)).mechanism).toBe('NULL')
      expect(classifyGreetingPrefix(patched(9, octet).subarray(0, 11))).toBe('zmtp3')
    }
  })

  it('does not validate the padding', () => {
    const wire = patched(1, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef)
    expect(decodeGreeting(wire).mechanism).toBe('NULL')
  })

  it('refuses to encode invalid versions and mechanism names', () => {
    expect(() => encodeGreetingStart(256)).toThrow(RangeError)
    expect(() => encodeGreetingStart(-1)).toThrow(RangeError)
    expect(() => encodeGreetingRest({ minor: 1.5, mechanism: 'NULL', asServer: false })).toThrow(
      RangeError,
    )
    expect(() => encodeGreetingRest({ mechanism: '', asServer: false })).toThrow(RangeError)
    expect(() => encodeGreetingRest({ mechanism: 'A'.repeat(21), asServer: false })).toThrow(
      RangeError,
    )
    expect(() => encodeGreetingRest({ mechanism: 'curve', asServer: false })).toThrow(RangeError)
  })
})

describe('classifyGreetingPrefix (RFC 23 §Backwards Interoperability)', () => {
  const legacy: Array<{ title: string; wire: Uint8Array; decidedAt: number }> = [
    {
      title: 'ZMTP 1.0 short identity frame',
      wire: bytes(
        0x01, // identity length + 1 (not 0xFF)
        0x00, // flags
      ),
      decidedAt: 1,
    },
    { title: 'an HTTP request', wire: bytes('GET / HTTP/1.1\r\n'), decidedAt: 1 },
    {
      title: 'ZMTP 1.0 long identity length',
      wire: bytes(
        0xff, // long length marker
        [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00], // 8-octet length: LSB of octet 10 is 0
        0x00, // flags
      ),
      decidedAt: 10,
    },
    {
      title: 'ZMTP 2.0 (revision 1)',
      wire: bytes(
        0xff, // signature start
        zeros(8), // padding
        0x7f, // signature end
        0x01, // revision 1 = ZMTP 2.0
        0x08, // socket type PUSH (RFC 15)
      ),
      decidedAt: 11,
    },
    {
      title: 'libzmq ZMTP 1.0 with signature (revision 0)',
      wire: bytes(0xff, zeros(7), 0x01, 0x7f, 0x00),
      decidedAt: 11,
    },
  ]

  for (const v of legacy) {
    it(`says 'legacy' for ${v.title} as soon as octet ${v.decidedAt} arrives`, () => {
      for (let n = 0; n <= v.wire.length; n++) {
        const expected = n < v.decidedAt ? 'need-more' : 'legacy'
        expect(classifyGreetingPrefix(v.wire.subarray(0, n)), `prefix of ${n}`).toBe(expected)
      }
    })
  }

  it('never changes its mind once decided, and agrees with decodeGreeting', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.boolean(),
        (raw, plausible) => {
          const wire = raw.slice()
          if (plausible) {
            // Bias towards real signatures so the 'zmtp3' branch is exercised.
            wire[0] = 0xff
            wire[SIGNATURE_SIZE - 1] = (wire[SIGNATURE_SIZE - 1] ?? 0) | 1
          }
          let decided: string | undefined
          for (let n = 0; n <= wire.length; n++) {
            const kind = classifyGreetingPrefix(wire.subarray(0, n))
            if (decided !== undefined) expect(kind).toBe(decided)
            else if (kind !== 'need-more') decided = kind
          }
          expect(decided).toBeDefined()
          let code: string | undefined
          try {
            decodeGreeting(wire)
          } catch (error) {
            expect(error).toBeInstanceOf(ZmtpError)
            code = (error as ZmtpError).code
          }
          if (decided === 'legacy') {
            expect([ZmtpErrorCode.MALFORMED_GREETING, ZmtpErrorCode.UNSUPPORTED_VERSION]).toContain(
              code,
            )
          } else {
            // A ZMTP 3 signature and version: only the mechanism field can still be wrong.
            expect(code === undefined || code === ZmtpErrorCode.MALFORMED_GREETING).toBe(true)
          }
        },
      ),
    )
  })
})
