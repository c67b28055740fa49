// Library entry point: the PUSH, DEALER and REQ sockets and what their users need (keys, errors,
// events).

export type { ReadyPeer } from './zmtp/connection.ts'
export { parseTcpEndpoint, type TcpEndpoint } from './zmtp/endpoint.ts'
export { ZmtpError, ZmtpErrorCode } from './zmtp/errors.ts'
export {
  formatKey,
  generateKeyPair,
  KeyFormatError,
  parseCurveKey,
} from './zmtp/mechanisms/curve-keys.ts'
export {
  DEFAULT_REPLY_TIMEOUT_MS,
  DealerSocket,
  ReplyError,
  ReplyTimeoutError,
  ReqSocket,
  type RequestOptions,
  type RequestSocketOptions,
} from './zmtp/sockets/dealer-socket.ts'
export {
  type CurveKeyInput,
  DEFAULT_HANDSHAKE_IVL_MS,
  DEFAULT_LINGER_MS,
  DEFAULT_MAX_WRITE_BYTES,
  DEFAULT_RECONNECT_IVL_MAX_MS,
  DEFAULT_RECONNECT_IVL_MS,
  DEFAULT_SEND_HWM,
  type PushCurveOptions,
  type PushSocketOptions,
} from './zmtp/sockets/push-options.ts'
export {
  EndpointState,
  type EndpointStatus,
  type OutgoingMessage,
  PushSocket,
  type PushSocketEvents,
  type PushSocketStats,
  SocketClosedError,
} from './zmtp/sockets/push-socket.ts'
