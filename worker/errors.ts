// The HTTP API's errors: one class with a stable snake_case code, and the one JSON shape every
// error response has, `{"error": {"code", "message"}}`.

import type { ContentfulStatusCode } from 'hono/utils/http-status'

import { ErrorCode } from '../shared/api/error-codes'

export { ErrorCode }

/** An error the API reports to the client as is; `app.onError` turns it into a response. */
export class ApiError extends Error {
  override readonly name = 'ApiError'
  readonly status: ContentfulStatusCode
  readonly code: ErrorCode
  readonly headers: Record<string, string>

  constructor(
    status: ContentfulStatusCode,
    code: ErrorCode,
    message: string,
    options?: ErrorOptions & { headers?: Record<string, string> },
  ) {
    super(message, options)
    this.status = status
    this.code = code
    this.headers = options?.headers ?? {}
  }
}

/** The JSON body of an error response. */
export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } }
}
