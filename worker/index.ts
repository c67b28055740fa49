// The Worker's entry point (wrangler.toml `main`): the HTTP API and the channels' Durable
// Object class.

import { app } from './app'

export { ChannelObject } from '../durable/channel-object'

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>
