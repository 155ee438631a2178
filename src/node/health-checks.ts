// Health checks of the model servers registered on this node (src/registry/health.ts): each is probed
// at once and then on a schedule, and its state goes into the local registry, which the heartbeats
// announce. A probe goes only where a job may go: the same address rules (src/models/model-target.ts),
// checked at each probe, with the resolved address pinned.
import type { Logger } from '../core/logger.ts'
import { pinnedLookup, portOf, type ModelTargets } from '../models/model-target.ts'
import { HealthChecker, httpProbeReason } from '../registry/health.ts'
import { applyHealth, watchRegisteredModels } from '../registry/health-sync.ts'
import type { LocalRegistry } from '../registry/local.ts'
import type { StopSteps } from './stop-steps.ts'

export function startHealthChecks (local: LocalRegistry, targets: ModelTargets, log: Logger, steps: StopSteps): HealthChecker {
  const probe = async (url: URL, signal: AbortSignal): Promise<boolean> => {
    const addresses = await targets.addresses(url.hostname, portOf(url)).catch(() => undefined)
    if (addresses === undefined) throw new Error('the address is not one a model may be at (see README, Models and projects)')
    const why = await httpProbeReason(url, signal, pinnedLookup(addresses))
    if (why !== undefined) throw new Error(why)
    return true
  }
  const health = new HealthChecker({ probe }, applyHealth(local, log))
  const unwatch = watchRegisteredModels(local, health, log)
  steps.add('health checks', () => { unwatch(); health.stop() })
  return health
}
