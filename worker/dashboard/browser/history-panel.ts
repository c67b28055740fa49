// The chosen channel's "Last hour": its charts (./chart-figure.ts of ./history-charts.ts), read
// from GET /v1/channels/:channel/history when the channel is shown and again once the minute has
// changed, at the first poll after (the history changes a minute at a time: reading it at every
// 5 s poll would only repeat the answer). One read at a time; a read is aborted when the channel
// is left or the session ends, and its answer dropped if it comes after that.

import { type ChannelHistory, describe, getJson } from './api'
import type { Session } from './channel-detail'
import { chartFigure } from './chart-figure'
import { formatTime } from './format'
import { historyCharts } from './history-charts'

const MINUTE_MS = 60_000

/** Where the last hour is shown: a note and the charts. */
export interface HistoryElements {
  note: HTMLElement
  charts: HTMLElement
}

export class HistoryPanel {
  readonly #ui: HistoryElements
  readonly #session: Session
  /** The read in flight: at most one at a time. */
  #load: AbortController | undefined
  /** The channel last read, and the minute (page clock) it was read in. */
  #read: { name: string; minute: number } | undefined

  constructor(ui: HistoryElements, session: Session) {
    this.#ui = ui
    this.#session = session
  }

  /**
   * Reads channel `name`'s history unless it was read in this minute (or is being read): called
   * at each poll, it reads at most once a minute.
   */
  refresh(name: string): void {
    if (this.#load) return
    const minute = Math.floor(Date.now() / MINUTE_MS)
    if (this.#read?.name === name && this.#read.minute === minute) return
    // Failed or not, the next read is in the next minute: a failing Worker is not asked more.
    this.#read = { name, minute }
    void this.#loadHistory(name)
  }

  /** Forgets the charts and stops a read (another channel is shown, or none). */
  clear(): void {
    this.#load?.abort()
    this.#load = undefined
    this.#read = undefined
    this.#ui.charts.setAttribute('aria-busy', 'false')
    this.#ui.charts.replaceChildren()
    delete this.#ui.charts.dataset.now
    this.#ui.note.textContent = ''
  }

  async #loadHistory(name: string): Promise<void> {
    const ui = this.#ui
    const mine = this.#session.generation()
    const load = new AbortController()
    this.#load = load
    ui.charts.setAttribute('aria-busy', 'true')
    // Whether this answer is still wanted: the latest read, same sign-in (leaving the channel
    // clears the read).
    const current = () => this.#load === load && mine === this.#session.generation()
    let history: ChannelHistory
    try {
      history = await getJson<ChannelHistory>(
        `/v1/channels/${encodeURIComponent(name)}/history`,
        this.#session.token(),
        load.signal,
      )
    } catch (error) {
      if (!current()) return
      this.#load = undefined
      ui.charts.setAttribute('aria-busy', 'false')
      // Charts already shown stay, marked as of when they were read.
      const shown = ui.charts.dataset.now
      ui.note.textContent = shown
        ? `The last hour could not be updated (${describe(error)}); shown as of ${formatTime(shown)}.`
        : `The last hour could not be read: ${describe(error)}`
      return
    }
    if (!current()) return
    this.#load = undefined
    ui.charts.setAttribute('aria-busy', 'false')
    ui.charts.dataset.now = history.now
    ui.charts.replaceChildren(...historyCharts(history).map(chartFigure))
    ui.note.textContent =
      `A value a minute, up to ${formatTime(history.now)}, updated each minute. ` +
      'A gap is a minute not known (before the channel kept history).'
  }
}
