// Every subcommand is made from its settings table (node-bridge/cli/config/setting.ts): its
// options and --help come from the table, and its values from flags, then variables, with
// errors naming where a bad value came from.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import type { SettingsTable } from '../../node-bridge/cli/config/setting'
import { SETTINGS } from '../../node-bridge/cli/config/settings'
import { READER_SETTINGS, TAIL_SETTINGS } from '../../node-bridge/cli/consumer-cli'
import { SEND_SETTINGS } from '../../node-bridge/cli/send'

const bin = new URL('../../node-bridge/bin/zmq-edge.mjs', import.meta.url).pathname
const run = promisify(execFile)

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string }
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr }
  }
}

const COMMANDS: Array<[string, SettingsTable]> = [
  ['bridge', SETTINGS],
  ['send', SEND_SETTINGS],
  ['tail', TAIL_SETTINGS],
  ['stats', READER_SETTINGS],
]

describe('the subcommands', () => {
  it.each(COMMANDS)(
    '%s lists every setting of its table in --help, with its variable',
    async (command, table) => {
      const { code, stdout } = await cli([command, '--help'])
      expect(code).toBe(0)
      // commander wraps long lines: compare without the layout.
      const help = stdout.replace(/\s+/g, ' ')
      for (const setting of Object.values(table)) {
        expect(help).toContain(`${setting.flag}${setting.boolean ? ' ' : ''}`)
        if (setting.env) expect(help).toContain(`[${setting.env}]`)
      }
    },
  )

  it('read a value from its variable and name the variable when it is bad', async () => {
    const { code, stderr } = await cli(['stats', '--token', 't'], { ZMQ_EDGE_CHANNEL: '..' })
    expect(code).toBe(2)
    expect(stderr).toContain('ZMQ_EDGE_CHANNEL: expected 1 to 64 characters')
  })

  it('let a flag win over its variable', async () => {
    const { code, stderr } = await cli(['stats', '--token', 't', '--url', 'ftp://x'], {
      ZMQ_EDGE_URL: 'http://127.0.0.1:1',
    })
    expect(code).toBe(2)
    expect(stderr).toContain('--url: expected an http:// or https:// URL, got "ftp://x"')
  })

  it('name a required setting that nothing gives, by flag and variable', async () => {
    const tail = await cli(['tail'])
    expect(tail.code).toBe(2)
    expect(tail.stderr).toContain('--token / ZMQ_EDGE_READ_TOKEN: is required')
    const send = await cli(['send', 'hello'])
    expect(send.code).toBe(2)
    expect(send.stderr).toContain('--connect: is required')
  })
})
