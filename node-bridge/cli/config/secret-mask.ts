// Masks secret values in the config-file lines an error quotes: the ingest token, CURVE keys,
// and anything else under a key that names a token, a secret or a password, in any spelling.
// It works on the text, not on parsed values, because the lines it masks are the ones that
// did not parse.

/** What a masked value shows. */
export const SECRET_MASK = '****'

/** Keys whose values are masked: `ingestToken`, `curve-secret-key`, and their look-alikes. */
const SECRET_KEY = /token|secret|passw/i
/**
 * A key and its colon; the key not preceded by what a longer key could hold. No space needed
 * after the colon: `ingestToken:abc` is a typo whose line must be masked all the same.
 */
const KEY = /(?<![\w"'-])(["']?)([\w-]+)\1[ \t]*:/g
/** Characters YAML reads as an indicator in front of a scalar. */
const INDICATORS = /^[!&*|>"'@%`]+|["']+$/g

export type SecretTextFormat = 'json' | 'yaml'

/** Whether a config key names a secret; the path of a secret's file (`…File`) is not one. */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key) && !/file$/i.test(key)
}

/** A masked stretch of one line: `[start, end)` of the original shows as `replacement`. */
interface Span {
  start: number
  end: number
  replacement: string
}

/** The file's secret values, found line by line even where it does not parse. */
export class SecretMask {
  readonly #lines: string[]
  readonly #spans: Span[][]

  constructor(text: string, format: SecretTextFormat) {
    this.#lines = text.split('\n').map((line) => line.replace(/\r$/, ''))
    this.#spans = findSpans(this.#lines, format)
  }

  /** Line `line` (1-based) with its secret values masked, and where column `col` moved to. */
  line(line: number, col: number): { text: string; col: number } {
    const source = this.#lines[line - 1] ?? ''
    let text = ''
    let at = 0
    /** Octets the masks before `col` took out; a column inside a mask moves to its start. */
    let shift = 0
    let inside: number | undefined
    for (const span of this.#spans[line - 1] ?? []) {
      text += source.slice(at, span.start) + span.replacement
      if (col - 1 >= span.end) shift += span.end - span.start - span.replacement.length
      else if (col - 1 >= span.start) inside = span.start + 1 - shift
      at = span.end
    }
    return { text: text + source.slice(at), col: inside ?? col - shift }
  }

  /** `message` with every piece of a secret value it quotes (a tag, an anchor…) masked. */
  scrub(message: string): string {
    const pieces = new Set<string>()
    for (const [index, spans] of this.#spans.entries()) {
      for (const span of spans) {
        const value = (this.#lines[index] as string).slice(span.start, span.end)
        pieces.add(value)
        for (const word of value.split(/[\s,:#{}[\]]+/)) pieces.add(word.replace(INDICATORS, ''))
      }
    }
    let scrubbed = message
    for (const piece of [...pieces].sort((a, b) => b.length - a.length)) {
      if (piece.length >= 3) scrubbed = scrubbed.replaceAll(piece, SECRET_MASK)
    }
    return scrubbed
  }

  /** Whether column `col` (1-based) of line `line` is inside a secret value. */
  covers(line: number, col: number): boolean {
    return (this.#spans[line - 1] ?? []).some((span) => col - 1 >= span.start && col - 1 < span.end)
  }
}

function findSpans(lines: string[], format: SecretTextFormat): Span[][] {
  const spans: Span[][] = lines.map(() => [])
  /** Inside a YAML secret's value that goes on below its key: lines indented more than this. */
  let blockIndent = -1
  for (const [index, line] of lines.entries()) {
    const indent = line.search(/\S/)
    if (blockIndent >= 0) {
      if (indent === -1) continue
      if (indent > blockIndent) {
        spans[index]?.push({ start: indent, end: line.length, replacement: SECRET_MASK })
        continue
      }
      blockIndent = -1
    }
    for (const match of line.matchAll(KEY)) {
      if (!isSecretKey(match[2] as string)) continue
      let start = (match.index as number) + match[0].length
      while (line[start] === ' ' || line[start] === '\t') start++
      // YAML block mapping: the value is the rest of the line and any lines indented below it.
      if (format === 'yaml' && /^\s*(-\s+)?$/.test(line.slice(0, match.index))) {
        if (start < line.length) {
          spans[index]?.push({ start, end: line.length, replacement: SECRET_MASK })
        }
        blockIndent = indent
        break
      }
      const value = inlineValue(line, start)
      if (value) spans[index]?.push(value)
    }
  }
  return spans
}

/** A value inside a line (JSON, or a YAML flow mapping): a quoted string or a bare word. */
function inlineValue(line: string, start: number): Span | undefined {
  const quote = line[start]
  if (quote === '"' || quote === "'") {
    const pattern = quote === '"' ? /"(?:[^"\\]|\\.)*"?/y : /'(?:[^']|'')*'?/y
    pattern.lastIndex = start
    const end = pattern.exec(line) ? pattern.lastIndex : line.length
    return { start, end, replacement: `${quote}${SECRET_MASK}${quote}` }
  }
  const bare = /[^,}\]]*/y
  bare.lastIndex = start
  const end = start + (bare.exec(line)?.[0].trimEnd().length ?? 0)
  return end > start ? { start, end, replacement: SECRET_MASK } : undefined
}
