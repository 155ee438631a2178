// What a node has started, to be stopped in reverse order: on stop(), or when a later start step fails
// (src/node/node.ts). libp2p stops its own services; this list holds everything around it.
import type { Logger } from '../core/logger.ts'

interface StopStep { name: string, run: () => Promise<void> | void }

export class StopSteps {
  private readonly steps: StopStep[] = []

  /** Records that `name` started; `run` stops it. */
  add (name: string, run: StopStep['run']): void {
    this.steps.push({ name, run })
  }

  /** Runs the steps last-first, once each; a failing step is logged and the rest still run. */
  async runAll (log: Logger): Promise<void> {
    for (const step of this.steps.splice(0).reverse()) {
      try { await step.run() } catch (err) { log.warn({ err: (err as Error).message }, `stopping ${step.name} failed`) }
    }
  }
}
