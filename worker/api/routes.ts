// Every route of the HTTP API as an OpenAPI operation: its parameters, body and answers, made
// of ./schemas.ts. The app (../app.ts) registers a handler for each; the document is generated
// from them (./document.ts).

import { createRoute, z } from '@hono/zod-openapi'
import {
  AckRequestSchema,
  AckResponseSchema,
  AfterQuery,
  CfAccountIdParam,
  CfAckRequestSchema,
  CfAckResponseSchema,
  CfErrorSchema,
  CfPullRequestSchema,
  CfPullResponseSchema,
  CfQueueIdParam,
  ChannelHistorySchema,
  ChannelListSchema,
  ChannelParam,
  ChannelStatsSchema,
  CreatedTokenSchema,
  DeadLetterPageSchema,
  DeadLetterQuery,
  EncodingQuery,
  ErrorSchema,
  ExtendRequestSchema,
  ExtendResponseSchema,
  FrameIndexParam,
  GroupListSchema,
  GroupParam,
  GroupRequestSchema,
  GroupResponseSchema,
  KeyIdParam,
  KeyListQuery,
  KeyListSchema,
  KeyPatchSchema,
  KeyRequestSchema,
  KeySchema,
  ListQuery,
  limitQuery,
  MessagePageSchema,
  PullRequestSchema,
  PullResponseSchema,
  PutGroupResponseSchema,
  ReadQuery,
  RedriveRequestSchema,
  RedriveResponseSchema,
  RefusalListSchema,
  SeqParam,
  TokenIdParam,
  TokenListSchema,
  TokenRequestSchema,
} from '../../shared/api/schemas'
import { SCOPES, type Scope } from '../../shared/api/scopes'

