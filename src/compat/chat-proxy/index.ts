// The Go node's /chat-proxy/0.0.1 (HTTP/1.1 over a libp2p stream, http-over-stream.ts) as a libp2p
// service: it serves Go requesters from this node's models and sends jobs to Go workers (chat-proxy.ts).
// Give it this node's runner with `serveWith()` before the node starts; libp2p starts and stops it.
//
//   services: { chatProxy: chatProxy({ log, timeoutsMs, budgets }) }   →   host.services.chatProxy.run(…)
import { ChatProxy, type ChatProxyComponents, type ChatProxyOptions } from './chat-proxy.ts'

export { CHAT_PROXY_PROTOCOL, ChatProxy, type ChatProxyComponents, type ChatProxyOptions } from './chat-proxy.ts'

export type ChatProxyInit = ChatProxyOptions

export function chatProxy (init: ChatProxyInit): (components: ChatProxyComponents) => ChatProxy {
  return (components) => new ChatProxy(components, init)
}
