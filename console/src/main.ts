// The console's entry: the theme, the sections (one visible at a time, chosen by the URL's #fragment so
// the back button and links work), the live status line, and the poller that feeds every panel.
import { byId, setText } from './dom.ts'
import { shortId } from './format.ts'
import { mountChat } from './chat.ts'
import { mountKeysPanel } from './keys-panel.ts'
import { mountModelsPanel } from './models-panel.ts'
import { mountNetworkPanel } from './network-panel.ts'
import { mountNodePanel } from './node-panel.ts'
import { Poller } from './state.ts'
import { initTheme } from './theme.ts'

const VIEWS = ['node', 'network', 'models', 'chat', 'keys'] as const
type View = typeof VIEWS[number]

initTheme(byId<HTMLButtonElement>('theme'))
const poller = new Poller()
mountNodePanel(byId('view-node'), poller)
mountNetworkPanel(byId('view-network'), poller)
mountModelsPanel(byId('view-models'), poller)
mountChat(byId('view-chat'), poller)
const keys = mountKeysPanel(byId('view-keys'))
let admin = false

function current (): View {
  const wanted = location.hash.replace(/^#\/?/, '')
  const view = (VIEWS as readonly string[]).includes(wanted) ? wanted as View : 'node'
  return view === 'keys' && !admin ? 'node' : view
}

function show (): void {
  const view = current()
  for (const name of VIEWS) {
    byId(`view-${name}`).hidden = name !== view
    const link = byId(`nav-${name}`)
    if (name === view) link.setAttribute('aria-current', 'page')
    else link.removeAttribute('aria-current')
  }
  if (view === 'keys') void keys.refresh()
}

window.addEventListener('hashchange', show)
poller.subscribe((s) => {
  const live = byId('live')
  if (s.error !== '') {
    live.className = 'live down'
    setText(live, `node not answering: ${s.error}`)
  } else {
    live.className = 'live up'
    setText(live, 'live')
  }
  if (s.status === undefined) return
  setText(byId('node-short'), shortId(s.status.peer_id))
  byId('node-short').title = s.status.peer_id
  document.title = `aicn ${shortId(s.status.peer_id)}`
  if (admin !== s.status.admin) {
    admin = s.status.admin
    byId('nav-keys').hidden = !admin
    show()
  } else if (admin && current() === 'keys') {
    void keys.refresh()
  }
})
show()
poller.start()
