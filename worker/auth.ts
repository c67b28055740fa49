// Bearer-token checks for the Worker's routes, on Hono's bearer-auth middleware: the token must
// be configured (else 503), present and equal to the configured one (else 401), compared in
// constant time, every refusal in the API's JSON error shape.

import type { Context, MiddlewareHandler } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { ApiError, ErrorCode, errorBody } from './errors'

/** The secrets that guard routes. */
export type TokenName = 'READ_TOKEN' | 'INGEST_TOKEN'

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

/** A 401 in the API's shape. bearer-auth adds its WWW-Authenticate challenge to it. */
const unauthorized = (message: string) => (c: Context) =>
  c.json(errorBody(ErrorCode.UNAUTHORIZED, message), 401)

/**
 * Middleware: lets the request through only with `Authorization: Bearer <env[tokenName]>`. A
 * header that is not a bearer token (RFC 6750 §2.1: token68 characters) is a 401 as a missing
 * one is, as before Hono's middleware, rather than its 400.
 * @throws ApiError 503 not_configured when the token is missing or empty; 401 unauthorized
 * (with `WWW-Authenticate`) when the request's token is missing or wrong.
 */
export function requireBearer(tokenName: TokenName): MiddlewareHandler<{ Bindings: Env }> {
  const check = bearerAuth<{ Bindings: Env }>({
    verifyToken: (token, c) => tokensEqual(token, c.env[tokenName] ?? ''),
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
  return async (c, next) => {
    if (!c.env[tokenName]) {
      throw new ApiError(503, ErrorCode.NOT_CONFIGURED, `${tokenName} is not configured`)
    }
    return check(c, next)
  }
}
