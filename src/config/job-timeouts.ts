// How long a job may run: per kind, from the config's `Jobs.Timeouts` (chat 3 min, images 5 min unless
// the operator says otherwise); a client's own `timeout` on /api/v0 overrides it per request.
import { parseDuration } from '../core/duration.ts'
import { JobKind, type JobTimeouts } from '../core/job-types.ts'
import type { Config } from './types.ts'

export function jobTimeoutsFrom (jobs: Config['Jobs']): JobTimeouts {
  const { Timeouts: t } = jobs
  return {
    [JobKind.CHAT]: parseDuration(t.Chat),
    [JobKind.IMAGE_GEN]: parseDuration(t.ImageGen),
    [JobKind.IMAGE_EDIT]: parseDuration(t.ImageEdit),
    [JobKind.EMBEDDING]: parseDuration(t.Embedding),
    [JobKind.COMPLETION]: parseDuration(t.Completion)
  }
}
