// Scoped API tokens as strings: `zmqe_` then base64url of a 12-octet id, a 20-octet secret and a
// 16-octet MAC over both (HMAC-SHA-256, truncated as RFC 2104 §5 allows, keyed by a key derived
// from ADMIN_TOKEN). The Worker checks the MAC before anything else, so a made-up token is refused
// without a Durable Object call (none billed); the registry keeps a SHA-256 of the secret only
// (durable/registry.ts), so its storage alone gives no token. The `zmqe_` prefix lets secret
// scanners recognise one, as GitHub's `ghp_` does.
// https://www.rfc-editor.org/rfc/rfc2104#section-5

export const TOKEN_PREFIX = 'zmqe_'

const ID_OCTETS = 12
const SECRET_OCTETS = 20
const MAC_OCTETS = 16
const TOKEN_OCTETS = ID_OCTETS + SECRET_OCTETS + MAC_OCTETS
/** The whole token's length: the prefix and 48 octets in base64url (no padding). */
export const TOKEN_LENGTH = TOKEN_PREFIX.length + (TOKEN_OCTETS / 3) * 4

const utf8 = new TextEncoder()

function toBase64Url(bytes: Uint8Array): string {
  let binary = ''
  for (const octet of bytes) binary += String.fromCharCode(octet)
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '')
}

function fromBase64Url(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined
  const binary = atob(text.replaceAll('-', '+').replaceAll('_', '/'))
  return Uint8Array.from(binary, (char) => char.charCodeAt(0))
}

/** A token's parts: `id` (base64url, how records are named) and its secret's SHA-256. */
export interface TokenParts {
  id: string
  secretHash: Uint8Array
}

/** The MAC key for `adminToken`: HMAC-SHA-256 of a fixed label, so the key is not the secret. */
async function macKey(adminToken: string): Promise<CryptoKey> {
  const root = await crypto.subtle.importKey(
    'raw',
    utf8.encode(adminToken),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  )
  const derived = await crypto.subtle.sign('HMAC', root, utf8.encode('zmq-edge token MAC v1'))
  return crypto.subtle.importKey('raw', derived, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
}

let cachedKey: { adminToken: string; key: Promise<CryptoKey> } | undefined

function keyFor(adminToken: string): Promise<CryptoKey> {
  if (cachedKey?.adminToken !== adminToken) cachedKey = { adminToken, key: macKey(adminToken) }
  return cachedKey.key
}

async function mac(adminToken: string, idAndSecret: Uint8Array): Promise<Uint8Array> {
  const full = await crypto.subtle.sign('HMAC', await keyFor(adminToken), idAndSecret)
  return new Uint8Array(full, 0, MAC_OCTETS)
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
}

/** A new token: the string to hand out once, and what the registry keeps of it. */
export async function mintToken(adminToken: string): Promise<TokenParts & { token: string }> {
  const idAndSecret = crypto.getRandomValues(new Uint8Array(ID_OCTETS + SECRET_OCTETS))
  const whole = new Uint8Array(TOKEN_OCTETS)
  whole.set(idAndSecret)
  whole.set(await mac(adminToken, idAndSecret), ID_OCTETS + SECRET_OCTETS)
  return {
    token: TOKEN_PREFIX + toBase64Url(whole),
    id: toBase64Url(idAndSecret.subarray(0, ID_OCTETS)),
    secretHash: await sha256(idAndSecret.subarray(ID_OCTETS)),
  }
}

/** True when `token` has a scoped token's shape (its MAC not checked). */
export function looksLikeScopedToken(token: string): boolean {
  return token.length === TOKEN_LENGTH && token.startsWith(TOKEN_PREFIX)
}

/**
 * The parts of a scoped token whose MAC holds under `adminToken`; undefined for anything else
 * (compared in constant time).
 */
export async function verifyToken(
  adminToken: string,
  token: string,
): Promise<TokenParts | undefined> {
  if (!looksLikeScopedToken(token)) return undefined
  const whole = fromBase64Url(token.slice(TOKEN_PREFIX.length))
  if (!whole || whole.length !== TOKEN_OCTETS) return undefined
  const idAndSecret = whole.subarray(0, ID_OCTETS + SECRET_OCTETS)
  const expected = await mac(adminToken, idAndSecret)
  if (!crypto.subtle.timingSafeEqual(expected, whole.subarray(ID_OCTETS + SECRET_OCTETS))) {
    return undefined
  }
  return {
    id: toBase64Url(whole.subarray(0, ID_OCTETS)),
    secretHash: await sha256(whole.subarray(ID_OCTETS, ID_OCTETS + SECRET_OCTETS)),
  }
}

/** A random record id in the form token ids take (12 octets, base64url): for key records. */
export function newRecordId(): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(ID_OCTETS)))
}
