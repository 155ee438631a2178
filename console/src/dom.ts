// Building the page: every piece of text goes in through textContent (or an attribute), never as markup,
// because node ids, model names and answers come from the network.

type Child = Node | string | number | null | undefined | false
type Attrs = Record<string, string | number | boolean | undefined | null | EventListener>

/** An HTML element: `h('button', { type: 'button', onclick: f }, 'Save')`. Attributes whose value is
 * false, null or undefined are left out; `on…` attributes become event listeners. */
export function h<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

const SVG_NS = 'http://www.w3.org/2000/svg'

export function svg<K extends keyof SVGElementTagNameMap> (tag: K, attrs: Attrs = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

function setAttrs (el: Element, attrs: Attrs): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (typeof value === 'function') el.addEventListener(name.slice(2), value)
    else el.setAttribute(name, value === true ? '' : String(value))
  }
}

function append (el: Element, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue
    el.append(typeof child === 'number' ? String(child) : child)
  }
}

/** Replaces everything inside `el`. */
export function fill (el: Element, ...children: Child[]): void {
  el.replaceChildren()
  append(el, children)
}

export function byId<T extends HTMLElement = HTMLElement> (id: string): T {
  const el = document.getElementById(id)
  if (el === null) throw new Error(`the page has no #${id}`)
  return el as T
}

/**
 * Makes `parent`'s children one element per item, in order, reusing the element made for the same key
 * last time (so focus and scroll stay put while the data refreshes): `create` makes a new one, `update`
 * refreshes one (new or reused) from its item.
 */
export function syncChildren<T, E extends HTMLElement | SVGElement> (parent: Element, items: T[], key: (item: T) => string, create: (item: T) => E, update: (el: E, item: T) => void): void {
  const existing = new Map<string, E>()
  for (const child of Array.from(parent.children)) {
    const k = (child as HTMLElement).dataset.key
    if (k !== undefined) existing.set(k, child as E)
  }
  let cursor: Element | null = parent.firstElementChild
  for (const item of items) {
    const k = key(item)
    let el = existing.get(k)
    if (el === undefined) {
      el = create(item)
      el.dataset.key = k
    } else {
      existing.delete(k)
    }
    update(el, item)
    if (el !== cursor) parent.insertBefore(el, cursor)
    else cursor = cursor.nextElementSibling
  }
  for (const stale of existing.values()) stale.remove()
}

/** Sets text only when it changed (keeps screen readers and selections calm). */
export function setText (el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text
}

/** A table head: one column header per title, right-aligned for the numeric ones. */
export function head (titles: string[], numeric: string[] = []): HTMLTableSectionElement {
  return h('thead', {}, h('tr', {}, ...titles.map((t) => h('th', { scope: 'col', class: numeric.includes(t) ? 'num' : undefined }, t))))
}
