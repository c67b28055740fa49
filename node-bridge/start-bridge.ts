// `zmq-edge/bridge`: the bridge as a library, for a program that runs it in its own process:
// settings parsed as the command line parses them (flags, variables, a config file), then
// started with a logger.

export { type RunningBridge, startBridge } from './bridge/bridge.ts'
export { type BridgeConfig, ConfigError, type ListenerConfig } from './bridge/bridge-config.ts'
export { createLogger, type Logger } from './bridge/log.ts'
export { readConfigFile } from './cli/config/config-file.ts'
export { parseConfig } from './cli/config/parse-config.ts'
