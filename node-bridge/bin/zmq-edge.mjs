#!/usr/bin/env node
// `zmq-edge` command (package.json bin): runs the TypeScript CLI through tsx's loader.
import { register } from 'tsx/esm/api'

register()
await import('../cli/cli.ts')
