// HTTP metrics. The route label is the route's declared path (or 'unmatched'), never the request URL, so
// random URLs cannot blow up the number of series.
import type { Context, Middleware, Next } from 'koa'
import { Counter, Gauge, Histogram, register as defaultRegister, type Registry } from 'prom-client'
import type { Logger } from '../core/logger.ts'

export interface HttpMetrics {
  duration: Histogram<'method' | 'route' | 'status'>
  requests: Counter<'method' | 'route' | 'status'>
  inFlight: Gauge
  /** 4xx answers of the OpenAI-compatible gateway (401 key, 402 balance, 403 model, 429 limits, …) */
  gatewayRejections: Counter<'status'>
}

const LABELS = ['method', 'route', 'status'] as const

// Several servers in one process (tests, or an API and a gateway server) share one registry; prom-client
// throws on a second registration of the same name, so each registry gets its metrics once.
const cache = new WeakMap<Registry, HttpMetrics>()

export function httpMetrics (registry: Registry = defaultRegister): HttpMetrics {
  const cached = cache.get(registry)
  if (cached !== undefined) return cached
  const metrics: HttpMetrics = {
    duration: existing(registry, 'aicn_http_request_duration_seconds') ?? new Histogram({
      name: 'aicn_http_request_duration_seconds',
      help: 'Time from receiving an HTTP API request until its response is finished',
      labelNames: LABELS,
      // AI requests take seconds to minutes, so the buckets reach further than prom-client's defaults.
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers: [registry]
    }),
    requests: existing(registry, 'aicn_http_requests_total') ?? new Counter({
      name: 'aicn_http_requests_total',
      help: 'HTTP API requests answered',
      labelNames: LABELS,
      registers: [registry]
    }),
    inFlight: existing(registry, 'aicn_http_requests_in_flight') ?? new Gauge({
      name: 'aicn_http_requests_in_flight',
      help: 'HTTP API requests being processed now',
      registers: [registry]
    }),
    gatewayRejections: existing(registry, 'aicn_gateway_rejections_total') ?? new Counter({
      name: 'aicn_gateway_rejections_total',
      help: 'OpenAI-compatible gateway requests answered 4xx, by status (402 balance, 429 limits, 401 key, …)',
      labelNames: ['status'],
      registers: [registry]
    })
  }
  cache.set(registry, metrics)
  return metrics
}

// Also covers metrics registered by another copy of this module (e.g. tests loading both src and dist).
function existing<T> (registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined
}

/** The outermost middleware: counts and times every answer, including streamed bodies to their end and
 * requests whose client left (status 499, nginx's "client closed request"). */
export function observe (metrics: HttpMetrics, log: Logger, onEnd: () => void): Middleware {
  return async (ctx: Context, next: Next) => {
    const started = process.hrtime.bigint()
    metrics.inFlight.inc()
    // 'close' fires both after a normal finish and when the client goes away; it is the one event that
    // covers streamed bodies to their end.
    ctx.res.once('close', () => {
      metrics.inFlight.dec()
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      const status = ctx.res.headersSent ? String(ctx.res.statusCode) : '499'
      const route = (ctx as Context & { _matchedRoute?: string })._matchedRoute
      const labels = { method: ctx.method, route: typeof route === 'string' ? route : 'unmatched', status }
      metrics.duration.observe(labels, seconds)
      metrics.requests.inc(labels)
      // Status is one of at most 100 4xx values; the route is a declared path, never the URL.
      if (labels.route.startsWith('/v1/') || labels.route.startsWith('/api/v1/')) {
        if (status.length === 3 && status.startsWith('4') && status !== '499') metrics.gatewayRejections.inc({ status })
      }
      log.debug({ method: ctx.method, path: ctx.path, status: Number(status), ms: Math.round(seconds * 1000) }, 'http request')
      onEnd()
    })
    await next()
  }
}
