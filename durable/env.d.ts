// What the Durable Objects read from their environment: the channel's vars (./channel-config.ts,
// where they are parsed) and the directory's binding. worker/env.d.ts adds the Worker's own
// bindings to the same interface; the objects are typed with no more than these.

type DurableChannelVars = import('./channel-config').ChannelVars

declare namespace Cloudflare {
  interface Env extends DurableChannelVars {
    /** The one channel directory, `idFromName('channels')`: which channels exist. */
    DIRECTORY: DurableObjectNamespace<import('./channel-directory').ChannelDirectory>
    /** The one registry, `idFromName('registry')`: scoped tokens, asked about a socket's. */
    REGISTRY: DurableObjectNamespace<import('./registry').Registry>
  }
}

// The global `Env` that the Durable Objects (and the Worker's handlers) are typed with.
interface Env extends Cloudflare.Env {}
