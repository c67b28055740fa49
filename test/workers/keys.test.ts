// CURVE key records in the registry, through the Worker: registered in any of the three forms and
// shown in Z85, listed by status and label a page at a time, changed (rotation with a second
// key), revoked, deleted; one public key per record; bad keys refused; a scoped admin token
// manages only the records within its channels.

import { runInDurableObject } from 'cloudflare:test'
import { env, exports } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import type { Registry } from '../../durable/registry'
import type { ApiKey } from '../../shared/api-types'
import { formatKey } from '../../shared/curve-key-text'
import { type FeedMessage, parseFeedMessage } from '../../shared/key-feed'
import {
  ADMIN_TOKEN,
  appRequest,
  countRows,
  errorCode,
  INGEST_TOKEN,
  ORIGIN,
  READ_TOKEN,
} from './helpers'

const send = (method: string, path: string, body?: object, token = ADMIN_TOKEN) =>
  appRequest(path, token, { method, ...(body ? { body: JSON.stringify(body) } : {}) })

/** A fresh public key (32 random octets, bit 255 clear as X25519 keys have it). */
function newKey(): Uint8Array {
  const key = crypto.getRandomValues(new Uint8Array(32))
  key[31] = (key[31] as number) & 0x7f
  return key
}

async function register(body: object, token = ADMIN_TOKEN): Promise<ApiKey> {
  const response = await send('POST', '/v1/keys', body, token)
  expect(response.status, await response.clone().text()).toBe(201)
  return (await response.json()) as ApiKey
}

