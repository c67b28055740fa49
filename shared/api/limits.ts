// The HTTP API's limits and defaults, which the schemas (./schemas.ts) check and document.

/** `limit` when the query has none. */
export const DEFAULT_LIMIT = 100
/** Largest `limit` accepted (dead letters, the event stream's pages). */
export const MAX_LIMIT = 1000
/**
 * Largest `limit` of a messages read: a page is bounded by its frame octets (8 MiB) anyway,
 * and small messages read fastest in large pages.
 */
export const MAX_READ_LIMIT = 10_000
/** Most channels `GET /v1/channels` lists (each is one call to the channel's object). */
export const MAX_LIST_CHANNELS = 100
/** Longest `wait`, in seconds, of a long poll (reads and pulls). */
export const MAX_WAIT_SECONDS = 30
/** Largest `batchSize` of a pull, and most lease ids in one ack or extend request. */
export const MAX_BATCH = 1000
/** `batchSize` of a pull that names none. */
export const DEFAULT_BATCH_SIZE = 10
/** Longest lease and longest retry delay: 12 hours, as in Cloudflare Queues and SQS. */
export const MAX_VISIBILITY_TIMEOUT_MS = 12 * 60 * 60 * 1000
/** Lease of a pull that names none. */
export const DEFAULT_VISIBILITY_TIMEOUT_MS = 30_000
/** Minutes a channel's history covers (`GET /v1/channels/{channel}/history`), one point each. */
export const HISTORY_MINUTES = 60
