// `zmq-edge keygen`: a new CURVE key pair in Z85, base64 and hex, printed or written to files.
import { writeFileSync } from 'node:fs'
import { formatKey, generateKeyPair } from '../zmtp/mechanisms/curve-keys.ts'

export interface KeygenOptions {
  /** Write the secret key here (Z85, mode 0600) instead of printing it. */
  secretFile?: string
  /** Write the public key here (Z85). */
  publicFile?: string
}

/** Generates a key pair; returns the text to print. */
export function keygen(options: KeygenOptions): string {
  const { publicKey, secretKey } = generateKeyPair()
  const pub = formatKey(publicKey)
  const sec = formatKey(secretKey)
  const lines = [
    `public key  Z85     ${pub.z85}`,
    `public key  base64  ${pub.base64}`,
    `public key  hex     ${pub.hex}`,
  ]
  if (options.secretFile) {
    // `wx`: never overwrite an existing key by accident.
    writeFileSync(options.secretFile, `${sec.z85}\n`, { mode: 0o600, flag: 'wx' })
    lines.push(`secret key  written to ${options.secretFile} (Z85, mode 0600)`)
  } else {
    lines.push(
      `secret key  Z85     ${sec.z85}`,
      `secret key  base64  ${sec.base64}`,
      `secret key  hex     ${sec.hex}`,
    )
  }
  if (options.publicFile) {
    writeFileSync(options.publicFile, `${pub.z85}\n`, { flag: 'wx' })
    lines.push(`public key  written to ${options.publicFile} (Z85)`)
  }
  return `${lines.join('\n')}\n`
}
