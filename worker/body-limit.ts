// The JSON routes' body size limit as Hono middleware: 413 payload_too_large for a body over it.
// A chunked body (no Content-Length) is read as it comes; one over the limit is drained, up to
// MAX_DRAIN_BYTES, before the 413 goes out, so the client's connection stays usable.
//
// Why drain: answering before a body is read is allowed (RFC 9110 §15.5.14 lets a server refuse
// a body and close the connection). But when the Worker has read part of a chunked body and
// answers, workerd closes the connection after the answer, without `Connection: close` (a Worker
// cannot set that header; a body it never touched, or one of known length, workerd discards by
// itself). A client that has pooled the connection then loses its next request: workerd's own
// fetch() does (cloudflare/workerd#1741), and so does `wrangler dev`, whose proxy in front of the
// Worker is such a fetch() and answers the lost request, unless a GET, with 503 "Your worker
// restarted mid-request" (cloudflare/workers-sdk#5095). Cancelling the body does not help;
// reading it to the end does.

import type { MiddlewareHandler } from 'hono'
import { ApiError, ErrorCode } from './errors'

/**
 * Most octets of an oversized chunked body read and dropped before the 413: four times the
 * 256 KiB request limit. Past that the body is cancelled and workerd closes the connection.
 */
export const MAX_DRAIN_BYTES = 1024 * 1024

/** Reads and drops the rest of a body, at most `limit` octets; cancels it past that. */
async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, limit: number) {
  let dropped = 0
  while (dropped <= limit) {
    const { done, value } = await reader.read()
    if (done) return
    dropped += value.byteLength
  }
  await reader.cancel()
}

/**
 * Refuses a request body over `maxBytes` with ApiError 413 payload_too_large: at once when its
 * Content-Length says so, else once more has come, after draining the rest (see the file's
 * header). A chunked body within the limit is buffered, so handlers read it as usual.
 * @param drainBytes most octets drained past the limit (default {@link MAX_DRAIN_BYTES}).
 */
export function bodyLimit(maxBytes: number, drainBytes = MAX_DRAIN_BYTES): MiddlewareHandler {
  const tooLarge = () =>
    new ApiError(413, ErrorCode.PAYLOAD_TOO_LARGE, `request bodies are at most ${maxBytes} octets`)
  return async (c, next) => {
    const { body } = c.req.raw
    if (!body) return next()
    const declared = c.req.header('Content-Length')
    if (declared !== undefined && c.req.header('Transfer-Encoding') === undefined) {
      if (Number(declared) > maxBytes) throw tooLarge()
      return next()
    }
    const reader = body.getReader()
    const chunks: Uint8Array[] = []
    let size = 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > maxBytes) {
        await drain(reader, drainBytes)
        throw tooLarge()
      }
      chunks.push(value)
    }
    const buffered = new Uint8Array(size)
    let offset = 0
    for (const chunk of chunks) {
      buffered.set(chunk, offset)
      offset += chunk.byteLength
    }
    c.req.raw = new Request(c.req.raw, { body: buffered })
    return next()
  }
}
