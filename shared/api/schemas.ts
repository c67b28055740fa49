// The HTTP API's contract as zod schemas: every route's path, query, headers, body and answers.
// The Worker checks requests with them (through Hono's validator, worker/api/validation.ts) and
// generates the OpenAPI document from them (/v1/openapi.json, docs/openapi.json); clients take
// the answers' types from them (../api-types.ts). One source, no drift.
// The components below were first written from the hand-kept document they replace.

import { z } from '@hono/zod-openapi'
import { CHANNEL_NAME_PREFIX, CHANNEL_NAME_RULE, isChannelName } from '../channel-name.ts'
import { CHANNEL_PATTERN_RULE, isChannelPattern, MAX_CHANNEL_PATTERNS } from '../channel-pattern.ts'
import { isCanonicalPublicKey, isLowOrderPoint, parseCurveKey } from '../curve-key-text.ts'
import { REFUSAL_REASONS } from '../key-feed.ts'
import { isKeyName, MAX_KEY_NAME_LENGTH } from '../key-name.ts'
import { BRIDGE_ID_PATTERN } from '../relay-protocol.ts'
import { ErrorCode } from './error-codes.ts'
import { KEY_STATUSES, LABEL_NAME, MAX_LABEL_VALUE, MAX_LABELS } from './key-records.ts'
import {
  DEFAULT_LIMIT,
  HISTORY_MINUTES,
  MAX_BATCH,
  MAX_LIMIT,
  MAX_LIST_CHANNELS,
  MAX_READ_LIMIT,
  MAX_WAIT_SECONDS,
} from './limits.ts'
import { SCOPE_MEANING, SCOPES } from './scopes.ts'

// --- Components (bodies and answers)

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.enum(Object.values(ErrorCode) as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
    }),
  })
  .openapi('Error')

export const LeaseIdSchema = z
  .string()
  .min(1)
  .max(128)
  .openapi({
    description:
      'Opaque, one per leased message: `<lease number>.<seq>` (digits, a dot, digits) as a pull gives it. The ids of several pulls may go in one request. A string of 1 to 128 characters that is not a lease of the group is listed in `unknown`, not refused.',
    examples: ['205893117446.42'],
  })
  .openapi('LeaseId')

export const VisibilityTimeoutMsSchema = z
  .number()
  .int()
  .min(1)
  .max(43200000)
  .openapi('VisibilityTimeoutMs')

export const MessageSchema = z
  .object({
    seq: z.number().int().openapi({ description: "The channel's sequence number; never reused." }),
    receivedAt: z
      .string()
      .openapi({ description: 'When the bridge received it.', format: 'date-time' }),
    frames: z.array(z.string()).nullable().openapi({
      description:
        'Each frame, in order. Base64 (RFC 4648 §4) by default; with `encoding=utf8`, a string for each frame that is valid UTF-8 and base64 for the frames whose indexes are in `binaryFrames`. Null for a large message (frames over 8 MiB in all): fetch its frames from `framesUrl`.',
    }),
    binaryFrames: z
      .array(z.number().int().min(0))
      .openapi({
        description:
          'Only with `encoding=utf8` and frames present (always there then, possibly empty): indexes, from 0, of the frames that are not valid UTF-8 and are therefore base64 in `frames`.',
      })
      .optional(),
    size: z
      .number()
      .int()
      .min(0)
      .openapi({
        description: "Only when `frames` is null: the frames' octets, all together (over 8 MiB).",
      })
      .optional(),
    frameCount: z
      .number()
      .int()
      .min(0)
      .openapi({ description: 'Only when `frames` is null: how many frames the message has.' })
      .optional(),
    frameSizes: z
      .array(z.number().int().min(0))
      .openapi({ description: "Only when `frames` is null: each frame's octets, in order." })
      .optional(),
    framesUrl: z
      .string()
      .openapi({
        description:
          "Only when `frames` is null: the path of the message's frames, relative to the API's origin (`/v1/channels/{channel}/messages/{seq}/frames`); frame `i` is at `{framesUrl}/{i}`.",
      })
      .optional(),
    peer: z.object({
      address: z.string(),
      mechanism: z.enum(['NULL', 'CURVE']),
      publicKey: z
        .string()
        .openapi({ description: "The CURVE client's public key, Z85." })
        .optional(),
      keyName: z
        .string()
        .openapi({
          description:
            "The name of the key's record in the key registry when the message was relayed: set by bridges that admit keys by the registry (`--key-registry`).",
        })
        .optional(),
    }),
  })
  .openapi({
    description:
      'A stored message. A message whose frames together exceed 8 MiB (LARGE_MESSAGE_BYTES) is listed without them, in every read: `frames` is null and `size`, `frameCount`, `frameSizes` and `framesUrl` say what to fetch, one frame at a time, from `GET {framesUrl}/{index}`. So no response is far over its cap.',
    examples: [
      {
        seq: 42,
        receivedAt: '2026-11-27T04:41:19.123Z',
        frames: ['orders', '{"id":7}', '/wA='],
        binaryFrames: [2],
        peer: { address: '10.0.0.5:40122', mechanism: 'NULL' },
      },
      {
        seq: 43,
        receivedAt: '2026-11-27T04:41:19.456Z',
        frames: null,
        size: 9437188,
        frameCount: 2,
        frameSizes: [4, 9437184],
        framesUrl: '/v1/channels/orders/messages/43/frames',
        peer: { address: '10.0.0.5:40122', mechanism: 'NULL' },
      },
    ],
  })
  .openapi('Message')

