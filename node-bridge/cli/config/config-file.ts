// Config files: a JSON object or a YAML mapping of settings, read with the position of each key
// so errors name the file, line and column.
import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
} from 'yaml'
import { ConfigError } from '../../bridge/bridge-config.ts'
import { isSecretKey, SecretMask } from './secret-mask.ts'
import type { FileValues, SettingInfo } from './setting.ts'
import { type RawSettings, SETTINGS, type SettingName } from './settings.ts'
/** Settings read from a config file, with where they came from. */
export type FileSettings = FileValues<typeof SETTINGS>

/** How a config file is read. */
export type ConfigFormat = 'json' | 'yaml'

/** Extensions read as YAML; `.json` and every other name are read as JSON. */
export const YAML_EXTENSIONS = ['.yaml', '.yml'] as const

/** The format a config file is read in, by its extension (case-insensitive). */
export function configFormatOf(path: string): ConfigFormat {
  const extension = extname(path).toLowerCase()
  return (YAML_EXTENSIONS as readonly string[]).includes(extension) ? 'yaml' : 'json'
}

/** Appended to YAML errors where an unquoted value is the likely cause. */
const YAML_QUOTE_HINT =
  'quote a value ("…") that starts with # & * ! | > % @ ` [ ] { } , \' " or holds ": " or " #": YAML reads it as something other than text'

/**
 * Reads a config file: a JSON object or a YAML mapping whose keys are setting names
 * (`hwmMessages`) or flag names without dashes (`hwm-messages`), and whose values are
 * strings, numbers, booleans or, for repeatable settings such as `listener`, lists of them.
 *
 * `.yaml` and `.yml` files are YAML 1.2 (core schema: `on`, `off`, `yes` and `no` are text);
 * `.json` files and files with any other name are JSON. A YAML number or boolean is taken as
 * written (`0x1F` stays `0x1F`, a hex key of digits keeps its digits), so every value is
 * checked exactly as the same text given to the flag would be.
 * @throws ConfigError naming the file and the key at fault, or the file, line and column of a
 *   syntax error or a key given twice.
 */
export function readConfigFile(
  path: string,
  readTextFile: (path: string) => string = (file) => readFileSync(file, 'utf8'),
): FileSettings {
  let text: string
  try {
    text = readTextFile(path)
  } catch (cause) {
    throw new ConfigError('--config', `cannot read ${path}: ${(cause as Error).message}`, {
      cause,
    })
  }
  text = text.replace(/^\uFEFF/, '') // a byte order mark, as some Windows editors write
  return configFormatOf(path) === 'yaml' ? readYaml(path, text) : readJson(path, text)
}

/** One top-level key of a config file, before it is checked against {@link SETTINGS}. */
interface FileEntry {
  key: string
  /** Names the key in errors. */
  label: string
  /** Plain data: YAML numbers and booleans already turned back into the text as written. */
  value: unknown
}

function readJson(path: string, text: string): FileSettings {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    // V8 gives the offset for most errors; for an unexpected token it quotes the text instead.
    let message = (cause as Error).message
      .replace(/^(Unexpected token '.*?'), .*is not valid JSON$/s, '$1')
      .replace(/ \(line \d+ column \d+\)/, '')
    const at = /at position (\d+)/.exec(message)
    const offset = at ? Number(at[1]) : /end of JSON input/.test(message) ? text.length : undefined
    const where = offset === undefined ? undefined : linePosition(text, offset)
    const secrets = new SecretMask(text, 'json')
    // The token V8 quotes is the character at the offset: inside a secret, it is not shown.
    if (where && secrets.covers(where.line, where.col)) {
      message = message.replace(/^(Unexpected token) '.*?'/s, '$1')
    }
    const named =
      extname(path).toLowerCase() === '.json'
        ? ''
        : '\n  read as JSON because the name does not end in .json, .yaml or .yml; name a YAML file .yaml or .yml'
    throw new ConfigError(
      where ? `${path}:${where.line}:${where.col}` : path,
      `not valid JSON: ${secrets.scrub(message.replace(/ at position \d+/, ''))}${where ? excerpt(text, where.line, where.col, 'json') : ''}${named}`,
      { cause },
    )
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError('--config', `${path} must hold a JSON object of settings`)
  }
  // JSON.parse keeps the last of two equal keys; YAML 1.2 reads JSON and reports them.
  const duplicate = parseDocument(text, { schema: 'core', prettyErrors: false }).errors.find(
    (error) => error.code === 'DUPLICATE_KEY',
  )
  if (duplicate) {
    const { line, col } = linePosition(text, duplicate.pos[0])
    throw new ConfigError(
      `${path}:${line}:${col}`,
      `this key is given twice; give each setting once${excerpt(text, line, col, 'json')}`,
    )
  }
  const entries = Object.entries(parsed).map(([key, value]) => ({
    key,
    label: `${path}: ${key}`,
    value,
  }))
  return settingsOf(path, entries, '')
}

