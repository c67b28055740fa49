// The table of the scope each HTTP route needs (docs/curve-and-keys.md) is generated from the routes'
// definitions (worker/api/routes.ts: each route's `security`), which the Worker enforces: this
// keeps the table equal to them, and prints the table to paste when they differ.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { SCOPES } from '../../shared/api/scopes'
import * as routes from '../../worker/api/routes'

const readme = new URL('../../docs/curve-and-keys.md', import.meta.url)

interface RouteLike {
  method: string
  path: string
  operationId?: string
  summary?: string
  security?: Array<Record<string, string[]>>
}

const METHOD_ORDER = ['GET', 'PUT', 'POST', 'DELETE']

/** The table, one row per route with a scope, by path, then method. */
function scopeTable(): string {
  const rows = (Object.values(routes) as unknown[])
    .filter(
      (value): value is RouteLike =>
        typeof value === 'object' && value !== null && 'operationId' in value,
    )
    .flatMap((route) => {
      const scope = routes.scopeOf(route)
      return scope ? [{ method: route.method.toUpperCase(), path: route.path, scope }] : []
    })
    .sort(
      (a, b) =>
        a.path.localeCompare(b.path) ||
        METHOD_ORDER.indexOf(a.method) - METHOD_ORDER.indexOf(b.method),
    )
    .map((row) => [`\`${row.method} ${row.path}\``, `\`${row.scope}\``])
  const header = ['route', 'scope']
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] as string).length)),
  )
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] as number)).join(' | ')} |`
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join(
    '\n',
  )
}

describe('the scope table of docs/curve-and-keys.md', () => {
  it('is the scope of each route as the Worker enforces it', () => {
    const text = readFileSync(readme, 'utf8')
    const match = /<!-- scopes:[^>]*-->\n([\s\S]*?)\n<!-- \/scopes -->/.exec(text)
    expect(match, 'the scopes markers in docs/curve-and-keys.md').not.toBeNull()
    expect(match?.[1]).toBe(scopeTable())
  })

  it('names only scopes that exist, and every scope is used', () => {
    const used = new Set([...scopeTable().matchAll(/`(\w+)`\s*\|$/gm)].map((found) => found[1]))
    expect([...used].sort()).toEqual([...SCOPES].sort())
  })
})
