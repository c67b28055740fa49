// Runs a configuration step that must fail, and returns its ConfigError.
import { ConfigError } from '../../node-bridge/bridge/bridge-config'

export function configErrorOf(action: () => unknown): ConfigError {
  try {
    action()
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error('expected a ConfigError')
}
