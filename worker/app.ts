// The Worker's HTTP API, a thin Hono router: health, a channel's messages, and the bridges'
// ingest WebSocket, which goes to the channel's Durable Object once checked here (checking in
// the Worker keeps refused requests from being billed as Durable Object requests).

import { Hono } from 'hono'
import { requireBearer } from './auth'
import { ApiError, ErrorCode, errorBody } from './errors'
import { toApiMessage } from './present'
import { parseChannel, parseReadQuery } from './validate'

/**
 * Most frame octets one messages response carries (base64 makes the body about 4/3 of it).
 * A larger first message is still returned whole, alone.
 */
export const MAX_PAGE_FRAME_BYTES = 8 * 1024 * 1024

type AppEnv = { Bindings: Env }

const channels = new Hono<AppEnv>()

channels.get('/:channel/messages', requireBearer('READ_TOKEN'), async (c) => {
  const channel = parseChannel(c.req.param('channel'))
  const { after, limit } = parseReadQuery(c.req.query())
  const stub = c.env.CHANNEL.get(c.env.CHANNEL.idFromName(channel))
  const stored = await stub.readMessages({ after, limit, maxBytes: MAX_PAGE_FRAME_BYTES })
  // `next` is the `after` of the following call: the last seq returned, else `after` itself.
  const next = stored.at(-1)?.seq ?? after
  return c.json({ channel, messages: stored.map(toApiMessage), next })
})

channels.get('/:channel/ingest', requireBearer('INGEST_TOKEN'), async (c) => {
  const channel = parseChannel(c.req.param('channel'))
  if (c.req.header('Upgrade')?.toLowerCase() !== 'websocket') {
    throw new ApiError(426, ErrorCode.UPGRADE_REQUIRED, 'this route takes a WebSocket upgrade', {
      headers: { Upgrade: 'websocket' },
    })
  }
  const stub = c.env.CHANNEL.get(c.env.CHANNEL.idFromName(channel))
  return stub.fetch(c.req.raw)
})

/** The Worker's Hono app; `app.request(url, init, env)` runs it without a server. */
export const app = new Hono<AppEnv>()

app.get('/v1/health', (c) =>
  c.json({
    status: 'ok',
    // Whether each route can serve; never the tokens themselves.
    configured: { read: Boolean(c.env.READ_TOKEN), ingest: Boolean(c.env.INGEST_TOKEN) },
  }),
)

app.route('/v1/channels', channels)

app.notFound((c) =>
  c.json(errorBody(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`), 404),
)

app.onError((error, c) => {
  if (error instanceof ApiError) {
    return c.json(errorBody(error.code, error.message), error.status, error.headers)
  }
  console.error('unhandled error', {
    method: c.req.method,
    path: c.req.path,
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  })
  return c.json(errorBody(ErrorCode.INTERNAL, 'internal error'), 500)
})
