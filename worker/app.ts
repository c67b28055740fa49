// The Worker's HTTP API, a thin Hono router: health, the OpenAPI document,
// the channel list, a channel's stats, cursor reads (JSON or NDJSON), one frame of a message as
// octets, the live tail (Server-Sent Events), leased pulls, acks and dead letters, and the
// bridges' ingest WebSocket, which
// goes to the channel's Durable Object once checked here (checking in the Worker keeps refused
// requests from being billed as Durable Object requests).

import { OpenAPIHono, type RouteConfig, type RouteHandler } from '@hono/zod-openapi'
import type { Context, MiddlewareHandler } from 'hono'
import { accepts } from 'hono/accepts'
import { cors } from 'hono/cors'
import { HTTPException } from 'hono/http-exception'
import { secureHeaders } from 'hono/secure-headers'
import { streamSSE } from 'hono/streaming'
import { directoryStub } from '../durable/channel-directory'
import type { Waited } from '../durable/channel-object'
import { DEFAULT_GROUP, MAX_GROUPS } from '../durable/consumer-groups'
import type { KeyChanges, KeyRefusal } from '../durable/key-store'
import { MAX_KEYS } from '../durable/key-store'
import type { MessagePage } from '../durable/message-store'
import {
  FEED_CHANNELS_HEADER,
  FEED_CREDENTIAL_HEADER,
  FEED_EXPIRES_HEADER,
  MAX_TOKENS,
  registryStub,
  type TokenRecord,
} from '../durable/registry'
import { MAX_LIMIT } from '../shared/api/limits'
import { matchesChannel, patternWithin } from '../shared/channel-pattern'
import { parseCurveKey } from '../shared/curve-key-text'
import {
  negotiateRelayVersion,
  parseRelaySession,
  RELAY_PROTOCOL_VERSIONS,
  relaySubprotocol,
  TOKEN_EXPIRES_HEADER,
  TOKEN_ID_HEADER,
} from '../shared/relay-protocol'
import { z85Encode } from '../shared/z85'
import { openapiDocument } from './api/document'
import * as routes from './api/routes'
import { scopeOf } from './api/routes'
import { parseEventCursor, validationError } from './api/validation'
import {
  type AuthVariables,
  bearerToken,
  checkBridgeBinding,
  checkDelegation,
  forgetToken,
  type Principal,
  requireScope,
  stillAllowed,
  TOKEN_CACHE_MS,
} from './auth'
import { bodyLimit } from './body-limit'
import { CF_API_PREFIX, cfErrorEnvelope, cfSuccess, queueTarget, toCfMessage } from './cf-queues'
import { ApiError, ErrorCode, errorBody } from './errors'
import { MessageJsonWriter } from './message-json'
import {
  type FrameEncoding,
  toApiDeadLetter,
  toApiGroup,
  toApiHistory,
  toApiKey,
  toApiLeasedMessage,
  toApiStats,
  toApiToken,
} from './present'
import { mintToken, newRecordId } from './token-format'

/**
 * Most frame octets one messages response carries (base64 makes the body about 4/3 of it).
 * A message over LARGE_MESSAGE_BYTES (durable/message-store.ts, also 8 MiB) is listed without
 * its frames and weighs 16 octets per frame; so a first message of up to 8 MiB comes alone, and
 * no response is far over this.
 */
export const MAX_PAGE_FRAME_BYTES = 8 * 1024 * 1024

/** Largest JSON request body (1000 lease ids take about 40 KiB). */
export const MAX_REQUEST_BYTES = 256 * 1024

/** Media type of a messages response streamed one JSON message per line. */
export const NDJSON_MEDIA_TYPE = 'application/x-ndjson'

/** Header of an NDJSON messages response carrying the `next` cursor of the JSON response. */
export const NEXT_HEADER = 'Zmq-Edge-Next'

/**
 * The live tail's timing. `keepAliveMs`: how long an event stream stays silent before it sends
 * a comment line, which keeps proxies from closing an idle connection. Tests may shorten it.
 */
export const EVENT_STREAM = { keepAliveMs: 15_000, refusedRetryMs: 1_000 }

type AppEnv = { Bindings: Env; Variables: AuthVariables }

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i

/**
 * Before a JSON body's schema is checked: its size (413 payload_too_large, see ./body-limit.ts)
 * and its Content-Type (415 unsupported_media_type).
 */
const JSON_BODY: MiddlewareHandler<AppEnv>[] = [
  bodyLimit(MAX_REQUEST_BYTES),
  async (c, next) => {
    const mediaType = (c.req.header('Content-Type') ?? '').split(';')[0]?.trim() ?? ''
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      throw new ApiError(
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        'the body must be JSON (Content-Type: application/json)',
      )
    }
    // The schema's validator reads only a plain JSON Content-Type (no `+json` suffix, no space
    // before parameters): what passed here is JSON, so it is given as that.
    if (mediaType !== 'application/json' || c.req.header('Content-Type') !== mediaType) {
      const headers = new Headers(c.req.raw.headers)
      headers.set('Content-Type', 'application/json')
      c.req.raw = new Request(c.req.raw, { headers })
    }
    await next()
  },
]

