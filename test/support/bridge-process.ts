// Runs the bridge as a real child process (`zmq-edge bridge`), as an operator would, and reads
// its JSON log lines: the bound port, counters, and how it exited.
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'

const root = new URL('../..', import.meta.url).pathname

export interface BridgeProcess {
  /** The first listener's port. */
  port: number
  lines: Array<Record<string, unknown>>
  child: ChildProcess
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>
}

/** Starts `zmq-edge bridge` with these flags; resolves once it listens. */
export async function startBridgeProcess(args: string[]): Promise<BridgeProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'node-bridge/cli/cli.ts', 'bridge', '--stats-interval', '0', ...args],
    { cwd: root, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const lines: Array<Record<string, unknown>> = []
  let stderr = ''
  child.stderr?.on('data', (data: Buffer) => {
    stderr += data.toString()
  })
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge did not start:\n${stderr}`)), 30_000)
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      let entry: Record<string, unknown>
      try {
        entry = JSON.parse(line) as Record<string, unknown>
      } catch {
        return
      }
      lines.push(entry)
      if (entry.msg === 'listening') {
        clearTimeout(timer)
        resolve(Number(String(entry.bind).split(':').pop()))
      }
    })
    void exited.then((code) => {
      clearTimeout(timer)
      reject(new Error(`bridge exited with ${code} before listening:\n${stderr}`))
    })
  })
  return {
    port,
    lines,
    child,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}
