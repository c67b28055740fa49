// Scoped API tokens through the Worker: made, listed and deleted with the admin scope; each scope
// tried on every route (allowed, 403, 401); channel patterns; the channel list; deletion and
// expiry; junk tokens refused without a registry call; bridge-bound ingest tokens; secrets kept
// as hashes only.

import { runInDurableObject } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { TOKEN_RECHECK_MS } from '../../durable/channel-object'
import type { Registry } from '../../durable/registry'
import { SCOPES, type Scope } from '../../shared/api/scopes'
import {
  BRIDGE_ID_HEADER,
  CLOSE_CREDENTIAL_REVOKED,
  EPOCH_HEADER,
  encodeBatch,
} from '../../shared/relay-protocol'
import * as routes from '../../worker/api/routes'
import { app } from '../../worker/app'
import { TOKEN_CACHE_MS } from '../../worker/auth'
import { TOKEN_PREFIX } from '../../worker/token-format'
import {
  ADMIN_TOKEN,
  appRequest,
  errorCode,
  get,
  INGEST_TOKEN,
  ingestBatch,
  ingestHeaders,
  ORIGIN,
  READ_TOKEN,
  relayMessage,
  uniqueChannel,
  utf8,
} from './helpers'

interface Created {
  id: string
  token: string
  name: string
  scopes: Scope[]
  channels: string[]
  bridgeId?: string
  createdAt: string
  expiresAt?: string
}

async function createToken(body: object, token = ADMIN_TOKEN): Promise<Created> {
  const response = await appRequest('/v1/tokens', token, {
    method: 'POST',
    body: JSON.stringify(body),
  })
  expect(response.status, await response.clone().text()).toBe(201)
  return (await response.json()) as Created
}

function registry() {
  return env.REGISTRY.get(env.REGISTRY.idFromName('registry'))
}

/** One call of each route, on `channel`: method, path, and what else it needs. */
function callsOf(channel: string) {
  const base = `/v1/channels/${channel}`
  const json = (body: object) => ({ body: JSON.stringify(body) })
  const upgrade = {
    headers: {
      Upgrade: 'websocket',
      'Sec-WebSocket-Protocol': 'zmq-edge.relay.v3',
      [BRIDGE_ID_HEADER]: `scopes-${channel}`,
      [EPOCH_HEADER]: '1',
    },
  }
  return [
    { route: routes.listChannelsRoute, path: '/v1/channels' },
    { route: routes.channelStatsRoute, path: base },
    { route: routes.channelHistoryRoute, path: `${base}/history` },
    { route: routes.readMessagesRoute, path: `${base}/messages` },
    { route: routes.readFrameRoute, path: `${base}/messages/1/frames/0` },
    { route: routes.tailEventsRoute, path: `${base}/events` },
    { route: routes.pullRoute, path: `${base}/pull`, init: json({ maxMessages: 1 }) },
    { route: routes.ackRoute, path: `${base}/ack`, init: json({ leaseIds: ['x'] }) },
    {
      route: routes.extendLeasesRoute,
      path: `${base}/leases/extend`,
      init: json({ leaseIds: ['x'] }),
    },
    { route: routes.deadLettersRoute, path: `${base}/dead-letters` },
    { route: routes.redriveRoute, path: `${base}/dead-letters/redrive`, init: json({}) },
    { route: routes.listGroupsRoute, path: `${base}/groups` },
    { route: routes.getGroupRoute, path: `${base}/groups/g1` },
    { route: routes.putGroupRoute, path: `${base}/groups/g1`, init: json({}) },
    { route: routes.deleteGroupRoute, path: `${base}/groups/g2` },
    { route: routes.pullGroupRoute, path: `${base}/groups/g1/pull`, init: json({}) },
    { route: routes.ackGroupRoute, path: `${base}/groups/g1/ack`, init: json({ leaseIds: ['x'] }) },
    {
      route: routes.extendGroupLeasesRoute,
      path: `${base}/groups/g1/leases/extend`,
      init: json({ leaseIds: ['x'] }),
    },
    { route: routes.groupDeadLettersRoute, path: `${base}/groups/g1/dead-letters` },
    {
      route: routes.redriveGroupRoute,
      path: `${base}/groups/g1/dead-letters/redrive`,
      init: json({}),
    },
    { route: routes.ingestRoute, path: `${base}/ingest`, init: upgrade },
    { route: routes.listTokensRoute, path: '/v1/tokens' },
    { route: routes.createTokenRoute, path: '/v1/tokens', init: json({}) },
    { route: routes.deleteTokenRoute, path: '/v1/tokens/AAAAAAAAAAAAAAAA' },
    {
      route: routes.keyFeedRoute,
      path: '/v1/keys/feed',
      init: { headers: { Upgrade: 'websocket' } },
    },
    { route: routes.keyRefusalsRoute, path: '/v1/keys/refusals' },
    { route: routes.createKeyRoute, path: '/v1/keys', init: json({}) },
    { route: routes.listKeysRoute, path: '/v1/keys' },
    { route: routes.getKeyRoute, path: '/v1/keys/AAAAAAAAAAAAAAAA' },
    { route: routes.updateKeyRoute, path: '/v1/keys/AAAAAAAAAAAAAAAA', init: json({}) },
    { route: routes.revokeKeyRoute, path: '/v1/keys/AAAAAAAAAAAAAAAA/revoke' },
    { route: routes.deleteKeyRoute, path: '/v1/keys/AAAAAAAAAAAAAAAA' },
    {
      route: routes.cfPullRoute,
      path: `/cf/client/v4/accounts/a/queues/${channel}/messages/pull`,
      init: json({}),
    },
    {
      route: routes.cfAckRoute,
      path: `/cf/client/v4/accounts/a/queues/${channel}~g1/messages/ack`,
      init: json({ acks: [{ lease_id: 'x' }] }),
    },
  ].map((call) => ({
    ...call,
    scope: routes.scopeOf(call.route) as Scope,
    init: { method: call.route.method.toUpperCase(), ...call.init },
  }))
}

