// "Chat": a playground on the network's chat models through this node's OpenAI-compatible /v1, streamed
// token by token, with the node that served the answer and the time to its first token.
import { callRaw, errorText } from './api.ts'
import { h, fill, setText } from './dom.ts'
import { shortId } from './format.ts'
import type { Poller, Snapshot } from './state.ts'
import { sseData } from './sse.ts'
import type { OpenAiModel } from './types.ts'

interface Message { role: 'user' | 'assistant', content: string }

export function mountChat (root: HTMLElement, poller: Poller): void {
  const select = h('select', { id: 'chat-model', name: 'model', required: true })
  const key = h('input', { id: 'chat-key', name: 'key', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'sk-aicn-…' })
  const keyHint = h('span', { class: 'hint', id: 'chat-key-hint' })
  key.setAttribute('aria-describedby', 'chat-key-hint')
  const log = h('ol', { id: 'chat-log', class: 'chat-log', 'aria-label': 'Conversation' })
  const input = h('textarea', { id: 'chat-input', name: 'message', rows: 3, placeholder: 'Ask something. Enter sends, Shift+Enter starts a new line.', required: true })
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send')
  const stop = h('button', { type: 'button', hidden: true }, 'Stop')
  const clear = h('button', { type: 'button' }, 'New chat')
  const status = h('p', { class: 'muted', role: 'status', id: 'chat-status' })
  const form = h('form', { class: 'chat-form', 'aria-labelledby': 'h-chat' },
    h('div', { class: 'row' },
      h('label', { for: 'chat-model' }, 'Model', select),
      h('label', { for: 'chat-key' }, 'API key', key, keyHint)),
    log,
    h('label', { for: 'chat-input', class: 'block' }, 'Message', input),
    h('div', { class: 'row actions' }, send, stop, clear, status))
  fill(root, h('h2', { id: 'h-chat' }, 'Chat playground'), h('section', { class: 'card' }, form))

  const history: Message[] = []
  let running: AbortController | undefined
  let modelsSeen = ''

  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault()
      form.requestSubmit()
    }
  })
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    const text = input.value.trim()
    if (text === '' || running !== undefined || select.value === '') return
    input.value = ''
    void ask(text)
  })
  stop.addEventListener('click', () => { running?.abort() })
  clear.addEventListener('click', () => {
    running?.abort()
    history.length = 0
    log.replaceChildren()
    setText(status, '')
    input.focus()
  })

  poller.subscribe((s) => { onSnapshot(s) })

  function onSnapshot (s: Snapshot): void {
    if (s.status !== undefined) {
      key.required = s.status.keys_required
      setText(keyHint, s.status.keys_required ? 'required on this node' : 'optional here: this node serves keyless local use')
    }
    // /v1/models again only when the set of models in the network changed.
    const names = (s.network?.nodes ?? []).flatMap((n) => n.projects.flatMap((p) => p.models.map((m) => `${p.project}/${m.model}/${String(m.available)}/${String(n.fresh)}`))).sort().join('\n')
    if (names === modelsSeen) return
    modelsSeen = names
    void loadModels()
  }

  async function loadModels (): Promise<void> {
    let models: OpenAiModel[]
    try {
      const answer = await callRaw<{ data?: OpenAiModel[] }>('/v1/models')
      models = (Array.isArray(answer.data) ? answer.data : []).filter((m) => m.type === 0 && typeof m.id === 'string')
    } catch (err) {
      setText(status, `Could not list the models: ${errorText(err)}`)
      return
    }
    const chosen = select.value
    fill(select, ...(models.length === 0 ? [h('option', { value: '' }, 'no chat model in the network')] : models.map((m) => h('option', { value: m.id }, `${m.id} (${m.nodes} node${m.nodes === 1 ? '' : 's'})`))))
    if (models.some((m) => m.id === chosen)) select.value = chosen
  }

  async function ask (text: string): Promise<void> {
    history.push({ role: 'user', content: text })
    log.append(h('li', { class: 'msg user' }, h('span', { class: 'who' }, 'You'), h('div', { class: 'text' }, text)))
    const answer = h('div', { class: 'text', 'aria-busy': 'true' })
    const meta = h('div', { class: 'meta' }, 'waiting for the first token…')
    const item = h('li', { class: 'msg assistant' }, h('span', { class: 'who' }, select.value), answer, meta)
    log.append(item)
    item.scrollIntoView({ block: 'end' })
    const controller = new AbortController()
    running = controller
    send.disabled = true
    stop.hidden = false
    setText(status, '')
    const started = performance.now()
    let reply = ''
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' }
      if (key.value.trim() !== '') headers.authorization = `Bearer ${key.value.trim()}`
      const response = await fetch('/v1/chat/completions', {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: select.value, messages: history, stream: true }),
        signal: controller.signal,
        cache: 'no-store'
      })
      const node = response.headers.get('x-aicn-node') ?? ''
      if (!response.ok || response.body === null) throw new Error(await errorOf(response))
      let firstMs: number | undefined
      let chunks = 0
      const served = node === '' ? '' : `served by ${shortId(node)}`
      meta.title = node
      for await (const data of sseData(response.body, controller.signal)) {
        const piece = deltaOf(data)
        if (piece === undefined) continue
        chunks++
        firstMs ??= performance.now() - started
        reply += piece
        answer.textContent = reply
        setText(meta, [served, `first token after ${Math.round(firstMs)} ms`].filter((x) => x !== '').join(' · '))
      }
      const total = Math.round(performance.now() - started)
      setText(meta, [served, firstMs === undefined ? 'no tokens' : `first token after ${Math.round(firstMs)} ms`, `${chunks} chunks in ${total} ms`].filter((x) => x !== '').join(' · '))
      item.dataset.node = node
      item.classList.add('done')
    } catch (err) {
      const aborted = controller.signal.aborted
      item.classList.add(aborted ? 'done' : 'failed')
      setText(meta, aborted ? 'stopped' : errorText(err))
    } finally {
      // A turn without an answer is left out of the conversation the model sees next time.
      if (reply !== '') history.push({ role: 'assistant', content: reply })
      else history.pop()
      answer.removeAttribute('aria-busy')
      running = undefined
      send.disabled = false
      stop.hidden = true
      input.focus()
    }
  }
}

/** The text of one chunk, or undefined for chunks without any (role-only, usage); throws on an error event. */
function deltaOf (data: string): string | undefined {
  let parsed: { choices?: Array<{ delta?: { content?: unknown } }>, error?: { message?: unknown } }
  try { parsed = JSON.parse(data) } catch { return undefined }
  if (parsed.error !== undefined) throw new Error(typeof parsed.error.message === 'string' ? parsed.error.message : 'the stream failed')
  const content = parsed.choices?.[0]?.delta?.content
  return typeof content === 'string' && content !== '' ? content : undefined
}

async function errorOf (response: Response): Promise<string> {
  const body = await response.json().catch(() => undefined) as { error?: { message?: unknown } } | undefined
  const message = typeof body?.error?.message === 'string' ? body.error.message : `HTTP ${response.status}`
  return response.status === 401 ? `${message} — enter a key from the Keys tab` : message
}
