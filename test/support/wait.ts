// Polling helper for tests that wait on real sockets and processes.
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  {
    timeoutMs = 10_000,
    intervalMs = 10,
    what = 'condition',
  }: {
    timeoutMs?: number
    intervalMs?: number
    /** What is awaited; a function is asked at the timeout, to say what was seen instead. */
    what?: string | (() => string)
  } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) {
      const said = typeof what === 'function' ? what() : what
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${said}`)
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
}
