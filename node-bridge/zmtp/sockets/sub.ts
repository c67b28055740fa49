// A SUB socket (RFC 29 ZMTP PUB-SUB) as data: it receives from PUB and XPUB peers, and on every
// connection, once the handshake is done, tells the peer what to send it. A publisher filters
// by prefix and sends nothing before a subscription arrives (RFC 29), so the subscriptions go
// out first, in the form the peer speaks: the SUBSCRIBE command to a ZMTP 3.1 peer (RFC 37's
// version of RFC 23), a message of one frame, 0x01 and the prefix, to ZMTP 3.0 and 2.0 peers.
import type { ReadyPeer, ZmtpConnection } from '../connection.ts'
import type { SocketType } from './socket-type.ts'

/** Subscribe to every message: the empty prefix. */
export const EVERYTHING: readonly Uint8Array[] = [new Uint8Array(0)]

/** Whether `peer` takes SUBSCRIBE as a command (ZMTP 3.1 and later), not as a message. */
function speaksSubscribeCommand(peer: ReadyPeer): boolean {
  return peer.majorVersion > 3 || (peer.majorVersion === 3 && peer.minorVersion >= 1)
}

/** Sends each subscription to a newly ready publisher. */
export function subscribe(
  connection: ZmtpConnection,
  peer: ReadyPeer,
  prefixes: readonly Uint8Array[],
): void {
  for (const prefix of prefixes) {
    if (speaksSubscribeCommand(peer)) {
      connection.sendCommand('SUBSCRIBE', prefix)
    } else {
      const message = new Uint8Array(1 + prefix.length)
      message[0] = 0x01
      message.set(prefix, 1)
      connection.sendControlMessage([message])
    }
  }
}

/** Whether the first frame of `frames` starts with one of `prefixes` (RFC 29's match). */
export function matchesSubscription(
  frames: readonly Uint8Array[],
  prefixes: readonly Uint8Array[],
): boolean {
  const topic = frames[0] ?? new Uint8Array(0)
  return prefixes.some(
    (prefix) =>
      prefix.length <= topic.length && prefix.every((octet, index) => topic[index] === octet),
  )
}

/**
 * A SUB subscribed to `prefixes` (every message when none are given). It filters what arrives
 * too: a publisher that sends more than it was asked (a raw one, or a hostile one) is dropped,
 * not stored.
 */
export function createSub(prefixes: readonly Uint8Array[] = EVERYTHING): SocketType {
  const subscriptions =
    prefixes.length === 0 ? EVERYTHING : prefixes.map((prefix) => prefix.slice())
  const everything = subscriptions.some((prefix) => prefix.length === 0)
  return {
    name: 'SUB',
    peers: ['PUB', 'XPUB'],
    receives: true,
    sends: false,
    onReady: (connection, peer) => subscribe(connection, peer, subscriptions),
    ...(everything ? {} : { admits: (frames) => matchesSubscription(frames, subscriptions) }),
  }
}
