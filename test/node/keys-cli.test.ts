// `zmq-edge keys` as an operator uses it, against the Worker under `wrangler dev`: add, list,
// show, revoke, rm, and import of an allow-list file; exit codes for a missing or wrong token.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { formatKey } from '../../shared/curve-key-text'
import { freePort } from '../support/channel-reader'
import { runCli } from '../support/cli-process'
import { startWranglerDev, TEST_ADMIN_TOKEN, type WranglerDev } from '../support/wrangler-dev'

let worker: WranglerDev
beforeAll(async () => {
  worker = await startWranglerDev({ port: await freePort() })
}, 90_000)
afterAll(async () => {
  await worker?.stop()
})

async function keys(args: string[], token = TEST_ADMIN_TOKEN) {
  const run = runCli(['keys', ...args], {
    ZMQ_EDGE_URL: worker.httpUrl,
    ...(token ? { ZMQ_EDGE_ADMIN_TOKEN: token } : {}),
  })
  const code = await run.code
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

describe('zmq-edge keys', () => {
  it('adds, lists, shows, revokes and removes a key record', async () => {
    const publicKey = formatKey(generateKeyPair().publicKey)
    const added = await keys([
      'add',
      '--public-key',
      publicKey.hex,
      '--name',
      'pump 7',
      '--channel',
      'sensors-*',
      '--label',
      'site=paris',
      '--messages-per-second',
      '50',
      '--json',
    ])
    expect(added.code, added.stderr).toBe(0)
    const record = JSON.parse(added.stdout) as { id: string; publicKey: string }
    expect(record).toMatchObject({
      name: 'pump 7',
      publicKey: publicKey.z85,
      channels: ['sensors-*'],
      labels: { site: 'paris' },
      rateLimit: { messagesPerSecond: 50 },
      status: 'active',
    })
    const listed = await keys(['list', '--label', 'site=paris'])
    expect(listed.stdout).toContain(`${record.id}  active   ${publicKey.z85}  pump 7  sensors-*`)
    const shown = await keys(['show', record.id])
    expect(shown.stdout).toContain('rate limit: 50 messages/s')
    const revoked = await keys(['revoke', record.id])
    expect(revoked.stdout).toContain('status:     revoked')
    expect((await keys(['list', '--status', 'revoked'])).stdout).toContain(record.id)
    expect((await keys(['rm', record.id])).code).toBe(0)
    const gone = await keys(['show', record.id])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain('404 key_not_found')
  }, 60_000)

  it("imports a bridge's allow-list file, each key once, named by its comment", async () => {
    const [first, second] = [generateKeyPair().publicKey, generateKeyPair().publicKey]
    const file = join(mkdtempSync(join(tmpdir(), 'zmq-edge-import-')), 'clients.txt')
    writeFileSync(
      file,
      `# the pumps\n${formatKey(first).z85}  # pump one\n${formatKey(second).base64}\n`,
    )
    const imported = await keys(['import', file, '--channel', 'pumps-*'])
    expect(imported.code, imported.stderr).toBe(0)
    expect(imported.stderr).toContain('2 key(s) registered, 0 already were')
    const again = await keys(['import', file, '--channel', 'pumps-*'])
    expect(again.stderr).toContain('0 key(s) registered, 2 already were')
    const listed = await keys(['list', '--label', 'imported=clients.txt', '--json'])
    const records = JSON.parse(listed.stdout) as Array<{ name: string; publicKey: string }>
    expect(records.map((record) => [record.publicKey, record.name]).sort()).toEqual(
      [
        [formatKey(first).z85, 'pump one'],
        [formatKey(second).z85, 'clients.txt line 3'],
      ].sort(),
    )
  }, 60_000)

  it('exits 2 without a token or with a bad setting, 1 when the Worker refuses', async () => {
    const missing = await keys(['list'], '')
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('ZMQ_EDGE_ADMIN_TOKEN')
    const noChannel = await keys([
      'add',
      '--public-key',
      formatKey(generateKeyPair().publicKey).z85,
      '--name',
      'x',
    ])
    expect(noChannel.code).toBe(2)
    const wrong = await keys(['list'], 'not-the-token')
    expect(wrong.code).toBe(1)
    expect(wrong.stderr).toContain('401 unauthorized')
  }, 60_000)
})
