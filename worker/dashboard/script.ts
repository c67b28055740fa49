// The dashboard's browser script (inline in the page, allowed by its hash in the CSP), plain
// JavaScript with no build step. It signs in with the read token (kept in sessionStorage),
// polls GET /v1/channels every 5 s while the tab is visible (backing off up to 60 s after a
// failure, or as long as a Retry-After says), computes rates from successive counters over the
// time between them, and shows the chosen channel's bridges and recent messages. Message content is
// untrusted: it only ever reaches the page through textContent (and the CSP requires Trusted
// Types, so an HTML sink would throw).

import { CHANNEL_NAME_PREFIX } from '../../shared/channel-name'

// String.raw: a backslash in the browser code must reach the browser as written. The code has
// no backtick, which would end this template, and one interpolation: the channel-name prefix
// rule, from the module every side takes it from.
export const DASHBOARD_SCRIPT = String.raw`
'use strict'
;(() => {
  const POLL_MS = 5000
  const MAX_BACKOFF_MS = 60000
  // A Retry-After is honoured up to an hour.
  const MAX_RETRY_AFTER_MS = 3600000
  const NAME_PREFIX = ${CHANNEL_NAME_PREFIX}
  const RECENT = 25
  const MAX_TEXT = 2000
  const MAX_HEX = 64
  // Frames of a large message listed with a download link each; a note says how many more.
  const MAX_LARGE_FRAMES = 20
  const TOKEN_KEY = 'zmq-edge.read-token'

  const byId = (id) => document.getElementById(id)
  const ui = {
    status: byId('status'),
    alert: byId('alert'),
    signOut: byId('sign-out'),
    signIn: byId('sign-in'),
    form: byId('sign-in-form'),
    token: byId('token'),
    submit: byId('sign-in-submit'),
    dashboard: byId('dashboard'),
    channelsTitle: byId('channels-title'),
    channelsNote: byId('channels-note'),
    filter: byId('filter'),
    channelsBody: byId('channels-body'),
    channel: byId('channel'),
    channelTitle: byId('channel-title'),
    bridges: byId('bridges'),
    groups: byId('groups'),
    cost: byId('cost'),
    messagesNote: byId('messages-note'),
    messagesBody: byId('messages-body'),
  }

  let token = sessionStorage.getItem(TOKEN_KEY)
  // Bumped on sign-out: answers to older requests are dropped.
  let generation = 0
  let timer
  let selected = decodeHash()
  let shownNewest
  // The messages read in flight, { name, controller }: at most one at a time.
  let messagesLoad
  // Polls failed in a row (the next waits longer), and the latest poll (older answers are dropped).
  let failures = 0
  let polled = 0
  let prefix = ''
  const rows = new Map()
  const previous = new Map()

  class ApiFailure extends Error {
    constructor(status, code, message, retryAfterMs) {
      super(message)
      this.status = status
      this.code = code
      this.retryAfterMs = retryAfterMs
    }
  }

  // Retry-After in milliseconds (delay-seconds or an HTTP date), or undefined.
  function retryAfterOf(response) {
    const value = (response.headers.get('Retry-After') || '').trim()
    if (value === '') return undefined
    const ms = /^\d+$/.test(value) ? Number(value) * 1000 : Date.parse(value) - Date.now()
    return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : undefined
  }

  async function api(path, signal) {
    let response
    try {
      response = await fetch(path, {
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        signal,
      })
    } catch (error) {
      throw new ApiFailure(0, 'network', 'the Worker did not answer (' + error.message + ')')
    }
    let body = null
    try {
      body = await response.json()
    } catch {}
    if (!response.ok) {
      const error = body && body.error ? body.error : {}
      throw new ApiFailure(
        response.status,
        error.code || 'http_' + response.status,
        error.message || response.statusText || 'the request failed',
        retryAfterOf(response),
      )
    }
    return body
  }

  function describe(error) {
    if (error instanceof ApiFailure) {
      const status = error.status ? ', HTTP ' + error.status : ''
      return error.message + ' (' + error.code + status + ')'
    }
    return String(error && error.message ? error.message : error)
  }

  function element(tag, text, className) {
    const node = document.createElement(tag)
    if (text !== undefined && text !== null) node.textContent = String(text)
    if (className) node.className = className
    return node
  }

  function setAlert(text) {
    ui.alert.textContent = text || ''
  }

  function decodeHash() {
    const match = /^#channel=(.+)$/.exec(location.hash)
    if (!match) return undefined
    try {
      return decodeURIComponent(match[1])
    } catch {
      return undefined
    }
  }

  // --- formatting ---

  const integer = new Intl.NumberFormat('en')

  function formatCount(value) {
    return typeof value === 'number' ? integer.format(value) : '–'
  }

  function formatBytes(value) {
    if (typeof value !== 'number') return '– bytes'
    if (value < 1024 * 1024) return formatCount(value) + ' bytes'
    return (value / (1024 * 1024)).toFixed(1) + ' MiB (' + formatCount(value) + ' bytes)'
  }

  function formatRate(value) {
    if (value === undefined) return '–'
    if (value === 0) return '0'
    if (value < 10) return value.toFixed(1)
    return integer.format(Math.round(value))
  }

  function formatAge(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000))
    if (seconds < 60) return seconds + ' s'
    const minutes = Math.floor(seconds / 60)
    if (minutes < 60) return minutes + ' min'
    const hours = Math.floor(minutes / 60)
    if (hours < 48) return hours + ' h ' + (minutes % 60) + ' min'
    return Math.floor(hours / 24) + ' d'
  }

  function formatTime(iso) {
    const date = new Date(iso)
    const pad = (value, width) => String(value).padStart(width || 2, '0')
    return (
      date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate()) + ' ' +
      pad(date.getHours()) + ':' + pad(date.getMinutes()) + ':' + pad(date.getSeconds()) + '.' +
      pad(date.getMilliseconds(), 3)
    )
  }

  function hexOf(base64) {
    let binary
    try {
      binary = atob(base64)
    } catch {
      return { size: 0, hex: '' }
    }
    const parts = []
    for (let index = 0; index < Math.min(binary.length, MAX_HEX); index++) {
      parts.push(binary.charCodeAt(index).toString(16).padStart(2, '0'))
    }
    return { size: binary.length, hex: parts.join(' ') + (binary.length > MAX_HEX ? ' …' : '') }
  }

  // --- sign in and out ---

  function showSignedIn(signedIn) {
    ui.signIn.hidden = signedIn
    ui.dashboard.hidden = !signedIn
    ui.signOut.hidden = !signedIn
    if (!signedIn) ui.status.textContent = ''
  }

  function signOut(message) {
    generation++
    clearTimeout(timer)
    token = null
    sessionStorage.removeItem(TOKEN_KEY)
    rows.clear()
    previous.clear()
    ui.channelsBody.replaceChildren()
    closeChannel()
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
      const listing = await api(listPath())
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
      setAlert('Sign-in failed: ' + describe(error))
      ui.token.select()
    } finally {
      ui.submit.disabled = false
    }
  })

  ui.signOut.addEventListener('click', () => signOut('Signed out.'))

  // --- polling ---

  function listPath() {
    let path = '/v1/channels?order=recent'
    if (prefix) path += '&prefix=' + encodeURIComponent(prefix)
    return path
  }

  // The next poll's time (page clock) and how many were scheduled, on the dashboard element:
  // what the page will do next is visible state, not only a pending timer.
  let scheduled = 0
  function schedule(mine, delay) {
    clearTimeout(timer)
    timer = setTimeout(() => poll(mine), delay)
    ui.dashboard.dataset.nextPollAt = String(Date.now() + delay)
    ui.dashboard.dataset.schedules = String(++scheduled)
  }

  // After a failure: 10 s, 20 s, 40 s, then 60 s, or longer when the answer said Retry-After.
  function backoff(error) {
    failures++
    const delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** failures)
    const asked = error instanceof ApiFailure ? error.retryAfterMs : undefined
    return asked === undefined ? delay : Math.max(delay, asked)
  }

  async function poll(mine) {
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
      const listing = await api(listPath())
      if (mine !== generation || asked !== polled) return
      failures = 0
      setAlert('')
      render(listing)
    } catch (error) {
      if (mine !== generation || asked !== polled) return
      if (error instanceof ApiFailure && error.status === 401) {
        signOut('The token was refused: ' + describe(error))
        return
      }
      delay = backoff(error)
      setAlert(
        'Update failed, retrying in ' + Math.round(delay / 1000) + ' s: ' + describe(error),
      )
    }
    schedule(mine, delay)
  }

  // The prefix filter: the list is asked again at once (no earlier than the backoff allows).
  ui.filter.addEventListener('input', () => {
    const value = ui.filter.value.trim()
    if (!NAME_PREFIX.test(value)) {
      ui.filter.setCustomValidity('A-Z a-z 0-9 . _ - only, up to 64')
      ui.filter.reportValidity()
      return
    }
    ui.filter.setCustomValidity('')
    if (value === prefix) return
    prefix = value
    if (token && failures === 0) poll(generation)
  })

  // --- the channels table ---

  const FIELDS = [
    'depth',
    'in-rate',
    'ack-rate',
    'available',
    'leased',
    'dead-letters',
    'bridges',
    'newest',
  ]
  const NUMERIC = new Set(['depth', 'in-rate', 'ack-rate', 'available', 'leased', 'dead-letters'])

  function rowFor(name) {
    let row = rows.get(name)
    if (row) return row
    const tr = document.createElement('tr')
    tr.dataset.channel = name
    const head = document.createElement('th')
    head.scope = 'row'
    const button = element('button', name, 'link')
    button.type = 'button'
    button.addEventListener('click', () => select(name))
    head.append(button)
    tr.append(head)
    const cells = {}
    for (const field of FIELDS) {
      const cell = element('td', '', NUMERIC.has(field) ? 'number' : '')
      cell.dataset.field = field
      cells[field] = cell
      tr.append(cell)
    }
    row = { tr, cells, entry: undefined }
    rows.set(name, row)
    return row
  }

  function bridgeSummary(bridges) {
    const connections = bridges.connections || []
    if (connections.length === 0) return '–'
    return connections.map((connection) => connection.bridgeId || '(no batch yet)').join(', ')
  }

  function render(listing) {
    const now = performance.now()
    const seen = new Set()
    listing.channels.forEach((entry, index) => {
      const name = entry.channel
      seen.add(name)
      const row = rowFor(name)
      row.entry = entry
      const { cells } = row
      if (entry.error) {
        for (const field of FIELDS) cells[field].textContent = ''
        cells.depth.textContent = 'unavailable'
        cells.depth.title = entry.error.message
      } else {
        const before = previous.get(name)
        const stored = entry.counters.messagesStored
        const acked = entry.counters.acked
        let inRate
        let ackRate
        if (before && now > before.at) {
          const seconds = (now - before.at) / 1000
          inRate = Math.max(0, stored - before.stored) / seconds
          ackRate = Math.max(0, acked - before.acked) / seconds
        }
        previous.set(name, { at: now, stored, acked })
        cells.depth.textContent = formatCount(entry.log.messages)
        cells.depth.title = formatCount(entry.log.bytes) + ' bytes'
        cells['in-rate'].textContent = formatRate(inRate)
        cells['ack-rate'].textContent = formatRate(ackRate)
        cells.available.textContent = formatCount(entry.queue.available)
        cells.leased.textContent = formatCount(entry.queue.inFlight)
        cells['dead-letters'].textContent = formatCount(entry.queue.deadLetters)
        cells.bridges.textContent = bridgeSummary(entry.bridges)
        cells.newest.textContent = entry.log.newest ? formatAge(entry.log.newest.ageMs) + ' ago' : '–'
      }
      row.tr.setAttribute('aria-current', name === selected ? 'true' : 'false')
      // Rows already in place are not moved, so a focused button keeps its focus.
      const at = ui.channelsBody.children[index]
      if (at !== row.tr) ui.channelsBody.insertBefore(row.tr, at || null)
    })
    for (const [name, row] of rows) {
      if (seen.has(name)) continue
      row.tr.remove()
      rows.delete(name)
      previous.delete(name)
    }
    const shown = listing.channels.length
    if (listing.truncated) {
      const more = Math.max(0, listing.total - shown)
      ui.channelsNote.textContent =
        'Showing the ' + shown + ' most recently active of ' + formatCount(listing.total) +
        ' channels (' + formatCount(more) + ' more): filter by prefix to find others.'
    } else if (shown === 0) {
      ui.channelsNote.textContent = prefix
        ? 'No channel starts with ' + prefix + '.'
        : 'No channels yet: they appear when a bridge connects or stores a batch.'
    } else {
      ui.channelsNote.textContent = shown === 1 ? '1 channel.' : shown + ' channels.'
    }
    ui.status.textContent = 'Updated ' + new Date().toLocaleTimeString()
    if (selected !== undefined) showChannel(rows.get(selected))
  }

  // --- one channel ---

  function stopMessages() {
    if (messagesLoad) messagesLoad.controller.abort()
    messagesLoad = undefined
  }

  function select(name) {
    stopMessages()
    selected = name
    shownNewest = undefined
    history.replaceState(null, '', '#channel=' + encodeURIComponent(name))
    for (const [other, row] of rows) {
      row.tr.setAttribute('aria-current', other === name ? 'true' : 'false')
    }
    ui.messagesBody.replaceChildren()
    showChannel(rows.get(name))
  }

  function closeChannel() {
    stopMessages()
    selected = undefined
    shownNewest = undefined
    ui.channel.hidden = true
    ui.bridges.replaceChildren()
    ui.messagesBody.replaceChildren()
  }

  function showChannel(row) {
    ui.channel.hidden = false
    ui.channelTitle.textContent = 'Channel ' + selected
    const entry = row && row.entry
    if (!entry || entry.error) {
      ui.bridges.replaceChildren(element('li', entry ? 'unavailable' : 'not in the list', 'muted'))
      ui.messagesNote.textContent = entry
        ? 'The channel did not answer: ' + entry.error.message
        : 'This channel is not in the current list.'
      return
    }
    renderBridges(entry.bridges)
    renderGroups(entry.groups || [])
    renderCost(entry)
    const newest = entry.log.newest ? entry.log.newest.seq : 0
    if (newest === shownNewest) return
    // One read at a time: a newer message is read by the poll after this read is done.
    if (messagesLoad) return
    shownNewest = newest
    loadMessages(selected, newest)
  }

  function renderBridges(bridges) {
    const connections = bridges.connections || []
    if (connections.length === 0) {
      ui.bridges.replaceChildren(element('li', 'none connected', 'muted'))
      return
    }
    ui.bridges.replaceChildren(
      ...connections.map((connection) => {
        const item = element('li', null, 'bridge')
        item.dataset.bridgeId = connection.bridgeId || ''
        item.append(element('code', connection.bridgeId || '(no batch yet)'))
        const details = []
        if (connection.connectedAt) details.push('connected ' + formatTime(connection.connectedAt))
        if (connection.lastBatchSeq !== null && connection.lastBatchSeq !== undefined) {
          details.push('last batch #' + formatCount(connection.lastBatchSeq))
        }
        if (details.length > 0) item.append(element('span', ' — ' + details.join(', '), 'muted'))
        return item
      }),
    )
  }

  function renderGroups(groups) {
    if (groups.length === 0) {
      ui.groups.replaceChildren(element('li', 'none (a first pull creates "default")', 'muted'))
      return
    }
    ui.groups.replaceChildren(
      ...groups.map((group) => {
        const item = element('li', null, 'bridge')
        item.dataset.group = group.name
        item.append(element('code', group.name))
        const details = [
          formatCount(group.lag.messages) + ' behind',
          formatCount(group.inFlight) + ' leased',
          formatCount(group.deadLetters) + ' dead letters',
        ]
        if (group.lag.oldestUnacked) {
          details.push('oldest not acked stored ' + formatTime(group.lag.oldestUnacked.storedAt))
        }
        if (group.inactive) details.push('inactive since ' + formatTime(group.activeAt))
        item.append(element('span', ' — ' + details.join(', '), 'muted'))
        return item
      }),
    )
  }

  // What Cloudflare bills the channel for: SQLite rows read and written, and storage.
  function renderCost(entry) {
    const cost = entry.cost
    if (!cost) {
      ui.cost.textContent = ''
      return
    }
    ui.cost.textContent =
      'SQLite rows billed: ' + formatCount(cost.rowsRead) + ' read, ' +
      formatCount(cost.rowsWritten) + ' written (' + cost.perMessage.rowsWritten.toFixed(3) +
      ' written a message stored); database ' + formatCount(entry.storageBytes) + ' bytes.'
  }

  // Reads the RECENT messages up to newest (seqs are consecutive): after=newest-RECENT and
  // limit=RECENT, so nothing that is not shown is sent.
  async function loadMessages(name, newest) {
    const mine = generation
    if (newest === 0) {
      ui.messagesBody.replaceChildren()
      ui.messagesNote.textContent = 'No messages in the log.'
      return
    }
    const after = Math.max(0, newest - RECENT)
    const load = { name, controller: new AbortController() }
    messagesLoad = load
    // Assistive technology (and tests) can tell a table being read from one that is read.
    ui.messagesBody.setAttribute('aria-busy', 'true')
    // Whether this answer is still wanted: the latest read, of the channel shown, same sign-in.
    const current = () => messagesLoad === load && mine === generation && name === selected
    let page
    try {
      page = await api(
        '/v1/channels/' + encodeURIComponent(name) + '/messages?after=' + after +
          '&limit=' + RECENT + '&encoding=utf8',
        load.controller.signal,
      )
    } catch (error) {
      if (!current()) return
      messagesLoad = undefined
      ui.messagesBody.setAttribute('aria-busy', 'false')
      shownNewest = undefined
      ui.messagesNote.textContent = 'Messages could not be read: ' + describe(error)
      return
    }
    if (!current()) return
    messagesLoad = undefined
    ui.messagesBody.setAttribute('aria-busy', 'false')
    const messages = page.messages.slice().reverse()
    ui.messagesNote.textContent =
      messages.length === 0
        ? 'No messages in the log.'
        : 'The last ' + messages.length + ' messages, newest first.'
    ui.messagesBody.replaceChildren(...messages.map(messageRow))
  }

  function messageRow(message) {
    const tr = document.createElement('tr')
    tr.dataset.seq = String(message.seq)
    tr.append(element('td', message.seq, 'number'))
    const received = element('td', formatTime(message.receivedAt))
    received.title = message.receivedAt
    tr.append(received)
    const peer = element('td')
    peer.append(element('code', message.peer.address), ' ' + message.peer.mechanism)
    if (message.peer.publicKey) {
      const key = element('code', ' ' + message.peer.publicKey.slice(0, 10) + '…')
      key.title = message.peer.publicKey
      peer.append(key)
    }
    tr.append(peer)
    const cell = element('td')
    if (Array.isArray(message.frames)) {
      const frames = element('ol', null, 'frames')
      const binary = new Set(message.binaryFrames || [])
      message.frames.forEach((frame, index) => frames.append(frameItem(frame, binary.has(index))))
      cell.append(frames)
    } else {
      cell.append(...largeMessage(message))
    }
    tr.append(cell)
    return tr
  }

  // A message over 8 MiB comes without its frames: its size, and a download link per frame
  // (the first MAX_LARGE_FRAMES). Read with the token, so through fetch, then saved as a file.
  function largeMessage(message) {
    const sizes = Array.isArray(message.frameSizes) ? message.frameSizes : []
    const count = typeof message.frameCount === 'number' ? message.frameCount : sizes.length
    const note = element(
      'p',
      'Large message, not shown: ' + formatBytes(message.size) + ' in ' + formatCount(count) +
        (count === 1 ? ' frame.' : ' frames.'),
      'muted large',
    )
    // Our own API writes it; still, only a path under /v1/channels becomes a link.
    const base = message.framesUrl
    if (typeof base !== 'string' || !/^\/v1\/channels\/[^?#]+\/frames$/.test(base)) return [note]
    const frames = element('ol', null, 'frames')
    sizes.slice(0, MAX_LARGE_FRAMES).forEach((size, index) => {
      const item = element('li', null, 'frame')
      item.dataset.kind = 'large'
      item.append(element('span', formatCount(size) + ' bytes ', 'muted'))
      const link = element('a', 'download')
      link.href = base + '/' + index
      link.download = 'message-' + message.seq + '-frame-' + index + '.bin'
      link.addEventListener('click', (event) => {
        event.preventDefault()
        download(link, item)
      })
      item.append(link)
      frames.append(item)
    })
    if (sizes.length > MAX_LARGE_FRAMES) {
      frames.append(element('li', '… ' + formatCount(sizes.length - MAX_LARGE_FRAMES) + ' more frames', 'muted'))
    }
    return [note, frames]
  }

  async function download(link, item) {
    const status = item.querySelector('.download-status') || element('span', null, 'download-status muted')
    status.textContent = ' downloading…'
    item.append(status)
    try {
      const response = await fetch(link.href, {
        headers: { Authorization: 'Bearer ' + token },
        cache: 'no-store',
        credentials: 'omit',
      })
      if (!response.ok) {
        let body = null
        try {
          body = await response.json()
        } catch {}
        const error = body && body.error ? body.error : {}
        throw new ApiFailure(response.status, error.code || 'http_' + response.status,
          error.message || response.statusText || 'the request failed')
      }
      const url = URL.createObjectURL(await response.blob())
      const save = document.createElement('a')
      save.href = url
      save.download = link.download
      save.click()
      setTimeout(() => URL.revokeObjectURL(url), 60000)
      status.textContent = ''
    } catch (error) {
      status.textContent = ' download failed: ' + describe(error)
    }
  }

  function frameItem(frame, isBinary) {
    const item = element('li', null, 'frame')
    if (isBinary) {
      const { size, hex } = hexOf(frame)
      item.dataset.kind = 'binary'
      item.append(element('span', 'binary', 'kind'))
      item.append(element('span', formatCount(size) + ' bytes: ', 'muted'))
      item.append(element('span', hex, 'frame-text'))
      return item
    }
    item.dataset.kind = 'text'
    if (frame.length === 0) {
      item.append(element('span', '(empty frame)', 'muted'))
      return item
    }
    const shown = frame.length > MAX_TEXT ? frame.slice(0, MAX_TEXT) : frame
    item.append(element('span', shown, 'frame-text'))
    if (shown !== frame) {
      item.append(element('span', ' … ' + formatCount(frame.length - MAX_TEXT) + ' more characters', 'muted'))
    }
    return item
  }

  // --- start ---

  if (token) {
    showSignedIn(true)
    ui.status.textContent = 'Loading…'
    poll(++generation)
  } else {
    showSignedIn(false)
  }
})()
`
