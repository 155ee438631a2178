// "Network": every node this node knows (its view, plus connected peers without heartbeats yet) as a
// picture and as a table, refreshed by the poller without reloading.
import { fill, h, head, setText, syncChildren } from './dom.ts'
import { ago, latency, shortId, CONNECTIVITY } from './format.ts'
import { NetworkGraph } from './graph.ts'
import { showHostInfo } from './host-dialog.ts'
import type { Poller, Snapshot } from './state.ts'
import type { ViewNode } from './types.ts'

export function mountNetworkPanel (root: HTMLElement, poller: Poller): void {
  const summary = h('p', { class: 'summary', id: 'network-summary', role: 'status' })
  const graph = new NetworkGraph(showHostInfo)
  const rows = h('tbody')
  fill(root,
    h('h2', { id: 'h-network' }, 'Network'),
    summary,
    h('section', { class: 'card', 'aria-labelledby': 'h-map' },
      h('h3', { id: 'h-map' }, 'Map'),
      graph.element,
      h('ul', { class: 'legend', 'aria-label': 'Legend' },
        h('li', {}, h('span', { class: 'key self' }), 'this node'),
        h('li', {}, h('span', { class: 'key serves' }), 'serves models'),
        h('li', {}, h('span', { class: 'key plain' }), 'no models'),
        h('li', {}, h('span', { class: 'key input' }), 'input node'),
        h('li', {}, h('span', { class: 'key busy' }), 'busy'),
        h('li', {}, h('span', { class: 'key stale' }), 'not heard lately'),
        h('li', {}, h('span', { class: 'key line' }), 'connection'))),
    h('section', { class: 'card', 'aria-labelledby': 'h-nodes' },
      h('h3', { id: 'h-nodes' }, 'Nodes'),
      h('div', { class: 'table-wrap' }, h('table', { id: 'network-nodes' },
        head(['Node', 'Role', 'Connectivity', 'Latency', 'Busy', 'Last heard', 'Version', 'Projects and models', ''], ['Latency', 'Busy']),
        rows)))
  )
  poller.subscribe((s) => { render(s) })

  function render (s: Snapshot): void {
    const network = s.network
    if (network === undefined) return
    const connected = network.nodes.filter((n) => !n.self && n.connectivity !== 0).length
    const serving = network.nodes.filter((n) => n.projects.some((p) => p.models.length > 0)).length
    setText(summary, `${network.nodes.length + network.more} nodes known, ${connected} connected directly, ${serving} serving models.${network.more > 0 ? ` The first ${network.nodes.length} are shown.` : ''}`)
    graph.render(network.nodes)
    syncChildren(rows, network.nodes, (n) => n.node_id, createRow, updateRow)
  }
}

function createRow (n: ViewNode): HTMLTableRowElement {
  return h('tr', {},
    h('th', { scope: 'row', class: 'mono', title: n.node_id }, n.self ? `${shortId(n.node_id)} (this node)` : shortId(n.node_id)),
    h('td'), h('td'), h('td', { class: 'num' }), h('td', { class: 'num' }), h('td'), h('td'), h('td', { class: 'models-cell' }),
    h('td', {}, h('button', { type: 'button', class: 'small', 'aria-label': `Host information of node ${n.node_id}`, onclick: () => { showHostInfo(n.node_id) } }, 'Host')))
}

function updateRow (tr: HTMLTableRowElement, n: ViewNode): void {
  const c = tr.children
  tr.classList.toggle('stale', !n.fresh && !n.self)
  setText(c[1], n.role)
  setText(c[2], n.self ? '—' : CONNECTIVITY[n.connectivity] ?? String(n.connectivity))
  setText(c[3], latency(n.latency_us))
  setText(c[4], String(n.busy))
  setText(c[5], ago(n.last_heard_ms))
  setText(c[6], n.version === '' ? '—' : n.version)
  const models = n.projects.flatMap((p) => p.models.map((m) => `${p.project}/${m.model}${m.available ? '' : ' (down)'}`))
  setText(c[7], models.length === 0 ? '—' : models.join(', '))
}
