// Run before every workers test file: after each test, the ingest WebSockets it opened are
// closed and its spies restored, so no test leaves a bridge connected to the next.
import { afterEach, vi } from 'vitest'
import { closeAllIngest } from './helpers'

afterEach(() => {
  closeAllIngest()
  vi.restoreAllMocks()
})
