// `zmq-edge/client`: the typed HTTP client of the Worker's API and its leased consumer loop, for
// Node, browsers and Workers (fetch only).

export type { ApiInlineMessage, ApiLargeMessage, ApiMessage } from '../api-types.ts'
export {
  type ConsumeOptions,
  type ConsumeResult,
  consume,
  type HandlerContext,
  HandlerTimeoutError,
} from './consumer.ts'
export {
  type AckOptions,
  type AckResult,
  type ChannelHistory,
  type ChannelStats,
  type ClientOptions,
  type ExtendResult,
  type FrameEncoding,
  type LeasedMessage,
  type MessagePage,
  type PullOptions,
  ZmqEdgeApiError,
  ZmqEdgeClient,
} from './http-client.ts'
