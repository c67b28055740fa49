// The JSON text the read routes write by hand is exactly JSON.stringify of the API's message
// objects, whatever the message: frames binary or text, keys or none, shared peers and times.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { StoredMessage } from '../../durable/message-store'
import { encodeSegment } from '../../durable/segment-codec'
import { MessageJsonWriter } from '../../worker/message-json'
import { toApiMessage } from '../../worker/present'

const key = fc.uint8Array({ minLength: 32, maxLength: 32 })
const frame = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }).map((text) => new TextEncoder().encode(text)),
  fc.constantFrom(new TextEncoder().encode('"\\\n\u2028</script>'), new Uint8Array([0xff, 0xfe])),
)
const peer = fc.record({
  mechanism: fc.constantFrom('NULL' as const, 'CURVE' as const),
  peerAddress: fc.oneof(fc.constantFrom('127.0.0.1:5555', '[::1]:7'), fc.string({ maxLength: 20 })),
  publicKey: fc.option(key, { nil: undefined }),
  keyName: fc.option(
    fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 50 }),
      fc.constantFrom('"\u2028'),
    ),
    { nil: undefined },
  ),
})
const messages = fc
  .tuple(
    fc.array(peer, { minLength: 1, maxLength: 3 }),
    fc.array(
      fc.tuple(
        fc.nat(2),
        fc.array(frame, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 3 }),
      ),
      { maxLength: 12 },
    ),
  )
  .map(([peers, entries]) => {
    let time = 1_700_000_000_000
    return entries.map(([peerIndex, frames, step], index): StoredMessage => {
      time += step
      const from = peers[peerIndex % peers.length] as (typeof peers)[number]
      const message: StoredMessage = {
        seq: index + 1,
        receivedAt: time,
        mechanism: from.mechanism,
        peerAddress: from.peerAddress,
        size: frames.reduce((sum, f) => sum + f.length, 0),
        frames,
      }
      // The same key object for a peer's messages, as a decoded segment gives them.
      if (from.publicKey) message.publicKey = from.publicKey
      if (from.publicKey && from.keyName !== undefined) message.keyName = from.keyName
      return message
    })
  })

describe('MessageJsonWriter', () => {
  it('writes what JSON.stringify(toApiMessage(…)) writes, in both encodings', () => {
    fc.assert(
      fc.property(
        messages,
        fc.constantFrom('base64' as const, 'utf8' as const),
        (list, encoding) => {
          const writer = new MessageJsonWriter('chan.1', encoding)
          for (const message of list) {
            expect(writer.write(message)).toBe(
              JSON.stringify(toApiMessage('chan.1', message, encoding)),
            )
          }
        },
      ),
      { numRuns: 300 },
    )
  })

  it('writes a page of segments (decoded as it goes) as it writes those messages', () => {
    fc.assert(
      fc.property(messages, fc.nat(5), (list, from) => {
        if (list.length === 0) return
        const start = Math.min(from, list.length - 1)
        const segment = encodeSegment(
          list.map((message) => ({ ...message, frames: message.frames ?? [] })),
        )
        const page = {
          parts: [{ segment, firstSeq: 1, from: start, count: list.length - start }],
          count: list.length - start,
        }
        const lines = [...new MessageJsonWriter('c', 'utf8').page(page)]
        expect(lines).toEqual(
          list
            .slice(start)
            .map((message) => [message.seq, JSON.stringify(toApiMessage('c', message, 'utf8'))]),
        )
      }),
      { numRuns: 200 },
    )
  })

  it('writes a large message (listed by its sizes) as the API object too', () => {
    const writer = new MessageJsonWriter('c', 'base64')
    const large: StoredMessage = {
      seq: 9,
      receivedAt: 0,
      mechanism: 'NULL',
      peerAddress: 'p',
      size: 9 * 1024 * 1024,
      frames: null,
      frameSizes: [9 * 1024 * 1024],
    }
    expect(JSON.parse(writer.write(large))).toEqual(toApiMessage('c', large))
  })
})
