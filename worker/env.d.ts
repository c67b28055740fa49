// The Worker's bindings, added to what the Durable Objects read (durable/env.d.ts). Secrets
// (READ_TOKEN, INGEST_TOKEN, ADMIN_TOKEN) come from `.dev.vars` locally and `wrangler secret put` in
// production, never from wrangler.toml; either may be missing.

/// <reference path="../durable/env.d.ts" />

declare namespace Cloudflare {
  interface Env {
    /** One Durable Object per channel, addressed with `idFromName(channel)`. */
    CHANNEL: DurableObjectNamespace<import('../durable/channel-object').ChannelObject>
    /** Bearer token of HTTP readers; the read route answers 503 without it. */
    READ_TOKEN?: string
    /** Bearer token of bridges; the ingest route answers 503 without it. */
    INGEST_TOKEN?: string
    /**
     * Bearer token of administrators (scoped tokens); also the key scoped tokens are signed
     * with (worker/token-format.ts), so none works without it, and changing it voids them all.
     */
    ADMIN_TOKEN?: string
    /** Origins whose browser pages may call the API (comma-separated, or `*`); empty: none. */
    CORS_ALLOWED_ORIGINS?: string
  }

  interface GlobalProps {
    // Types `exports` from 'cloudflare:workers' (used by the workerd tests).
    mainModule: typeof import('./index')
    durableNamespaces: 'ChannelObject' | 'ChannelDirectory' | 'Registry'
  }
}
