// The dashboard's build (worker/dashboard/build.ts): the page's one inline script is the bundle
// of its TypeScript modules, its one inline style is style.css, and the CSP in `_headers` allows
// exactly those two by hash. The page as served is tested in dashboard-browser.test.ts.
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  ASSETS_DIRECTORY,
  buildDashboard,
  inline,
  writeDashboard,
} from '../../worker/dashboard/build'

const root = new URL('../..', import.meta.url).pathname
const page = await buildDashboard()

const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`

describe('the dashboard build', () => {
  it('inlines style.css and the bundled script once each, verbatim', () => {
    expect(page.style).toBe(readFileSync(join(root, 'worker/dashboard/style.css'), 'utf8'))
    expect(page.html.split(`<style>${page.style}</style>`)).toHaveLength(2)
    expect(page.html.split(`<script>${page.script}</script>`)).toHaveLength(2)
    expect(page.html.match(/<script/g)).toHaveLength(1)
    expect(page.html.match(/<style/g)).toHaveLength(1)
    // One self-contained function: nothing leaks into the page's globals, nothing is imported.
    expect(page.script).toMatch(/^"use strict";\n\(\(\) => \{/)
    expect(page.script).not.toMatch(/\bimport\b\s*[({"']|\brequire\(/)
  })

  it('inlines text the browser hashes as it is: no CR (the HTML parser reads CRLF as LF)', () => {
    expect(page.html).not.toContain('\r')
  })

  it('refuses content that would end its element early or hide the real end tag', () => {
    const html = '<p><script></script></p>'
    expect(inline(html, 'script', 'let a = 1 < 2')).toBe('<p><script>let a = 1 < 2</script></p>')
    for (const bad of ['"</SCRIPT>"', '"<!-- x"', '"<script>"']) {
      expect(() => inline(html, 'script', bad)).toThrow(/would end it wrongly/)
    }
    expect(() => inline('<style></style><style></style>', 'style', 'p {}')).toThrow(/one empty/)
  })

  it('bundles only the browser code: types from the API schemas, no zod', () => {
    expect(page.script).not.toMatch(/ZodError|zod/i)
    // The string it replaced was 24 kB; zod alone would be hundreds.
    expect(page.script.length).toBeLessThan(64 * 1024)
  })

  it('allows the script and the style by their hashes, and nothing inline else', () => {
    expect(page.csp).toContain(`script-src ${hash(page.script)};`)
    expect(page.csp).toContain(`style-src ${hash(page.style)};`)
    expect(page.csp).not.toContain('unsafe')
    expect(page.headers).toContain(`  Content-Security-Policy: ${page.csp}\n`)
  })

  it('writes index.html and _headers where wrangler.toml serves assets from', async () => {
    const toml = readFileSync(join(root, 'wrangler.toml'), 'utf8')
    expect(toml).toMatch(
      new RegExp(`\\[assets\\]\\ndirectory = "${relative(root, ASSETS_DIRECTORY)}"\\n`),
    )
    const directory = mkdtempSync(join(tmpdir(), 'zmq-edge-assets-'))
    await writeDashboard(directory)
    expect(readFileSync(join(directory, 'index.html'), 'utf8')).toBe(page.html)
    expect(readFileSync(join(directory, '_headers'), 'utf8')).toBe(page.headers)
  })
})