/** The error answers the routes share, each the API's JSON error shape. */
const ERROR_RESPONSES = {
  BadRequest: {
    description: 'invalid_channel, invalid_group, invalid_query or invalid_body',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  Unauthorized: {
    description: 'unauthorized: the bearer token is missing or wrong',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  Forbidden: {
    description:
      "forbidden: a valid token without the route's scope, or not for this channel (docs/curve-and-keys.md)",
    content: { 'application/json': { schema: ErrorSchema } },
  },
  NotConfigured: {
    description:
      "not_configured: neither the route's root secret nor ADMIN_TOKEN (which scoped tokens need) is set",
    content: { 'application/json': { schema: ErrorSchema } },
  },
  PayloadTooLarge: {
    description: 'payload_too_large: the body is over 256 KiB',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  UnsupportedMediaType: {
    description: 'unsupported_media_type: the body is not application/json',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  TooManyWaiters: {
    description:
      'too_many_waiters: 1000 requests already wait on this channel; retry after Retry-After seconds',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  GroupNotFound: {
    description:
      'group_not_found: the channel has no consumer group of that name (only `default` is created by itself, at its first pull)',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  TooManyGroups: {
    description: 'too_many_groups: the channel already holds 100 consumer groups',
    content: { 'application/json': { schema: ErrorSchema } },
  },
  GroupFull: {
    description:
      "group_full: the group's state is at its cap (1 MiB of JSON: many runs of messages retried with different delays, or extended apart); this call would grow it. Ack leases, or let them expire, and try again. Acks are always taken.",
    content: { 'application/json': { schema: ErrorSchema } },
  },
} as const

/** What every route that checks a token and its request may answer besides its own. */
const CHECKED = {
  400: ERROR_RESPONSES.BadRequest,
  401: ERROR_RESPONSES.Unauthorized,
  403: ERROR_RESPONSES.Forbidden,
  503: ERROR_RESPONSES.NotConfigured,
} as const

/** What a route that takes a JSON body may answer about the body itself. */
const JSON_BODY_ERRORS = {
  413: ERROR_RESPONSES.PayloadTooLarge,
  415: ERROR_RESPONSES.UnsupportedMediaType,
} as const

/**
 * The credential a route needs: a bearer token holding `scope` (../../shared/api/scopes.ts), as
 * an OpenAPI 3.1 security requirement with the scope as its role. The app takes each route's
 * scope from here (../app.ts), so the document and the checks cannot differ.
 */
function needs(scope: Scope) {
  return [{ bearer: [scope] }]
}

/**
 * The scope a route needs; undefined for a public one (`security: []`).
 * @throws Error for a route that says nothing, or anything but one known scope: no route is
 * public by mistake.
 */
export function scopeOf(definition: {
  security?: Array<Record<string, string[]>>
}): Scope | undefined {
  const { security } = definition
  if (security?.length === 0) return undefined
  const scopes = security?.length === 1 ? security[0]?.bearer : undefined
  const scope = scopes?.length === 1 ? scopes[0] : undefined
  if (!SCOPES.includes(scope as Scope)) {
    throw new Error('every route says its security: needs(scope), or [] for a public one')
  }
  return scope as Scope
}

/** A 200 with a JSON body of `schema`. */
function ok<S extends z.ZodType>(schema: S) {
  return { description: 'OK', content: { 'application/json': { schema } } } as const
}

/** A required JSON request body of `schema`. */
function jsonBody<S extends z.ZodType>(schema: S) {
  return { required: true, content: { 'application/json': { schema } } } as const
}

export const dashboardRoute = createRoute({
  method: 'get',
  path: '/',
  operationId: 'dashboard',
  summary: 'The dashboard: an HTML page that signs in with the read token and watches the channels',
  description:
    "A self-contained page, served from the Worker's static assets without running the Worker (inline style and script allowed by their hashes in a strict Content-Security-Policy, Trusted Types required). It holds no data: its script reads `GET /v1/channels?order=recent` every 5 s while the tab is visible (after a failure it waits 10, 20, 40, then 60 s, or as long as a `Retry-After` says) and a chosen channel's last 25 messages, one read at a time, with the token typed in, kept in sessionStorage and sent as `Authorization: Bearer`. Served with `Cache-Control: no-store, no-transform`.",
  security: [],
  responses: { 200: { description: 'OK', content: { 'text/html': { schema: z.string() } } } },
})

export const healthRoute = createRoute({
  method: 'get',
  path: '/v1/health',
  operationId: 'health',
  summary: 'Liveness, and which tokens are configured',
  security: [],
  responses: {
    200: {
      description: 'OK',
      content: {
        'application/json': {
          schema: z.object({
            status: z.unknown(),
            configured: z.object({
              read: z.boolean().optional(),
              ingest: z.boolean().optional(),
              admin: z.boolean().optional(),
            }),
          }),
        },
      },
    },
  },
})

export const openapiRoute = createRoute({
  method: 'get',
  path: '/v1/openapi.json',
  operationId: 'openapi',
  summary: 'This document',
  security: [],
  responses: {
    200: {
      description: 'OK',
      content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
})

export const listChannelsRoute = createRoute({
  method: 'get',
  path: '/v1/channels',
  operationId: 'listChannels',
  security: needs('read'),
  summary: 'The channels, each with its stats',
  description:
    "Every channel that has had a bridge connect or a batch stored (a channel's object tells the channel directory about itself on its first bridge socket or batch, and again at most daily), in name order or, with `order=recent`, the most recently seen first, each with the stats of `GET /v1/channels/{channel}`, asked of the channels' objects at once. At most `limit` (up to 100) channels a page: when more follow, `truncated` is true and `next` is the `after` of the following page. A channel whose object does not answer is listed with an `error` instead of its stats. Served with `Cache-Control: no-store`.",
  request: { query: ListQuery },
  responses: {
    200: ok(ChannelListSchema),
    ...CHECKED,
  },
})

export const channelStatsRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}',
  operationId: 'channelStats',
  security: needs('read'),
  summary: "A channel's log, queue, bridges and counters",
  request: { params: z.object({ channel: ChannelParam }) },
  responses: {
    200: ok(ChannelStatsSchema),
    ...CHECKED,
  },
})

export const channelHistoryRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/history',
  operationId: 'channelHistory',
  security: needs('read'),
  summary: "A channel's last hour, minute by minute",
  description:
    "Messages stored and acked in each of the last 60 minutes, and the messages in the log and each consumer group's lag at each minute's end: what the dashboard charts. The channel's object keeps these in memory, sampled by the first change of each minute (never per batch), and writes them with its state at most once a minute. Served with `Cache-Control: no-store`.",
  request: { params: z.object({ channel: ChannelParam }) },
  responses: {
    200: ok(ChannelHistorySchema),
    ...CHECKED,
  },
})

export const readMessagesRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/messages',
  operationId: 'readMessages',
  security: needs('read'),
  summary: 'Messages after a cursor, oldest first; optionally waits for the next one',
  description:
    'Returns at most `limit` messages and at most 8 MiB of frame octets. A message over 8 MiB comes without its frames (`frames: null`, see `Message`) and weighs 16 octets per frame against the cap. With nothing after `after` and `wait` > 0 the request is held until a batch is stored (the insert wakes it) or the wait ends; then `messages` is empty and `next` equals `after`. With `Accept: application/x-ndjson` the same page is streamed as one `Message` per line, formatted as the client reads, and `next` comes in the `Zmq-Edge-Next` header.',
  request: {
    params: z.object({ channel: ChannelParam }),
    query: ReadQuery,
    headers: z.object({
      accept: z
        .string()
        .optional()
        .openapi({
          param: { in: 'header' },
          description:
            '`application/x-ndjson` streams the page as one JSON message per line (newline-terminated, same caps); the `next` cursor is then in the `Zmq-Edge-Next` response header. Anything else gives the JSON page.',
        }),
    }),
  },
  responses: {
    200: {
      description: 'OK',
      headers: {
        'Zmq-Edge-Next': {
          description: 'NDJSON responses only: the `after` of the next call.',
          schema: { type: 'integer' },
        },
      },
      content: {
        'application/json': { schema: MessagePageSchema },
        'application/x-ndjson': {
          schema: z.string().openapi({
            description:
              'One `Message` (JSON, see components/schemas/Message) per line, each line ending in \\n; empty when nothing is after the cursor.',
          }),
        },
      },
    },
    ...CHECKED,
    429: ERROR_RESPONSES.TooManyWaiters,
  },
})

export const readFrameRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/messages/{seq}/frames/{index}',
  operationId: 'readFrame',
  security: needs('read'),
  summary: 'One frame of a message, as octets',
  description:
    "Frame `index` (from 0) of message `seq`, byte for byte, with its Content-Length: how a large message's frames are fetched (reads list it with `frames: null` and this path, less the index, as `framesUrl`); it works for any stored message. The Durable Object reads only that frame, streamed from storage a piece at a time. If retention removes the message while the frame is being sent, the response is cut short (its length then does not match Content-Length).",
  request: {
    params: z.object({
      channel: ChannelParam,
      seq: SeqParam,
      index: FrameIndexParam,
    }),
  },
  responses: {
    200: {
      description: "The frame's octets.",
      headers: {
        'Content-Length': { description: "The frame's octets.", schema: { type: 'integer' } },
        'Content-Disposition': {
          description: '`attachment; filename="{channel}-{seq}-{index}.bin"`',
          schema: { type: 'string' },
        },
      },
      content: { 'application/octet-stream': { schema: z.string() } },
    },
    400: {
      description:
        'invalid_channel, or invalid_path: a seq that is not an integer >= 1 or an index that is not an integer >= 0',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    401: ERROR_RESPONSES.Unauthorized,
    403: ERROR_RESPONSES.Forbidden,
    404: {
      description:
        'message_not_found: no message with that seq (never stored, or removed by retention); frame_not_found: the message has no frame with that index',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    503: ERROR_RESPONSES.NotConfigured,
  },
})

export const tailEventsRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/events',
  operationId: 'tailEvents',
  security: needs('read'),
  summary:
    'Live tail: the messages after a cursor as Server-Sent Events, then each new one as it is stored',
  description:
    'Streams `text/event-stream`. It opens with the comment `: connected`, then sends every message after the cursor, oldest first, and then each new message as soon as its batch is stored (the insert wakes the stream, as it wakes long polls). Each message is one event: `id: <seq>`, `event: message`, `data: <the Message as one line of JSON>`. After 15 seconds without a message the stream sends the comment `: keep-alive`. The stream ends when the client disconnects. To resume, reconnect with `Last-Event-ID: <last seq received>` (an EventSource does so by itself): it takes precedence over `after`, and only later messages are sent. Like the other readers, the tail is not affected by acks.',
  request: {
    params: z.object({ channel: ChannelParam }),
    query: z.object({ after: AfterQuery, encoding: EncodingQuery }),
    headers: z.object({
      'last-event-id': z
        .string()
        .optional()
        .openapi({
          param: { in: 'header' },
          description:
            'The `id` (seq) of the last event received; the stream resumes after it. Takes precedence over `after`.',
        }),
    }),
  },
  responses: {
    200: {
      description: 'The event stream',
      content: {
        'text/event-stream': {
          schema: z
            .string()
            .openapi({ description: 'Server-Sent Events; each `data` is one `Message` in JSON.' }),
        },
      },
    },
    ...CHECKED,
  },
})

