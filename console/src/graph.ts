// The network as a picture: this node in the middle, the nodes it is connected to on the inner rings
// (joined to it by a line; dashed when only relayed), the nodes it has only heard of through heartbeats on
// the outer rings. Rings hold as many nodes as fit, so hundreds of nodes stay apart; labels are drawn only
// while they fit, every node has a tooltip, and each is a keyboard-reachable button (Enter: host info).
import { svg, syncChildren, setText } from './dom.ts'
import { latency, shortId, ago, CONNECTIVITY } from './format.ts'
import type { ViewNode } from './types.ts'

const MIN_WIDTH = 900
const MIN_HEIGHT = 240
const SPACING = 34
const RING_GAP = 56
const FIRST_RING = 130
const LABEL_LIMIT = 24
/** up to this many nodes, each also shows its models' names */
const DETAIL_LIMIT = 12

interface Placed { node: ViewNode, x: number, y: number, linked: boolean, dashed: boolean }

export class NetworkGraph {
  readonly element: SVGSVGElement
  readonly #links: SVGGElement
  readonly #nodes: SVGGElement
  readonly #open: (nodeId: string) => void

  constructor (open: (nodeId: string) => void) {
    this.#open = open
    this.#links = svg('g', { class: 'links' })
    this.#nodes = svg('g', { class: 'nodes' })
    this.element = svg('svg', { class: 'graph', role: 'group', 'aria-label': 'Network map: this node in the middle, connected nodes on the inner rings, nodes known from heartbeats outside', viewBox: `0 0 ${MIN_WIDTH} ${MIN_HEIGHT}` }, this.#links, this.#nodes)
  }

  render (nodes: ViewNode[]): void {
    const placed = layout(nodes)
    // The picture grows with the rings; CSS scales it to the panel's width.
    const cx = Math.ceil(Math.max(MIN_WIDTH / 2, ...placed.map((p) => Math.abs(p.x) + 70)))
    const cy = Math.ceil(Math.max(MIN_HEIGHT / 2, ...placed.map((p) => Math.abs(p.y) + 45)))
    this.element.setAttribute('viewBox', `0 0 ${2 * cx} ${2 * cy}`)
    const self = placed[0]
    const links = placed.filter((p) => p.linked)
    syncChildren(this.#links, links, (p) => p.node.node_id, () => svg('line', {}), (line, p) => {
      line.setAttribute('x1', String(cx + self.x))
      line.setAttribute('y1', String(cy + self.y))
      line.setAttribute('x2', String(cx + p.x))
      line.setAttribute('y2', String(cy + p.y))
      line.setAttribute('class', p.dashed ? 'link relayed' : 'link')
    })
    const labels = placed.length <= LABEL_LIMIT
    syncChildren(this.#nodes, placed, (p) => p.node.node_id, (p) => this.#createNode(p.node), (g, p) => {
      const n = p.node
      g.setAttribute('transform', `translate(${(cx + p.x).toFixed(1)} ${(cy + p.y).toFixed(1)})`)
      const hasModels = n.projects.some((pr) => pr.models.length > 0)
      g.setAttribute('class', ['node', n.self ? 'self' : '', hasModels ? 'serves' : '', n.fresh || n.self ? '' : 'stale', n.busy > 0 ? 'busy' : '', n.role === 'input' ? 'input' : ''].filter((c) => c !== '').join(' '))
      const models = n.projects.flatMap((pr) => pr.models.map((m) => m.model))
      const summary = `${n.self ? 'this node ' : ''}${n.node_id}, ${n.role}, ${CONNECTIVITY[n.connectivity] ?? 'unknown'}, latency ${latency(n.latency_us)}, busy ${n.busy}, heard ${ago(n.last_heard_ms)}${models.length > 0 ? `, models: ${models.join(', ')}` : ''}`
      g.setAttribute('aria-label', summary)
      setText(g.querySelector('title')!, summary)
      const [label, sub] = Array.from(g.querySelectorAll('text'))
      setText(label, labels ? (n.self ? 'this node' : shortId(n.node_id)) : '')
      const names = [...new Set(models)].join(', ')
      setText(sub, labels && placed.length <= DETAIL_LIMIT ? (names.length > 28 ? `${names.slice(0, 27)}…` : names) : '')
    })
  }

  #createNode (n: ViewNode): SVGGElement {
    const open = (): void => { this.#open(n.node_id) }
    return svg('g', {
      tabindex: 0,
      role: 'button',
      onclick: open,
      onkeydown: ((e: KeyboardEvent) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); open() } }) as EventListener
    },
    svg('title'),
    svg('circle', { class: 'halo', r: n.self ? 19 : 13 }),
    svg('circle', { class: 'dot', r: n.self ? 13 : 8 }),
    svg('text', { y: n.self ? 32 : 24, 'text-anchor': 'middle' }),
    svg('text', { y: n.self ? 45 : 37, 'text-anchor': 'middle', class: 'sub' }))
  }
}

/** Positions relative to the centre: this node at (0, 0), then rings. */
function layout (nodes: ViewNode[]): Placed[] {
  const self = nodes.find((n) => n.self) ?? nodes[0]
  const others = nodes.filter((n) => n !== self).sort((a, b) => a.node_id.localeCompare(b.node_id))
  const connected = others.filter((n) => n.connectivity !== 0)
  const heard = others.filter((n) => n.connectivity === 0)
  const out: Placed[] = self === undefined ? [] : [{ node: self, x: 0, y: 0, linked: false, dashed: false }]
  let radius = 0
  for (const group of [connected, heard]) {
    let index = 0
    while (index < group.length) {
      radius += radius === 0 ? FIRST_RING : RING_GAP
      const capacity = Math.max(6, Math.floor((2 * Math.PI * radius) / SPACING))
      const ring = group.slice(index, index + capacity)
      // Rings are offset a little from each other so spokes of successive rings do not line up.
      const offset = (radius / RING_GAP) * 0.37
      ring.forEach((node, i) => {
        const angle = offset + (2 * Math.PI * i) / ring.length - Math.PI / 2
        out.push({ node, x: radius * Math.cos(angle), y: radius * Math.sin(angle) * 0.82, linked: node.connectivity !== 0, dashed: node.connectivity === 4 })
      })
      index += ring.length
    }
  }
  return out
}