export const MessagePageSchema = z
  .object({
    channel: z.string(),
    messages: z.array(MessageSchema),
    next: z.number().int().openapi({ description: 'The `after` of the next call.' }),
  })
  .openapi('MessagePage')

export const LeasedMessageSchema = MessageSchema.extend({
  leaseId: LeaseIdSchema,
  attempts: z
    .number()
    .int()
    .min(1)
    .openapi({ description: 'Deliveries so far, this one included.' }),
  leaseExpiresAt: z.string().openapi({ format: 'date-time' }),
}).openapi('LeasedMessage')

export const DeadLetterSchema = MessageSchema.extend({
  attempts: z.number().int(),
  deadAt: z.string().openapi({ format: 'date-time' }),
  reason: z.enum(['expired', 'retried']).openapi({
    description: 'expired: the last lease ran out; retried: the last attempt was retried.',
  }),
}).openapi('DeadLetter')

export const PullRequestSchema = z
  .object({
    batchSize: z.number().int().min(1).max(1000).default(10),
    visibilityTimeoutMs: VisibilityTimeoutMsSchema.default(30000),
    wait: z
      .number()
      .min(0)
      .max(30)
      .default(0)
      .openapi({ description: 'Seconds to wait when nothing is available.' }),
  })
  .strict()
  .openapi('PullRequest')

export const AckRequestSchema = z
  .object({
    acks: z.array(LeaseIdSchema).max(1000).optional(),
    retries: z
      .array(
        z
          .object({
            leaseId: LeaseIdSchema,
            delayMs: z.number().int().min(0).max(43200000).default(0),
          })
          .strict(),
      )
      .max(1000)
      .optional(),
  })
  .strict()
  .superRefine((body, context) => {
    const total = (body.acks?.length ?? 0) + (body.retries?.length ?? 0)
    if (total === 0)
      context.addIssue({ code: 'custom', message: 'acks and retries are both empty' })
    if (total > MAX_BATCH) {
      context.addIssue({
        code: 'custom',
        message: `more than ${MAX_BATCH} lease ids in one request`,
      })
    }
  })
  .openapi({ description: 'At least one lease id, at most 1000 in all.' })
  .openapi('AckRequest')

export const AckResponseSchema = z
  .object({
    channel: z.string(),
    group: z.string().openapi({
      description: 'The consumer group (`default` on the routes without `/groups/{group}`).',
    }),
    acked: z.number().int(),
    retried: z.number().int(),
    deadLettered: z
      .number()
      .int()
      .openapi({ description: "Retries that were the message's last attempt." }),
    unknown: z.array(LeaseIdSchema).max(1000),
  })
  .openapi('AckResponse')

export const PullResponseSchema = z
  .object({
    channel: z.string(),
    group: z.string().openapi({
      description: 'The consumer group (`default` on the routes without `/groups/{group}`).',
    }),
    messages: z.array(LeasedMessageSchema),
  })
  .openapi('PullResponse')

export const ExtendRequestSchema = z
  .object({
    leaseIds: z.array(LeaseIdSchema).min(1).max(1000),
    visibilityTimeoutMs: VisibilityTimeoutMsSchema,
  })
  .strict()
  .openapi('ExtendRequest')

export const ExtendResponseSchema = z
  .object({
    channel: z.string(),
    group: z.string().openapi({
      description: 'The consumer group (`default` on the routes without `/groups/{group}`).',
    }),
    extended: z.number().int(),
    unknown: z.array(LeaseIdSchema).max(1000),
  })
  .openapi('ExtendResponse')

export const DeadLetterPageSchema = z
  .object({
    channel: z.string(),
    group: z.string().openapi({
      description: 'The consumer group (`default` on the routes without `/groups/{group}`).',
    }),
    messages: z.array(DeadLetterSchema),
    next: z.number().int().openapi({ description: 'The `after` of the next call.' }),
  })
  .openapi('DeadLetterPage')

export const RedriveRequestSchema = z
  .object({
    seqs: z.array(z.number().int().min(1)).min(1).max(1000).optional(),
  })
  .strict()
  .openapi({
    description:
      '`{}` redrives every dead letter; `seqs` only those (seqs that are not dead letters are ignored).',
  })
  .openapi('RedriveRequest')

export const RedriveResponseSchema = z
  .object({
    channel: z.string(),
    group: z.string().openapi({
      description: 'The consumer group (`default` on the routes without `/groups/{group}`).',
    }),
    redriven: z.number().int(),
  })
  .openapi('RedriveResponse')

export const LogEndSchema = z
  .object({
    seq: z.number().int(),
    receivedAt: z.string().openapi({ format: 'date-time' }),
    ageMs: z.number().int(),
  })
  .nullable()
  .openapi('LogEnd')

