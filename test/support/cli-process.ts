// Runs the `zmq-edge` command line as a user does (a real process through the package's bin
// script) and collects what it prints.
import { type ChildProcess, spawn } from 'node:child_process'

const bin = new URL('../../node-bridge/bin/zmq-edge.mjs', import.meta.url).pathname

export interface CliRun {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Non-empty lines of stdout. */
  lines: () => string[]
  code: Promise<number | null>
}

/** Starts `zmq-edge ARGS` with only PATH (and `env`) in its environment. */
export function runCli(args: string[], env: Record<string, string> = {}): CliRun {
  const child = spawn(process.execPath, [bin, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (data: Buffer) => {
    stdout += data.toString()
  })
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString()
  })
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    lines: () => stdout.split('\n').filter(Boolean),
    code: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  }
}