describe('CURVE key records', () => {
  it('are registered from Z85, base64 or hex, shown in Z85, and found by id', async () => {
    for (const form of ['z85', 'base64', 'hex'] as const) {
      const key = newKey()
      const record = await register({
        publicKey: formatKey(key)[form],
        name: `sensor ${form}`,
        channels: ['sensors-*'],
        labels: { site: 'paris', form },
        rateLimit: { messagesPerSecond: 100 },
      })
      expect(record).toEqual({
        id: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/),
        name: `sensor ${form}`,
        publicKey: formatKey(key).z85,
        channels: ['sensors-*'],
        labels: { site: 'paris', form },
        rateLimit: { messagesPerSecond: 100 },
        status: 'active',
        createdAt: expect.any(String),
        updatedAt: record.createdAt,
      })
      const fetched = await send('GET', `/v1/keys/${record.id}`)
      // One record shows what bridges reported of it too: nothing yet.
      expect(await fetched.json()).toEqual({
        ...record,
        stats: { connections: 0, messages: 0, bytes: 0, refusals: {} },
      })
    }
  })

  it('refuse a bad key, a key another record holds, and what the schema does not allow', async () => {
    const key = formatKey(newKey()).z85
    await register({ publicKey: key, name: 'first', channels: ['a'] })
    const taken = await send('POST', '/v1/keys', { publicKey: key, name: 'again', channels: ['a'] })
    expect({ status: taken.status, code: await errorCode(taken) }).toEqual({
      status: 409,
      code: 'key_exists',
    })
    const asSecond = await send('POST', '/v1/keys', {
      publicKey: formatKey(newKey()).z85,
      secondPublicKey: key,
      name: 'second',
      channels: ['a'],
    })
    expect(await errorCode(asSecond)).toBe('key_exists')
    for (const body of [
      { publicKey: 'not a key', name: 'x', channels: ['a'] },
      { publicKey: formatKey(new Uint8Array(32)).z85, name: 'all zero', channels: ['a'] },
      { publicKey: formatKey(newKey()).hex.slice(2), name: 'short', channels: ['a'] },
      { publicKey: formatKey(newKey()).z85, name: '', channels: ['a'] },
      // A lone surrogate: no UTF-8 carries it, so messages could not name their sender by it.
      { publicKey: formatKey(newKey()).z85, name: 'pump \ud800', channels: ['a'] },
      { publicKey: formatKey(newKey()).z85, name: 'x', channels: [] },
      {
        publicKey: formatKey(newKey()).z85,
        name: 'x',
        channels: ['a'],
        labels: { 'bad name': 'v' },
      },
      { publicKey: formatKey(newKey()).z85, name: 'x', channels: ['a'], rateLimit: {} },
      {
        publicKey: formatKey(newKey()).z85,
        name: 'x',
        channels: ['a'],
        rateLimit: { messagesPerSecond: 0 },
      },
      {
        publicKey: formatKey(newKey()).z85,
        name: 'x',
        channels: ['a'],
        expiresAt: '2000-01-01T00:00:00Z',
      },
      { publicKey: formatKey(newKey()).z85, name: 'x', channels: ['a'], secret: 'no' },
    ]) {
      const response = await send('POST', '/v1/keys', body)
      expect({ body, code: await errorCode(response) }).toEqual({ body, code: 'invalid_body' })
    }
  })

  it('rotate with a second key, change and drop fields, revoke and delete', async () => {
    const [oldKey, newer] = [formatKey(newKey()).z85, formatKey(newKey()).z85]
    const record = await register({
      publicKey: oldKey,
      name: 'gateway',
      channels: ['orders'],
      rateLimit: { bytesPerSecond: 1000 },
      expiresAt: '2099-01-01T00:00:00Z',
    })
    const patch = async (body: object) => {
      const response = await send('PATCH', `/v1/keys/${record.id}`, body)
      expect(response.status, await response.clone().text()).toBe(200)
      return (await response.json()) as ApiKey
    }
    // Rotation: the new key beside the old one, then in its place (the second one is dropped).
    expect((await patch({ secondPublicKey: newer })).secondPublicKey).toBe(newer)
    const rotated = await patch({ publicKey: newer })
    expect(rotated.publicKey).toBe(newer)
    expect(rotated.secondPublicKey).toBeUndefined()
    const changed = await patch({
      name: 'gateway 2',
      channels: ['orders', 'invoices-*'],
      labels: { team: 'billing' },
      rateLimit: null,
      expiresAt: null,
    })
    expect(changed).toMatchObject({
      name: 'gateway 2',
      channels: ['orders', 'invoices-*'],
      labels: { team: 'billing' },
    })
    expect(changed.rateLimit).toBeUndefined()
    expect(changed.expiresAt).toBeUndefined()

    const revoked = await send('POST', `/v1/keys/${record.id}/revoke`)
    expect(await revoked.json()).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) })
    const deleted = await send('DELETE', `/v1/keys/${record.id}`)
    expect(deleted.status).toBe(204)
    for (const [method, path] of [
      ['GET', `/v1/keys/${record.id}`],
      ['DELETE', `/v1/keys/${record.id}`],
      ['POST', `/v1/keys/${record.id}/revoke`],
    ] as const) {
      expect(await errorCode(await send(method, path))).toBe('key_not_found')
    }
    expect(await errorCode(await send('PATCH', `/v1/keys/${record.id}`, { name: 'x' }))).toBe(
      'key_not_found',
    )
  })

  it('are listed a page at a time, by status and label', async () => {
    const tag = crypto.randomUUID()
    const made: ApiKey[] = []
    for (let index = 0; index < 5; index++) {
      made.push(
        await register({
          publicKey: formatKey(newKey()).z85,
          name: `listed ${index}`,
          channels: ['list'],
          labels: { batch: tag, parity: index % 2 === 0 ? 'even' : 'odd' },
          ...(index === 4 ? { expiresAt: new Date(Date.now() + 300).toISOString() } : {}),
        }),
      )
    }
    await send('POST', `/v1/keys/${made[1]?.id}/revoke`)
    await new Promise((resolve) => setTimeout(resolve, 400))
    const list = async (query: string) => {
      const ids: string[] = []
      let after = ''
      for (;;) {
        const response = await send('GET', `/v1/keys?limit=2&label=batch=${tag}${query}${after}`)
        const page = (await response.json()) as { keys: ApiKey[]; next?: string }
        ids.push(...page.keys.map((key) => key.id))
        if (!page.next) return ids.sort()
        after = `&after=${page.next}`
      }
    }
    const ids = (indexes: number[]) => indexes.map((index) => made[index]?.id).sort()
    expect(await list('')).toEqual(ids([0, 1, 2, 3, 4]))
    expect(await list('&status=active')).toEqual(ids([0, 2, 3]))
    expect(await list('&status=revoked')).toEqual(ids([1]))
    expect(await list('&status=expired')).toEqual(ids([4]))
    const odd = await send('GET', `/v1/keys?label=parity=odd&limit=1000`)
    const oddIds = ((await odd.json()) as { keys: ApiKey[] }).keys.map((key) => key.id)
    expect(oddIds).toEqual(expect.arrayContaining(ids([1, 3])))
    expect(oddIds).not.toContain(made[0]?.id)
  })

  it('are managed only with the admin scope; a scoped admin only within its channels', async () => {
    const body = { publicKey: formatKey(newKey()).z85, name: 'x', channels: ['team-a-1'] }
    expect(await errorCode(await send('POST', '/v1/keys', body, READ_TOKEN))).toBe('forbidden')
    expect(await errorCode(await send('GET', '/v1/keys', undefined, 'nope'))).toBe('unauthorized')

    const made = await send('POST', '/v1/tokens', {
      name: 'team a admin',
      scopes: ['admin'],
      channels: ['team-a-*'],
    })
    const { token } = (await made.json()) as { token: string }
    const mine = await register(body, token)
    const theirs = await register({
      publicKey: formatKey(newKey()).z85,
      name: 'team b',
      channels: ['team-b-1'],
    })
    const outside = await send(
      'POST',
      '/v1/keys',
      { publicKey: formatKey(newKey()).z85, name: 'y', channels: ['team-*'] },
      token,
    )
    expect(await errorCode(outside)).toBe('forbidden')
    expect(await errorCode(await send('GET', `/v1/keys/${theirs.id}`, undefined, token))).toBe(
      'key_not_found',
    )
    expect(await errorCode(await send('DELETE', `/v1/keys/${theirs.id}`, undefined, token))).toBe(
      'key_not_found',
    )
    expect(
      await errorCode(
        await send('PATCH', `/v1/keys/${mine.id}`, { channels: ['team-b-1'] }, token),
      ),
    ).toBe('forbidden')
    const listed = (await (await send('GET', '/v1/keys?limit=1000', undefined, token)).json()) as {
      keys: ApiKey[]
    }
    expect(listed.keys.map((key) => key.id)).toContain(mine.id)
    expect(listed.keys.map((key) => key.id)).not.toContain(theirs.id)
    expect((await send('POST', `/v1/keys/${mine.id}/revoke`, undefined, token)).status).toBe(200)
  })

  it('keep a revoked record’s public keys its own: no change frees them, only the root deletes it', async () => {
    const made = await send('POST', '/v1/tokens', {
      name: 'team r admin',
      scopes: ['admin'],
      channels: ['team-r-*'],
    })
    const { token } = (await made.json()) as { token: string }
    const publicKey = formatKey(newKey()).z85
    const second = formatKey(newKey()).z85
    const record = await register({ publicKey, name: 'stolen', channels: ['team-r-1'] }, token)
    await send('PATCH', `/v1/keys/${record.id}`, { secondPublicKey: second }, token)
    expect((await send('POST', `/v1/keys/${record.id}/revoke`, undefined, token)).status).toBe(200)
    // What would register the revoked key again, by a scoped admin: moving a key off the record
    // (then adding it anew), or deleting the record.
    for (const change of [
      { publicKey: formatKey(newKey()).z85 },
      { secondPublicKey: null },
      { secondPublicKey: formatKey(newKey()).z85 },
    ]) {
      for (const caller of [token, ADMIN_TOKEN]) {
        const refused = await send('PATCH', `/v1/keys/${record.id}`, change, caller)
        expect(refused.status).toBe(409)
        expect(await errorCode(refused)).toBe('key_revoked')
      }
    }
    const deleting = await send('DELETE', `/v1/keys/${record.id}`, undefined, token)
    expect(deleting.status).toBe(409)
    expect(await errorCode(deleting)).toBe('key_revoked')
    for (const key of [publicKey, second]) {
      const again = await send(
        'POST',
        '/v1/keys',
        { publicKey: key, name: 'again', channels: ['team-r-1'] },
        token,
      )
      expect(await errorCode(again)).toBe('key_exists')
    }
    // Other fields still change; the root admin may delete it, which frees the key.
    const renamed = await send('PATCH', `/v1/keys/${record.id}`, { name: 'stolen laptop' }, token)
    expect(await renamed.json()).toMatchObject({ name: 'stolen laptop', status: 'revoked' })
    expect((await send('DELETE', `/v1/keys/${record.id}`)).status).toBe(204)
    await register({ publicKey, name: 'reissued', channels: ['team-r-1'] }, token)
  })

  it('cost a few rows read to create, however many records the registry holds', async () => {
    const stub = env.REGISTRY.get(env.REGISTRY.idFromName('registry'))
    const tag = crypto.randomUUID().slice(0, 8)
    const rows = await runInDurableObject(stub, (instance: Registry, state) => {
      // The count is read once per object: the first create pays it.
      const create = (index: number) =>
        instance.createKey({
          id: `r${tag}${String(index).padStart(7, '0')}`,
          name: 'n',
          publicKey: newKey(),
          channels: ['c'],
          labels: {},
          createdAt: Date.now(),
        })
      for (let index = 0; index < 50; index++) create(index)
      const meter = countRows(state.storage)
      for (let index = 50; index < 60; index++) expect(typeof create(index)).not.toBe('string')
      const read = meter.read()
      meter.reset()
      const deleted = instance.deleteKey(`r${tag}${String(50).padStart(7, '0')}`)
      return { read, deleted, deleteRead: meter.read() }
    })
    expect(rows.deleted).toBe(true)
    // A create reads the version row, the public-key indexes and the new row: not the 50+ held.
    expect(rows.read / 10).toBeLessThan(8)
    expect(rows.deleteRead).toBeLessThan(8)
  })
})