export const GroupSchema = z
  .object({
    name: z.string(),
    createdAt: z.string().openapi({ format: 'date-time' }),
    activeAt: z
      .string()
      .openapi({ description: 'The last pull, ack, retry or extend.', format: 'date-time' }),
    inactive: z.boolean().openapi({
      description:
        "Idle (by `activeAt`) longer than the channel's GROUP_INACTIVE_SECONDS (`config.groupInactiveMs`, default 1 day; 0: never). An inactive group no longer holds retention back under overflow policy `block`; it becomes active again at its next pull, ack, retry or extend.",
    }),
    committedOffset: z
      .number()
      .int()
      .min(0)
      .openapi({ description: 'Every seq at or below it is acked or a dead letter.' }),
    lag: z.object({
      messages: z.number().int().min(0).openapi({
        description:
          'Messages the group is not done with: pending, leased, and new ones up to the newest.',
      }),
      bytes: z.number().int().min(0).openapi({
        description:
          'Frame octets of the log from the segment holding the oldest message not done (segment granularity: a whole segment counts; while `migrating`, the whole log).',
      }),
      oldestUnacked: z
        .object({
          seq: z.number().int(),
          storedAt: z
            .string()
            .openapi({ description: 'When its batch was stored.', format: 'date-time' }),
        })
        .nullable()
        .openapi({ description: 'The oldest message not done; null when there is none.' }),
    }),
    available: z.number().int().min(0).openapi({ description: 'Ready to lease now.' }),
    inFlight: z.number().int().min(0).openapi({ description: 'Leased, lease not expired.' }),
    delayed: z
      .number()
      .int()
      .min(0)
      .openapi({ description: "Not available until a retry's delay ends." }),
    deadLetters: z.number().int().min(0),
    counters: z.object({
      leased: z
        .number()
        .int()
        .min(0)
        .openapi({ description: 'Deliveries, redeliveries included.' }),
      redelivered: z.number().int().min(0).openapi({
        description: 'Deliveries of a message whose previous lease expired without an ack.',
      }),
      acked: z.number().int().min(0),
      retried: z.number().int().min(0).openapi({
        description:
          'Retries that made a message available again (not those that made a dead letter).',
      }),
      deadLettered: z.number().int().min(0),
      redriven: z.number().int().min(0),
      dropped: z.number().int().min(0).openapi({
        description:
          'Messages retention deleted before the group was done with them (never delivered, or not acked).',
      }),
    }),
  })
  .openapi({
    description:
      'A consumer group: its own position in the log, leases, dead letters and counters. Groups read the log independently of each other; within a group, a message is leased to one consumer at a time.',
  })
  .openapi('Group')

export const BridgeConnectionSchema = z
  .object({
    bridgeId: z.string().nullable().openapi({
      description: "The bridge id of the socket's batches; null until its first batch.",
    }),
    connectedAt: z.string().nullable().openapi({
      description:
        'When the channel accepted the socket (null for a socket accepted before this was recorded).',
      format: 'date-time',
    }),
    lastBatchSeq: z.number().int().nullable().openapi({
      description:
        'The highest batchSeq stored from that bridge (its batches are numbered 1, 2, 3, …).',
    }),
  })
  .openapi('BridgeConnection')

