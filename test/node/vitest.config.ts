// The Node project: everything that runs in Node (the bridge, its codec, real ZeroMQ peers).
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    name: 'node',
    root: new URL('../..', import.meta.url).pathname,
    include: ['test/node/**/*.test.ts'],
    environment: 'node',
    setupFiles: ['test/support/fresh-connections.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
