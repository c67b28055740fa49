// A bridge's side of the relay protocol for tests that need traffic in a real Worker: one ingest
// WebSocket per channel, batches numbered 1, 2, 3, …, each awaited until its ACK.

import WebSocket from 'ws'
import {
  BRIDGE_ID_HEADER,
  decodeRelayFrame,
  EPOCH_HEADER,
  encodeBatch,
  newEpoch,
  RELAY_SUBPROTOCOL,
  type RelayFrame,
  type RelayMessage,
} from '../../shared/relay-protocol'

/** Resolves once the ingest WebSocket's first frame, a WELCOME, arrives; rejects on a refusal. */
export function welcomed(socket: WebSocket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('message', (data: Buffer) => {
      const frame = decodeRelayFrame(new Uint8Array(data))
      if (frame.kind === 'welcome') resolve()
      else reject(new Error(`expected a WELCOME, got ${frame.kind}`))
    })
    socket.once('error', reject)
    socket.once('unexpected-response', (_request, response) =>
      reject(new Error(`ingest refused: HTTP ${response.statusCode}`)),
    )
  })
}

/** A NULL message from 127.0.0.1:5555 received now, with these frames (strings as UTF-8). */
export function feedMessage(
  frames: (string | Uint8Array)[],
  overrides: Partial<RelayMessage> = {},
): RelayMessage {
  return {
    receivedAt: Date.now(),
    mechanism: 'NULL',
    peerAddress: '127.0.0.1:5555',
    frames: frames.map((frame) => (typeof frame === 'string' ? Buffer.from(frame) : frame)),
    ...overrides,
  }
}

export class RelayFeeder {
  readonly bridgeId: string
  readonly #socket: WebSocket
  readonly #replies: ((frame: RelayFrame) => void)[] = []
  #batchSeq = 0
  /** Messages stored through this feeder. */
  stored = 0

  private constructor(socket: WebSocket, bridgeId: string) {
    this.bridgeId = bridgeId
    this.#socket = socket
    socket.on('message', (data: Buffer) => {
      this.#replies.shift()?.(decodeRelayFrame(new Uint8Array(data)))
    })
  }

  /** Opens `wsUrl/v1/channels/<channel>/ingest` with the ingest token. */
  static async open(options: {
    wsUrl: string
    channel: string
    ingestToken: string
    bridgeId: string
  }): Promise<RelayFeeder> {
    const socket = new WebSocket(
      `${options.wsUrl}/v1/channels/${options.channel}/ingest`,
      [RELAY_SUBPROTOCOL],
      {
        headers: {
          Authorization: `Bearer ${options.ingestToken}`,
          [BRIDGE_ID_HEADER]: options.bridgeId,
          [EPOCH_HEADER]: String(newEpoch()),
        },
      },
    )
    // The WELCOME comes first: the feeder is ready once it has.
    await welcomed(socket)
    return new RelayFeeder(socket, options.bridgeId)
  }

  /**
   * Sends one batch and waits for its ACK.
   * @throws when the Durable Object answers with a NACK or nothing within `timeoutMs`.
   */
  async send(messages: RelayMessage[], timeoutMs = 10_000): Promise<void> {
    const batchSeq = ++this.#batchSeq
    const reply = new Promise<RelayFrame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply to batch ${batchSeq}`)), timeoutMs)
      this.#replies.push((frame) => {
        clearTimeout(timer)
        resolve(frame)
      })
    })
    this.#socket.send(encodeBatch({ batchSeq, messages }))
    const frame = await reply
    if (frame.kind !== 'ack') throw new Error(`batch ${batchSeq}: ${JSON.stringify(frame)}`)
    this.stored += messages.length
  }

  close(): void {
    this.#socket.close(1000, 'done')
  }
}

/**
 * Sends a batch of `size` messages from `make` every `intervalMs` until stopped, so the
 * channel's rate stays above zero; `stop()` resolves once the batch in flight is acknowledged.
 */
export function startFlow(
  feeder: RelayFeeder,
  make: (index: number) => RelayMessage,
  { size = 5, intervalMs = 100 } = {},
): { stop(): Promise<void> } {
  let running = true
  let index = 0
  const done = (async () => {
    while (running) {
      await feeder.send(Array.from({ length: size }, () => make(index++)))
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  })()
  return {
    async stop() {
      running = false
      await done
    },
  }
}

/**
 * A fresh channel (named `prefix-<random>`) with `messages` stored in it (each a list of frames),
 * and the feeder that stored them, open for more; the caller closes it.
 */
export async function fedChannel(
  wsUrl: string,
  ingestToken: string,
  messages: Array<Array<string | Uint8Array>>,
  prefix = 'fed',
): Promise<{ channel: string; feeder: RelayFeeder }> {
  const channel = `${prefix}-${crypto.randomUUID().slice(0, 8)}`
  const feeder = await RelayFeeder.open({ wsUrl, channel, ingestToken, bridgeId: `b-${channel}` })
  if (messages.length > 0) await feeder.send(messages.map((frames) => feedMessage(frames)))
  return { channel, feeder }
}
