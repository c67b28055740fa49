// The OpenAPI document is generated from the routes' schemas (worker/api/): served at
// /v1/openapi.json and committed as docs/openapi.json. `npm run openapi` writes the file; here
// a stale file fails (vitest does not rewrite snapshots under CI), as does a route left out.
import { exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { ZodType } from 'zod'
import {
  AckResponseSchema,
  ChannelListSchema,
  ChannelStatsSchema,
  DeadLetterPageSchema,
  ErrorSchema,
  GroupListSchema,
  MessagePageSchema,
  PullResponseSchema,
  PutGroupResponseSchema,
} from '../../shared/api/schemas'
import { app } from '../../worker/app'
import { ErrorCode } from '../../worker/errors'
import { get, ingestBatch, ORIGIN, READ_TOKEN, relayMessage, uniqueChannel, utf8 } from './helpers'

interface Document {
  openapi: string
  paths: Record<string, Record<string, unknown>>
  components: {
    schemas: { Error: { properties: { error: { properties: { code: { enum: string[] } } } } } }
  }
}

async function served(): Promise<Document> {
  const response = await get('/v1/openapi.json')
  expect(response.status).toBe(200)
  return (await response.json()) as Document
}

describe('GET /v1/openapi.json', () => {
  it('is docs/openapi.json, generated from the schemas', async () => {
    const document = await served()
    expect(document.openapi).toBe('3.1.0')
    await expect(`${JSON.stringify(document, null, 2)}\n`).toMatchFileSnapshot(
      '../../docs/openapi.json',
    )
  })

  it('documents every route the app serves, the static page, and no other', async () => {
    const document = await served()
    const routes = app.routes
      .filter((route) => route.method !== 'ALL')
      .map((route) => `${route.method.toLowerCase()} ${route.path.replace(/:(\w+)/g, '{$1}')}`)
    const documented = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method} ${path}`),
    )
    // The dashboard's page at `/` is a static asset (worker/dashboard/), not the app's.
    expect([...new Set(routes), 'get /'].sort()).toEqual(documented.sort())
  })

  it('lists every error code the API returns, and no other', async () => {
    const { enum: codes } = (await served()).components.schemas.Error.properties.error.properties
      .code
    expect([...codes].sort()).toEqual(Object.values(ErrorCode).sort())
  })
})

describe('the answers', () => {
  /** The JSON of `response`, checked against `schema`: every field the schema has, as it says. */
  async function conforming(response: Response, status: number, schema: ZodType) {
    expect(response.status).toBe(status)
    const body = await response.json()
    const result = schema.safeParse(body)
    if (!result.success) throw new Error(`${JSON.stringify(body)}: ${result.error.message}`)
    return body as Record<string, unknown>
  }

  const request = (method: string, path: string, body?: unknown) =>
    exports.default.fetch(`${ORIGIN}${path}`, {
      method,
      headers: { Authorization: `Bearer ${READ_TOKEN}`, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })

  it('are what the document says they are, route by route', async () => {
    const channel = uniqueChannel('contract')
    await ingestBatch(channel, [
      relayMessage([utf8('a'), new Uint8Array([0xff])]),
      relayMessage([utf8('b')], { mechanism: 'CURVE', publicKey: new Uint8Array(32).fill(1) }),
    ])
    const base = `/v1/channels/${channel}`
    await conforming(
      await get(`${base}/messages?encoding=utf8`, READ_TOKEN),
      200,
      MessagePageSchema,
    )
    await conforming(await get(base, READ_TOKEN), 200, ChannelStatsSchema)
    await conforming(
      await get(`/v1/channels?prefix=${channel}`, READ_TOKEN),
      200,
      ChannelListSchema,
    )
    await conforming(
      await request('PUT', `${base}/groups/audit`, { start: 'earliest' }),
      201,
      PutGroupResponseSchema,
    )
    await conforming(await get(`${base}/groups`, READ_TOKEN), 200, GroupListSchema)
    const pulled = await conforming(
      await request('POST', `${base}/groups/audit/pull`, { batchSize: 2 }),
      200,
      PullResponseSchema,
    )
    const leases = (pulled.messages as { leaseId: string }[]).map((message) => message.leaseId)
    await conforming(
      await request('POST', `${base}/groups/audit/ack`, {
        acks: [leases[0]],
        retries: [{ leaseId: leases[1], delayMs: 0 }],
      }),
      200,
      AckResponseSchema,
    )
    await conforming(
      await get(`${base}/groups/audit/dead-letters`, READ_TOKEN),
      200,
      DeadLetterPageSchema,
    )
    await conforming(await get(`${base}/groups/nobody`, READ_TOKEN), 404, ErrorSchema)
    await conforming(await get(`${base}/messages?limit=0`, READ_TOKEN), 400, ErrorSchema)
  })
})
