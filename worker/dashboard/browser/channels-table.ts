// The channels table: a row per listed channel, in the listing's order (most recently active
// first), with its depth, rates, queue, bridges and newest message, and a button that opens the
// channel. The rates come from successive counters over the time between them.

import { type ChannelEntry, type ChannelList, type ChannelStats, isFailure } from './api'
import { element } from './dom'
import { formatAge, formatCount, formatRate } from './format'

/** The cells of a row, by their `data-field`. */
type Field =
  | 'depth'
  | 'in-rate'
  | 'ack-rate'
  | 'available'
  | 'leased'
  | 'dead-letters'
  | 'bridges'
  | 'newest'

interface Row {
  tr: HTMLTableRowElement
  cells: Record<Field, HTMLTableCellElement>
  /** The channel as the latest listing has it. */
  entry: ChannelEntry
}

/** A channel's counters at a poll, and when (page clock, ms): the next poll's rates start here. */
interface Sample {
  at: number
  stored: number
  acked: number
}

/** Where the table goes: its body and the note above it. */
export interface ChannelsTableElements {
  body: HTMLTableSectionElement
  note: HTMLElement
}

export class ChannelsTable {
  readonly #ui: ChannelsTableElements
  readonly #onSelect: (name: string) => void
  readonly #rows = new Map<string, Row>()
  readonly #previous = new Map<string, Sample>()

  /** @param onSelect called with the channel's name when its button is pressed. */
  constructor(ui: ChannelsTableElements, onSelect: (name: string) => void) {
    this.#ui = ui
    this.#onSelect = onSelect
  }

  /** The channel as the latest listing has it; undefined when it is not in it. */
  entryOf(name: string): ChannelEntry | undefined {
    return this.#rows.get(name)?.entry
  }

  /** Marks the row of the chosen channel (aria-current), and only it. */
  markSelected(name: string): void {
    for (const [other, row] of this.#rows) {
      row.tr.setAttribute('aria-current', other === name ? 'true' : 'false')
    }
  }

  /** Forgets every row and sample (signing out). */
  clear(): void {
    this.#rows.clear()
    this.#previous.clear()
    this.#ui.body.replaceChildren()
  }

  /** Shows a listing: `selected` is the channel shown below, `prefix` the listing's filter. */
  render(listing: ChannelList, selected: string | undefined, prefix: string): void {
    const now = performance.now()
    const seen = new Set<string>()
    listing.channels.forEach((entry, index) => {
      const name = entry.channel
      seen.add(name)
      const row = this.#rowFor(name, entry)
      if (isFailure(entry)) {
        for (const cell of Object.values(row.cells)) cell.textContent = ''
        row.cells.depth.textContent = 'unavailable'
        row.cells.depth.title = entry.error.message
      } else {
        this.#fill(row.cells, entry, now)
      }
      row.tr.setAttribute('aria-current', name === selected ? 'true' : 'false')
      // Rows already in place are not moved, so a focused button keeps its focus.
      const at = this.#ui.body.children[index]
      if (at !== row.tr) this.#ui.body.insertBefore(row.tr, at ?? null)
    })
    for (const [name, row] of this.#rows) {
      if (seen.has(name)) continue
      row.tr.remove()
      this.#rows.delete(name)
      this.#previous.delete(name)
    }
    this.#ui.note.textContent = note(listing, prefix)
  }

  #fill(cells: Row['cells'], entry: ChannelStats, now: number): void {
    const before = this.#previous.get(entry.channel)
    // A counter the answer lacks is no number (NaN), so no rate is made of it.
    const stored = entry.counters.messagesStored ?? Number.NaN
    const acked = entry.counters.acked ?? Number.NaN
    let inRate: number | undefined
    let ackRate: number | undefined
    if (before && now > before.at) {
      const seconds = (now - before.at) / 1000
      inRate = Math.max(0, stored - before.stored) / seconds
      ackRate = Math.max(0, acked - before.acked) / seconds
    }
    this.#previous.set(entry.channel, { at: now, stored, acked })
    cells.depth.textContent = formatCount(entry.log.messages)
    cells.depth.title = `${formatCount(entry.log.bytes)} bytes`
    cells['in-rate'].textContent = formatRate(inRate)
    cells['ack-rate'].textContent = formatRate(ackRate)
    cells.available.textContent = formatCount(entry.queue.available)
    cells.leased.textContent = formatCount(entry.queue.inFlight)
    cells['dead-letters'].textContent = formatCount(entry.queue.deadLetters)
    cells.bridges.textContent = bridgeSummary(entry.bridges)
    cells.newest.textContent = entry.log.newest ? `${formatAge(entry.log.newest.ageMs)} ago` : '–'
  }

  /** The channel's row, made (not yet in the table) when it has none; `entry` is kept on it. */
  #rowFor(name: string, entry: ChannelEntry): Row {
    const row = this.#rows.get(name)
    if (row) {
      row.entry = entry
      return row
    }
    const tr = element('tr')
    tr.dataset.channel = name
    const head = element('th')
    head.scope = 'row'
    const button = element('button', name, 'link')
    button.type = 'button'
    button.addEventListener('click', () => this.#onSelect(name))
    head.append(button)
    tr.append(head)
    const cell = (field: Field, numeric: boolean) => {
      const td = element('td', '', numeric ? 'number' : '')
      td.dataset.field = field
      tr.append(td)
      return td
    }
    // In the columns' order (../page.ts).
    const cells = {
      depth: cell('depth', true),
      'in-rate': cell('in-rate', true),
      'ack-rate': cell('ack-rate', true),
      available: cell('available', true),
      leased: cell('leased', true),
      'dead-letters': cell('dead-letters', true),
      bridges: cell('bridges', false),
      newest: cell('newest', false),
    }
    const made = { tr, cells, entry }
    this.#rows.set(name, made)
    return made
  }
}

/** The bridges connected to a channel, by bridge id. */
function bridgeSummary(bridges: ChannelStats['bridges']): string {
  const connections = bridges.connections || []
  if (connections.length === 0) return '–'
  return connections.map((connection) => connection.bridgeId || '(no batch yet)').join(', ')
}

/** What the table shows of the listing: how many channels, and what is left out. */
function note(listing: ChannelList, prefix: string): string {
  const shown = listing.channels.length
  if (listing.truncated) {
    const more = Math.max(0, listing.total - shown)
    return (
      `Showing the ${shown} most recently active of ${formatCount(listing.total)} channels ` +
      `(${formatCount(more)} more): filter by prefix to find others.`
    )
  }
  if (shown === 0) {
    return prefix
      ? `No channel starts with ${prefix}.`
      : 'No channels yet: they appear when a bridge connects or stores a batch.'
  }
  return shown === 1 ? '1 channel.' : `${shown} channels.`
}
