// The dashboard's response: the page with a strict Content-Security-Policy that allows its one
// inline script and its one inline style by their SHA-256 hashes, and nothing else but calls to
// this origin. Trusted Types are required, so a script that assigned HTML as a string (the way
// an untrusted message could become markup) would throw instead.

import { toBase64 } from '../base64'
import { DASHBOARD_HTML } from './page'
import { DASHBOARD_SCRIPT } from './script'
import { DASHBOARD_STYLE } from './style'

async function sha256Source(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))
  return `'sha256-${toBase64(new Uint8Array(digest))}'`
}

/** The page's Content-Security-Policy. */
export async function dashboardCsp(): Promise<string> {
  const [script, style] = await Promise.all([
    sha256Source(DASHBOARD_SCRIPT),
    sha256Source(DASHBOARD_STYLE),
  ])
  return [
    "default-src 'none'",
    `script-src ${script}`,
    `style-src ${style}`,
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

// The hashes are computed once per isolate.
let csp: Promise<string> | undefined

/** `GET /`: the dashboard page, never cached (it changes with each deploy) nor transformed. */
export async function dashboardResponse(): Promise<Response> {
  csp ??= dashboardCsp()
  return new Response(DASHBOARD_HTML, {
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Security-Policy': await csp,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
      // no-transform: no proxy may rewrite the page (its hashes are in the CSP).
      'Cache-Control': 'no-store, no-transform',
    },
  })
}
