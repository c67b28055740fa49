// Every error code the HTTP API answers with (`{"error": {"code", "message"}}`): part of the
// contract, so the schemas (./schemas.ts) and clients take them from here.

/** Every error code the HTTP API returns. Stable: clients switch on them. */
export const ErrorCode = {
  INVALID_CHANNEL: 'invalid_channel',
  INVALID_GROUP: 'invalid_group',
  INVALID_QUERY: 'invalid_query',
  INVALID_PATH: 'invalid_path',
  INVALID_BODY: 'invalid_body',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  PAYLOAD_TOO_LARGE: 'payload_too_large',
  TOO_MANY_WAITERS: 'too_many_waiters',
  UNAUTHORIZED: 'unauthorized',
  /** A valid credential without the route's scope, or not for its channel. */
  FORBIDDEN: 'forbidden',
  /** A scoped token that does not exist (DELETE /v1/tokens/:id). */
  TOKEN_NOT_FOUND: 'token_not_found',
  /** The registry holds as many tokens as it takes. */
  TOO_MANY_TOKENS: 'too_many_tokens',
  /** A CURVE key record that does not exist. */
  KEY_NOT_FOUND: 'key_not_found',
  /** A public key that is another record's. */
  KEY_EXISTS: 'key_exists',
  /** The registry holds as many key records as it takes. */
  TOO_MANY_KEYS: 'too_many_keys',
  /** A change a revoked key record does not take (its public keys; deletion but by the root). */
  KEY_REVOKED: 'key_revoked',
  /** An ingest upgrade with a bridge id bound to another credential. */
  BRIDGE_ID_BOUND: 'bridge_id_bound',
  NOT_FOUND: 'not_found',
  MESSAGE_NOT_FOUND: 'message_not_found',
  FRAME_NOT_FOUND: 'frame_not_found',
  /** A consumer group that does not exist (only `default` is created by its first pull). */
  GROUP_NOT_FOUND: 'group_not_found',
  /** A consumer group's state is at its cap: ack, or let leases expire, then retry. */
  GROUP_FULL: 'group_full',
  /** A channel holds at most MAX_GROUPS consumer groups. */
  TOO_MANY_GROUPS: 'too_many_groups',
  UPGRADE_REQUIRED: 'upgrade_required',
  /** An ingest upgrade without the relay subprotocol this Worker speaks (an older bridge). */
  UNSUPPORTED_RELAY_VERSION: 'unsupported_relay_version',
  /** An ingest upgrade whose bridge id or epoch header is missing or malformed. */
  INVALID_SESSION: 'invalid_session',
  NOT_CONFIGURED: 'not_configured',
  INTERNAL: 'internal',
} as const
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]
