// Shared assertions for the ZMTP tests.
import { expect } from 'vitest'
import { ZmtpError } from '../../node-bridge/zmtp/errors'

/** Runs `fn`, expects it to throw a ZmtpError, and returns the error's stable code. */
export function codeOf(fn: () => unknown): string {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(ZmtpError)
    return (error as ZmtpError).code
  }
  throw new Error('expected a ZmtpError, nothing was thrown')
}