export const ChannelStatsSchema = z
  .object({
    channel: z.string(),
    log: z.object({
      messages: z.number().int().optional(),
      bytes: z.number().int().openapi({ description: 'Frame octets.' }).optional(),
      oldest: LogEndSchema.optional(),
      newest: LogEndSchema.optional(),
    }),
    queue: z
      .object({
        depth: z
          .number()
          .int()
          .openapi({
            description: "Not acked (dead letters excluded): the group's `lag.messages`.",
          })
          .optional(),
        available: z.number().int().optional(),
        inFlight: z.number().int().optional(),
        delayed: z.number().int().optional(),
        deadLetters: z.number().int().optional(),
      })
      .openapi({
        description:
          "Group `default`'s view (before its first pull: as it would start, every message in the log available).",
      }),
    groups: z.array(GroupSchema).openapi({ description: 'The consumer groups, by name.' }),
    bridges: z.object({
      connected: z
        .number()
        .int()
        .openapi({ description: 'Bridge WebSockets open now.' })
        .optional(),
      known: z
        .number()
        .int()
        .openapi({ description: 'Bridge ids that have ever stored a batch here.' })
        .optional(),
      connections: z
        .array(BridgeConnectionSchema)
        .openapi({ description: 'The bridge WebSockets open now, oldest first.' })
        .optional(),
    }),
    counters: z.object({
      messagesStored: z.number().int().optional(),
      batchesStored: z.number().int().optional(),
      batchesDuplicate: z.number().int().optional(),
      messagesDuplicate: z
        .number()
        .int()
        .openapi({
          description:
            'Messages not stored, being resends of one stored before under their sender and idempotency key.',
        })
        .optional(),
      leased: z
        .number()
        .int()
        .openapi({ description: 'Summed over the groups the channel has now.' })
        .optional(),
      redelivered: z
        .number()
        .int()
        .openapi({ description: 'Summed over the groups the channel has now.' })
        .optional(),
      acked: z
        .number()
        .int()
        .openapi({ description: 'Summed over the groups the channel has now.' })
        .optional(),
      retried: z
        .number()
        .int()
        .openapi({ description: 'Summed over the groups the channel has now.' })
        .optional(),
      deadLettered: z
        .number()
        .int()
        .openapi({ description: 'Summed over the groups the channel has now.' })
        .optional(),
      redriven: z
        .number()
        .int()
        .openapi({ description: 'Summed over the groups the channel has now.' })
        .optional(),
      dropped: z
        .number()
        .int()
        .openapi({
          description:
            'Retention, overflow policy drop-oldest: messages deleted before some consumer group was done with them (queued or dead letters).',
        })
        .optional(),
      trimmed: z
        .number()
        .int()
        .openapi({
          description:
            'Retention: messages every consumer group was done with, deleted to make room for a batch (either policy).',
        })
        .optional(),
      expired: z
        .number()
        .int()
        .openapi({
          description:
            'Retention: messages deleted for their age (RETENTION_MAX_AGE_SECONDS), acked or not.',
        })
        .optional(),
      batchesRefused: z
        .number()
        .int()
        .openapi({
          description:
            'Retention: batches refused with NACK CHANNEL_FULL (the bridge keeps and resends them).',
        })
        .optional(),
      batchesInvalid: z
        .number()
        .int()
        .openapi({
          description:
            'Batches refused with NACK INVALID_MESSAGE: a field the channel does not trust (a public key without CURVE, a receive time ahead of its clock).',
        })
        .optional(),
      messagesRejected: z
        .number()
        .int()
        .openapi({
          description:
            "Messages over the channel's limits on their own (MAX_MESSAGE_BYTES, retention), answered ACK REJECTED and never stored.",
        })
        .optional(),
    }),
    cost: z
      .object({
        rowsRead: z.number().int().min(0),
        rowsWritten: z.number().int().min(0),
        perMessage: z
          .object({
            rowsRead: z.number().min(0),
            rowsWritten: z.number().min(0),
          })
          .openapi({
            description: 'The totals divided by `counters.messagesStored` (at least 1).',
          }),
      })
      .openapi({
        description:
          "The SQLite rows the channel's Durable Object has read and written since it was created: what Cloudflare bills a SQLite-backed Durable Object for. Counted in memory and persisted at most a minute late.",
      }),
    storageBytes: z.number().int().min(0).openapi({
      description:
        "The size of the channel's SQLite database in bytes: the stored data Cloudflare bills for.",
    }),
    migrating: z.boolean().openapi({
      description:
        'Rows of the schema before segments are still being moved into segments (a few at a time, by the alarm).',
    }),
    config: z
      .object({
        maxAttempts: z.number().int().optional(),
        retention: z
          .object({
            maxMessages: z
              .number()
              .int()
              .openapi({ description: 'RETENTION_MAX_MESSAGES (default 1000000).' })
              .optional(),
            maxBytes: z
              .number()
              .int()
              .openapi({ description: 'RETENTION_MAX_BYTES, frame octets (default 1073741824).' })
              .optional(),
            maxAgeSeconds: z
              .number()
              .int()
              .openapi({
                description:
                  'RETENTION_MAX_AGE_SECONDS, since the message was stored (default 604800).',
              })
              .optional(),
            overflowPolicy: z
              .enum(['block', 'drop-oldest'])
              .openapi({ description: 'OVERFLOW_POLICY (default block).' })
              .optional(),
          })
          .openapi({ description: '0 means no limit.' })
          .optional(),
        maxMessageBytes: z
          .number()
          .int()
          .openapi({
            description:
              'Largest message the channel stores, frame octets (MAX_MESSAGE_BYTES); announced to bridges.',
          })
          .optional(),
        groupInactiveMs: z
          .number()
          .int()
          .openapi({
            description:
              'GROUP_INACTIVE_SECONDS in ms (default 86400000; 0: groups never become inactive): how long a consumer group may be idle before it no longer holds retention back.',
          })
          .optional(),
      })
      .openapi({ description: "The channel's settings, from the wrangler vars." }),
  })
  .openapi('ChannelStats')

export const ChannelListSchema = z
  .object({
    channels: z.array(
      z.union([
        ChannelStatsSchema,
        z.object({
          channel: z.string(),
          error: ErrorSchema.shape.error,
        }),
      ]),
    ),
    total: z.number().int().openapi({
      description: 'Channels that match the prefix, on this page or not (before the cursor too).',
    }),
    truncated: z
      .boolean()
      .openapi({ description: 'True when more channels follow this page (`next` is then given).' }),
    next: z
      .string()
      .openapi({
        description:
          'When `truncated`: the `after` of the following page (the last channel of this one).',
      })
      .optional(),
  })
  .openapi('ChannelList')

export const HistoryMinuteSchema = z
  .object({
    start: z.iso.datetime().openapi({ description: 'When the minute began.' }),
    seconds: z.number().int().min(1).max(60).openapi({
      description:
        'Seconds of the minute covered: 60, or for the current minute those passed so far (a rate per second is a count divided by this).',
    }),
    messagesIn: z.number().int().min(0).nullable().openapi({
      description:
        'Messages stored in the minute (null: before the channel kept history). After the channel object restarts, what it stored since its last state write (at most a minute before) is shared over the minutes until its next event.',
    }),
    acked: z.number().int().min(0).nullable().openapi({
      description:
        'Messages acked in the minute, over all consumer groups (null: unknown). A group deleted takes its acks with it: the minute it goes counts 0.',
    }),
    depth: z.number().int().min(0).nullable().openapi({
      description: 'Messages in the log at the end of the minute (null: unknown).',
    }),
    lag: z.record(z.string(), z.number().int().min(0)).openapi({
      description:
        "Each consumer group's `lag.messages` at the end of the minute, by name (groups that existed then).",
    }),
  })
  .openapi('HistoryMinute')

