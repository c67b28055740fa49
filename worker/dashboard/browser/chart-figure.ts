// A chart of the channel's last hour as a <figure>: its caption, an SVG drawn by hand (grid lines,
// the axis maximum, the time axis, a step line per series with a dot on its latest value) and a
// legend. Elements are made with createElementNS and their text set with textContent only (the
// page's CSP requires Trusted Types), so a name with markup in it stays text. Colours and dashes
// come from the style sheet, by each line's `series-N` class, so the page's light and dark
// schemes both apply.

import { latestPoint, PLOT, pathData, slotX, stepSegments, VIEW, valueY } from './chart-geometry'
import { element } from './dom'
import { formatChartValue } from './format'
import type { ChartModel } from './history-charts'

const SVG = 'http://www.w3.org/2000/svg'

/** A new SVG element with its attributes (numbers as they are). */
function svgElement<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG, tag)
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value))
  if (text !== undefined) node.textContent = text
  return node
}

/** The figure of `chart`: caption, plot and legend (a value a minute, the last one now). */
export function chartFigure(chart: ChartModel): HTMLElement {
  const figure = element('figure', undefined, 'chart')
  figure.dataset.chart = chart.key
  figure.append(element('figcaption', chart.caption))
  figure.append(chartSvg(chart))
  const legend = element('ul', undefined, 'legend')
  chart.series.forEach((series, index) => {
    const item = element('li')
    item.dataset.series = series.name
    // A sample of the line, drawn as the line is: its colour and its dashes.
    const swatch = svgElement('svg', { viewBox: '0 0 24 8', 'aria-hidden': 'true' })
    swatch.append(
      svgElement('line', { class: `series series-${index}`, x1: 0, x2: 24, y1: 4, y2: 4 }),
    )
    item.append(swatch, element('span', series.name))
    legend.append(item)
  })
  if (chart.series.length > 0) figure.append(legend)
  if (chart.note) figure.append(element('p', chart.note, 'note'))
  return figure
}

function chartSvg(chart: ChartModel): SVGSVGElement {
  const svg = svgElement('svg', {
    class: 'plot',
    viewBox: `0 0 ${VIEW.width} ${VIEW.height}`,
    role: 'img',
    'aria-label': chart.summary,
  })
  const { axis } = chart
  for (const tick of axis.ticks) {
    const y = valueY(tick, axis)
    svg.append(
      svgElement('line', {
        class: tick === 0 ? 'baseline' : 'grid',
        x1: PLOT.left,
        x2: PLOT.right,
        y1: y,
        y2: y,
      }),
    )
  }
  svg.append(
    svgElement(
      'text',
      { class: 'axis', x: PLOT.left, y: PLOT.top - 4 },
      `${formatChartValue(axis.max)}${chart.unit}`,
    ),
  )
  // The time axis: the slots are the minutes, the last one the current minute ("now").
  const minutes = chart.series[0]?.values.length ?? 0
  const timeY = VIEW.height - 6
  if (minutes > 0) {
    svg.append(
      svgElement('text', { class: 'axis', x: PLOT.left, y: timeY }, `−${minutes} min`),
      svgElement(
        'text',
        { class: 'axis', x: slotX(minutes / 2, minutes), y: timeY, 'text-anchor': 'middle' },
        `−${minutes / 2} min`,
      ),
      svgElement('text', { class: 'axis', x: PLOT.right, y: timeY, 'text-anchor': 'end' }, 'now'),
    )
  }
  chart.series.forEach((series, index) => {
    const segments = stepSegments(series.values, axis)
    const path = svgElement('path', { class: `series series-${index}`, d: pathData(segments) })
    path.dataset.series = series.name
    svg.append(path)
    // A dot on the current minute's value: the one the summary reads out, and a lone minute shows.
    const latest = latestPoint(series.values, segments)
    if (latest) {
      svg.append(
        svgElement('circle', {
          class: `latest series-${index}`,
          cx: latest.x,
          cy: latest.y,
          r: 2.5,
        }),
      )
    }
  })
  return svg
}