function readYaml(path: string, text: string): FileSettings {
  const lineCounter = new LineCounter()
  // `schema: 'core'` holds even under a `%YAML 1.1` directive, so `on` and `yes` stay text.
  const doc = parseDocument(text, {
    schema: 'core',
    version: '1.2',
    uniqueKeys: true,
    prettyErrors: false,
    lineCounter,
  })
  const position = (offset: number) => lineCounter.linePos(offset)
  // Warnings (an unknown tag such as `!abc`) change what a value means: errors too.
  const [problem] = [...doc.errors, ...doc.warnings]
  if (problem) {
    const { line, col } = position(problem.pos[0])
    const message =
      problem.code === 'DUPLICATE_KEY'
        ? 'this key is given twice; give each setting once'
        : problem.message
    const hint = ['DUPLICATE_KEY', 'MULTIPLE_DOCS', 'TAB_AS_INDENT'].includes(problem.code)
      ? ''
      : `\n  ${YAML_QUOTE_HINT}`
    throw new ConfigError(
      `${path}:${line}:${col}`,
      `not valid YAML: ${new SecretMask(text, 'yaml').scrub(message)}${excerpt(text, line, col, 'yaml')}${hint}`,
      { cause: problem },
    )
  }
  // A file of comments only holds no settings.
  if (doc.contents === null) return { path, values: {}, sources: {} }
  if (!isMap(doc.contents)) {
    throw new ConfigError(
      '--config',
      new SecretMask(text, 'yaml').scrub(
        `${path} must hold a YAML mapping of settings (name: value), got ${describe(doc.contents.toJS(doc))}`,
      ),
    )
  }
  const entries: FileEntry[] = []
  for (const pair of doc.contents.items) {
    const keyNode = pair.key as Node | null
    const keyAt = position(keyNode?.range?.[0] ?? 0)
    if (!isScalar(keyNode) || typeof keyNode.value === 'object') {
      throw new ConfigError(`${path}:${keyAt.line}:${keyAt.col}`, 'expected a setting name')
    }
    const key = keyNode.source ?? String(keyNode.value)
    const valueNode = pair.value as Node | null
    const at = valueNode?.range ? position(valueNode.range[0]) : keyAt
    const label = `${path}:${at.line}:${at.col}: ${key}`
    entries.push({ key, label, value: yamlValue(valueNode, doc, label, isSecretKey(key)) })
  }
  return settingsOf(path, entries, `; ${YAML_QUOTE_HINT}`)
}

/**
 * A YAML node as plain data, numbers and booleans as the text written. Settings are scalars or
 * lists of scalars, so nothing deeper is expanded: a nested list or a mapping stands as an empty
 * one (refused by the checks with its kind named), and an alias cycle (`&x [*x]`) cannot recurse.
 */
function yamlValue(
  node: Node | null,
  doc: Document,
  label: string,
  secret: boolean,
  depth = 0,
): unknown {
  if (node === null) return null
  if (isAlias(node)) {
    const target = node.resolve(doc)
    if (!target) {
      // A secret that starts with `*` is not repeated in the message.
      const alias = secret ? 'this alias' : `*${node.source}`
      const anchor = secret ? 'its anchor' : `&${node.source}`
      throw new ConfigError(
        label,
        `${alias} refers to no anchor ${anchor}; if it is a value, quote it ("*…")`,
      )
    }
    return yamlValue(target, doc, label, secret, depth)
  }
  if (isScalar(node)) {
    const { value } = node
    if (typeof value === 'number' || typeof value === 'boolean') return node.source ?? String(value)
    return value
  }
  if (isSeq(node)) {
    if (depth > 0) return []
    return node.items.map((item) => yamlValue(item as Node | null, doc, label, secret, depth + 1))
  }
  return {}
}

/** What a value is, for an error message. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing (null)'
  if (Array.isArray(value)) return 'a list'
  if (value instanceof Uint8Array) return 'binary data'
  if (value instanceof Date) return 'a date'
  if (typeof value === 'object') return 'a mapping'
  return `the ${typeof value} ${JSON.stringify(value)}`
}

/** Checks a file's keys and value shapes; `hint` is appended to errors about a value's type. */
function settingsOf(path: string, entries: FileEntry[], hint: string): FileSettings {
  const byFlag = new Map<string, SettingName>()
  for (const [name, setting] of Object.entries(SETTINGS) as Array<[SettingName, SettingInfo]>) {
    byFlag.set(name, name)
    byFlag.set(setting.flag.slice(2), name)
  }
  const values: RawSettings = {}
  const sources: Partial<Record<SettingName, string>> = {}
  const keys: Partial<Record<SettingName, string>> = {}
  for (const { key, label, value } of entries) {
    const name = byFlag.get(key)
    if (!name) {
      throw new ConfigError(
        label,
        `unknown setting; expected one of ${Object.keys(SETTINGS).join(', ')}`,
      )
    }
    if (keys[name] !== undefined) {
      throw new ConfigError(
        label,
        `the same setting as ${keys[name]} above; give each setting once`,
      )
    }
    keys[name] = key
    const setting: SettingInfo = SETTINGS[name]
    const asText = (item: unknown): string => {
      if (typeof item === 'string' || typeof item === 'number' || typeof item === 'boolean')
        return String(item)
      throw new ConfigError(
        label,
        `expected a string, a number or a boolean, got ${describe(item)}${hint}`,
      )
    }
    if (Array.isArray(value)) {
      if (!setting.repeatable) throw new ConfigError(label, `takes one value, not a list${hint}`)
      values[name] = value.map(asText)
    } else {
      values[name] = asText(value)
    }
    sources[name] = label
  }
  return { path, values, sources }
}

/** 1-based line and column of an offset. */
function linePosition(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset).split('\n')
  return { line: before.length, col: (before.at(-1)?.length ?? 0) + 1 }
}

/** The line at fault, its secret values masked, with a caret under the column. */
function excerpt(text: string, line: number, col: number, format: ConfigFormat): string {
  const masked = new SecretMask(text, format).line(line, col)
  if (masked.text.trim() === '') return ''
  const pad = masked.text.slice(0, masked.col - 1).replace(/[^\t]/g, ' ')
  return `\n  ${masked.text}\n  ${pad}^`
}
