// Library entry point: the PUSH socket and what its users need (keys, errors, events).
export { formatKey, generateKeyPair, KeyFormatError, parseCurveKey } from './keys'
export { parseTcpEndpoint, type TcpEndpoint } from './push/endpoint'
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
} from './push/options'
export {
  EndpointState,
  type EndpointStatus,
  type OutgoingMessage,
  PushSocket,
  type PushSocketEvents,
  type PushSocketStats,
  SocketClosedError,
} from './push/push-socket'
export type { ReadyPeer } from './zmtp/connection'
export { ZmtpError, ZmtpErrorCode } from './zmtp/errors'
