// The workers project: the Worker and its Durable Object inside workerd (real SQLite storage,
// real WebSockets), configured from the repository's wrangler.toml.
import { cloudflareTest } from '@cloudflare/vitest-pool-workers'
import { defineConfig } from 'vitest/config'
import { writeDashboard } from '../../worker/dashboard/build'

// wrangler.toml's assets directory must exist for the runtime to start (`wrangler dev` and
// `deploy` build it themselves). The pool serves no assets to the tests: the page is tested
// under `wrangler dev` (test/node/dashboard-browser.test.ts).
await writeDashboard()

export default defineConfig({
  plugins: [
    cloudflareTest({
      // Resolved against `test.root`, the repository root.
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: {
          READ_TOKEN: 'test-read-token',
          INGEST_TOKEN: 'test-ingest-token',
          ADMIN_TOKEN: 'test-admin-token',
        },
      },
    }),
  ],
  test: {
    name: 'workers',
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/workers/**/*.test.ts'],
    setupFiles: ['test/workers/setup.ts'],
    testTimeout: 30_000,
  },
})
