// The HTTP API's message shapes, as the Worker writes them (worker/present.ts) and the command
// line reads them (node-bridge/cli/consumer-cli.ts): one definition for both.

/** What every message in a response has. */
export interface ApiMessageHead {
  seq: number
  /** ISO 8601, UTC, millisecond precision. */
  receivedAt: string
  peer: {
    address: string
    mechanism: string
    /** The CURVE client's long-term public key in Z85; only when the bridge sent one. */
    publicKey?: string
  }
}

/** A message of at most LARGE_MESSAGE_BYTES of frames, which come with it. */
export interface ApiInlineMessage extends ApiMessageHead {
  /**
   * Each frame's octets, base64 (RFC 4648 §4); with `encoding=utf8`, the decoded text of each
   * frame that is valid UTF-8 and base64 for those listed in {@link binaryFrames}.
   */
  frames: string[]
  /**
   * Only with `encoding=utf8`: the indexes (from 0) of the frames that are not valid UTF-8 and
   * so are base64 in `frames`; empty when every frame is text.
   */
  binaryFrames?: number[]
}

/**
 * A message over LARGE_MESSAGE_BYTES of frames: listed by its sizes, its frames fetched one at a
 * time from `framesUrl + "/" + index` (so no response is far over its cap).
 */
export interface ApiLargeMessage extends ApiMessageHead {
  frames: null
  /** The frames' octets, all together. */
  size: number
  frameCount: number
  /** Each frame's octets, in order. */
  frameSizes: number[]
  /** The path of the message's frames, relative to the API's origin; frame i is at `/i` under it. */
  framesUrl: string
}

/** One message in a `GET /v1/channels/:channel/messages` response. */
export type ApiMessage = ApiInlineMessage | ApiLargeMessage
