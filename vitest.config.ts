// Two test projects: `node` (codec, bridge, interop over real TCP, end to end) and `workers`
// (the Worker and the Durable Object inside workerd).
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: ['test/node/vitest.config.ts', 'test/workers/vitest.config.ts'],
  },
})
