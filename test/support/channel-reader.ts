// Helpers for tests that run the whole path: a free port, and a channel read back over HTTP.
import { createServer } from 'node:net'
import { TEST_READ_TOKEN } from './wrangler-dev'

/** A loopback port nothing listens on yet. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Every message of a channel over HTTP, following `next`; each as its frames in UTF-8. */
export async function readChannel(httpUrl: string, channel: string): Promise<string[][]> {
  const out: string[][] = []
  let after = 0
  for (;;) {
    const response = await fetch(
      `${httpUrl}/v1/channels/${channel}/messages?after=${after}&limit=1000`,
      { headers: { authorization: `Bearer ${TEST_READ_TOKEN}` } },
    )
    if (response.status !== 200) {
      throw new Error(`GET messages answered ${response.status}: ${await response.text()}`)
    }
    const body = (await response.json()) as { messages: Array<{ frames: string[] }>; next: number }
    if (body.messages.length === 0) return out
    for (const message of body.messages) {
      out.push(message.frames.map((frame) => Buffer.from(frame, 'base64').toString()))
    }
    after = body.next
  }
}
