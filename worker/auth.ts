// Bearer-token checks for the Worker's routes: the token must be configured (else 503), present
// and equal to the configured one (else 401), compared in constant time.

import type { MiddlewareHandler } from 'hono'
import { ApiError, ErrorCode } from './errors'

/** The secrets that guard routes. */
export type TokenName = 'READ_TOKEN' | 'INGEST_TOKEN'

const REALM = 'Bearer realm="zmq-edge"'
const utf8 = new TextEncoder()

/** The token of an `Authorization: Bearer <token>` header (scheme case-insensitive, RFC 7235). */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(header ?? '')
  return match?.[1]
}

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

/**
 * Middleware: lets the request through only with `Authorization: Bearer <env[tokenName]>`.
 * @throws ApiError 503 not_configured when the token is missing or empty, 401 unauthorized
 * (with `WWW-Authenticate`) when the request's token is missing or wrong.
 */
export function requireBearer(tokenName: TokenName): MiddlewareHandler<{ Bindings: Env }> {
  return async (c, next) => {
    const expected = c.env[tokenName]
    if (!expected) {
      throw new ApiError(503, ErrorCode.NOT_CONFIGURED, `${tokenName} is not configured`)
    }
    const given = bearerToken(c.req.header('Authorization'))
    if (given === undefined) {
      throw new ApiError(401, ErrorCode.UNAUTHORIZED, 'a bearer token is required', {
        headers: { 'WWW-Authenticate': REALM },
      })
    }
    if (!(await tokensEqual(given, expected))) {
      throw new ApiError(401, ErrorCode.UNAUTHORIZED, 'the bearer token is not valid here', {
        headers: { 'WWW-Authenticate': `${REALM}, error="invalid_token"` },
      })
    }
    await next()
  }
}
