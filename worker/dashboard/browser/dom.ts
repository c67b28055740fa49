// The page's elements, looked up by id and checked, and new elements with their text. Text goes
// in through textContent only: the page's CSP requires Trusted Types, so an HTML sink would
// throw, and a message's content never becomes markup.

/**
 * The page's element `#id`, checked to be a `type` (e.g. HTMLInputElement).
 * @throws when the page has no such element: the script and the markup (../page.ts) disagree.
 */
export function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id)
  if (!(found instanceof type)) {
    const what = found === null ? 'no element' : `a <${found.tagName.toLowerCase()}>`
    throw new Error(`The dashboard expects #${id} to be a ${type.name}; the page has ${what}`)
  }
  return found
}

/** A new `<tag>` holding `text` (as text), with `className` when one is given. */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  if (text !== undefined) node.textContent = text
  if (className) node.className = className
  return node
}
