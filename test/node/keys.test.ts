// CURVE keys as configured: Z85, base64 and hex, with whitespace; errors that name the setting.
import nacl from 'tweetnacl'
import { describe, expect, it } from 'vitest'
import {
  derivePublicKey,
  formatKey,
  generateKeyPair,
  isLowOrderPoint,
  KeyFormatError,
  parseCurveKey,
} from '../../node-bridge/zmtp/mechanisms/curve-keys'

const hex = (value: string) => Uint8Array.from(Buffer.from(value, 'hex'))

// libzmq doc/zmq_curve.adoc §TEST KEY VALUES: the server secret key in three spellings.
const SECRET = hex('8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7')
const SECRET_Z85 = 'JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6'
const SECRET_BASE64 = Buffer.from(SECRET).toString('base64')
const SECRET_HEX = '8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7'
const PUBLIC_Z85 = 'rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7'

/** Runs `fn`, expects a KeyFormatError, returns it. */
function keyError(fn: () => unknown): KeyFormatError {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(KeyFormatError)
    return error as KeyFormatError
  }
  throw new Error('expected a KeyFormatError')
}

describe('parseCurveKey', () => {
  it.each([
    ['Z85', SECRET_Z85],
    ['base64 (NetMQ)', SECRET_BASE64],
    ['url-safe base64', Buffer.from(SECRET).toString('base64url')],
    ['url-safe base64 with padding', `${Buffer.from(SECRET).toString('base64url')}=`],
    ['hex, upper case', SECRET_HEX],
    ['hex, lower case', SECRET_HEX.toLowerCase()],
  ])('reads %s', (_name, text) => {
    expect(parseCurveKey(text, 'test')).toEqual(SECRET)
  })

  it.each([
    ['Z85', SECRET_Z85],
    ['base64', SECRET_BASE64],
    ['hex', SECRET_HEX],
  ])('ignores whitespace around %s (a key file with a newline)', (_name, text) => {
    expect(parseCurveKey(`  ${text}\n`, 'test')).toEqual(SECRET)
    expect(parseCurveKey(`\t${text}\r\n`, 'test')).toEqual(SECRET)
  })

  it('returns a fresh 32-octet array', () => {
    const key = parseCurveKey(SECRET_HEX, 'test')
    expect(key).toBeInstanceOf(Uint8Array)
    expect(key.byteLength).toBe(32)
    expect(key.buffer.byteLength).toBe(32)
  })

  it.each([
    ['empty', ''],
    ['too short', SECRET_Z85.slice(0, 39)],
    ['too long', `${SECRET_HEX}00`],
    ['Z85 with a bad character', `${SECRET_Z85.slice(0, 39)}"`],
    ['Z85 above 32 bits per group', `%nSc1${SECRET_Z85.slice(5)}`],
    ['base64 with a bad character', `${SECRET_BASE64.slice(0, 42)}*=`],
    ['base64 that is not canonical', `${SECRET_BASE64.slice(0, 42)}B=`],
    ['base64 of 33 octets', Buffer.alloc(33).toString('base64').slice(0, 44)],
    ['hex with a bad character', `${SECRET_HEX.slice(0, 63)}g`],
    ['whitespace inside', `${SECRET_HEX.slice(0, 32)} ${SECRET_HEX.slice(33)}`],
  ])('refuses a key that is %s, naming the setting and the three forms', (_name, text) => {
    const error = keyError(() => parseCurveKey(text, '--curve-secret-key'))
    expect(error.setting).toBe('--curve-secret-key')
    expect(error.message).toContain('--curve-secret-key')
    expect(error.message).toMatch(/Z85.*base64.*hex/)
  })

  it('never puts the key in the error message', () => {
    const error = keyError(() => parseCurveKey(`${SECRET_HEX.slice(0, 63)}g`, 'ZMQ_EDGE_KEY'))
    expect(error.message).not.toContain(SECRET_HEX.slice(0, 16))
  })
})

describe('formatKey', () => {
  it('writes a key in the three forms parseCurveKey reads', () => {
    const forms = formatKey(SECRET)
    expect(forms).toEqual({ z85: SECRET_Z85, base64: SECRET_BASE64, hex: SECRET_HEX.toLowerCase() })
    for (const text of Object.values(forms)) expect(parseCurveKey(text, 'test')).toEqual(SECRET)
  })

  it('refuses a key that is not 32 octets', () => {
    expect(() => formatKey(new Uint8Array(31))).toThrow(RangeError)
  })
})

describe('key pairs', () => {
  it('derives libzmq’s test server public key from its secret key', () => {
    expect(formatKey(derivePublicKey(SECRET)).z85).toBe(PUBLIC_Z85)
  })

  it('generates key pairs whose public key matches the secret key', () => {
    const a = generateKeyPair()
    const b = generateKeyPair()
    expect(a.publicKey).toHaveLength(32)
    expect(a.secretKey).toHaveLength(32)
    expect(a.secretKey).not.toEqual(b.secretKey)
    expect(derivePublicKey(a.secretKey)).toEqual(a.publicKey)
    expect(nacl.scalarMult.base(a.secretKey)).toEqual(a.publicKey)
    expect(isLowOrderPoint(a.publicKey)).toBe(false)
  })

  it('refuses a secret key that is not 32 octets', () => {
    expect(() => derivePublicKey(new Uint8Array(16))).toThrow(RangeError)
  })
})
