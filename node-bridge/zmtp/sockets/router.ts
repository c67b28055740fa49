// A ROUTER socket (RFC 28 ZMTP REQ-REP) as data: it receives requests from REQ, DEALER and
// ROUTER peers and sends each one reply on the connection it came from. A request is an
// envelope, every frame up to and including the first empty one (a REQ sends the empty
// delimiter first; a DEALER may send none, then the envelope is empty), and a body; the reply
// is the envelope again, then the answer's frames (RFC 28 §The Request-Reply Envelope).
import type { SocketType } from './socket-type.ts'

/** RFC 28: ROUTER talks to REQ, DEALER and ROUTER peers, and sends as well as receives. */
export const ROUTER: SocketType = {
  name: 'ROUTER',
  peers: ['REQ', 'DEALER', 'ROUTER'],
  receives: true,
  sends: true,
}

/** A request split into its envelope and its body (RFC 28). */
export function splitEnvelope(frames: readonly Uint8Array[]): {
  envelope: Uint8Array[]
  body: Uint8Array[]
} {
  const delimiter = frames.findIndex((frame) => frame.length === 0)
  return {
    envelope: frames.slice(0, delimiter + 1),
    body: frames.slice(delimiter + 1),
  }
}
