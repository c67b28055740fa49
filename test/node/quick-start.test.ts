// The README's quick start, run as written: its shell commands are read from the README
// (between the quick-start markers) and run in a fresh copy of the repository, in order: the
// first (`npm ci && npm start`) in the background until the gateway runs, the others in a
// second shell, a command that follows (`tail`) stopped with Ctrl-C once it printed what was
// sent. Then the dashboard the README points to answers.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { waitFor } from '../support/wait'

const root = new URL('../..', import.meta.url).pathname
const copy = mkdtempSync(join(tmpdir(), 'zmq-edge-quick-start-'))
let gateway: ChildProcess | undefined

afterAll(async () => {
  if (gateway?.pid) {
    // npm start stops everything it started on Ctrl-C (the process group gets it here).
    process.kill(-gateway.pid, 'SIGINT')
    await new Promise((resolve) => gateway?.once('exit', resolve))
  }
  rmSync(copy, { recursive: true, force: true })
}, 30_000)

/** The quick start's commands: each line of its bash blocks, comments and blank lines dropped. */
function quickStartCommands(): string[][] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const section = /<!-- quick-start -->([\s\S]*?)<!-- \/quick-start -->/.exec(readme)?.[1]
  if (!section) throw new Error('README.md has no quick-start markers')
  return [...section.matchAll(/```bash\n([\s\S]*?)```/g)].map((block) =>
    (block[1] as string)
      .split('\n')
      .map((line) => line.replace(/\s+#.*$/, '').trim())
      .filter((line) => line && !line.startsWith('#')),
  )
}

/** Runs one line in bash in the copy; stops it with Ctrl-C once `enough` says its output is. */
function shell(line: string, enough?: (output: string) => boolean) {
  const child = spawn('bash', ['-c', line], { cwd: copy, detached: true })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => (output += chunk))
  child.stderr.on('data', (chunk: Buffer) => (output += chunk))
  return new Promise<{ code: number | null; output: string }>((resolve) => {
    const timer = setInterval(() => {
      if (enough?.(output) && child.pid) process.kill(-child.pid, 'SIGINT')
    }, 200)
    child.once('exit', (code) => {
      clearInterval(timer)
      resolve({ code, output })
    })
  })
}

describe("the README's quick start", () => {
  it('runs as written in a fresh copy: the gateway starts, five messages go in and come out', async () => {
    const [start, tour] = quickStartCommands()
    expect(start).toEqual(['npm ci && npm start'])
    // The repository as a clone has it: its tracked files.
    const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
    for (const file of files.split('\0').filter(Boolean)) {
      mkdirSync(dirname(join(copy, file)), { recursive: true })
      cpSync(join(root, file), join(copy, file))
    }
    gateway = spawn('bash', ['-c', start?.[0] as string], { cwd: copy, detached: true })
    let log = ''
    gateway.stdout?.on('data', (chunk: Buffer) => (log += chunk))
    gateway.stderr?.on('data', (chunk: Buffer) => (log += chunk))
    await waitFor(() => log.includes('relay connected'), {
      timeoutMs: 240_000,
      intervalMs: 500,
      what: `npm ci && npm start running (is port 8787 or 7777 taken?)\n${log.slice(-2000)}`,
    })

    for (const line of tour ?? []) {
      // A command that follows the channel is stopped once it printed the five messages.
      const follows = /\btail\b/.test(line)
      const run = await shell(
        line,
        follows ? (output) => (output.match(/message \d/g) ?? []).length >= 5 : undefined,
      )
      // Stopped with Ctrl-C: npx passes on the signal's exit (130), or the command's own 0.
      const stopped = follows && (run.code === 130 || run.code === null)
      expect({ line, code: stopped ? 0 : run.code }, run.output).toEqual({ line, code: 0 })
      if (line.startsWith('curl')) {
        const page = JSON.parse(run.output.slice(run.output.indexOf('{'))) as {
          messages: Array<{ frames: string[] }>
        }
        expect(page.messages.map((message) => message.frames[0])).toEqual([
          'message 1',
          'message 2',
          'message 3',
          'message 4',
          'message 5',
        ])
      }
      if (follows) expect(run.output.match(/message \d/g)).toHaveLength(5)
    }
    const page = await fetch('http://127.0.0.1:8787/')
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('zmq-edge dashboard')
  }, 360_000)
})
