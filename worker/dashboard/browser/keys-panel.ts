// The Keys panel: the key registry's records and the handshakes bridges refused, read with an
// admin token that the page keeps in memory only (it can revoke keys: a reload forgets it).
// Read when the token is given, on Refresh and after a revoke, never polled: each read is a
// request to the registry's one Durable Object. Names, labels and channels are whatever an admin
// wrote: they only ever reach the page as text.

import type { z } from '@hono/zod-openapi'
import type { KeyListSchema, RefusalListSchema } from '../../../shared/api/schemas'
import { ApiFailure, describe, getJson, postJson } from './api'
import { element } from './dom'
import { formatCount, formatTime } from './format'

type KeyList = z.infer<typeof KeyListSchema>
type KeyRecord = KeyList['keys'][number]
type RefusalList = z.infer<typeof RefusalListSchema>

/** Records read: one page of the most the API gives. */
const MAX_KEYS = 1000

/** Where the panel is shown. */
export interface KeysPanelElements {
  form: HTMLFormElement
  token: HTMLInputElement
  submit: HTMLButtonElement
  refresh: HTMLButtonElement
  panel: HTMLElement
  note: HTMLElement
  keysBody: HTMLTableSectionElement
  refusalsNote: HTMLElement
  refusalsBody: HTMLTableSectionElement
}

export class KeysPanel {
  readonly #ui: KeysPanelElements
  #token: string | null = null
  /** Bumped at each load and at clear: an answer to an older request is dropped. */
  #generation = 0

