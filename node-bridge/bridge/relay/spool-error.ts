// The spool's one error class, with a stable code for each way opening or writing it fails.

export const SpoolErrorCode = {
  /** Another live process holds the spool. */
  LOCKED: 'LOCKED',
  /** The records contradict each other (a gap or an overlap): a bug or tampering, not a crash. */
  INCONSISTENT: 'INCONSISTENT',
} as const
export type SpoolErrorCode = (typeof SpoolErrorCode)[keyof typeof SpoolErrorCode]

export class SpoolError extends Error {
  override readonly name = 'SpoolError'
  readonly code: SpoolErrorCode
  constructor(code: SpoolErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}
