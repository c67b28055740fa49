// The Worker's bindings. Secrets (READ_TOKEN, INGEST_TOKEN) come from `.dev.vars` locally and
// `wrangler secret put` in production, never from wrangler.toml; either may be missing.

declare namespace Cloudflare {
  interface Env {
    /** One Durable Object per channel, addressed with `idFromName(channel)`. */
    CHANNEL: DurableObjectNamespace<import('../durable/channel-object').ChannelObject>
    /** The one channel directory, `idFromName('channels')`: which channels exist. */
    DIRECTORY: DurableObjectNamespace<import('../durable/channel-directory').ChannelDirectory>
    /** Bearer token of HTTP readers; the read route answers 503 without it. */
    READ_TOKEN?: string
    /** Bearer token of bridges; the ingest route answers 503 without it. */
    INGEST_TOKEN?: string
    /** Deliveries to leased consumers before a dead letter (wrangler var; default 5). */
    MAX_ATTEMPTS?: string
    /** Largest message a channel stores, frame octets (wrangler var; default 16 MiB). */
    MAX_MESSAGE_BYTES?: string
    /** Retention (wrangler vars; 0 = no limit): messages, frame bytes and age per channel. */
    RETENTION_MAX_MESSAGES?: string
    RETENTION_MAX_BYTES?: string
    RETENTION_MAX_AGE_SECONDS?: string
    /** `block` (default: NACK CHANNEL_FULL, nothing lost) or `drop-oldest`. */
    OVERFLOW_POLICY?: string
    /** Idle time after which a consumer group stops holding retention back (default 1 day). */
    GROUP_INACTIVE_SECONDS?: string
  }

  interface GlobalProps {
    // Types `exports` from 'cloudflare:workers' (used by the workerd tests).
    mainModule: typeof import('./index')
    durableNamespaces: 'ChannelObject' | 'ChannelDirectory'
  }
}

// The global `Env` that handlers and the Durable Object are typed with.
interface Env extends Cloudflare.Env {}