  constructor(ui: KeysPanelElements) {
    this.#ui = ui
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault()
      const given = ui.token.value.trim()
      if (!given) return
      this.#token = given
      ui.token.value = ''
      void this.load()
    })
    ui.refresh.addEventListener('click', () => void this.load())
  }

  /** Forgets the token and everything shown (signing out). */
  clear(): void {
    this.#generation++
    this.#token = null
    this.#ui.panel.hidden = true
    this.#ui.refresh.hidden = true
    this.#ui.keysBody.replaceChildren()
    this.#ui.refusalsBody.replaceChildren()
    this.#ui.note.textContent = ''
    this.#ui.refusalsNote.textContent = ''
    // A load in flight is dropped: what it would have restored is restored here.
    this.#ui.submit.disabled = false
    this.#ui.refresh.disabled = false
    this.#ui.keysBody.setAttribute('aria-busy', 'false')
  }

  /** Reads the records and the refusals, and shows them. */
  async load(): Promise<void> {
    const mine = ++this.#generation
    const ui = this.#ui
    ui.submit.disabled = true
    ui.refresh.disabled = true
    ui.keysBody.setAttribute('aria-busy', 'true')
    try {
      const [keys, refusals] = await Promise.allSettled([
        getJson<KeyList>(`/v1/keys?limit=${MAX_KEYS}`, this.#token),
        getJson<RefusalList>('/v1/keys/refusals', this.#token),
      ])
      if (mine !== this.#generation) return
      if (keys.status === 'rejected') {
        ui.note.textContent = `The keys could not be read: ${describe(keys.reason)}`
        // A refused token is forgotten; after any other failure Refresh tries again.
        const refused = keys.reason instanceof ApiFailure && [401, 403].includes(keys.reason.status)
        if (refused) {
          this.#token = null
          ui.panel.hidden = true
          ui.refresh.hidden = true
        }
        return
      }
      ui.panel.hidden = false
      ui.refresh.hidden = false
      this.#renderKeys(keys.value)
      if (refusals.status === 'fulfilled') {
        this.#renderRefusals(refusals.value)
      } else {
        ui.refusalsBody.replaceChildren()
        const scoped = refusals.reason instanceof ApiFailure && refusals.reason.status === 403
        ui.refusalsNote.textContent = scoped
          ? 'Refusals name keys of every channel: only ADMIN_TOKEN itself may read them.'
          : `The refusals could not be read: ${describe(refusals.reason)}`
      }
    } finally {
      if (mine === this.#generation) {
        ui.submit.disabled = false
        ui.refresh.disabled = false
        ui.keysBody.setAttribute('aria-busy', 'false')
      }
    }
  }

  #renderKeys(list: KeyList): void {
    const ui = this.#ui
    ui.keysBody.replaceChildren(...list.keys.map((record) => this.#keyRow(record)))
    const shown = `${formatCount(list.keys.length)} key record${list.keys.length === 1 ? '' : 's'}`
    ui.note.textContent =
      list.keys.length === 0
        ? 'No key records yet: add one with zmq-edge keys add or POST /v1/keys.'
        : list.next
          ? `The first ${shown}; zmq-edge keys list pages through the rest.`
          : `${shown}.`
  }

  #keyRow(record: KeyRecord): HTMLTableRowElement {
    const tr = element('tr')
    tr.dataset.keyId = record.id
    const name = element('th', record.name)
    name.scope = 'row'
    tr.append(name)
    const keys = element('td')
    for (const publicKey of [record.publicKey, record.secondPublicKey]) {
      if (publicKey === undefined) continue
      const code = element('code', `${publicKey.slice(0, 10)}…`)
      code.title = publicKey
      keys.append(code, ' ')
    }
    tr.append(keys)
    const status = element('td', record.status, `status ${record.status}`)
    status.dataset.field = 'status'
    tr.append(status)
    tr.append(element('td', record.channels.join(', ')))
    tr.append(
      element(
        'td',
        Object.entries(record.labels)
          .map(([name, value]) => `${name}=${value}`)
          .join(', '),
      ),
    )
    tr.append(element('td', rateText(record.rateLimit)))
    tr.append(element('td', record.expiresAt ? formatTime(record.expiresAt) : '–'))
    const action = element('td')
    if (record.status === 'active') {
      const revoke = element('button', 'Revoke')
      revoke.type = 'button'
      revoke.addEventListener('click', () => void this.#revoke(record, revoke))
      action.append(revoke)
    }
    tr.append(action)
    return tr
  }

  async #revoke(record: KeyRecord, button: HTMLButtonElement): Promise<void> {
    // Control characters (line breaks) would let a name reshape the question.
    const name = record.name.replace(/\p{Cc}/gu, ' ')
    const sure = confirm(
      `Revoke the key "${name}"? Every bridge closes its connections within a second.`,
    )
    if (!sure) return
    const mine = this.#generation
    button.disabled = true
    try {
      await postJson(`/v1/keys/${encodeURIComponent(record.id)}/revoke`, this.#token)
    } catch (error) {
      if (mine !== this.#generation) return
      button.disabled = false
      this.#ui.note.textContent = `The key was not revoked: ${describe(error)}`
      return
    }
    if (mine === this.#generation) await this.load()
  }

  #renderRefusals(list: RefusalList): void {
    const ui = this.#ui
    ui.refusalsBody.replaceChildren(
      ...list.refusals.map((refusal) => {
        const tr = element('tr')
        const key = element('td')
        if (refusal.publicKey) {
          const code = element('code', `${refusal.publicKey.slice(0, 10)}…`)
          code.title = refusal.publicKey
          key.append(code)
        } else {
          key.append(element('span', 'not learnt', 'muted'))
        }
        tr.append(key)
        tr.append(element('td', refusal.keyName ?? 'not registered'))
        tr.append(element('td', refusal.bridgeId))
        tr.append(element('td', refusal.reason.replaceAll('_', ' ')))
        tr.append(element('td', formatCount(refusal.count), 'number'))
        tr.append(element('td', formatTime(refusal.lastAt)))
        return tr
      }),
    )
    ui.refusalsNote.textContent =
      list.refusals.length === 0
        ? 'No handshake refused, as bridges with --key-registry reported.'
        : 'Counted per key, bridge and reason, as bridges with --key-registry reported them (every minute, or seconds after a refusal).'
  }
}

/** A record's rate limit in words; '–' for none. */
export function rateText(limit: KeyRecord['rateLimit']): string {
  const parts: string[] = []
  if (limit?.messagesPerSecond !== undefined) {
    parts.push(`${formatCount(limit.messagesPerSecond)} msg/s`)
  }
  if (limit?.bytesPerSecond !== undefined) parts.push(`${formatCount(limit.bytesPerSecond)} B/s`)
  return parts.length === 0 ? '–' : parts.join(', ')
}