/**
 * The value of a call the channel may refuse: 429 when it has too many waiting already, 404 for a
 * consumer group that does not exist, 409 for one group too many.
 */
function unwrap<T>(result: Waited<T>, group?: string): T {
  if (result.ok) return result.value
  switch (result.reason) {
    case 'group_not_found':
      throw new ApiError(
        404,
        ErrorCode.GROUP_NOT_FOUND,
        `no consumer group ${group}; create it with PUT (only "default" is created by a pull)`,
      )
    case 'group_full':
      throw new ApiError(
        409,
        ErrorCode.GROUP_FULL,
        `consumer group ${group} tracks as much as it can: ack leases, or let them expire`,
      )
    case 'too_many_groups':
      throw new ApiError(
        409,
        ErrorCode.TOO_MANY_GROUPS,
        `a channel holds at most ${MAX_GROUPS} consumer groups`,
      )
    default:
      throw new ApiError(
        429,
        ErrorCode.TOO_MANY_WAITERS,
        'too many requests wait on this channel',
        {
          headers: { 'Retry-After': '1' },
        },
      )
  }
}

function channelStub(env: Env, channel: string) {
  return env.CHANNEL.get(env.CHANNEL.idFromName(channel))
}

/** The Worker's Hono app; `app.request(url, init, env)` runs it without a server. */
export const app = new OpenAPIHono<AppEnv>({
  // A request that breaks a route's schema: the API's error with the code of the part at fault.
  defaultHook: (result) => {
    if (!result.success) throw validationError(result.target, result.error)
  },
})

// Hono's defaults (nosniff, no referrer, HSTS, no framing…), but not on a WebSocket upgrade:
// its 101 comes from the channel's object with headers nobody may change. (The dashboard's
// page is a static asset with its own headers: worker/dashboard/build.ts.)
const securityHeaders = secureHeaders({ xFrameOptions: 'DENY' })
app.use(async (c, next) => {
  if (c.req.header('Upgrade')) return next()
  return securityHeaders(c, next)
})

/**
 * CORS for browser clients on other origins, only those listed in CORS_ALLOWED_ORIGINS
 * (comma-separated origins, or `*`); off when it is empty, as by default. The tokens travel in
 * `Authorization`, never in cookies, so no credentials mode.
 */
function corsFor(allowed: string): MiddlewareHandler | undefined {
  const origins = allowed
    .split(',')
    .map((origin) => origin.trim())
    .filter(Boolean)
  if (origins.length === 0) return undefined
  return cors({
    origin: origins.includes('*') ? '*' : origins,
    allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type', 'Accept', 'Last-Event-ID'],
    exposeHeaders: [NEXT_HEADER, 'Retry-After', 'Content-Disposition'],
    maxAge: 600,
  })
}
// One middleware per setting, made once per isolate.
let corsMiddleware: { allowed: string; handler: MiddlewareHandler | undefined } | undefined
app.use(`${CF_API_PREFIX}/*`, cfErrorEnvelope)
app.use('/v1/*', async (c, next) => {
  const allowed = c.env.CORS_ALLOWED_ORIGINS ?? ''
  if (corsMiddleware?.allowed !== allowed) corsMiddleware = { allowed, handler: corsFor(allowed) }
  return corsMiddleware.handler ? corsMiddleware.handler(c, next) : next()
})

/** A handler of route `R`, its context typed by the route's schemas. */
type Handler<R extends RouteConfig> = (
  c: Parameters<RouteHandler<R, AppEnv>>[0],
) => Response | Promise<Response>

/**
 * Registers a route of ./api/routes.ts: its credential is checked first, for the scope its
 * definition names and the channel its path names (./auth.ts); then its parameters and body, by
 * its schemas, before `handler` runs (defaultHook above). Handlers build their own responses
 * (streams, JSON written from stored segments); the schemas describe them, and tests hold real
 * answers to them.
 */
function route<R extends RouteConfig>(
  definition: R,
  middleware: MiddlewareHandler<AppEnv>[],
  handler: Handler<R>,
): void {
  const scope = scopeOf(definition)
  // The channel the path names: its {channel}, or the channel of a Cloudflare Queues queue id.
  const channelOf = definition.path.includes('{channel}')
    ? (c: Context<AppEnv>) => c.req.param('channel')
    : definition.path.includes('{queue_id}')
      ? (c: Context<AppEnv>) => queueTarget(c.req.param('queue_id') ?? '').channel
      : undefined
  const auth = scope ? [requireScope(scope, { channelOf })] : []
  app.openapi({ ...definition, middleware: [...auth, ...middleware] } as R, handler as never)
}