export const ChannelHistorySchema = z
  .object({
    channel: z.string(),
    now: z.iso.datetime(),
    minutes: z
      .array(HistoryMinuteSchema)
      .length(HISTORY_MINUTES)
      .openapi({
        description: `The last ${HISTORY_MINUTES} minutes, oldest first; the last is the current minute.`,
      }),
  })
  .openapi('ChannelHistory')

export const GroupRequestSchema = z
  .object({
    start: z
      .union(
        [
          z.enum(['earliest', 'latest']),
          z
            .object({
              afterSeq: z.number().int().min(0),
            })
            .strict(),
        ],
        { error: 'start must be "earliest", "latest" or {"afterSeq": n}' },
      )
      .default('earliest')
      .openapi({
        description:
          'Where a new group starts: `earliest` (before the oldest message in the log), `latest` (after the newest: only messages stored later), or `{"afterSeq": n}` (after message n; below the oldest it starts at the oldest). Ignored when the group exists.',
      }),
  })
  .strict()
  .openapi('GroupRequest')

export const GroupResponseSchema = z
  .object({
    channel: z.string(),
    group: GroupSchema,
  })
  .openapi('GroupResponse')

export const PutGroupResponseSchema = z
  .object({
    channel: z.string(),
    created: z
      .boolean()
      .openapi({ description: 'False when the group existed: it is left as it was.' }),
    group: GroupSchema,
  })
  .openapi('PutGroupResponse')

export const GroupListSchema = z
  .object({
    channel: z.string(),
    groups: z.array(GroupSchema).openapi({ description: 'By name.' }),
  })
  .openapi('GroupList')

// --- Path, query and header parameters. What arrives in a URL is text: numbers are digits,
// read as numbers here, and documented as what they mean.

/** The channel-name rule as a pattern, for the document (the check is isChannelName). */
const NAME_PATTERN = '^(?!\\.+$)[A-Za-z0-9._-]{1,64}$'

/** A whole number written in a URL: digits only, from `min` to `max`. */
function wholeNumber(name: string, min: number, max: number) {
  const message = `${name} must be an integer from ${min} to ${max}`
  return z
    .string()
    .regex(/^\d{1,16}$/, message)
    .transform(Number)
    .refine((value) => value >= min && value <= max, message)
}

export const ChannelParam = z
  .string()
  .refine(isChannelName, `channel names are ${CHANNEL_NAME_RULE}`)
  .openapi({
    param: { name: 'channel', in: 'path' },
    description:
      '1 to 64 characters of A-Z a-z 0-9 . _ -, not only dots (`.` and `..` are path segments URLs drop).',
    pattern: NAME_PATTERN,
  })

export const GroupParam = z
  .string()
  .refine(isChannelName, `group names are ${CHANNEL_NAME_RULE}`)
  .openapi({
    param: { name: 'group', in: 'path' },
    description:
      'The consumer group: 1 to 64 characters of A-Z a-z 0-9 . _ -, not only dots (the channel-name rule).',
    pattern: NAME_PATTERN,
  })

export const SeqParam = wholeNumber('the seq', 1, Number.MAX_SAFE_INTEGER).openapi({
  param: { name: 'seq', in: 'path' },
  description: "The message's seq.",
  type: 'integer',
  minimum: 1,
})

export const FrameIndexParam = wholeNumber('the frame index', 0, Number.MAX_SAFE_INTEGER).openapi({
  param: { name: 'index', in: 'path' },
  description: "The frame's index, from 0.",
  type: 'integer',
  minimum: 0,
})

export const AfterQuery = wholeNumber('after', 0, Number.MAX_SAFE_INTEGER)
  .optional()
  .transform((value) => value ?? 0)
  .openapi({
    param: { name: 'after', in: 'query' },
    description: 'Return messages with a seq greater than this.',
    type: 'integer',
    minimum: 0,
    default: 0,
  })

/** `limit`, from 1 to `max`. */
export function limitQuery(max: number, fallback = DEFAULT_LIMIT) {
  return wholeNumber('limit', 1, max)
    .optional()
    .transform((value) => value ?? fallback)
    .openapi({
      param: { name: 'limit', in: 'query' },
      type: 'integer',
      minimum: 1,
      maximum: max,
      default: fallback,
    })
}

export const EncodingQuery = z
  .enum(['base64', 'utf8'], { error: 'encoding must be base64 or utf8' })
  .default('base64')
  .openapi({
    param: { name: 'encoding', in: 'query' },
    description:
      "How frames are written. `base64` (the default): every frame in base64. `utf8`: each frame that is valid UTF-8 as a string (decoded strictly, a leading U+FEFF kept, so the string encodes back to the same octets); the others stay base64 and their indexes are listed in the message's `binaryFrames`.",
  })

/** `wait` in seconds (up to 3 decimals), read as milliseconds. */
export const WaitQuery = z
  .string()
  .regex(/^\d{1,2}(\.\d{1,3})?$/, `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`)
  .transform((seconds) => Math.round(Number(seconds) * 1000))
  .refine(
    (ms) => ms <= MAX_WAIT_SECONDS * 1000,
    `wait must be a number of seconds from 0 to ${MAX_WAIT_SECONDS}`,
  )
  .optional()
  .transform((ms) => ms ?? 0)
  .openapi({
    param: { name: 'wait', in: 'query' },
    description:
      'Seconds to wait for a message when none is after the cursor (0 to 30, up to 3 decimals).',
    type: 'number',
    minimum: 0,
    maximum: MAX_WAIT_SECONDS,
    default: 0,
  })

