// The OpenAPI 3.1 document of the HTTP API, generated from the routes' schemas (./routes.ts):
// served at /v1/openapi.json and committed as docs/openapi.json, which a test keeps equal.

import type { OpenAPIHono } from '@hono/zod-openapi'
import type { Env as HonoEnv } from 'hono'

const INFO = {
  title: 'zmq-edge HTTP API',
  version: '1.0.0',
  description:
    "Read the ZeroMQ messages a zmq-edge bridge relays into a channel: cursor reads with long polling (as JSON or NDJSON), a live tail as Server-Sent Events, leased consumption with acks, retries and dead letters, and channel stats. Frames are base64 by default; `encoding=utf8` gives text frames as strings. The channel's log is the source of truth: leased consumers belong to consumer groups, each with its own position, leases and dead letters, and acking only marks a message consumed for that group; cursor readers see every stored message. Retention (per channel, wrangler vars): messages older than RETENTION_MAX_AGE_SECONDS leave the log, acked or not. When a batch would exceed RETENTION_MAX_MESSAGES or RETENTION_MAX_BYTES, only messages every active consumer group has acked are deleted to make room under OVERFLOW_POLICY `block` (the default; otherwise the batch is refused and the bridge keeps it: nothing unacked is lost; a group idle past GROUP_INACTIVE_SECONDS no longer counts), and the oldest messages whatever their state under `drop-oldest` (counted as `dropped`). Cursor readers and the live tail read the log as it is: a cursor before the oldest message kept continues from the oldest one, and the gap shows in the seqs.",
}

/** The document of `app`'s routes (each registered with app.openapi). */
export function openapiDocument<E extends HonoEnv>(app: OpenAPIHono<E>) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
    description:
      "A root secret (READ_TOKEN: read and consume; INGEST_TOKEN: ingest; ADMIN_TOKEN: admin; every channel) or a scoped token (POST /v1/tokens). Each operation's security requirement names the scope it needs (read: reads; consume: read, and leases, acks and groups; ingest: bridges; admin: tokens); a route under /v1/channels/{channel} also needs a token that reaches the channel. A valid token without them gets 403.",
  })
  return app.getOpenAPI31Document({
    openapi: '3.1.0',
    info: INFO,
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
  })
}
