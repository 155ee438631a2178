// How many TCP connections an HTTP listener holds, in all and per client address. Without a bound, one
// client opening ~20,000 idle connections took every file descriptor of the process (the soft limit
// here): the web listener stopped answering, and libp2p and the databases could not open sockets or
// files either (docs/reliability.md "HTTP connection floods"). An idle connection is closed after
// 30 s without complete headers (src/api/listener.ts), so a flood must be held open continuously.
//
// - API.MaxConnections per listener: beyond it node:http closes a new connection at once ('drop').
// - API.MaxConnectionsPerIP per client address (an IPv6 client counts by its /64, which one host
//   usually has whole): beyond it the new connection is closed. Loopback clients are not counted per
//   address: they are this machine (the operator's tools, a reverse proxy), bounded by the first limit.
import type { Server } from 'node:http'
import { isIPv6, type Socket } from 'node:net'
import type { Logger } from '../core/logger.ts'
import { DEFAULT_API_CONNECTIONS } from '../config/defaults.ts'
import type { Config } from '../config/types.ts'

export interface ConnectionLimits {
  /** connections one listener holds at most */
  perListener: number
  /** connections from one client address (IPv6: one /64) at most; loopback not counted */
  perAddress: number
}

export const DEFAULT_CONNECTION_LIMITS = connectionLimitsOf(DEFAULT_API_CONNECTIONS)

/** The limits a config asks for (API.MaxConnections, API.MaxConnectionsPerIP). */
export function connectionLimitsOf (api: Pick<Config['API'], 'MaxConnections' | 'MaxConnectionsPerIP'>): ConnectionLimits {
  return { perListener: api.MaxConnections, perAddress: api.MaxConnectionsPerIP }
}

/** Refusals are logged at most this often (a flood must not become a flood of log lines). */
const LOG_EVERY_MS = 60_000

/** Applies `limits` to `server`; returns the count of refused connections (for tests and metrics). */
export function limitConnections (server: Server, limits: ConnectionLimits, name: string, logger: Logger): { refused: () => number } {
  let refused = 0
  let lastLog = -Infinity
  const refuse = (why: string, address: string | undefined): void => {
    refused++
    const now = performance.now()
    if (now - lastLog < LOG_EVERY_MS) return
    lastLog = now
    logger.warn({ listener: name, address, refusedSoFar: refused }, `HTTP connection refused: ${why}`)
  }
  server.maxConnections = limits.perListener
  server.on('drop', (data?: { remoteAddress?: string }) => { refuse(`${name} holds API.MaxConnections (${limits.perListener}) already`, data?.remoteAddress) })

  const perAddress = new Map<string, number>()
  server.on('connection', (socket: Socket) => {
    const key = addressKey(socket.remoteAddress)
    if (key === undefined) return
    const held = perAddress.get(key) ?? 0
    if (held >= limits.perAddress) {
      refuse(`${key} holds API.MaxConnectionsPerIP (${limits.perAddress}) already`, socket.remoteAddress)
      socket.destroy()
      return
    }
    perAddress.set(key, held + 1)
    socket.once('close', () => {
      const left = (perAddress.get(key) ?? 1) - 1
      if (left <= 0) perAddress.delete(key)
      else perAddress.set(key, left)
    })
  })
  return { refused: () => refused }
}

/** The address a client's connections are counted under; undefined for loopback (not counted). */
export function addressKey (remote: string | undefined): string | undefined {
  if (remote === undefined || remote === '') return undefined
  const v4 = /^(?:::ffff:)?(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(remote)?.[1]
  if (v4 !== undefined) return v4.startsWith('127.') ? undefined : v4
  if (!isIPv6(remote)) return remote
  if (remote === '::1') return undefined
  return `${ipv6Groups(remote).slice(0, 4).join(':')}::/64`
}

/** The eight 16-bit groups of an IPv6 address, zeros filled in ("2001:db8::1" → 2001 db8 0 0 0 0 0 1). */
function ipv6Groups (address: string): string[] {
  const [head, tail] = address.split('%')[0].toLowerCase().split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const zeros = tail === undefined ? [] : new Array<string>(8 - left.length - right.length).fill('0')
  return [...left, ...zeros, ...right].map((g) => g.replace(/^0+(?=.)/, ''))
}
