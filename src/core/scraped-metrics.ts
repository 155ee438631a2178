// Prometheus metrics read from a component's own counts when scraped, instead of updated on every event:
// the rate limits (src/p2p/patches/topic-limit.ts), the job budgets (src/p2p/peer-budget.ts) and the
// refresh forwarding (src/protocols/heartbeat/refresh-forwarding.ts) keep plain numbers.
import { Counter, Gauge, type Registry } from 'prom-client'

/** [name, help, read] of one metric. */
export type ScrapedMetric = [name: string, help: string, read: () => number]

/** Counters whose value is a running total the component keeps (only its growth is added). A name already
 * registered is left alone (a second node in one process shares the first one's). */
export function registerScrapedCounters (registry: Registry, metrics: ScrapedMetric[]): void {
  for (const [name, help, read] of metrics) {
    if (registry.getSingleMetric(name) !== undefined) continue
    let last = 0
    // Constructed for its side effect: it registers itself in `registry`.
    new Counter({ name, help, registers: [registry], collect () { const now = read(); this.inc(Math.max(0, now - last)); last = now } })
  }
}

/** Gauges set to what the component reports at scrape time. */
export function registerScrapedGauges (registry: Registry, metrics: ScrapedMetric[]): void {
  for (const [name, help, read] of metrics) {
    if (registry.getSingleMetric(name) !== undefined) continue
    new Gauge({ name, help, registers: [registry], collect () { this.set(read()) } })
  }
}