export const ReadQuery = z.object({
  after: AfterQuery,
  limit: limitQuery(MAX_READ_LIMIT),
  wait: WaitQuery,
  encoding: EncodingQuery,
})

export const DeadLetterQuery = z.object({
  after: AfterQuery,
  limit: limitQuery(MAX_LIMIT),
  encoding: EncodingQuery,
})

export const ListQuery = z.object({
  limit: limitQuery(MAX_LIST_CHANNELS, MAX_LIST_CHANNELS),
  prefix: z
    .string()
    .regex(CHANNEL_NAME_PREFIX, 'prefix must be 1 to 64 characters of A-Z a-z 0-9 . _ -')
    .default('')
    .openapi({
      param: { name: 'prefix', in: 'query' },
      description: 'Only channels whose name starts with this.',
    }),
  after: z
    .string()
    .refine(isChannelName, 'after must be a channel name (the next of the previous page)')
    .optional()
    .openapi({
      param: { name: 'after', in: 'query' },
      description: 'The `next` of the previous page: channels after this name.',
    }),
  order: z
    .enum(['name', 'recent'], { error: 'order must be name or recent' })
    .default('name')
    .openapi({
      param: { name: 'order', in: 'query' },
      description: '`name` (the default) or `recent`: most recently seen first.',
    }),
})

// Scoped API tokens (POST /v1/tokens).

export const ScopeSchema = z
  .enum(SCOPES, { error: `a scope is one of ${SCOPES.join(', ')}` })
  .openapi({
    description: SCOPES.map((scope) => `\`${scope}\`: ${SCOPE_MEANING[scope]}`).join('; '),
  })

const TOKEN_NAME_MAX = 100

export const TokenRequestSchema = z
  .object({
    name: z
      .string()
      .min(1, 'name must be 1 to 100 characters')
      .max(TOKEN_NAME_MAX, 'name must be 1 to 100 characters')
      .openapi({ description: 'What the token is for (shown in listings).' }),
    scopes: z
      .array(ScopeSchema)
      .min(1, 'scopes must hold at least one scope')
      .refine((scopes) => new Set(scopes).size === scopes.length, 'scopes must not repeat'),
    channels: z
      .array(z.string().refine(isChannelPattern, `a channel pattern is ${CHANNEL_PATTERN_RULE}`))
      .min(1, 'channels must hold at least one pattern')
      .max(MAX_CHANNEL_PATTERNS, `channels holds at most ${MAX_CHANNEL_PATTERNS} patterns`)
      .openapi({
        description: `The channels the token reaches: each ${CHANNEL_PATTERN_RULE}.`,
        example: ['sensors-*', 'orders'],
      }),
    expiresAt: z.iso
      .datetime({ offset: true, error: 'expiresAt must be an ISO 8601 date-time' })
      .refine((text) => Date.parse(text) > Date.now(), 'expiresAt must be in the future')
      .optional()
      .openapi({ description: 'When the token stops working; never when absent.' }),
    bridgeId: z
      .string()
      .regex(BRIDGE_ID_PATTERN, 'bridgeId must be 1-128 characters of A-Z a-z 0-9 . _ : -')
      .optional()
      .openapi({
        description:
          'For an ingest token: the one bridge id it connects as; that bridge id is then refused to every other credential.',
      }),
  })
  .strict()
  .refine((token) => token.bridgeId === undefined || token.scopes.includes('ingest'), {
    message: 'bridgeId needs the ingest scope',
    path: ['bridgeId'],
  })
  .openapi('TokenRequest')

export const TokenSchema = z
  .object({
    id: z.string().openapi({ description: 'Names the token in the API; not a secret.' }),
    name: z.string(),
    scopes: z.array(ScopeSchema),
    channels: z.array(z.string()),
    bridgeId: z.string().optional(),
    createdAt: z.string().openapi({ format: 'date-time' }),
    expiresAt: z.string().optional().openapi({ format: 'date-time' }),
    createdBy: z.string().openapi({
      description: '`ADMIN_TOKEN`, or the id of the scoped admin token that made it.',
    }),
  })
  .openapi('Token')

export const CreatedTokenSchema = TokenSchema.extend({
  token: z.string().openapi({
    description: 'The bearer token, shown this once: the registry keeps only a hash of its secret.',
  }),
}).openapi('CreatedToken')

export const TokenListSchema = z.object({ tokens: z.array(TokenSchema) }).openapi('TokenList')

export const TokenIdParam = z
  .string()
  .regex(/^[A-Za-z0-9_-]{16}$/, 'a token id is 16 characters of A-Z a-z 0-9 _ -')
  .openapi({ param: { name: 'id', in: 'path' }, description: "The token's id." })

// CURVE key records (POST /v1/keys).

const PublicKeyText = z
  .string()
  .refine((text) => {
    try {
      const key = parseCurveKey(text, 'publicKey')
      return !isLowOrderPoint(key) && isCanonicalPublicKey(key)
    } catch {
      return false
    }
  }, 'a public key is a usable 32-octet CURVE key (canonical, not a low-order point) as Z85 (40 characters), base64 (44) or hex (64)')
  .openapi({ description: 'A CURVE public key: Z85, base64 or hex.' })

