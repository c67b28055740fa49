// The Worker's entry point (wrangler.toml `main`): the HTTP API (and the dashboard), the
// channels' Durable Object class and the channel directory's.

import { app } from './app'

export { ChannelDirectory } from '../durable/channel-directory'
export { ChannelObject } from '../durable/channel-object'

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>
