// The shapes every job path shares: the HTTP routes build a JobRequest, a local executor or the job
// protocol turns it into a JobResponse, and the routes write that back to the client.
import type { PeerId } from '@libp2p/interface'

/** What the job asks for; the numbers match JobKind in proto/job.proto and the model types of the registry. */
export const JobKind = { CHAT: 0, IMAGE_GEN: 1, IMAGE_EDIT: 2, EMBEDDING: 3, COMPLETION: 4 } as const
export type JobKindValue = typeof JobKind[keyof typeof JobKind]

export interface JobHead {
  requestId: string
  project: string
  model: string
  /** a specific model container; '' = any */
  cid: string
  kind: JobKindValue
  /** MIME type of the body, e.g. application/json or multipart/form-data; boundary=… */
  contentType: string
  /** the client asked for a streamed answer */
  stream: boolean
  /** absolute deadline, ms since epoch */
  deadline: number
}

export interface JobRequest {
  head: JobHead
  /** the request body, passed to the model untouched; chunks in order */
  body: AsyncIterable<Uint8Array>
}

export interface JobResponse {
  /** HTTP status of the model's answer (or of the error) */
  status: number
  contentType: string
  /** the node that ran the job, and the model container it used */
  nodeId: string
  cid: string
  /** set when the job failed before the model answered; the body is then empty */
  error?: { code: number, message: string }
  /** the model's answer as it arrives; a failure after the first chunk makes the iterator throw an AicnError */
  body: AsyncIterable<Uint8Array>
}

/** Runs a job somewhere (this node's model, or another node over the job protocol). */
export type JobRunner = (request: JobRequest, signal: AbortSignal) => Promise<JobResponse>

/** A job never runs longer than this, whatever deadline the requester asked for. */
export const MAX_JOB_MS = 10 * 60_000

/** How long a job of each kind may run, in ms. */
export type JobTimeouts = Record<JobKindValue, number>

/** Default timeouts per kind, as the Go node (chat 3 min, images 5 min); `Jobs.Timeouts` in the config. */
export const DEFAULT_TIMEOUT_MS: JobTimeouts = {
  [JobKind.CHAT]: 3 * 60_000,
  [JobKind.IMAGE_GEN]: 5 * 60_000,
  [JobKind.IMAGE_EDIT]: 5 * 60_000,
  [JobKind.EMBEDDING]: 3 * 60_000,
  [JobKind.COMPLETION]: 3 * 60_000
}

/** Runs a job on another node. */
export interface JobSender {
  run: (peer: PeerId, request: JobRequest, signal: AbortSignal) => Promise<JobResponse>
}
