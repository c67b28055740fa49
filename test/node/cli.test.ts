// The `zmq-edge` command as a user runs it: a real process through the package's bin script.
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { derivePublicKey } from '../../node-bridge/zmtp/mechanisms/curve-keys'
import { z85Decode, z85Encode } from '../../shared/z85'

const bin = new URL('../../node-bridge/bin/zmq-edge.mjs', import.meta.url).pathname
const run = promisify(execFile)

async function zmqEdge(
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH },
    })
    return { stdout, stderr, code: 0 }
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number }
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code }
  }
}

function field(output: string, label: string): string {
  const line = output.split('\n').find((entry) => entry.startsWith(label))
  return line?.slice(label.length).trim() ?? ''
}

describe('zmq-edge keygen', () => {
  it('prints a matching key pair in Z85, base64 and hex', async () => {
    const { stdout, code } = await zmqEdge('keygen')
    expect(code).toBe(0)
    const publicZ85 = field(stdout, 'public key  Z85')
    const secretZ85 = field(stdout, 'secret key  Z85')
    expect(publicZ85).toHaveLength(40)
    expect(z85Encode(derivePublicKey(z85Decode(secretZ85)))).toBe(publicZ85)
    const publicKey = z85Decode(publicZ85)
    expect(field(stdout, 'public key  base64')).toBe(Buffer.from(publicKey).toString('base64'))
    expect(field(stdout, 'public key  hex')).toBe(Buffer.from(publicKey).toString('hex'))
  })

  it('writes the secret key to a private file and never overwrites one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-keygen-'))
    const secretFile = join(dir, 'server.key')
    const publicFile = join(dir, 'server.pub')
    const first = await zmqEdge('keygen', '--secret-file', secretFile, '--public-file', publicFile)
    expect(first.code).toBe(0)
    expect(first.stdout).not.toContain(readFileSync(secretFile, 'utf8').trim())
    expect(statSync(secretFile).mode & 0o777).toBe(0o600)
    const secret = z85Decode(readFileSync(secretFile, 'utf8').trim())
    expect(z85Encode(derivePublicKey(secret))).toBe(readFileSync(publicFile, 'utf8').trim())
    const again = await zmqEdge('keygen', '--secret-file', secretFile)
    expect(again.code).not.toBe(0)
    expect(readFileSync(secretFile, 'utf8').trim()).toBe(z85Encode(secret))
  })
})

describe('zmq-edge bridge', () => {
  it('refuses a bad setting with exit code 2 and a message naming it', async () => {
    const { stderr, code } = await zmqEdge(
      'bridge',
      '--bind',
      'udp://nowhere',
      '--ingest-token',
      't',
    )
    expect(code).toBe(2)
    expect(stderr).toContain('--bind')
    expect(stderr).toContain('tcp://HOST:PORT')
  })

  it('reads --config and names the file and key of a bad setting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-config-'))
    const path = join(dir, 'bridge.json')
    writeFileSync(path, JSON.stringify({ ingestToken: 't', hwmMessages: 'lots' }))
    const { stderr, code } = await zmqEdge('bridge', '--config', path)
    expect(code).toBe(2)
    expect(stderr).toContain(`${path}: hwmMessages`)
  })

  it('reads a YAML --config and points at the line and column of a bad setting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-config-'))
    const path = join(dir, 'bridge.yaml')
    writeFileSync(path, '# bridge\ningestToken: t\nhwmMessages: lots\n')
    const { stderr, code } = await zmqEdge('bridge', '--config', path)
    expect(code).toBe(2)
    expect(stderr).toContain(`${path}:3:14: hwmMessages: expected a positive whole number`)
    // The flag replaces the file's bad value; the next bad setting, a flag, is the one named.
    const flagged = await zmqEdge('bridge', '--config', path, '--hwm-messages', '5', '--bind', 'x')
    expect(flagged.code).toBe(2)
    expect(flagged.stderr).toContain('--bind: expected tcp://HOST:PORT')
  })

  it('reports a YAML syntax error at file:line:col and says to quote the value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-config-'))
    const path = join(dir, 'bridge.yml')
    writeFileSync(
      path,
      'ingestToken: t\ncurveSecretKey: &JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6\n',
    )
    const { stderr, code } = await zmqEdge('bridge', '--config', path)
    expect(code).toBe(2)
    expect(stderr).toContain(`zmq-edge: ${path}:2:37: not valid YAML`)
    expect(stderr).toContain('quote a value')
    expect(stderr).toContain('curveSecretKey: ****')
    expect(stderr).not.toContain('JTKVSB')
  })

  it('masks the ingest token in the line of a bad config file it quotes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zmq-edge-config-'))
    const path = join(dir, 'bridge.yaml')
    writeFileSync(path, 'channel: a\ningestToken: S3cr3t-T0ken: oops\n')
    const { stderr, code } = await zmqEdge('bridge', '--config', path)
    expect(code).toBe(2)
    expect(stderr).toContain(`${path}:2:14: not valid YAML`)
    expect(stderr).toContain('ingestToken: ****')
    expect(stderr).not.toContain('S3cr3t')
  })

  it('names the missing ingest token and its variable', async () => {
    const { stderr, code } = await zmqEdge('bridge')
    expect(code).toBe(2)
    expect(stderr).toContain('ZMQ_EDGE_INGEST_TOKEN')
  })
})
