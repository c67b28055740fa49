// Settings tables, for every subcommand: each setting's flag, environment variable and help
// text, in one object that makes the command's options (and --help), and reads each value from
// a flag, then its variable, then a config file, naming where a bad value came from.
import { type Command, Option } from 'commander'
import { ConfigError } from '../../bridge/bridge-config.ts'

/** One setting: its flag, its environment variable, and what it means (for --help). */
export interface SettingInfo {
  flag: string
  /** Its environment variable; none for settings that only a flag gives. */
  env?: string
  description: string
  /** The value's name in --help (default `<value>`). */
  valueName?: string
  /** May be given more than once (flags) or as a list (the variable: separated by `;`). */
  repeatable?: boolean
  /** A switch: the flag takes no value; the variable takes true/false. */
  boolean?: boolean
  /**
   * A secret: as a flag it draws a warning, naming where to put it instead (the variable, and
   * `instead`). Config-file errors mask it either way.
   */
  secret?: { instead: string }
  /** Reads the value given last; throws ConfigError naming `source`. Default: the text itself. */
  parse?: (raw: string, source: string) => unknown
  /** The value when nothing sets it (shown in --help); without it, the setting is required. */
  fallback?: () => unknown
}

/** What {@link SettingSources.value} gives for a setting: what its parser returns. */
export type SettingValue<Setting> = Setting extends {
  parse: (raw: string, source: string) => infer Value
}
  ? Value
  : string

/** A command's settings by name. */
export type SettingsTable = Readonly<Record<string, SettingInfo>>

/** Raw values as given: strings, or lists of strings for repeatable settings. */
export type RawValues<Table extends SettingsTable> = Partial<Record<keyof Table, string | string[]>>

/** Settings read from a config file, with where each came from. */
export interface FileValues<Table extends SettingsTable> {
  path: string
  values: RawValues<Table>
  /**
   * What errors call each setting: `path: key` (JSON) or `path:line:col: key` (YAML), with the
   * key as the file spells it. When absent, `path: name`.
   */
  sources?: Partial<Record<keyof Table, string>>
}

/** A setting's raw values and the name of where they came from (`--flag`, the variable, a file position). */
export interface Found {
  values: string[]
  source: string
}

/** How a setting is named where no single source applies: `--flag / VARIABLE`. */
export function settingName(setting: SettingInfo): string {
  return setting.env ? `${setting.flag} / ${setting.env}` : setting.flag
}

/** Adds one commander option per setting of `table`, its help ending with its variable. */
export function addSettingOptions(command: Command, table: SettingsTable): Command {
  for (const setting of Object.values(table)) {
    const value = setting.boolean
      ? ''
      : ` ${setting.valueName ?? (setting.repeatable ? '<spec>' : '<value>')}`
    const shown = setting.fallback && !setting.boolean ? ` (default ${setting.fallback()})` : ''
    const help = `${setting.description}${shown}${setting.env ? ` [${setting.env}]` : ''}`
    const option = new Option(`${setting.flag}${value}`, help)
    if (setting.repeatable) {
      option.argParser((item: string, previous: string[] | undefined) => [
        ...(previous ?? []),
        item,
      ])
    }
    command.addOption(option)
  }
  return command
}

/** The flags commander parsed for `table`, by setting name (a switch given is `'true'`). */
export function flagValues<Table extends SettingsTable>(
  table: Table,
  options: Record<string, unknown>,
): RawValues<Table> {
  const flags: RawValues<Table> = {}
  for (const [name, setting] of Object.entries(table) as Array<[keyof Table, SettingInfo]>) {
    const value = options[new Option(`${setting.flag} <value>`).attributeName()]
    if (value === true) flags[name] = 'true'
    else if (typeof value === 'string' || Array.isArray(value)) flags[name] = value
  }
  return flags
}

/**
 * A command's settings from its flags, then the environment, then a config file: the first that
 * has a setting gives all of its values.
 */
export class SettingSources<Table extends SettingsTable> {
  readonly #table: Table
  readonly #flags: RawValues<Table>
  readonly #env: Readonly<Record<string, string | undefined>>
  readonly #file: FileValues<Table> | undefined

  constructor(
    table: Table,
    flags: RawValues<Table>,
    env: Readonly<Record<string, string | undefined>>,
    file?: FileValues<Table>,
  ) {
    this.#table = table
    this.#flags = flags
    this.#env = env
    this.#file = file
  }

  /** The raw values of `key` and where they came from, or undefined when nothing sets it. */
  raw(key: keyof Table): Found | undefined {
    const setting = this.#table[key] as SettingInfo
    const fromFlag = this.#flags[key]
    if (fromFlag !== undefined) {
      return { values: Array.isArray(fromFlag) ? fromFlag : [fromFlag], source: setting.flag }
    }
    const fromEnv = setting.env === undefined ? undefined : this.#env[setting.env]
    if (setting.env !== undefined && fromEnv !== undefined && fromEnv !== '') {
      const values = setting.repeatable
        ? fromEnv
            .split(';')
            .map((value) => value.trim())
            .filter(Boolean)
        : [fromEnv]
      return { values, source: setting.env }
    }
    const fromFile = this.#file?.values[key]
    if (fromFile === undefined || !this.#file) return undefined
    return {
      values: Array.isArray(fromFile) ? fromFile : [fromFile],
      source: this.#file.sources?.[key] ?? `${this.#file.path}: ${String(key)}`,
    }
  }

  /** Where `key` came from, or its flag when nothing set it (for errors about its value). */
  source(key: keyof Table): string {
    return this.raw(key)?.source ?? (this.#table[key] as SettingInfo).flag
  }

  /**
   * The last value given for `key`, read by the table's parser; the table's fallback when
   * nothing sets it.
   * @throws ConfigError from the parser, or "is required" when nothing sets it and there is no
   *   fallback
   */
  value<Key extends keyof Table>(key: Key): SettingValue<Table[Key]> {
    const setting = this.#table[key] as SettingInfo
    const parse = setting.parse ?? ((raw: string) => raw)
    return this.one(key, parse, setting.fallback) as SettingValue<Table[Key]>
  }

  /**
   * The last value given for `key`, parsed; `fallback()` when nothing sets it.
   * @throws ConfigError from `parse`, or "is required" when nothing sets it and there is no fallback
   */
  one<T>(key: keyof Table, parse: (value: string, source: string) => T, fallback?: () => T): T {
    const found = this.raw(key)
    if (found) return parse(found.values.at(-1) as string, found.source)
    if (fallback) return fallback()
    throw new ConfigError(settingName(this.#table[key] as SettingInfo), 'is required')
  }
}
