// Builds the dashboard into the Worker's static assets (dist/assets): index.html, one page with
// style.css and the bundle of browser/main.ts inline, and a _headers file that gives the page a
// Content-Security-Policy allowing exactly those two, by their SHA-256 hashes, and nothing else
// but calls to its own origin. Trusted Types are required, so a script that assigned HTML as a
// string (the way an untrusted message could become markup) would throw instead.
//
// wrangler runs this before `wrangler dev` and `wrangler deploy` (the [build] command in
// wrangler.toml); the workers test project runs it before its runtime starts. Static assets
// are served without running the Worker, and `_headers` applies to them only:
// https://developers.cloudflare.com/workers/static-assets/headers/

import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { buildSync } from 'esbuild'
import { Hono } from 'hono'
import { secureHeaders } from 'hono/secure-headers'

const source = fileURLToPath(new URL('.', import.meta.url))
const root = join(source, '..', '..')

/** Where the assets go: wrangler.toml's `assets.directory`. */
export const ASSETS_DIRECTORY = join(root, 'dist', 'assets')

export interface DashboardPage {
  /** The whole document, served at `/`. */
  html: string
  /** The bundled browser code, inline in `html`. */
  script: string
  /** The style sheet, inline in `html`. */
  style: string
  /** The page's Content-Security-Policy. */
  csp: string
  /** The `_headers` file: the page's response headers. */
  headers: string
}

function sha256Source(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`
}

/**
 * Puts `content` between the one `<tag></tag>` pair of `html`. It may not end the element early
 * (`</script`), nor hold `<!--` or `<script`, after which the HTML parser would read past the
 * real end tag (https://html.spec.whatwg.org/#restrictions-for-contents-of-script-elements).
 */
export function inline(html: string, tag: 'script' | 'style', content: string): string {
  const empty = `<${tag}></${tag}>`
  if (html.split(empty).length !== 2) throw new Error(`page.html must hold one empty ${empty}`)
  const found = [`</${tag}`, '<!--', '<script'].find((text) => content.toLowerCase().includes(text))
  if (found) throw new Error(`the dashboard's ${tag} holds ${found}, which would end it wrongly`)
  return html.replace(empty, () => `<${tag}>${content}</${tag}>`)
}

/**
 * The headers Hono's secure-headers middleware gives the Worker's answers (worker/app.ts: its
 * defaults, framing denied): the page gets them too, though it never runs the Worker.
 */
async function workerSecurityHeaders(): Promise<[string, string][]> {
  const app = new Hono()
  app.use(secureHeaders({ xFrameOptions: 'DENY' }))
  app.get('/', (c) => c.body(null, 204))
  const response = await app.request('/')
  return [...response.headers].map(([name, value]) => [canonicalName(name), value])
}

/** `x-frame-options` as `X-Frame-Options`, the way _headers files are written. */
function canonicalName(name: string): string {
  return name.replace(
    /(^|-)([a-z])/g,
    (_, dash: string, letter: string) => dash + letter.toUpperCase(),
  )
}

export function dashboardCsp(script: string, style: string): string {
  return [
    "default-src 'none'",
    `script-src ${sha256Source(script)}`,
    `style-src ${sha256Source(style)}`,
    "connect-src 'self'",
    // The empty favicon (`data:,`), so the browser asks for none.
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join('; ')
}

/** The page and its headers, built in memory. */
export async function buildDashboard(): Promise<DashboardPage> {
  const bundle = buildSync({
    entryPoints: [join(source, 'browser', 'main.ts')],
    tsconfig: join(source, 'browser', 'tsconfig.json'),
    bundle: true,
    format: 'iife',
    target: 'es2022',
    platform: 'browser',
    charset: 'utf8',
    legalComments: 'none',
    write: false,
    logLevel: 'silent',
  })
  const script = bundle.outputFiles[0]?.text
  if (script === undefined) throw new Error('esbuild wrote no bundle for the dashboard')
  // The HTML parser turns CRLF into LF before the browser hashes the element's text: so must we
  // (an editor or a checkout may write CRLF).
  const style = readFileSync(join(source, 'style.css'), 'utf8').replace(/\r\n?/g, '\n')
  const html = inline(
    inline(readFileSync(join(source, 'page.html'), 'utf8'), 'style', style),
    'script',
    script,
  )
  const csp = dashboardCsp(script, style)
  const headers = [
    // Every asset is the page (`/`; /index.html redirects there).
    '/*',
    `  Content-Security-Policy: ${csp}`,
    ...(await workerSecurityHeaders()).map(([name, value]) => `  ${name}: ${value}`),
    // Never cached (it changes with each deploy) nor transformed (its hashes are in the CSP).
    '  Cache-Control: no-store, no-transform',
    '',
  ].join('\n')
  return { html, script, style, csp, headers }
}

/** Builds the page into `directory` (the assets directory by default). */
export async function writeDashboard(directory = ASSETS_DIRECTORY): Promise<DashboardPage> {
  const page = await buildDashboard()
  mkdirSync(directory, { recursive: true })
  writeFileSync(join(directory, 'index.html'), page.html)
  writeFileSync(join(directory, '_headers'), page.headers)
  return page
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const page = await writeDashboard()
  console.log(`dashboard: ${ASSETS_DIRECTORY}/index.html, ${page.html.length} characters`)
}
