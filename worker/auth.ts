// Bearer credentials for the Worker's routes, on Hono's bearer-auth middleware. A credential is a
// root secret (READ_TOKEN: read and consume; INGEST_TOKEN: ingest; ADMIN_TOKEN: admin; every
// channel) or a scoped token (./token-format.ts) with its own scopes, channel patterns, expiry
// and optional bridge binding, kept by the registry (durable/registry.ts). A route needs one
// scope (../shared/api/scopes.ts) and, under /v1/channels/:channel, that channel:
// - no credential, or one that is not valid: 401 (with its WWW-Authenticate challenge);
// - a valid one without the scope or the channel: 403 forbidden;
// - no credential that could be valid is configured (the scope's root secret, or ADMIN_TOKEN for
//   scoped tokens): 503 not_configured.
// Root secrets are compared in constant time; a scoped token's MAC is checked before the
// registry is asked (none billed for junk), and its record is cached for TOKEN_CACHE_MS.

import type { Context, MiddlewareHandler } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { registryStub, type StoredToken } from '../durable/registry'
import { grants, type Scope } from '../shared/api/scopes'
import { matchesChannel, patternWithin } from '../shared/channel-pattern'
import { ApiError, ErrorCode, errorBody } from './errors'
import { looksLikeScopedToken, verifyToken } from './token-format'
import { TtlCache } from './ttl-cache'

/** The root secrets and the scopes each holds (on every channel). */
export const ROOT_SECRETS = {
  READ_TOKEN: ['read', 'consume'],
  INGEST_TOKEN: ['ingest'],
  ADMIN_TOKEN: ['admin'],
} as const satisfies Record<string, readonly Scope[]>
export type RootSecret = keyof typeof ROOT_SECRETS

/**
 * How long a scoped token's record is trusted in an isolate, ms: a deleted or changed token is
 * honoured at most this long after, and the registry is asked at most once per token and
 * isolate in this time.
 */
export const TOKEN_CACHE_MS = 5000

/** Most records cached per isolate (the oldest go first). */
const TOKEN_CACHE_ENTRIES = 10_000

/** Who a request is, once authenticated. */
export interface Principal {
  /** True for a root secret (every channel, no expiry). */
  root: boolean
  /** The root secrets' names it matches (`+` between), or the scoped token's id. */
  credential: string
  scopes: readonly Scope[]
  /** Channel patterns (../shared/channel-pattern.ts); `*` for every channel. */
  channels: readonly string[]
  /** The one bridge id an ingest token may connect as. */
  bridgeId?: string
  /** When a scoped token stops working, ms since the epoch. */
  expiresAt?: number
}

/** The context variables the auth middleware sets. */
export type AuthVariables = { principal: Principal }
type AuthEnv = { Bindings: Env; Variables: AuthVariables }

const REALM = 'Bearer realm="zmq-edge"'
const utf8 = new TextEncoder()

/**
 * Compares two tokens in constant time. Both are hashed first, so the comparison is always
 * over 32 octets and does not reveal the expected token's length.
 */
export async function tokensEqual(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([
    crypto.subtle.digest('SHA-256', utf8.encode(given)),
    crypto.subtle.digest('SHA-256', utf8.encode(expected)),
  ])
  return crypto.subtle.timingSafeEqual(a, b)
}

const tokenCache = new TtlCache<StoredToken | undefined>(TOKEN_CACHE_MS, TOKEN_CACHE_ENTRIES)
const bindingCache = new TtlCache<boolean>(TOKEN_CACHE_MS, TOKEN_CACHE_ENTRIES)

/** A scoped token's record, from this isolate's cache while fresh, else from the registry. */
function storedToken(env: Env, id: string): Promise<StoredToken | undefined> {
  return tokenCache.get(id, () => registryStub(env).token(id))
}

/**
 * Forgets what this isolate cached of a token, and of its bridge's binding: a change made here
 * is seen at once here (elsewhere within TOKEN_CACHE_MS).
 */
export function forgetToken(id: string, bridgeId?: string): void {
  tokenCache.delete(id)
  if (bridgeId !== undefined) bindingCache.delete(bridgeId)
}

/** The principal of a bearer token, or undefined when it is not a valid credential. */
export async function principalOf(env: Env, token: string): Promise<Principal | undefined> {
  // Every root secret is compared (a deployment may give two the same value: it holds both's
  // scopes).
  const names: RootSecret[] = []
  const scopes = new Set<Scope>()
  for (const [name, held] of Object.entries(ROOT_SECRETS) as [RootSecret, readonly Scope[]][]) {
    const secret = env[name]
    if (secret && (await tokensEqual(token, secret))) {
      names.push(name)
      for (const scope of held) scopes.add(scope)
    }
  }
  if (names.length > 0) {
    return { root: true, credential: names.join('+'), scopes: [...scopes], channels: ['*'] }
  }
  const adminToken = env.ADMIN_TOKEN
  if (!adminToken || !looksLikeScopedToken(token)) return undefined
  const parts = await verifyToken(adminToken, token)
  if (!parts) return undefined
  const stored = await storedToken(env, parts.id)
  if (!stored || !crypto.subtle.timingSafeEqual(stored.secretHash, parts.secretHash)) {
    return undefined
  }
  if (stored.expiresAt !== undefined && stored.expiresAt <= Date.now()) return undefined
  return {
    root: false,
    credential: stored.id,
    scopes: stored.scopes,
    channels: stored.channels,
    ...(stored.bridgeId === undefined ? {} : { bridgeId: stored.bridgeId }),
    ...(stored.expiresAt === undefined ? {} : { expiresAt: stored.expiresAt }),
  }
}

