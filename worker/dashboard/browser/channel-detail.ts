// The chosen channel, below the table: its bridges, consumer groups and cost from the listing,
// its last hour in charts (./history-panel.ts), and its recent messages, read one request at a
// time. The choice is kept in the address (#channel=name), so a reload shows the same channel.

import {
  type ChannelEntry,
  type ChannelStats,
  describe,
  getJson,
  isFailure,
  type MessagePage,
  type TokenSource,
} from './api'
import { element } from './dom'
import { formatCount, formatTime } from './format'
import { type HistoryElements, HistoryPanel } from './history-panel'
import { messageRow } from './message-rows'

/** Messages shown: the most recent. */
const RECENT = 25

/** Where the channel is shown. */
export interface ChannelDetailElements {
  section: HTMLElement
  title: HTMLElement
  bridges: HTMLUListElement
  groups: HTMLUListElement
  cost: HTMLElement
  messagesNote: HTMLElement
  messagesBody: HTMLTableSectionElement
  history: HistoryElements
}

/** What the detail needs of the sign-in, read when it makes a request. */
export interface Session {
  token: TokenSource
  /** Changes at each sign-in and sign-out: an answer asked for before is dropped. */
  generation: () => number
}

/** A read of messages in flight. */
interface MessagesLoad {
  name: string
  controller: AbortController
}

export class ChannelDetail {
  readonly #ui: ChannelDetailElements
  readonly #session: Session
  #selected: string | undefined = channelInAddress()
  /** The newest seq whose messages are shown (or being read). */
  #shownNewest: number | undefined
  /** The messages read in flight: at most one at a time. */
  #messagesLoad: MessagesLoad | undefined
  readonly #history: HistoryPanel

  constructor(ui: ChannelDetailElements, session: Session) {
    this.#ui = ui
    this.#session = session
    this.#history = new HistoryPanel(ui.history, session)
  }

  /** The channel chosen, if any. */
  get selected(): string | undefined {
    return this.#selected
  }

  /** Shows channel `name`, as the latest listing has it (`entry`; undefined: not in it). */
  select(name: string, entry: ChannelEntry | undefined): void {
    this.#clear()
    this.#selected = name
    history.replaceState(null, '', `#channel=${encodeURIComponent(name)}`)
    this.#show(name, entry)
  }

  /** After a listing: shows the chosen channel (if any) as `entryOf` has it now. */
  update(entryOf: (name: string) => ChannelEntry | undefined): void {
    const name = this.#selected
    if (name !== undefined) this.#show(name, entryOf(name))
  }

  /** Hides the channel and forgets the choice (signing out). */
  close(): void {
    this.#selected = undefined
    this.#ui.section.hidden = true
    this.#clear()
  }

