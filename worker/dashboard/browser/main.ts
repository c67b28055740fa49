// The dashboard's browser script, bundled by esbuild into one inline script at the end of the
// page's body (allowed by its hash in the CSP). It signs in with the read token (kept in
// sessionStorage), polls GET /v1/channels every 5 s while the tab is visible (backing off up to
// 60 s after a failure, or as long as a Retry-After says), and shows the channels table and the
// chosen channel (./channels-table.ts, ./channel-detail.ts), and the key registry when given an
// admin token (./keys-panel.ts). Message content is untrusted: it
// only ever reaches the page through textContent (and the CSP requires Trusted Types, so an HTML
// sink would throw).

// The bundle is a classic script (an IIFE): strict like these modules only through this
// directive, which esbuild keeps at its top.
// biome-ignore lint/suspicious/noRedundantUseStrict: see above
'use strict'

import { CHANNEL_NAME_PREFIX } from '../../../shared/channel-name'
import { ApiFailure, type ChannelList, describe, getJson } from './api'
import { ChannelDetail } from './channel-detail'
import { ChannelsTable } from './channels-table'
import { byId } from './dom'
import { KeysPanel } from './keys-panel'

const POLL_MS = 5000
const MAX_BACKOFF_MS = 60000
const TOKEN_KEY = 'zmq-edge.read-token'

const ui = {
  status: byId('status', HTMLSpanElement),
  alert: byId('alert', HTMLParagraphElement),
  signOut: byId('sign-out', HTMLButtonElement),
  signIn: byId('sign-in', HTMLElement),
  form: byId('sign-in-form', HTMLFormElement),
  token: byId('token', HTMLInputElement),
  submit: byId('sign-in-submit', HTMLButtonElement),
  dashboard: byId('dashboard', HTMLElement),
  channelsTitle: byId('channels-title', HTMLHeadingElement),
  filter: byId('filter', HTMLInputElement),
}

let token = sessionStorage.getItem(TOKEN_KEY)
// Bumped at each sign-in and sign-out: answers to older requests are dropped.
let generation = 0
let timer: ReturnType<typeof setTimeout> | undefined
// Polls failed in a row (the next waits longer), and the latest poll (older answers are dropped).
let failures = 0
let polled = 0
// The filter the list is asked with.
let prefix = ''
// How many polls were scheduled (see schedule).
let scheduled = 0

const table = new ChannelsTable(
  {
    body: byId('channels-body', HTMLTableSectionElement),
    note: byId('channels-note', HTMLParagraphElement),
  },
  select,
)
const detail = new ChannelDetail(
  {
    section: byId('channel', HTMLElement),
    title: byId('channel-title', HTMLHeadingElement),
    bridges: byId('bridges', HTMLUListElement),
    groups: byId('groups', HTMLUListElement),
    cost: byId('cost', HTMLParagraphElement),
    messagesNote: byId('messages-note', HTMLParagraphElement),
    messagesBody: byId('messages-body', HTMLTableSectionElement),
    history: {
      note: byId('history-note', HTMLParagraphElement),
      charts: byId('history', HTMLDivElement),
    },
  },
  { token: () => token, generation: () => generation },
)

const keys = new KeysPanel({
  form: byId('admin-form', HTMLFormElement),
  token: byId('admin-token', HTMLInputElement),
  submit: byId('admin-submit', HTMLButtonElement),
  refresh: byId('keys-refresh', HTMLButtonElement),
  panel: byId('keys-panel', HTMLElement),
  note: byId('keys-note', HTMLParagraphElement),
  keysBody: byId('keys-body', HTMLTableSectionElement),
  refusalsNote: byId('refusals-note', HTMLParagraphElement),
  refusalsBody: byId('refusals-body', HTMLTableSectionElement),
})

function setAlert(text: string): void {
  ui.alert.textContent = text
}

function select(name: string): void {
  table.markSelected(name)
  detail.select(name, table.entryOf(name))
}

function render(listing: ChannelList): void {
  table.render(listing, detail.selected, prefix)
  ui.status.textContent = `Updated ${new Date().toLocaleTimeString()}`
  detail.update((name) => table.entryOf(name))
}

