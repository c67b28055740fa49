// A message as a row of the messages table: seq, time received, peer and frames. A frame that is
// UTF-8 is shown as text (cut after MAX_TEXT characters), a binary one as the hex of its start.
// Message content is untrusted: it only ever reaches the page as text.

import type { ApiInlineMessage, ApiMessage } from '../../../shared/api-types'
import type { TokenSource } from './api'
import { element } from './dom'
import { formatCount, formatTime, hexOf } from './format'
import { largeMessage } from './large-message'

/** Characters of a text frame shown; a note says how many more it has. */
const MAX_TEXT = 2000

/** The message's row; `token` is read when a frame of a large message is downloaded. */
export function messageRow(message: ApiMessage, token: TokenSource): HTMLTableRowElement {
  const tr = element('tr')
  tr.dataset.seq = String(message.seq)
  tr.append(element('td', String(message.seq), 'number'))
  const received = element('td', formatTime(message.receivedAt))
  received.title = message.receivedAt
  tr.append(received)
  const peer = element('td')
  peer.append(element('code', message.peer.address), ` ${message.peer.mechanism}`)
  if (message.peer.keyName !== undefined) {
    peer.append(' ', element('strong', message.peer.keyName, 'key-name'))
  }
  if (message.peer.publicKey) {
    const key = element('code', ` ${message.peer.publicKey.slice(0, 10)}…`)
    key.title = message.peer.publicKey
    peer.append(key)
  }
  tr.append(peer)
  const cell = element('td')
  if (isInline(message)) {
    const frames = element('ol', undefined, 'frames')
    const binary = new Set(message.binaryFrames || [])
    message.frames.forEach((frame, index) => {
      frames.append(frameItem(frame, binary.has(index)))
    })
    cell.append(frames)
  } else {
    cell.append(...largeMessage(message, token))
  }
  tr.append(cell)
  return tr
}

/** Whether the message came with its frames (a large one has `frames: null`). */
function isInline(message: ApiMessage): message is ApiInlineMessage {
  return Array.isArray(message.frames)
}

function frameItem(frame: string, isBinary: boolean): HTMLLIElement {
  const item = element('li', undefined, 'frame')
  if (isBinary) {
    const { size, hex } = hexOf(frame)
    item.dataset.kind = 'binary'
    item.append(element('span', 'binary', 'kind'))
    item.append(element('span', `${formatCount(size)} bytes: `, 'muted'))
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
    const more = `${formatCount(frame.length - MAX_TEXT)} more characters`
    item.append(element('span', ` … ${more}`, 'muted'))
  }
  return item
}