const CHANNEL = z.object({ channel: ChannelParam })
const CHANNEL_AND_GROUP = z.object({ channel: ChannelParam, group: GroupParam })

// What each consumer route takes and answers, the same for group `default` (the routes from
// before groups, under /v1/channels/{channel}) and for any group (under .../groups/{group},
// which may also answer 404).

const PULL_REQUEST = {
  query: z.object({ encoding: EncodingQuery }),
  body: jsonBody(PullRequestSchema),
} as const

const PULL_RESPONSES = {
  200: ok(PullResponseSchema),
  ...CHECKED,
  ...JSON_BODY_ERRORS,
  429: ERROR_RESPONSES.TooManyWaiters,
  409: ERROR_RESPONSES.GroupFull,
} as const

const ACK_REQUEST = {
  body: jsonBody(AckRequestSchema),
} as const

const ACK_RESPONSES = {
  200: ok(AckResponseSchema),
  ...CHECKED,
  ...JSON_BODY_ERRORS,
  409: ERROR_RESPONSES.GroupFull,
} as const

const EXTEND_REQUEST = {
  body: jsonBody(ExtendRequestSchema),
} as const

const EXTEND_RESPONSES = {
  200: ok(ExtendResponseSchema),
  ...CHECKED,
  ...JSON_BODY_ERRORS,
  409: ERROR_RESPONSES.GroupFull,
} as const

