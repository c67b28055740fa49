// ZMTP protocol errors: one class with a stable code and the action the connection takes on the wire.

/** Stable error codes (names follow libzmq's `ZMQ_PROTOCOL_ERROR_ZMTP_*` taxonomy where one exists). */
export const ZmtpErrorCode = {
  MALFORMED_GREETING: 'MALFORMED_GREETING',
  UNSUPPORTED_VERSION: 'UNSUPPORTED_VERSION',
  MECHANISM_MISMATCH: 'MECHANISM_MISMATCH',
  MALFORMED_FRAME: 'MALFORMED_FRAME',
  FRAME_TOO_LARGE: 'FRAME_TOO_LARGE',
  MALFORMED_COMMAND: 'MALFORMED_COMMAND',
  INVALID_METADATA: 'INVALID_METADATA',
  UNEXPECTED_COMMAND: 'UNEXPECTED_COMMAND',
  INVALID_SOCKET_TYPE: 'INVALID_SOCKET_TYPE',
  PEER_ERROR: 'PEER_ERROR',
  HANDSHAKE_TIMEOUT: 'HANDSHAKE_TIMEOUT',
  // CURVE (RFC 26); names from libzmq's ZMQ_PROTOCOL_ERROR_ZMTP_* and ZAP failure events.
  MALFORMED_COMMAND_HELLO: 'MALFORMED_COMMAND_HELLO',
  MALFORMED_COMMAND_INITIATE: 'MALFORMED_COMMAND_INITIATE',
  MALFORMED_COMMAND_MESSAGE: 'MALFORMED_COMMAND_MESSAGE',
  /** A box that does not open, or a cookie that does not belong to this connection. */
  CRYPTOGRAPHIC: 'CRYPTOGRAPHIC',
  /** A short nonce that does not increase. */
  INVALID_SEQUENCE: 'INVALID_SEQUENCE',
  /** A weak (low-order) key, or a vouch that does not name this connection's keys. */
  KEY_EXCHANGE: 'KEY_EXCHANGE',
  /** The client's long-term key is refused (ERROR "400"), or the authorizer failed. */
  AUTHENTICATION_FAILED: 'AUTHENTICATION_FAILED',
  TOO_MANY_FRAMES: 'TOO_MANY_FRAMES',
  HEARTBEAT_TIMEOUT: 'HEARTBEAT_TIMEOUT',
  /** Partial messages of ready connections, all together, would pass the process's budget. */
  MESSAGE_BUDGET_EXCEEDED: 'MESSAGE_BUDGET_EXCEEDED',
  /** A peer that cannot be PINGed (ZMTP 3.0 or 2.0, or heartbeats off) sent nothing for too long. */
  IDLE_TIMEOUT: 'IDLE_TIMEOUT',
  /**
   * Connections not yet READY hold, all listeners together, the most octets the pre-handshake
   * budget allows (--preauth-budget): this one would have taken it past that.
   */
  PREAUTH_BUDGET_EXCEEDED: 'PREAUTH_BUDGET_EXCEEDED',
  /**
   * Our fault, not the peer's: a handler we passed in (onMessage, onReady) threw, or the code
   * failed in a way no input should cause. Closed without ERROR, so the peer comes back.
   */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
} as const
export type ZmtpErrorCode = (typeof ZmtpErrorCode)[keyof typeof ZmtpErrorCode]

/**
 * Failures that are not the peer's doing: our own budgets and our own bugs. A listener does not
 * hold them against the peer's address, and a dialling socket dials again after them.
 */
export const LOCAL_FAILURES: ReadonlySet<string> = new Set([
  ZmtpErrorCode.INTERNAL_ERROR,
  ZmtpErrorCode.PREAUTH_BUDGET_EXCEEDED,
  ZmtpErrorCode.MESSAGE_BUDGET_EXCEEDED,
])

/** What the connection does on the wire: 'error' = send an ERROR command with `reason` then close; 'close' = plain close. */
export type ZmtpErrorAction = 'error' | 'close'

/** Options of a {@link ZmtpError}. */
export interface ZmtpErrorOptions {
  /** Default `'close'`: RFC 23 says errors other than an explicit ERROR are signalled by closing. */
  action?: ZmtpErrorAction
  /** The ERROR command's reason (at most 255 octets on the wire; longer reasons are truncated). */
  reason?: string
  cause?: unknown
}

/** A ZMTP protocol failure. Tests and callers switch on `code`, never on the message. */
export class ZmtpError extends Error {
  override readonly name: string = 'ZmtpError'
  readonly code: ZmtpErrorCode
  readonly action: ZmtpErrorAction
  /** ERROR command reason, <= 255 octets; only meaningful when `action` is `'error'`. */
  readonly reason?: string

  /**
   * @param code stable error code
   * @param message human-readable description (for logs)
   * @param options wire action (default `'close'`), ERROR reason and cause
   */
  constructor(code: ZmtpErrorCode, message: string, options?: ZmtpErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.action = options?.action ?? 'close'
    if (options?.reason !== undefined) this.reason = options.reason
  }
}
