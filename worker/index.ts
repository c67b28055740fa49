// The Worker's entry point (wrangler.toml `main`): the HTTP API, the channels' Durable Object
// class, the channel directory's and the registry's (the dashboard is static assets:
// worker/dashboard/).

import { app } from './app'

export { ChannelDirectory } from '../durable/channel-directory'
export { ChannelObject } from '../durable/channel-object'
export { Registry } from '../durable/registry'

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>