/** A 401 in the API's shape. bearer-auth adds its WWW-Authenticate challenge to it. */
const unauthorized = (message: string) => (c: Context) =>
  c.json(errorBody(ErrorCode.UNAUTHORIZED, message), 401)

/** The root secret that holds `scope`. */
function rootOf(scope: Scope): RootSecret {
  return scope === 'ingest' ? 'INGEST_TOKEN' : scope === 'admin' ? 'ADMIN_TOKEN' : 'READ_TOKEN'
}

/**
 * Middleware: lets the request through only with `Authorization: Bearer <credential>` whose
 * scopes include `scope` and, when `channel` is set, whose patterns include the `:channel`
 * path parameter; the principal is left in `c.get('principal')`. A header that is not a bearer
 * token (RFC 6750 §2.1: token68 characters) is a 401 as a missing one is, rather than Hono's 400.
 * @throws ApiError 503 not_configured, 403 forbidden (see the top of this file).
 */
export function requireScope(
  scope: Scope,
  options: { channelOf?: (c: Context<AuthEnv>) => string | undefined } = {},
): MiddlewareHandler<AuthEnv> {
  const check = bearerAuth<AuthEnv>({
    verifyToken: async (token, c) => {
      const principal = await principalOf(c.env, token)
      if (principal) c.set('principal', principal)
      return principal !== undefined
    },
    noAuthenticationHeader: {
      message: unauthorized('a bearer token is required'),
      wwwAuthenticateHeader: REALM,
    },
    invalidAuthenticationHeader: {
      message: unauthorized('a bearer token is required'),
      wwwAuthenticateHeader: `${REALM}, error="invalid_request"`,
    },
    invalidToken: {
      message: unauthorized('the bearer token is not valid here'),
      wwwAuthenticateHeader: `${REALM}, error="invalid_token"`,
    },
  })
  const root = rootOf(scope)
  return async (c, next) => {
    if (!c.env[root] && !c.env.ADMIN_TOKEN) {
      throw new ApiError(503, ErrorCode.NOT_CONFIGURED, `${root} is not configured`)
    }
    return check(c, async () => {
      const principal = c.get('principal')
      if (!grants(principal.scopes, scope)) {
        throw new ApiError(
          403,
          ErrorCode.FORBIDDEN,
          `this token's scopes (${principal.scopes.join(', ')}) do not include ${scope}`,
        )
      }
      const channel = options.channelOf?.(c)
      if (channel !== undefined && !matchesChannel(principal.channels, channel)) {
        throw new ApiError(403, ErrorCode.FORBIDDEN, `this token does not reach channel ${channel}`)
      }
      await next()
    })
  }
}

/**
 * The bridge binding of ingest credentials: a token bound to a bridge id connects only as that
 * bridge, and a bridge id bound to any token is taken from no other credential (root secret
 * included), so nobody else can write in its sessions or replace its socket. Asked of the
 * registry at an upgrade, cached as token records are.
 * @throws ApiError 403 bridge_id_bound
 */
export async function checkBridgeBinding(
  env: Env,
  principal: Principal,
  bridgeId: string,
): Promise<void> {
  if (principal.bridgeId !== undefined) {
    if (principal.bridgeId === bridgeId) return
    throw new ApiError(
      403,
      ErrorCode.BRIDGE_ID_BOUND,
      `this token connects as bridge ${principal.bridgeId} only`,
    )
  }
  const bound = await bindingCache.get(bridgeId, () => registryStub(env).isBridgeBound(bridgeId))
  if (bound) {
    throw new ApiError(
      403,
      ErrorCode.BRIDGE_ID_BOUND,
      `bridge id ${bridgeId} is bound to a token of its own; connect with that token`,
    )
  }
}

/**
 * What a scoped admin token may make: scopes it holds, channels within its own, an expiry no
 * later than its own, and no bridge binding (a binding takes a bridge id from every other
 * credential, which only ADMIN_TOKEN may decide).
 * @throws ApiError 403 forbidden, saying which.
 */
export function checkDelegation(
  principal: Principal,
  wanted: {
    scopes: readonly Scope[]
    channels: readonly string[]
    expiresAt?: string
    bridgeId?: string
  },
): void {
  const refuse = (message: string) => {
    throw new ApiError(403, ErrorCode.FORBIDDEN, message)
  }
  const extra = wanted.scopes.filter((scope) => !grants(principal.scopes, scope))
  if (extra.length > 0)
    refuse(`this token cannot give scopes it does not hold: ${extra.join(', ')}`)
  const outside = wanted.channels.filter((pattern) => !patternWithin(pattern, principal.channels))
  if (outside.length > 0)
    refuse(`this token cannot give channels it does not reach: ${outside.join(', ')}`)
  if (
    principal.expiresAt !== undefined &&
    (wanted.expiresAt === undefined || Date.parse(wanted.expiresAt) > principal.expiresAt)
  ) {
    refuse(
      `this token expires at ${new Date(principal.expiresAt).toISOString()}; so must what it makes, or sooner`,
    )
  }
  if (wanted.bridgeId !== undefined) refuse('only ADMIN_TOKEN binds a token to a bridge id')
}

/** The bearer token of a request that requireScope let in. */
export function bearerToken(c: Context): string {
  return /^Bearer +(.+)$/i.exec(c.req.header('Authorization') ?? '')?.[1] ?? ''
}

/**
 * Whether `token` still holds `scope` on `channel` (deleted, expired or changed tokens do not):
 * for requests that last, such as the live tail. Cached as every check is.
 */
export async function stillAllowed(
  env: Env,
  token: string,
  scope: Scope,
  channel: string,
): Promise<boolean> {
  const principal = await principalOf(env, token)
  return (
    principal !== undefined &&
    grants(principal.scopes, scope) &&
    matchesChannel(principal.channels, channel)
  )
}