const DEAD_LETTERS_REQUEST = {
  query: DeadLetterQuery,
} as const

const DEAD_LETTERS_RESPONSES = {
  200: ok(DeadLetterPageSchema),
  ...CHECKED,
} as const

const REDRIVE_REQUEST = {
  body: jsonBody(RedriveRequestSchema),
} as const

const REDRIVE_RESPONSES = {
  200: ok(RedriveResponseSchema),
  ...CHECKED,
  ...JSON_BODY_ERRORS,
  409: ERROR_RESPONSES.GroupFull,
} as const

export const pullRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/pull',
  operationId: 'pull',
  security: needs('consume'),
  summary: 'Lease available messages (competing consumers of group `default`)',
  description:
    'Leases up to `batchSize` available messages, oldest first, within 8 MiB of frames (a message over 8 MiB is leased without its frames, as reads list it), for `visibilityTimeoutMs`. A message is never leased to two consumers at once. With none available and `wait` > 0, waits for an insert, a retry, a redrive or an expiring lease. A message whose lease expires without an ack is delivered again with `attempts` + 1; after its `maxAttempts`-th attempt (wrangler var MAX_ATTEMPTS, default 5) it becomes a dead letter. These routes without `/groups/{group}` are consumer group `default`, created at its first pull from the earliest message in the log; before that, acks list every lease id in `unknown`, extends extend none, and it has no dead letters.',
  request: { params: CHANNEL, ...PULL_REQUEST },
  responses: PULL_RESPONSES,
})

export const ackRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/ack',
  operationId: 'ack',
  security: needs('consume'),
  summary: 'Ack leased messages, or retry them after a delay',
  description:
    "An ack removes the message from the queue (not from the log). A retry makes it available again after `delayMs`, or makes it a dead letter when that was its last attempt. A lease id counts while it is the message's current lease, even expired, as long as nobody has leased the message again; others are listed in `unknown`. Acks are applied before retries. One call may hold the lease ids of several pulls.",
  request: { params: CHANNEL, ...ACK_REQUEST },
  responses: ACK_RESPONSES,
})

export const extendLeasesRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/leases/extend',
  operationId: 'extendLeases',
  security: needs('consume'),
  summary: 'Extend unexpired leases',
  description:
    'Each unexpired lease now expires `visibilityTimeoutMs` from now (shorter than before is allowed). Expired or unknown lease ids are listed in `unknown`.',
  request: { params: CHANNEL, ...EXTEND_REQUEST },
  responses: EXTEND_RESPONSES,
})

export const deadLettersRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/dead-letters',
  operationId: 'deadLetters',
  security: needs('read'),
  summary: 'Messages whose every attempt failed, by seq',
  request: { params: CHANNEL, ...DEAD_LETTERS_REQUEST },
  responses: DEAD_LETTERS_RESPONSES,
})

export const redriveRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/dead-letters/redrive',
  operationId: 'redrive',
  security: needs('consume'),
  summary: 'Send dead letters back to the queue, attempts reset',
  request: { params: CHANNEL, ...REDRIVE_REQUEST },
  responses: REDRIVE_RESPONSES,
})

export const listGroupsRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/groups',
  operationId: 'listGroups',
  security: needs('read'),
  summary: "A channel's consumer groups, with their lag",
  request: { params: z.object({ channel: ChannelParam }) },
  responses: {
    200: ok(GroupListSchema),
    ...CHECKED,
  },
})

