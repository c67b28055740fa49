// The JSON text of stored messages, written directly: the same text as
// `JSON.stringify(toApiMessage(...))` (./present.ts), without building an object per message
// first. Reads of thousands of small messages spend most of their time here, so what repeats
// from one message to the next (the peer, the time) is written once and reused.

import type { MessagePage, StoredMessage } from '../durable/message-store'
import { decodeSegment, type SegmentMessage } from '../durable/segment-codec'
import { z85Encode } from '../shared/z85'
import { toBase64 } from './base64'
import { type FrameEncoding, toApiMessage } from './present'

/** What a message's peer JSON is made of. */
interface PeerOf {
  mechanism: string
  peerAddress: string
  publicKey?: Uint8Array | undefined
  keyName?: string | undefined
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** Writes messages of one channel as JSON, remembering what repeats between them. */
export class MessageJsonWriter {
  readonly #channel: string
  readonly #encoding: FrameEncoding
  /** The `"peer":{…}` text by address, mechanism, key and key name. */
  readonly #peers = new Map<string, string>()
  /** Z85 of the keys seen (a segment's messages share their peer's key array). */
  readonly #keys = new WeakMap<Uint8Array, string>()
  #lastPeer: (PeerOf & { json: string }) | undefined
  #lastTime = Number.NaN
  #lastTimeJson = ''

  constructor(channel: string, encoding: FrameEncoding) {
    this.#channel = channel
    this.#encoding = encoding
  }

  /**
   * Each message of a page as `[seq, its JSON text]`, in order, decoding its segments as it goes
   * (no message object is built for a message of a segment).
   * @throws RangeError when a segment is corrupt.
   */
  *page(page: MessagePage): Generator<[number, string]> {
    for (const part of page.parts) {
      if ('messages' in part) {
        for (const message of part.messages) yield [message.seq, this.write(message)]
        continue
      }
      const first = part.firstSeq + part.from
      const decoded = decodeSegment(part.segment, { from: part.from, count: part.count })
      for (let index = 0; index < decoded.length; index++) {
        const seq = first + index
        yield [seq, this.#inline(seq, decoded[index] as SegmentMessage)]
      }
    }
  }

  /** The JSON text of one message: what `JSON.stringify(toApiMessage(…))` gives. */
  write(message: StoredMessage): string {
    if (message.frames === null) {
      return JSON.stringify(toApiMessage(this.#channel, message, this.#encoding))
    }
    return this.#inline(message.seq, message)
  }

  #inline(
    seq: number,
    message: SegmentMessage | (StoredMessage & { frames: Uint8Array[] }),
  ): string {
    let frames: string
    if (this.#encoding === 'base64') {
      frames = '['
      for (let index = 0; index < message.frames.length; index++) {
        if (index > 0) frames += ','
        // Base64 needs no escaping in JSON.
        frames += `"${toBase64(message.frames[index] as Uint8Array)}"`
      }
      frames = `"frames":${frames}]`
    } else {
      const texts: string[] = []
      const binary: number[] = []
      message.frames.forEach((frame, index) => {
        try {
          texts.push(strictUtf8.decode(frame))
        } catch {
          binary.push(index)
          texts.push(toBase64(frame))
        }
      })
      frames = `"frames":${JSON.stringify(texts)},"binaryFrames":${JSON.stringify(binary)}`
    }
    return `{"seq":${seq},"receivedAt":${this.#time(message.receivedAt)},${frames},${this.#peer(message)}}`
  }

  #time(ms: number): string {
    if (ms !== this.#lastTime) {
      this.#lastTime = ms
      this.#lastTimeJson = `"${new Date(ms).toISOString()}"`
    }
    return this.#lastTimeJson
  }

  #peer(message: PeerOf): string {
    // Most messages come from the peer of the message before.
    const last = this.#lastPeer
    if (
      last !== undefined &&
      last.peerAddress === message.peerAddress &&
      last.mechanism === message.mechanism &&
      last.publicKey === message.publicKey &&
      last.keyName === message.keyName
    ) {
      return last.json
    }
    const json = this.#peerJson(message)
    this.#lastPeer = {
      peerAddress: message.peerAddress,
      mechanism: message.mechanism,
      publicKey: message.publicKey,
      keyName: message.keyName,
      json,
    }
    return json
  }

  #peerJson(message: PeerOf): string {
    let key = ''
    if (message.publicKey) {
      key = this.#keys.get(message.publicKey) ?? z85Encode(message.publicKey)
      this.#keys.set(message.publicKey, key)
    }
    // A name's length first, so no name and address can pass for another pair.
    const name =
      message.keyName === undefined ? '-' : `${message.keyName.length}:${message.keyName}`
    const id = `${message.mechanism}\u0000${key}\u0000${name}${message.peerAddress}`
    let json = this.#peers.get(id)
    if (json === undefined) {
      const peer: Record<string, string> = {
        address: message.peerAddress,
        mechanism: message.mechanism,
      }
      if (key) peer.publicKey = key
      if (message.keyName !== undefined) peer.keyName = message.keyName
      json = `"peer":${JSON.stringify(peer)}`
      this.#peers.set(id, json)
    }
    return json
  }
}