describe('the key feed', () => {
  /** Opens a feed as a bridge does; collects its messages. */
  async function openFeed(token: string) {
    const response = await exports.default.fetch(`${ORIGIN}/v1/keys/feed`, {
      headers: { Upgrade: 'websocket', Authorization: `Bearer ${token}` },
    })
    expect(response.status).toBe(101)
    const socket = response.webSocket as WebSocket
    const messages: FeedMessage[] = []
    socket.addEventListener('message', (event) => {
      const parsed = parseFeedMessage(event.data as string)
      if (parsed) messages.push(parsed)
    })
    socket.accept()
    const next = async (check: (message: FeedMessage) => boolean) => {
      const deadline = Date.now() + 10_000
      for (;;) {
        const found = messages.find(check)
        if (found) return found
        if (Date.now() > deadline) throw new Error('no such feed message')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    return { socket, messages, next }
  }

  it('sends the registry, then each change as it is made, to the credential’s channels', async () => {
    const tag = crypto.randomUUID().slice(0, 8)
    const existing = await register({
      publicKey: formatKey(newKey()).z85,
      name: 'before',
      channels: [`feed-${tag}-a-1`],
    })
    const root = await openFeed(INGEST_TOKEN)
    const made = await send('POST', '/v1/tokens', {
      name: 'team a bridge',
      scopes: ['ingest'],
      channels: [`feed-${tag}-a-*`],
    })
    const scoped = await openFeed(((await made.json()) as { token: string }).token)
    const last = (message: FeedMessage) => message.type === 'snapshot' && message.last
    const snapshot = async (feed: Awaited<ReturnType<typeof openFeed>>) => {
      await feed.next(last)
      return feed.messages
        .filter((message) => message.type === 'snapshot')
        .flatMap((message) => (message.type === 'snapshot' ? message.keys : []))
    }
    expect((await snapshot(root)).map((key) => key.id)).toContain(existing.id)
    expect((await snapshot(scoped)).map((key) => key.id)).toContain(existing.id)

    const publicKey = formatKey(newKey()).z85
    const teamA = await register({ publicKey, name: 'a', channels: [`feed-${tag}-a-2`] })
    const teamB = await register({
      publicKey: formatKey(newKey()).z85,
      name: 'b',
      channels: [`feed-${tag}-b-1`],
    })
    const created = await scoped.next(
      (message) => message.type === 'change' && message.key.id === teamA.id,
    )
    expect(created).toMatchObject({
      type: 'change',
      key: { id: teamA.id, publicKeys: [publicKey], channels: [`feed-${tag}-a-2`], revoked: false },
    })
    await root.next((message) => message.type === 'change' && message.key.id === teamB.id)
    await send('POST', `/v1/keys/${teamA.id}/revoke`)
    await scoped.next(
      (message) => message.type === 'change' && message.key.id === teamA.id && message.key.revoked,
    )
    await send('DELETE', `/v1/keys/${teamA.id}`)
    await scoped.next((message) => message.type === 'delete' && message.id === teamA.id)
    // The other team's record never reached the team a bridge's feed.
    expect(
      scoped.messages.some((message) => message.type === 'change' && message.key.id === teamB.id),
    ).toBe(false)
    // Versions go up.
    const versions = root.messages.map((message) => message.version)
    expect([...versions].sort((a, b) => a - b)).toEqual(versions)
    root.socket.close()
    scoped.socket.close()
  })

  it('is refused to credentials without the ingest scope, and to requests that are no upgrade', async () => {
    const response = await exports.default.fetch(`${ORIGIN}/v1/keys/feed`, {
      headers: { Upgrade: 'websocket', Authorization: `Bearer ${READ_TOKEN}` },
    })
    expect(await errorCode(response)).toBe('forbidden')
    const plain = await send('GET', '/v1/keys/feed', undefined, INGEST_TOKEN)
    expect(await errorCode(plain)).toBe('upgrade_required')
  })
})

describe('the key feed, as an attacker would use it', () => {
  it('sends the registry in pages within 256 KiB, however long the records', async () => {
    const tag = crypto.randomUUID().slice(0, 8)
    const channels = Array.from(
      { length: 32 },
      (_, index) => `pages-${tag}-${index}-${'c'.repeat(40)}*`,
    )
    await runInDurableObject(
      env.REGISTRY.get(env.REGISTRY.idFromName('registry')),
      (instance: Registry) => {
        for (let index = 0; index < 400; index++) {
          const created = instance.createKey({
            id: `p${tag}${String(index).padStart(7, '0')}`,
            name: 'n'.repeat(100),
            publicKey: newKey(),
            channels,
            labels: {},
            createdAt: Date.now(),
          })
          expect(typeof created).not.toBe('string')
        }
      },
    )
    const response = await exports.default.fetch(`${ORIGIN}/v1/keys/feed`, {
      headers: { Upgrade: 'websocket', Authorization: `Bearer ${INGEST_TOKEN}` },
    })
    const socket = response.webSocket as WebSocket
    const sizes: number[] = []
    let last = false
    socket.addEventListener('message', (event) => {
      sizes.push((event.data as string).length)
      if (parseFeedMessage(event.data as string)?.type === 'snapshot') {
        last ||= (JSON.parse(event.data as string) as { last: boolean }).last
      }
    })
    socket.accept()
    const deadline = Date.now() + 10_000
    while (!last && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    expect(last).toBe(true)
    expect(sizes.length).toBeGreaterThan(1)
    expect(Math.max(...sizes)).toBeLessThanOrEqual(256 * 1024 + 100)
    socket.close()
  })

  it('closes a scoped token’s feed when the token is deleted, and caps feeds per credential', async () => {
    const made = (await (
      await send('POST', '/v1/tokens', { name: 'feeds', scopes: ['ingest'], channels: ['x-*'] })
    ).json()) as { id: string; token: string }
    const open = () =>
      exports.default.fetch(`${ORIGIN}/v1/keys/feed`, {
        headers: { Upgrade: 'websocket', Authorization: `Bearer ${made.token}` },
      })
    const sockets: WebSocket[] = []
    for (let index = 0; index < 64; index++) {
      const response = await open()
      expect(response.status).toBe(101)
      const socket = response.webSocket as WebSocket
      socket.accept()
      sockets.push(socket)
    }
    const refused = await open()
    expect(refused.status).toBe(429)
    await refused.body?.cancel()
    const closed = new Promise<number>((resolve) =>
      sockets[0]?.addEventListener('close', (event) => resolve(event.code)),
    )
    await send('DELETE', `/v1/tokens/${made.id}`)
    expect(await closed).toBe(4003)
  })

  it('tells a scoped feed a record left its channels, and sends nothing for a change that changes nothing', async () => {
    const tag = crypto.randomUUID().slice(0, 8)
    const made = (await (
      await send('POST', '/v1/tokens', {
        name: 'moved',
        scopes: ['ingest'],
        channels: [`moved-${tag}-a-*`],
      })
    ).json()) as { token: string }
    const record = await register({
      publicKey: formatKey(newKey()).z85,
      name: 'moving',
      channels: [`moved-${tag}-a-1`],
    })
    const response = await exports.default.fetch(`${ORIGIN}/v1/keys/feed`, {
      headers: { Upgrade: 'websocket', Authorization: `Bearer ${made.token}` },
    })
    const socket = response.webSocket as WebSocket
    const messages: FeedMessage[] = []
    socket.addEventListener('message', (event) => {
      const parsed = parseFeedMessage(event.data as string)
      if (parsed) messages.push(parsed)
    })
    socket.accept()
    const waitFor = async (check: () => boolean) => {
      const deadline = Date.now() + 10_000
      while (!check()) {
        if (Date.now() > deadline) throw new Error('timed out')
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
    await waitFor(() => messages.some((message) => message.type === 'snapshot'))
    // Nothing changes: no message, no new version.
    const same = await send('PATCH', `/v1/keys/${record.id}`, { name: 'moving' })
    expect(same.status).toBe(200)
    await send('PATCH', `/v1/keys/${record.id}`, { channels: [`moved-${tag}-b-1`] })
    await waitFor(() => messages.some((message) => message.type === 'delete'))
    expect(messages.filter((message) => message.type !== 'snapshot')).toEqual([
      { type: 'delete', version: expect.any(Number), id: record.id },
    ])
    socket.close()
  })

  it('refuses a key written non-canonically (bit 255 set), which X25519 reads as another', async () => {
    const key = newKey()
    key[31] = (key[31] as number) | 0x80
    const response = await send('POST', '/v1/keys', {
      publicKey: formatKey(key).z85,
      name: 'x',
      channels: ['a'],
    })
    expect(await errorCode(response)).toBe('invalid_body')
  })
})

describe('what bridges report over the feed', () => {
  it('counts refusals per key, bridge and reason, and traffic per key, shown with the key', async () => {
    const keyText = formatKey(newKey()).z85
    const record = await register({ publicKey: keyText, name: 'reported', channels: ['rep-*'] })
    const response = await exports.default.fetch(`${ORIGIN}/v1/keys/feed`, {
      headers: { Upgrade: 'websocket', Authorization: `Bearer ${INGEST_TOKEN}` },
    })
    const socket = response.webSocket as WebSocket
    socket.accept()
    const stranger = formatKey(newKey()).z85
    const bridgeId = `edge-${crypto.randomUUID().slice(0, 8)}`
    const report = (messages: number) =>
      JSON.stringify({
        type: 'report',
        bridgeId,
        keys: [
          {
            publicKey: keyText,
            connections: 2,
            messages,
            bytes: messages * 10,
            lastSeenAt: Date.now(),
          },
        ],
        refusals: [
          { publicKey: keyText, reason: 'channel_not_allowed', count: 3 },
          { publicKey: stranger, reason: 'unknown_key', count: 7 },
          { publicKey: '', reason: 'bad_box', count: 1 },
        ],
      })
    socket.send(report(5))
    // A second report at once is not taken (one per socket every 5 s), nor a malformed one.
    socket.send(report(100))
    socket.send('{"type":"report","bridgeId":"x","keys":"no","refusals":[]}')
    const refusals = async () => {
      const got = await send('GET', '/v1/keys/refusals?limit=1000')
      return ((await got.json()) as { refusals: Array<Record<string, unknown>> }).refusals.filter(
        (row) => row.bridgeId === bridgeId,
      )
    }
    const deadline = Date.now() + 10_000
    while ((await refusals()).length < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const rows = await refusals()
    expect(rows).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          publicKey: keyText,
          keyId: record.id,
          keyName: 'reported',
          reason: 'channel_not_allowed',
          count: 3,
        }),
        expect.objectContaining({ publicKey: stranger, reason: 'unknown_key', count: 7 }),
        expect.objectContaining({ publicKey: '', reason: 'bad_box', count: 1 }),
      ]),
    )
    expect(rows).toHaveLength(3)
    const shown = (await (await send('GET', `/v1/keys/${record.id}`)).json()) as ApiKey & {
      stats: {
        connections: number
        messages: number
        bytes: number
        refusals: object
        lastSeenAt?: string
      }
    }
    expect(shown.stats).toEqual({
      connections: 2,
      messages: 5,
      bytes: 50,
      refusals: { channel_not_allowed: 3 },
      lastSeenAt: expect.any(String),
    })
    socket.close()
  })

  it('are read by ADMIN_TOKEN only', async () => {
    const made = (await (
      await send('POST', '/v1/tokens', { name: 'lead', scopes: ['admin'], channels: ['t-*'] })
    ).json()) as { token: string }
    expect(await errorCode(await send('GET', '/v1/keys/refusals', undefined, made.token))).toBe(
      'forbidden',
    )
  })
})