const KeyNameText = z
  .string()
  .min(1, `name must be 1 to ${MAX_KEY_NAME_LENGTH} characters`)
  .max(MAX_KEY_NAME_LENGTH, `name must be 1 to ${MAX_KEY_NAME_LENGTH} characters`)
  .refine(isKeyName, 'name must be well-formed Unicode (no lone surrogate)')

const ChannelPatterns = z
  .array(z.string().refine(isChannelPattern, `a channel pattern is ${CHANNEL_PATTERN_RULE}`))
  .min(1, 'channels must hold at least one pattern')
  .max(MAX_CHANNEL_PATTERNS, `channels holds at most ${MAX_CHANNEL_PATTERNS} patterns`)

const Labels = z
  .record(
    z.string().regex(LABEL_NAME, 'a label name is 1 to 64 characters of A-Z a-z 0-9 . _ -'),
    z.string().max(MAX_LABEL_VALUE, `a label value is at most ${MAX_LABEL_VALUE} characters`),
  )
  .refine((labels) => Object.keys(labels).length <= MAX_LABELS, `at most ${MAX_LABELS} labels`)
  .openapi({ description: 'Free-form labels to find keys by (`GET /v1/keys?label=name=value`).' })

export const RateLimitSchema = z
  .object({
    messagesPerSecond: z.number().int().min(1).optional(),
    bytesPerSecond: z.number().int().min(1).optional(),
  })
  .strict()
  .refine(
    (limit) => limit.messagesPerSecond !== undefined || limit.bytesPerSecond !== undefined,
    'a rate limit needs messagesPerSecond or bytesPerSecond',
  )
  .openapi({
    description:
      "Per bridge: the bridge pauses reading the key's connections when it is past either, so the sender is pushed back over TCP; nothing is dropped.",
  })

const FutureTime = z.iso
  .datetime({ offset: true, error: 'expiresAt must be an ISO 8601 date-time' })
  .refine((text) => Date.parse(text) > Date.now(), 'expiresAt must be in the future')

export const KeyRequestSchema = z
  .object({
    publicKey: PublicKeyText,
    secondPublicKey: PublicKeyText.optional().openapi({
      description: 'A second public key admitted as this record, while a client rotates to it.',
    }),
    name: KeyNameText,
    channels: ChannelPatterns.openapi({
      description: `The channels the key may send to: each ${CHANNEL_PATTERN_RULE}.`,
      example: ['sensors-*'],
    }),
    labels: Labels.default({}),
    rateLimit: RateLimitSchema.optional(),
    expiresAt: FutureTime.optional(),
  })
  .strict()
  .openapi('KeyRequest')

export const KeyPatchSchema = z
  .object({
    publicKey: PublicKeyText.optional(),
    secondPublicKey: PublicKeyText.nullable().optional(),
    name: KeyNameText.optional(),
    channels: ChannelPatterns.optional(),
    labels: Labels.optional(),
    rateLimit: RateLimitSchema.nullable().optional(),
    expiresAt: FutureTime.nullable().optional(),
  })
  .strict()
  .openapi('KeyPatch')

export const KeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    publicKey: z.string().openapi({ description: 'Z85.' }),
    secondPublicKey: z.string().optional(),
    channels: z.array(z.string()),
    labels: z.record(z.string(), z.string()),
    rateLimit: z
      .object({
        messagesPerSecond: z.number().int().optional(),
        bytesPerSecond: z.number().int().optional(),
      })
      .optional(),
    status: z.enum(KEY_STATUSES),
    createdAt: z.string().openapi({ format: 'date-time' }),
    updatedAt: z.string().openapi({ format: 'date-time' }),
    revokedAt: z.string().optional().openapi({ format: 'date-time' }),
    expiresAt: z.string().optional().openapi({ format: 'date-time' }),
    stats: z
      .object({
        connections: z
          .number()
          .int()
          .openapi({ description: 'Open now, on every bridge (as last reported).' }),
        lastSeenAt: z.string().optional().openapi({ format: 'date-time' }),
        messages: z.number().int().openapi({ description: 'Accepted by bridges, all time.' }),
        bytes: z.number().int(),
        refusals: z.record(z.enum(REFUSAL_REASONS), z.number().int()).openapi({
          description: 'Handshakes of this key refused, by reason, all time.',
        }),
      })
      .optional()
      .openapi({
        description: 'What bridges with --key-registry reported (GET /v1/keys/{id} only).',
      }),
  })
  .openapi('Key')

export const KeyListSchema = z
  .object({
    keys: z.array(KeySchema),
    next: z.string().optional().openapi({ description: 'The `after` of the next page.' }),
  })
  .openapi('KeyList')

export const KeyIdParam = z
  .string()
  .regex(/^[A-Za-z0-9_-]{16}$/, 'a key id is 16 characters of A-Z a-z 0-9 _ -')
  .openapi({ param: { name: 'id', in: 'path' }, description: "The key record's id." })