describe('scoped tokens', () => {
  it('are made by the admin scope only, shown once, listed without their secrets', async () => {
    const made = await createToken({
      name: 'team a readers',
      scopes: ['read'],
      channels: ['team-a-*'],
      expiresAt: '2099-01-01T00:00:00Z',
    })
    expect(made).toEqual({
      id: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/),
      token: expect.stringMatching(new RegExp(`^${TOKEN_PREFIX}[A-Za-z0-9_-]{64}$`)),
      name: 'team a readers',
      scopes: ['read'],
      channels: ['team-a-*'],
      createdAt: expect.any(String),
      expiresAt: '2099-01-01T00:00:00.000Z',
      createdBy: 'ADMIN_TOKEN',
    })
    const listed = (await (await appRequest('/v1/tokens', ADMIN_TOKEN)).json()) as {
      tokens: Array<Record<string, unknown>>
    }
    const { token: _, ...withoutSecret } = made
    expect(listed.tokens).toContainEqual(withoutSecret)
    expect(JSON.stringify(listed)).not.toContain(made.token.slice(TOKEN_PREFIX.length))
    // The registry keeps a SHA-256 of the secret, never the token.
    const stored = await runInDurableObject(registry(), (_instance: Registry, state) =>
      state.storage.sql
        .exec<Record<string, SqlStorageValue>>('SELECT * FROM tokens WHERE id = ?', made.id)
        .one(),
    )
    expect(new Uint8Array(stored.secret_hash as ArrayBuffer)).toHaveLength(32)
    expect(JSON.stringify(stored)).not.toContain(made.token.slice(TOKEN_PREFIX.length))
    // Only admin makes them: the read secret, a read token and no token are refused.
    const body = JSON.stringify({ name: 'x', scopes: ['admin'], channels: ['*'] })
    for (const [token, code] of [
      [READ_TOKEN, 'forbidden'],
      [made.token, 'forbidden'],
      [undefined, 'unauthorized'],
    ] as const) {
      const response = await appRequest('/v1/tokens', token, { method: 'POST', body })
      expect(await errorCode(response)).toBe(code)
    }
  })

  it('are refused with 400 invalid_body for what they cannot be', async () => {
    for (const body of [
      { name: '', scopes: ['read'], channels: ['a'] },
      { name: 'x', scopes: ['write'], channels: ['a'] },
      { name: 'x', scopes: ['read', 'read'], channels: ['a'] },
      { name: 'x', scopes: [], channels: ['a'] },
      { name: 'x', scopes: ['read'], channels: [] },
      { name: 'x', scopes: ['read'], channels: ['a*b'] },
      { name: 'x', scopes: ['read'], channels: ['..'] },
      { name: 'x', scopes: ['read'], channels: ['a'], expiresAt: '2001-01-01T00:00:00Z' },
      { name: 'x', scopes: ['read'], channels: ['a'], expiresAt: 'tomorrow' },
      { name: 'x', scopes: ['read'], channels: ['a'], bridgeId: 'edge-1' },
      { name: 'x', scopes: ['ingest'], channels: ['a'], bridgeId: 'edge 1' },
      { name: 'x', scopes: ['read'], channels: ['a'], extra: true },
    ]) {
      const response = await appRequest('/v1/tokens', ADMIN_TOKEN, {
        method: 'POST',
        body: JSON.stringify(body),
      })
      expect({ body, status: response.status, code: await errorCode(response) }).toEqual({
        body,
        status: 400,
        code: 'invalid_body',
      })
    }
  })

  it('each scope opens exactly its routes, on its channels only (403 elsewhere, 401 when not valid)', async () => {
    const channel = uniqueChannel('team-a')
    const tokens = Object.fromEntries(
      await Promise.all(
        SCOPES.map(async (scope) => [
          scope,
          (await createToken({ name: scope, scopes: [scope], channels: ['team-a-*'] })).token,
        ]),
      ),
    ) as Record<Scope, string>
    const calls = callsOf(channel)
    // Every route with a scope is tried: a route added without its line here fails.
    const tried = new Set(calls.map((call) => call.route.operationId))
    const scoped = Object.values(routes)
      .filter(
        (value): value is (typeof calls)[number]['route'] =>
          typeof value === 'object' && value !== null && 'operationId' in value,
      )
      .filter((route) => routes.scopeOf(route) !== undefined)
      .map((route) => route.operationId)
    expect([...tried].sort()).toEqual([...scoped].sort())

    const outcome: string[] = []
    for (const call of calls) {
      for (const scope of SCOPES) {
        const response = await appRequest(call.path, tokens[scope], call.init)
        // The refusals name keys of every channel: ADMIN_TOKEN only, no scoped admin.
        const rootOnly = call.route.operationId === 'keyRefusals'
        const allowed =
          !rootOnly && (scope === call.scope || (scope === 'consume' && call.scope === 'read'))
        const status = response.status
        await response.body?.cancel()
        // Allowed: whatever the route answers past its credential check.
        const verdict = allowed
          ? status === 401 || status === 403
            ? 'refused'
            : 'allowed'
          : status
        outcome.push(`${call.route.operationId} ${scope}: ${verdict}`)
        expect(verdict, `${call.route.operationId} with a ${scope} token`).toEqual(
          allowed ? 'allowed' : 403,
        )
      }
      // A token of the right scope for other channels: 403 (the list has no channel).
      if (call.path.startsWith('/v1/channels/') || call.path.startsWith('/cf/')) {
        const other = call.path.replace(channel, 'team-b-1')
        const response = await appRequest(other, tokens[call.scope], call.init)
        await response.body?.cancel()
        expect(response.status, `${call.route.operationId} on another channel`).toBe(403)
      }
      // Not a valid credential: 401.
      const forged = `${TOKEN_PREFIX}${'A'.repeat(64)}`
      for (const token of [forged, `${tokens[call.scope]}x`, 'nonsense']) {
        const response = await appRequest(call.path, token, call.init)
        await response.body?.cancel()
        expect(response.status, `${call.route.operationId} with ${token.slice(0, 12)}…`).toBe(401)
      }
    }
    console.log(`${outcome.length} route × scope checks`)
  })

  it('reach channels by name or prefix, and list only those', async () => {
    const stem = uniqueChannel('list')
    const names = [`${stem}-a-1`, `${stem}-a-2`, `${stem}-b-1`, `${stem}-exact`, `${stem}-exactly`]
    for (const name of names) {
      expect((await ingestBatch(name, [relayMessage([utf8('x')])])).kind).toBe('ack')
    }
    const { token } = await createToken({
      name: 'a team',
      scopes: ['read'],
      channels: [`${stem}-a-*`, `${stem}-exact`],
    })
    const statuses = await Promise.all(
      names.map(async (name) => (await appRequest(`/v1/channels/${name}`, token)).status),
    )
    expect(statuses).toEqual([200, 200, 403, 200, 403])
    const listed = (await (await appRequest('/v1/channels?limit=100', token)).json()) as {
      channels: Array<{ channel: string }>
      total: number
    }
    expect(listed.channels.map((entry) => entry.channel)).toEqual([
      `${stem}-a-1`,
      `${stem}-a-2`,
      `${stem}-exact`,
    ])
    expect(listed.total).toBe(3)
    // The root secret still lists every channel.
    const all = (await (await appRequest(`/v1/channels?prefix=${stem}`, READ_TOKEN)).json()) as {
      total: number
    }
    expect(all.total).toBe(5)
  })

  it('stop working when deleted: at once here, within TOKEN_CACHE_MS in other isolates', async () => {
    const channel = uniqueChannel()
    const first = await createToken({ name: 'gone', scopes: ['read'], channels: ['*'] })
    expect((await appRequest(`/v1/channels/${channel}`, first.token)).status).toBe(200)
    const deleted = await appRequest(`/v1/tokens/${first.id}`, ADMIN_TOKEN, { method: 'DELETE' })
    expect(deleted.status).toBe(204)
    expect(await errorCode(await appRequest(`/v1/channels/${channel}`, first.token))).toBe(
      'unauthorized',
    )
    const again = await appRequest(`/v1/tokens/${first.id}`, ADMIN_TOKEN, { method: 'DELETE' })
    expect(await errorCode(again)).toBe('token_not_found')

    // Deleted behind this isolate's back, as another isolate's DELETE is: it works until its
    // cached record is TOKEN_CACHE_MS old, then not.
    const second = await createToken({ name: 'elsewhere', scopes: ['read'], channels: ['*'] })
    expect((await appRequest(`/v1/channels/${channel}`, second.token)).status).toBe(200)
    const started = Date.now()
    await registry().deleteToken(second.id)
    while ((await appRequest(`/v1/channels/${channel}`, second.token)).status === 200) {
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(Date.now() - started).toBeLessThanOrEqual(TOKEN_CACHE_MS + 1000)
  }, 20_000)

  it('stop working when they expire', async () => {
    const expiresAt = new Date(Date.now() + 1500).toISOString()
    const { token } = await createToken({
      name: 'brief',
      scopes: ['read'],
      channels: ['*'],
      expiresAt,
    })
    expect((await appRequest('/v1/channels/abc', token)).status).toBe(200)
    await new Promise((resolve) => setTimeout(resolve, 1600))
    expect(await errorCode(await appRequest('/v1/channels/abc', token))).toBe('unauthorized')
  })

  it('made up are refused without a registry call (nothing billed)', async () => {
    let calls = 0
    const counting = new Proxy(env.REGISTRY, {
      get(target, property, receiver) {
        if (property === 'get') calls++
        const value = Reflect.get(target, property, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
    const bindings = { ...env, REGISTRY: counting }
    const { token } = await createToken({ name: 'real', scopes: ['read'], channels: ['*'] })
    // Right shape, wrong MAC: every octet of the MAC flipped in turn would do; one will.
    const tampered = token.slice(0, -2) + (token.endsWith('AA') ? 'BB' : 'AA')
    for (const junk of [tampered, `${TOKEN_PREFIX}${'x'.repeat(64)}`, `${TOKEN_PREFIX}!`]) {
      const response = await app.request(
        `${ORIGIN}/v1/channels/abc`,
        { headers: { Authorization: `Bearer ${junk}` } },
        bindings,
      )
      expect(response.status).toBe(401)
    }
    expect(calls).toBe(0)
    // Without ADMIN_TOKEN no scoped token is valid (it is their key), and READ_TOKEN still is.
    const withoutAdmin = { ...env, ADMIN_TOKEN: undefined }
    const scoped = await app.request(
      `${ORIGIN}/v1/channels/abc`,
      { headers: { Authorization: `Bearer ${token}` } },
      withoutAdmin,
    )
    expect(scoped.status).toBe(401)
  })

  it('serve a route whose root secret is not set, while ADMIN_TOKEN is', async () => {
    const { token } = await createToken({ name: 'sole', scopes: ['read'], channels: ['*'] })
    const bindings = { ...env, READ_TOKEN: undefined }
    const response = await app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      { headers: { Authorization: `Bearer ${token}` } },
      bindings,
    )
    expect(response.status).toBe(200)
  })
})

describe('bridge-bound ingest tokens', () => {
  it('connect as their bridge only, and their bridge id is refused to every other credential', async () => {
    const channel = uniqueChannel('bound')
    const bridgeId = `${channel}-edge-1`
    const { token } = await createToken({
      name: 'edge 1',
      scopes: ['ingest'],
      channels: [channel],
      bridgeId,
    })
    const upgrade = (credential: string, as: string) =>
      get(`/v1/channels/${channel}/ingest`, undefined, {
        ...ingestHeaders({ bridgeId: as }),
        Authorization: `Bearer ${credential}`,
      })
    const own = await upgrade(token, bridgeId)
    expect(own.status).toBe(101)
    own.webSocket?.accept()
    own.webSocket?.close()
    expect(await errorCode(await upgrade(token, `${channel}-edge-2`))).toBe('bridge_id_bound')
    // The root secret can no longer take the bound id, but still any other.
    expect(await errorCode(await upgrade(INGEST_TOKEN, bridgeId))).toBe('bridge_id_bound')
    const other = await upgrade(INGEST_TOKEN, `${channel}-edge-3`)
    expect(other.status).toBe(101)
    other.webSocket?.accept()
    other.webSocket?.close()
  })
})

describe('scoped admin tokens', () => {
  it('hand on no more than they hold, see and delete only their own, which go with them', async () => {
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString()
    const lead = await createToken({
      name: 'team a lead',
      scopes: ['admin', 'read'],
      channels: ['team-a-*'],
      expiresAt,
    })
    const refused = async (body: object) => {
      const response = await appRequest('/v1/tokens', lead.token, {
        method: 'POST',
        body: JSON.stringify({ name: 'x', expiresAt, ...body }),
      })
      return { status: response.status, code: await errorCode(response) }
    }
    const forbidden = { status: 403, code: 'forbidden' }
    expect(await refused({ scopes: ['consume'], channels: ['team-a-1'] })).toEqual(forbidden)
    expect(await refused({ scopes: ['read'], channels: ['*'] })).toEqual(forbidden)
    expect(await refused({ scopes: ['read'], channels: ['team-*'] })).toEqual(forbidden)
    expect(await refused({ scopes: ['read'], channels: ['team-b-1'] })).toEqual(forbidden)
    expect(
      await refused({ scopes: ['read'], channels: ['team-a-1'], expiresAt: undefined }),
    ).toEqual(forbidden)
    expect(
      await refused({
        scopes: ['read'],
        channels: ['team-a-1'],
        expiresAt: new Date(Date.now() + 7_200_000).toISOString(),
      }),
    ).toEqual(forbidden)
    expect(await refused({ scopes: ['ingest'], channels: ['team-a-1'], bridgeId: 'e' })).toEqual(
      forbidden,
    )
    // Within all of it: made, and made by the lead.
    const member = await createToken(
      { name: 'member', scopes: ['read'], channels: ['team-a-x*'], expiresAt },
      lead.token,
    )
    const grandchild = await createToken(
      { name: 'sub', scopes: ['admin', 'read'], channels: ['team-a-x1'], expiresAt },
      lead.token,
    )
    const leaf = await createToken(
      { name: 'leaf', scopes: ['read'], channels: ['team-a-x1'], expiresAt },
      grandchild.token,
    )
    expect(
      await errorCode(
        await appRequest('/v1/tokens', grandchild.token, {
          method: 'POST',
          body: JSON.stringify({
            name: 'wider',
            scopes: ['read'],
            channels: ['team-a-x2'],
            expiresAt,
          }),
        }),
      ),
    ).toBe('forbidden')
    const other = await createToken({
      name: 'other team',
      scopes: ['read'],
      channels: ['team-b-*'],
    })

    const listed = (await (await appRequest('/v1/tokens', lead.token)).json()) as {
      tokens: Array<{ id: string; createdBy: string }>
    }
    expect(listed.tokens.map((token) => token.id).sort()).toEqual([member.id, grandchild.id].sort())
    expect(listed.tokens.every((token) => token.createdBy === lead.id)).toBe(true)
    const notMine = await appRequest(`/v1/tokens/${other.id}`, lead.token, { method: 'DELETE' })
    expect(await errorCode(notMine)).toBe('token_not_found')
    // Deleting the lead deletes what it made too.
    const deleted = await appRequest(`/v1/tokens/${lead.id}`, ADMIN_TOKEN, { method: 'DELETE' })
    expect(deleted.status).toBe(204)
    for (const gone of [lead, member, grandchild, leaf]) {
      expect((await registry().token(gone.id)) === undefined, gone.name).toBe(true)
    }
    expect(await registry().token(other.id)).toBeDefined()
  })
})

describe('root secrets', () => {
  it('that are equal hold the scopes of both', async () => {
    const bindings = { ...env, READ_TOKEN: 'one-secret', INGEST_TOKEN: 'one-secret' }
    const read = await app.request(
      `${ORIGIN}/v1/channels/abc/messages`,
      { headers: { Authorization: 'Bearer one-secret' } },
      bindings,
    )
    expect(read.status).toBe(200)
    const ingest = await app.request(
      `${ORIGIN}/v1/channels/${uniqueChannel()}/ingest`,
      {
        headers: {
          ...ingestHeaders({ bridgeId: 'same-secret' }),
          Authorization: 'Bearer one-secret',
        },
      },
      bindings,
    )
    expect(ingest.status).toBe(101)
    ingest.webSocket?.accept()
    ingest.webSocket?.close()
  })
})

describe('long-lived requests of a scoped token', () => {
  it('the live tail ends once its token is deleted', async () => {
    const channel = uniqueChannel()
    const made = await createToken({ name: 'tail', scopes: ['read'], channels: [channel] })
    const response = await appRequest(`/v1/channels/${channel}/events`, made.token)
    expect(response.status).toBe(200)
    const reader = (response.body as ReadableStream<Uint8Array>).getReader()
    await reader.read() // ': connected'
    await registry().deleteToken(made.id)
    const started = Date.now()
    for (;;) {
      const { done } = await reader.read()
      if (done) break
    }
    expect(Date.now() - started).toBeLessThan(2 * TOKEN_CACHE_MS + 2000)
  }, 30_000)

  it('an ingest socket is closed (4003) once its token is deleted, and stores nothing once it expired', async () => {
    const channel = uniqueChannel()
    const deletedToken = await createToken({
      name: 'bridge',
      scopes: ['ingest'],
      channels: [channel],
    })
    const open = async (token: string, bridgeId: string) => {
      const response = await get(`/v1/channels/${channel}/ingest`, undefined, {
        ...ingestHeaders({ bridgeId }),
        Authorization: `Bearer ${token}`,
      })
      expect(response.status).toBe(101)
      const socket = response.webSocket as WebSocket
      const events: Array<{ type: 'message' | 'close'; code?: number }> = []
      socket.addEventListener('message', () => events.push({ type: 'message' }))
      socket.addEventListener('close', (event) => events.push({ type: 'close', code: event.code }))
      socket.accept()
      socket.binaryType = 'arraybuffer'
      return { socket, events }
    }
    const batch = (batchSeq: number) =>
      encodeBatch({ batchSeq, messages: [relayMessage([utf8(`m${batchSeq}`)])] })
    const until = async (check: () => boolean, ms = 10_000) => {
      const deadline = Date.now() + ms
      while (!check()) {
        if (Date.now() > deadline) throw new Error('timed out')
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    const first = await open(deletedToken.token, 'revoked-bridge')
    first.socket.send(batch(1))
    await until(() => first.events.filter((event) => event.type === 'message').length === 2)
    await registry().deleteToken(deletedToken.id)
    await new Promise((resolve) => setTimeout(resolve, TOKEN_RECHECK_MS + 100))
    first.socket.send(batch(2))
    await until(() => first.events.some((event) => event.type === 'close'))
    expect(first.events.find((event) => event.type === 'close')?.code).toBe(
      CLOSE_CREDENTIAL_REVOKED,
    )

    // Expiry needs no registry call: the batch after it is not stored.
    const brief = await createToken({
      name: 'brief bridge',
      scopes: ['ingest'],
      channels: [channel],
      expiresAt: new Date(Date.now() + 1500).toISOString(),
    })
    const second = await open(brief.token, 'brief-bridge')
    await new Promise((resolve) => setTimeout(resolve, 1600))
    second.socket.send(batch(1))
    await until(() => second.events.some((event) => event.type === 'close'))
    expect(second.events.find((event) => event.type === 'close')?.code).toBe(
      CLOSE_CREDENTIAL_REVOKED,
    )
    const stored = (await (
      await appRequest(`/v1/channels/${channel}/messages`, READ_TOKEN)
    ).json()) as {
      messages: unknown[]
    }
    // m1 of the first bridge, and m2 if it was stored before the close: never the brief one's.
    expect(stored.messages.length).toBeGreaterThanOrEqual(1)
    expect(stored.messages.length).toBeLessThanOrEqual(2)
  }, 30_000)
})

describe('tokens with many patterns', () => {
  it('list their channels with 32 prefixes, and refuse a cursor outside them', async () => {
    const stem = uniqueChannel('many')
    const channels = Array.from({ length: 32 }, (_, index) => `${stem}-${index}-*`)
    const { token } = await createToken({ name: 'many', scopes: ['read'], channels })
    expect((await ingestBatch(`${stem}-7-x`, [relayMessage([utf8('x')])])).kind).toBe('ack')
    for (const query of ['', '?order=recent', `?order=recent&after=${stem}-7-x&prefix=${stem}`]) {
      const response = await appRequest(`/v1/channels${query}`, token)
      expect(response.status, query).toBe(200)
    }
    const listed = (await (await appRequest('/v1/channels', token)).json()) as { total: number }
    expect(listed.total).toBe(1)
    const outside = await appRequest('/v1/channels?order=recent&after=someone-else', token)
    expect(await errorCode(outside)).toBe('invalid_query')
    const tooMany = await appRequest('/v1/tokens', ADMIN_TOKEN, {
      method: 'POST',
      body: JSON.stringify({ name: 'x', scopes: ['read'], channels: [...channels, 'one-more'] }),
    })
    expect(await errorCode(tooMany)).toBe('invalid_body')
  })

  it('bound to a bridge free it once expired', async () => {
    const channel = uniqueChannel('expiring')
    const bridgeId = `${channel}-edge`
    await createToken({
      name: 'expiring binding',
      scopes: ['ingest'],
      channels: [channel],
      bridgeId,
      expiresAt: new Date(Date.now() + 1000).toISOString(),
    })
    await new Promise((resolve) => setTimeout(resolve, 1100))
    const response = await get(`/v1/channels/${channel}/ingest`, undefined, {
      ...ingestHeaders({ bridgeId }),
      Authorization: `Bearer ${INGEST_TOKEN}`,
    })
    expect(response.status).toBe(101)
    response.webSocket?.accept()
    response.webSocket?.close()
  })
})