export const getGroupRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/groups/{group}',
  operationId: 'getGroup',
  security: needs('read'),
  summary: 'One consumer group: its position, lag and counters',
  request: { params: z.object({ channel: ChannelParam, group: GroupParam }) },
  responses: {
    200: ok(GroupResponseSchema),
    400: ERROR_RESPONSES.BadRequest,
    401: ERROR_RESPONSES.Unauthorized,
    403: ERROR_RESPONSES.Forbidden,
    404: ERROR_RESPONSES.GroupNotFound,
    503: ERROR_RESPONSES.NotConfigured,
  },
})

export const putGroupRoute = createRoute({
  method: 'put',
  path: '/v1/channels/{channel}/groups/{group}',
  operationId: 'putGroup',
  security: needs('consume'),
  summary: 'Create a consumer group',
  description:
    'Creates the group at `start`; a group that exists is left as it is (`created: false`, `start` ignored). Each group reads the whole log on its own: its own leases, acks and dead letters. A channel holds at most 100 groups. Only `default` is created without this, at its first pull.',
  request: {
    params: z.object({ channel: ChannelParam, group: GroupParam }),
    body: jsonBody(GroupRequestSchema),
  },
  responses: {
    201: {
      description: 'Created (`created: true`).',
      content: { 'application/json': { schema: PutGroupResponseSchema } },
    },
    200: {
      description: 'The group existed (`created: false`); left as it is.',
      content: { 'application/json': { schema: PutGroupResponseSchema } },
    },
    400: ERROR_RESPONSES.BadRequest,
    401: ERROR_RESPONSES.Unauthorized,
    403: ERROR_RESPONSES.Forbidden,
    409: ERROR_RESPONSES.TooManyGroups,
    ...JSON_BODY_ERRORS,
    503: ERROR_RESPONSES.NotConfigured,
  },
})

export const deleteGroupRoute = createRoute({
  method: 'delete',
  path: '/v1/channels/{channel}/groups/{group}',
  operationId: 'deleteGroup',
  security: needs('consume'),
  summary: 'Delete a consumer group, with its leases and dead letters',
  description:
    'The log is not touched. Lease ids of the group are not accepted again, even by a group created later under the same name. `default` deleted is created again by its next pull, from the earliest message.',
  request: { params: z.object({ channel: ChannelParam, group: GroupParam }) },
  responses: {
    204: { description: 'Deleted.' },
    400: ERROR_RESPONSES.BadRequest,
    401: ERROR_RESPONSES.Unauthorized,
    403: ERROR_RESPONSES.Forbidden,
    404: ERROR_RESPONSES.GroupNotFound,
    503: ERROR_RESPONSES.NotConfigured,
  },
})

export const pullGroupRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/groups/{group}/pull',
  operationId: 'pullGroup',
  security: needs('consume'),
  summary: 'Lease available messages (competing consumers of one group)',
  description:
    'As `POST /v1/channels/{channel}/pull`, for consumer group `group`; a group that does not exist is 404 group_not_found (only `default` is created by a pull).',
  request: { params: CHANNEL_AND_GROUP, ...PULL_REQUEST },
  responses: { ...PULL_RESPONSES, 404: ERROR_RESPONSES.GroupNotFound },
})

export const ackGroupRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/groups/{group}/ack',
  operationId: 'ackGroup',
  security: needs('consume'),
  summary: 'Ack leased messages, or retry them after a delay',
  description:
    'As `POST /v1/channels/{channel}/ack`, for consumer group `group`; a group that does not exist is 404 group_not_found (only `default` is created by a pull).',
  request: { params: CHANNEL_AND_GROUP, ...ACK_REQUEST },
  responses: { ...ACK_RESPONSES, 404: ERROR_RESPONSES.GroupNotFound },
})

export const extendGroupLeasesRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/groups/{group}/leases/extend',
  operationId: 'extendGroupLeases',
  security: needs('consume'),
  summary: 'Extend unexpired leases',
  description:
    'As `POST /v1/channels/{channel}/leases/extend`, for consumer group `group`; a group that does not exist is 404 group_not_found (only `default` is created by a pull).',
  request: { params: CHANNEL_AND_GROUP, ...EXTEND_REQUEST },
  responses: { ...EXTEND_RESPONSES, 404: ERROR_RESPONSES.GroupNotFound },
})

