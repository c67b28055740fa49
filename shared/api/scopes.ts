// The scopes of API credentials: what each allows, one place for the Worker's checks, the
// schemas and the table in docs/curve-and-keys.md. The root secrets hold fixed scopes: READ_TOKEN read and
// consume, INGEST_TOKEN ingest, ADMIN_TOKEN admin.

export const SCOPES = ['read', 'consume', 'ingest', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/** What each scope allows, in words (the schemas' and docs/curve-and-keys.md's). */
export const SCOPE_MEANING: Record<Scope, string> = {
  read: 'cursor reads, frames, the live tail, stats, the channel list, groups and dead letters listed',
  consume: 'read, and pull, ack, extend, redrive, create and delete consumer groups',
  ingest: "a bridge's credential: the ingest WebSocket",
  admin: 'manage scoped tokens',
}

/** The scopes a scope includes besides itself. */
const INCLUDES: Record<Scope, readonly Scope[]> = {
  read: [],
  consume: ['read'],
  ingest: [],
  admin: [],
}

/** True when a credential of `held` scopes may do what `needed` allows. */
export function grants(held: readonly Scope[], needed: Scope): boolean {
  return held.some((scope) => scope === needed || INCLUDES[scope].includes(needed))
}