// The channels the directory knows, each with its stats, asked of every channel's object at
// once (at most MAX_LIST_CHANNELS a page; `next` is the `after` of the following page). A
// channel whose object fails is listed with an error.
route(routes.listChannelsRoute, [], async (c) => {
  const query = c.req.valid('query')
  // Only the channels the credential reaches (all for a root secret); a cursor among them only
  // (order=recent looks the cursor's channel up: another would tell it exists).
  const { channels } = c.get('principal')
  if (query.after !== undefined && !matchesChannel(channels, query.after)) {
    throw new ApiError(400, ErrorCode.INVALID_QUERY, 'after must be a channel this token reaches')
  }
  const page = await directoryStub(c.env).list(
    channels.includes('*') ? query : { ...query, patterns: [...channels] },
  )
  const listed = await Promise.all(
    page.channels.map(async ({ name }) => {
      try {
        return toApiStats(name, await channelStub(c.env, name).stats())
      } catch (error) {
        console.error('channel stats failed', { channel: name, error: String(error) })
        return { channel: name, ...errorBody(ErrorCode.INTERNAL, 'the channel did not answer') }
      }
    }),
  )
  c.header('Cache-Control', 'no-store')
  return c.json({
    channels: listed,
    total: page.total,
    truncated: page.next !== undefined,
    ...(page.next === undefined ? {} : { next: page.next }),
  })
})

route(routes.channelStatsRoute, [], async (c) => {
  const { channel } = c.req.valid('param')
  const stats = await channelStub(c.env, channel).stats()
  return c.json(toApiStats(channel, stats))
})

route(routes.channelHistoryRoute, [], async (c) => {
  const { channel } = c.req.valid('param')
  const history = await channelStub(c.env, channel).history()
  c.header('Cache-Control', 'no-store')
  return c.json(toApiHistory(channel, history))
})

/** Whether the client asked for NDJSON (`Accept: application/x-ndjson`). */

/**
 * Octets of NDJSON formatted per chunk of the stream: its cost is per chunk (again at each proxy
 * on the way), so chunks are large; 512 KiB chunks read 40 % faster than 64 KiB ones.
 */
const NDJSON_CHUNK_BYTES = 512 * 1024

/**
 * A body of one JSON message per line, formatted a chunk of lines at a time as the client reads
 * on, so a large page is never held as one big JSON string.
 */
function ndjsonStream(lines: Generator<[number, string]>): ReadableStream {
  const encoder = new TextEncoder()
  return new ReadableStream(
    {
      pull(controller) {
        let chunk = ''
        while (chunk.length < NDJSON_CHUNK_BYTES) {
          const next = lines.next()
          if (next.done) break
          chunk += `${next.value[1]}\n`
        }
        if (chunk.length === 0) {
          controller.close()
          return
        }
        controller.enqueue(encoder.encode(chunk))
      },
    },
    { highWaterMark: 0 },
  )
}

/** The seq of a page's last message, if it has one. */
function lastSeqOf(page: MessagePage): number | undefined {
  const part = page.parts.at(-1)
  if (!part) return undefined
  if ('messages' in part) return part.messages.at(-1)?.seq
  return part.firstSeq + part.from + part.count - 1
}

route(routes.readMessagesRoute, [], async (c) => {
  const { channel } = c.req.valid('param')
  const { after, limit, wait: waitMs, encoding } = c.req.valid('query')
  const page = unwrap(
    await channelStub(c.env, channel).readPage({
      after,
      limit,
      maxBytes: MAX_PAGE_FRAME_BYTES,
      waitMs,
    }),
  )
  // `next` is the `after` of the following call: the last seq returned, else `after` itself.
  const next = lastSeqOf(page) ?? after
  const lines = new MessageJsonWriter(channel, encoding).page(page)
  const mediaType = accepts(c, {
    header: 'Accept',
    supports: ['application/json', NDJSON_MEDIA_TYPE],
    default: 'application/json',
  })
  if (mediaType === NDJSON_MEDIA_TYPE) {
    return new Response(ndjsonStream(lines), {
      headers: {
        'Content-Type': `${NDJSON_MEDIA_TYPE}; charset=utf-8`,
        [NEXT_HEADER]: String(next),
        Vary: 'Accept',
      },
    })
  }
  // The body written as text: the same JSON as c.json of the API's objects, a few times faster.
  const messages: string[] = []
  for (const [, json] of lines) messages.push(json)
  const body = `{"channel":${JSON.stringify(channel)},"messages":[${messages.join(',')}],"next":${next}}`
  return new Response(body, {
    headers: { 'Content-Type': 'application/json', Vary: 'Accept' },
  })
})

