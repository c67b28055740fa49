// The workers project: the Worker and its Durable Object inside workerd (real SQLite storage,
// real WebSockets), configured from the repository's wrangler.toml.
import { cloudflareTest } from '@cloudflare/vitest-pool-workers'
import { defineConfig } from 'vitest/config'

export default defineConfig({
  plugins: [
    cloudflareTest({
      // Resolved against `test.root`, the repository root.
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: { READ_TOKEN: 'test-read-token', INGEST_TOKEN: 'test-ingest-token' },
      },
    }),
  ],
  test: {
    name: 'workers',
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/workers/**/*.test.ts'],
    testTimeout: 30_000,
  },
})
