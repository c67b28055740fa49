// Socket types as data: what one socket type needs of a connection (its name, the peers it may
// talk to, whether it delivers or sends messages, the commands it handles). The connection
// (../connection.ts) is the same for all of them; a new socket type is a description here, not
// a fork of the connection.
import type { Command } from '../codec/command.ts'
import type { ReadyPeer, ZmtpConnection } from '../connection.ts'

/** A socket type as the connection uses it. */
export interface SocketType {
  /** The Socket-Type property we announce (RFC 23), e.g. `PULL`. */
  readonly name: string
  /** Peer socket types we accept (RFC 23 §Socket Compatibility; RFC 15 has the same table). */
  readonly peers: readonly string[]
  /** Messages from the peer are delivered; when false they are counted and dropped. */
  readonly receives: boolean
  /** We send messages to the peer (the connection encodes them). */
  readonly sends: boolean
  /**
   * Commands after the handshake besides PING, PONG and ERROR, which the connection handles
   * (SUBSCRIBE and CANCEL for a publisher, RFC 29); others are ignored, as libzmq ignores them.
   * `connection` says which peer sent it (the socket keeps per-peer state by it). `command.data`
   * is a view of the received read: copy what is kept. Throwing closes that connection only.
   */
  readonly onCommand?: (command: Command, connection: ZmtpConnection) => void
  /**
   * Once the handshake is done, before the owner hears of it: what this socket type says first
   * (a SUB's subscriptions, RFC 29). Throwing closes that connection only.
   */
  readonly onReady?: (connection: ZmtpConnection, peer: ReadyPeer) => void
  /**
   * Whether a whole message received is delivered; others are counted and dropped (a SUB
   * filters by its subscriptions, as libzmq's SUB does on receipt too).
   */
  readonly admits?: (frames: readonly Uint8Array[]) => boolean
}

/** RFC 15 (ZMTP 2.0): the socket type is one octet in the greeting. */
export const ZMTP2_SOCKET_TYPE_CODES: Readonly<Record<string, number>> = {
  PAIR: 0x00,
  PUB: 0x01,
  SUB: 0x02,
  REQ: 0x03,
  REP: 0x04,
  DEALER: 0x05,
  ROUTER: 0x06,
  PULL: 0x07,
  PUSH: 0x08,
}

/** RFC 30: a PULL receives from PUSH peers, and sends nothing. */
export const PULL: SocketType = { name: 'PULL', peers: ['PUSH'], receives: true, sends: false }

/** RFC 30: a PUSH sends to PULL peers; a PULL never sends, so anything received is dropped. */
export const PUSH: SocketType = { name: 'PUSH', peers: ['PULL'], receives: false, sends: true }

/** RFC 28: a DEALER sends round-robin to ROUTER, REP or DEALER peers and reads their replies. */
export const DEALER: SocketType = {
  name: 'DEALER',
  peers: ['ROUTER', 'REP', 'DEALER'],
  receives: true,
  sends: true,
}

/** RFC 28: a REQ sends a request to a REP or ROUTER peer and reads its reply. */
export const REQ: SocketType = {
  name: 'REQ',
  peers: ['REP', 'ROUTER'],
  receives: true,
  sends: true,
}

/** The peer's socket type by its RFC 15 octet, or undefined for an unknown octet. */
export function socketTypeOfZmtp2Code(code: number): string | undefined {
  return Object.entries(ZMTP2_SOCKET_TYPE_CODES).find(([, value]) => value === code)?.[0]
}