export const KeyListQuery = z.object({
  limit: limitQuery(1000, 100),
  after: z
    .string()
    .regex(/^[A-Za-z0-9_-]{16}$/, 'after must be a key id (the next of the previous page)')
    .optional()
    .openapi({ param: { name: 'after', in: 'query' } }),
  status: z
    .enum(KEY_STATUSES, { error: 'status must be active, revoked or expired' })
    .optional()
    .openapi({ param: { name: 'status', in: 'query' } }),
  label: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}=.{0,256}$/, 'label must be name=value')
    .optional()
    .openapi({ param: { name: 'label', in: 'query' }, description: 'name=value' }),
})

export const RefusalListSchema = z
  .object({
    refusals: z.array(
      z.object({
        publicKey: z.string().openapi({
          description: "Z85; empty when the client's key was never learnt (a bad box).",
        }),
        keyId: z.string().optional(),
        keyName: z.string().optional(),
        bridgeId: z.string(),
        reason: z.enum(REFUSAL_REASONS),
        count: z.number().int(),
        lastAt: z.string().openapi({ format: 'date-time' }),
      }),
    ),
  })
  .openapi('RefusalList')

// --- The Cloudflare Queues pull-consumer adapter (/cf/client/v4): Cloudflare's own shapes ---
// (developers.cloudflare.com/api/resources/queues/subresources/messages/methods/pull/ and
// …/methods/ack/), so its SDK and the libraries on it work unchanged. Unknown fields are
// ignored, as Cloudflare's API ignores them.

/** Most messages one Cloudflare Queues pull takes (Cloudflare's limit). */
export const CF_MAX_BATCH_SIZE = 100

export const CfQueueIdParam = z
  .string()
  .refine((text) => {
    const [channel, group, ...rest] = text.split('~')
    return (
      rest.length === 0 &&
      isChannelName(channel ?? '') &&
      (group === undefined || isChannelName(group))
    )
  }, `a queue id is a channel name, or channel~group (each ${CHANNEL_NAME_RULE})`)
  .openapi({
    param: { name: 'queue_id', in: 'path' },
    description: 'A channel (consumer group `default`), or `channel~group`.',
    example: 'orders~billing',
  })

export const CfAccountIdParam = z
  .string()
  .max(64, 'an account id is at most 64 characters')
  .openapi({ param: { name: 'account_id', in: 'path' }, description: 'Ignored.' })

export const CfPullRequestSchema = z
  .object({
    batch_size: z
      .number()
      .int()
      .min(1)
      .max(CF_MAX_BATCH_SIZE, `batch_size is at most ${CF_MAX_BATCH_SIZE}`)
      .default(5),
    visibility_timeout_ms: VisibilityTimeoutMsSchema.optional(),
    /** The name Cloudflare's guide uses in its curl example, in ms too. */
    visibility_timeout: VisibilityTimeoutMsSchema.optional(),
  })
  .openapi('CfPullRequest')

const CfEnvelope = {
  success: z.boolean(),
  errors: z.array(z.object({ code: z.number().int(), message: z.string() })),
  messages: z.array(z.unknown()).openapi({ description: 'Notices: always empty here.' }),
}

export const CfPullResponseSchema = z
  .object({
    ...CfEnvelope,
    result: z.object({
      message_backlog_count: z.number().int().openapi({
        description: 'Messages the group has not acked yet: available, leased and delayed.',
      }),
      messages: z.array(
        z.object({
          id: z.string().openapi({ description: "The message's seq." }),
          body: z.string(),
          attempts: z.number().int(),
          lease_id: z.string(),
          timestamp_ms: z.number().int().openapi({ description: 'When the bridge received it.' }),
          metadata: z.record(z.string(), z.string()).openapi({
            description:
              '`CF-Content-Type` (text, bytes or json: how `body` holds the frames) and zmq-edge-seq, zmq-edge-frames, zmq-edge-peer-address, zmq-edge-mechanism, zmq-edge-public-key, zmq-edge-key-name.',
          }),
        }),
      ),
    }),
  })
  .openapi('CfPullResponse')

export const CfAckRequestSchema = z
  .object({
    acks: z.array(z.object({ lease_id: LeaseIdSchema })).optional(),
    retries: z
      .array(
        z.object({
          lease_id: LeaseIdSchema,
          delay_seconds: z.number().int().min(0).max(43200).default(0),
        }),
      )
      .optional(),
  })
  .superRefine((body, context) => {
    const total = (body.acks?.length ?? 0) + (body.retries?.length ?? 0)
    if (total === 0) {
      context.addIssue({ code: 'custom', message: 'acks and retries are both empty' })
    }
    if (total > MAX_BATCH) {
      context.addIssue({
        code: 'custom',
        message: `more than ${MAX_BATCH} lease ids in one request`,
      })
    }
  })
  .openapi('CfAckRequest')

export const CfAckResponseSchema = z
  .object({
    ...CfEnvelope,
    result: z.object({
      ackCount: z.number().int(),
      retryCount: z.number().int().openapi({
        description: 'Retries made, those that were the last attempt (now dead letters) included.',
      }),
      warnings: z.array(z.string()).openapi({
        description: 'One per lease id that is not its message’s current lease.',
      }),
    }),
  })
  .openapi('CfAckResponse')

export const CfErrorSchema = z
  .object({
    ...CfEnvelope,
    result: z.null(),
    error: z.object({ code: z.string(), message: z.string() }).openapi({
      description: "zmq-edge's error, as every other route gives it.",
    }),
  })
  .openapi('CfError')
