// The Worker's entry point (wrangler.toml `main`): the HTTP API, the channels' Durable Object
// class and the channel directory's (the dashboard is static assets: worker/dashboard/).

import { app } from './app'

export { ChannelDirectory } from '../durable/channel-directory'
export { ChannelObject } from '../durable/channel-object'

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>