// --- sign in and out ---

function showSignedIn(signedIn: boolean): void {
  ui.signIn.hidden = signedIn
  ui.dashboard.hidden = !signedIn
  ui.signOut.hidden = !signedIn
  if (!signedIn) ui.status.textContent = ''
}

function signOut(message: string): void {
  generation++
  clearTimeout(timer)
  token = null
  sessionStorage.removeItem(TOKEN_KEY)
  table.clear()
  detail.close()
  keys.clear()
  showSignedIn(false)
  setAlert(message)
  ui.token.focus()
}

ui.form.addEventListener('submit', async (event) => {
  event.preventDefault()
  const given = ui.token.value.trim()
  if (!given) return
  ui.submit.disabled = true
  setAlert('')
  token = given
  const mine = ++generation
  try {
    const listing = await getJson<ChannelList>(listPath(), token)
    if (mine !== generation) return
    sessionStorage.setItem(TOKEN_KEY, given)
    ui.token.value = ''
    failures = 0
    showSignedIn(true)
    render(listing)
    ui.channelsTitle.focus()
    schedule(mine, POLL_MS)
  } catch (error) {
    if (mine !== generation) return
    token = null
    setAlert(`Sign-in failed: ${describe(error)}`)
    ui.token.select()
  } finally {
    ui.submit.disabled = false
  }
})

ui.signOut.addEventListener('click', () => signOut('Signed out.'))

// --- polling ---

function listPath(): string {
  let path = '/v1/channels?order=recent'
  if (prefix) path += `&prefix=${encodeURIComponent(prefix)}`
  return path
}

// The next poll's time (page clock) and how many were scheduled, on the dashboard element:
// what the page will do next is visible state, not only a pending timer.
function schedule(mine: number, delay: number): void {
  clearTimeout(timer)
  timer = setTimeout(() => poll(mine), delay)
  ui.dashboard.dataset.nextPollAt = String(Date.now() + delay)
  ui.dashboard.dataset.schedules = String(++scheduled)
}

// After a failure: 10 s, 20 s, 40 s, then 60 s, or longer when the answer said Retry-After.
function backoff(error: unknown): number {
  failures++
  const delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** failures)
  const asked = error instanceof ApiFailure ? error.retryAfterMs : undefined
  return asked === undefined ? delay : Math.max(delay, asked)
}

async function poll(mine: number): Promise<void> {
  // A poll asked for now (the prefix filter) replaces the one that was due; the answer
  // schedules the next.
  clearTimeout(timer)
  // Each poll asks every listed channel's object: none while the tab is not visible.
  if (document.hidden) {
    schedule(mine, POLL_MS)
    return
  }
  const asked = ++polled
  let delay = POLL_MS
  try {
    const listing = await getJson<ChannelList>(listPath(), token)
    if (mine !== generation || asked !== polled) return
    failures = 0
    setAlert('')
    render(listing)
  } catch (error) {
    if (mine !== generation || asked !== polled) return
    if (error instanceof ApiFailure && error.status === 401) {
      signOut(`The token was refused: ${describe(error)}`)
      return
    }
    delay = backoff(error)
    setAlert(`Update failed, retrying in ${Math.round(delay / 1000)} s: ${describe(error)}`)
  }
  schedule(mine, delay)
}

// The prefix filter: the list is asked again at once (no earlier than the backoff allows).
ui.filter.addEventListener('input', () => {
  const value = ui.filter.value.trim()
  if (!CHANNEL_NAME_PREFIX.test(value)) {
    ui.filter.setCustomValidity('A-Z a-z 0-9 . _ - only, up to 64')
    ui.filter.reportValidity()
    return
  }
  ui.filter.setCustomValidity('')
  if (value === prefix) return
  prefix = value
  if (token && failures === 0) void poll(generation)
})

// --- start ---

if (token) {
  showSignedIn(true)
  ui.status.textContent = 'Loading…'
  void poll(++generation)
} else {
  showSignedIn(false)
}