// One frame of a message as octets: the way to a large message's frames, which reads list
// without them (`framesUrl`), and works for any message. The object streams it from storage a
// piece at a time; FixedLengthStream gives the response its Content-Length and fails it, rather
// than end it short, if the stream breaks (e.g. retention removes the message meanwhile):
// https://developers.cloudflare.com/workers/runtime-apis/streams/transformstream/#fixedlengthstream
route(routes.readFrameRoute, [], async (c) => {
  const { channel, seq, index } = c.req.valid('param')
  const frame = await channelStub(c.env, channel).readFrame(seq, index)
  if (frame.status === 'message_not_found') {
    throw new ApiError(404, ErrorCode.MESSAGE_NOT_FOUND, `channel ${channel} has no message ${seq}`)
  }
  if (frame.status === 'frame_not_found') {
    throw new ApiError(
      404,
      ErrorCode.FRAME_NOT_FOUND,
      `message ${seq} has ${frame.frameCount} frames, indexed from 0`,
    )
  }
  const { readable, writable } = new FixedLengthStream(frame.size)
  frame.body.pipeTo(writable).catch((error: unknown) => {
    console.error('frame stream failed', { channel, seq, index, error: String(error) })
  })
  return new Response(readable, {
    headers: {
      'Content-Type': 'application/octet-stream',
      // Also set by FixedLengthStream on the wire; written here so the header is there in any case.
      'Content-Length': String(frame.size),
      'Content-Disposition': `attachment; filename="${channel}-${seq}-${index}.bin"`,
      'X-Content-Type-Options': 'nosniff',
    },
  })
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** One Server-Sent Event per message: `id: <seq>`, `event: message`, `data: <its JSON>`. */
function sseEvents(channel: string, page: MessagePage, encoding: FrameEncoding): string {
  // JSON never holds a raw line break, so `data` is one line.
  let events = ''
  for (const [seq, json] of new MessageJsonWriter(channel, encoding).page(page)) {
    events += `id: ${seq}\nevent: message\ndata: ${json}\n\n`
  }
  return events
}

route(routes.tailEventsRoute, [], async (c) => {
  const { channel } = c.req.valid('param')
  const { encoding } = c.req.valid('query')
  // A reconnecting EventSource sends Last-Event-ID: it wins over `after`.
  let cursor = parseEventCursor(c.req.header('Last-Event-ID'), c.req.query('after'))
  const stub = channelStub(c.env, channel)
  // A scoped token is checked again between reads, at least every TOKEN_CACHE_MS: the stream
  // ends once it is deleted, changed or expired (the EventSource's reconnect then gets a 401).
  const principal = c.get('principal')
  const token = principal.root ? '' : bearerToken(c)
  const waitMs = principal.root
    ? EVENT_STREAM.keepAliveMs
    : Math.min(EVENT_STREAM.keepAliveMs, TOKEN_CACHE_MS)
  c.header('X-Accel-Buffering', 'no')
  const response = streamSSE(c, async (stream) => {
    // The first chunk goes out at once, so the client sees the stream is open.
    await stream.write(': connected\n\n')
    // Each read waits in the object for the next insert (its waiter mechanism, as long polls
    // do) or the keep-alive interval, whichever is first, then sends what it found: a page of
    // events in one write, which waits while the client has not read the last one.
    while (!stream.aborted) {
      const result = await stub.readPage({
        after: cursor,
        limit: MAX_LIMIT,
        maxBytes: MAX_PAGE_FRAME_BYTES,
        waitMs,
      })
      if (stream.aborted) return
      if (!principal.root && !(await stillAllowed(c.env, token, 'read', channel))) return
      if (!result.ok) {
        // Too many requests wait on the channel: try again shortly, without a busy loop.
        await sleep(EVENT_STREAM.refusedRetryMs)
        continue
      }
      if (result.value.count === 0) {
        await stream.write(': keep-alive\n\n')
        continue
      }
      cursor = lastSeqOf(result.value) ?? cursor
      await stream.write(sseEvents(channel, result.value, encoding))
    }
  })
  // SSE is UTF-8 whatever the header says (WHATWG HTML §9.2.5); said for other readers.
  response.headers.set('Content-Type', 'text/event-stream; charset=utf-8')
  return response
})

/** A consumer route's channel and group: `default` on the routes from before groups. */
type Target = { channel: string; group: string }

const target = (param: { channel: string; group?: string }): Target => ({
  channel: param.channel,
  group: param.group ?? DEFAULT_GROUP,
})

async function pull(
  env: Env,
  { channel, group }: Target,
  body: { batchSize: number; visibilityTimeoutMs: number; wait: number },
  encoding: FrameEncoding,
) {
  const leased = unwrap(
    await channelStub(env, channel).pull({
      batchSize: body.batchSize,
      visibilityTimeoutMs: body.visibilityTimeoutMs,
      waitMs: Math.round(body.wait * 1000),
      group,
      maxBytes: MAX_PAGE_FRAME_BYTES,
    }),
    group,
  )
  return {
    channel,
    group,
    messages: leased.map((message) => toApiLeasedMessage(channel, message, encoding)),
  }
}

async function ack(
  env: Env,
  { channel, group }: Target,
  body: { acks?: string[]; retries?: { leaseId: string; delayMs: number }[] },
) {
  const outcome = unwrap(
    await channelStub(env, channel).settle({
      acks: body.acks ?? [],
      retries: body.retries ?? [],
      group,
    }),
    group,
  )
  return { channel, group, ...outcome }
}

async function extend(
  env: Env,
  { channel, group }: Target,
  body: { leaseIds: string[]; visibilityTimeoutMs: number },
) {
  const outcome = unwrap(
    await channelStub(env, channel).extendLeases(body.leaseIds, body.visibilityTimeoutMs, group),
    group,
  )
  return { channel, group, ...outcome }
}

async function deadLetters(
  env: Env,
  { channel, group }: Target,
  query: { after: number; limit: number; encoding: FrameEncoding },
) {
  const { after, limit, encoding } = query
  const dead = unwrap(
    await channelStub(env, channel).deadLetters({
      group,
      after,
      limit,
      maxBytes: MAX_PAGE_FRAME_BYTES,
    }),
    group,
  )
  return {
    channel,
    group,
    messages: dead.map((message) => toApiDeadLetter(channel, message, encoding)),
    next: dead.at(-1)?.seq ?? after,
  }
}

async function redrive(env: Env, { channel, group }: Target, body: { seqs?: number[] }) {
  const moved = unwrap(await channelStub(env, channel).redrive(body.seqs, group), group)
  return { channel, group, redriven: moved.length }
}

// The Cloudflare Queues pull-consumer adapter (./cf-queues.ts): the same leases, in Cloudflare's
// shapes. A pull does not wait (Cloudflare's answers at once).
route(routes.cfPullRoute, JSON_BODY, async (c) => {
  const { channel, group } = queueTarget(c.req.valid('param').queue_id)
  const body = c.req.valid('json')
  const pulled = unwrap(
    await channelStub(c.env, channel).pullWithBacklog({
      batchSize: body.batch_size,
      visibilityTimeoutMs: body.visibility_timeout_ms ?? body.visibility_timeout ?? 30_000,
      waitMs: 0,
      group,
      maxBytes: MAX_PAGE_FRAME_BYTES,
    }),
    group,
  )
  return c.json(
    cfSuccess({
      message_backlog_count: pulled.backlog,
      messages: pulled.messages.map((message) => toCfMessage(channel, message)),
    }),
  )
})

route(routes.cfAckRoute, JSON_BODY, async (c) => {
  const body = c.req.valid('json')
  const outcome = await ack(c.env, queueTarget(c.req.valid('param').queue_id), {
    acks: (body.acks ?? []).map((entry) => entry.lease_id),
    retries: (body.retries ?? []).map((entry) => ({
      leaseId: entry.lease_id,
      delayMs: entry.delay_seconds * 1000,
    })),
  })
  return c.json(
    cfSuccess({
      ackCount: outcome.acked,
      retryCount: outcome.retried + outcome.deadLettered,
      warnings: outcome.unknown.map(
        (leaseId) =>
          `lease ${leaseId} is not its message's current lease (acked, retried, or leased again)`,
      ),
    }),
  )
})

// The leased-consumer routes: of group `default` under /:channel (the routes from before
// groups), and of any group under /:channel/groups/:group.
for (const definition of [routes.pullRoute, routes.pullGroupRoute]) {
  route(definition, JSON_BODY, async (c) =>
    c.json(
      await pull(
        c.env,
        target(c.req.valid('param')),
        c.req.valid('json'),
        c.req.valid('query').encoding,
      ),
    ),
  )
}
for (const definition of [routes.ackRoute, routes.ackGroupRoute]) {
  route(definition, JSON_BODY, async (c) =>
    c.json(await ack(c.env, target(c.req.valid('param')), c.req.valid('json'))),
  )
}
for (const definition of [routes.extendLeasesRoute, routes.extendGroupLeasesRoute]) {
  route(definition, JSON_BODY, async (c) =>
    c.json(await extend(c.env, target(c.req.valid('param')), c.req.valid('json'))),
  )
}
for (const definition of [routes.deadLettersRoute, routes.groupDeadLettersRoute]) {
  route(definition, [], async (c) =>
    c.json(await deadLetters(c.env, target(c.req.valid('param')), c.req.valid('query'))),
  )
}
for (const definition of [routes.redriveRoute, routes.redriveGroupRoute]) {
  route(definition, JSON_BODY, async (c) =>
    c.json(await redrive(c.env, target(c.req.valid('param')), c.req.valid('json'))),
  )
}

route(routes.listGroupsRoute, [], async (c) => {
  const { channel } = c.req.valid('param')
  const groups = await channelStub(c.env, channel).listGroups()
  return c.json({ channel, groups: groups.map(toApiGroup) })
})

route(routes.getGroupRoute, [], async (c) => {
  const { channel, group } = c.req.valid('param')
  const info = unwrap(await channelStub(c.env, channel).group(group), group)
  return c.json({ channel, group: toApiGroup(info) })
})

route(routes.putGroupRoute, JSON_BODY, async (c) => {
  const { channel, group } = c.req.valid('param')
  const { start } = c.req.valid('json')
  const put = unwrap(await channelStub(c.env, channel).putGroup(group, start), group)
  return c.json(
    { channel, created: put.created, group: toApiGroup(put.group) },
    put.created ? 201 : 200,
  )
})

route(routes.deleteGroupRoute, [], async (c) => {
  const { channel, group } = c.req.valid('param')
  unwrap(await channelStub(c.env, channel).deleteGroup(group), group)
  return c.body(null, 204)
})

// Checked here, before the channel's object is called (and billed): the upgrade, the relay
// protocol version (as a WebSocket subprotocol) and the session headers.
route(routes.ingestRoute, [], async (c) => {
  const { channel } = c.req.valid('param')
  if (c.req.header('Upgrade')?.toLowerCase() !== 'websocket') {
    throw new ApiError(426, ErrorCode.UPGRADE_REQUIRED, 'this route takes a WebSocket upgrade', {
      headers: { Upgrade: 'websocket' },
    })
  }
  if (negotiateRelayVersion(c.req.header('Sec-WebSocket-Protocol') ?? null) === undefined) {
    throw new ApiError(
      400,
      ErrorCode.UNSUPPORTED_RELAY_VERSION,
      `this Worker speaks relay protocol ${RELAY_PROTOCOL_VERSIONS.join(' or ')} (Sec-WebSocket-Protocol: ${RELAY_PROTOCOL_VERSIONS.map(relaySubprotocol).join(', ')}); upgrade the bridge`,
    )
  }
  const session = parseRelaySession(c.req.raw.headers)
  if ('error' in session) throw new ApiError(400, ErrorCode.INVALID_SESSION, session.error)
  const principal = c.get('principal')
  await checkBridgeBinding(c.env, principal, session.bridgeId)
  // The object is told which scoped token this is (and nothing a bridge said of it), so it can
  // close the socket once the token is deleted or expires.
  const headers = new Headers(c.req.raw.headers)
  headers.delete(TOKEN_ID_HEADER)
  headers.delete(TOKEN_EXPIRES_HEADER)
  if (!principal.root) {
    headers.set(TOKEN_ID_HEADER, principal.credential)
    if (principal.expiresAt !== undefined) {
      headers.set(TOKEN_EXPIRES_HEADER, String(principal.expiresAt))
    }
  }
  return channelStub(c.env, channel).fetch(new Request(c.req.raw, { headers }))
})

// Scoped API tokens, kept by the registry: made here (the secret never reaches the registry,
// only its hash), listed and deleted there.

route(routes.createTokenRoute, JSON_BODY, async (c) => {
  const body = c.req.valid('json')
  const principal = c.get('principal')
  // A scoped admin token hands on no more than it holds (./auth.ts).
  if (!principal.root) checkDelegation(principal, body)
  // The route let the request in with the admin scope, so ADMIN_TOKEN is set (it signs tokens).
  const minted = await mintToken(c.env.ADMIN_TOKEN as string)
  const record: TokenRecord = {
    id: minted.id,
    name: body.name,
    scopes: body.scopes,
    channels: body.channels,
    ...(body.bridgeId === undefined ? {} : { bridgeId: body.bridgeId }),
    createdAt: Date.now(),
    ...(body.expiresAt === undefined ? {} : { expiresAt: Date.parse(body.expiresAt) }),
    createdBy: principal.root ? 'ADMIN_TOKEN' : principal.credential,
  }
  const created = await registryStub(c.env).createToken({
    ...record,
    secretHash: minted.secretHash,
  })
  if (!created.ok) {
    throw new ApiError(
      409,
      ErrorCode.TOO_MANY_TOKENS,
      `the registry holds ${MAX_TOKENS} tokens; delete some`,
    )
  }
  forgetToken(record.id, record.bridgeId)
  // The secret is in this answer only: no cache may keep it.
  c.header('Cache-Control', 'no-store')
  return c.json({ ...toApiToken(record), token: minted.token }, 201)
})

// A scoped admin token sees and deletes only the tokens it made (and theirs, with them).
route(routes.listTokensRoute, [], async (c) => {
  const principal = c.get('principal')
  const tokens = await registryStub(c.env).listTokens(
    principal.root ? undefined : principal.credential,
  )
  c.header('Cache-Control', 'no-store')
  return c.json({ tokens: tokens.map(toApiToken) })
})

route(routes.deleteTokenRoute, [], async (c) => {
  const { id } = c.req.valid('param')
  const principal = c.get('principal')
  const deleted = await registryStub(c.env).deleteToken(
    id,
    principal.root ? undefined : principal.credential,
  )
  if (deleted.length === 0) {
    throw new ApiError(404, ErrorCode.TOKEN_NOT_FOUND, `no token has id ${id}`)
  }
  for (const token of deleted) forgetToken(token.id, token.bridgeId)
  return c.body(null, 204)
})

// CURVE client keys, kept by the registry. A scoped admin token manages only the records whose
// channels are all within its own: its patterns go with each call and the registry checks them
// in the change's own transaction (a record moved out of reach meanwhile is not touched).
function reachOf(principal: Principal): string[] | undefined {
  return principal.root ? undefined : [...principal.channels]
}

function keyRefused(refusal: KeyRefusal, id?: string): never {
  if (refusal === 'key_exists') {
    throw new ApiError(409, ErrorCode.KEY_EXISTS, 'that public key is another record’s')
  }
  if (refusal === 'full') {
    throw new ApiError(409, ErrorCode.TOO_MANY_KEYS, `the registry holds ${MAX_KEYS} key records`)
  }
  if (refusal === 'revoked') {
    throw new ApiError(
      409,
      ErrorCode.KEY_REVOKED,
      'the key record is revoked: its public keys stay its own, and only ADMIN_TOKEN deletes it',
    )
  }
  throw new ApiError(404, ErrorCode.KEY_NOT_FOUND, `no key record has id ${id}`)
}

function checkKeyChannels(principal: Principal, channels: readonly string[]): void {
  if (!principal.root && !channels.every((pattern) => patternWithin(pattern, principal.channels))) {
    throw new ApiError(
      403,
      ErrorCode.FORBIDDEN,
      'this token cannot give a key channels it does not reach',
    )
  }
}

// Registered before GET /v1/keys/{id}, which would take `feed` for an id.
route(routes.keyFeedRoute, [], async (c) => {
  if (c.req.header('Upgrade')?.toLowerCase() !== 'websocket') {
    throw new ApiError(426, ErrorCode.UPGRADE_REQUIRED, 'this route takes a WebSocket upgrade', {
      headers: { Upgrade: 'websocket' },
    })
  }
  // The registry is told which credential this is and what it reaches, and nothing a client said.
  const principal = c.get('principal')
  const headers = new Headers(c.req.raw.headers)
  for (const name of [FEED_CHANNELS_HEADER, FEED_CREDENTIAL_HEADER, FEED_EXPIRES_HEADER]) {
    headers.delete(name)
  }
  if (!principal.channels.includes('*')) {
    headers.set(FEED_CHANNELS_HEADER, JSON.stringify(principal.channels))
  }
  if (!principal.root) headers.set(FEED_CREDENTIAL_HEADER, principal.credential)
  if (principal.expiresAt !== undefined) {
    headers.set(FEED_EXPIRES_HEADER, String(principal.expiresAt))
  }
  return registryStub(c.env).fetch(new Request(c.req.raw, { headers }))
})

// Registered before GET /v1/keys/{id}, which would take `refusals` for an id.
route(routes.keyRefusalsRoute, [], async (c) => {
  if (!c.get('principal').root) {
    throw new ApiError(
      403,
      ErrorCode.FORBIDDEN,
      'only ADMIN_TOKEN reads the refusals: they name keys of every channel',
    )
  }
  const { limit } = c.req.valid('query')
  const rows = await registryStub(c.env).refusals(limit)
  c.header('Cache-Control', 'no-store')
  return c.json({
    refusals: rows.map((row) => ({ ...row, lastAt: new Date(row.lastAt).toISOString() })),
  })
})

route(routes.createKeyRoute, JSON_BODY, async (c) => {
  const body = c.req.valid('json')
  const principal = c.get('principal')
  checkKeyChannels(principal, body.channels)
  const now = Date.now()
  const created = await registryStub(c.env).createKey({
    id: newRecordId(),
    name: body.name,
    publicKey: parseCurveKey(body.publicKey, 'publicKey'),
    ...(body.secondPublicKey === undefined
      ? {}
      : { secondPublicKey: parseCurveKey(body.secondPublicKey, 'secondPublicKey') }),
    channels: body.channels,
    labels: body.labels,
    ...(body.rateLimit === undefined ? {} : { rateLimit: body.rateLimit }),
    createdAt: now,
    ...(body.expiresAt === undefined ? {} : { expiresAt: Date.parse(body.expiresAt) }),
  })
  if (typeof created === 'string') keyRefused(created)
  return c.json(toApiKey(created, now), 201)
})

route(routes.listKeysRoute, [], async (c) => {
  const { limit, after, status, label } = c.req.valid('query')
  const split = label?.indexOf('=') ?? -1
  const page = await registryStub(c.env).listKeys(
    {
      limit,
      ...(after === undefined ? {} : { after }),
      ...(status === undefined ? {} : { status }),
      ...(label === undefined ? {} : { label: [label.slice(0, split), label.slice(split + 1)] }),
    },
    reachOf(c.get('principal')),
  )
  const now = Date.now()
  c.header('Cache-Control', 'no-store')
  return c.json({
    keys: page.keys.map((record) => toApiKey(record, now)),
    ...(page.next === undefined ? {} : { next: page.next }),
  })
})

route(routes.getKeyRoute, [], async (c) => {
  const { id } = c.req.valid('param')
  const registry = registryStub(c.env)
  const record = await registry.key(id, reachOf(c.get('principal')))
  if (!record) keyRefused('not_found', id)
  const keys = [record.publicKey, ...(record.secondPublicKey ? [record.secondPublicKey] : [])]
  const stats = await registry.keyStats(keys.map((key) => z85Encode(key)))
  c.header('Cache-Control', 'no-store')
  return c.json({
    ...toApiKey(record, Date.now()),
    stats: {
      ...stats,
      lastSeenAt:
        stats.lastSeenAt === undefined ? undefined : new Date(stats.lastSeenAt).toISOString(),
    },
  })
})

route(routes.updateKeyRoute, JSON_BODY, async (c) => {
  const { id } = c.req.valid('param')
  const body = c.req.valid('json')
  const principal = c.get('principal')
  if (body.channels !== undefined) checkKeyChannels(principal, body.channels)
  const changes: KeyChanges = {
    ...(body.name === undefined ? {} : { name: body.name }),
    ...(body.publicKey === undefined
      ? {}
      : { publicKey: parseCurveKey(body.publicKey, 'publicKey') }),
    ...(body.secondPublicKey === undefined
      ? {}
      : {
          secondPublicKey:
            body.secondPublicKey === null
              ? null
              : parseCurveKey(body.secondPublicKey, 'secondPublicKey'),
        }),
    ...(body.channels === undefined ? {} : { channels: body.channels }),
    ...(body.labels === undefined ? {} : { labels: body.labels }),
    ...(body.rateLimit === undefined ? {} : { rateLimit: body.rateLimit }),
    ...(body.expiresAt === undefined
      ? {}
      : { expiresAt: body.expiresAt === null ? null : Date.parse(body.expiresAt) }),
  }
  const updated = await registryStub(c.env).updateKey(id, changes, reachOf(principal))
  if (typeof updated === 'string') keyRefused(updated, id)
  return c.json(toApiKey(updated, Date.now()))
})

route(routes.revokeKeyRoute, [], async (c) => {
  const { id } = c.req.valid('param')
  const revoked = await registryStub(c.env).revokeKey(id, reachOf(c.get('principal')))
  if (typeof revoked === 'string') keyRefused(revoked, id)
  return c.json(toApiKey(revoked, Date.now()))
})

route(routes.deleteKeyRoute, [], async (c) => {
  const { id } = c.req.valid('param')
  const deleted = await registryStub(c.env).deleteKey(id, reachOf(c.get('principal')))
  if (deleted !== true) keyRefused(deleted, id)
  return c.body(null, 204)
})

// The dashboard's page is a static asset (worker/dashboard/), served before the Worker runs;
// only its description is the Worker's.
app.openAPIRegistry.registerPath(routes.dashboardRoute)

route(routes.healthRoute, [], (c) =>
  c.json({
    status: 'ok',
    // Whether each route can serve; never the tokens themselves.
    configured: {
      read: Boolean(c.env.READ_TOKEN),
      ingest: Boolean(c.env.INGEST_TOKEN),
      admin: Boolean(c.env.ADMIN_TOKEN),
    },
  }),
)

// Generated once per isolate, from the routes registered above.
let document: ReturnType<typeof openapiDocument> | undefined
route(routes.openapiRoute, [], (c) => {
  document ??= openapiDocument(app)
  return c.json(document)
})

app.notFound((c) =>
  c.json(errorBody(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`), 404),
)

app.onError((error, c) => {
  if (error instanceof ApiError) {
    return c.json(errorBody(error.code, error.message), error.status, error.headers)
  }
  // Hono's own refusals: bearer-auth's (their response made in our shape, ./auth.ts), or a
  // body that is not JSON.
  if (error instanceof HTTPException) {
    if (error.res) return error.getResponse()
    if (error.status === 400) return c.json(errorBody(ErrorCode.INVALID_BODY, error.message), 400)
    if (error.status === 415) {
      return c.json(errorBody(ErrorCode.UNSUPPORTED_MEDIA_TYPE, error.message), 415)
    }
  }
  console.error('unhandled error', {
    method: c.req.method,
    path: c.req.path,
    error: error instanceof Error ? (error.stack ?? error.message) : String(error),
  })
  return c.json(errorBody(ErrorCode.INTERNAL, 'internal error'), 500)
})