  #stopMessages(): void {
    this.#messagesLoad?.controller.abort()
    this.#messagesLoad = undefined
    this.#ui.messagesBody.setAttribute('aria-busy', 'false')
  }

  /** Forgets what was shown of a channel: nothing of it may stay beside another's name. */
  #clear(): void {
    this.#stopMessages()
    this.#history.clear()
    this.#shownNewest = undefined
    for (const list of [this.#ui.bridges, this.#ui.groups, this.#ui.messagesBody]) {
      list.replaceChildren()
    }
    this.#ui.cost.textContent = ''
    this.#ui.messagesNote.textContent = ''
  }

  #show(name: string, entry: ChannelEntry | undefined): void {
    const ui = this.#ui
    ui.section.hidden = false
    ui.title.textContent = `Channel ${name}`
    if (entry === undefined) {
      this.#clear()
      ui.bridges.replaceChildren(element('li', 'not in the list', 'muted'))
      ui.messagesNote.textContent = 'This channel is not in the current list.'
      return
    }
    if (isFailure(entry)) {
      this.#clear()
      ui.bridges.replaceChildren(element('li', 'unavailable', 'muted'))
      ui.messagesNote.textContent = `The channel did not answer: ${entry.error.message}`
      return
    }
    this.#renderBridges(entry.bridges)
    this.#renderGroups(entry.groups)
    this.#renderCost(entry)
    this.#history.refresh(name)
    const newest = entry.log.newest ? entry.log.newest.seq : 0
    if (newest === this.#shownNewest) return
    // One read at a time: a newer message is read by the poll after this read is done.
    if (this.#messagesLoad) return
    this.#shownNewest = newest
    void this.#loadMessages(name, newest)
  }

  #renderBridges(bridges: ChannelStats['bridges']): void {
    const connections = bridges.connections || []
    if (connections.length === 0) {
      this.#ui.bridges.replaceChildren(element('li', 'none connected', 'muted'))
      return
    }
    this.#ui.bridges.replaceChildren(
      ...connections.map((connection) => {
        const item = element('li', undefined, 'bridge')
        item.dataset.bridgeId = connection.bridgeId || ''
        item.append(element('code', connection.bridgeId || '(no batch yet)'))
        const details: string[] = []
        if (connection.connectedAt) details.push(`connected ${formatTime(connection.connectedAt)}`)
        if (connection.lastBatchSeq !== null && connection.lastBatchSeq !== undefined) {
          details.push(`last batch #${formatCount(connection.lastBatchSeq)}`)
        }
        if (details.length > 0) item.append(element('span', ` — ${details.join(', ')}`, 'muted'))
        return item
      }),
    )
  }

  #renderGroups(groups: ChannelStats['groups']): void {
    if (groups.length === 0) {
      this.#ui.groups.replaceChildren(
        element('li', 'none (a first pull creates "default")', 'muted'),
      )
      return
    }
    this.#ui.groups.replaceChildren(
      ...groups.map((group) => {
        const item = element('li', undefined, 'bridge')
        item.dataset.group = group.name
        item.append(element('code', group.name))
        const details = [
          `${formatCount(group.lag.messages)} behind`,
          `${formatCount(group.inFlight)} leased`,
          `${formatCount(group.deadLetters)} dead letters`,
        ]
        if (group.lag.oldestUnacked) {
          details.push(`oldest not acked stored ${formatTime(group.lag.oldestUnacked.storedAt)}`)
        }
        if (group.inactive) details.push(`inactive since ${formatTime(group.activeAt)}`)
        item.append(element('span', ` — ${details.join(', ')}`, 'muted'))
        return item
      }),
    )
  }

  /** What Cloudflare bills the channel for: SQLite rows read and written, and storage. */
  #renderCost(entry: ChannelStats): void {
    const { cost } = entry
    this.#ui.cost.textContent =
      `SQLite rows billed: ${formatCount(cost.rowsRead)} read, ` +
      `${formatCount(cost.rowsWritten)} written (${cost.perMessage.rowsWritten.toFixed(3)} ` +
      `written a message stored); database ${formatCount(entry.storageBytes)} bytes.`
  }

  /**
   * Reads the RECENT messages up to `newest` (seqs are consecutive): after=newest-RECENT and
   * limit=RECENT, so nothing that is not shown is sent.
   */
  async #loadMessages(name: string, newest: number): Promise<void> {
    const ui = this.#ui
    const mine = this.#session.generation()
    if (newest === 0) {
      ui.messagesBody.replaceChildren()
      ui.messagesNote.textContent = 'No messages in the log.'
      return
    }
    const after = Math.max(0, newest - RECENT)
    const load: MessagesLoad = { name, controller: new AbortController() }
    this.#messagesLoad = load
    // Assistive technology (and tests) can tell a table being read from one that is read.
    ui.messagesBody.setAttribute('aria-busy', 'true')
    // Whether this answer is still wanted: the latest read, of the channel shown, same sign-in.
    const current = () =>
      this.#messagesLoad === load && mine === this.#session.generation() && name === this.#selected
    let page: MessagePage
    try {
      page = await getJson<MessagePage>(
        `/v1/channels/${encodeURIComponent(name)}/messages?after=${after}` +
          `&limit=${RECENT}&encoding=utf8`,
        this.#session.token(),
        load.controller.signal,
      )
    } catch (error) {
      if (!current()) return
      this.#messagesLoad = undefined
      ui.messagesBody.setAttribute('aria-busy', 'false')
      this.#shownNewest = undefined
      ui.messagesNote.textContent = `Messages could not be read: ${describe(error)}`
      return
    }
    if (!current()) return
    this.#messagesLoad = undefined
    ui.messagesBody.setAttribute('aria-busy', 'false')
    const messages = page.messages.slice().reverse()
    ui.messagesNote.textContent =
      messages.length === 0
        ? 'No messages in the log.'
        : `The last ${messages.length} messages, newest first.`
    const token = this.#session.token
    ui.messagesBody.replaceChildren(...messages.map((message) => messageRow(message, token)))
  }
}

/** The channel named in the address (`#channel=name`), if any. */
function channelInAddress(): string | undefined {
  const match = /^#channel=(.+)$/.exec(location.hash)
  if (!match?.[1]) return undefined
  try {
    return decodeURIComponent(match[1])
  } catch {
    return undefined
  }
}
