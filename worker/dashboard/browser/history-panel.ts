// The chosen channel's "Last hour": its charts (./chart-figure.ts of ./history-charts.ts), read
// from GET /v1/channels/:channel/history when the channel is shown and again once a minute, at
// the first poll past half a minute (the history changes a minute at a time: reading it at every
// 5 s poll would only repeat the answer). One read at a time; a read is aborted when the channel
// is left, fails in the listing, or the session ends, and its answer dropped if it comes after.

import { type ChannelHistory, describe, getJson } from './api'
import type { Session } from './channel-detail'
import { chartFigure } from './chart-figure'
import { formatTime } from './format'
import { historyCharts } from './history-charts'

const MINUTE_MS = 60_000

/**
 * How far into each minute the history is read again: the current minute then has run half of
 * it, so its rate is not a count over the first second or two, spiking the chart and its axis.
 */
const READ_OFFSET_MS = 30_000

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
  /** The channel last read, and the minute (page clock, shifted by READ_OFFSET_MS) of the read. */
  #lastRead: { name: string; minute: number } | undefined

  constructor(ui: HistoryElements, session: Session) {
    this.#ui = ui
    this.#session = session
  }

  /**
   * Reads channel `name`'s history unless it was read since the last half minute past (or is
   * being read): called at each poll, it reads at most once a minute.
   */
  refresh(name: string): void {
    if (this.#load) return
    const minute = Math.floor((Date.now() - READ_OFFSET_MS) / MINUTE_MS)
    if (this.#lastRead?.name === name && this.#lastRead.minute === minute) return
    // Failed or not, the next read is in the next minute: a failing Worker is not asked more.
    this.#lastRead = { name, minute }
    void this.#loadHistory(name)
  }

  /** Forgets the charts and stops a read (another channel is shown, or none). */
  clear(): void {
    this.#load?.abort()
    this.#load = undefined
    this.#lastRead = undefined
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
    let figures: HTMLElement[]
    try {
      figures = historyCharts(history).map(chartFigure)
    } catch (error) {
      // An answer not of the API's shape (a proxy's page, a Worker of another version).
      ui.note.textContent = `The last hour could not be shown: ${describe(error)}`
      return
    }
    ui.charts.replaceChildren(...figures)
    ui.charts.dataset.now = history.now
    ui.note.textContent =
      `A value a minute, up to ${formatTime(history.now)}, updated each minute. ` +
      'A gap is a minute not known (before the channel kept history, or before a group existed).'
  }
}
