// A message over 8 MiB comes without its frames: its size, and a download link per frame (the
// first MAX_LARGE_FRAMES). A frame is read with the token, so through fetch, then saved as a file.

import type { ApiLargeMessage } from '../../../shared/api-types'
import { describe, getBlob, type TokenSource } from './api'
import { element } from './dom'
import { formatBytes, formatCount } from './format'

/** Frames of a large message listed with a download link each; a note says how many more. */
const MAX_LARGE_FRAMES = 20

/** How long a saved frame's object URL is kept: the browser has taken the file by then. */
const REVOKE_AFTER_MS = 60_000

/**
 * What the frames cell holds for a large message: the note of its size, and the frames' links.
 * The answer is not checked against the schema: a field missing or of another type is left out.
 */
export function largeMessage(message: ApiLargeMessage, token: TokenSource): HTMLElement[] {
  const sizes = Array.isArray(message.frameSizes) ? message.frameSizes : []
  const count = typeof message.frameCount === 'number' ? message.frameCount : sizes.length
  const note = element(
    'p',
    `Large message, not shown: ${formatBytes(message.size)} in ${formatCount(count)}` +
      (count === 1 ? ' frame.' : ' frames.'),
    'muted large',
  )
  // Our own API writes it; still, only a path under /v1/channels becomes a link.
  const base = message.framesUrl
  if (typeof base !== 'string' || !/^\/v1\/channels\/[^?#]+\/frames$/.test(base)) return [note]
  const frames = element('ol', undefined, 'frames')
  sizes.slice(0, MAX_LARGE_FRAMES).forEach((size, index) => {
    const item = element('li', undefined, 'frame')
    item.dataset.kind = 'large'
    item.append(element('span', `${formatCount(size)} bytes `, 'muted'))
    const link = element('a', 'download')
    link.href = `${base}/${index}`
    link.download = `message-${message.seq}-frame-${index}.bin`
    link.addEventListener('click', (event) => {
      event.preventDefault()
      void download(link, item, token)
    })
    item.append(link)
    frames.append(item)
  })
  if (sizes.length > MAX_LARGE_FRAMES) {
    const more = `… ${formatCount(sizes.length - MAX_LARGE_FRAMES)} more frames`
    frames.append(element('li', more, 'muted'))
  }
  return [note, frames]
}

/** Fetches the link's frame with the token and saves it; the item says how it went. */
async function download(link: HTMLAnchorElement, item: HTMLLIElement, token: TokenSource) {
  const status =
    item.querySelector('.download-status') ?? element('span', undefined, 'download-status muted')
  status.textContent = ' downloading…'
  item.append(status)
  try {
    const url = URL.createObjectURL(await getBlob(link.href, token()))
    const save = element('a')
    save.href = url
    save.download = link.download
    save.click()
    setTimeout(() => URL.revokeObjectURL(url), REVOKE_AFTER_MS)
    status.textContent = ''
  } catch (error) {
    status.textContent = ` download failed: ${describe(error)}`
  }
}
