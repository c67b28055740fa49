// The HTTP API's message shapes, as the Worker writes them (worker/present.ts) and the command
// line reads them (node-bridge/cli/consumer-cli.ts): the fields and their types are the schema's
// (./api/schemas.ts, `Message`); these types only add the rule the schema states in words, that
// a message comes either with its frames or, when large, with their sizes and where to fetch them.

import type { z } from '@hono/zod-openapi'
import type { KeySchema, MessageSchema } from './api/schemas.ts'

/** A message as the schema has it: every field, the large ones optional. */
type MessageFields = z.infer<typeof MessageSchema>

/** The fields only a large message has. */
type LargeFields = 'size' | 'frameCount' | 'frameSizes' | 'framesUrl'

/** What every message in a response has. */
export type ApiMessageHead = Omit<MessageFields, 'frames' | 'binaryFrames' | LargeFields>

/** A message of at most LARGE_MESSAGE_BYTES of frames, which come with it. */
export type ApiInlineMessage = ApiMessageHead &
  Pick<MessageFields, 'binaryFrames'> & { frames: string[] }

/**
 * A message over LARGE_MESSAGE_BYTES of frames: listed by its sizes, its frames fetched one at a
 * time from `framesUrl + "/" + index` (so no response is far over its cap).
 */
export type ApiLargeMessage = ApiMessageHead & { frames: null } & Required<
    Pick<MessageFields, LargeFields>
  >

/** One message in a `GET /v1/channels/:channel/messages` response. */
export type ApiMessage = ApiInlineMessage | ApiLargeMessage

/** A CURVE key record as the API shows it (`GET /v1/keys/:id`). */
export type ApiKey = z.infer<typeof KeySchema>
