// Interop: our PUSH → a pyzmq PULL (Debian's python3-zmq, libzmq 4.3.4), NULL and CURVE, the
// server's key given as base64 the way NetMQ stores it.
import { type ChildProcess, spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { afterEach, describe, expect, it } from 'vitest'
import * as zmq from 'zeromq'
import { PushSocket } from '../../node-bridge/zmtp/sockets/push-socket'
import { z85Decode } from '../../shared/z85'
import { waitFor } from '../support/wait'

const root = new URL('../..', import.meta.url).pathname
const children: ChildProcess[] = []
const sockets: PushSocket[] = []

afterEach(async () => {
  await Promise.all(sockets.splice(0).map((socket) => socket.close({ linger: 0 })))
  for (const child of children.splice(0)) child.kill()
})

interface PythonPull {
  endpoint: string
  version: string
  messages: string[][]
  exited: Promise<number | null>
}

async function pythonPull(count: number, curveSecretKey?: string): Promise<PythonPull> {
  const args = ['test/peers/pyzmq_pull.py', 'tcp://127.0.0.1:0', '--count', String(count)]
  // One argument with '=': a Z85 key may start with '-', which argparse would take for an option.
  if (curveSecretKey) args.push(`--curve-secret-key=${curveSecretKey}`)
  const child = spawn('/usr/bin/python3', args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(child)
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  const messages: string[][] = []
  const bound = new Promise<{ bound: string; zmq: string }>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`pyzmq peer exited with ${code}`)))
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const entry = JSON.parse(line) as { bound?: string; zmq?: string; frames?: string[] }
      if (entry.bound) resolve({ bound: entry.bound, zmq: entry.zmq ?? '' })
      if (entry.frames) {
        messages.push(entry.frames.map((hex) => Buffer.from(hex, 'hex').toString()))
      }
    })
  })
  const { bound: endpoint, zmq: version } = await bound
  return { endpoint, version, messages, exited }
}

describe('our PUSH → pyzmq PULL', () => {
  it.each([['NULL'], ['CURVE']] as const)(
    'delivers multipart messages in order (%s)',
    async (mechanism) => {
      const keys = zmq.curveKeyPair()
      const pull = await pythonPull(5, mechanism === 'CURVE' ? keys.secretKey : undefined)
      expect(pull.version).toMatch(/^4\./)
      const socket = new PushSocket(
        mechanism === 'CURVE'
          ? { curve: { serverKey: Buffer.from(z85Decode(keys.publicKey)).toString('base64') } }
          : {},
      )
      sockets.push(socket)
      socket.connect(pull.endpoint)
      for (let n = 1; n <= 5; n++) await socket.send(['message', `${n}`, ''])
      expect(await pull.exited).toBe(0)
      expect(pull.messages).toEqual(
        Array.from({ length: 5 }, (_, index) => ['message', `${index + 1}`, '']),
      )
      await waitFor(() => socket.stats.sent === 5)
      expect(socket.endpoints()[0]?.handshakes).toBe(1)
    },
  )
})