export const groupDeadLettersRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/groups/{group}/dead-letters',
  operationId: 'groupDeadLetters',
  security: needs('read'),
  summary: 'Messages whose every attempt failed, by seq',
  description:
    'As `GET /v1/channels/{channel}/dead-letters`, for consumer group `group`; a group that does not exist is 404 group_not_found (only `default` is created by a pull).',
  request: { params: CHANNEL_AND_GROUP, ...DEAD_LETTERS_REQUEST },
  responses: { ...DEAD_LETTERS_RESPONSES, 404: ERROR_RESPONSES.GroupNotFound },
})

export const redriveGroupRoute = createRoute({
  method: 'post',
  path: '/v1/channels/{channel}/groups/{group}/dead-letters/redrive',
  operationId: 'redriveGroup',
  security: needs('consume'),
  summary: 'Send dead letters back to the queue, attempts reset',
  description:
    'As `POST /v1/channels/{channel}/dead-letters/redrive`, for consumer group `group`; a group that does not exist is 404 group_not_found (only `default` is created by a pull).',
  request: { params: CHANNEL_AND_GROUP, ...REDRIVE_REQUEST },
  responses: { ...REDRIVE_RESPONSES, 404: ERROR_RESPONSES.GroupNotFound },
})

export const ingestRoute = createRoute({
  method: 'get',
  path: '/v1/channels/{channel}/ingest',
  operationId: 'ingest',
  security: needs('ingest'),
  summary: "The bridges' WebSocket (relay protocol v2, docs/relay-protocol.md)",
  description:
    "Authenticated with INGEST_TOKEN or a token with the ingest scope. The upgrade offers the subprotocol zmq-edge.relay.v3 (or v2, still taken) and names the bridge's session in X-Zmq-Edge-Bridge-Id and X-Zmq-Edge-Epoch; the channel's object confirms the subprotocol and sends a WELCOME first.",
  request: {
    params: z.object({ channel: ChannelParam }),
    headers: z.object({
      'sec-websocket-protocol': z
        .string()
        .optional()
        .openapi({
          param: { in: 'header' },
          description: 'must include zmq-edge.relay.v3 or zmq-edge.relay.v2',
        }),
      'x-zmq-edge-bridge-id': z
        .string()
        .optional()
        .openapi({ param: { in: 'header' } }),
      'x-zmq-edge-epoch': z
        .string()
        .optional()
        .openapi({
          param: { in: 'header' },
          description:
            "the epoch of the bridge's batch numbering, 0 to 2^53-1 (0 only for a numbering relay protocol version 1 left)",
        }),
    }),
  },
  responses: {
    101: { description: 'Switching Protocols' },
    426: {
      description: 'Not a WebSocket upgrade (code upgrade_required)',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    400: {
      description:
        'invalid_channel; unsupported_relay_version (neither zmq-edge.relay.v3 nor v2 offered: an older bridge); invalid_session (a bad bridge id or epoch header, or epoch 0 not allowed)',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    401: ERROR_RESPONSES.Unauthorized,
    403: {
      description:
        'forbidden: the token has no ingest scope or does not reach the channel; bridge_id_bound: the token connects as another bridge id, or the bridge id is bound to a token of its own',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    503: ERROR_RESPONSES.NotConfigured,
  },
})

export const createTokenRoute = createRoute({
  method: 'post',
  path: '/v1/tokens',
  operationId: 'createToken',
  security: needs('admin'),
  summary: 'Create a scoped API token',
  description:
    'Needs the admin scope (ADMIN_TOKEN). The token reaches only its channels, with only its scopes, until `expiresAt` or its deletion (seen everywhere within 5 seconds). It is signed with a key derived from ADMIN_TOKEN: changing ADMIN_TOKEN voids every scoped token. The registry holds at most 1000 tokens.',
  request: { body: jsonBody(TokenRequestSchema) },
  responses: {
    201: {
      description: 'Created: the token is in `token`, shown this once.',
      content: { 'application/json': { schema: CreatedTokenSchema } },
    },
    ...CHECKED,
    409: {
      description: 'too_many_tokens: the registry holds 1000 tokens; delete some',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    ...JSON_BODY_ERRORS,
  },
})

export const listTokensRoute = createRoute({
  method: 'get',
  path: '/v1/tokens',
  operationId: 'listTokens',
  security: needs('admin'),
  summary: 'List the scoped API tokens (never their secrets)',
  description: 'Needs the admin scope. Expired tokens are listed until deleted.',
  responses: {
    200: ok(TokenListSchema),
    ...CHECKED,
  },
})

export const deleteTokenRoute = createRoute({
  method: 'delete',
  path: '/v1/tokens/{id}',
  operationId: 'deleteToken',
  security: needs('admin'),
  summary: 'Delete a scoped API token',
  description:
    'Needs the admin scope. The token stops working within 5 seconds everywhere (each Worker isolate trusts what it read of a token for 5 seconds).',
  request: { params: z.object({ id: TokenIdParam }) },
  responses: {
    204: { description: 'Deleted.' },
    ...CHECKED,
    404: {
      description: 'token_not_found: no token has this id',
      content: { 'application/json': { schema: ErrorSchema } },
    },
  },
})

const KEY_ERRORS = {
  404: {
    description: 'key_not_found: no key record has this id',
    content: { 'application/json': { schema: ErrorSchema } },
  },
} as const

const KEY_CONFLICT = {
  409: {
    description:
      'key_exists: the public key (or second public key) is another record’s; too_many_keys: the registry holds 100,000 records',
    content: { 'application/json': { schema: ErrorSchema } },
  },
} as const

const KEY_ADMIN_NOTE =
  'Needs the admin scope; a scoped admin token manages only records whose channels are all within its own.'

export const createKeyRoute = createRoute({
  method: 'post',
  path: '/v1/keys',
  operationId: 'createKey',
  security: needs('admin'),
  summary: 'Register a CURVE client key',
  description: `Bridges with --key-registry admit the key on CURVE listeners of its channels until it is revoked, expired or deleted. ${KEY_ADMIN_NOTE}`,
  request: { body: jsonBody(KeyRequestSchema) },
  responses: {
    201: { description: 'Registered.', content: { 'application/json': { schema: KeySchema } } },
    ...CHECKED,
    ...KEY_CONFLICT,
    ...JSON_BODY_ERRORS,
  },
})

export const listKeysRoute = createRoute({
  method: 'get',
  path: '/v1/keys',
  operationId: 'listKeys',
  security: needs('admin'),
  summary: 'List CURVE client keys',
  description: `In id order, a page at a time; by status or label. ${KEY_ADMIN_NOTE}`,
  request: { query: KeyListQuery },
  responses: { 200: ok(KeyListSchema), ...CHECKED },
})

export const getKeyRoute = createRoute({
  method: 'get',
  path: '/v1/keys/{id}',
  operationId: 'getKey',
  security: needs('admin'),
  summary: 'One CURVE client key',
  description: KEY_ADMIN_NOTE,
  request: { params: z.object({ id: KeyIdParam }) },
  responses: { 200: ok(KeySchema), ...CHECKED, ...KEY_ERRORS },
})

export const updateKeyRoute = createRoute({
  method: 'patch',
  path: '/v1/keys/{id}',
  operationId: 'updateKey',
  security: needs('admin'),
  summary: 'Change a CURVE client key',
  description: `The fields given replace the record's; \`null\` removes secondPublicKey, rateLimit or expiresAt. To rotate: set secondPublicKey to the new key, let the client move to it, then set publicKey to it (the second key is dropped when equal). A revoked record's public keys do not change. ${KEY_ADMIN_NOTE}`,
  request: { params: z.object({ id: KeyIdParam }), body: jsonBody(KeyPatchSchema) },
  responses: {
    200: ok(KeySchema),
    ...CHECKED,
    ...KEY_ERRORS,
    409: {
      description:
        'key_exists: the public key (or second public key) is another record’s; key_revoked: the record is revoked and the change names its public keys',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    ...JSON_BODY_ERRORS,
  },
})

export const revokeKeyRoute = createRoute({
  method: 'post',
  path: '/v1/keys/{id}/revoke',
  operationId: 'revokeKey',
  security: needs('admin'),
  summary: 'Revoke a CURVE client key',
  description: `Bridges close its connections and refuse it from then on; the record stays, listed as revoked, until deleted. ${KEY_ADMIN_NOTE}`,
  request: { params: z.object({ id: KeyIdParam }) },
  responses: { 200: ok(KeySchema), ...CHECKED, ...KEY_ERRORS },
})

export const deleteKeyRoute = createRoute({
  method: 'delete',
  path: '/v1/keys/{id}',
  operationId: 'deleteKey',
  security: needs('admin'),
  summary: 'Delete a CURVE client key',
  description: `As revoking, and the record is gone, its public keys free to be registered again: so a revoked record is deleted by ADMIN_TOKEN itself only. ${KEY_ADMIN_NOTE}`,
  request: { params: z.object({ id: KeyIdParam }) },
  responses: {
    204: { description: 'Deleted.' },
    ...CHECKED,
    ...KEY_ERRORS,
    409: {
      description: 'key_revoked: the record is revoked, and only ADMIN_TOKEN deletes it',
      content: { 'application/json': { schema: ErrorSchema } },
    },
  },
})

export const keyFeedRoute = createRoute({
  method: 'get',
  path: '/v1/keys/feed',
  operationId: 'keyFeed',
  security: needs('ingest'),
  summary: "A bridge's feed of the key registry (WebSocket)",
  description:
    'For bridges with --key-registry, with their ingest credential. JSON text messages: the registry in `snapshot` pages (the last has `last: true`), then a `change` (a record created or changed) or `delete` for each change as it is made. A scoped ingest token gets the records whose channels overlap its own. docs/key-feed.md.',
  responses: {
    101: { description: 'Switching Protocols' },
    426: {
      description: 'upgrade_required: not a WebSocket upgrade',
      content: { 'application/json': { schema: ErrorSchema } },
    },
    ...CHECKED,
  },
})

export const keyRefusalsRoute = createRoute({
  method: 'get',
  path: '/v1/keys/refusals',
  operationId: 'keyRefusals',
  security: needs('admin'),
  summary: 'CURVE handshakes refused by bridges, in aggregate',
  description:
    'Counts per key, bridge and reason (unknown_key, revoked, expired, channel_not_allowed, bad_box), as bridges with --key-registry report them every 10 s; the latest first, at most `limit`. Only ADMIN_TOKEN reads them: they name keys of every channel.',
  request: { query: z.object({ limit: limitQuery(1000, 100) }) },
  responses: { 200: ok(RefusalListSchema), ...CHECKED },
})

// --- The Cloudflare Queues pull-consumer adapter (../cf-queues.ts) ---

/** Its errors: Cloudflare's envelope, with zmq-edge's `error` beside `errors`. */
const cfError = (description: string) =>
  ({ description, content: { 'application/json': { schema: CfErrorSchema } } }) as const

const CF_ERRORS = {
  400: cfError("invalid_body or invalid_channel (the queue id), in Cloudflare's envelope"),
  401: cfError("unauthorized: the bearer token (the SDK's apiToken) is missing or wrong"),
  403: cfError('forbidden: a token without the consume scope, or not for this channel'),
  404: cfError('group_not_found: the channel has no such consumer group'),
  413: cfError('payload_too_large'),
  415: cfError('unsupported_media_type'),
  503: cfError('not_configured'),
} as const

const CF_PARAMS = z.object({ account_id: CfAccountIdParam, queue_id: CfQueueIdParam })

const CF_NOTE =
  "Cloudflare Queues' HTTP pull API, so its SDK works unchanged with `baseURL: https://<worker>/cf/client/v4` and a zmq-edge token as `apiToken`. The queue id is a channel (consumer group `default`) or `channel~group`; `account_id` is ignored. The leases are the group's own (docs/http-api.md: Cloudflare Queues pull consumers)."

export const cfPullRoute = createRoute({
  method: 'post',
  path: '/cf/client/v4/accounts/{account_id}/queues/{queue_id}/messages/pull',
  operationId: 'cfPull',
  security: needs('consume'),
  summary: "Lease messages, as Cloudflare Queues' pull",
  description: `As POST /v1/channels/{channel}/pull, without waiting: up to \`batch_size\` (default 5, at most 100) available messages for \`visibility_timeout_ms\` (default 30 s). One UTF-8 frame is the body as text (CF-Content-Type text), one other frame its base64 (bytes), several frames a JSON array of their base64 (json). ${CF_NOTE}`,
  request: { params: CF_PARAMS, body: jsonBody(CfPullRequestSchema) },
  responses: { 200: ok(CfPullResponseSchema), ...CF_ERRORS },
})

export const cfAckRoute = createRoute({
  method: 'post',
  path: '/cf/client/v4/accounts/{account_id}/queues/{queue_id}/messages/ack',
  operationId: 'cfAck',
  security: needs('consume'),
  summary: "Ack or retry leased messages, as Cloudflare Queues' ack",
  description: `As POST /v1/channels/{channel}/ack: \`acks\` remove messages from the group's queue, \`retries\` make them available again after \`delay_seconds\` (or dead letters, on their last attempt). A lease id that is not its message's current lease is a warning, not an error. ${CF_NOTE}`,
  request: { params: CF_PARAMS, body: jsonBody(CfAckRequestSchema) },
  responses: { 200: ok(CfAckResponseSchema), ...CF_ERRORS },
})
